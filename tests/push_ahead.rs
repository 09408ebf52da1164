//! Push-ahead (`uxwal-archive --parallel N`, issue 7): a background worker ships
//! the files the database has marked ready, their own calls only confirm them; and
//! whatever happens to the calls, the worker, the spool, the local file or the
//! repository in between, no call reports success for content that is not in the
//! repository.

mod common;

use common::proxy::Proxy;
use common::servers::S3;
use common::*;
use std::fs;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

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
        let site = s3.site("cluster/push");
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

    /// Waits until the push-ahead worker (if one runs) has exited.
    fn wait_worker(&self) {
        if let Err(running) = wait_for_workers(&self.spool) {
            panic!("the push-ahead worker did not exit: {running}");
        }
    }

    /// The process ids of the push-ahead workers of this fixture's spool.
    fn worker_pids(&self) -> Vec<u32> {
        let spool = self.spool.to_string_lossy().into_owned();
        fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|e| {
                let pid: u32 = e.file_name().to_str()?.parse().ok()?;
                let cmdline = fs::read(e.path().join("cmdline")).ok()?;
                let args: Vec<String> = cmdline
                    .split(|b| *b == 0)
                    .map(|a| String::from_utf8_lossy(a).into_owned())
                    .collect();
                // The worker gets its settings as `--option=value` (cli/worker.rs).
                let spool_arg = format!("--spool-dir={spool}");
                let ours = args.contains(&spool) || args.contains(&spool_arg);
                (args.iter().any(|a| a == "--push-ahead-worker") && ours).then_some(pid)
            })
            .collect()
    }

    /// The one running worker's process id, once it runs.
    fn worker_pid(&self) -> u32 {
        poll_until("the push-ahead worker to run", || {
            match self.worker_pids()[..] {
                [pid] => Ok(pid),
                ref other => Err(format!("workers {other:?}")),
            }
        })
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
    assert!(
        r.stderr.contains("started a push-ahead worker"),
        "{}",
        r.stderr
    );
    fx.wait_worker();
    // The worker pushed every other ready file; the call's own file it left alone.
    assert_eq!(
        fx.recorded(),
        [SEGS[1], SEGS[2], SEGS[3], SEGS[4], HISTORY],
        "{}",
        r.stderr
    );
    assert_eq!(fx.status_files(), before, ".ready/.done are the database's");
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);

    // The database's own calls, in its order: those pushed ahead are only confirmed.
    fs::rename(
        fx.status().join(format!("{}.ready", SEGS[0])),
        fx.status().join(format!("{}.done", SEGS[0])),
    )
    .unwrap();
    for name in [HISTORY, SEGS[1], SEGS[2], SEGS[3], SEGS[4]] {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert!(confirmed_by_spool(&r, name), "{name}: {}", r.stderr);
        assert!(!stored_by_this_call(&r, name), "{name}: {}", r.stderr);
        assert!(!r.stderr.contains("identical content"), "{}", r.stderr);
    }
    fx.wait_worker();
    assert!(fx.recorded().is_empty(), "confirmed entries are removed");
    assert!(fx.status_files().iter().all(|n| n.ends_with(".done")));
    // Files made ready later: the next call starts a new worker for them.
    let late = ["000000010000000000000006", "000000010000000000000007"];
    for (i, name) in late.iter().enumerate() {
        fx.site
            .write_wal(name, &segment(name, MIB, SYSID, 6 + i as u64));
        fx.mark_ready(name);
    }
    let r = fx.db_archive(late[0], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(stored_by_this_call(&r, late[0]), "{}", r.stderr);
    fx.wait_worker();
    assert_eq!(fx.recorded(), [late[1]]);
    let r = fx.db_archive(late[1], 4);
    assert!(confirmed_by_spool(&r, late[1]), "{}", r.stderr);
    let mut all = SEGS.to_vec();
    all.push(HISTORY);
    assert_all_archived(&fx, &all);
    for (i, name) in late.iter().enumerate() {
        assert_eq!(
            fx.restored(name),
            Some(segment(name, MIB, SYSID, 6 + i as u64))
        );
    }
}

#[test]
fn local_repository_pushes_ahead_and_later_calls_only_confirm() {
    pushes_ahead_and_later_calls_only_confirm(Fixture::local());
}

#[test]
fn s3_repository_pushes_ahead_and_later_calls_only_confirm() {
    pushes_ahead_and_later_calls_only_confirm(Fixture::s3());
}

/// Archives SEGS[0], its worker pushing SEGS[1..] ahead; returns the fixture with
/// them recorded and the worker gone.
fn after_one_batch(fx: Fixture) -> Fixture {
    let r = fx.db_archive(SEGS[0], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    fx.wait_worker();
    assert_eq!(fx.recorded(), &SEGS[1..], "{}", r.stderr);
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
    // A new worker pushed the others again: found identical, recorded, confirmed.
    for name in &SEGS[2..] {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
    fx.wait_worker();
    assert_all_archived(&fx, &SEGS);
}

#[test]
fn an_object_removed_from_the_repository_after_recording_is_trusted_as_stored() {
    // The record is written only once the store confirmed the object durable;
    // from then on the object is the store's to keep, as after a call that
    // stored it itself: the confirmation asks no repository (docs/push-ahead.md).
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
        assert!(confirmed_by_spool(&r, SEGS[1]), "{}", r.stderr);
    }
}

/// Waits until every WAL file of `fx` was last changed more than push-ahead's
/// settling time ago (2 s, `src/pipeline/stamp.rs`), so that the worker takes
/// stamps: a wait for a clock condition, not for another process.
fn settled(fx: Fixture) -> Fixture {
    use std::os::unix::fs::MetadataExt;
    let newest = SEGS
        .iter()
        .map(|n| {
            let m = fs::metadata(fx.site.wal(n)).unwrap();
            std::time::UNIX_EPOCH
                + std::time::Duration::new(m.ctime() as u64, m.ctime_nsec() as u32)
        })
        .max()
        .unwrap();
    let until = newest + std::time::Duration::from_millis(2100);
    if let Ok(left) = until.duration_since(std::time::SystemTime::now()) {
        std::thread::sleep(left);
    }
    fx
}

fn confirmed_by(r: &Ran, name: &str, proof: &str) -> bool {
    r.stderr
        .contains(&format!("{name}: its push ahead is confirmed by {proof}"))
}

/// Puts `bytes` in place of `name` (rewritten in place, or renamed over it when
/// `by_rename`), keeping its mtime.
fn replace_keeping_mtime(fx: &Fixture, name: &str, bytes: &[u8], by_rename: bool) {
    let path = fx.site.wal(name);
    let mtime = fs::metadata(&path).unwrap().modified().unwrap();
    let target = if by_rename {
        fx.site.wal(&format!("{name}.new"))
    } else {
        path.clone()
    };
    fs::write(&target, bytes).unwrap();
    fs::File::options()
        .write(true)
        .open(&target)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    if by_rename {
        fs::rename(&target, &path).unwrap();
    }
    assert_eq!(fs::metadata(&path).unwrap().modified().unwrap(), mtime);
}

#[test]
fn a_settled_file_is_confirmed_by_its_stamp_and_any_rewrite_or_replacement_is_caught() {
    for fx in [Fixture::local(), Fixture::s3()] {
        let fx = after_one_batch(settled(fx));
        let r = fx.db_archive(SEGS[1], 4);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(confirmed_by(&r, SEGS[1], "its stamp"), "{}", r.stderr);

        // Rewritten in place, same size, mtime set back: ctime gives it away.
        let mut changed = fx.original(SEGS[2]);
        changed[MIB as usize / 2] ^= 1;
        replace_keeping_mtime(&fx, SEGS[2], &changed, false);
        let r = fx.db_archive(SEGS[2], 4);
        assert_eq!(
            r.code, 1,
            "never success for content not archived: {}",
            r.stderr
        );
        assert!(!confirmed_by_spool(&r, SEGS[2]), "{}", r.stderr);
        assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);

        // Replaced by a rename, same size and mtime: another inode.
        let mut changed = fx.original(SEGS[3]);
        changed[MIB as usize / 3] ^= 1;
        replace_keeping_mtime(&fx, SEGS[3], &changed, true);
        let r = fx.db_archive(SEGS[3], 4);
        assert_eq!(r.code, 1, "{}", r.stderr);
        assert!(!confirmed_by_spool(&r, SEGS[3]), "{}", r.stderr);
        assert!(r.stderr.contains("refusing to overwrite"), "{}", r.stderr);

        // Replaced by identical bytes: the stamp differs, the SHA-256 decides.
        replace_keeping_mtime(&fx, SEGS[4], &fx.original(SEGS[4]), true);
        let r = fx.db_archive(SEGS[4], 4);
        assert_eq!(r.code, 0, "{}", r.stderr);
        assert!(confirmed_by(&r, SEGS[4], "its SHA-256"), "{}", r.stderr);
        for name in [SEGS[1], SEGS[4]] {
            assert_eq!(
                fx.restored(name).as_deref(),
                Some(fx.original(name).as_slice())
            );
        }
        for name in [SEGS[2], SEGS[3]] {
            assert_eq!(
                fx.restored(name).as_deref(),
                Some(fx.original(name).as_slice()),
                "the archived copy is untouched"
            );
        }
    }
}

#[test]
fn a_record_for_other_repositories_another_identity_or_other_recipients_is_never_used() {
    let fx = after_one_batch(settled(Fixture::local()));
    let edit = |name: &str, from: &str, to: &str| {
        let text = fs::read_to_string(fx.entry(name)).unwrap();
        assert!(text.contains(from), "{text}");
        fs::write(fx.entry(name), text.replacen(from, to, 1)).unwrap();
    };
    edit(
        SEGS[1],
        &format!("system_identifier = \"{SYSID}\""),
        "system_identifier = \"1\"",
    );
    edit(SEGS[2], "location = \"", "location = \"/elsewhere");
    edit(
        SEGS[3],
        "[[repos]]",
        "encrypted_to = [\"age1nobody\"]\n\n[[repos]]",
    );
    for (name, why) in [
        (SEGS[1], "another archive identity"),
        (SEGS[2], "other repositories"),
        (SEGS[3], "other encryption settings"),
    ] {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert!(!confirmed_by_spool(&r, name), "{name}: {}", r.stderr);
        assert!(r.stderr.contains(why), "{name}: {}", r.stderr);
        assert!(
            r.stderr.contains("already archived with identical content"),
            "{name}: {}",
            r.stderr
        );
    }
    assert_all_archived(&fx, &SEGS);
}

/// Starts the call for `name` with `--parallel 4` as a child process.
fn spawn_call(fx: &Fixture, name: &str) -> Child {
    Command::new(ARCHIVE)
        .args(["--repo", &fx.site.location])
        .args(fx.args(4).split(' '))
        .arg(format!("pg_wal/{name}"))
        .arg(name)
        .current_dir(&fx.site.data)
        .envs(fx.site.env.iter().map(|(k, v)| (k, v)))
        .env_remove("UXWAL_REPO")
        .env_remove("UXWAL_CONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Replaces `name` in pg_wal with a FIFO: opening it blocks until a writer comes,
/// which holds the worker's push of it open deterministically.
fn make_fifo(fx: &Fixture, name: &str) -> PathBuf {
    let fifo = fx.site.wal(name);
    fs::remove_file(&fifo).unwrap();
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());
    fifo
}

/// Polls until exactly `names` are recorded.
fn until_recorded(fx: &Fixture, names: &[&str]) {
    poll_until("the regular files to be recorded", || {
        let recorded = fs::read_dir(&fx.spool)
            .ok()
            .and_then(|mut d| d.next())
            .map(|_| fx.recorded())
            .unwrap_or_default();
        if recorded == names {
            Ok(())
        } else {
            Err(format!("recorded {recorded:?}"))
        }
    });
}

#[test]
fn worker_killed_in_the_middle_of_a_push_the_next_calls_archive_everything() {
    let fx = Fixture::local();
    let fifo = make_fifo(&fx, SEGS[3]);
    let r = fx.db_archive(SEGS[0], 4);
    assert_eq!(
        r.code, 0,
        "the call does not wait for the worker: {}",
        r.stderr
    );
    until_recorded(&fx, &[SEGS[1], SEGS[2], SEGS[4]]);
    // The worker is stuck opening the FIFO: kill it in the middle of its push.
    signal(fx.worker_pid(), "KILL");
    fx.wait_worker();
    fs::remove_file(&fifo).unwrap();
    fx.site.write_wal(SEGS[3], &fx.original(SEGS[3]));

    // The database goes on in its order: the file whose push was cut short is
    // archived by its own call, the others are confirmed.
    for name in &SEGS[1..] {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
        assert_eq!(
            stored_by_this_call(&r, name),
            *name == SEGS[3],
            "{name}: {}",
            r.stderr
        );
    }
    fx.wait_worker();
    assert_all_archived(&fx, &SEGS);
    assert!(fx.site.staging_files().is_empty());
}

#[test]
fn the_call_for_a_file_the_worker_cannot_push_archives_it_itself() {
    let fx = Fixture::local();
    let fifo = make_fifo(&fx, SEGS[1]);
    let r = fx.db_archive(SEGS[0], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    until_recorded(&fx, &[SEGS[2], SEGS[3], SEGS[4]]);
    // The call for SEGS[1] waits for the worker's push of it...
    let (call, mut log) = spawn_logged_call(&fx, SEGS[1]);
    log.until("waiting for that push");
    // ...which fails once the FIFO opens: it is not a regular file. Opening it
    // for writing lets the worker's open return.
    // Kept open until the call is done, so that its own open of the FIFO returns too.
    let writer = fs::OpenOptions::new().write(true).open(&fifo).unwrap();
    let (status, stderr) = log.finish(call);
    drop(writer);
    fx.wait_worker();
    // The call then archives it itself, through the normal path: a FIFO is refused.
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(fx.recorded().iter().all(|n| n != SEGS[1]));
    fs::remove_file(&fifo).unwrap();
    fx.site.write_wal(SEGS[1], &fx.original(SEGS[1]));
    for name in &SEGS[1..] {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
    fx.wait_worker();
    assert_all_archived(&fx, &SEGS);
}

/// The standard error of a running call, line by line.
struct CallLog {
    lines: std::sync::mpsc::Receiver<String>,
    seen: String,
}

impl CallLog {
    /// Waits for a line containing `text` (bounded by [`WAIT_TIMEOUT`], against a hang).
    fn until(&mut self, text: &str) {
        loop {
            match self.lines.recv_timeout(WAIT_TIMEOUT) {
                Ok(line) => {
                    self.seen.push_str(&line);
                    self.seen.push('\n');
                    if line.contains(text) {
                        return;
                    }
                }
                Err(e) => panic!("no line with {text:?} ({e}); seen:\n{}", self.seen),
            }
        }
    }

    /// Waits for the call to exit; its status and whole standard error.
    fn finish(mut self, mut call: Child) -> (std::process::ExitStatus, String) {
        let status = call.wait().unwrap();
        self.seen.extend(self.lines.iter().map(|l| l + "\n"));
        (status, self.seen)
    }
}

/// [`spawn_call`], its standard error read as it comes.
fn spawn_logged_call(fx: &Fixture, name: &str) -> (Child, CallLog) {
    use std::io::BufRead;
    let mut call = spawn_call(fx, name);
    let stderr = std::io::BufReader::new(call.stderr.take().unwrap());
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    (
        call,
        CallLog {
            lines,
            seen: String::new(),
        },
    )
}

/// The S3 fixture, reached through a proxy that can hold requests.
fn s3_behind_proxy() -> (Fixture, Proxy) {
    let mut fx = Fixture::s3();
    let proxy = Proxy::start(fx.server().port, None);
    for (key, value) in fx.site.env.iter_mut() {
        if key == "AWS_ENDPOINT_URL" {
            *value = proxy.endpoint();
        }
    }
    (fx, proxy)
}

#[test]
fn the_call_for_a_file_being_pushed_waits_for_that_push_instead_of_uploading_again() {
    let (fx, proxy) = s3_behind_proxy();
    // The repository exists and has its identity (no worker: --parallel 1).
    let r = fx.db_archive(SEGS[0], 1);
    assert_eq!(r.code, 0, "{}", r.stderr);
    proxy.take_requests();

    // The worker's upload of SEGS[2] hangs in the proxy, its lock held.
    proxy.hold(&format!("{} HTTP", SEGS[2]));
    let r = fx.db_archive(SEGS[1], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(stored_by_this_call(&r, SEGS[1]), "{}", r.stderr);
    until_recorded(&fx, &[SEGS[3], SEGS[4]]);
    let (call, mut log) = spawn_logged_call(&fx, SEGS[2]);
    log.until("waiting for that push");
    proxy.release();
    let (status, stderr) = log.finish(call);
    fx.wait_worker();
    assert_eq!(status.code(), Some(0), "{stderr}");
    let ran = Ran {
        code: 0,
        stdout: String::new(),
        stderr: stderr.clone(),
    };
    assert!(confirmed_by_spool(&ran, SEGS[2]), "{stderr}");
    assert!(!stored_by_this_call(&ran, SEGS[2]), "{stderr}");
    assert!(!stderr.contains("identical content"), "{stderr}");

    // Uploaded once: one PUT of each file; the worker checked the repository
    // once for its run, not once per file (the call for SEGS[1] once, too; the
    // confirmation asks nothing).
    let requests = proxy.take_requests();
    let shown = requests.join("\n");
    for name in &SEGS[1..] {
        let puts = requests
            .iter()
            .filter(|l| l.starts_with("PUT ") && l.contains(name))
            .count();
        assert_eq!(puts, 1, "{name}:\n{shown}");
    }
    let count = |key: &str| {
        requests
            .iter()
            .filter(|l| l.contains(&format!("/{key} HTTP")))
            .count()
    };
    assert_eq!(count("FORMAT"), 2, "the call and the worker:\n{shown}");
    assert_eq!(count("IDENTITY"), 2, "the call and the worker:\n{shown}");
    for name in &SEGS[3..] {
        let r = fx.db_archive(name, 4);
        assert!(confirmed_by_spool(&r, name), "{name}: {}", r.stderr);
    }
    // Confirmations are local: not one request.
    let requests = proxy.take_requests();
    assert!(requests.is_empty(), "{}", requests.join("\n"));
    fx.wait_worker();
    assert_all_archived(&fx, &SEGS);
}

/// Freezes the S3 server and starts the call for SEGS[0]; returns it once its
/// worker runs, every request both make now hanging.
fn start_against_frozen_store(fx: &Fixture) -> (Child, u32) {
    fx.server().freeze();
    let mut child = spawn_call(fx, SEGS[0]);
    let worker = fx.worker_pid();
    if let Some(status) = child.try_wait().unwrap() {
        panic!("the call ended early: {status}");
    }
    (child, worker)
}

#[test]
fn killed_while_the_store_hangs_the_next_calls_archive_everything() {
    let fx = Fixture::s3();
    let (mut child, worker) = start_against_frozen_store(&fx);
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    signal(worker, "KILL");
    fx.wait_worker();
    fx.server().thaw();
    assert!(fx.recorded().is_empty());
    for name in SEGS {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
    fx.wait_worker();
    assert_all_archived(&fx, &SEGS);
}

#[test]
fn a_shutdown_signal_stops_the_call_and_the_worker_and_nothing_is_reported_archived() {
    let fx = Fixture::s3();
    let (child, worker) = start_against_frozen_store(&fx);
    // The worker stops on its own signal, even while its requests hang.
    signal(worker, "TERM");
    fx.wait_worker();
    signal(child.id(), "TERM");
    fx.server().thaw();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("shutdown signal"), "{stderr}");
    assert!(stderr.contains(SEGS[0]), "{stderr}");
    assert!(fx.recorded().is_empty(), "nothing recorded: {stderr}");
    for name in SEGS {
        assert_eq!(fx.restored(name), None, "{name} was not published");
    }
    // The database retries: everything is archived.
    for name in SEGS {
        let r = fx.db_archive(name, 4);
        assert_eq!(r.code, 0, "{name}: {}", r.stderr);
    }
    fx.wait_worker();
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
    let lock = |name: &str| fx.spool_dir().join(format!("{name}.lock"));
    assert!(lock(SEGS[2]).exists());
    let r = fx.db_archive(SEGS[1], 4);
    assert_eq!(r.code, 0, "{}", r.stderr);
    fx.wait_worker();
    assert_eq!(fx.recorded(), [SEGS[3], SEGS[4]], "{}", r.stderr);
    assert!(!lock(SEGS[2]).exists(), "its lock file went too");
    assert!(lock(SEGS[3]).exists(), "the others stay claimed");
}

#[test]
fn the_worker_ships_with_the_settings_of_the_call_that_started_it() {
    let fx = Fixture::local();
    let r = fx.site.archive(
        SEGS[0],
        &format!("{} --compress gzip --level 9", fx.args(4)),
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    fx.wait_worker();
    assert_eq!(fx.recorded(), &SEGS[1..], "{}", r.stderr);
    for name in SEGS {
        let stored = fx.site.archived(name);
        assert_eq!(stored.len(), 1, "{name}: {stored:?}");
        let bytes = fs::read(&stored[0]).unwrap();
        assert_eq!(bytes[..2], [0x1f, 0x8b], "{name} is stored as gzip");
    }
    assert_all_archived(&fx, &SEGS);
}

#[test]
fn a_repository_spool_and_configuration_given_relative_to_the_data_directory_reach_the_worker() {
    let mut fx = Fixture::local();
    // The worker runs in the spool directory, not in the data directory.
    fx.site.location = "../repo".into();
    fs::write(
        fx.site.dir.path().join("uxwal.toml"),
        "compress = \"gzip\"\n",
    )
    .unwrap();
    let r = fx.site.archive(
        SEGS[0],
        "--parallel 4 --spool-dir ../spool --config ../uxwal.toml --verbose",
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("started a push-ahead worker"),
        "{}",
        r.stderr
    );
    fx.wait_worker();
    assert_eq!(fx.recorded(), &SEGS[1..], "{}", r.stderr);
    let stored = fs::read(&fx.site.archived(SEGS[1])[0]).unwrap();
    assert_eq!(stored[..2], [0x1f, 0x8b], "the file's codec");
}
