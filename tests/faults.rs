//! Fault campaign (issue 13): an error (EIO, ENOSPC) or a SIGKILL injected by
//! strace at each write-path system call of an archive and of a restore, one
//! call at a time. After each:
//!
//! - archive: exit 0 only with the file complete in the repository; on any
//!   failure the archived name is absent or complete (never partial); a clean
//!   retry exits 0, restores the exact bytes, and leaves no staging file;
//! - restore during a point-in-time recovery: exit 0 with the exact bytes at
//!   the destination, or a status above 125 (a killed run: a signal) with
//!   nothing at the destination; never 1..=125, which the database would read
//!   as "not found" and end recovery early.
//!
//! The system calls and how often each is made come from a traced clean run,
//! so the campaign follows the code as it changes.
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::process::Command;

use common::{segment, Site, MIB, SYSID};

const SEGMENT: &str = "000000010000000000000003";

/// The calls that change files, or open them to.
const WRITE_PATH: &[&str] = &[
    "openat",
    "write",
    "pwrite64",
    "fsync",
    "fdatasync",
    "linkat",
    "link",
    "renameat2",
    "renameat",
    "rename",
    "mkdirat",
    "mkdir",
    "unlinkat",
    "ftruncate",
];

/// At most this many occurrences of one call are faulted (the first ones).
const MAX_PER_CALL: usize = 40;

fn strace_works() -> bool {
    Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=none", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

fn content() -> Vec<u8> {
    segment(SEGMENT, MIB, SYSID, 7)
}

/// A site with the segment in `pg_wal`, and `archived` already in its repository.
fn site(archived: bool) -> Site {
    let site = Site::new();
    site.write_wal(SEGMENT, &content());
    if archived {
        let ran = site.archive(SEGMENT, "");
        assert_eq!(ran.code, 0, "{}", ran.stderr);
    }
    site
}

/// How often a clean run of `command` (a `Site::sh` template) makes each
/// write-path call.
fn calls_of(site: &Site, command: &str, p: &str) -> BTreeMap<String, usize> {
    let trace = site.dir.path().join("trace");
    let ran = site.sh(
        &format!(
            "strace -f -qq -o {} -e trace={} {command}",
            trace.display(),
            WRITE_PATH.join(",")
        ),
        p,
        SEGMENT,
    );
    assert_eq!(ran.code, 0, "the clean traced run: {}", ran.stderr);
    let mut counts = BTreeMap::new();
    for line in fs::read_to_string(&trace).unwrap().lines() {
        if line.contains("resumed>") {
            continue;
        }
        // "<pid> <call>(<args>…"
        let call = line
            .split_once(' ')
            .and_then(|(_, rest)| rest.split_once('('))
            .map(|(call, _)| call.trim().to_string());
        if let Some(call) = call.filter(|c| WRITE_PATH.contains(&c.as_str())) {
            *counts.entry(call).or_insert(0) += 1;
        }
    }
    fs::remove_file(&trace).unwrap();
    assert!(counts.contains_key("write"), "{counts:?}");
    counts
}

/// The faults to inject into occurrence `n` of `call`.
fn faults(call: &str, n: usize) -> Vec<String> {
    ["error=EIO", "error=ENOSPC", "signal=KILL"]
        .iter()
        .map(|f| format!("-e inject={call}:{f}:when={n}"))
        .collect()
}

/// Every fault at each of the first [`MAX_PER_CALL`] occurrences of each call;
/// with `persistent`, also an EIO at each of the last [`PERSISTENT_LAST`]
/// occurrences and every one after it (a disk that stays broken: retries
/// cannot help).
fn cases(counts: &BTreeMap<String, usize>, persistent: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (call, &count) in counts {
        for n in 1..=count.min(MAX_PER_CALL) {
            for fault in faults(call, n) {
                out.push((format!("{call} #{n} {fault}"), fault));
            }
        }
        if persistent {
            for n in count.saturating_sub(PERSISTENT_LAST).max(1)..=count {
                let fault = format!("-e inject={call}:error=EIO:when={n}+");
                out.push((format!("{call} #{n} and later {fault}"), fault));
            }
        }
    }
    out
}

/// How many of the last occurrences of a call get a persistent fault.
const PERSISTENT_LAST: usize = 8;

#[test]
fn an_archive_fails_cleanly_at_every_write_path_call() {
    assert!(
        strace_works(),
        "this test injects faults with strace (scripts/install-deps installs it)"
    );
    let archive = "\"$ARCHIVE\" --repo \"$REPO\" %p %f";
    let p = format!("pg_wal/{SEGMENT}");
    let counts = calls_of(&site(false), archive, &p);
    let cases = cases(&counts, false);
    eprintln!("archive: {} faults over {counts:?}", cases.len());
    let mut outcomes: BTreeMap<i32, usize> = BTreeMap::new();
    for (what, fault) in &cases {
        let site = site(false);
        let ran = site.sh(
            &format!("strace -f -qq -o /dev/null {fault} {archive}"),
            &p,
            SEGMENT,
        );
        *outcomes.entry(ran.code).or_insert(0) += 1;
        let stored = site.archived(SEGMENT);
        if ran.code == 0 {
            assert_eq!(stored.len(), 1, "{what}: exit 0 without the file archived");
        }
        // Whatever is stored under the name is the whole file: it restores.
        if !stored.is_empty() {
            let r = site.restore(SEGMENT, "");
            assert_eq!(
                r.code, 0,
                "{what}: an archived name that does not restore: {}",
                r.stderr
            );
            assert_eq!(site.restored().unwrap(), content(), "{what}");
            fs::remove_file(site.wal("RECOVERYXLOG")).unwrap();
        }
        // A clean retry succeeds and leaves the repository clean.
        let retry = site.archive(SEGMENT, "");
        assert_eq!(retry.code, 0, "{what}: the retry: {}", retry.stderr);
        assert!(
            site.staging_files().is_empty(),
            "{what}: {:?}",
            site.staging_files()
        );
        let r = site.restore(SEGMENT, "");
        assert_eq!(r.code, 0, "{what}: {}", r.stderr);
        assert_eq!(site.restored().unwrap(), content(), "{what}");
    }
    eprintln!("archive exit statuses under faults: {outcomes:?}");
}

#[test]
fn a_restore_in_recovery_never_says_not_found_under_a_fault() {
    assert!(
        strace_works(),
        "this test injects faults with strace (scripts/install-deps installs it)"
    );
    let restore = "\"$RESTORE\" --repo \"$REPO\" %f %p";
    let p = "pg_wal/RECOVERYXLOG";
    let traced = site(true);
    fs::write(traced.data.join("recovery.signal"), "").unwrap();
    let counts = calls_of(&traced, restore, p);
    let cases = cases(&counts, true);
    eprintln!("restore: {} faults over {counts:?}", cases.len());
    let site = site(true);
    fs::write(site.data.join("recovery.signal"), "").unwrap();
    let mut outcomes: BTreeMap<i32, usize> = BTreeMap::new();
    for (what, fault) in &cases {
        let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
        let ran = site.sh(
            &format!("strace -f -qq -o /dev/null {fault} {restore}"),
            p,
            SEGMENT,
        );
        *outcomes.entry(ran.code).or_insert(0) += 1;
        assert!(
            !(1..=125).contains(&ran.code),
            "{what}: exit {} reads as \"not found\": {}",
            ran.code,
            ran.stderr
        );
        match ran.code {
            0 => assert_eq!(site.restored().unwrap(), content(), "{what}"),
            _ => assert!(
                site.restored().is_none_or(|b| b == content()),
                "{what}: a partial file at the destination after exit {}",
                ran.code
            ),
        }
        // A clean retry restores the exact bytes.
        let _ = fs::remove_file(site.wal("RECOVERYXLOG"));
        let r = site.restore(SEGMENT, "");
        assert_eq!(r.code, 0, "{what}: the retry: {}", r.stderr);
        assert_eq!(site.restored().unwrap(), content(), "{what}");
        assert!(
            !site.wal(".RECOVERYXLOG.uxwal-tmp").exists(),
            "{what}: a staging file left after the retry"
        );
    }
    eprintln!("restore exit statuses under faults: {outcomes:?}");
}
