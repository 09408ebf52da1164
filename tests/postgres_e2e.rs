//! End-to-end archiving and point-in-time recovery against a real
//! PostgreSQL server, the way a DBA would use uxwal.
//!
//! One scenario, run with 16 MiB and with 1 MiB WAL segments:
//!
//! 1. A primary archives every WAL file with `uxwal-archive` while pgbench
//!    writes; a base backup without WAL (`-X none`) is taken in the middle.
//! 2. A named restore point is created and the data at that point recorded;
//!    more changes follow.
//! 3. The base backup is recovered with `uxwal-restore` up to the restore
//!    point and promoted: it must see exactly the recorded data, and it
//!    starts timeline 2, whose history file (and, when PostgreSQL makes one,
//!    the `.partial` of the last timeline-1 segment) reach the same
//!    repository.
//! 4. The base backup is recovered again with
//!    `recovery_target_timeline = 'latest'`: it must follow timeline 2 to its
//!    end and promote to timeline 3.
//!
//! Every server that archives must end with `pg_stat_archiver.failed_count`
//! at 0: uxwal must never make PostgreSQL retry.

mod common;

use std::fs;
use std::path::Path;

use common::pg::{
    describe_repo, files_in_repo, find_in_repo, shared_repo, wait_for_file_in_repo, Cluster,
    Recovery, RestoreOptions,
};

/// One line that changes with any committed write the scenario makes: the
/// account balances, the pgbench history, and the marker rows.
const STATE_SQL: &str = "select (select sum(abalance) || '/' || count(*) from pgbench_accounts) \
     || ' history=' || (select count(*) from pgbench_history) \
     || ' markers=' || (select coalesce(string_agg(label, ',' order by label), '') from uxwal_marker)";

const RESTORE_POINT: &str = "uxwal_target";

/// Sharded layout of the repository: segments under `wal/<16 hex>/`.
fn assert_segment_layout(repo: &Path, segment: &str) {
    let found = find_in_repo(repo, segment)
        .unwrap_or_else(|| panic!("{segment} not archived; repo:\n{}", describe_repo(repo)));
    let expected_dir = repo.join("wal").join(&segment[..16]);
    assert_eq!(
        found.parent(),
        Some(expected_dir.as_path()),
        "{segment} stored in the wrong place"
    );
}

fn archive_then_restore_to_named_point(wal_segsize_mb: u32) {
    // The repository and the base backup outlive the clusters that use them.
    let (shared, repo) = shared_repo("uxwal-e2e.");
    let backup = shared.path().join("base");

    // 1. Primary archiving under a pgbench workload, base backup in between.
    let mut primary = Cluster::archiving_primary("primary", wal_segsize_mb, &repo);
    primary.pgbench(&["-i", "-s", "2", "-q"]);
    primary.pgbench(&["-n", "-c", "2", "-t", "150"]);
    primary.psql("create table uxwal_marker (label text primary key)");
    primary.base_backup(&backup);
    assert!(
        files_in_repo(&repo, &|n| n.ends_with(".backup")).len() == 1,
        "pg_basebackup -X none returned before the backup history file was archived; repo:\n{}",
        describe_repo(&repo)
    );
    primary.pgbench(&["-n", "-c", "2", "-t", "150"]);

    // 2. The restore point, and changes after it that recovery must not see.
    primary.psql("insert into uxwal_marker values ('before_target')");
    let at_target = primary.psql(STATE_SQL);
    primary.psql(&format!(
        "select pg_create_restore_point('{RESTORE_POINT}')"
    ));
    primary.pgbench(&["-n", "-c", "2", "-t", "150"]);
    primary.psql("insert into uxwal_marker values ('after_target')");
    let at_end = primary.psql(STATE_SQL);
    assert_ne!(at_target, at_end);
    let last_tl1 = primary.switch_wal();
    primary.wait_for_archived(&last_tl1);
    assert_eq!(primary.archive_failures(), 0, "primary archive failures");
    assert_segment_layout(&repo, &last_tl1);
    let tl1_segments = files_in_repo(&repo, &|n| n.len() == 24 && n.starts_with("00000001"));
    assert!(
        tl1_segments.len() >= 3,
        "expected several archived segments, got {tl1_segments:?}"
    );
    eprintln!(
        "[{wal_segsize_mb} MiB] primary archived {} segments up to {last_tl1}",
        tl1_segments.len()
    );

    // 3. Point-in-time recovery to the restore point; promotes to timeline 2.
    let mut pitr = Cluster::from_backup(
        "pitr",
        &backup,
        &RestoreOptions {
            repo: repo.clone(),
            recovery: Recovery::promote(Some(RESTORE_POINT), None),
            archive: true,
        },
    );
    pitr.start();
    pitr.wait_for("select pg_is_in_recovery()", "f");
    assert_eq!(pitr.psql(STATE_SQL), at_target, "data at the restore point");
    assert_eq!(
        pitr.psql("select count(*) from uxwal_marker where label = 'after_target'"),
        "0"
    );
    assert_eq!(pitr.current_timeline(), 2);
    wait_for_file_in_repo(&repo, "00000002.history");

    // Work on timeline 2, archived to the same repository.
    pitr.psql("insert into uxwal_marker values ('timeline2')");
    pitr.pgbench(&["-n", "-c", "2", "-t", "100"]);
    let tl2_state = pitr.psql(STATE_SQL);
    let last_tl2 = pitr.switch_wal();
    assert!(last_tl2.starts_with("00000002"), "{last_tl2}");
    pitr.wait_for_archived(&last_tl2);
    assert_eq!(pitr.archive_failures(), 0, "timeline 2 archive failures");
    assert_segment_layout(&repo, &last_tl2);
    let partials = files_in_repo(&repo, &|n| n.ends_with(".partial"));
    eprintln!("[{wal_segsize_mb} MiB] .partial files in the repository: {partials:?}");
    assert!(
        partials.iter().all(|n| n.starts_with("00000001")),
        "only timeline 1 can have ended in a .partial: {partials:?}"
    );
    pitr.stop();

    // 4. Recover the same backup again, following the newest timeline.
    let mut latest = Cluster::from_backup(
        "latest",
        &backup,
        &RestoreOptions {
            repo: repo.clone(),
            recovery: Recovery::promote(None, Some("latest")),
            archive: true,
        },
    );
    latest.start();
    latest.wait_for("select pg_is_in_recovery()", "f");
    assert_eq!(
        latest.psql(STATE_SQL),
        tl2_state,
        "recovery with target timeline 'latest' must replay all of timeline 2"
    );
    let timeline = latest.current_timeline();
    assert!(timeline >= 3, "promoted onto timeline {timeline}");
    wait_for_file_in_repo(&repo, &format!("{timeline:08X}.history"));
    latest.psql("insert into uxwal_marker values ('timeline3')");
    let last_tl3 = latest.switch_wal();
    latest.wait_for_archived(&last_tl3);
    assert_eq!(latest.archive_failures(), 0, "timeline 3 archive failures");
    assert_eq!(primary.archive_failures(), 0, "primary archive failures");

    latest.stop();

    // 5. A standby that replays from the repository and then streams from
    //    the primary, promoted: its unfinished timeline-1 segment came from
    //    streaming (no `.done`), so PostgreSQL archives it as `.partial`.
    //    (Servers recovered purely from the archive, as above, never make
    //    a `.partial`: their last segment was restored and is already
    //    marked done; see CleanupAfterArchiveRecovery in xlog.c.)
    primary.psql("insert into uxwal_marker values ('streamed')");
    let mut standby = Cluster::from_backup(
        "standby",
        &backup,
        &RestoreOptions {
            repo: repo.clone(),
            recovery: Recovery::Standby {
                primary_conninfo: Some(primary.conninfo()),
                // Stay on the primary's timeline 1, not the archive's newest.
                target_timeline: Some("current".to_string()),
            },
            archive: true,
        },
    );
    standby.start();
    let primary_lsn = primary.psql("select pg_current_wal_insert_lsn()");
    standby.wait_for(
        &format!("select pg_last_wal_replay_lsn() >= '{primary_lsn}'::pg_lsn"),
        "t",
    );
    assert_eq!(
        standby.psql("select count(*) from uxwal_marker where label = 'streamed'"),
        "1"
    );
    let streamed_segment = primary.psql("select pg_walfile_name(pg_current_wal_insert_lsn())");
    standby.promote();
    let standby_timeline = standby.current_timeline();
    assert!(
        standby_timeline > timeline,
        "the standby must pick a timeline no other server used, got {standby_timeline}"
    );
    wait_for_file_in_repo(&repo, &format!("{standby_timeline:08X}.history"));
    wait_for_file_in_repo(&repo, &format!("{streamed_segment}.partial"));
    standby.psql("insert into uxwal_marker values ('standby_promoted')");
    let last_standby = standby.switch_wal();
    standby.wait_for_archived(&last_standby);
    assert_eq!(
        standby.archive_failures(),
        0,
        "promoted standby archive failures"
    );
    standby.stop();

    // The old primary goes on archiving timeline 1 next to the `.partial`.
    primary.psql("insert into uxwal_marker values ('primary_after_partial')");
    let last_tl1 = primary.switch_wal();
    primary.wait_for_archived(&last_tl1);
    assert_eq!(primary.archive_failures(), 0, "primary archive failures");
    primary.stop();
    eprintln!(
        "[{wal_segsize_mb} MiB] repository holds {} files",
        files_in_repo(&repo, &|_| true).len()
    );

    // 5. The archive these servers wrote (four timelines, a `.backup`, a
    //    `.partial`) is complete and intact by uxwal-verify.
    let verify = std::process::Command::new(env!("CARGO_BIN_EXE_uxwal-verify"))
        .arg("--repo")
        .arg(&repo)
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "uxwal-verify on a real archive: {}\n{}{}",
        verify.status,
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    // Then damaged one way at a time: each damage is named and fails the run.
    damage_one_way_at_a_time(&repo, u64::from(wal_segsize_mb) << 20);
}

/// Runs uxwal-verify on `repo`: exit code and report.
fn verify(repo: &Path) -> (Option<i32>, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_uxwal-verify"))
        .arg("--repo")
        .arg(repo)
        .output()
        .unwrap();
    let report =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.code(), report)
}

fn damage_one_way_at_a_time(repo: &Path, segment_size: u64) {
    let mut tl1 = files_in_repo(repo, &|n| n.len() == 24 && n.starts_with("00000001"));
    tl1.sort();
    let victim = tl1[tl1.len() / 2].clone();
    let path = find_in_repo(repo, &victim).unwrap();
    let original = fs::read(&path).unwrap();

    // Another cluster's segment of the same name, archived by uxwal-archive elsewhere.
    let foreign = common::Site::new();
    foreign.write_wal(&victim, &common::segment(&victim, segment_size, 42, 1));
    assert_eq!(foreign.archive(&victim, "").code, 0);
    let foreign_bytes = fs::read(&foreign.archived(&victim)[0]).unwrap();

    let mut flipped = original.clone();
    flipped[original.len() / 2] ^= 0x20;
    let cases: Vec<(&str, Option<Vec<u8>>)> = vec![
        ("missing segment", None),
        ("flipped byte", Some(flipped)),
        ("truncated", Some(original[..original.len() / 2].to_vec())),
        ("other cluster", Some(foreign_bytes)),
    ];
    for (what, content) in cases {
        match &content {
            None => fs::remove_file(&path).unwrap(),
            Some(bytes) => fs::write(&path, bytes).unwrap(),
        }
        let (code, report) = verify(repo);
        assert_eq!(code, Some(1), "{what}: {report}");
        assert!(
            report.contains(&victim),
            "{what}: {victim} is named: {report}"
        );
        fs::write(&path, &original).unwrap();
    }

    // Files that are not part of the archive.
    let stray = repo.join("tmp").join(format!("{victim}.1.2.uxwal-tmp"));
    fs::write(&stray, b"left by a crash").unwrap();
    let an_hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(&stray)
        .unwrap()
        .set_modified(an_hour_ago)
        .unwrap();
    let (code, report) = verify(repo);
    assert_eq!(code, Some(1), "stray temp file: {report}");
    assert!(report.contains("uxwal-tmp"), "{report}");
    fs::remove_file(&stray).unwrap();
    let unknown = path.parent().unwrap().join("notes.txt");
    fs::write(&unknown, b"?").unwrap();
    let (code, report) = verify(repo);
    assert_eq!(code, Some(1), "unknown file: {report}");
    assert!(report.contains("notes.txt"), "{report}");
    fs::remove_file(&unknown).unwrap();

    let (code, report) = verify(repo);
    assert_eq!(code, Some(0), "undamaged again: {report}");
}

#[test]
fn pitr_with_16mib_segments() {
    archive_then_restore_to_named_point(16);
}

#[test]
fn pitr_with_1mib_segments() {
    archive_then_restore_to_named_point(1);
}

/// Lines in `cluster`'s server log that say an archive call found the file
/// already archived with identical content.
fn identical_duplicates(cluster: &Cluster) -> usize {
    cluster
        .log_tail(1_000_000)
        .lines()
        .filter(|l| l.contains("is already archived with identical content"))
        .count()
}

/// Issue 13: a standby with `archive_mode = always` archives every segment it
/// receives into its primary's repository, so each segment is archived twice,
/// by two servers, in either order. On PostgreSQL 15 the two copies are the
/// same bytes: every second call finds an identical duplicate (exit 0), and no
/// attempt fails on either server, through WAL switches, a checkpoint and the
/// standby's promotion (after which the old primary goes on archiving its
/// timeline next to the standby's `.partial` and new timeline). A real
/// difference under an archived name is refused (exit 1, nothing changed):
/// `tests/archive_restore.rs` shows that for every repository kind.
#[test]
fn a_standby_with_archive_mode_always_archives_into_the_same_repository() {
    let (_keep, repo) = shared_repo("uxwal-always.");
    let verbose = |cluster: &Cluster| {
        let command = cluster.archive_command().replace(" %p %f", " -v %p %f");
        cluster.append_conf(&format!("archive_command = '{command}'"));
    };
    let mut primary = Cluster::init(
        "alwaysprimary",
        &common::pg::InitOptions {
            wal_segsize_mb: 1,
            archive: true,
            repo: Some(repo.clone()),
        },
    );
    verbose(&primary);
    primary.start();
    primary.psql("create table uxwal_marker (label text)");
    let backups = common::pg::pg_tempdir("uxwal-always-backup.");
    let backup = backups.path().join("base");
    primary.base_backup(&backup);

    let mut standby = Cluster::streaming_standby("alwaysstandby", &backup, &repo, &primary, true);
    standby.append_conf("archive_mode = always");
    verbose(&standby);
    standby.start();

    let mut switched = Vec::new();
    for i in 0..6 {
        primary.psql(&format!(
            "insert into uxwal_marker select 'row{i}-' || g from generate_series(1, 5000) g"
        ));
        if i == 3 {
            primary.psql("checkpoint");
        }
        switched.push(primary.switch_wal());
    }
    let last = switched.last().unwrap().clone();
    let primary_lsn = primary.psql("select pg_current_wal_insert_lsn()");
    standby.wait_for(
        &format!("select pg_last_wal_replay_lsn() >= '{primary_lsn}'::pg_lsn"),
        "t",
    );
    primary.wait_for_archived(&last);
    standby.wait_for_archived(&last);
    assert_eq!(primary.archive_failures(), 0, "primary archive failures");
    assert_eq!(standby.archive_failures(), 0, "standby archive failures");
    let duplicates = identical_duplicates(&primary) + identical_duplicates(&standby);
    eprintln!(
        "{} segments switched; identical duplicates: primary {}, standby {}",
        switched.len(),
        identical_duplicates(&primary),
        identical_duplicates(&standby)
    );
    assert!(
        duplicates >= switched.len(),
        "every switched segment archived twice, the second time as an identical duplicate: \
         {duplicates} duplicates for {switched:?}\nprimary:\n{}\nstandby:\n{}",
        primary.log_tail(40),
        standby.log_tail(40)
    );

    // Promoted, the standby archives its new timeline and the .partial of the
    // timeline-1 segment it was on; the old primary goes on with timeline 1.
    let streamed_segment = primary.psql("select pg_walfile_name(pg_current_wal_insert_lsn())");
    standby.promote();
    let timeline = standby.current_timeline();
    assert_eq!(timeline, 2);
    wait_for_file_in_repo(&repo, "00000002.history");
    wait_for_file_in_repo(&repo, &format!("{streamed_segment}.partial"));
    standby.psql("insert into uxwal_marker values ('standby_promoted')");
    let last_standby = standby.switch_wal();
    standby.wait_for_archived(&last_standby);
    primary.psql("insert into uxwal_marker values ('primary_after_promotion')");
    let last_primary = primary.switch_wal();
    primary.wait_for_archived(&last_primary);
    assert_eq!(primary.archive_failures(), 0, "primary archive failures");
    assert_eq!(standby.archive_failures(), 0, "standby archive failures");
    standby.stop();
    primary.stop();

    let (code, report) = verify(&repo);
    assert_eq!(
        code,
        Some(0),
        "uxwal-verify on the shared archive:\n{report}"
    );
}
