//! `uxwal-restore --prefetch N`: segments fetched ahead of the database into a
//! local spool, so that the next calls of `restore_command` find them on disk.
//!
//! PostgreSQL asks for one WAL file at a time and waits for each; against object
//! storage most of that wait is the round trip. After restoring segment S, the
//! foreground call records S as the *wanted* position and hands a detached worker
//! (a hidden mode of the same binary) the job of fetching S+1..=S+N of the same
//! timeline. The next call takes its segment from the spool when it is there.
//!
//! Guarantees:
//! - **Verified before use.** The worker decodes each stored object (checking it)
//!   and spools the segment uncompressed, as a codec-`none` object with the same
//!   SHA-256 trailer, so that the call the database waits for does no
//!   decompression. That call copies the entry into the destination's staging
//!   file with the same SHA-256 and size check as a repository object, and its
//!   page header must carry the archive's system identifier and segment size. Anything else is logged, removed, and the
//!   segment is fetched from the repository as if the spool did not exist.
//! - **Keyed by archive, identity and timeline.** Each archive has its own spool
//!   directory `<spool root>/restore-<system identifier>-<location hash>`
//!   (the call finds the identity in `<spool root>/restore-<location hash>/identity`,
//!   which every worker refreshes from the archive; see [`Spool::cached_identity`]): the
//!   system identifier alone is not enough, because clusters cloned from one base
//!   backup share it and, archiving to separate places, write different segments
//!   under the same names. Entries are named after the full segment name
//!   (timeline included), so an entry is only ever served for the archive,
//!   identity and timeline it was fetched for. Only full segments
//!   are spooled: `.history` files change as timelines appear and are always read
//!   from the repository, and `.partial`/`.backup` files are never asked for.
//! - **Never in the way.** The foreground never waits for the worker: it only
//!   tries the worker lock. A crashed, stuck or slow worker costs the prefetch,
//!   never a restore. The worker never holds the lock longer than it works, and
//!   exits as soon as the window ahead of the wanted position is full or the
//!   archive ends; each fetch is bounded by the storage deadline (`--deadline`).
//! - **Bounded disk use.** The worker fetches only the N segments after the
//!   wanted position and removes entries outside that window (see [`Spool::remove_stale`]),
//!   so the spool holds at most N entries plus [`WORKER_FETCHES`] being written:
//!   at most (N + 4) stored objects, each no larger than a segment plus its trailer
//!   (N ≤ 64: about 1.1 GiB with 16 MiB segments stored uncompressed). Losing
//!   the spool loses nothing: the archive is never changed.
//! - **Clean stop.** The worker turns SIGTERM/SIGINT/SIGHUP into a stop
//!   ([`crate::signals`]). Entries appear under their final name only by a rename
//!   of a complete file ([`crate::durable::StagedFile`]), so a stopped or killed
//!   worker leaves staging files at most, which the next writer removes.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::RawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

use sha2::Digest;

use crate::cli::PREFETCH_WORKER_ARG;
use crate::codec::{self, Compression, ReadError};
use crate::durable::{self, StagedFile};
use crate::error::{Error, Result};
use crate::exit;
use crate::repo::{Identity, Repository};
use crate::restore::Settings;
use crate::signals;
use crate::spool;
use crate::wal_header::LongPageHeader;
use crate::wal_name::{SegmentName, WalName};

/// Segments the worker fetches at the same time (one repository client each:
/// storage clients are not shared between threads).
pub const WORKER_FETCHES: usize = 4;
/// Spool entries not touched for this long are removed whatever their name: a
/// recovery that stopped long ago will not come back for them.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);
/// `--prefetch` when neither the command line nor the file says: object storage
/// pays a round trip per file, a local directory does not.
pub const DEFAULT_DEPTH_OBJECT_STORE: usize = 8;

/// The file naming the last segment restored (the position the worker fetches after).
const WANT_FILE: &str = "want";
/// Held (flock) by the one running worker.
const WORKER_LOCK: &str = ".worker.lock";
/// Where entries are written before they are renamed into place.
const STAGING_DIR: &str = "tmp";
/// How often the worker's main thread looks at the stop flag while fetches run.
const STOP_CHECK: Duration = Duration::from_millis(100);

/// The spool directory of one archive identity.
#[derive(Debug, Clone)]
pub struct Spool {
    dir: PathBuf,
    identity: Identity,
    depth: usize,
}

impl Spool {
    /// Opens (creating, private) the spool directory under `root` of the archive
    /// at `location` whose identity is `identity`.
    pub fn open(root: &Path, location: &str, identity: Identity, depth: usize) -> Result<Spool> {
        let dir = spool::open_private_dir(&Self::dir_for(root, location, &identity))?;
        Ok(Spool {
            dir,
            identity,
            depth,
        })
    }

    /// `<root>/restore-<system identifier>-<first 16 hex digits of the SHA-256 of location>`.
    pub fn dir_for(root: &Path, location: &str, identity: &Identity) -> PathBuf {
        root.join(format!(
            "restore-{}-{}",
            identity.system_identifier,
            location_key(location)
        ))
    }

    /// The identity the last worker read from the archive at `location`, so that
    /// a call the database waits for finds its spool without a round trip. Every
    /// worker reads the archive's identity again and refreshes this, so after an
    /// archive at the same location changed identity at most the next call still
    /// looks in the old spool; and what it takes from there is a segment the
    /// direct path would equally have taken from that location moments before
    /// (restore reads objects by name, and the database checks the system
    /// identifier of every page it replays).
    pub fn cached_identity(root: &Path, location: &str) -> Option<Identity> {
        let dir = spool::open_private_dir(&identity_dir(root, location)).ok()?;
        let text = fs::read_to_string(dir.join(IDENTITY_FILE)).ok()?;
        toml::from_str(&text).ok()
    }

    /// Records `identity` as the one of the archive at `location` (see [`Spool::cached_identity`]).
    pub fn remember_identity(root: &Path, location: &str, identity: &Identity) -> Result<()> {
        if Self::cached_identity(root, location).as_ref() == Some(identity) {
            return Ok(());
        }
        let dir = spool::open_private_dir(&identity_dir(root, location))?;
        let path = dir.join(IDENTITY_FILE);
        let local = |e: io::Error| Error::Destination {
            path: path.clone(),
            source: e,
        };
        let mut staged =
            StagedFile::create(&dir.join(STAGING_DIR), IDENTITY_FILE).map_err(local)?;
        let text = toml::to_string(identity).expect("serializable");
        staged.write_all(text.as_bytes()).map_err(local)?;
        staged.publish_replace(&path).map_err(local)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry(&self, segment: SegmentName) -> PathBuf {
        self.dir.join(segment.to_string())
    }

    /// Restores `segment` to `dest` from the spool when a verified entry is there,
    /// consuming the entry. `false` means: fetch it from the repository.
    pub fn take(&self, segment: SegmentName, dest: &Path) -> bool {
        let path = self.entry(segment);
        let mut file = match File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::debug!("cannot open spooled {segment}: {e}");
                }
                return false;
            }
        };
        match self.restore_entry(&mut file, segment, dest) {
            Ok(()) => {
                let _ = fs::remove_file(&path);
                tracing::debug!(
                    "restored {segment} from the prefetch spool to {}",
                    dest.display()
                );
                true
            }
            Err(EntryError::Damaged(reason)) => {
                tracing::warn!(
                    "spooled copy of {segment} ({}) is unusable: {reason}; removed it, fetching from the archive",
                    path.display()
                );
                let _ = fs::remove_file(&path);
                false
            }
            Err(EntryError::Local(e)) => {
                // Not the entry's fault (the destination, or reading our own disk):
                // the direct fetch reports a destination problem if there is one.
                tracing::debug!("cannot use spooled {segment}: {e}");
                false
            }
        }
    }

    fn restore_entry(
        &self,
        file: &mut File,
        segment: SegmentName,
        dest: &Path,
    ) -> Result<(), EntryError> {
        let len = file.metadata().map_err(EntryError::Local)?.len();
        let (format, trailer, payload) = codec::read_trailer(file, len)?;
        if trailer.size != self.identity.segment_size {
            return Err(EntryError::Damaged(format!(
                "recorded size {} is not this archive's segment size {}",
                trailer.size, self.identity.segment_size
            )));
        }
        let staged = durable::stage_beside(dest).map_err(EntryError::Local)?;
        let mut out = HeadCapture {
            inner: staged,
            head: Vec::with_capacity(crate::wal_header::LONG_HEADER_LEN),
        };
        codec::decode_verified(file, format, payload, &trailer, &mut out)?;
        let header =
            LongPageHeader::parse(&out.head).map_err(|e| EntryError::Damaged(e.to_string()))?;
        if header.system_identifier != self.identity.system_identifier
            || u64::from(header.segment_size) != self.identity.segment_size
        {
            return Err(EntryError::Damaged(format!(
                "it belongs to database system {} with {}-byte segments, not to this archive",
                header.system_identifier, header.segment_size
            )));
        }
        if segment.start_lsn(self.identity.segment_size) != Some(header.page_address) {
            return Err(EntryError::Damaged(format!(
                "its page address {:#X} is not that of {segment}",
                header.page_address
            )));
        }
        out.inner.publish_replace(dest).map_err(EntryError::Local)
    }

    /// Records `restored` as the wanted position and removes entries it made
    /// stale. Done by the foreground after each restored segment.
    pub fn advance(&self, restored: SegmentName) -> io::Result<()> {
        let mut staged = StagedFile::create(&self.dir.join(STAGING_DIR), WANT_FILE)?;
        writeln!(staged, "{restored}")?;
        staged.publish_replace(&self.dir.join(WANT_FILE))?;
        self.remove_stale(restored);
        Ok(())
    }

    /// The wanted position, if one was recorded.
    pub fn want(&self) -> Option<SegmentName> {
        let text = fs::read_to_string(self.dir.join(WANT_FILE)).ok()?;
        match text.trim().parse::<WalName>() {
            Ok(WalName::Segment(s)) => Some(s),
            _ => None,
        }
    }

    /// The segments after `want` on its timeline that the window may hold.
    fn window(&self, want: SegmentName) -> Vec<SegmentName> {
        let size = self.identity.segment_size;
        std::iter::successors(want.next(size), |s| s.next(size))
            .take(self.depth)
            .collect()
    }

    /// Removes every entry that no coming request can use: another timeline
    /// than `want`'s, at or before `want` (consumed or skipped), beyond the
    /// window, not a segment name, or untouched for [`STALE_AFTER`].
    pub fn remove_stale(&self, want: SegmentName) {
        let window = self.window(want);
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name == WANT_FILE || name == WORKER_LOCK || name == STAGING_DIR {
                continue;
            }
            let wanted = match name.parse::<WalName>() {
                Ok(WalName::Segment(s)) => window.contains(&s),
                _ => false,
            };
            let fresh = entry
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .is_some_and(|age| age < STALE_AFTER);
            if !(wanted && fresh) {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Starts a detached worker unless one is running. The lock is taken here and
    /// handed to the worker (an inherited descriptor), so from this call's return
    /// until the worker exits the lock is held: whoever waits for the lock waits
    /// for the worker.
    pub fn start_worker(&self, settings: &Settings) -> io::Result<bool> {
        let lock = open_lock(&self.dir)?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Ok(false),
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.arg(PREFETCH_WORKER_ARG)
            .arg("--prefetch")
            .arg(self.depth.to_string())
            .arg("--spool-dir")
            .arg(&settings.spool_dir)
            .arg("--deadline")
            // The command line's range; a longer deadline from the file is cut to it.
            .arg(settings.store.deadline.as_secs().clamp(1, 3600).to_string())
            .arg("--quiet");
        for repo in &settings.repos {
            cmd.arg("--repo").arg(repo);
        }
        if let Some(config) = &settings.config_file {
            cmd.arg("--config").arg(config);
        }
        // Out of the data directory, in a session of its own (see crate::detach).
        crate::detach::spawn_with_lock(cmd, &lock, &self.dir)?;
        Ok(true)
    }
}

/// Captures the first bytes written (the segment's page header) on their way through.
struct HeadCapture<W: Write> {
    inner: W,
    head: Vec<u8>,
}

impl<W: Write> Write for HeadCapture<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let want = crate::wal_header::LONG_HEADER_LEN.saturating_sub(self.head.len());
        self.head.extend_from_slice(&buf[..n.min(want)]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Why a spool entry was not used.
enum EntryError {
    /// The entry itself is wrong: remove it.
    Damaged(String),
    /// Local I/O (the destination, or reading the entry).
    Local(io::Error),
}

impl From<ReadError> for EntryError {
    fn from(e: ReadError) -> Self {
        match e {
            ReadError::Codec(c) => EntryError::Damaged(c.to_string()),
            ReadError::Io(e) | ReadError::Output(e) => EntryError::Local(e),
        }
    }
}

fn open_lock(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(durable::FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(WORKER_LOCK))
}

/// How the worker run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerOutcome {
    /// The window after the wanted position is full, or the archive ends there.
    Done,
    /// Another worker holds the lock; it will see the new wanted position.
    AlreadyRunning,
    /// A shutdown signal arrived.
    Stopped,
    /// Nothing to do: no identity, no wanted position, or prefetch is off.
    Idle,
}

/// The hidden worker mode (`uxwal-restore --prefetch-worker [OPTIONS]`): fills the window
/// after the wanted position, again while the position moves, then exits.
/// `lock_fd` is the worker lock inherited from the call that started it; without
/// it (run by hand or by a test) the worker takes the lock itself.
pub fn run_worker(settings: &Settings, lock_fd: Option<RawFd>) -> Result<WorkerOutcome> {
    signals::install();
    let depth = settings.prefetch_depth();
    let Some(location) = settings.repos.first() else {
        return Ok(WorkerOutcome::Idle);
    };
    if depth == 0 {
        return Ok(WorkerOutcome::Idle);
    }
    let (tx, rx) = mpsc::channel();
    let settings = settings.clone();
    let location = location.clone();
    // The work runs on its own thread so that a signal is answered at once even
    // while a fetch waits on the storage: the main thread returns, and with it the
    // process ends; what a fetch had written is a staging file, never an entry.
    std::thread::spawn(move || {
        let _ = tx.send(work(&settings, &location, lock_fd));
    });
    loop {
        if signals::stop_requested() {
            return Ok(WorkerOutcome::Stopped);
        }
        match rx.recv_timeout(STOP_CHECK) {
            Ok(outcome) => return outcome,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                return Err(Error::Config("prefetch worker thread ended".into()))
            }
        }
    }
}

/// The worker's exit status, which nobody but a test looks at (its output goes
/// to /dev/null): [`exit::SUCCESS`] unless it failed.
pub fn worker_exit(outcome: Result<WorkerOutcome>) -> std::process::ExitCode {
    match outcome {
        Ok(o) => {
            tracing::debug!("prefetch worker: {o:?}");
            std::process::ExitCode::from(exit::SUCCESS)
        }
        Err(e) => {
            tracing::error!("prefetch worker: {e}");
            std::process::ExitCode::from(exit::FAILURE)
        }
    }
}

fn work(settings: &Settings, location: &str, lock_fd: Option<RawFd>) -> Result<WorkerOutcome> {
    let repo = Repository::open_with(location, &settings.store)?;
    let Some(identity) = repo.identity()? else {
        return Ok(WorkerOutcome::Idle);
    };
    drop(repo);
    if let Err(e) = Spool::remember_identity(&settings.spool_dir, location, &identity) {
        tracing::debug!("cannot remember the archive identity: {e}");
    }
    let spool = Spool::open(
        &settings.spool_dir,
        location,
        identity,
        settings.prefetch_depth(),
    )?;
    let lock_error = |e: io::Error| Error::Config(format!("prefetch worker lock: {e}"));
    let lock = match lock_fd {
        Some(fd) => adopt_lock(&spool.dir, fd).map_err(lock_error)?,
        None => {
            let lock = open_lock(&spool.dir).map_err(lock_error)?;
            match lock.try_lock() {
                Ok(()) => lock,
                Err(std::fs::TryLockError::WouldBlock) => return Ok(WorkerOutcome::AlreadyRunning),
                Err(std::fs::TryLockError::Error(e)) => return Err(lock_error(e)),
            }
        }
    };
    loop {
        let Some(want) = spool.want() else {
            return Ok(WorkerOutcome::Idle);
        };
        if fill_window(&spool, settings, location, want)? == WorkerOutcome::Stopped {
            return Ok(WorkerOutcome::Stopped);
        }
        if spool.want() != Some(want) {
            continue;
        }
        // Nothing left for this position. The foreground records a new position
        // *before* it tries the lock, so looking again *after* letting go of it
        // cannot miss a position whose caller saw the lock still held.
        lock.unlock().map_err(lock_error)?;
        if spool.want() == Some(want) || lock.try_lock().is_err() {
            return Ok(WorkerOutcome::Done);
        }
    }
}

/// Takes ownership of the inherited lock descriptor after checking that it is
/// this spool's lock file (a number on a command line is not proof).
fn adopt_lock(dir: &Path, fd: RawFd) -> io::Result<File> {
    crate::detach::adopt_lock(&dir.join(WORKER_LOCK), fd)
}

/// Fetches the missing segments of the window after `want`, up to
/// [`WORKER_FETCHES`] at a time, stopping at the first one the archive lacks.
fn fill_window(
    spool: &Spool,
    settings: &Settings,
    location: &str,
    want: SegmentName,
) -> Result<WorkerOutcome> {
    spool.remove_stale(want);
    let missing: Vec<SegmentName> = spool
        .window(want)
        .into_iter()
        .filter(|s| !spool.entry(*s).exists())
        .collect();
    let next = AtomicU64::new(0);
    // Index of the first segment the archive does not have: later ones are not fetched.
    let end = AtomicU64::new(u64::MAX);
    let failed = AtomicBool::new(false);
    let first_error = std::sync::Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..WORKER_FETCHES.min(missing.len()) {
            scope.spawn(|| loop {
                if signals::stop_requested() || failed.load(Ordering::SeqCst) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= end.load(Ordering::SeqCst) || i as usize >= missing.len() {
                    return;
                }
                match fetch_one(spool, settings, location, missing[i as usize]) {
                    Ok(true) => {}
                    Ok(false) => {
                        end.fetch_min(i, Ordering::SeqCst);
                    }
                    Err(e) => {
                        failed.store(true, Ordering::SeqCst);
                        first_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get_or_insert(e);
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(if signals::stop_requested() {
        WorkerOutcome::Stopped
    } else {
        WorkerOutcome::Done
    })
}

/// First 16 hex digits of the SHA-256 of a repository location: names its spool.
fn location_key(location: &str) -> String {
    codec::hex(&sha2::Sha256::digest(location.as_bytes())[..8])
}

/// `<root>/restore-<location key>/`: holds the archive's identity as the last worker read it.
fn identity_dir(root: &Path, location: &str) -> PathBuf {
    root.join(format!("restore-{}", location_key(location)))
}

/// The file in [`identity_dir`] that holds the identity.
const IDENTITY_FILE: &str = "identity";

/// A writer that fails once a shutdown signal has arrived. (Not with `Interrupted`:
/// `write_all` retries that kind forever.)
struct StopOnSignal<W>(W);

impl<W: Write> Write for StopOnSignal<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if signals::stop_requested() {
            return Err(io::Error::other("stopped by a shutdown signal"));
        }
        self.0.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

/// Copies the stored object of `segment` into the spool. `Ok(false)`: not in the archive.
fn fetch_one(
    spool: &Spool,
    settings: &Settings,
    location: &str,
    segment: SegmentName,
) -> Result<bool> {
    // A repository per fetch: its deadline (`--deadline`) bounds this fetch alone.
    let repo = Repository::open_with(location, &settings.store)?;
    let name = WalName::Segment(segment);
    let key = Repository::key(&name);
    let Some(mut obj) = repo.get(&key)? else {
        return Ok(false);
    };
    let local = |e: io::Error| Error::Destination {
        path: spool.entry(segment),
        source: e,
    };
    let storage = |e: io::Error| Error::Storage {
        location: repo.describe(),
        op: "read",
        key: key.clone(),
        source: e,
    };
    // Spooled as it will be served: decoded here, in the background, and stored
    // with codec `none` (raw blocks and the same SHA-256 trailer), so the call the
    // database waits for only checks the hash while copying. A damaged object is
    // not spooled: the direct fetch reports it properly.
    let (format, trailer, payload) = match codec::read_trailer(&mut obj.reader, obj.len) {
        Ok(found) => found,
        Err(ReadError::Codec(e)) => {
            tracing::debug!("not spooling {segment}: {e}");
            return Ok(true);
        }
        Err(ReadError::Io(e) | ReadError::Output(e)) => return Err(storage(e)),
    };
    let staged =
        StagedFile::create(&spool.dir.join(STAGING_DIR), &segment.to_string()).map_err(local)?;
    let encoder = codec::Encoder::new(staged, Compression::None, 0).map_err(local)?;
    let mut out = StopOnSignal(encoder);
    match codec::decode_verified(&mut obj.reader, format, payload, &trailer, &mut out) {
        Ok(()) => {}
        Err(ReadError::Codec(e)) => {
            tracing::debug!("not spooling {segment}: {e}");
            return Ok(true);
        }
        // Stopped by a signal, or our own disk: dropping the staging file removes it.
        Err(ReadError::Output(_)) if signals::stop_requested() => return Ok(true),
        Err(ReadError::Output(e)) => return Err(local(e)),
        Err(ReadError::Io(e)) => return Err(storage(e)),
    }
    out.0
        .finish(&trailer)
        .and_then(|staged| staged.publish_replace(&spool.entry(segment)))
        .map_err(local)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity() -> Identity {
        Identity {
            system_identifier: 42,
            segment_size: 1 << 20,
            page_magic: 0xD110,
        }
    }

    fn seg(timeline: u32, n: u64) -> SegmentName {
        SegmentName::from_segment_number(timeline, n, 1 << 20)
    }

    #[test]
    fn stale_entries_go_and_the_window_stays() {
        let root = tempfile::tempdir().unwrap();
        let spool = Spool::open(root.path(), "/mnt/wal", identity(), 3).unwrap();
        let name = spool
            .dir()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            name.starts_with("restore-42-") && name.len() == 11 + 16,
            "{name}"
        );
        let elsewhere = Spool::dir_for(root.path(), "s3://b/wal", &identity());
        assert_ne!(
            spool.dir(),
            elsewhere,
            "another archive of the same cluster"
        );
        let names = [
            seg(1, 9),
            seg(1, 10),
            seg(1, 11),
            seg(1, 13),
            seg(1, 14),
            seg(2, 11),
        ];
        for s in names {
            fs::write(spool.entry(s), b"x").unwrap();
        }
        fs::write(spool.dir().join("00000002.history"), b"x").unwrap();
        spool.advance(seg(1, 10)).unwrap();
        assert_eq!(spool.want(), Some(seg(1, 10)));
        let mut left: Vec<String> = fs::read_dir(spool.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.len() == 24 || n.ends_with(".history"))
            .collect();
        left.sort();
        assert_eq!(left, [seg(1, 11).to_string(), seg(1, 13).to_string()]);
    }

    #[test]
    fn entries_untouched_for_an_hour_go_even_in_the_window() {
        let root = tempfile::tempdir().unwrap();
        let spool = Spool::open(root.path(), "/mnt/wal", identity(), 3).unwrap();
        let (old, new) = (spool.entry(seg(1, 2)), spool.entry(seg(1, 3)));
        fs::write(&old, b"x").unwrap();
        fs::write(&new, b"x").unwrap();
        let two_hours_ago = SystemTime::now() - 2 * STALE_AFTER;
        File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        spool.remove_stale(seg(1, 1));
        assert!(!old.exists() && new.exists());
    }

    #[test]
    fn window_crosses_a_log_boundary() {
        let root = tempfile::tempdir().unwrap();
        let spool = Spool::open(
            root.path(),
            "/mnt/wal",
            Identity {
                segment_size: 16 << 20,
                ..identity()
            },
            2,
        )
        .unwrap();
        let last = SegmentName {
            timeline: 3,
            log: 0,
            seg: 0xFF,
        };
        let names: Vec<String> = spool.window(last).iter().map(|s| s.to_string()).collect();
        assert_eq!(
            names,
            ["000000030000000100000000", "000000030000000100000001"]
        );
    }

    #[test]
    fn a_damaged_entry_is_refused_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let spool = Spool::open(root.path(), "/mnt/wal", identity(), 2).unwrap();
        let dest = root.path().join("RECOVERYXLOG");
        fs::write(spool.entry(seg(1, 5)), b"not an archived object at all").unwrap();
        assert!(!spool.take(seg(1, 5), &dest));
        assert!(!spool.entry(seg(1, 5)).exists());
        assert!(!dest.exists());
        assert!(!spool.take(seg(1, 6), &dest), "absent entry");
    }
}
