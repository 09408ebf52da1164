//! `uxwal-restore --prefetch N`: segments fetched ahead into the spool are used
//! only once verified and only for their own archive and timeline; damaged ones
//! are refetched; history files never come from the spool; a busy or stuck
//! worker never holds up a restore; and a real point-in-time recovery across a
//! timeline switch restores exactly the source data with prefetch on.
//!
//! The detached worker is waited for through its lock: the restore that starts a
//! worker takes `.worker.lock` and hands it to the worker, so once a restore has
//! returned, taking that lock means no worker of it is running any more.

mod common;

use common::pg::{Cluster, Recovery, RestoreOptions};
use common::pitr::{archive_history, start_s3_primary, STATE_SQL};
use common::servers::S3;
use common::{
    poll_until, require_root, segment, wait_for_worker, wait_for_workers, Ran, Site, WorkersJoined,
    MIB, RESTORE, SYSID,
};
use sha2::{Digest, Sha256};
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use uxwal::commands::restore::prefetch_spool_dir;
use uxwal::repo::Identity;
use uxwal::wal::name::SegmentName;

fn seg(n: u64) -> String {
    seg_on(1, n)
}

fn seg_on(timeline: u32, n: u64) -> String {
    SegmentName::from_segment_number(timeline, n, MIB).to_string()
}

fn spool_root(site: &Site) -> PathBuf {
    site.dir.path().join("spool")
}

/// The spool directory of the archive at `site` with system identifier `sysid`
/// (1 MiB segments), under `site`'s spool root.
fn spool_dir(site: &Site, sysid: u64) -> PathBuf {
    spool_dir_of(site, site, sysid)
}

/// The spool directory of the archive at `archive`, under `site`'s spool root.
fn spool_dir_of(site: &Site, archive: &Site, sysid: u64) -> PathBuf {
    prefetch_spool_dir(&spool_root(site), &archive.location, &identity(sysid))
}

/// The identity of an archive of cluster `sysid` with 1 MiB segments.
fn identity(sysid: u64) -> Identity {
    Identity {
        system_identifier: sysid,
        segment_size: MIB,
        page_magic: 0xD110,
    }
}

/// Archives segments `numbers` of timeline 1 (1 MiB, cluster `sysid`); returns their bytes.
fn archive_segments(
    site: &Site,
    numbers: std::ops::RangeInclusive<u64>,
    sysid: u64,
) -> Vec<Vec<u8>> {
    numbers
        .map(|n| {
            let name = seg(n);
            let bytes = segment(&name, MIB, sysid, n);
            site.write_wal(&name, &bytes);
            let ran = site.archive(&name, "");
            assert_eq!(ran.code, 0, "archive {name}: {}", ran.stderr);
            bytes
        })
        .collect()
}

/// `restore_command` with prefetch `depth` (`None`: the default) into this site's spool.
fn restore(site: &Site, name: &str, depth: Option<u64>) -> Ran {
    let depth = depth.map(|n| format!("--prefetch {n}")).unwrap_or_default();
    site.restore(
        name,
        &format!("-v {depth} --spool-dir {}", spool_root(site).display()),
    )
}

/// Restores `name`, which must succeed with `expected`; returns whether the
/// spool served it.
fn restore_ok(site: &Site, name: &str, depth: Option<u64>, expected: &[u8]) -> bool {
    let ran = restore(site, name, depth);
    assert_eq!(ran.code, 0, "restore {name}: {}", ran.stderr);
    assert!(
        site.restored().as_deref() == Some(expected),
        "{name}: restored bytes differ"
    );
    let from_spool = ran.stderr.contains("from the prefetch spool");
    assert_verbose_line(
        &ran.stderr,
        name,
        &site.location,
        from_spool,
        expected.len(),
    );
    from_spool
}

/// With `-v`, a restore says in one line where the file came from, its bytes,
/// the bytes read from the repository (none from the spool) and the time.
fn assert_verbose_line(stderr: &str, name: &str, location: &str, from_spool: bool, bytes: usize) {
    let prefix = format!("uxwal-restore: {name}: restored from ");
    let lines: Vec<&str> = stderr.lines().filter(|l| l.starts_with(&prefix)).collect();
    assert_eq!(lines.len(), 1, "one restore line: {stderr}");
    let source = if from_spool {
        format!("the prefetch spool of {location}")
    } else {
        location.to_string()
    };
    let rest = lines[0]
        .strip_prefix(&format!("{prefix}{source}: {bytes} bytes ("))
        .unwrap_or_else(|| panic!("source or bytes: {}", lines[0]));
    let (stored, ms) = rest
        .split_once(" stored) in ")
        .unwrap_or_else(|| panic!("stored bytes: {}", lines[0]));
    let stored: u64 = stored.parse().unwrap();
    assert_eq!(stored == 0, from_spool, "{}", lines[0]);
    let ms = ms
        .strip_suffix(" ms")
        .unwrap_or_else(|| panic!("{}", lines[0]));
    ms.parse::<u64>().unwrap();
}

/// The segment names in a spool directory, sorted.
fn spooled(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.len() == 24 || n.ends_with(".history"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

fn names(numbers: std::ops::RangeInclusive<u64>) -> Vec<String> {
    numbers.map(seg).collect()
}

/// The stored object of `name` in a local repository.
/// The original bytes of a spooled entry: the segment, uncompressed, followed
/// by a trailer with its SHA-256 and size, which must be right.
fn decoded(path: &Path) -> Vec<u8> {
    let mut bytes = fs::read(path).unwrap();
    let trailer = bytes.split_off(bytes.len() - uxwal::commands::restore::ENTRY_TRAILER_LEN);
    assert_eq!(&trailer[..8], b"UXWALSPL", "{}", path.display());
    assert_eq!(
        &trailer[8..40],
        &Sha256::digest(&bytes)[..],
        "{}",
        path.display()
    );
    assert_eq!(trailer[40..], (bytes.len() as u64).to_le_bytes());
    bytes
}

/// A well-formed spool entry holding `segment` (see [`decoded`]).
fn entry_of(segment: &[u8]) -> Vec<u8> {
    let mut entry = segment.to_vec();
    entry.extend_from_slice(b"UXWALSPL");
    entry.extend_from_slice(&Sha256::digest(segment));
    entry.extend_from_slice(&(segment.len() as u64).to_le_bytes());
    entry
}

fn stored(site: &Site, name: &str) -> Vec<u8> {
    fs::read(&site.archived(name)[0]).unwrap()
}

fn private_dir(dir: &Path) {
    fs::create_dir_all(dir).unwrap();
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).unwrap();
    // The spool root is checked like its directories (issue 12).
    let root = dir.parent().unwrap();
    fs::set_permissions(root, fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn restore_fills_the_spool_ahead_and_takes_segments_from_it() {
    let site = Site::new();
    let _joined = WorkersJoined(spool_root(&site));
    let originals = archive_segments(&site, 1..=8, SYSID);
    let dir = spool_dir(&site, SYSID);

    assert!(!restore_ok(&site, &seg(1), Some(3), &originals[0]));
    wait_for_worker(&dir).unwrap();
    assert_eq!(spooled(&dir), names(2..=4), "the window after segment 1");
    for n in 2..=4 {
        assert_eq!(
            &decoded(&dir.join(seg(n)))[..],
            &originals[n as usize - 1][..],
            "an entry is the segment, decoded ahead and checked on use"
        );
    }

    let entry_inode = fs::metadata(dir.join(seg(2))).unwrap().ino();
    assert!(
        restore_ok(&site, &seg(2), Some(3), &originals[1]),
        "segment 2 comes from the spool"
    );
    assert_eq!(
        fs::metadata(site.wal("RECOVERYXLOG")).unwrap().ino(),
        entry_inode,
        "on one filesystem the checked entry is renamed into place, not copied"
    );
    wait_for_worker(&dir).unwrap();
    assert_eq!(
        spooled(&dir),
        names(3..=5),
        "consumed, and the window moved"
    );

    // A jump ahead (as after a timeline switch) makes the old entries stale;
    // the archive ends at 8, so nothing is fetched after it.
    assert!(!restore_ok(&site, &seg(8), Some(3), &originals[7]));
    wait_for_worker(&dir).unwrap();
    assert_eq!(spooled(&dir), Vec::<String>::new());

    // Prefetch is off by default for a local directory.
    let default = restore(&site, &seg(5), None);
    assert_eq!(default.code, 0, "{}", default.stderr);
    wait_for_worker(&dir).unwrap();
    assert_eq!(spooled(&dir), Vec::<String>::new());

    // The window stops at the end of the archive.
    assert!(!restore_ok(&site, &seg(6), Some(5), &originals[5]));
    wait_for_worker(&dir).unwrap();
    assert_eq!(spooled(&dir), names(7..=8));
    let tmp_left: Vec<_> = fs::read_dir(dir.join("tmp"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != ".lock")
        .collect();
    assert!(tmp_left.is_empty(), "staging files left: {tmp_left:?}");
}

/// The processes that have `path` open (the worker keeps its lock file open).
fn holders(path: &Path) -> Vec<i32> {
    let path = fs::canonicalize(path).unwrap();
    fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|proc| {
            let pid: i32 = proc.file_name().to_str()?.parse().ok()?;
            let fds = fs::read_dir(proc.path().join("fd")).ok()?;
            fds.flatten()
                .any(|fd| fs::read_link(fd.path()).is_ok_and(|target| target == path))
                .then_some(pid)
        })
        .collect()
}

#[test]
fn a_worker_with_a_full_window_lingers_and_serves_the_next_positions() {
    let mut site = Site::new();
    site.env.push(("UXWAL_PREFETCH_LINGER".into(), "60".into()));
    let _joined = WorkersJoined(spool_root(&site));
    let originals = archive_segments(&site, 1..=6, SYSID);
    let dir = spool_dir(&site, SYSID);

    assert!(!restore_ok(&site, &seg(1), Some(2), &originals[0]));
    poll_until("the window after segment 1", || {
        (spooled(&dir) == names(2..=3))
            .then_some(())
            .ok_or_else(|| format!("{:?}", spooled(&dir)))
    });
    let lock = dir.join(".worker.lock");
    let worker = match holders(&lock)[..] {
        [pid] => pid,
        ref other => panic!("one worker lingers, holding its lock: {other:?}"),
    };

    for n in 2..=3 {
        assert!(restore_ok(
            &site,
            &seg(n),
            Some(2),
            &originals[n as usize - 1]
        ));
        poll_until("the window to move", || {
            (spooled(&dir)
                == names(n + 1..=n + 2)
                    .into_iter()
                    .filter(|s| *s <= seg(6))
                    .collect::<Vec<_>>())
            .then_some(())
            .ok_or_else(|| format!("{:?}", spooled(&dir)))
        });
        assert_eq!(
            holders(&lock),
            [worker],
            "the same worker fetched for the new position"
        );
    }
    // A lingering worker stops at SIGTERM.
    // SAFETY: kill(2) on a process of this test.
    assert_eq!(unsafe { libc::kill(worker, libc::SIGTERM) }, 0);
    wait_for_worker(&dir).unwrap();
}

#[test]
fn a_repository_and_spool_given_relative_to_the_data_directory_reach_the_worker() {
    // The worker runs in the spool directory, not in the data directory.
    let mut site = Site::new();
    site.location = "../repo".into();
    let _joined = WorkersJoined(spool_root(&site));
    let originals = archive_segments(&site, 1..=3, SYSID);
    let restore = |n: u64| {
        let ran = site.restore(&seg(n), "-v --prefetch 2 --spool-dir ../spool");
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert_eq!(
            site.restored().as_deref(),
            Some(&originals[n as usize - 1][..])
        );
        ran
    };
    restore(1);
    let dir = prefetch_spool_dir(
        &spool_root(&site),
        // The location as the call resolved it.
        &site.data.join("../repo").display().to_string(),
        &identity(SYSID),
    );
    wait_for_worker(&dir).unwrap();
    assert_eq!(spooled(&dir), names(2..=3));
    let ran = restore(2);
    assert!(
        ran.stderr.contains("from the prefetch spool"),
        "{}",
        ran.stderr
    );
}

#[test]
fn a_spool_on_another_filesystem_is_copied_from() {
    let site = Site::new();
    let device = |path: &Path| fs::metadata(path).unwrap().dev();
    // /dev/shm is a tmpfs on Linux; the test directories are not. Where there is
    // no such /dev/shm, a tmpfs of the test's own (which needs root).
    let shm = tempfile::tempdir_in("/dev/shm")
        .ok()
        .filter(|shm| device(shm.path()) != device(&site.data));
    let _own_tmpfs;
    let root = match &shm {
        Some(shm) => shm.path().join("spool"),
        None => {
            require_root(
                "/dev/shm is missing or on the data directory's filesystem, \
                 and mounting another filesystem needs root",
            );
            let at = site.dir.path().join("other-fs");
            _own_tmpfs = common::Tmpfs::mount(&at, "16m");
            at.join("spool")
        }
    };
    let _joined = WorkersJoined(root.clone());
    let originals = archive_segments(&site, 1..=3, SYSID);
    let restore = |n: u64| {
        let ran = site.restore(
            &seg(n),
            &format!("-v --prefetch 2 --spool-dir {}", root.display()),
        );
        assert_eq!(ran.code, 0, "{}", ran.stderr);
        assert_eq!(
            site.restored().as_deref(),
            Some(&originals[n as usize - 1][..])
        );
        ran
    };
    restore(1);
    assert_ne!(
        device(&root),
        device(&site.data),
        "the spool is on another filesystem than the destination"
    );
    let dir = prefetch_spool_dir(&root, &site.location, &identity(SYSID));
    wait_for_worker(&dir).unwrap();
    assert_eq!(spooled(&dir), names(2..=3));
    let ran = restore(2);
    assert!(
        ran.stderr.contains("from the prefetch spool"),
        "{}",
        ran.stderr
    );
    wait_for_worker(&dir).unwrap();
    assert!(!dir.join(seg(2)).exists(), "the entry was used up");
    let left: Vec<_> = fs::read_dir(site.data.join("pg_wal"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().contains("uxwal-tmp"))
        .collect();
    assert!(
        left.is_empty(),
        "no staging file left beside the destination: {left:?}"
    );
}

#[test]
fn a_damaged_spooled_segment_is_removed_and_fetched_from_the_archive() {
    let site = Site::new();
    let _joined = WorkersJoined(spool_root(&site));
    let originals = archive_segments(&site, 1..=6, SYSID);
    let dir = spool_dir(&site, SYSID);
    assert!(!restore_ok(&site, &seg(1), Some(4), &originals[0]));
    wait_for_worker(&dir).unwrap();
    assert_eq!(spooled(&dir), names(2..=5));

    let flipped = dir.join(seg(2));
    let mut bytes = fs::read(&flipped).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    fs::write(&flipped, &bytes).unwrap();
    let truncated = dir.join(seg(3));
    let bytes = fs::read(&truncated).unwrap();
    fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    for (n, what) in [(2, "flipped byte"), (3, "truncated")] {
        let ran = restore(&site, &seg(n), Some(4));
        assert_eq!(ran.code, 0, "{what}: {}", ran.stderr);
        assert_eq!(
            site.restored().as_deref(),
            Some(&originals[n as usize - 1][..]),
            "{what}"
        );
        assert!(
            ran.stderr.contains(&format!("spooled copy of {}", seg(n)))
                && ran.stderr.contains("unusable"),
            "{what}: the warning names the file: {}",
            ran.stderr
        );
        assert!(!ran.stderr.contains("from the prefetch spool"), "{what}");
        wait_for_worker(&dir).unwrap();
        assert!(
            !dir.join(seg(n)).exists(),
            "{what}: the damaged entry is gone"
        );
    }
    // The undamaged ones are still used.
    assert!(restore_ok(&site, &seg(4), Some(4), &originals[3]));
}

#[test]
fn history_files_never_come_from_the_spool() {
    let site = Site::new();
    let _joined = WorkersJoined(spool_root(&site));
    archive_segments(&site, 1..=2, SYSID);
    site.write_wal(
        "00000002.history",
        b"1\t0/2000000\tno recovery target specified\n",
    );
    assert_eq!(site.archive("00000002.history", "").code, 0);

    // Valid stored objects of other history files, planted in the spool.
    let other = Site::new();
    for (name, body) in [
        ("00000002.history", &b"1\t0/9000000\tsomething else\n"[..]),
        (
            "00000003.history",
            &b"1\t0/2000000\tx\n2\t0/3000000\ty\n"[..],
        ),
    ] {
        other.write_wal(name, body);
        assert_eq!(other.archive(name, "").code, 0);
    }
    let dir = spool_dir(&site, SYSID);
    private_dir(&dir);
    for name in ["00000002.history", "00000003.history"] {
        fs::write(dir.join(name), stored(&other, name)).unwrap();
    }

    let ran = restore(&site, "00000002.history", Some(4));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        site.restored().unwrap(),
        b"1\t0/2000000\tno recovery target specified\n",
        "the archive's history file, not the spool's"
    );
    let ran = restore(&site, "00000003.history", Some(4));
    assert_eq!(
        ran.code, 1,
        "not in the archive, whatever the spool holds: {}",
        ran.stderr
    );
    wait_for_worker(&dir).unwrap();
}

#[test]
fn a_spooled_segment_of_another_archive_is_never_used() {
    let site = Site::new();
    let _joined = WorkersJoined(spool_root(&site));
    let originals = archive_segments(&site, 1..=3, SYSID);
    let foreign = Site::new();
    let theirs_originals = archive_segments(&foreign, 1..=5, 42);

    // Another cluster's segments of the same names, as well-formed entries (the
    // right SHA-256 of what they hold), in this archive's spool directory and in
    // the other archive's.
    let mine = spool_dir(&site, SYSID);
    let theirs = spool_dir_of(&site, &foreign, 42);
    // A first call caches this archive's identity (it reads it beside its own
    // fetch, so it looks at no entry): the next calls find the spool at once.
    assert!(!restore_ok(&site, &seg(1), Some(2), &originals[0]));
    wait_for_worker(&mine).unwrap();
    private_dir(&mine);
    private_dir(&theirs);
    fs::write(mine.join(seg(2)), entry_of(&theirs_originals[1])).unwrap();
    fs::write(mine.join(seg(4)), entry_of(&theirs_originals[3])).unwrap();
    fs::write(theirs.join(seg(5)), entry_of(&theirs_originals[4])).unwrap();

    let ran = restore(&site, &seg(2), Some(2));
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(site.restored().as_deref(), Some(&originals[1][..]));
    assert!(ran.stderr.contains("database system 42"), "{}", ran.stderr);
    wait_for_worker(&mine).unwrap();

    let ran = restore(&site, &seg(4), Some(2));
    assert_eq!(ran.code, 1, "not in this archive: {}", ran.stderr);
    assert!(!mine.join(seg(4)).exists(), "the foreign entry was removed");
    let ran = restore(&site, &seg(5), Some(2));
    assert_eq!(
        ran.code, 1,
        "another archive's spool is not looked at: {}",
        ran.stderr
    );
    assert!(theirs.join(seg(5)).exists());
    wait_for_worker(&mine).unwrap();
}

#[test]
fn another_archive_of_the_same_cluster_has_its_own_spool() {
    // Two archives with one system identifier and different segments under the
    // same names (as clusters cloned from one base backup write), restored
    // with one spool root: each restore gets its own archive's bytes.
    let site = Site::new();
    let _joined = WorkersJoined(spool_root(&site));
    let originals = archive_segments(&site, 1..=4, SYSID);
    let clone = Site::new();
    let clone_segments: Vec<Vec<u8>> = (1..=4)
        .map(|n| {
            let bytes = segment(&seg(n), MIB, SYSID, 100 + n);
            clone.write_wal(&seg(n), &bytes);
            assert_eq!(clone.archive(&seg(n), "").code, 0);
            bytes
        })
        .collect();
    assert_ne!(clone_segments[1], originals[1]);
    // `clone` restores with `site`'s spool root.
    let shared_root = format!(
        "-v --prefetch 3 --spool-dir {}",
        spool_root(&site).display()
    );
    let from_clone = clone.restore(&seg(1), &shared_root);
    assert_eq!(from_clone.code, 0, "{}", from_clone.stderr);
    wait_for_worker(&spool_dir_of(&site, &clone, SYSID)).unwrap();
    assert_eq!(spooled(&spool_dir_of(&site, &clone, SYSID)), names(2..=4));

    assert!(
        !restore_ok(&site, &seg(2), Some(3), &originals[1]),
        "not the clone's spooled segment 2"
    );
    wait_for_worker(&spool_dir(&site, SYSID)).unwrap();
    let from_clone = clone.restore(&seg(2), &shared_root);
    assert_eq!(from_clone.code, 0, "{}", from_clone.stderr);
    assert_eq!(clone.restored().as_deref(), Some(&clone_segments[1][..]));
    assert!(from_clone.stderr.contains("from the prefetch spool"));
    wait_for_worker(&spool_dir_of(&site, &clone, SYSID)).unwrap();
}

#[test]
fn a_busy_worker_never_holds_up_a_restore() {
    let site = std::sync::Arc::new(Site::new());
    let _joined = WorkersJoined(spool_root(&site));
    let originals = archive_segments(&site, 1..=5, SYSID);
    let dir = spool_dir(&site, SYSID);
    private_dir(&dir);
    // A worker that holds the lock and does nothing (stuck, or frozen).
    let lock = File::create(dir.join(".worker.lock")).unwrap();
    lock.lock().unwrap();
    // The lock stays held until after the restore has returned: a restore that
    // waited for the worker would never return (`finishes` turns that hang into
    // a failure).
    let s = site.clone();
    let ran = common::finishes("restore with a stuck worker", move || {
        restore(&s, &seg(1), Some(3))
    });
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(site.restored().as_deref(), Some(&originals[0][..]));
    assert_eq!(
        spooled(&dir),
        Vec::<String>::new(),
        "no second worker started"
    );
    assert_eq!(
        fs::read_to_string(dir.join("want")).unwrap().trim(),
        seg(1),
        "the running worker is told the new position"
    );
    drop(lock);

    assert!(!restore_ok(&site, &seg(2), Some(3), &originals[1]));
    wait_for_worker(&dir).unwrap();
    assert_eq!(spooled(&dir), names(3..=5));
}

/// Whether `pid` has a handler installed for SIGTERM (`SigCgt` in /proc).
fn catches_sigterm(pid: u32) -> Result<(), String> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).map_err(|e| e.to_string())?;
    let mask = status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|m| u64::from_str_radix(m.trim(), 16).ok())
        .ok_or("no SigCgt")?;
    if mask & (1 << (libc::SIGTERM - 1)) != 0 {
        Ok(())
    } else {
        Err(format!("SigCgt {mask:#x}"))
    }
}

#[test]
fn prefetch_from_s3_and_a_worker_stuck_on_storage_stops_at_sigterm() {
    let s3 = S3::start("walbucket");
    let site = s3.site("prefetch");
    let _joined = WorkersJoined(spool_root(&site));
    let originals = archive_segments(&site, 1..=6, SYSID);
    let dir = spool_dir(&site, SYSID);

    // Object storage: prefetch is on by default (8), and the archive ends at 6.
    assert!(!restore_ok(&site, &seg(1), None, &originals[0]));
    wait_for_worker(&dir).unwrap();
    assert_eq!(spooled(&dir), names(2..=6));
    for n in 2..=3 {
        assert!(
            restore_ok(&site, &seg(n), None, &originals[n as usize - 1]),
            "segment {n}"
        );
        wait_for_worker(&dir).unwrap();
    }

    // A worker waiting on a storage that does not answer stops at SIGTERM, not
    // at its deadline, and publishes nothing half written. That it stopped for
    // the signal: it ended while the storage was still frozen (thawed only
    // below), with exit 0 and the outcome `Stopped`; the deadline ends a worker
    // with exit 1 and an error naming the deadline.
    s3.server.freeze();
    let worker = Command::new(RESTORE)
        .arg("--prefetch-worker")
        .args([
            "--repo",
            &site.location,
            "--prefetch",
            "4",
            "--deadline",
            "300",
            "--verbose",
        ])
        .arg("--spool-dir")
        .arg(spool_root(&site))
        .envs(site.env.iter().map(|(k, v)| (k, v)))
        .env_remove("UXWAL_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    poll_until("the worker to install its signal handler", || {
        catches_sigterm(worker.id())
    });
    common::signal(worker.id(), "TERM");
    let out = common::finishes("the worker stopped by SIGTERM", move || {
        worker.wait_with_output().unwrap()
    });
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "a clean stop: {stderr}");
    assert!(
        stderr.contains("Stopped"),
        "stopped by the signal: {stderr}"
    );
    assert!(
        !stderr.contains("deadline"),
        "not by the deadline: {stderr}"
    );
    s3.server.thaw();

    // What is in the spool is complete: every entry verifies and is used.
    for n in 4..=6 {
        assert!(
            restore_ok(&site, &seg(n), None, &originals[n as usize - 1]),
            "segment {n}"
        );
        wait_for_worker(&dir).unwrap();
    }
}

/// Makes `cluster`'s restore_command prefetch 4 segments into its spool and say
/// where each segment came from (`-v`). Dropping the cluster waits for its
/// prefetch workers.
fn with_prefetch(cluster: &mut Cluster) {
    let command = cluster
        .restore_command()
        .replace(" %f %p", " -v --prefetch 4 %f %p");
    cluster.append_conf(&format!("restore_command = '{command}'"));
}

/// How many segments the server log says came from the spool.
fn served_from_spool(cluster: &Cluster) -> usize {
    cluster
        .log_tail(1_000_000)
        .lines()
        .filter(|l| l.contains("from the prefetch spool"))
        .count()
}

/// Fails the test when a prefetch worker of `cluster` still runs.
fn assert_no_worker_left(cluster: &Cluster) {
    if let Err(running) = wait_for_workers(&cluster.spool_dir()) {
        panic!(
            "a prefetch worker of {} is still running: {running}",
            cluster.name()
        );
    }
}

#[test]
fn point_in_time_recovery_across_a_timeline_switch_with_prefetch() {
    let (shared, repo) = common::pg::shared_repo("uxwal-prefetch.");
    let backup = shared.path().join("base");

    let mut primary = Cluster::archiving_primary("pfprimary", 1, &repo);
    let archived = archive_history(
        &mut primary,
        2,
        &backup,
        "uxwal_prefetch",
        |primary| {
            primary.pgbench(&["-n", "-c", "2", "-t", "200"]);
            // Several megabytes of WAL: many 1 MiB segments to prefetch.
            primary.psql(
                "insert into uxwal_marker select 'bulk' || g from generate_series(1, 40000) g",
            );
            primary.psql("insert into uxwal_marker values ('before_target')");
        },
        |primary| {
            primary.pgbench(&["-n", "-c", "2", "-t", "200"]);
            primary.psql("insert into uxwal_marker values ('after_target')");
        },
    );

    // Point-in-time recovery to the restore point, promoted onto timeline 2.
    let mut pitr = archived.recover_to_target("pfpitr", &repo, true, with_prefetch);
    assert_eq!(pitr.current_timeline(), 2);
    let from_spool = served_from_spool(&pitr);
    assert!(
        from_spool > 0,
        "no segment came from the spool:\n{}",
        pitr.log_tail(60)
    );
    pitr.psql("insert into uxwal_marker values ('timeline2')");
    pitr.pgbench(&["-n", "-c", "2", "-t", "200"]);
    pitr.psql("insert into uxwal_marker select 'tl2_' || g from generate_series(1, 40000) g");
    let tl2_state = pitr.psql(STATE_SQL);
    let last_tl2 = pitr.switch_wal();
    pitr.wait_for_archived(&last_tl2);
    assert_eq!(pitr.archive_failures(), 0);
    pitr.stop();

    // Again from the base backup, following timeline 1 into timeline 2 to its end.
    let mut latest = Cluster::from_backup(
        "pflatest",
        &backup,
        &RestoreOptions {
            repo: repo.clone(),
            recovery: Recovery::promote(None, Some("latest")),
            archive: true,
        },
    );
    with_prefetch(&mut latest);
    latest.start();
    latest.wait_for("select pg_is_in_recovery()", "f");
    assert_eq!(
        latest.psql(STATE_SQL),
        tl2_state,
        "all of timeline 2, through the switch"
    );
    assert!(latest.current_timeline() >= 3);
    let log = latest.log_tail(1_000_000);
    assert!(
        log.lines().any(|l| l.contains("uxwal-restore: 00000002")
            && l.contains(": restored from the prefetch spool")),
        "timeline-2 segments came from the spool too:\n{}",
        latest.log_tail(60)
    );
    latest.stop();
    eprintln!("{from_spool} segments from the spool in the first recovery");
    assert_no_worker_left(&pitr);
    assert_no_worker_left(&latest);
}

#[test]
fn point_in_time_recovery_from_s3_with_the_default_prefetch() {
    let s3 = S3::start("walbucket");
    let shared = common::pg::pg_tempdir("uxwal-prefetch-s3.");
    // Object storage, no `prefetch` key: the default depth (8).
    let (mut primary, args) =
        start_s3_primary("pfs3primary", &s3, shared.path(), &[&s3.location("pg")]);
    let archived = archive_history(
        &mut primary,
        1,
        &shared.path().join("base"),
        "uxwal_prefetch_s3",
        |primary| {
            primary.psql(
                "insert into uxwal_marker select 'bulk' || g from generate_series(1, 40000) g",
            );
            primary.pgbench(&["-n", "-c", "2", "-t", "100"]);
        },
        |primary| {
            primary.psql("insert into uxwal_marker values ('after_target')");
        },
    );

    // The repository comes from the configuration file, not `unused`.
    let mut pitr =
        archived.recover_to_target("pfs3pitr", &shared.path().join("unused"), false, |pitr| {
            pitr.set_repo_args(&args);
            let command = pitr.restore_command().replace(" %f %p", " -v %f %p");
            pitr.append_conf(&format!("restore_command = '{command}'"));
        });
    let from_spool = served_from_spool(&pitr);
    assert!(
        from_spool > 0,
        "no segment came from the spool:\n{}",
        pitr.log_tail(60)
    );
    eprintln!("{from_spool} segments from the spool");
    pitr.stop();
    assert_no_worker_left(&pitr);
}
