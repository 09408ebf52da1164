//! uxwal-cleanup, driven through the real binary: `pg_archivecleanup`'s own
//! acceptance cases (`src/bin/pg_archivecleanup/t/010_pg_archivecleanup.pl`)
//! side by side with the installed `pg_archivecleanup` on plain directories,
//! the same cases through repositories written by uxwal-archive, retention,
//! bad input, a failed removal, and a real standby using it as
//! `archive_cleanup_command`.

mod common;

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::pg::{
    chown_to_postgres, files_in_repo, is_root, shared_repo, Cluster, Recovery, RestoreOptions,
};
use common::*;

const CLEANUP: &str = env!("CARGO_BIN_EXE_uxwal-cleanup");
/// The acceptance suite's names: `…` in the contract notes.
const W: &str = "0000000100000037000000";

fn w(suffix: &str) -> String {
    format!("{W}{suffix}")
}

fn run_in(bin: &Path, args: &[String], env: &[(&str, &str)]) -> Ran {
    Command::new(bin)
        .args(args)
        .env_remove("UXWAL_REPO")
        .env_remove("UXWAL_CONFIG")
        .envs(env.iter().copied())
        .output()
        .unwrap()
        .into()
}

fn cleanup(args: &[String]) -> Ran {
    run_in(Path::new(CLEANUP), args, &[])
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn pg_archivecleanup() -> PathBuf {
    common::pg::bindir().join("pg_archivecleanup")
}

/// Major version of the installed pg_archivecleanup (`-b` needs 17).
fn pg_major() -> u32 {
    let out = Command::new(pg_archivecleanup())
        .arg("--version")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .nth(2)
        .and_then(|v| v.split('.').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A plain directory holding `files`, each containing `CONTENT` as in the TAP test.
fn plain_dir(files: &[String]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for f in files {
        fs::write(dir.path().join(f), "CONTENT").unwrap();
    }
    dir
}

fn remaining(dir: &Path) -> BTreeSet<String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

fn set(names: &[String]) -> BTreeSet<String> {
    names.iter().cloned().collect()
}

/// Replaces `DIR` in `template` with `dir`.
fn with_dir(template: &[String], dir: &Path) -> Vec<String> {
    template
        .iter()
        .map(|a| {
            if a == "DIR" {
                dir.display().to_string()
            } else {
                a.clone()
            }
        })
        .collect()
}

struct Case {
    files: Vec<String>,
    args: Vec<String>,
    kept: Vec<String>,
    /// Only pg_archivecleanup 17 and later know this case's options.
    pg17: bool,
}

fn pg17_files() -> Vec<String> {
    vec![
        w("0C.gz"),
        w("0D"),
        w("0D.backup"),
        w("0E"),
        w("0F.partial"),
        "unrelated_file".into(),
    ]
}

fn pg15_files() -> Vec<String> {
    vec![
        w("0C.gz"),
        w("0D"),
        w("0E"),
        w("0F.partial"),
        "unrelated_file".into(),
    ]
}

/// Cases 8 to 11 of the TAP test, with the PG17 and the PG15 file sets.
fn acceptance_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    for cut in [w("0E"), w("0E.partial"), w("0E.00000020.backup")] {
        cases.push(Case {
            files: pg17_files(),
            args: args(&["-x.gz", "DIR", &cut]),
            kept: vec![
                w("0D.backup"),
                w("0E"),
                w("0F.partial"),
                "unrelated_file".into(),
            ],
            pg17: false,
        });
        cases.push(Case {
            files: pg15_files(),
            args: args(&["-x", ".gz", "DIR", &cut]),
            kept: vec![w("0E"), w("0F.partial"), "unrelated_file".into()],
            pg17: false,
        });
    }
    cases.push(Case {
        files: vec![
            w("0D"),
            w("0D.00000028.backup"),
            w("0E"),
            w("0F.partial"),
            "unrelated_file".into(),
        ],
        args: args(&["-b", "DIR", &w("0E")]),
        kept: vec![w("0E"), w("0F.partial"), "unrelated_file".into()],
        pg17: true,
    });
    // Timelines are ignored: older segments of every timeline go, later ones stay,
    // and .history files are never removed.
    cases.push(Case {
        files: vec![
            "000000020000003700000000D".into(),
            "00000002.history".into(),
            "00000002000000370000000D".into(),
            "00000002000000370000000E".into(),
            "00000003000000370000000C.partial".into(),
            w("0E"),
        ],
        args: args(&["DIR", "00000003000000370000000E"]),
        kept: vec![
            "000000020000003700000000D".into(),
            "00000002.history".into(),
            "00000002000000370000000E".into(),
            w("0E"),
        ],
        pg17: false,
    });
    // %r = 000000000000000000000000 removes nothing.
    cases.push(Case {
        files: pg15_files(),
        args: args(&["DIR", "000000000000000000000000"]),
        kept: pg15_files(),
        pg17: false,
    });
    cases
}

#[test]
fn acceptance_cases_match_pg_archivecleanup_on_plain_directories() {
    let pg17 = pg_major() >= 17;
    for case in acceptance_cases() {
        let ours = plain_dir(&case.files);
        let r = cleanup(&with_dir(&case.args, ours.path()));
        assert_eq!(r.code, 0, "{:?}: {}", case.args, r.stderr);
        assert_eq!(r.stdout, "", "{:?}", case.args);
        assert_eq!(
            remaining(ours.path()),
            set(&case.kept),
            "uxwal-cleanup {:?}",
            case.args
        );
        if case.pg17 && !pg17 {
            eprintln!("pg_archivecleanup {} lacks {:?}", pg_major(), case.args);
            continue;
        }
        let theirs = plain_dir(&case.files);
        let r = run_in(
            &pg_archivecleanup(),
            &with_dir(&case.args, theirs.path()),
            &[],
        );
        assert_eq!(r.code, 0, "pg_archivecleanup {:?}: {}", case.args, r.stderr);
        assert_eq!(
            remaining(theirs.path()),
            remaining(ours.path()),
            "pg_archivecleanup and uxwal-cleanup disagree on {:?}",
            case.args
        );
    }
}

#[test]
fn dry_run_and_debug_match_pg_archivecleanup() {
    let files = vec![w("0D"), w("0E")];
    for bin in [pg_archivecleanup(), PathBuf::from(CLEANUP)] {
        let dir = plain_dir(&files);
        let a = with_dir(&args(&["-d", "-n", "DIR", &w("0E")]), dir.path());
        let r = run_in(&bin, &a, &[]);
        assert_eq!(r.code, 0, "{bin:?}: {}", r.stderr);
        assert_eq!(r.stdout, format!("{}/{}\n", dir.path().display(), w("0D")));
        assert!(
            r.stderr
                .contains(&format!("{}\" would be removed", w("0D"))),
            "{bin:?}: {}",
            r.stderr
        );
        assert!(!r
            .stderr
            .contains(&format!("{}\" would be removed", w("0E"))));
        assert!(r.stderr.contains(&format!(
            "keeping WAL file \"{}/{}\" and later",
            dir.path().display(),
            w("0E")
        )));
        assert_eq!(
            remaining(dir.path()),
            set(&files),
            "a dry run removes nothing"
        );
    }
}

#[test]
fn usage_errors_match_pg_archivecleanup() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display().to_string();
    for (a, message) in [
        (vec![], "must specify archive location"),
        (vec![d.clone()], "must specify oldest kept WAL file"),
        (
            vec!["notexist".into(), "foo".into()],
            "archive location \"notexist\" does not exist",
        ),
        (
            vec![d.clone(), "foo".into(), "bar".into()],
            "too many command-line arguments",
        ),
        (vec![d.clone(), "foo".into()], "invalid file name argument"),
        (vec![d.clone(), w("0e")], "invalid file name argument"),
        (
            vec![d.clone(), "00000002.history".into()],
            "invalid file name argument",
        ),
    ] {
        for bin in [pg_archivecleanup(), PathBuf::from(CLEANUP)] {
            let r = run_in(&bin, &a, &[]);
            assert_eq!(r.code, 2, "{bin:?} {a:?}: {}", r.stderr);
            assert!(r.stderr.contains(message), "{bin:?} {a:?}: {}", r.stderr);
        }
    }
    for bin in [pg_archivecleanup(), PathBuf::from(CLEANUP)] {
        for flag in ["--help", "-?", "--version", "-V"] {
            assert_eq!(run_in(&bin, &args(&[flag]), &[]).code, 0, "{bin:?} {flag}");
        }
        assert_ne!(run_in(&bin, &args(&["--bogus", &d, &w("0E")]), &[]).code, 0);
    }
}

#[test]
fn uxwal_usage_errors() {
    let site = Site::new();
    site.write_wal(&w("0D"), &segment(&w("0D"), MIB, SYSID, 1));
    assert_eq!(site.archive(&w("0D"), "").code, 0);
    let repo = site.repo.display().to_string();
    let e = w("0E");
    let e = e.as_str();
    for a in [
        vec!["--retain-backups", "0", &repo],
        vec!["--retain-backups", "x", &repo],
        vec!["--older-than", "7", &repo],
        vec!["--older-than", "7 days", &repo],
        vec!["--retain-backups", "1", &repo, e],
        vec!["--retain-backups", "1", &repo, "a", "b"],
        vec!["--retain-backups", "1"],
        vec!["--quiet", "--verbose", &repo, e],
        vec!["--repo", "/nonexistent/uxwal", e],
        vec!["--repo", "s3x://bucket/p", e],
        vec!["--repo", &repo],
        vec![e],
    ] {
        let r = cleanup(&args(&a));
        assert_eq!(r.code, 2, "{a:?}: {}", r.stderr);
        assert!(r.stderr.starts_with("uxwal-cleanup: ") || r.stderr.starts_with("error:"));
    }
    assert!(!site.archived(&w("0D")).is_empty(), "nothing was removed");
    // The repository from the environment, one argument: OLDEST_KEPT.
    let r = run_in(
        Path::new(CLEANUP),
        &args(&[&w("0E")]),
        &[("UXWAL_REPO", &repo)],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(site.archived(&w("0D")).is_empty());
}

/// A repository written by uxwal-archive with every kind of file, mixed codecs.
fn archived_repo(names: &[(String, Vec<u8>)]) -> Site {
    let site = Site::new();
    archive_into(&site, names);
    site
}

/// Archives `names` into `site`'s repository (any kind), cycling through the codecs.
fn archive_into(site: &Site, names: &[(String, Vec<u8>)]) {
    for (i, (name, bytes)) in names.iter().enumerate() {
        site.write_wal(name, bytes);
        let codec = ["", "--compress gzip", "--compress none"][i % 3];
        let r = site.archive(name, codec);
        assert_eq!(r.code, 0, "archive {name}: {}", r.stderr);
    }
}

/// The case's files a repository can hold: WAL names, extensions stripped.
fn repo_wal(case: &Case) -> Vec<String> {
    case.files
        .iter()
        .map(|f| f.trim_end_matches(".gz").to_string())
        .filter(|f| f.parse::<uxwal::wal::name::WalName>().is_ok())
        .collect()
}

/// What the case must remove from a repository holding `wal`.
fn expected_removed(case: &Case, wal: &[String]) -> BTreeSet<String> {
    wal.iter()
        .filter(|f| !case.kept.iter().any(|k| k.trim_end_matches(".gz") == **f))
        .cloned()
        .collect()
}

fn wal_file(name: &str, seed: u64) -> (String, Vec<u8>) {
    let bytes = if name.ends_with(".backup") {
        let seg = &name[..24];
        let tli = u32::from_str_radix(&seg[..8], 16).unwrap();
        let log = u32::from_str_radix(&seg[8..16], 16).unwrap();
        let s = u32::from_str_radix(&seg[16..24], 16).unwrap();
        let off = &name[25..33];
        format!(
            "START WAL LOCATION: {log:X}/{:X} (file {seg})\n\
             STOP WAL LOCATION: {log:X}/{:X} (file {seg})\n\
             CHECKPOINT LOCATION: {log:X}/{:X}\n\
             BACKUP METHOD: streamed\nBACKUP FROM: primary\n\
             START TIME: 2026-01-{:02} 10:00:00 UTC\nLABEL: test\n\
             START TIMELINE: {tli}\nSTOP TIME: 2026-01-{:02} 10:01:00 UTC\nSTOP TIMELINE: {tli}\n",
            (u64::from(s) << 20) + u64::from_str_radix(off, 16).unwrap(),
            (u64::from(s) << 20) + 0x100,
            (u64::from(s) << 20) + 0x60,
            seed,
            seed,
        )
        .into_bytes()
    } else if name.ends_with(".history") {
        b"1\t37/D00000\tno recovery target specified\n".to_vec()
    } else {
        segment(name, MIB, SYSID, seed)
    };
    (name.to_string(), bytes)
}

/// Names of the WAL files still archived, plus FORMAT/IDENTITY and strays.
fn repo_files(site: &Site) -> BTreeSet<String> {
    files_in_repo(&site.repo, &|n| n != ".lock")
        .into_iter()
        .collect()
}

#[test]
fn acceptance_cases_through_a_uxwal_repository() {
    for case in acceptance_cases() {
        // The repository holds what uxwal-archive accepts: WAL names, no extensions.
        let wal = repo_wal(&case);
        let files: Vec<(String, Vec<u8>)> = wal
            .iter()
            .enumerate()
            .map(|(i, f)| wal_file(f, i as u64 + 1))
            .collect();
        let site = archived_repo(&files);
        // Strays the layout does not know are never removed.
        fs::write(site.repo.join("unrelated_file"), "CONTENT").unwrap();
        fs::write(
            site.repo
                .join("wal/0000000100000037")
                .join("unrelated_file"),
            "x",
        )
        .ok();
        let before = repo_files(&site);
        let r = cleanup(&with_dir(&case.args, &site.repo));
        assert_eq!(r.code, 0, "{:?}: {}", case.args, r.stderr);
        let after = repo_files(&site);
        let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
        assert_eq!(removed, expected_removed(&case, &wal), "{:?}", case.args);
        for meta in ["FORMAT", "IDENTITY", "unrelated_file"] {
            assert!(after.contains(meta), "{meta} must stay");
        }
        assert!(site.staging_files().is_empty());
    }
}

// The PG17 file set has `…0D.backup`, which is no backup history file name
// uxwal-archive accepts, so the repository variant above leaves it out.

#[test]
fn dry_run_on_a_repository_lists_keys_oldest_first() {
    let names = [
        w("0E"),
        w("0C"),
        "00000002000000370000000D".to_string(),
        w("0D"),
    ];
    let files: Vec<_> = names
        .iter()
        .enumerate()
        .filter(|(_, n)| n.len() == 24)
        .map(|(i, n)| wal_file(n, i as u64))
        .collect();
    let site = archived_repo(&files);
    let r = cleanup(&args(&["-n", "--repo", &site.location, &w("0E")]));
    assert_eq!(r.code, 0, "{}", r.stderr);
    let root = site.repo.display();
    assert_eq!(
        r.stdout,
        format!(
            "{root}/wal/0000000100000037/{}\n{root}/wal/0000000100000037/{}\n\
             {root}/wal/0000000200000037/00000002000000370000000D\n",
            w("0C"),
            w("0D")
        )
    );
    assert_eq!(
        site.archived(&w("0C")).len(),
        1,
        "a dry run removes nothing"
    );
}

/// Three base backups: two on timeline 1, one on timeline 2, which branched
/// off at segment 7 (so timeline 1's segments 7 to 9 are an abandoned branch).
fn retention_site() -> (Site, Vec<String>) {
    let mut names = Vec::new();
    for s in 1..=9 {
        names.push(format!("0000000100000000000000{s:02X}"));
    }
    for s in 7..=0xB {
        names.push(format!("0000000200000000000000{s:02X}"));
    }
    names.push("000000010000000000000007.partial".into());
    names.push("00000002.history".into());
    names.push("000000010000000000000002.00000028.backup".into());
    names.push("000000010000000000000005.00000028.backup".into());
    names.push("000000020000000000000008.00000028.backup".into());
    let files: Vec<_> = names
        .iter()
        .map(|n| {
            // Start times in the order of the backups: day 1, 2, 3.
            let seed = match n.as_str() {
                "000000010000000000000002.00000028.backup" => 1,
                "000000010000000000000005.00000028.backup" => 2,
                "000000020000000000000008.00000028.backup" => 3,
                _ => 7,
            };
            wal_file(n, seed)
        })
        .collect();
    (archived_repo(&files), names)
}

fn removed_by(site: &Site, all: &[String], a: &[&str]) -> (Ran, BTreeSet<String>) {
    let mut full = args(a);
    full.push(site.location.clone());
    let r = cleanup(&full);
    let left = repo_files(site);
    let removed = all.iter().filter(|n| !left.contains(*n)).cloned().collect();
    (r, removed)
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

#[test]
fn retain_backups_keeps_what_the_newest_backups_need_on_every_timeline() {
    let tl1 = |s: u32| format!("0000000100000000000000{s:02X}");
    let tl2 = |s: u32| format!("0000000200000000000000{s:02X}");
    // Newest backup: timeline 2 at segment 8. Everything from segment 8 on stays,
    // whatever its timeline.
    let (site, all) = retention_site();
    let (r, removed) = removed_by(&site, &all, &["--retain-backups", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut expected: BTreeSet<String> = (1..=7).map(tl1).collect();
    expected.insert(tl2(7));
    expected.insert("000000010000000000000007.partial".into());
    assert_eq!(removed, expected);

    let (site, all) = retention_site();
    let (r, removed) = removed_by(&site, &all, &["--retain-backups", "2", "-b"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let mut expected: BTreeSet<String> = (1..=4).map(tl1).collect();
    expected.insert("000000010000000000000002.00000028.backup".into());
    assert_eq!(removed, expected);

    // More backups asked for than exist: all are kept.
    let (site, all) = retention_site();
    let (r, removed) = removed_by(&site, &all, &["--retain-backups", "9", "-d"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(removed, names(&["000000010000000000000001"]));
    assert!(r.stderr.contains("only 3 base backup"), "{}", r.stderr);

    // A dry run lists exactly what the real run removes.
    let (site, all) = retention_site();
    let (r, removed) = removed_by(&site, &all, &["--retain-backups", "1", "-n"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(removed.is_empty());
    assert_eq!(r.stdout.lines().count(), 9, "{}", r.stdout);
}

#[test]
fn retention_refuses_without_a_usable_backup_file() {
    let site = archived_repo(&[wal_file(&w("0D"), 1), wal_file(&w("0E"), 2)]);
    let r = cleanup(&args(&["--retain-backups", "1", "--repo", &site.location]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("no backup history file"), "{}", r.stderr);
    assert_eq!(site.archived(&w("0D")).len(), 1);

    // A damaged .backup file: retention cannot be computed, nothing goes.
    let (site, all) = retention_site();
    let victim = &site.archived("000000020000000000000008.00000028.backup")[0];
    let mut bytes = fs::read(victim).unwrap();
    let mid = bytes.len() / 3;
    bytes[mid] ^= 0xFF;
    fs::write(victim, bytes).unwrap();
    let (r, removed) = removed_by(&site, &all, &["--retain-backups", "1"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r
        .stderr
        .contains("000000020000000000000008.00000028.backup"));
    assert!(removed.is_empty());
}

/// Issue 13: backup B1 on timeline 1, B2 later on timeline 1, then a
/// point-in-time recovery to a point between them made timeline 2 (forked at
/// segment 5). B2 lies on the abandoned branch: only B1 can reach timeline 2,
/// so `--retain-backups 1` keeps B1 and the timeline-1 WAL it needs.
fn branched_site(backups: &[&str], history: bool) -> (Site, Vec<String>) {
    let mut files = Vec::new();
    for s in 1..=9 {
        files.push(wal_file(&format!("0000000100000000000000{s:02X}"), 7));
    }
    for s in 5..=8 {
        files.push(wal_file(&format!("0000000200000000000000{s:02X}"), 8));
    }
    if history {
        files.push((
            "00000002.history".to_string(),
            b"1\t0/500000\tbefore 2026-01-02 12:00:00+00\n".to_vec(),
        ));
    }
    for (day, b) in backups.iter().enumerate() {
        files.push(wal_file(b, day as u64 + 1));
    }
    let names = files.iter().map(|(n, _)| n.clone()).collect();
    (archived_repo(&files), names)
}

const B1: &str = "000000010000000000000002.00000028.backup";
const B2_ABANDONED: &str = "000000010000000000000007.00000028.backup";

#[test]
fn retention_counts_only_backups_that_can_reach_the_newest_timeline() {
    let (site, all) = branched_site(&[B1, B2_ABANDONED], true);
    let (r, removed) = removed_by(&site, &all, &["--retain-backups", "1"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        removed,
        names(&["000000010000000000000001"]),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains(B2_ABANDONED) && r.stderr.contains("forked off at 0/500000"),
        "the abandoned backup is named: {}",
        r.stderr
    );
}

#[test]
fn retention_refuses_when_no_backup_can_reach_the_newest_timeline() {
    let (site, all) = branched_site(&[B2_ABANDONED], true);
    let (r, removed) = removed_by(&site, &all, &["--retain-backups", "1"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(removed.is_empty(), "{removed:?}");
    let line = r
        .stderr
        .lines()
        .find(|l| l.contains("error:"))
        .unwrap_or_default();
    assert!(
        line.contains("no archived base backup can reach the newest timeline 2")
            && line.contains(&format!(
                "{B2_ABANDONED} (it started at 0/700028 on timeline 1"
            )),
        "{}",
        r.stderr
    );
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.contains("uxwal-cleanup"))
            .count(),
        r.stderr.lines().count()
    );

    // Without timeline 2's history file nothing says which backups reach it.
    let (site, all) = branched_site(&[B1, B2_ABANDONED], false);
    let (r, removed) = removed_by(&site, &all, &["--retain-backups", "1"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(removed.is_empty(), "{removed:?}");
    assert!(
        r.stderr
            .contains("timeline history file 00000002.history: not archived"),
        "{}",
        r.stderr
    );
}

fn age(path: &Path, days: u32) {
    let ok = Command::new("touch")
        .arg("-m")
        .arg("-d")
        .arg(format!("{days} days ago"))
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

#[test]
fn older_than_removes_only_an_old_contiguous_prefix() {
    let (site, all) = retention_site();
    for name in &all {
        let days = if name.starts_with("00000001000000000000000") {
            10
        } else {
            1
        };
        for p in site.archived(name) {
            age(&p, days);
        }
    }
    // Segment 3 was archived again recently: removal stops before it.
    age(&site.archived("000000010000000000000003")[0], 1);
    let (r, removed) = removed_by(&site, &all, &["--older-than", "7d"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(
        removed,
        names(&["000000010000000000000001", "000000010000000000000002"])
    );
    age(&site.archived("000000010000000000000003")[0], 10);
    let (r, removed) = removed_by(&site, &all, &["--older-than", "7d"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    // Up to the newest backup's start (segment 8), and only the old ones:
    // timeline 2's segment 7 is recent.
    let mut expected: BTreeSet<String> = (1..=7)
        .map(|s| format!("0000000100000000000000{s:02X}"))
        .collect();
    expected.insert("000000010000000000000007.partial".into());
    assert_eq!(removed, expected.clone());
    let (r, removed) = removed_by(&site, &all, &["--older-than", "12d"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(removed, expected, "nothing more is that old");
}

#[test]
fn a_failed_removal_is_reported_and_the_rest_are_removed() {
    // Plain directory: a directory named like a segment cannot be unlinked,
    // even by root; pg_archivecleanup stops there, uxwal-cleanup goes on.
    let files = vec![w("0B"), w("0D"), w("0E")];
    let dir = plain_dir(&files);
    fs::create_dir(dir.path().join(w("0C"))).unwrap();
    let r = cleanup(&args(&[&dir.path().display().to_string(), &w("0E")]));
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "could not remove file \"{}/{}\"",
            dir.path().display(),
            w("0C")
        )),
        "{}",
        r.stderr
    );
    assert_eq!(remaining(dir.path()), set(&[w("0C"), w("0E")]));

    // Repository: one directory that the user cannot write to.
    let site = archived_repo(&[
        wal_file("000000010000000000000003", 1),
        wal_file("000000020000000000000004", 2),
        wal_file("000000020000000000000005", 3),
    ]);
    let locked = site.repo.join("wal/0000000100000000");
    let bin = site.dir.path().join("uxwal-cleanup");
    fs::copy(CLEANUP, &bin).unwrap();
    let mut cmd = if is_root() {
        for p in [site.dir.path(), &site.repo] {
            fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
        }
        chown_to_postgres(&site.repo);
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o555)).unwrap();
    let r: Ran = cmd
        .args(["--repo", &site.location, "000000020000000000000006"])
        .env_remove("UXWAL_REPO")
        .env_remove("UXWAL_CONFIG")
        .output()
        .unwrap()
        .into();
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains("000000010000000000000003"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("could not remove 1 of 3"), "{}", r.stderr);
    assert_eq!(site.archived("000000010000000000000003").len(), 1);
    assert!(site.archived("000000020000000000000004").is_empty());
    assert!(site.archived("000000020000000000000005").is_empty());
}

/// A standby replays from the repository and streams from the primary, with
/// `archive_cleanup_command = 'uxwal-cleanup --repo REPO %r'`; a CHECKPOINT on
/// the standby (a restartpoint) shrinks the archive, and the standby still follows.
#[test]
fn standby_archive_cleanup_command_shrinks_the_archive() {
    let (shared, repo) = shared_repo("uxwal-cleanup-e2e.");
    let backup = shared.path().join("base");
    let mut primary = Cluster::archiving_primary("primary", 1, &repo);
    primary.psql("create table t (n int)");
    primary.base_backup(&backup);
    for i in 0..6 {
        primary.psql(&format!(
            "insert into t select generate_series(1, 20000); select {i}"
        ));
        primary.switch_wal();
    }
    primary.psql("checkpoint");
    let last = primary.switch_wal();
    primary.wait_for_archived(&last);
    let segments = |repo: &Path| files_in_repo(repo, &|n| n.len() == 24);
    let before = segments(&repo);
    assert!(before.len() >= 6, "{before:?}");

    let mut standby = Cluster::streaming_standby("standby", &backup, &repo, &primary, false);
    let bin = standby.dir().join("bin/uxwal-cleanup");
    fs::copy(CLEANUP, &bin).unwrap();
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
    chown_to_postgres(&bin);
    standby.append_conf(&format!(
        "archive_cleanup_command = '{} --repo {} %r'",
        bin.display(),
        repo.display()
    ));
    standby.start();
    let lsn = primary.psql("select pg_current_wal_insert_lsn()");
    standby.wait_for(
        &format!("select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
        "t",
    );
    standby.psql("checkpoint");
    let redo = standby.psql("select redo_wal_file from pg_control_checkpoint()");
    let after = common::poll_until("the archive to shrink", || {
        let now = segments(&repo);
        if now.len() < before.len() {
            Ok(now)
        } else {
            Err(format!(
                "{} -> {} segments (restartpoint redo in {redo})",
                before.len(),
                now.len()
            ))
        }
    });
    assert!(
        after.iter().all(|n| n[8..] >= redo[8..]),
        "only segments before {redo} may go: {after:?}"
    );
    assert!(
        !standby.log_tail(200).contains("archive_cleanup_command"),
        "no warning from archive_cleanup_command:\n{}",
        standby.log_tail(50)
    );

    // The standby still follows the primary.
    primary.psql("insert into t values (-1)");
    primary.switch_wal();
    let lsn = primary.psql("select pg_current_wal_insert_lsn()");
    standby.wait_for(
        &format!("select pg_last_wal_replay_lsn() >= '{lsn}'::pg_lsn"),
        "t",
    );
    assert_eq!(standby.psql("select count(*) from t where n = -1"), "1");
    assert_eq!(
        standby.psql("select count(*) from t"),
        primary.psql("select count(*) from t")
    );
    standby.stop();
    primary.stop();
}

/// Retention with real base backups: after `--retain-backups 2` the two newest
/// backups still restore to the latest point, and the WAL only the oldest needed
/// is gone.
#[test]
fn retained_backups_still_restore_after_retention_cleanup() {
    let (shared, repo) = shared_repo("uxwal-retention-e2e.");
    let mut primary = Cluster::archiving_primary("primary", 1, &repo);
    primary.psql("create table t (n int)");
    let mut backups = Vec::new();
    for b in 0..3 {
        let dir = shared.path().join(format!("base{b}"));
        primary.base_backup(&dir);
        backups.push(dir);
        for i in 0..3 {
            primary.psql(&format!(
                "insert into t select generate_series(1, 20000); select {b}{i}"
            ));
            primary.switch_wal();
        }
    }
    let final_state = primary.psql("select count(*), sum(n) from t");
    let last = primary.switch_wal();
    primary.wait_for_archived(&last);
    primary.stop();
    let segments = |repo: &Path| files_in_repo(repo, &|n| n.len() == 24);
    let before = segments(&repo);

    let r = run_in(
        Path::new(CLEANUP),
        &args(&[
            "--repo",
            repo.to_str().unwrap(),
            "--retain-backups",
            "2",
            "-b",
        ]),
        &[],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let after = segments(&repo);
    assert!(
        after.len() < before.len(),
        "the oldest backup's WAL goes: {} -> {}",
        before.len(),
        after.len()
    );

    for (i, backup) in backups.iter().enumerate().skip(1) {
        let mut pitr = Cluster::from_backup(
            &format!("restore{i}"),
            backup,
            &RestoreOptions {
                repo: repo.clone(),
                recovery: Recovery::promote(None, None),
                archive: false,
            },
        );
        pitr.start();
        pitr.wait_for("select pg_is_in_recovery()", "f");
        assert_eq!(
            pitr.psql("select count(*), sum(n) from t"),
            final_state,
            "backup {i} restores to the latest point"
        );
        pitr.stop();
    }
}

/// The same acceptance cases through an S3 repository (moto): what remains is
/// read back through the repository's own listing.
#[test]
fn acceptance_cases_through_an_s3_repository() {
    let s3 = common::servers::S3::start("walbucket");
    let options = s3.store_options();
    let env: Vec<(String, String)> = s3.env();
    let env_refs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (n, case) in acceptance_cases().into_iter().enumerate() {
        let wal = repo_wal(&case);
        let site = s3.site(&format!("case{n}"));
        let files: Vec<(String, Vec<u8>)> = wal
            .iter()
            .enumerate()
            .map(|(i, f)| wal_file(f, i as u64 + 1))
            .collect();
        archive_into(&site, &files);
        let repo = uxwal::repo::Repository::open_with(&site.location, &options).unwrap();
        let listed = |repo: &uxwal::repo::Repository| -> BTreeSet<String> {
            repo.list("")
                .unwrap()
                .into_iter()
                .map(|l| l.key.rsplit('/').next().unwrap().to_string())
                .collect()
        };
        let before = listed(&repo);
        let r = run_in(
            Path::new(CLEANUP),
            &with_dir(&case.args, Path::new(&site.location)),
            &env_refs,
        );
        assert_eq!(r.code, 0, "{:?}: {}", case.args, r.stderr);
        let after = listed(&repo);
        let removed: BTreeSet<String> = before.difference(&after).cloned().collect();
        assert_eq!(removed, expected_removed(&case, &wal), "{:?}", case.args);
        assert!(after.contains("FORMAT") && after.contains("IDENTITY"));
    }
}

/// Issue 13: `-x` stripping an "extension" that eats into a WAL name made
/// `uxwal-cleanup --repo R -n -x 0000000000000002 000000010000000000000005`
/// panic. The stripped name must be checked again, as pg_archivecleanup does:
/// `…0002` becomes `00000001`, no WAL name, so it is left alone.
#[test]
fn issue_13_strip_extension_eating_into_names_does_not_panic() {
    let seg = |s: u32| format!("0000000100000000000000{s:02X}");
    let all: Vec<String> = (1..=6).map(seg).collect();
    let files: Vec<_> = all
        .iter()
        .enumerate()
        .map(|(i, n)| wal_file(n, i as u64))
        .collect();
    let site = archived_repo(&files);
    let before = repo_files(&site);
    let r = cleanup(&args(&[
        "--repo",
        &site.location,
        "-n",
        "-x",
        "0000000000000002",
        "000000010000000000000005",
    ]));
    assert!(
        !r.stderr.contains("panicked") && !r.stderr.contains("internal error"),
        "{}",
        r.stderr
    );
    assert_eq!(r.code, 0, "a dry run that lists: {}", r.stderr);
    assert!(
        r.stderr.lines().count() <= 1,
        "one line at most: {}",
        r.stderr
    );
    let root = site.repo.display();
    let listed: Vec<String> = [1, 3, 4]
        .iter()
        .map(|&s| format!("{root}/wal/0000000100000000/{}", seg(s)))
        .collect();
    assert_eq!(r.stdout.lines().collect::<Vec<_>>(), listed);
    assert_eq!(repo_files(&site), before, "a dry run removes nothing");

    // The same on a plain directory, side by side with pg_archivecleanup.
    let dir = plain_dir(&all);
    let d = dir.path().display().to_string();
    let a = args(&["-n", "-x", "0000000000000002", &d, &seg(5)]);
    let ours = cleanup(&a);
    let theirs = run_in(&pg_archivecleanup(), &a, &[]);
    assert_eq!(ours.code, 0, "{}", ours.stderr);
    assert_eq!(theirs.code, 0, "{}", theirs.stderr);
    let sorted = |out: &str| {
        let mut l: Vec<String> = out.lines().map(str::to_owned).collect();
        l.sort();
        l
    };
    assert_eq!(sorted(&ours.stdout), sorted(&theirs.stdout));
    assert_eq!(remaining(dir.path()), set(&all));
}
