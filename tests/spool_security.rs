//! Issue 12: spools no other local user can touch. uxwal runs as the database's
//! user (`postgres`), and a second, unprivileged user (`uxwal-attacker`) does what
//! a local user can in a shared temp directory: pre-creates spool roots, plants
//! forged entries, swaps directories for symbolic links while restores run.
//! Every restore must still deliver the archived bytes, a refused spool must be
//! named in a warning, and nothing outside the spool may be created, renamed or
//! removed. Run as root (CI does); without root every test here fails with the
//! reason.

mod common;
#[path = "common/users.rs"]
mod users;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use common::{segment, Ran, ARCHIVE, MIB, RESTORE, SYSID};
use sha2::{Digest, Sha256};
use users::User;
use uxwal::commands::restore::prefetch_spool_dir;
use uxwal::repo::Identity;
use uxwal::wal::name::SegmentName;

/// One host: a shared temp directory (root-owned, sticky, like `/tmp`), the
/// database user's data directory, repository and copy of the binaries, and a
/// directory of the attacker's.
struct Host {
    base: tempfile::TempDir,
    db: User,
    attacker: User,
    /// `$TMPDIR` of every uxwal command: mode 1777.
    tmp: PathBuf,
    data: PathBuf,
    repo: PathBuf,
    bin: PathBuf,
    /// The attacker's own directory (mode 0777).
    evil: PathBuf,
    /// Extra environment for uxwal.
    env: Vec<(String, String)>,
}

impl Host {
    fn new() -> Host {
        let db = users::database();
        let attacker = users::attacker();
        let base = tempfile::tempdir().unwrap();
        fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let tmp = base.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        fs::set_permissions(&tmp, fs::Permissions::from_mode(0o1777)).unwrap();
        let home = base.path().join("db");
        let data = home.join("data");
        fs::create_dir_all(data.join("pg_wal")).unwrap();
        fs::create_dir_all(data.join("global")).unwrap();
        // The data directory's own system identifier, as the server keeps it.
        let mut control = vec![0u8; 8192];
        control[..8].copy_from_slice(&SYSID.to_ne_bytes());
        fs::write(data.join("global/pg_control"), control).unwrap();
        let bin = home.join("bin");
        fs::create_dir(&bin).unwrap();
        for built in [ARCHIVE, RESTORE] {
            let to = bin.join(Path::new(built).file_name().unwrap());
            fs::copy(built, &to).unwrap();
        }
        let repo = home.join("repo");
        db.chown(&home);
        fs::set_permissions(&home, fs::Permissions::from_mode(0o700)).unwrap();
        let evil = base.path().join("evil");
        fs::create_dir(&evil).unwrap();
        attacker.chown(&evil);
        fs::set_permissions(&evil, fs::Permissions::from_mode(0o777)).unwrap();
        Host {
            base,
            db,
            attacker,
            tmp,
            data,
            repo,
            bin,
            evil,
            env: vec![("UXWAL_PREFETCH_LINGER".into(), "0".into())],
        }
    }

    /// Runs uxwal's `program` as the database user in the data directory.
    fn uxwal(&self, program: &str, args: &[&str]) -> Ran {
        self.db
            .command(self.bin.join(program))
            .args(args)
            .current_dir(&self.data)
            .env("TMPDIR", &self.tmp)
            .env_remove("UXWAL_REPO")
            .env_remove("UXWAL_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .output()
            .unwrap()
            .into()
    }

    /// Archives segments `numbers` (timeline 1, `size` bytes each); returns their bytes.
    fn archive(&self, numbers: std::ops::RangeInclusive<u64>, size: u64) -> Vec<Vec<u8>> {
        numbers
            .map(|n| {
                let name = seg(n, size);
                let bytes = segment(&name, size, SYSID, n);
                let path = self.data.join("pg_wal").join(&name);
                fs::write(&path, &bytes).unwrap();
                self.db.chown(&path);
                let repo = self.repo.display().to_string();
                let ran = self.uxwal(
                    "uxwal-archive",
                    &["--repo", &repo, &format!("pg_wal/{name}"), &name],
                );
                assert_eq!(ran.code, 0, "archive {name}: {}", ran.stderr);
                fs::remove_file(path).unwrap();
                bytes
            })
            .collect()
    }

    /// `restore_command` for `name` with `extra` options; the restored bytes.
    fn restore(&self, name: &str, extra: &[&str]) -> (Ran, Option<Vec<u8>>) {
        let dest = self.data.join("pg_wal/RECOVERYXLOG");
        let _ = fs::remove_file(&dest);
        let repo = self.repo.display().to_string();
        let mut args = vec!["-v", "--repo", &repo];
        args.extend_from_slice(extra);
        args.extend_from_slice(&[name, "pg_wal/RECOVERYXLOG"]);
        let ran = self.uxwal("uxwal-restore", &args);
        let bytes = fs::read(&dest).ok();
        (ran, bytes)
    }

    /// Restores `name`, which must succeed with `expected`; whether the spool served it.
    fn restore_ok(&self, name: &str, extra: &[&str], expected: &[u8]) -> Ran {
        let (ran, bytes) = self.restore(name, extra);
        assert_eq!(ran.code, 0, "restore {name}: {}", ran.stderr);
        assert!(
            bytes.as_deref() == Some(expected),
            "{name}: the restored bytes are not the archived segment\n{}",
            ran.stderr
        );
        let dest = fs::symlink_metadata(self.data.join("pg_wal/RECOVERYXLOG")).unwrap();
        assert!(dest.is_file(), "a regular file");
        assert_eq!(dest.uid(), self.db.uid, "owned by the database user");
        assert_eq!(dest.nlink(), 1, "with no other name");
        ran
    }

    /// The default spool root of the database user.
    fn default_root(&self) -> PathBuf {
        self.tmp.join(format!("uxwal-{}", self.db.uid))
    }

    /// Waits (bounded) until no worker holds a lock under `root`.
    fn wait_for_workers(&self, root: &Path) {
        if let Err(e) = common::wait_for_workers(root) {
            panic!("a worker under {} did not finish: {e}", root.display());
        }
    }

    /// What is under `dir` (every name, with its owner, inode, size and mtime).
    fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u32, u64, u64, i64)> {
        let mut found = BTreeMap::new();
        fn walk(dir: &Path, found: &mut BTreeMap<PathBuf, (u32, u64, u64, i64)>) {
            for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let Ok(m) = fs::symlink_metadata(&path) else {
                    continue;
                };
                found.insert(path.clone(), (m.uid(), m.ino(), m.size(), m.mtime()));
                if m.is_dir() {
                    walk(&path, found);
                }
            }
        }
        walk(dir, &mut found);
        found
    }

    /// Every path under `dir` owned by `user`.
    fn owned_by(dir: &Path, user: &User) -> Vec<PathBuf> {
        Self::snapshot(dir)
            .into_iter()
            .filter(|(_, (uid, ..))| *uid == user.uid)
            .map(|(p, _)| p)
            .collect()
    }
}

fn seg(n: u64, size: u64) -> String {
    SegmentName::from_segment_number(1, n, size).to_string()
}

fn identity(size: u64) -> Identity {
    Identity {
        system_identifier: SYSID,
        segment_size: size,
        page_magic: 0xD110,
    }
}

/// A forged spool entry for `name`: a segment with a valid page header (of the
/// right cluster and address) but the attacker's content, and a trailer whose
/// SHA-256 the attacker computed over it.
fn forged_entry(name: &str, size: u64) -> Vec<u8> {
    let mut bytes = segment(name, size, SYSID, 0xBAD);
    bytes[size as usize - 1] = 0x42;
    let digest = Sha256::digest(&bytes);
    bytes.extend_from_slice(b"UXWALSPL");
    bytes.extend_from_slice(&digest);
    bytes.extend_from_slice(&size.to_le_bytes());
    bytes
}

/// Plants forged entries for `numbers` in `<root>/restore-<sysid>-<hash>/` (as
/// the attacker, in a directory the attacker owns), and the identity file the
/// foreground would read.
fn plant_forged_spool(host: &Host, root: &Path, numbers: std::ops::RangeInclusive<u64>) {
    let dir = prefetch_spool_dir(root, &host.repo.display().to_string(), &identity(MIB));
    fs::create_dir_all(&dir).unwrap();
    for n in numbers {
        let name = seg(n, MIB);
        fs::write(dir.join(&name), forged_entry(&name, MIB)).unwrap();
    }
    host.attacker.chown(root);
    fs::set_permissions(root, fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn an_attackers_default_root_and_spool_dir_are_refused_and_left_alone() {
    let host = Host::new();
    let segments = host.archive(1..=4, MIB);
    // The attacker pre-creates the default root (mode 0777) with forged entries,
    // and owns the directory a --spool-dir points into.
    let root = host.default_root();
    plant_forged_spool(&host, &root, 2..=4);
    let before = Host::snapshot(&root);
    for (i, bytes) in segments.iter().enumerate().take(3) {
        let name = seg(i as u64 + 1, MIB);
        let ran = host.restore_ok(&name, &["--prefetch", "3"], bytes);
        assert!(
            ran.stderr.contains("prefetch off")
                && ran.stderr.contains(&root.display().to_string())
                && ran.stderr.contains("owned by uid"),
            "a warning names the refused directory and why: {}",
            ran.stderr
        );
        assert!(
            !ran.stderr.contains("from the prefetch spool"),
            "{}",
            ran.stderr
        );
    }
    assert_eq!(
        Host::snapshot(&root),
        before,
        "the attacker's root is untouched"
    );

    for spool_dir in [host.evil.clone(), host.evil.join("spool")] {
        let arg = spool_dir.display().to_string();
        let ran = host.restore_ok(
            &seg(4, MIB),
            &["--prefetch", "3", "--spool-dir", &arg],
            &segments[3],
        );
        assert!(
            ran.stderr.contains(&format!("spool directory {arg}")),
            "{}",
            ran.stderr
        );
    }
    assert!(
        !host.evil.join("spool").exists(),
        "nothing created in another user's directory"
    );
    assert!(Host::owned_by(&host.evil, &host.db).is_empty());
    assert!(
        Host::owned_by(&host.tmp, &host.db).is_empty(),
        "nothing of the database user's in the shared temp directory either"
    );
}

#[test]
fn symbolic_link_swaps_of_spool_directories_redirect_nothing() {
    let host = Host::new();
    let segments = host.archive(1..=6, MIB);
    let location = host.repo.display().to_string();
    // A private directory of the database user's that is not a spool: WAL-named
    // files that remove_stale would once have deleted through a swapped leaf.
    let victim = host.base.path().join("victim");
    fs::create_dir(&victim).unwrap();
    for n in 1..=6 {
        fs::write(victim.join(seg(n, MIB)), b"not spool").unwrap();
    }
    let victim_spool = prefetch_spool_dir(&victim, &location, &identity(MIB));
    fs::create_dir(&victim_spool).unwrap();
    fs::write(victim_spool.join(seg(3, MIB)), b"not spool either").unwrap();
    host.db.chown(&victim);
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
    fs::set_permissions(&victim_spool, fs::Permissions::from_mode(0o700)).unwrap();

    // The attacker's forged spool, and two names the attacker keeps exchanging:
    // the default root and a --spool-dir, each now a symbolic link to the
    // victim, now a directory of forged entries.
    let forged = host.evil.join("forged");
    plant_forged_spool(&host, &forged, 2..=6);
    let forged_tmp = host.tmp.join("forged");
    fs::rename(&forged, &forged_tmp).unwrap();
    let root = host.default_root();
    std::os::unix::fs::symlink(&victim, &root).unwrap();
    std::os::unix::fs::symlink(&victim, host.evil.join("spool")).unwrap();
    fs::create_dir(host.evil.join("forged2")).unwrap();
    plant_forged_spool(&host, &host.evil.join("forged2"), 2..=6);
    host.attacker.chown(&root);
    host.attacker.chown(&host.evil.join("spool"));
    host.attacker.chown(&host.evil);
    fs::set_permissions(&host.evil, fs::Permissions::from_mode(0o777)).unwrap();
    let victim_before = Host::snapshot(&victim);

    let swaps = 5_000_000;
    let swapper = host
        .attacker
        .command("/usr/bin/python3")
        .arg("-c")
        .arg(format!(
            r#"
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
pairs = [(b"{root}", b"{forged_tmp}"), (b"{evil}/spool", b"{evil}/forged2")]
for i in range({swaps}):
    a, b = pairs[i % 2]
    libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE
"#,
            root = root.display(),
            forged_tmp = forged_tmp.display(),
            evil = host.evil.display(),
        ))
        .spawn()
        .unwrap();
    let spool_dir = host.evil.join("spool").display().to_string();
    for round in 0..3 {
        for (i, bytes) in segments.iter().enumerate() {
            let name = seg(i as u64 + 1, MIB);
            let extra: &[&str] = if round % 2 == 0 {
                &["--prefetch", "4"]
            } else {
                &["--prefetch", "4", "--spool-dir", &spool_dir]
            };
            let ran = host.restore_ok(&name, extra, bytes);
            assert!(
                !ran.stderr.contains("from the prefetch spool"),
                "served from a spool the attacker controls: {}",
                ran.stderr
            );
        }
    }
    // The swapper ran for the whole loop (bounded, it would end by itself), or
    // ended without an error.
    let mut swapper = swapper;
    match swapper.try_wait().unwrap() {
        None => {
            swapper.kill().unwrap();
            swapper.wait().unwrap();
        }
        Some(status) => assert!(status.success(), "the swapper failed"),
    }
    host.wait_for_workers(&host.tmp);
    assert_eq!(
        Host::snapshot(&victim),
        victim_before,
        "nothing outside the spool was created, renamed or removed"
    );
    // The exchanges leave each pair's names either way round: look into whichever
    // of them is the attacker's directory (not the link to the victim).
    for name in [
        &root,
        &forged_tmp,
        &host.evil.join("spool"),
        &host.evil.join("forged2"),
    ] {
        if !name.is_symlink() {
            assert!(
                Host::owned_by(name, &host.db).is_empty(),
                "{}",
                name.display()
            );
        }
    }
    assert!(Host::owned_by(&host.evil, &host.db).is_empty());
    // Whatever the attacker left where: the name the database user's spool would
    // have is the attacker's, so no spool of the database user exists at all.
    assert!(
        Host::owned_by(&host.tmp, &host.db).is_empty(),
        "{:?}",
        Host::owned_by(&host.tmp, &host.db)
    );
}

#[test]
fn a_forged_entry_is_never_served_and_the_own_spool_still_works() {
    let host = Host::new();
    let segments = host.archive(1..=4, MIB);
    let attackers = host.evil.join("spool");
    fs::create_dir(&attackers).unwrap();
    plant_forged_spool(&host, &attackers, 2..=4);
    let arg = attackers.display().to_string();
    for (i, bytes) in segments.iter().enumerate() {
        host.restore_ok(
            &seg(i as u64 + 1, MIB),
            &["--prefetch", "3", "--spool-dir", &arg],
            bytes,
        );
    }
    // With its own spool the read-ahead serves entries again: the checks refuse
    // the attacker's, not the feature.
    let own = host.base.path().join("own-spool");
    let own_arg = own.display().to_string();
    let extra = ["--prefetch", "3", "--spool-dir", own_arg.as_str()];
    fs::create_dir(&own).unwrap();
    host.db.chown(&own);
    fs::set_permissions(&own, fs::Permissions::from_mode(0o700)).unwrap();
    host.restore_ok(&seg(1, MIB), &extra, &segments[0]);
    host.wait_for_workers(&own);
    let served = host.restore_ok(&seg(2, MIB), &extra, &segments[1]);
    assert!(
        served.stderr.contains("from the prefetch spool"),
        "{}",
        served.stderr
    );
    host.wait_for_workers(&own);
}

#[test]
fn a_spool_inside_the_data_directory_is_refused() {
    let host = Host::new();
    let segments = host.archive(1..=2, MIB);
    let ran = host.restore_ok(
        &seg(1, MIB),
        &["--prefetch", "2", "--spool-dir", "pg_wal/spool"],
        &segments[0],
    );
    assert!(
        ran.stderr.contains("inside the data directory"),
        "{}",
        ran.stderr
    );
    assert!(!host.data.join("pg_wal/spool").exists(), "nothing created");

    // Push-ahead, likewise: the file is archived, without pushing ahead.
    let name = seg(3, MIB);
    let path = host.data.join("pg_wal").join(&name);
    fs::write(&path, segment(&name, MIB, SYSID, 3)).unwrap();
    fs::create_dir_all(host.data.join("pg_wal/archive_status")).unwrap();
    fs::write(
        host.data
            .join(format!("pg_wal/archive_status/{name}.ready")),
        b"",
    )
    .unwrap();
    host.db.chown(&host.data);
    let repo = host.repo.display().to_string();
    let pg_wal_name = format!("pg_wal/{name}");
    let ran = host.uxwal(
        "uxwal-archive",
        &[
            "--repo",
            &repo,
            "--parallel",
            "4",
            "--spool-dir",
            "pg_wal/spool",
            &pg_wal_name,
            &name,
        ],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(
        ran.stderr.contains("inside the data directory"),
        "{}",
        ran.stderr
    );
    assert!(!host.data.join("pg_wal/spool").exists(), "nothing created");
}

#[test]
fn out_of_range_settings_are_configuration_errors() {
    let host = Host::new();
    host.archive(1..=1, MIB);
    let config = host.base.path().join("db/uxwal.toml");
    let repo = host.repo.display().to_string();
    for (key, program, expect) in [
        ("parallel = 65", "uxwal-archive", "parallel = 65"),
        ("parallel = 0", "uxwal-archive", "parallel = 0"),
        ("prefetch = 65", "uxwal-restore", "prefetch = 65"),
        (
            "spool_max_bytes = 10",
            "uxwal-restore",
            "spool_max_bytes = 10",
        ),
    ] {
        fs::write(&config, format!("repo = \"{repo}\"\n{key}\n")).unwrap();
        host.db.chown(&config);
        let name = seg(1, MIB);
        let config_arg = config.display().to_string();
        let ran = match program {
            "uxwal-archive" => {
                let path = host.data.join("pg_wal").join(&name);
                fs::write(&path, segment(&name, MIB, SYSID, 1)).unwrap();
                host.db.chown(&path);
                host.uxwal(
                    program,
                    &["--config", &config_arg, &format!("pg_wal/{name}"), &name],
                )
            }
            _ => host.uxwal(
                program,
                &["--config", &config_arg, &name, "pg_wal/RECOVERYXLOG"],
            ),
        };
        assert_ne!(ran.code, 0, "{key}: {}", ran.stderr);
        assert!(ran.stderr.contains(expect), "{key}: {}", ran.stderr);
    }
    let mut host = host;
    host.env = vec![("UXWAL_PREFETCH_LINGER".into(), "61".into())];
    let (ran, _) = host.restore(&seg(1, MIB), &["--prefetch", "2"]);
    assert_ne!(ran.code, 0);
    assert!(
        ran.stderr.contains("UXWAL_PREFETCH_LINGER"),
        "{}",
        ran.stderr
    );
}

#[test]
fn entries_past_their_age_are_not_served() {
    let host = Host::new();
    let segments = host.archive(1..=3, MIB);
    let root = host.default_root();
    host.restore_ok(&seg(1, MIB), &["--prefetch", "2"], &segments[0]);
    host.wait_for_workers(&root);
    let dir = prefetch_spool_dir(&root, &host.repo.display().to_string(), &identity(MIB));
    let entry = dir.join(seg(2, MIB));
    assert!(entry.exists(), "the worker spooled segment 2");
    fs::File::options()
        .write(true)
        .open(&entry)
        .unwrap()
        .set_modified(SystemTime::now() - Duration::from_secs(2 * 3600))
        .unwrap();
    let ran = host.restore_ok(&seg(2, MIB), &["--prefetch", "2"], &segments[1]);
    assert!(
        !ran.stderr.contains("from the prefetch spool"),
        "{}",
        ran.stderr
    );
    host.wait_for_workers(&root);
    let ran = host.restore_ok(&seg(3, MIB), &["--prefetch", "2"], &segments[2]);
    assert!(
        ran.stderr.contains("from the prefetch spool"),
        "a fresh one is: {}",
        ran.stderr
    );
    host.wait_for_workers(&root);
}

#[test]
fn a_finished_recovery_leaves_no_spool_behind() {
    let mut host = Host::new();
    let segments = host.archive(1..=3, MIB);
    host.env = vec![("UXWAL_PREFETCH_LINGER".into(), "1".into())];
    let root = host.default_root();
    host.restore_ok(&seg(1, MIB), &["--prefetch", "2"], &segments[0]);
    let dir = prefetch_spool_dir(&root, &host.repo.display().to_string(), &identity(MIB));
    // No request for its position during the linger: the worker removes its
    // directory, then exits (and lets go of its lock).
    common::poll_until("the spool directory to be removed", || {
        if dir.exists() {
            Err(format!("{:?}", Host::snapshot(&dir)))
        } else {
            Ok(())
        }
    });
    host.wait_for_workers(&root);
    assert!(!dir.exists());
}

/// Runs a prefetch with `spool_max_bytes = max_bytes` and `--prefetch 8` over
/// `size`-byte segments and checks the spool never holds more.
fn byte_bound_holds(size: u64, max_bytes: u64, fits: usize) {
    let host = Host::new();
    let segments = host.archive(1..=(fits as u64 + 3), size);
    let config = host.base.path().join("db/uxwal.toml");
    fs::write(&config, format!("spool_max_bytes = {max_bytes}\n")).unwrap();
    host.db.chown(&config);
    let config_arg = config.display().to_string();
    let root = host.default_root();
    let extra = ["--prefetch", "8", "--config", config_arg.as_str()];
    host.restore_ok(&seg(1, size), &extra, &segments[0]);
    let dir = prefetch_spool_dir(&root, &host.repo.display().to_string(), &identity(size));
    let held = || -> (usize, u64) {
        let files: Vec<(PathBuf, u64)> = Host::snapshot(&dir)
            .into_iter()
            .filter(|(p, _)| !p.is_dir())
            .map(|(p, (_, _, size, _))| (p, size))
            .collect();
        let entries = files
            .iter()
            .filter(|(p, _)| p.file_name().unwrap().len() == 24)
            .count();
        (entries, files.iter().map(|(_, size)| size).sum())
    };
    // Sampled while the worker runs (bounded: it ends once the window is full)...
    for _ in 0..1000 {
        let (_, bytes) = held();
        assert!(bytes <= max_bytes, "{bytes} > {max_bytes}");
        if !worker_running(&root) {
            break;
        }
    }
    host.wait_for_workers(&root);
    // ...and once it is done: as many entries as fit, no more.
    let (entries, bytes) = held();
    assert!(bytes <= max_bytes, "{bytes} > {max_bytes}");
    assert_eq!(entries, fits, "{:?}", Host::snapshot(&dir).keys());
    let ran = host.restore_ok(&seg(2, size), &extra, &segments[1]);
    assert!(
        ran.stderr.contains("from the prefetch spool"),
        "{}",
        ran.stderr
    );
    host.wait_for_workers(&root);
    assert!(held().1 <= max_bytes);
}

#[test]
fn the_byte_bound_holds_with_1_mib_segments() {
    byte_bound_holds(MIB, 3 * MIB, 2);
}

#[test]
fn the_byte_bound_holds_with_64_mib_segments() {
    byte_bound_holds(64 * MIB, 160 * MIB, 2);
}

#[test]
fn push_ahead_refuses_an_attackers_root_and_never_trusts_its_entries() {
    let host = Host::new();
    let status = host.data.join("pg_wal/archive_status");
    fs::create_dir_all(&status).unwrap();
    let names: Vec<String> = (1..=4).map(|n| seg(n, MIB)).collect();
    for (n, name) in names.iter().enumerate() {
        fs::write(
            host.data.join("pg_wal").join(name),
            segment(name, MIB, SYSID, n as u64),
        )
        .unwrap();
        fs::write(status.join(format!("{name}.ready")), b"").unwrap();
    }
    host.db.chown(&host.data);
    // The attacker's default root, with "pushed" entries for files never archived.
    let root = host.default_root();
    fs::create_dir(&root).unwrap();
    let wal_dir = host.data.join("pg_wal").canonicalize().unwrap();
    let key = &uxwal::codec::hex(&Sha256::digest(wal_dir.as_os_str().as_encoded_bytes())[..8]);
    let dir = root.join(format!("archive-{key}"));
    fs::create_dir(&dir).unwrap();
    let repo = host.repo.display().to_string();
    for name in &names {
        fs::write(
            dir.join(format!("{name}.pushed")),
            format!(
                "name = \"{name}\"\nsize = 1048576\nsha256 = \"{}\"\n[[repos]]\nlocation = \"{repo}\"\nstored_size = 1\n",
                "ab".repeat(32)
            ),
        )
        .unwrap();
    }
    host.attacker.chown(&root);
    for d in [&root, &dir] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o777)).unwrap();
    }
    let before = Host::snapshot(&root);
    for name in &names {
        let pg_wal_name = format!("pg_wal/{name}");
        let ran = host.uxwal(
            "uxwal-archive",
            &["-v", "--repo", &repo, "--parallel", "4", &pg_wal_name, name],
        );
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert!(
            ran.stderr.contains("not pushing ahead")
                && ran.stderr.contains(&root.display().to_string()),
            "{}",
            ran.stderr
        );
        assert!(
            !common::pg::files_in_repo(&host.repo, &|n| n.starts_with(name.as_str())).is_empty(),
            "{name} is really in the repository"
        );
    }
    assert_eq!(
        Host::snapshot(&root),
        before,
        "the attacker's root is untouched"
    );
    assert!(Host::owned_by(&root, &host.db).is_empty());

    // Swapped for a symbolic link to a private directory of the database user's:
    // refused too, and nothing in it changes.
    fs::remove_dir_all(&root).unwrap();
    let victim = host.base.path().join("victim");
    fs::create_dir(&victim).unwrap();
    fs::write(victim.join(format!("{}.lock", names[0])), b"").unwrap();
    host.db.chown(&victim);
    fs::set_permissions(&victim, fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(&victim, &root).unwrap();
    host.attacker.chown(&root);
    let victim_before = Host::snapshot(&victim);
    let name = seg(5, MIB);
    fs::write(
        host.data.join("pg_wal").join(&name),
        segment(&name, MIB, SYSID, 5),
    )
    .unwrap();
    host.db.chown(&host.data);
    let pg_wal_name = format!("pg_wal/{name}");
    let ran = host.uxwal(
        "uxwal-archive",
        &["--repo", &repo, "--parallel", "4", &pg_wal_name, &name],
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert!(ran.stderr.contains("symbolic link"), "{}", ran.stderr);
    assert_eq!(Host::snapshot(&victim), victim_before);
}

#[test]
fn the_test_users_are_distinct() {
    let (db, attacker) = (users::database(), users::attacker());
    assert_ne!(db.uid, attacker.uid);
    assert_ne!(db.uid, 0);
    assert_ne!(attacker.uid, 0);
    let out = Command::new("id").arg(users::ATTACKER).output().unwrap();
    assert!(out.status.success());
}

/// Whether a worker holds a lock in a spool directory under `root` now (no wait).
fn worker_running(root: &Path) -> bool {
    fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .any(|entry| {
            fs::File::options()
                .read(true)
                .write(true)
                .open(entry.path().join(".worker.lock"))
                .is_ok_and(|lock| match lock.try_lock() {
                    Ok(()) => {
                        let _ = lock.unlock();
                        false
                    }
                    Err(_) => true,
                })
        })
}
