//! `require = K`: uxwal-archive keeps archiving while one of two repositories
//! is unreachable (moto frozen with SIGSTOP: requests hang, as with a dead
//! network), records each owed copy in the backlog, lists them in
//! uxwal-verify, and copies them once the repository is back; what is never
//! excused (a conflict) still fails the call.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::servers::S3;
use common::{segment, Ran, Site, MIB, SYSID};

const VERIFY: &str = env!("CARGO_BIN_EXE_uxwal-verify");

const SEGMENTS: [&str; 5] = [
    "000000010000000000000001",
    "000000010000000000000002",
    "000000010000000000000003",
    "000000010000000000000004",
    "000000010000000000000005",
];

/// A configuration for the local repository and the bucket's `wal/`, with
/// `extra` keys (before the `[s3]` table). Requests to the store give up fast.
fn write_config(site: &Site, s3: &S3, name: &str, extra: &str) -> PathBuf {
    let path = site.dir.path().join(name);
    fs::write(
        &path,
        format!(
            "repo = [\"{}\", \"{}\"]\nrequest_timeout = 2\nretries = 0\ndeadline = 5\n\
             spool_dir = \"{}\"\n{extra}\n[s3]\nendpoint = \"{}\"\naccess_key_id = \"testing\"\n\
             secret_access_key = \"testing\"\nregion = \"us-east-1\"\nallow_http = true\n",
            site.repo.display(),
            s3.location("wal"),
            spool(site).display(),
            s3.endpoint()
        ),
    )
    .unwrap();
    path
}

fn spool(site: &Site) -> PathBuf {
    site.dir.path().join("spool")
}

fn archive(site: &Site, config: &Path, name: &str) -> Ran {
    site.sh(
        &format!(
            "\"$ARCHIVE\" --config {} --parallel 1 %p %f",
            config.display()
        ),
        &format!("pg_wal/{name}"),
        name,
    )
}

/// The owed copies in the backlog, as file names (any repository).
fn owed_files(site: &Site) -> Vec<String> {
    let mut names = Vec::new();
    let Ok(dirs) = fs::read_dir(spool(site).join("owed")) else {
        return names;
    };
    for dir in dirs {
        let dir = dir.unwrap().path();
        if !dir.join("REPOSITORY").is_file() {
            continue;
        }
        for f in fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().file_name().into_string().unwrap();
            if f.len() == 24 {
                names.push(f);
            }
        }
    }
    names.sort();
    names
}

fn verify_json(site: &Site, config: &Path, repo: &str) -> (i32, serde_json::Value) {
    let ran: Ran = Command::new(VERIFY)
        .arg("--config")
        .arg(config)
        .args(["--repo", repo, "--json", "-q"])
        .arg("--spool-dir")
        .arg(spool(site))
        .output()
        .unwrap()
        .into();
    let report = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("verify --json: {e}: {} {}", ran.stdout, ran.stderr));
    (ran.code, report)
}

fn restore_from(site: &Site, config: &Path, repo: &str, name: &str) -> Vec<u8> {
    let ran = site.sh(
        &format!(
            "\"$RESTORE\" --config {} --repo {repo} --prefetch 0 %f %p",
            config.display()
        ),
        "pg_wal/RECOVERYXLOG",
        name,
    );
    assert_eq!(ran.code, 0, "restore {name} from {repo}: {}", ran.stderr);
    site.restored().unwrap()
}

#[test]
fn require_one_archives_through_a_frozen_store_and_pays_the_owed_copies_after() {
    let s3 = S3::start("require");
    let site = Site::new();
    let mut originals = Vec::new();
    for (i, name) in SEGMENTS.iter().enumerate() {
        let bytes = segment(name, MIB, SYSID, i as u64);
        site.write_wal(name, &bytes);
        originals.push(bytes);
    }
    // Left alone for an hour once unreachable: calls during the outage do not
    // wait for it.
    let config = write_config(
        &site,
        &s3,
        "outage.toml",
        "require = 1\nretry_owed_after = 3600",
    );
    let s3_repo = s3.location("wal");
    let local = site.repo.display().to_string();

    let ran = archive(&site, &config, SEGMENTS[0]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(owed_files(&site).is_empty());

    s3.server.freeze();
    for name in &SEGMENTS[1..4] {
        let ran = archive(&site, &config, name);
        assert_eq!(ran.code, 0, "{name} with S3 frozen: {}", ran.stderr);
        assert!(
            ran.stderr.contains(name) && ran.stderr.contains(&s3_repo),
            "the warning names the file and the repository: {}",
            ran.stderr
        );
        assert!(
            ran.stderr.lines().all(|l| l.starts_with("uxwal-archive: ")),
            "{}",
            ran.stderr
        );
    }
    assert_eq!(owed_files(&site), SEGMENTS[1..4].to_vec());
    // The first call of the outage found S3 failing; the others did not try it.
    let tried_again = archive(&site, &config, SEGMENTS[3]);
    assert_eq!(tried_again.code, 0);
    assert!(
        tried_again.stderr.contains("not tried"),
        "{}",
        tried_again.stderr
    );
    // The local repository holds all four, and is clean.
    let (code, report) = verify_json(&site, &config, &local);
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["owed"], serde_json::json!([]));

    s3.server.thaw();
    // S3 lacks what it is owed, and verify says so.
    let (_, report) = verify_json(&site, &config, &s3_repo);
    assert_eq!(
        report["owed"],
        serde_json::json!(SEGMENTS[1..4].to_vec()),
        "{report}"
    );
    // Still left alone: the backlog stays as it is.
    let ran = archive(&site, &config, SEGMENTS[4]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        owed_files(&site),
        vec![SEGMENTS[1], SEGMENTS[2], SEGMENTS[3], SEGMENTS[4]]
    );

    // Tried again at once: the next call pays what is owed, then archives its
    // own file (already in both by then).
    let config = write_config(&site, &s3, "back.toml", "require = 1\nretry_owed_after = 0");
    let ran = archive(&site, &config, SEGMENTS[4]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(owed_files(&site).is_empty(), "{}", ran.stderr);
    for repo in [&local, &s3_repo] {
        let (code, report) = verify_json(&site, &config, repo);
        assert_eq!(code, 0, "{repo}: {report}");
        assert_eq!(report["owed"], serde_json::json!([]));
        for (name, original) in SEGMENTS.iter().zip(&originals) {
            assert!(
                restore_from(&site, &config, repo, name) == *original,
                "{name} from {repo} is byte-identical"
            );
        }
    }
}

#[test]
fn every_repository_is_required_by_default_and_a_conflict_is_never_excused() {
    let s3 = S3::start("require-all");
    let site = Site::new();
    let name = SEGMENTS[0];
    site.write_wal(name, &segment(name, MIB, SYSID, 1));

    // The default: a frozen repository fails the call, and nothing is owed.
    let config = write_config(&site, &s3, "all.toml", "");
    s3.server.freeze();
    let ran = archive(&site, &config, name);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(owed_files(&site).is_empty());
    s3.server.thaw();

    // More than there are.
    let config = write_config(&site, &s3, "three.toml", "require = 3");
    let ran = archive(&site, &config, name);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains("require = 3, but 2 repositories"),
        "{}",
        ran.stderr
    );
    let config = write_config(&site, &s3, "zero.toml", "require = 0");
    let ran = archive(&site, &config, name);
    assert_eq!(ran.code, 1);
    assert!(ran.stderr.contains("require"), "{}", ran.stderr);

    // The local repository holds different content for the name: with S3
    // reachable and one repository required, the call still fails, and S3
    // is not owed anything.
    let config = write_config(&site, &s3, "one.toml", "require = 1");
    site.write_wal(name, &segment(name, MIB, SYSID, 2));
    assert_eq!(archive(&site, &config, name).code, 0);
    site.write_wal(name, &segment(name, MIB, SYSID, 3));
    let ran = archive(&site, &config, name);
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("refusing to overwrite"),
        "{}",
        ran.stderr
    );
    assert!(owed_files(&site).is_empty());
}
