//! `require = K`: uxwal-archive keeps archiving while one of two repositories
//! is unreachable (moto frozen with SIGSTOP: requests hang, as with a dead
//! network), records each owed copy in the backlog, lists them in
//! uxwal-verify, and copies them once the repository is back; what is never
//! excused (a conflict) still fails the call.

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::proxy::Proxy;
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
    write_config_via(site, s3, &s3.endpoint(), name, extra)
}

/// [`write_config`] with S3 reached at `endpoint` (a proxy in front of it).
fn write_config_via(site: &Site, s3: &S3, endpoint: &str, name: &str, extra: &str) -> PathBuf {
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
            endpoint
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
    let ran = try_restore_from(site, config, repo, name);
    assert_eq!(ran.code, 0, "restore {name} from {repo}: {}", ran.stderr);
    site.restored().unwrap()
}

fn try_restore_from(site: &Site, config: &Path, repo: &str, name: &str) -> Ran {
    site.sh(
        &format!(
            "\"$RESTORE\" --config {} --repo {repo} --prefetch 0 %f %p",
            config.display()
        ),
        "pg_wal/RECOVERYXLOG",
        name,
    )
}

/// Each of `repos` verifies clean, owes nothing, and restores every segment
/// byte-identical to `originals`.
fn every_segment_in_both(site: &Site, config: &Path, repos: [&String; 2], originals: &[Vec<u8>]) {
    for repo in repos {
        let (code, report) = verify_json(site, config, repo);
        assert_eq!(code, 0, "{repo}: {report}");
        assert_eq!(report["owed"], serde_json::json!([]));
        for (name, original) in SEGMENTS.iter().zip(originals) {
            assert!(
                restore_from(site, config, repo, name) == *original,
                "{name} from {repo} is byte-identical"
            );
        }
    }
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
    every_segment_in_both(&site, &config, [&local, &s3_repo], &originals);
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

#[test]
fn a_call_killed_while_paying_owed_copies_loses_nothing_and_reports_nothing_it_did_not_copy() {
    let s3 = S3::start("require-kill");
    let proxy = Proxy::start(s3.server.port, None);
    let site = Site::new();
    let mut originals = Vec::new();
    for (i, name) in SEGMENTS.iter().enumerate() {
        let bytes = segment(name, MIB, SYSID, 10 + i as u64);
        site.write_wal(name, &bytes);
        originals.push(bytes);
    }
    let (s3_repo, local) = (s3.location("wal"), site.repo.display().to_string());
    let outage = write_config(
        &site,
        &s3,
        "outage.toml",
        "require = 1\nretry_owed_after = 3600",
    );
    assert_eq!(archive(&site, &outage, SEGMENTS[0]).code, 0);
    s3.server.freeze();
    for name in &SEGMENTS[1..] {
        let ran = archive(&site, &outage, name);
        assert_eq!(ran.code, 0, "{name}: {}", ran.stderr);
    }
    s3.server.thaw();
    assert_eq!(owed_files(&site), SEGMENTS[1..].to_vec());

    // Back, through a proxy that holds the upload of the third owed copy:
    // the call has made the first two when that request arrives, and is
    // killed (SIGKILL) in the middle of it.
    let back = write_config_via(
        &site,
        &s3,
        &proxy.endpoint(),
        "back.toml",
        "require = 1\nretry_owed_after = 0",
    );
    let held = SEGMENTS[3];
    proxy.hold_if(move |line| line.starts_with("PUT ") && line.contains(held));
    let mut call = site.spawn_sh(
        &format!(
            "\"$ARCHIVE\" --config {} --parallel 1 %p %f",
            back.display()
        ),
        &format!("pg_wal/{}", SEGMENTS[4]),
        SEGMENTS[4],
    );
    proxy.until_held();
    call.kill().unwrap();
    call.wait().unwrap();
    proxy.drop_held();

    // What was copied is in S3 and no longer owed; the rest is still owed,
    // and the copy cut short is nowhere.
    assert_eq!(owed_files(&site), SEGMENTS[3..].to_vec());
    for (name, original) in SEGMENTS[..3].iter().zip(&originals) {
        assert!(
            restore_from(&site, &outage, &s3_repo, name) == *original,
            "{name}"
        );
    }
    let ran = try_restore_from(&site, &outage, &s3_repo, held);
    assert_eq!(ran.code, 1, "{held} is not in S3: {}", ran.stderr);
    let (_, report) = verify_json(&site, &outage, &s3_repo);
    assert_eq!(
        report["owed"],
        serde_json::json!(SEGMENTS[3..].to_vec()),
        "{report}"
    );

    // A kill after a copy was created but before its entry was removed
    // leaves an entry for a copy that exists: the next call finds it there
    // and removes the entry.
    fs::write(
        spool(&site)
            .join("owed")
            .join(owed_dir_of(&site, &s3_repo))
            .join(SEGMENTS[1]),
        b"",
    )
    .unwrap();
    let ran = archive(&site, &back, SEGMENTS[4]);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(owed_files(&site).is_empty(), "{}", ran.stderr);
    every_segment_in_both(&site, &outage, [&local, &s3_repo], &originals);
}

/// The backlog directory of the repository at `location`.
fn owed_dir_of(site: &Site, location: &str) -> String {
    for dir in fs::read_dir(spool(site).join("owed")).unwrap() {
        let dir = dir.unwrap().path();
        if fs::read_to_string(dir.join("REPOSITORY")).is_ok_and(|l| l.trim() == location) {
            return dir.file_name().unwrap().to_string_lossy().into_owned();
        }
    }
    panic!("no backlog directory for {location}");
}

#[test]
fn a_backlog_in_memory_is_refused_and_every_repository_is_required() {
    common::require_root("mounting a tmpfs as the spool root");
    let s3 = S3::start("require-tmpfs");
    let site = Site::new();
    let _memory = common::Tmpfs::mount(&spool(&site), "1m");
    let config = write_config(&site, &s3, "one.toml", "require = 1");
    let (first, second) = (SEGMENTS[0], SEGMENTS[1]);
    site.write_wal(first, &segment(first, MIB, SYSID, 1));
    site.write_wal(second, &segment(second, MIB, SYSID, 2));

    // Both reachable: archived into both, with a warning.
    let ran = archive(&site, &config, first);
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("in memory (tmpfs)"), "{}", ran.stderr);
    assert!(ran.stderr.contains(first), "{}", ran.stderr);
    // One unreachable: the call fails, as with every repository required,
    // and nothing is owed (a reboot would have forgotten it).
    s3.server.freeze();
    let ran = archive(&site, &config, second);
    s3.server.thaw();
    assert_eq!(ran.code, 1, "{}", ran.stderr);
    assert!(owed_files(&site).is_empty());
    assert!(!spool(&site).join("owed").exists());
}
