//! Exit statuses that the database reads as a verdict: a usage error or a bug
//! in uxwal-restore must never look like "not found" (1..=125) during a
//! point-in-time recovery, because the database then ends recovery early.
mod common;

use std::fs;
use std::process::Command;

use common::{segment, Site, MIB, RESTORE, SYSID};

const SEGMENT: &str = "000000010000000000000003";

/// A site whose data directory says what kind of recovery runs there.
fn site_in(signals: &[&str]) -> Site {
    let site = Site::new();
    for signal in signals {
        fs::write(site.data.join(signal), "").unwrap();
    }
    site
}

#[test]
fn a_restore_usage_error_stops_a_point_in_time_recovery() {
    let site = site_in(&["recovery.signal"]);
    let ran = site.restore(SEGMENT, "--no-such-option");
    assert_eq!(ran.code, 200, "{}", ran.stderr);
    assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);
    assert!(
        ran.stderr
            .starts_with("uxwal-restore: error: invalid command line")
            && ran.stderr.contains("--no-such-option")
            && ran.stderr.contains("stopping recovery"),
        "{}",
        ran.stderr
    );
    assert!(site.restored().is_none());
}

#[test]
fn a_restore_usage_error_elsewhere_is_exit_2() {
    for signals in [&[][..], &["recovery.signal", "standby.signal"][..]] {
        let site = site_in(signals);
        let ran = site.restore(SEGMENT, "--prefetch 999");
        assert_eq!(ran.code, 2, "{signals:?}: {}", ran.stderr);
        assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);
        assert!(
            ran.stderr.contains("invalid command line"),
            "{}",
            ran.stderr
        );
    }
}

#[test]
fn restore_help_and_version_still_exit_0() {
    let site = site_in(&["recovery.signal"]);
    for flag in ["--help", "--version"] {
        let out = Command::new(RESTORE)
            .arg(flag)
            .current_dir(&site.data)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{flag}");
        assert!(!out.stdout.is_empty(), "{flag}");
    }
}

/// Whether strace can inject faults here (it needs ptrace).
fn strace_works() -> bool {
    Command::new("strace")
        .args(["-f", "-qq", "-o", "/dev/null", "-e", "trace=none", "true"])
        .status()
        .is_ok_and(|s| s.success())
}

/// A thread that cannot be started (clone3 fails with EAGAIN, as under a
/// process limit) while a segment is restored during a point-in-time
/// recovery: the SHA-256 is then computed on the calling thread, and the
/// segment is restored, byte for byte, exit 0 (issue 13: before, the failed
/// spawn panicked and the panic exited 101, "not found").
#[test]
fn a_restore_that_cannot_start_a_thread_still_restores() {
    assert!(
        strace_works(),
        "this test injects faults with strace (scripts/install-deps installs it)"
    );
    let site = site_in(&["recovery.signal"]);
    site.write_wal(SEGMENT, &segment(SEGMENT, 16 * MIB, SYSID, 1));
    let ran = site.archive(SEGMENT, "--compress zstd");
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    let ran = site.sh(
        "strace -f -qq -o /dev/null -e inject=clone3:error=EAGAIN -e inject=clone:error=EAGAIN \"$RESTORE\" --repo \"$REPO\" --prefetch 0 %f %p",
        "pg_wal/RECOVERYXLOG",
        SEGMENT,
    );
    assert_eq!(ran.code, 0, "{}", ran.stderr);
    assert_eq!(
        site.restored().unwrap(),
        segment(SEGMENT, 16 * MIB, SYSID, 1)
    );
    assert!(
        site.staging_files().is_empty(),
        "{:?}",
        site.staging_files()
    );
}

/// The panic hook itself: this test runs its own binary again with
/// `UXWAL_PANIC_HOOK_CHILD` set, and the child installs uxwal's hook with a
/// restore's abort status and panics on a second thread (as a bug in a
/// worker thread would). The whole process must exit with that status, never
/// 101 ("not found" to the database), after one line naming the program and
/// the WAL file.
#[test]
fn a_panic_exits_with_the_status_the_hook_was_given() {
    if std::env::var_os("UXWAL_PANIC_HOOK_CHILD").is_some() {
        uxwal::exit::exit_on_panic("uxwal-restore", uxwal::exit::ABORT_RECOVERY);
        uxwal::exit::panic_names(SEGMENT);
        let _ = std::thread::spawn(|| panic!("a bug\non two lines")).join();
        unreachable!("the hook exits the process");
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "a_panic_exits_with_the_status_the_hook_was_given",
            "--nocapture",
        ])
        .env("UXWAL_PANIC_HOOK_CHILD", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(200), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("uxwal-restore: error:"))
        .unwrap_or_else(|| panic!("no error line: {stderr}"));
    assert!(
        line.contains(SEGMENT)
            && line.contains("internal error")
            && line.contains("a bug on two lines"),
        "{line}"
    );
}

/// Greenplum and Cloudberry substitute `%c` (the content id) in
/// `archive_command`; anything else that runs the command leaves it literal.
/// A repository location still holding `%c` is refused, never created: archive
/// exits 1 (the database retries), restore during a point-in-time recovery 200.
#[test]
fn a_repository_location_with_a_literal_content_id_is_refused() {
    let site = site_in(&["recovery.signal"]);
    site.write_wal(SEGMENT, &segment(SEGMENT, 16 * MIB, SYSID, 1));
    let location = format!("{}/seg%c", site.dir.path().display());
    let archive = site.sh(
        &format!("\"$ARCHIVE\" --repo '{location}' %p %f"),
        &format!("pg_wal/{SEGMENT}"),
        SEGMENT,
    );
    let restore = site.sh(
        &format!("\"$RESTORE\" --repo '{location}' %f %p"),
        "pg_wal/RECOVERYXLOG",
        SEGMENT,
    );
    for (ran, code) in [(&archive, 1), (&restore, 200)] {
        assert_eq!(ran.code, code, "{}", ran.stderr);
        assert_eq!(ran.stderr.lines().count(), 1, "one line: {}", ran.stderr);
        assert!(
            ran.stderr.contains("literal %c") && ran.stderr.contains("did not substitute"),
            "{}",
            ran.stderr
        );
    }
    assert!(!site.dir.path().join("seg%c").exists());
    assert!(site.restored().is_none());
}
