//! Push-ahead (`uxwal-archive --parallel N`, issue 7): one call ships the files the
//! database has marked ready, their own calls only confirm them; and whatever
//! happens to the call, the spool, the local file or the repository in between,
//! no call reports success for content that is not in the repository.

mod common;

use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

use common::pg::poll_until;
use common::servers::S3;
use common::*;

/// Segments 1..=5 of timeline 1; the database archives them in this order.
const SEGS: [&str; 5] = [
    "000000010000000000000001",
    "000000010000000000000002",
    "000000010000000000000003",
    "000000010000000000000004",
    "000000010000000000000005",
];
const HISTORY: &str = "00000002.history";
const HISTORY_TEXT: &[u8] = b"1\t0/5000000\tno recovery target specified\n";

/// A data directory whose `pg_wal` holds ready segments (and optionally a ready
/// history file), a repository (local, or S3 in moto) and a private spool root.
struct Fixture {
    site: Site,
    spool: PathBuf,
    s3: Option<S3>,
}

impl Fixture {
    fn local() -> Fixture {
        Self::with(Site::new(), None)
    }

    fn s3() -> Fixture {
        let s3 = S3::start("walbucket");
        let mut site = Site::new();
        site.location = s3.location("cluster/push");
        site.env = s3.env();
        Self::with(site, Some(s3))
    }

    fn with(site: Site, s3: Option<S3>) -> Fixture {
        fs::create_dir_all(site.data.join("pg_wal/archive_status")).unwrap();
        let spool = site.dir.path().join("spool");
        let fx = Fixture { site, spool, s3 };
        for (i, name) in SEGS.iter().enumerate() {
            fx.site.write_wal(name, &fx.content(name, i as u64));
            fx.mark_ready(name);
        }
        fx
    }

    /// The bytes of `name` as first written (`seed` distinguishes segments).
    fn content(&self, name: &str, seed: u64) -> Vec<u8> {
        if name == HISTORY {
            HISTORY_TEXT.to_vec()
        } else {
            segment(name, MIB, SYSID, seed)
        }
    }

    fn original(&self, name: &str) -> Vec<u8> {
        let seed = SEGS.iter().position(|s| *s == name).unwrap_or(0) as u64;
        self.content(name, seed)
    }

    fn mark_ready(&self, name: &str) {
        fs::write(self.status().join(format!("{name}.ready")), "").unwrap();
    }

    fn status(&self) -> PathBuf {
        self.site.data.join("pg_wal/archive_status")
    }

    /// The names in `archive_status/`, sorted: what only the database may change.
    fn status_files(&self) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(self.status())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn args(&self, parallel: u32) -> String {
        format!(
            "--parallel {parallel} --spool-dir {} --verbose",
            self.spool.display()
        )
    }

    /// One call as the database makes it: on exit 0 it marks the file `.done`.
    fn db_archive(&self, name: &str, parallel: u32) -> Ran {
        let r = self.site.archive(name, &self.args(parallel));
        if r.code == 0 {
            fs::rename(
                self.status().join(format!("{name}.ready")),
                self.status().join(format!("{name}.done")),
            )
            .unwrap();
        }
        r
    }

    /// The spool directory of this data directory (there is exactly one).
    fn spool_dir(&self) -> PathBuf {
        let dirs: Vec<PathBuf> = fs::read_dir(&self.spool)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.file_name()
                    .unwrap()
                    .to_string_lossy()
                    .starts_with("archive-")
            })
            .collect();
        assert_eq!(dirs.len(), 1, "{dirs:?}");
        dirs[0].clone()
    }

    /// Names with a spool entry, sorted.
    fn recorded(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(self.spool_dir()) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| {
                let n = e.unwrap().file_name().to_string_lossy().into_owned();
                n.strip_suffix(".pushed").map(str::to_owned)
            })
            .collect();
        names.sort();
        names
    }

    fn entry(&self, name: &str) -> PathBuf {
        self.spool_dir().join(format!("{name}.pushed"))
    }

    /// Restores `name` from the repository: its bytes, or `None` when not archived.
    fn restored(&self, name: &str) -> Option<Vec<u8>> {
        let _ = fs::remove_file(self.site.wal("RECOVERYXLOG"));
        let r = self.site.restore(name, "");
        match r.code {
            0 => self.site.restored(),
            _ => None,
        }
    }

    fn server(&self) -> &common::servers::Server {
        &self.s3.as_ref().expect("an S3 fixture").server
    }
}

/// Every file archived by the database's sequence of calls holds exactly what the
/// database wrote.
fn assert_all_archived(fx: &Fixture, names: &[&str]) {
    for name in names {
        assert_eq!(
            fx.restored(name).as_deref(),
            Some(fx.original(name).as_slice()),
            "{name} restores to its original bytes"
        );
    }
}

/// True when the call's verbose log says it stored `name` itself.
fn stored_by_this_call(r: &Ran, name: &str) -> bool {
    r.stderr.contains(&format!("archived {name} ("))
}

fn confirmed_by_spool(r: &Ran, name: &str) -> bool {
    r.stderr
        .contains(&format!("{name} is already archived by push-ahead"))
}

fn pushes_ahead_and_later_calls_only_confirm(fx: Fixture) {
    fx.site.write_wal(HISTORY, HISTORY_TEXT);
    fx.mark_ready(HISTORY);
    let before = fx.status_files();

    let r = fx.site.archive(SEGS[0], &fx.args(4));
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(stored_by_this_call(&r, SEGS[0]), "{}", r.stderr);
    // History first, then by name: the history file and the next two segments.
    assert_eq!(fx.recorded(), [SEGS[1], SEGS[2], HISTORY], "{}", r.stderr);
    for name in [HISTORY, SEGS[1], SEGS[2]] {
        assert!(stored_by_this_call(&r, name), "{name}: {}", r.stderr);
    }
    assert!(!r.stderr.contains(SEGS[3]), "only N-1 others: {}", r.stderr);
    assert_eq!(fx.status_files(), before, ".ready/.done are the database's");
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);

    // The database's own calls, in its order: those pushed ahead are only confirmed.
    fs::rename(
        fx.status().join(format!("{}.ready", SEGS[0])),
        fx.status().join(format!("{}.done", SEGS[0])),
    )
    .unwrap();
    for name in [HISTORY, SEGS[1], SEGS[2]] {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert!(confirmed_by_spool(&r, name), "{name}: {}", r.stderr);
        assert!(!stored_by_this_call(&r, name), "{name}: {}", r.stderr);
    }
    // A confirming call returns at once, pushing nothing ahead.
    assert!(fx.recorded().is_empty(), "confirmed entries are removed");
    let r = fx.db_archive(SEGS[3], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(stored_by_this_call(&r, SEGS[3]), "{}", r.stderr);
    assert_eq!(fx.recorded(), [SEGS[4]], "the only other ready file");
    let r = fx.db_archive(SEGS[4], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(confirmed_by_spool(&r, SEGS[4]), "{}", r.stderr);
    assert!(fx.recorded().is_empty());
    assert!(fx.status_files().iter().all(|n| n.ends_with(".done")));
    let mut all = SEGS.to_vec();
    all.push(HISTORY);
    assert_all_archived(&fx, &all);
}

#[test]
fn local_repository_pushes_ahead_and_later_calls_only_confirm() {
    pushes_ahead_and_later_calls_only_confirm(Fixture::local());
}

#[test]
fn s3_repository_pushes_ahead_and_later_calls_only_confirm() {
    pushes_ahead_and_later_calls_only_confirm(Fixture::s3());
}

/// Archives SEGS[0] pushing SEGS[1..4] ahead; returns the fixture with them recorded.
fn after_one_batch(fx: Fixture) -> Fixture {
    let r = fx.db_archive(SEGS[0], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fx.recorded(), &SEGS[1..4], "{}", r.stderr);
    fx
}

#[test]
fn a_damaged_spool_entry_is_archived_again_through_the_normal_path() {
    let fx = after_one_batch(Fixture::local());
    fs::write(fx.entry(SEGS[1]), "name = \"garbage\"\n\u{0}\u{1}").unwrap();
    let r = fx.db_archive(SEGS[1], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("damaged"), "{}", r.stderr);
    assert!(!confirmed_by_spool(&r, SEGS[1]), "{}", r.stderr);
    assert!(
        r.stderr.contains("already archived with identical content"),
        "{}",
        r.stderr
    );
    // An entry that is another file's is not trusted either.
    fs::copy(fx.entry(SEGS[3]), fx.entry(SEGS[2])).unwrap();
    let r = fx.db_archive(SEGS[2], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!confirmed_by_spool(&r, SEGS[2]), "{}", r.stderr);
    assert_all_archived(&fx, &SEGS);
}

#[test]
fn a_file_changed_after_it_was_pushed_ahead_is_refused() {
    for fx in [Fixture::local(), Fixture::s3()] {
        let fx = after_one_batch(fx);
        let changed = segment(SEGS[2], MIB, SYSID, 99);
        fx.site.write_wal(SEGS[2], &changed);
        let r = fx.db_archive(SEGS[2], 4);
        assert_eq!(
            r.code, 1,
            "never success for content not archived: {}",
            r.stderr
        );
        assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);
        assert!(r.stderr.contains(SEGS[2]), "{}", r.stderr);
        assert_eq!(
            fx.restored(SEGS[2]).as_deref(),
            Some(fx.original(SEGS[2]).as_slice()),
            "the archived copy is untouched"
        );
        // Same size, one byte different: the SHA-256 decides, not the size.
        let mut flipped = fx.original(SEGS[3]);
        flipped[MIB as usize / 4] ^= 1;
        fx.site.write_wal(SEGS[3], &flipped);
        let r = fx.db_archive(SEGS[3], 4);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);
    }
}

#[test]
fn without_the_spool_calls_still_succeed_by_comparing_content() {
    let fx = after_one_batch(Fixture::local());
    fs::remove_dir_all(&fx.spool).unwrap();
    let r = fx.db_archive(SEGS[1], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(!confirmed_by_spool(&r, SEGS[1]), "{}", r.stderr);
    assert!(
        r.stderr.contains("already archived with identical content"),
        "{}",
        r.stderr
    );
    for name in &SEGS[2..] {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
    assert_all_archived(&fx, &SEGS);
}

#[test]
fn an_object_removed_from_the_repository_after_recording_is_archived_again() {
    for fx in [Fixture::local(), Fixture::s3()] {
        let fx = after_one_batch(fx);
        // Behind push-ahead's back: uxwal-cleanup removes everything before 3.
        let out = Command::new(env!("CARGO_BIN_EXE_uxwal-cleanup"))
            .args(["--repo", &fx.site.location, SEGS[2]])
            .envs(fx.site.env.iter().map(|(k, v)| (k, v)))
            .env_remove("UXWAL_CONFIG")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(fx.restored(SEGS[1]), None, "the object is gone");
        let r = fx.db_archive(SEGS[1], 4);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(!confirmed_by_spool(&r, SEGS[1]), "{}", r.stderr);
        assert!(stored_by_this_call(&r, SEGS[1]), "{}", r.stderr);
        assert_eq!(
            fx.restored(SEGS[1]).as_deref(),
            Some(fx.original(SEGS[1]).as_slice())
        );
    }
}

/// Starts the call for SEGS[0] with `--parallel 4` as a child process.
fn spawn_batch(fx: &Fixture) -> Child {
    Command::new(ARCHIVE)
        .args(["--repo", &fx.site.location])
        .args(fx.args(4).split(' '))
        .arg(format!("pg_wal/{}", SEGS[0]))
        .arg(SEGS[0])
        .current_dir(&fx.site.data)
        .envs(fx.site.env.iter().map(|(k, v)| (k, v)))
        .env_remove("UXWAL_REPO")
        .env_remove("UXWAL_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn killed_in_the_middle_of_a_batch_the_next_calls_archive_everything() {
    let fx = Fixture::local();
    // One of the files pushed ahead is a FIFO: opening it blocks until a writer
    // comes, which holds the batch open deterministically while the others finish.
    let fifo = fx.site.wal(SEGS[3]);
    fs::remove_file(&fifo).unwrap();
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    let mut child = spawn_batch(&fx);
    let spool = fx.spool.clone();
    poll_until("the two regular files to be recorded", || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the batch ended before it was killed: {status}");
        }
        let recorded = fs::read_dir(&spool)
            .ok()
            .and_then(|mut d| d.next())
            .map(|_| fx.recorded())
            .unwrap_or_default();
        if recorded == [SEGS[1], SEGS[2]] {
            Ok(())
        } else {
            Err(format!("recorded {recorded:?}"))
        }
    });
    child.kill().unwrap(); // SIGKILL, in the middle of the batch
    child.wait().unwrap();
    fs::remove_file(&fifo).unwrap();
    fx.site.write_wal(SEGS[3], &fx.original(SEGS[3]));

    // The database retries the killed call, then goes on in its order.
    for name in SEGS {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
    assert_all_archived(&fx, &SEGS);
    assert!(fx.site.staging_files().is_empty());
}

/// Freezes the S3 server and starts the batch for SEGS[0]; returns once the call
/// is inside the batch (its spool directory exists only after the signal
/// handlers are installed), every request it makes now hanging.
fn start_batch_against_frozen_store(fx: &Fixture) -> Child {
    fx.server().freeze();
    let mut child = spawn_batch(fx);
    let spool = fx.spool.clone();
    poll_until("the batch to start", || {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the batch ended early: {status}");
        }
        let started = fs::read_dir(&spool).map(|d| d.count() > 0).unwrap_or(false);
        started.then_some(()).ok_or_else(|| "no spool yet".into())
    });
    child
}

#[test]
fn killed_while_the_store_hangs_the_next_calls_archive_everything() {
    let fx = Fixture::s3();
    let mut child = start_batch_against_frozen_store(&fx);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    fx.server().thaw();
    assert!(fx.recorded().is_empty());
    for name in SEGS {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
    assert_all_archived(&fx, &SEGS);
}

#[test]
fn a_shutdown_signal_stops_the_batch_and_nothing_is_reported_archived() {
    let fx = Fixture::s3();
    let child = start_batch_against_frozen_store(&fx);
    let sent = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    fx.server().thaw();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("shutdown signal"), "{stderr}");
    assert!(stderr.contains(SEGS[0]), "{stderr}");
    assert!(fx.recorded().is_empty(), "nothing recorded: {stderr}");
    for name in &SEGS[..4] {
        assert_eq!(fx.restored(name), None, "{name} was not published");
    }
    // The database retries: everything is archived.
    for name in SEGS {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
    assert_all_archived(&fx, &SEGS);
}

#[test]
fn a_spool_open_to_others_is_refused_and_the_file_is_archived_alone() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::local();
    fs::create_dir(&fx.spool).unwrap();
    fs::set_permissions(&fx.spool, fs::Permissions::from_mode(0o777)).unwrap();
    let r = fx.db_archive(SEGS[0], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("not pushing ahead"), "{}", r.stderr);
    assert!(r.stderr.contains("0700"), "{}", r.stderr);
    assert_eq!(fx.restored(SEGS[1]), None, "nothing pushed ahead");
    assert_all_archived(&fx, &SEGS[..1]);
}

#[test]
fn entries_of_files_the_database_removed_are_dropped() {
    let fx = after_one_batch(Fixture::local());
    // The database recycles segment 2 (its call was lost, say): file and status go.
    fs::remove_file(fx.site.wal(SEGS[2])).unwrap();
    fs::remove_file(fx.status().join(format!("{}.ready", SEGS[2]))).unwrap();
    let r = fx.db_archive(SEGS[1], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(fx.recorded(), [SEGS[3]], "{}", r.stderr);
}
