//! Push-ahead (`uxwal-archive --parallel N`): a detached worker ships the files
//! the database has already marked ready, up to N-1 at a time, through the same
//! pipeline as the call's own file ([`ship::archive_file_checked`]), so that
//! their own calls only have to confirm them. Guarantees: a call exits 0 for a
//! pushed file only when the durable spool record (written after every
//! repository confirmed the object) names the call's repositories, recipients
//! and the file's own identity, and the local file is provably the one shipped
//! (its [`FileStamp`] or its hash), all without a round trip; `.ready`/`.done`
//! files are never touched; per-file locks keep a file from being shipped twice.
//! The design and what each guarantee rests on: `docs/push-ahead.md`.

use std::fs::{self, File};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::spool::{self, SpoolDir};
use super::{detach, Launcher, WorkerJob};
use crate::codec::hex;
use crate::error::{Error, Result};
use crate::pipeline::ship::{self, ArchiveOutcome, Archived, CheckedRepos, Shipped};
use crate::pipeline::stamp::FileStamp;
use crate::repo::Repository;
use crate::signals;
use crate::wal::header::{LongPageHeader, LONG_HEADER_LEN};
use crate::wal::name::WalName;

/// What an archive call with push-ahead, and the worker it starts, run with.
#[derive(Debug, Clone)]
pub struct Job {
    /// How every file is shipped.
    pub ship: ship::Settings,
    /// Files in flight (`--parallel`, at least 2): the worker pushes up to
    /// `parallel - 1` at a time.
    pub parallel: usize,
    /// The spool root.
    pub spool_dir: PathBuf,
    /// The WAL directory whose ready files the worker pushes (absolute).
    pub wal_dir: PathBuf,
    /// The configuration file the call was given, handed on to the worker.
    pub config_file: Option<PathBuf>,
}

/// Suffix of a spool entry: `<name>.pushed`.
const ENTRY_SUFFIX: &str = ".pushed";
/// Suffix of a per-file lock: `<name>.lock`.
const LOCK_SUFFIX: &str = ".lock";
/// Largest spool entry read; anything bigger is not one of ours.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// Archives `wal_path` as `name` and makes sure a push-ahead worker runs (see the
/// module documentation).
/// `job.wal_dir` is the directory of `wal_path`, made absolute.
pub fn run(wal_path: &Path, name: &WalName, job: &Job, launch: Launcher) -> Result<Archived> {
    signals::install();
    let settings = &job.ship;
    let spool = match Spool::open(
        &job.spool_dir,
        &job.wal_dir,
        spool::data_directory().as_deref(),
    ) {
        Ok(spool) => spool,
        Err(e) => {
            // Push-ahead only saves time: without a spool, archive this file alone.
            tracing::warn!("{name}: not pushing ahead: {e}");
            let repos = ship::open_repos(settings)?;
            return ship::archive_file(&repos, wal_path, name, settings).map(Archived::from);
        }
    };
    spool.remove_stale();
    // Held until this call has confirmed or archived the file: the worker leaves it alone.
    let _claim = spool.claim_waiting(name, settings.store.deadline);
    // Started before this file is done, so that the two overlap; and only when
    // there is work for it (a file made ready later comes with its own call).
    if spool.has_unclaimed() {
        match spool.start_worker(job, launch) {
            Ok(true) => tracing::debug!("started a push-ahead worker"),
            Ok(false) => {}
            Err(e) => tracing::warn!("{name}: cannot start the push-ahead worker: {e}"),
        }
    }
    if let Some(confirmed) = spool.confirms(name, wal_path, settings) {
        tracing::debug!("{name} is already archived by push-ahead (confirmed)");
        return Ok(confirmed);
    }
    let repos = ship::open_repos(settings)?;
    ship::archive_file(&repos, wal_path, name, settings).map(Archived::from)
}

/// How a worker run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerOutcome {
    /// No ready file is left that nobody has claimed.
    Done,
    /// Another worker holds the lock.
    AlreadyRunning,
    /// A shutdown signal arrived.
    Stopped,
}

/// The hidden worker mode (`uxwal-archive --push-ahead-worker [OPTIONS]`): pushes
/// the ready files of `wal_dir` until none is left, then exits. `lock_fd` is the
/// worker lock inherited from the call that started it; without it (run by hand
/// or by a test) the worker takes the lock itself.
pub fn run_worker(job: &Job, lock_fd: Option<RawFd>) -> Result<WorkerOutcome> {
    let job = job.clone();
    // A publish is atomic: an object is whole or absent, and one published
    // without an entry is found and compared by its own call.
    detach::run_until_stopped("push-ahead worker", WorkerOutcome::Stopped, move || {
        work(&job, lock_fd)
    })
}

fn work(job: &Job, lock_fd: Option<RawFd>) -> Result<WorkerOutcome> {
    let settings = &job.ship;
    let spool = Spool::open(&job.spool_dir, &job.wal_dir, None)?;
    let lock_error = |e: io::Error| Error::Internal(format!("push-ahead worker lock: {e}"));
    let lock = match lock_fd {
        Some(fd) => spool.dir.adopt_worker_lock(fd).map_err(lock_error)?,
        None => match spool.dir.try_worker_lock().map_err(lock_error)? {
            Some(lock) => lock,
            None => return Ok(WorkerOutcome::AlreadyRunning),
        },
    };
    let threads = job.parallel.saturating_sub(1).max(1);
    // Checked once per run, before the first push; a repository that has no
    // identity yet (a new one) gets it from the first segment stored there,
    // and every later file uses it (see `push_one`).
    let checked = Mutex::new(CheckedRepos::check(&ship::open_repos(settings)?, settings)?);
    loop {
        let claimed = push_ready(&spool, settings, &checked, threads);
        if signals::stop_requested() {
            return Ok(WorkerOutcome::Stopped);
        }
        if claimed > 0 {
            continue;
        }
        // Nothing left. A call tries the worker lock only *after* the database
        // marked its file ready, so looking again *after* letting go of the lock
        // cannot miss a file whose caller saw the lock still held.
        lock.unlock().map_err(lock_error)?;
        if !spool.has_unclaimed() || lock.try_lock().is_err() {
            return Ok(WorkerOutcome::Done);
        }
    }
}

/// Pushes the ready files nobody has claimed, `threads` at a time, in the
/// database's order. Returns how many this round claimed.
fn push_ready(
    spool: &Spool,
    settings: &ship::Settings,
    checked: &Mutex<CheckedRepos>,
    threads: usize,
) -> usize {
    spool.remove_stale();
    let names = spool.unclaimed();
    let next = AtomicUsize::new(0);
    let claimed = AtomicUsize::new(0);
    super::on_threads(threads.min(names.len()), || loop {
        if signals::stop_requested() {
            return;
        }
        let Some(name) = names.get(next.fetch_add(1, Ordering::SeqCst)) else {
            return;
        };
        // Held until the push is recorded or has failed.
        let Some(_lock) = spool.claim_new(name) else {
            continue;
        };
        claimed.fetch_add(1, Ordering::SeqCst);
        push_one(spool, name, settings, checked);
    });
    claimed.into_inner()
}

/// Archives one file ahead of its own call and records it; failures are warnings.
fn push_one(
    spool: &Spool,
    name: &WalName,
    settings: &ship::Settings,
    checked: &Mutex<CheckedRepos>,
) {
    let path = spool.wal_dir.join(name.to_string());
    let known = checked.lock().unwrap_or_else(|p| p.into_inner()).clone();
    // Repositories of its own: their deadline (`--deadline`) bounds this file alone.
    let shipped = ship::open_repos(settings).and_then(|repos| {
        let shipped = ship::archive_file_checked(&repos, &path, name, settings, Some(&known))?;
        checked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .learn(&shipped.identities);
        PushedEntry::new(name, &shipped, &repos, settings)
    });
    if signals::stop_requested() {
        // Not recorded: its own call will find it stored, or not, and compare.
        return;
    }
    match shipped {
        Ok(entry) => match spool.record(&entry) {
            Ok(()) => tracing::debug!("{name} pushed ahead and recorded"),
            Err(e) => {
                tracing::warn!("{name}: pushed ahead, but cannot record it in the spool: {e}")
            }
        },
        // The database removed or recycled it after listing: nothing to do.
        Err(Error::Source { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("{name}: not pushed ahead (its own call will retry): {e}"),
    }
}

/// The names of `archive_status/*.ready` in `status_dir` that are WAL names.
/// An unreadable directory gives none: push-ahead is optional.
fn ready_names(status_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(status_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".ready"))
                .map(str::to_owned)
        })
        .collect()
}

/// The files to push from the `.ready` base names: valid WAL names not `taken`,
/// in the order PostgreSQL archives them (`pgarch.c` `ready_file_comparator`:
/// history files first, then by name).
fn choose(ready: Vec<String>, taken: impl Fn(&WalName) -> bool) -> Vec<WalName> {
    let mut names: Vec<(bool, String, WalName)> = ready
        .into_iter()
        .filter_map(|n| {
            let name = n.parse::<WalName>().ok()?;
            (!taken(&name)).then_some((!matches!(name, WalName::History { .. }), n, name))
        })
        .collect();
    names.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    names.into_iter().map(|(_, _, n)| n).collect()
}

/// A spool entry: what was pushed ahead, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PushedEntry {
    name: String,
    /// Size of the local file.
    size: u64,
    /// SHA-256 of the local file, lower-case hex.
    sha256: String,
    /// One per repository, in the order given to the command.
    repos: Vec<RepoRecord>,
    /// The recipients it was encrypted to, as configured (empty: not encrypted).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    encrypted_to: Vec<String>,
    /// The local file's [`FileStamp`] when it was read, when one could be taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stamp: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoRecord {
    /// The location exactly as configured.
    location: String,
    /// The repository's system identifier (decimal), when it has an identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system_identifier: Option<String>,
    /// Size of the stored object.
    stored_size: u64,
}

impl PushedEntry {
    /// The entry for `shipped`; identities not already known are read from `repos`.
    fn new(
        name: &WalName,
        shipped: &Shipped,
        repos: &[Repository],
        settings: &ship::Settings,
    ) -> Result<Self> {
        let mut records = Vec::with_capacity(repos.len());
        for (i, repo) in repos.iter().enumerate() {
            let identity = match shipped.identities.get(i).copied().flatten() {
                Some(identity) => Some(identity),
                None => repo.identity()?,
            };
            records.push(RepoRecord {
                location: settings.repos[i].clone(),
                system_identifier: identity.map(|i| i.system_identifier.to_string()),
                stored_size: shipped.stored_sizes[i],
            });
        }
        Ok(PushedEntry {
            name: name.to_string(),
            size: shipped.size,
            sha256: hex(&shipped.sha256),
            repos: records,
            encrypted_to: recipients_of(settings),
            stamp: shipped.stamp.map(|s| s.to_string()),
        })
    }

    /// Parses an entry for `name`; `None` for anything that is not one.
    pub(crate) fn parse(text: &str, name: &WalName) -> Option<Self> {
        let entry: PushedEntry = toml::from_str(text).ok()?;
        let well_formed = entry.name == name.to_string()
            && entry.sha256.len() == 64
            && entry
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && !entry.repos.is_empty()
            && entry
                .stamp
                .as_deref()
                .is_none_or(|s| s.parse::<FileStamp>().is_ok());
        well_formed.then_some(entry)
    }
}

/// The spool directory of one WAL directory, held by descriptor (see [`spool`]).
struct Spool {
    dir: SpoolDir,
    /// The WAL directory, canonical.
    wal_dir: PathBuf,
}

impl Spool {
    /// Opens (creating) `<root>/archive-<16 hex digits of the SHA-256 of the
    /// canonical WAL directory path>`: one per cluster, so that two clusters on one
    /// host never see each other's entries. Root and directory must be private;
    /// with `data_dir` (the foreground), a root inside it is refused.
    fn open(root: &Path, wal_dir: &Path, data_dir: Option<&Path>) -> Result<Spool> {
        let canonical = fs::canonicalize(wal_dir).map_err(|e| {
            Error::Config(format!(
                "cannot resolve the WAL directory {}: {e}",
                wal_dir.display()
            ))
        })?;
        let key = spool::location_key(canonical.as_os_str().as_encoded_bytes());
        let dir = SpoolDir::open_root(root, data_dir)?.open_dir(&format!("archive-{key}"))?;
        Ok(Spool {
            dir,
            wal_dir: canonical,
        })
    }

    fn entry_name(name: &WalName) -> String {
        format!("{name}{ENTRY_SUFFIX}")
    }

    fn lock_name(name: &WalName) -> String {
        format!("{name}{LOCK_SUFFIX}")
    }

    fn has_entry(&self, name: &WalName) -> bool {
        self.dir.exists(&Self::entry_name(name))
    }

    /// The ready files that nobody has claimed (no lock file) or recorded, in
    /// the database's order.
    fn unclaimed(&self) -> Vec<WalName> {
        choose(ready_names(&self.wal_dir.join("archive_status")), |name| {
            self.taken(name)
        })
    }

    /// Whether any ready file is unclaimed: [`Spool::unclaimed`] without
    /// looking further than the first (every call asks, whatever the backlog).
    fn has_unclaimed(&self) -> bool {
        ready_names(&self.wal_dir.join("archive_status"))
            .iter()
            .filter_map(|n| n.parse::<WalName>().ok())
            .any(|name| !self.taken(&name))
    }

    fn taken(&self, name: &WalName) -> bool {
        self.dir.exists(&Self::lock_name(name)) || self.has_entry(name)
    }

    /// Claims `name` for the worker: creates its lock file, which must not exist
    /// yet, and locks it. `None`: claimed by someone else.
    fn claim_new(&self, name: &WalName) -> Option<File> {
        let lock = self.dir.open_lock(&Self::lock_name(name), true).ok()?;
        // A call that opened the new file first archives the file itself.
        lock.try_lock().ok()?;
        Some(lock)
    }

    /// Claims `name` for its own call: takes its lock, waiting up to `limit`
    /// while the worker pushes it. `None` when the lock cannot be had: the call
    /// then archives the file anyway (a second upload of the same content is
    /// found identical, never stored twice).
    fn claim_waiting(&self, name: &WalName, limit: Duration) -> Option<File> {
        let lock = match self.dir.open_lock(&Self::lock_name(name), false) {
            Ok(lock) => lock,
            Err(e) => {
                tracing::warn!("{name}: cannot open its push-ahead lock: {e}");
                return None;
            }
        };
        match lock.try_lock() {
            Ok(()) => return Some(lock),
            Err(fs::TryLockError::WouldBlock) => {}
            Err(fs::TryLockError::Error(e)) => {
                tracing::warn!("{name}: cannot take its push-ahead lock: {e}");
                return None;
            }
        }
        tracing::debug!("{name} is being pushed ahead; waiting for that push");
        let (tx, rx) = mpsc::channel();
        // A blocking lock cannot be given up on, so it waits on a thread of its
        // own, which simply ends with the process when the wait is abandoned.
        let waiting = std::thread::Builder::new().spawn(move || {
            let _ = tx.send(lock.lock().map(|()| lock));
        });
        if let Err(e) = waiting {
            tracing::warn!("{name}: cannot wait for its push ahead (no thread: {e})");
            return None;
        }
        let until = Instant::now() + limit;
        while !signals::stop_requested() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    "{name}: its push ahead did not end within {} s; archiving it here",
                    limit.as_secs()
                );
                return None;
            }
            match rx.recv_timeout(left.min(detach::STOP_CHECK)) {
                Ok(Ok(lock)) => return Some(lock),
                Ok(Err(e)) => {
                    tracing::warn!("{name}: cannot take its push-ahead lock: {e}");
                    return None;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
            }
        }
        None
    }

    /// Starts a detached worker unless one is running. The lock is taken here and
    /// handed to the worker, so from this call's return until the worker exits
    /// the lock is held: whoever waits for the lock waits for the worker.
    fn start_worker(&self, job: &Job, launch: Launcher) -> io::Result<bool> {
        let Some(lock) = self.dir.try_worker_lock()? else {
            return Ok(false);
        };
        // (Every path in the job is absolute: the worker runs in the spool directory.)
        let args = launch(&WorkerJob::PushAhead(job), lock.as_raw_fd());
        self.dir.spawn_worker(args, &lock)?;
        Ok(true)
    }

    /// Writes `entry` durably, replacing any older one for the same name.
    fn record(&self, entry: &PushedEntry) -> io::Result<()> {
        let text = toml::to_string(entry).map_err(io::Error::other)?;
        let final_name = format!("{}{ENTRY_SUFFIX}", entry.name);
        let mut staged = self.dir.stage(&final_name)?;
        staged.write_all(text.as_bytes())?;
        self.dir.publish_durable(staged, &final_name)
    }

    /// Removes the entry of `name`. Not fsynced: an entry that comes back after a
    /// crash is checked in full before it is trusted, like any other.
    fn remove(&self, name: &WalName) {
        if let Err(e) = self.dir.unlink(&Self::entry_name(name)) {
            tracing::warn!("{name}: cannot remove its spool entry: {e}");
        }
    }

    /// Removes the entries and lock files of files the database has removed or
    /// recycled (a lock file only when nobody holds it).
    fn remove_stale(&self) {
        for (file_name, _) in self.dir.entries().unwrap_or_default() {
            if file_name == spool::WORKER_LOCK {
                continue;
            }
            let (base, is_lock) = match (
                file_name.strip_suffix(ENTRY_SUFFIX),
                file_name.strip_suffix(LOCK_SUFFIX),
            ) {
                (Some(base), _) => (base, false),
                (None, Some(base)) => (base, true),
                (None, None) => continue,
            };
            let gone = match fs::symlink_metadata(self.wal_dir.join(base)) {
                Err(e) => e.kind() == io::ErrorKind::NotFound,
                Ok(_) => false,
            };
            if !gone {
                continue;
            }
            if is_lock {
                let Ok(lock) = self.dir.open_lock(&file_name, false) else {
                    continue;
                };
                if lock.try_lock().is_err() {
                    continue;
                }
            }
            let _ = self.dir.unlink(&file_name);
        }
    }

    /// The text of the entry of `name`; `None` when there is none. Only a
    /// regular file of the user running uxwal, of at most [`MAX_ENTRY_BYTES`].
    fn read_entry(&self, name: &WalName) -> io::Result<Option<String>> {
        let Some(bytes) = self
            .dir
            .read_small(&Self::entry_name(name), MAX_ENTRY_BYTES)?
        else {
            return Ok(None);
        };
        String::from_utf8(bytes)
            .map(Some)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
    }

    /// What the entry of `name` records, when it has one and everything in it
    /// still holds (see the module documentation). The entry is removed either
    /// way: once confirmed it has served its purpose, and when not, the normal
    /// path decides.
    fn confirms(
        &self,
        name: &WalName,
        wal_path: &Path,
        settings: &ship::Settings,
    ) -> Option<Archived> {
        let text = match self.read_entry(name) {
            Ok(None) => return None,
            Ok(Some(text)) => text,
            Err(e) => {
                tracing::warn!("{name}: cannot read its spool entry ({e}); archiving it again");
                self.remove(name);
                return None;
            }
        };
        let verdict = match PushedEntry::parse(&text, name) {
            None => Err("its spool entry is damaged".to_string()),
            Some(entry) => {
                check_entry(&entry, name, wal_path, settings).map(|proof| (proof, entry))
            }
        };
        self.remove(name);
        match verdict {
            Ok((proof, entry)) => {
                tracing::debug!("{name}: its push ahead is confirmed by {proof}, with no request");
                Some(Archived {
                    outcome: ArchiveOutcome::AlreadyArchived,
                    size: entry.size,
                    stored_sizes: entry.repos.iter().map(|r| r.stored_size).collect(),
                    owed: Vec::new(),
                })
            }
            Err(reason) => {
                tracing::info!("{name}: {reason}; archiving it again");
                None
            }
        }
    }
}

/// Checks a recorded push against the call's settings and the local file, with
/// no request to any repository: the record was written only after every
/// repository confirmed the object durable (see `docs/push-ahead.md`).
fn check_entry(
    entry: &PushedEntry,
    name: &WalName,
    wal_path: &Path,
    settings: &ship::Settings,
) -> std::result::Result<&'static str, String> {
    let locations: Vec<&str> = entry.repos.iter().map(|r| r.location.as_str()).collect();
    if locations
        != settings
            .repos
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    {
        return Err("it was pushed ahead to other repositories".into());
    }
    if entry.encrypted_to != recipients_of(settings) {
        return Err("it was pushed ahead with other encryption settings".into());
    }
    let unreadable = |e: io::Error| format!("cannot read {}: {e}", wal_path.display());
    let file = File::open(wal_path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if let WalName::Segment(_) | WalName::Partial(_) = name {
        // The identity every repository was checked against is the segment's own.
        let mut head = [0u8; LONG_HEADER_LEN];
        file.read_exact_at(&mut head, 0).map_err(unreadable)?;
        let own = LongPageHeader::parse(&head)
            .map_err(|e| format!("its page header is unreadable ({e})"))?
            .system_identifier
            .to_string();
        if entry
            .repos
            .iter()
            .any(|r| r.system_identifier.as_deref() != Some(own.as_str()))
        {
            return Err("it was pushed ahead under another archive identity".into());
        }
    }
    // The stamp proves the file unchanged without reading it; without one (or
    // when it differs) the file's own bytes decide.
    let recorded = entry
        .stamp
        .as_deref()
        .and_then(|s| s.parse::<FileStamp>().ok());
    if recorded == Some(FileStamp::of(&meta)) {
        return Ok("its stamp");
    }
    let (sha256, size) = crate::codec::digest::hash_reader(&mut &file).map_err(unreadable)?;
    if size != entry.size || hex(&sha256) != entry.sha256 {
        return Err("the file changed since it was pushed ahead".into());
    }
    Ok("its SHA-256")
}

/// The recipients the call encrypts to, as recorded in an entry (none: plain).
fn recipients_of(settings: &ship::Settings) -> Vec<String> {
    settings
        .store
        .keys
        .recipients
        .as_ref()
        .map(|r| r.names())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn shown(picked: Vec<WalName>) -> Vec<String> {
        picked.into_iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn picks_in_the_database_order_skipping_the_taken_and_invalid() {
        let taken: [WalName; 2] = [
            "000000010000000000000003".parse().unwrap(),
            "000000010000000000000005".parse().unwrap(),
        ];
        let ready = names(&[
            "000000010000000000000006",
            "000000010000000000000003",
            "000000010000000000000005",
            "000000020000000000000001",
            "00000002.history",
            "000000010000000000000004.00000028.backup",
            "000000010000000000000004",
            "not-a-wal-name",
            "00000001000000000000000g",
            "000000010000000000000002.partial",
        ]);
        assert_eq!(
            shown(choose(ready, |n| taken.contains(n))),
            [
                "00000002.history",
                "000000010000000000000002.partial",
                "000000010000000000000004",
                "000000010000000000000004.00000028.backup",
                "000000010000000000000006",
                "000000020000000000000001",
            ]
        );
        assert!(choose(Vec::new(), |_| false).is_empty());
    }

    fn sample() -> PushedEntry {
        PushedEntry {
            name: "000000010000000000000004".into(),
            size: 1 << 20,
            sha256: "ab".repeat(32),
            repos: vec![
                RepoRecord {
                    location: "/srv/wal".into(),
                    system_identifier: Some("7312345678901234567".into()),
                    stored_size: 1234,
                },
                RepoRecord {
                    location: "s3://bucket/prefix".into(),
                    system_identifier: None,
                    stored_size: 1234,
                },
            ],
            encrypted_to: vec![
                "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
            ],
            stamp: Some("2049:131:16777216:1764700000.123456789:1764700000.5".into()),
        }
    }

    #[test]
    fn entries_round_trip_and_damaged_ones_are_refused() {
        let name: WalName = "000000010000000000000004".parse().unwrap();
        let entry = sample();
        let text = toml::to_string(&entry).unwrap();
        assert_eq!(PushedEntry::parse(&text, &name), Some(entry.clone()));

        let other: WalName = "000000010000000000000005".parse().unwrap();
        assert_eq!(
            PushedEntry::parse(&text, &other),
            None,
            "another file's entry"
        );
        assert_eq!(PushedEntry::parse(&text[..text.len() / 2], &name), None);
        assert_eq!(PushedEntry::parse("", &name), None);
        assert_eq!(PushedEntry::parse("\u{0}\u{1}garbage", &name), None);
        let unknown = format!("surprise = 1\n{text}");
        assert_eq!(PushedEntry::parse(&unknown, &name), None);
        let bad_hash = text.replace(&"ab".repeat(32), &"AB".repeat(32));
        assert_eq!(PushedEntry::parse(&bad_hash, &name), None);
        let short_hash = text.replace(&"ab".repeat(32), "abcd");
        assert_eq!(PushedEntry::parse(&short_hash, &name), None);
        let no_repos = toml::to_string(&PushedEntry {
            repos: Vec::new(),
            ..entry
        })
        .unwrap();
        assert_eq!(PushedEntry::parse(&no_repos, &name), None);
        let bad_stamp = text.replace("1764700000.5", "1764700000.x");
        assert_ne!(bad_stamp, text);
        assert_eq!(PushedEntry::parse(&bad_stamp, &name), None);
    }

    #[test]
    fn spool_records_replaces_and_forgets_removed_files() {
        let base = tempfile::tempdir().unwrap();
        let wal_dir = base.path().join("pg_wal");
        fs::create_dir(&wal_dir).unwrap();
        let root = base.path().join("spool");
        let spool = Spool::open(&root, &wal_dir, None).unwrap();
        let again = Spool::open(&root, &wal_dir, None).unwrap();
        assert_eq!(
            spool.dir.path(),
            again.dir.path(),
            "one directory per WAL directory"
        );
        let elsewhere = base.path().join("other_wal");
        fs::create_dir(&elsewhere).unwrap();
        assert_ne!(
            Spool::open(&root, &elsewhere, None).unwrap().dir.path(),
            spool.dir.path()
        );

        let name: WalName = "000000010000000000000004".parse().unwrap();
        let mut entry = sample();
        spool.record(&entry).unwrap();
        entry.size = 42;
        spool.record(&entry).unwrap();
        let text = spool.read_entry(&name).unwrap().unwrap();
        assert_eq!(PushedEntry::parse(&text, &name).unwrap().size, 42);
        assert!(spool.has_entry(&name));

        fs::write(wal_dir.join(name.to_string()), b"still here").unwrap();
        let held = spool.claim_new(&name).expect("a new claim");
        assert!(spool.claim_new(&name).is_none(), "claimed once only");
        spool.remove_stale();
        assert!(
            spool.has_entry(&name),
            "the file is still in the WAL directory"
        );
        fs::remove_file(wal_dir.join(name.to_string())).unwrap();
        spool.remove_stale();
        assert!(
            spool.dir.exists(&Spool::lock_name(&name)),
            "a held lock stays"
        );
        drop(held);
        spool.remove_stale();
        assert!(!spool.dir.exists(&Spool::lock_name(&name)));
        assert!(!spool.has_entry(&name), "the database removed the file");
    }
}
