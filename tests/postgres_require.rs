//! `require = 1` with a real PostgreSQL server under pgbench load: the S3
//! emulator is frozen (SIGSTOP, requests hang as with a dead network) while
//! the server archives into a local repository and S3. The server keeps
//! archiving (no failed attempt, nothing left ready), the backlog owes S3
//! exactly what S3 lacks, and once S3 is back the next archive calls pay it:
//! both repositories then hold every segment, byte-identical, and verify clean.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::pg::{chown_to_postgres, command_as_pg, pg_tempdir};
use common::pitr::start_primary;
use common::servers::S3;
use common::{poll_until, Ran};
use uxwal::repo::remote::StoreOptions;
use uxwal::repo::{Entry, Repository};
use uxwal::wal::name::WalName;

const VERIFY: &str = env!("CARGO_BIN_EXE_uxwal-verify");
const RESTORE: &str = env!("CARGO_BIN_EXE_uxwal-restore");

/// The segments a repository holds.
fn segments(location: &str, options: &StoreOptions) -> BTreeSet<String> {
    let repo = Repository::open_with(location, options).unwrap();
    repo.list("")
        .unwrap()
        .into_iter()
        .filter_map(|l| match Repository::classify(&l.key) {
            Entry::Wal(name @ WalName::Segment(_)) => Some(name.to_string()),
            _ => None,
        })
        .collect()
}

/// The owed copies in the backlog of the spool root `spool`.
fn owed(spool: &Path) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for dir in fs::read_dir(spool.join("owed")).into_iter().flatten() {
        let dir = dir.unwrap().path();
        if !dir.join("REPOSITORY").is_file() {
            continue;
        }
        for f in fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().file_name().into_string().unwrap();
            if f.parse::<WalName>().is_ok() {
                names.insert(f);
            }
        }
    }
    names
}

/// uxwal-verify as the PostgreSQL user, who owns the spool (a backlog is only
/// read by its owner), from a copy in `bin`.
fn verify(bin: &Path, config: &Path, repo: &str, spool: &Path) -> serde_json::Value {
    let ran: Ran = command_as_pg(bin.join("uxwal-verify"))
        .arg("--config")
        .arg(config)
        .args(["--repo", repo, "--json", "-q", "--spool-dir"])
        .arg(spool)
        .output()
        .unwrap()
        .into();
    let report: serde_json::Value = serde_json::from_str(&ran.stdout)
        .unwrap_or_else(|e| panic!("verify {repo}: {e}: {}{}", ran.stdout, ran.stderr));
    assert_eq!(ran.code, 0, "verify {repo}: {report}");
    report
}

fn restored(config: &Path, repo: &str, name: &str, dir: &Path) -> Vec<u8> {
    let out = dir.join(format!("{name}.from"));
    let ran: Ran = Command::new(RESTORE)
        .arg("--config")
        .arg(config)
        .args(["--repo", repo, "--prefetch", "0", name])
        .arg(&out)
        .current_dir(dir)
        .output()
        .unwrap()
        .into();
    assert_eq!(ran.code, 0, "restore {name} from {repo}: {}", ran.stderr);
    let bytes = fs::read(&out).unwrap();
    fs::remove_file(&out).unwrap();
    bytes
}

#[test]
fn a_frozen_store_does_not_stop_archiving_and_is_paid_what_it_is_owed_after() {
    let s3 = S3::start("pgrequire");
    let shared = pg_tempdir("uxwal-require.");
    let local = shared.path().join("localrepo");
    fs::create_dir(&local).unwrap();
    chown_to_postgres(&local);
    let spool = shared.path().join("archive-spool");
    let bin = shared.path().join("bin");
    fs::create_dir(&bin).unwrap();
    fs::copy(VERIFY, bin.join("uxwal-verify")).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(bin.join("uxwal-verify"), fs::Permissions::from_mode(0o755)).unwrap();
    let s3_repo = s3.location("wal");
    let config: PathBuf = shared.path().join("uxwal.toml");
    fs::write(
        &config,
        format!(
            "repo = [\"{}\", \"{s3_repo}\"]\nrequire = 1\nretry_owed_after = 2\n\
             request_timeout = 2\nretries = 0\ndeadline = 10\nspool_dir = \"{}\"\n\
             [s3]\nendpoint = \"{}\"\naccess_key_id = \"testing\"\n\
             secret_access_key = \"testing\"\nregion = \"us-east-1\"\nallow_http = true\n",
            local.display(),
            spool.display(),
            s3.endpoint()
        ),
    )
    .unwrap();
    fs::set_permissions(&config, fs::Permissions::from_mode(0o600)).unwrap();
    chown_to_postgres(&config);

    let mut primary = start_primary("reqprimary", &format!("--config {}", config.display()));
    primary.pgbench(&["-i", "-s", "1", "-q"]);
    let first = primary.switch_wal();
    primary.wait_for_archived(&first);
    let local_location = local.display().to_string();
    let before = segments(&s3_repo, &s3.store_options());
    assert!(before.contains(&first), "{first} in S3 before the outage");

    s3.server.freeze();
    let mut last = first;
    for _ in 0..4 {
        primary.pgbench(&["-t", "200", "-c", "2", "-n"]);
        last = primary.switch_wal();
    }
    primary.wait_for_archived(&last);
    assert_eq!(
        primary.archive_failures(),
        0,
        "archiving failed during the outage: {}",
        primary.log_tail(20)
    );
    let status = primary.data_dir().join("pg_wal/archive_status");
    let ready: Vec<_> = fs::read_dir(&status)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ready"))
        .collect();
    assert!(ready.is_empty(), "files left ready: {ready:?}");
    let owed_during = owed(&spool);
    assert!(!owed_during.is_empty(), "S3 is owed the outage's segments");

    s3.server.thaw();
    let in_s3 = segments(&s3_repo, &s3.store_options());
    let in_local = segments(&local_location, &StoreOptions::default());
    let lacking: BTreeSet<String> = in_local.difference(&in_s3).cloned().collect();
    assert_eq!(
        owed(&spool),
        lacking,
        "the backlog owes exactly what S3 lacks"
    );
    let report = verify(&bin, &config, &s3_repo, &spool);
    let listed: BTreeSet<String> = report["owed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed, lacking, "verify lists the owed copies");

    // New WAL brings archive calls, which pay the backlog once S3 has been
    // left alone for retry_owed_after.
    primary.psql("create table uxwal_after (x int)");
    poll_until("the backlog to drain", || {
        primary.psql("insert into uxwal_after values (1)");
        let switched = primary.switch_wal();
        primary.wait_for_archived(&switched);
        last = switched;
        match owed(&spool) {
            o if o.is_empty() => Ok(()),
            o => Err(format!("{} owed", o.len())),
        }
    });
    assert_eq!(primary.archive_failures(), 0, "{}", primary.log_tail(20));

    let in_s3 = segments(&s3_repo, &s3.store_options());
    let in_local = segments(&local_location, &StoreOptions::default());
    assert!(in_local.contains(&last));
    assert_eq!(in_s3, in_local, "S3 holds every segment");
    for repo in [&local_location, &s3_repo] {
        let report = verify(&bin, &config, repo, &spool);
        assert_eq!(report["owed"], serde_json::json!([]), "{repo}");
    }
    let scratch = tempfile::tempdir().unwrap();
    for name in &in_local {
        assert!(
            restored(&config, &local_location, name, scratch.path())
                == restored(&config, &s3_repo, name, scratch.path()),
            "{name} is byte-identical in both repositories"
        );
    }
    primary.stop();
}
