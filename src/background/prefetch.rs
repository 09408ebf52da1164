//! `uxwal-restore --prefetch N`: segments fetched ahead of the database into a
//! local spool by a detached worker, so that the next calls of
//! `restore_command` find them on disk. Guarantees: an entry is served only
//! after its size, page header and the archive's SHA-256 check out, only from
//! a private spool used through descriptors ([`spool`]); the foreground never
//! waits for the worker; disk use is bounded in segments, bytes and time.
//! The design and what each guarantee rests on: `docs/prefetch.md`.

use std::fs;
use std::io::{self, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use sha2::Digest;

use super::spool::{self, DirWatch, SpoolDir};
use super::{detach, Launcher, WorkerJob};
use crate::codec::{self, Trailer};
use crate::durable::{self, StagedAt};
use crate::error::{Error, Result};
use crate::field::array_at;
use crate::repo::remote::StoreOptions;
use crate::repo::{identity, Identity, Repository};
use crate::signals;
use crate::wal::name::{SegmentName, WalName};

/// Segments the worker fetches at the same time (one repository client each:
/// storage clients are not shared between threads).
pub const WORKER_FETCHES: usize = 4;
/// Spool entries not touched for this long are removed whatever their name: a
/// recovery that stopped long ago will not come back for them.
pub const STALE_AFTER: Duration = Duration::from_secs(3600);
/// `--prefetch` when neither the command line nor the file says: object storage
/// pays a round trip per file, a local directory does not.
pub const DEFAULT_DEPTH_OBJECT_STORE: usize = 8;

/// What a prefetch worker runs with: the settings of the restore that started it.
#[derive(Debug, Clone)]
pub struct Job {
    /// The repository to fetch from (the restore's first).
    pub location: String,
    pub store: StoreOptions,
    /// Segments to keep fetched after the wanted position (`--prefetch`).
    pub depth: usize,
    /// Bytes the spool directory may hold (entries and entries being written).
    pub max_bytes: u64,
    /// How long a worker with a full window waits for the next position.
    pub linger: Duration,
    /// The spool root.
    pub spool_dir: PathBuf,
    /// The configuration file the restore was given, handed on to the worker.
    pub config_file: Option<PathBuf>,
}

/// The file naming the last segment restored (the position the worker fetches after).
const WANT_FILE: &str = "want";

/// The spool directory of one archive identity, held by descriptor (see
/// [`spool`]).
#[derive(Debug)]
pub struct Spool {
    root: SpoolDir,
    /// `restore-<system identifier>-<location key>` in `root`.
    name: String,
    dir: SpoolDir,
    identity: Identity,
    depth: usize,
    max_bytes: u64,
}

impl Spool {
    /// Opens (creating, private) the spool directory in `root` of the archive at
    /// `location` whose identity is `identity`, keeping at most `depth` entries
    /// and `max_bytes` bytes.
    pub fn open(
        root: &SpoolDir,
        location: &str,
        identity: Identity,
        depth: usize,
        max_bytes: u64,
    ) -> Result<Spool> {
        let name = Self::dir_name(location, &identity);
        let dir = root.open_dir(&name)?;
        let root = root
            .try_clone()
            .map_err(|e| Error::Internal(format!("spool root: {e}")))?;
        Ok(Spool {
            root,
            name,
            dir,
            identity,
            depth,
            max_bytes,
        })
    }

    /// `restore-<system identifier>-<first 16 hex digits of the SHA-256 of location>`.
    fn dir_name(location: &str, identity: &Identity) -> String {
        format!(
            "restore-{}-{}",
            identity.system_identifier,
            spool::location_key(location.as_bytes())
        )
    }

    /// Where the spool directory of `location` and `identity` is under `root`.
    pub fn dir_for(root: &Path, location: &str, identity: &Identity) -> PathBuf {
        root.join(Self::dir_name(location, identity))
    }

    /// The identity the last worker read from the archive at `location`, so that
    /// a call the database waits for finds its spool without a round trip. Every
    /// worker reads the archive's identity again and refreshes this. The caller
    /// compares it with the data directory's own system identifier when it has
    /// one (`commands::restore`), and every entry's page header is checked
    /// against it: an entry of another cluster is never served.
    pub fn cached_identity(root: &SpoolDir, location: &str) -> Option<Identity> {
        let dir = root.open_dir(&identity_dir(location)).ok()?;
        let bytes = dir.read_small(IDENTITY_FILE, 4096).ok()??;
        toml::from_str(std::str::from_utf8(&bytes).ok()?).ok()
    }

    /// Records `identity` as the one of the archive at `location` (see [`Spool::cached_identity`]).
    pub fn remember_identity(root: &SpoolDir, location: &str, identity: &Identity) -> Result<()> {
        if Self::cached_identity(root, location).as_ref() == Some(identity) {
            return Ok(());
        }
        let dir = root.open_dir(&identity_dir(location))?;
        let local = |e: io::Error| Error::Destination {
            path: dir.path().join(IDENTITY_FILE),
            source: e,
        };
        let mut staged = dir.stage(IDENTITY_FILE).map_err(local)?;
        let text = identity.to_toml();
        staged.write_all(text.as_bytes()).map_err(local)?;
        dir.publish(staged, IDENTITY_FILE).map_err(local)
    }

    /// Where the spool directory was found (for messages and tests).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn entry(&self, segment: SegmentName) -> PathBuf {
        self.dir.path().join(segment.to_string())
    }

    /// The bytes one entry takes: a segment and its trailer.
    fn entry_len(&self) -> u64 {
        self.identity.segment_size + ENTRY_TRAILER_LEN as u64
    }

    /// Restores `segment` to `dest` from the spool when a verified entry is there,
    /// consuming the entry: the bytes restored. `None` means: fetch it from the
    /// repository.
    pub fn take(&self, segment: SegmentName, dest: &Path) -> Option<u64> {
        let name = segment.to_string();
        if !self.dir.exists(&name) {
            return None;
        }
        // Claimed by a rename first: from then on this call alone owns the entry,
        // whoever else (a second server sharing the spool root) wants it. The
        // claim also refuses anything but a regular file of ours with one link.
        let claimed = match self.dir.claim(&name) {
            Ok(Some(claimed)) => claimed,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(
                    "spooled copy of {segment} ({}) is unusable: {e}; removed it, fetching from the archive",
                    self.entry(segment).display()
                );
                return None;
            }
        };
        match self.restore_entry(claimed, segment, dest) {
            Ok(()) => Some(self.identity.segment_size),
            Err(EntryError::Damaged(reason)) => {
                tracing::warn!(
                    "spooled copy of {segment} ({}) is unusable: {reason}; removed it, fetching from the archive",
                    self.entry(segment).display()
                );
                None
            }
            Err(EntryError::Local(e)) => {
                // Not the entry's fault (the destination, or reading our own disk):
                // the direct fetch reports a destination problem if there is one.
                tracing::debug!("cannot use spooled {segment}: {e}");
                None
            }
        }
    }

    /// Checks a claimed entry (age, size, page header, SHA-256 as the archive
    /// recorded it) and moves the segment to `dest`: by a rename when the spool
    /// and `dest` share a filesystem, so the segment's bytes are read once (to
    /// hash them) and never copied; otherwise copied while they are hashed.
    /// Dropping `claimed` on any error removes the entry.
    fn restore_entry(
        &self,
        mut claimed: StagedAt,
        segment: SegmentName,
        dest: &Path,
    ) -> Result<(), EntryError> {
        use std::os::unix::fs::FileExt;
        let size = self.identity.segment_size;
        let file = claimed.file();
        let meta = file.metadata().map_err(EntryError::Local)?;
        if meta.len() != self.entry_len() {
            return Err(EntryError::Damaged(format!(
                "it is {} bytes, not a {size}-byte segment and its checksum",
                meta.len()
            )));
        }
        if !is_fresh(meta.modified().ok()) {
            return Err(EntryError::Damaged(format!(
                "it is older than {} s",
                STALE_AFTER.as_secs()
            )));
        }
        let mut tail = [0u8; ENTRY_TRAILER_LEN];
        file.read_exact_at(&mut tail, size)
            .map_err(EntryError::Local)?;
        let recorded = parse_entry_trailer(&tail)
            .filter(|t| t.size == size)
            .ok_or_else(|| EntryError::Damaged("its checksum trailer is damaged".into()))?;
        let dest_dir = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let same_fs = fs::metadata(dest_dir).map_err(EntryError::Local)?.dev() == meta.dev();
        let mut copy = match same_fs {
            true => None,
            false => Some(durable::stage_beside(dest).map_err(EntryError::Local)?),
        };
        // Read through the claimed descriptor: a file of ours alone, with one link
        // (checked by the claim), so nobody else can change it meanwhile.
        let mut hasher = sha2::Sha256::new();
        let mut block = vec![0u8; READ_BLOCK.min(size as usize)];
        let mut offset = 0u64;
        while offset < size {
            let n = (size - offset).min(block.len() as u64) as usize;
            file.read_exact_at(&mut block[..n], offset)
                .map_err(EntryError::Local)?;
            if offset == 0 {
                self.check_header(&block[..n], segment)?;
            }
            hasher.update(&block[..n]);
            if let Some(copy) = copy.as_mut() {
                copy.write_all(&block[..n]).map_err(EntryError::Local)?;
            }
            offset += n as u64;
        }
        let actual: [u8; 32] = hasher.finalize().into();
        if actual != recorded.sha256 {
            return Err(EntryError::Damaged(format!(
                "its content does not match the archive's SHA-256 (recorded {}, got {})",
                recorded.sha256_hex(),
                codec::hex(&actual)
            )));
        }
        match copy {
            Some(copy) => copy.publish_replace(dest),
            None => claimed
                .truncate(size)
                .and_then(|()| claimed.publish_replace_path(dest)),
        }
        .map_err(EntryError::Local)
    }

    /// The page header at the start of `head` must be this archive's (system
    /// identifier, segment size) and `segment`'s (page address).
    fn check_header(&self, head: &[u8], segment: SegmentName) -> Result<(), EntryError> {
        check_entry_header(&self.identity, head, segment)
            .map_err(|e| EntryError::Damaged(format!("its page header: {e}")))
    }

    /// Records `restored` as the wanted position and removes entries it made
    /// stale. Done by the foreground after each restored segment.
    pub fn advance(&self, restored: SegmentName) -> io::Result<()> {
        let mut staged = self.dir.stage(WANT_FILE)?;
        writeln!(staged, "{restored}")?;
        self.dir.publish(staged, WANT_FILE)?;
        self.remove_stale(restored);
        Ok(())
    }

    /// The wanted position, if one was recorded.
    pub fn want(&self) -> Option<SegmentName> {
        let bytes = self.dir.read_small(WANT_FILE, 64).ok()??;
        match std::str::from_utf8(&bytes).ok()?.trim().parse::<WalName>() {
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
        for (name, stat) in self.dir.entries().unwrap_or_default() {
            if name == WANT_FILE || name == spool::WORKER_LOCK || name == spool::STAGING_DIR {
                continue;
            }
            let wanted = match name.parse::<WalName>() {
                Ok(WalName::Segment(s)) => window.contains(&s),
                _ => false,
            };
            if !(wanted && is_fresh(mtime(&stat))) {
                let _ = self.dir.unlink(&name);
            }
        }
    }

    /// How many entries (segment names) the spool directory holds now.
    fn spooled(&self) -> u64 {
        let entries = self.dir.entries().unwrap_or_default();
        entries
            .iter()
            .filter(|(name, _)| matches!(name.parse::<WalName>(), Ok(WalName::Segment(_))))
            .count() as u64
    }

    /// Removes the spool directory: its recovery has ended (see [`work`]).
    fn remove(&self) {
        if let Err(e) = self.root.remove_tree(&self.name) {
            tracing::debug!("cannot remove {}: {e}", self.dir().display());
        }
    }

    /// Starts a detached worker unless one is running. The lock is taken here and
    /// handed to the worker (an inherited descriptor), so from this call's return
    /// until the worker exits the lock is held: whoever waits for the lock waits
    /// for the worker.
    pub fn start_worker(&self, job: &Job, launch: Launcher) -> io::Result<bool> {
        let Some(lock) = self.dir.try_worker_lock()? else {
            return Ok(false);
        };
        // Out of the data directory, in a session of its own (see super::detach).
        let args = launch(&WorkerJob::Prefetch(job), lock.as_raw_fd());
        self.dir.spawn_worker(args, &lock)?;
        Ok(true)
    }
}

/// An entry's modification time from what `fstatat` found.
fn mtime(stat: &rustix::fs::Stat) -> Option<SystemTime> {
    let secs = u64::try_from(stat.st_mtime).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Written less than [`STALE_AFTER`] ago (a time in the future counts as now).
fn is_fresh(modified: Option<SystemTime>) -> bool {
    modified.is_some_and(|t| {
        SystemTime::now()
            .duration_since(t)
            .map_or(true, |age| age < STALE_AFTER)
    })
}

/// Why a spool entry was not used.
enum EntryError {
    /// The entry itself is wrong: remove it.
    Damaged(String),
    /// Local I/O (the destination, or reading the entry).
    Local(io::Error),
}

/// Tag of a spool entry's trailer (see [`ENTRY_TRAILER_LEN`]).
const ENTRY_TAG: &[u8; 8] = b"UXWALSPL";
/// A spool entry is the segment, uncompressed, followed by this many bytes: a
/// tag, the segment's SHA-256 as the archive recorded it, and its size
/// (little-endian). Taking the trailer off leaves the segment itself, so a
/// verified entry is renamed into place, not copied.
pub const ENTRY_TRAILER_LEN: usize = 8 + 32 + 8;
/// Bytes hashed (and copied, across filesystems) at a time when an entry is used.
const READ_BLOCK: usize = 256 * 1024;

fn entry_trailer(t: &Trailer) -> [u8; ENTRY_TRAILER_LEN] {
    let mut b = [0u8; ENTRY_TRAILER_LEN];
    b[..8].copy_from_slice(ENTRY_TAG);
    b[8..40].copy_from_slice(&t.sha256);
    b[40..].copy_from_slice(&t.size.to_le_bytes());
    b
}

/// The check of [`Spool::check_header`], on its own: the page header at the
/// start of `head` is that of `segment` in the archive of `identity`.
pub(crate) fn check_entry_header(
    identity: &Identity,
    head: &[u8],
    segment: SegmentName,
) -> Result<(), identity::IdentityError> {
    identity::check_segment(head, segment, identity.segment_size, Some(identity)).map(|_| ())
}

pub(crate) fn parse_entry_trailer(b: &[u8; ENTRY_TRAILER_LEN]) -> Option<Trailer> {
    if array_at(b, 0).as_ref() != Some(ENTRY_TAG) {
        return None;
    }
    Some(Trailer {
        sha256: array_at(b, 8)?,
        size: u64::from_le_bytes(array_at(b, 40)?),
    })
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
pub fn run_worker(job: &Job, lock_fd: Option<RawFd>) -> Result<WorkerOutcome> {
    if job.location.is_empty() || job.depth == 0 {
        return Ok(WorkerOutcome::Idle);
    }
    let job = job.clone();
    // What a fetch cut short had written is a staging file, never an entry.
    detach::run_until_stopped("prefetch worker", WorkerOutcome::Stopped, move || {
        work(&job, lock_fd)
    })
}

fn work(job: &Job, lock_fd: Option<RawFd>) -> Result<WorkerOutcome> {
    let location = job.location.as_str();
    // Checked again here: the worker trusts no path its caller checked.
    let root = SpoolDir::open_root(&job.spool_dir, None)?;
    let repo = Repository::open_with(location, &job.store)?;
    // The identity the calls cached lets the fetches start at once; the
    // archive's own is read after the first window (to refresh the cache).
    let cached = Spool::cached_identity(&root, location);
    let identity = match cached {
        Some(identity) => identity,
        None => {
            let Some(identity) = repo.identity()? else {
                return Ok(WorkerOutcome::Idle);
            };
            remember_identity(&root, location, &identity);
            identity
        }
    };
    // Kept for the fetches, with its client and its connections.
    let repos = Repos(std::sync::Mutex::new(vec![repo]));
    let spool = Spool::open(&root, location, identity, job.depth, job.max_bytes)?;
    let lock_error = |e: io::Error| Error::Internal(format!("prefetch worker lock: {e}"));
    let lock = match lock_fd {
        Some(fd) => spool.dir.adopt_worker_lock(fd).map_err(lock_error)?,
        None => match spool.dir.try_worker_lock().map_err(lock_error)? {
            Some(lock) => lock,
            None => return Ok(WorkerOutcome::AlreadyRunning),
        },
    };
    // Watched from before the first look at the position, so that no move of it
    // is missed. Without a watch (no inotify) the worker does not linger.
    let watch = spool
        .dir
        .watch_renames_into()
        .map_err(|e| tracing::debug!("prefetch worker does not linger: {e}"))
        .ok();
    // The first segment the archive did not have: not asked for again in this
    // run until the database has restored past it.
    let mut end = None;
    let mut refresh = cached;
    loop {
        let Some(want) = spool.want() else {
            return Ok(WorkerOutcome::Idle);
        };
        spool.remove_stale(want);
        if fill_window(&spool, job, &repos, &mut end)? == WorkerOutcome::Stopped {
            return Ok(WorkerOutcome::Stopped);
        }
        if let Some(cached) = refresh.take() {
            // Another archive at the location now (or none): its identity is
            // cached for the next calls, which open its spool; every entry of
            // this one is checked against the identity it was fetched for.
            match repos.with(job, |repo| repo.identity()) {
                Ok(Some(identity)) if identity == cached => {}
                Ok(Some(identity)) => {
                    remember_identity(&root, location, &identity);
                    return Ok(WorkerOutcome::Done);
                }
                Ok(None) => return Ok(WorkerOutcome::Idle),
                Err(e) => tracing::debug!("cannot read the archive identity again: {e}"),
            }
        }
        if spool.want() != Some(want) {
            continue;
        }
        // The window is full. Recovery asks again within moments: waiting for
        // that here saves the next call starting a worker, and that worker a
        // round trip for the identity.
        if let Some(watch) = &watch {
            if !job.linger.is_zero() {
                if wait_for_move(watch, &spool, want, job.linger) {
                    continue;
                }
                if signals::stop_requested() {
                    return Ok(WorkerOutcome::Stopped);
                }
                // No request for the position for the whole linger: the recovery
                // has ended (promoted, or stopped), and nothing spooled here will be
                // asked for. Removed while the lock is still held; a call that
                // comes back meanwhile costs one prefetch at most (its directory is
                // recreated, or left in place when it is not empty by then).
                spool.remove();
                return Ok(WorkerOutcome::Done);
            }
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

/// Caches `identity` for the calls; a failure costs them a round trip, no more.
fn remember_identity(root: &SpoolDir, location: &str, identity: &Identity) {
    if let Err(e) = Spool::remember_identity(root, location, identity) {
        tracing::debug!("cannot remember the archive identity: {e}");
    }
}

/// How long a worker whose window is full waits for the next wanted position
/// before it removes its spool directory and exits: `UXWAL_PREFETCH_LINGER`
/// seconds (0 to 60), else [`DEFAULT_LINGER`]. 0 means: exit at
/// once and leave the entries to the next calls (they expire after
/// an hour). Anything else is a configuration error, never a silent
/// default.
pub fn linger_from_env() -> Result<Duration> {
    let Ok(text) = std::env::var(LINGER_ENV) else {
        return Ok(DEFAULT_LINGER);
    };
    match text.trim().parse::<u64>() {
        Ok(secs) if secs <= MAX_LINGER_SECS => Ok(Duration::from_secs(secs)),
        _ => Err(Error::Config(format!(
            "{LINGER_ENV}={text:?}: must be a whole number of seconds from 0 to {MAX_LINGER_SECS}"
        ))),
    }
}

/// Seconds a prefetch worker with a full window waits for the next position.
pub const LINGER_ENV: &str = "UXWAL_PREFETCH_LINGER";
/// The wait when [`LINGER_ENV`] is not set.
pub const DEFAULT_LINGER: Duration = Duration::from_secs(5);
/// Largest [`LINGER_ENV`].
pub const MAX_LINGER_SECS: u64 = 60;
/// Default byte bound of one prefetch spool directory (`spool_max_bytes`).
pub const DEFAULT_MAX_BYTES: u64 = 2 << 30;
/// Smallest `spool_max_bytes`: one 1 MiB segment and its trailer.
pub const MIN_MAX_BYTES: u64 = 2 << 20;

/// Waits up to `linger` for the wanted position to leave `want` (or for a
/// shutdown signal); true when it moved. The foreground renames a new `want`
/// file into the spool directory, which the watch reports, so a lingering
/// worker reacts at once and costs nothing while it waits. Any error ends the
/// wait.
fn wait_for_move(watch: &DirWatch, spool: &Spool, want: SegmentName, linger: Duration) -> bool {
    let until = std::time::Instant::now() + linger;
    loop {
        // Events are consumed *before* the position is read: a move after the
        // read queues a new event, which ends the wait below.
        if !watch.drain() {
            return false;
        }
        if spool.want() != Some(want) {
            return true;
        }
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() || signals::stop_requested() {
            return false;
        }
        // Woken by an event, else at least every STOP_CHECK to see a signal.
        watch.wait(left.min(detach::STOP_CHECK));
    }
}

/// Fetches the missing segments of the window after the wanted position, up to
/// [`WORKER_FETCHES`] at a time. Each fetcher picks its next segment against the
/// position as it is *then*: while the database consumes entries, the window
/// moves and the freed places are refilled at once, not after a whole round.
/// Nothing at or after a segment the archive lacks is fetched (the archive ends
/// there for now; `end` records it for the next rounds, and a later worker looks
/// again). Returns when no fetcher finds anything left to do.
fn fill_window(
    spool: &Spool,
    job: &Job,
    repos: &Repos,
    end: &mut Option<SegmentName>,
) -> Result<WorkerOutcome> {
    let picker = std::sync::Mutex::new(Picker {
        in_flight: Default::default(),
        end: *end,
    });
    let failed = AtomicBool::new(false);
    let first_error = std::sync::Mutex::new(None);
    super::on_threads(WORKER_FETCHES, || loop {
        if signals::stop_requested() || failed.load(Ordering::SeqCst) {
            return;
        }
        let Some(segment) = lock(&picker).next(spool) else {
            return;
        };
        let fetched = repos.with(job, |repo| fetch_one(spool, repo, segment));
        let mut picker = lock(&picker);
        picker.in_flight.remove(&segment);
        match fetched {
            Ok(true) => {}
            Ok(false) => {
                picker.end = Some(picker.end.map_or(segment, |end| end.min(segment)));
            }
            Err(e) => {
                failed.store(true, Ordering::SeqCst);
                lock(&first_error).get_or_insert(e);
            }
        }
    });
    *end = lock(&picker).end;
    if let Some(e) = first_error.into_inner().unwrap_or_else(|p| p.into_inner()) {
        return Err(e);
    }
    Ok(if signals::stop_requested() {
        WorkerOutcome::Stopped
    } else {
        WorkerOutcome::Done
    })
}

/// The repositories of a worker's fetchers, one per fetch in flight, each
/// kept from one fetch to the next: opening one per fetch cost a new client,
/// a new runtime and a new connection (TCP and TLS handshakes) every time.
struct Repos(std::sync::Mutex<Vec<Repository>>);

impl Repos {
    /// Runs `fetch` with a repository of the pool (opened when none is free),
    /// its deadline started again: it bounds this fetch alone. A repository
    /// whose fetch failed is not kept.
    fn with<T>(&self, job: &Job, fetch: impl FnOnce(&Repository) -> Result<T>) -> Result<T> {
        let repo = match lock(&self.0).pop() {
            Some(repo) => repo,
            None => Repository::open_with(&job.location, &job.store)?,
        };
        repo.restart_deadline();
        let result = fetch(&repo);
        if result.is_ok() {
            lock(&self.0).push(repo);
        }
        result
    }
}

/// What the fetchers of one [`fill_window`] share.
struct Picker {
    /// Segments being fetched now.
    in_flight: std::collections::HashSet<SegmentName>,
    /// The first segment the archive did not have.
    end: Option<SegmentName>,
}

impl Picker {
    /// The first segment of the current window that is neither spooled, nor being
    /// fetched, nor at or after the end of the archive; marked in flight.
    fn next(&mut self, spool: &Spool) -> Option<SegmentName> {
        let want = spool.want()?;
        // Once the database has restored past it, or moved to another timeline,
        // the end is old news.
        if self
            .end
            .is_some_and(|end| end <= want || end.timeline != want.timeline)
        {
            self.end = None;
        }
        // The byte bound counts what is spooled and what is being written.
        let held = spool.spooled() + self.in_flight.len() as u64 + 1;
        if held.saturating_mul(spool.entry_len()) > spool.max_bytes {
            return None;
        }
        let end = self.end;
        let beyond_end = |s: &SegmentName| end.is_some_and(|end| *s >= end);
        let segment = spool.window(want).into_iter().find(|s| {
            !beyond_end(s) && !self.in_flight.contains(s) && !spool.dir.exists(&s.to_string())
        })?;
        self.in_flight.insert(segment);
        Some(segment)
    }
}

/// Locks a mutex whose holder cannot leave it inconsistent (no panics while held).
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// `restore-<location key>`: holds the archive's identity as the last worker read it.
fn identity_dir(location: &str) -> String {
    format!("restore-{}", spool::location_key(location.as_bytes()))
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
fn fetch_one(spool: &Spool, repo: &Repository, segment: SegmentName) -> Result<bool> {
    let name = WalName::Segment(segment);
    // Spooled as it will be served: decoded here, in the background, and stored
    // uncompressed with the archive's SHA-256 and size after it (see
    // [`ENTRY_TRAILER_LEN`]). The SHA-256 is checked once, by the call that uses
    // the entry: that check covers the archive's object and the spool's copy
    // alike. (The formats' own checksums and the size are checked on the way: a
    // damaged object is not spooled, and the direct fetch reports it properly.)
    let stored = match repo.open_stored(&name, Some(spool.identity.segment_size)) {
        Ok(Some(stored)) => stored,
        Ok(None) => return Ok(false),
        Err(Error::Corrupt { source, .. }) => {
            tracing::debug!("not spooling {segment}: {source}");
            return Ok(true);
        }
        Err(e) => return Err(e),
    };
    let trailer = *stored.trailer();
    let entry = spool.entry(segment);
    let local = |e: io::Error| Error::Destination {
        path: entry.clone(),
        source: e,
    };
    let staged = spool.dir.stage(&segment.to_string()).map_err(local)?;
    let mut out = StopOnSignal(staged);
    match stored.copy_unhashed_to(&mut out, &entry) {
        Ok(()) => {}
        Err(Error::Corrupt { source, .. }) => {
            tracing::debug!("not spooling {segment}: {source}");
            return Ok(true);
        }
        // Stopped by a signal, or our own disk: dropping the staging file removes it.
        Err(Error::Destination { .. }) if signals::stop_requested() => return Ok(true),
        Err(e) => return Err(e),
    }
    let mut staged = out.0;
    staged
        .write_all(&entry_trailer(&trailer))
        .and_then(|()| spool.dir.publish(staged, &segment.to_string()))
        .map_err(local)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;

    fn identity() -> Identity {
        Identity {
            system_identifier: 42,
            segment_size: 1 << 20,
            page_magic: 0xD110,
        }
    }

    fn test_spool(root: &Path, identity: Identity, depth: usize) -> Spool {
        let root = SpoolDir::open_root(&root.join("spool"), None).unwrap();
        Spool::open(&root, "/mnt/wal", identity, depth, u64::MAX).unwrap()
    }

    fn seg(timeline: u32, n: u64) -> SegmentName {
        SegmentName::from_segment_number(timeline, n, 1 << 20)
    }

    #[test]
    fn stale_entries_go_and_the_window_stays() {
        let root = tempfile::tempdir().unwrap();
        let spool = test_spool(root.path(), identity(), 3);
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
        let elsewhere = Spool::dir_for(&root.path().join("spool"), "s3://b/wal", &identity());
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
        let spool = test_spool(root.path(), identity(), 3);
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
        let spool = test_spool(
            root.path(),
            Identity {
                segment_size: 16 << 20,
                ..identity()
            },
            2,
        );
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
    fn fetchers_refill_the_moving_window_and_stop_at_the_end_of_the_archive() {
        let root = tempfile::tempdir().unwrap();
        let spool = test_spool(root.path(), identity(), 3);
        spool.advance(seg(1, 10)).unwrap();
        let mut picker = Picker {
            in_flight: Default::default(),
            end: None,
        };
        fs::write(spool.entry(seg(1, 11)), b"x").unwrap();
        assert_eq!(picker.next(&spool), Some(seg(1, 12)), "11 is spooled");
        assert_eq!(picker.next(&spool), Some(seg(1, 13)), "12 is in flight");
        assert_eq!(picker.next(&spool), None, "the window is 11..=13");
        picker.in_flight.clear();
        picker.end = Some(seg(1, 12));
        assert_eq!(picker.next(&spool), None, "the archive ends at 12");
        spool.advance(seg(1, 11)).unwrap();
        assert_eq!(picker.next(&spool), None, "still the end");
        spool.advance(seg(1, 12)).unwrap();
        assert_eq!(
            picker.next(&spool),
            Some(seg(1, 13)),
            "restored past the end: it is old news"
        );
        assert_eq!(picker.end, None);
        picker.end = Some(seg(1, 20));
        spool.advance(seg(2, 12)).unwrap();
        assert_eq!(picker.next(&spool), Some(seg(2, 13)), "another timeline");
    }

    #[test]
    fn entry_trailers_round_trip_and_carry_their_tag() {
        let t = Trailer {
            sha256: [7; 32],
            size: 16 << 20,
        };
        let mut b = entry_trailer(&t);
        assert_eq!(parse_entry_trailer(&b), Some(t));
        b[0] ^= 1;
        assert_eq!(parse_entry_trailer(&b), None);
    }

    #[test]
    fn a_damaged_entry_is_refused_and_removed() {
        let root = tempfile::tempdir().unwrap();
        let spool = test_spool(root.path(), identity(), 2);
        let dest = root.path().join("RECOVERYXLOG");
        fs::write(spool.entry(seg(1, 5)), b"not an archived object at all").unwrap();
        assert!(spool.take(seg(1, 5), &dest).is_none());
        assert!(!spool.entry(seg(1, 5)).exists());
        assert!(!dest.exists());
        assert!(spool.take(seg(1, 6), &dest).is_none(), "absent entry");
    }
}
