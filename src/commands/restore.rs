//! `uxwal-restore`: fetch one WAL file, verify it, and put it where the database asks.
//!
//! "Not in the archive" is reported only when the storage says the object is
//! absent *and* the repository is really there (its FORMAT object exists), so an
//! unmounted or empty directory is an error, never a miss. Nothing appears at the
//! destination until the content matches its recorded SHA-256: the file is decoded
//! into a staging file beside the destination and renamed into place.
//!
//! Errors other than "not found" follow an [`ErrorPolicy`]: during point-in-time
//! recovery a miss would make the database end recovery early on a new timeline
//! (silently leaving out later transactions), so the safe answer is to stop it.
//!
//! With `--prefetch N` (the default for object storage) a segment may come from
//! the local spool that a background worker filled ahead of the database; it is
//! verified the same way first, and any doubt about it means a direct fetch
//! ([`run_prefetch_worker`], `docs/prefetch.md`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::background::prefetch::{self, Spool};
pub use crate::background::prefetch::{
    linger_from_env, run_worker as run_prefetch_worker, Job as PrefetchJob, DEFAULT_LINGER,
    DEFAULT_MAX_BYTES, ENTRY_TRAILER_LEN, LINGER_ENV, MIN_MAX_BYTES,
};
use crate::background::spool::{self, SpoolDir};
use crate::background::Launcher;
use crate::error::Result;
use crate::pipeline::fetch;
pub use crate::pipeline::fetch::{ErrorPolicy, RestoreOutcome, Served};
use crate::repo::remote::{Scheme, StoreOptions};
use crate::repo::{Identity, Repository};
use crate::wal::name::{SegmentName, WalName};

/// `--on-error`: what an error other than "not found" does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// `abort` during point-in-time recovery (`recovery.signal` without
    /// `standby.signal` in the current directory), `missing` on a standby.
    Auto,
    /// Retry briefly, then exit 200 so the database stops recovery.
    Abort,
    /// Exit 1 at once, as for a missing file (the database tries again later).
    Missing,
}

impl OnError {
    /// Resolves `auto` by looking at the signal files in `data_dir`.
    ///
    /// A standby (`standby.signal`) falls back to streaming and asks again, so a
    /// miss is harmless there. Anything else that calls restore_command
    /// (point-in-time recovery, `pg_rewind -c`) must not mistake an error for a miss.
    pub fn resolve(self, data_dir: &Path) -> ErrorPolicy {
        match self {
            OnError::Abort => ErrorPolicy::Abort,
            OnError::Missing => ErrorPolicy::Missing,
            OnError::Auto if data_dir.join("standby.signal").exists() => ErrorPolicy::Missing,
            OnError::Auto => ErrorPolicy::Abort,
        }
    }
}

/// Where to restore from.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Tried in order until one has the file.
    pub repos: Vec<String>,
    pub store: StoreOptions,
    /// Segments to fetch ahead (`--prefetch`); `None` picks the default for the repositories.
    pub prefetch: Option<usize>,
    /// Spool root for prefetched segments.
    pub spool_dir: PathBuf,
    /// Bytes one prefetch spool directory may hold (`spool_max_bytes`).
    pub spool_max_bytes: u64,
    /// How long a prefetch worker with a full window waits for the next position.
    pub linger: Duration,
    /// The configuration file given on the command line (or `UXWAL_CONFIG`), which
    /// the prefetch worker reads too.
    pub config_file: Option<PathBuf>,
}

impl Settings {
    /// Segments to fetch ahead: `--prefetch`, else 0 when the first repository is
    /// a local directory (a read from disk costs no round trip worth hiding), else
    /// 8.
    pub fn prefetch_depth(&self) -> usize {
        self.prefetch.unwrap_or_else(
            || match self.repos.first().map(|r| Scheme::of(r).is_some()) {
                Some(true) => prefetch::DEFAULT_DEPTH_OBJECT_STORE,
                _ => 0,
            },
        )
    }

    /// What a prefetch worker started by this restore runs with.
    pub fn prefetch_job(&self) -> prefetch::Job {
        prefetch::Job {
            location: self.repos.first().cloned().unwrap_or_default(),
            store: self.store.clone(),
            depth: self.prefetch_depth(),
            max_bytes: self.spool_max_bytes,
            linger: self.linger,
            spool_dir: self.spool_dir.clone(),
            config_file: self.config_file.clone(),
        }
    }
}

/// Where the prefetch worker keeps its entries for the archive at `location`
/// with `identity`, under the spool root `root` (`docs/prefetch.md`).
pub fn prefetch_spool_dir(root: &Path, location: &str, identity: &Identity) -> PathBuf {
    Spool::dir_for(root, location, identity)
}

/// Restores `wal_name` to `dest` from the first repository that has it, retrying
/// transient errors when the policy is to abort. When no repository has it and
/// one of them failed, the answer is that failure: it might have had the file.
///
/// With prefetch on, a full segment is first looked for in the spool (used only
/// when it verifies), and a background worker is started to fetch the following
/// ones ([`run_prefetch_worker`]).
pub fn run(
    wal_name: &str,
    dest: &Path,
    settings: &Settings,
    policy: ErrorPolicy,
    launch: Launcher,
) -> Result<RestoreOutcome> {
    let started = std::time::Instant::now();
    let outcome = restore(wal_name, dest, settings, policy, launch);
    if let Ok(RestoreOutcome::Restored(served)) = &outcome {
        let from = if served.from_spool {
            format!("the prefetch spool of {}", served.repository)
        } else {
            served.repository.clone()
        };
        tracing::debug!(
            "{wal_name}: restored from {from}: {} bytes ({} stored) in {} ms",
            served.bytes,
            served.stored_bytes,
            started.elapsed().as_millis()
        );
    }
    outcome
}

/// [`run`] without the log line.
fn restore(
    wal_name: &str,
    dest: &Path,
    settings: &Settings,
    policy: ErrorPolicy,
    launch: Launcher,
) -> Result<RestoreOutcome> {
    let name: WalName = wal_name.parse()?;
    // The database's own system identifier, when this runs in its data
    // directory: nothing of another cluster is restored.
    let data_dir = spool::data_directory();
    let own = data_dir.as_deref().and_then(system_identifier);
    let fetch =
        |name: &WalName| fetch::fetch(&settings.repos, &settings.store, name, dest, policy, own);
    let WalName::Segment(segment) = name else {
        return fetch(&name);
    };
    let spool = match cached_spool(settings, data_dir.as_deref(), own) {
        Prefetch::Off => return fetch(&name),
        Prefetch::Ready(spool) => spool,
        Prefetch::NeedsIdentity(root) => {
            return fetch_while_looking_up(segment, settings, root, own, launch, || fetch(&name))
        }
    };
    if let Some(bytes) = spool.take(segment, dest) {
        prefetch_after(&spool, segment, settings, launch);
        return Ok(RestoreOutcome::Restored(Served {
            repository: settings.repos.first().cloned().unwrap_or_default(),
            from_spool: true,
            bytes,
            stored_bytes: 0,
        }));
    }
    // Not spooled. At a new position (the first call of a recovery, a jump to
    // another timeline) the worker starts on the segments after this one while
    // this call fetches it, instead of after. Asked again for the same segment
    // (a standby polling for one not archived yet), it does not start again.
    let started = spool.want() != Some(segment);
    if started {
        prefetch_after(&spool, segment, settings, launch);
    }
    let outcome = fetch(&name)?;
    if matches!(outcome, RestoreOutcome::Restored(_)) && !started {
        prefetch_after(&spool, segment, settings, launch);
    }
    Ok(outcome)
}

/// Records `segment` as the wanted position and starts a worker for what follows.
/// Prefetch only saves time: its failures are notes, never a failed restore.
fn prefetch_after(spool: &Spool, segment: SegmentName, settings: &Settings, launch: Launcher) {
    if let Err(e) = spool
        .advance(segment)
        .and_then(|()| spool.start_worker(&settings.prefetch_job(), launch))
    {
        tracing::warn!("prefetch after {segment}: {e}");
    }
}

/// How long looking up the archive identity for the spool may take. A storage
/// that does not answer then costs the restore this much on top of its own
/// deadline, not a second full deadline.
const SPOOL_LOOKUP_BUDGET: Duration = Duration::from_secs(5);

/// The prefetch spool, as far as it can be had without a request.
enum Prefetch {
    /// Prefetch is off for this call.
    Off,
    /// The spool of the archive's cached identity.
    Ready(Spool),
    /// No identity is cached in this spool root: it must be read from the archive first.
    NeedsIdentity(SpoolDir),
}

/// The spool of the first repository's archive, when prefetch is on and its
/// identity is cached (see [`Prefetch`]). A refused spool directory says so in
/// one warning line.
fn cached_spool(settings: &Settings, data_dir: Option<&Path>, own: Option<u64>) -> Prefetch {
    let depth = settings.prefetch_depth();
    let Some(location) = settings.repos.first().filter(|_| depth > 0) else {
        return Prefetch::Off;
    };
    let root = match SpoolDir::open_root(&settings.spool_dir, data_dir) {
        Ok(root) => root,
        Err(e) => {
            tracing::warn!("prefetch off: {e}");
            return Prefetch::Off;
        }
    };
    // A cached identity of another cluster than the data directory's (a reused
    // location) is not trusted, and so no entry of another cluster is ever
    // served (each entry's page header is checked against the identity).
    let cached = Spool::cached_identity(&root, location)
        .filter(|i| own.is_none_or(|own| own == i.system_identifier));
    match cached {
        Some(identity) => open_spool(&root, location, identity, settings),
        None => Prefetch::NeedsIdentity(root),
    }
}

fn open_spool(
    root: &SpoolDir,
    location: &str,
    identity: Identity,
    settings: &Settings,
) -> Prefetch {
    let depth = settings.prefetch_depth();
    match Spool::open(root, location, identity, depth, settings.spool_max_bytes) {
        Ok(spool) => Prefetch::Ready(spool),
        Err(e) => {
            tracing::warn!("prefetch off: {e}");
            Prefetch::Off
        }
    }
}

/// The spool after reading the archive's identity (and caching it for the
/// next calls); `None` when the archive has none or belongs to another system.
fn looked_up_spool(settings: &Settings, root: &SpoolDir, own: Option<u64>) -> Option<Spool> {
    let location = settings.repos.first()?;
    let mut store = settings.store.clone();
    store.deadline = store.deadline.min(SPOOL_LOOKUP_BUDGET);
    let identity = Repository::open_with(location, &store)
        .and_then(|repo| repo.identity())
        .map_err(|e| tracing::debug!("prefetch off for this call: {e}"))
        .ok()??;
    if let Err(e) = Spool::remember_identity(root, location, &identity) {
        tracing::debug!("cannot remember the archive identity: {e}");
    }
    if own.is_some_and(|own| own != identity.system_identifier) {
        tracing::debug!("prefetch off: the archive belongs to another database system");
        return None;
    }
    match open_spool(root, location, identity, settings) {
        Prefetch::Ready(spool) => Some(spool),
        _ => None,
    }
}

/// Restores `segment` with no identity cached: the identity is read on a
/// thread beside the fetch, not before it, so that the first call of a
/// recovery costs one round trip like a serial one; as soon as it is known the
/// thread starts the worker on the following segments, as the cached path does
/// before its fetch. The call then waits for that thread (usually done by
/// then: a small object against a segment), at most [`SPOOL_LOOKUP_BUDGET`],
/// the bound the lookup had when it came before the fetch.
fn fetch_while_looking_up(
    segment: SegmentName,
    settings: &Settings,
    root: SpoolDir,
    own: Option<u64>,
    launch: Launcher,
    fetch: impl FnOnce() -> Result<RestoreOutcome>,
) -> Result<RestoreOutcome> {
    let look_up = move |settings: &Settings, root: &SpoolDir| {
        if let Some(spool) = looked_up_spool(settings, root, own) {
            prefetch_after(&spool, segment, settings, launch);
        }
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let lookup_settings = settings.clone();
    let looking = root.try_clone().ok().and_then(|theirs| {
        std::thread::Builder::new()
            .spawn(move || {
                look_up(&lookup_settings, &theirs);
                let _ = tx.send(());
            })
            .ok()
    });
    let outcome = fetch();
    match looking {
        Some(_) => {
            let _ = rx.recv_timeout(SPOOL_LOOKUP_BUDGET);
        }
        // No thread to be had: looked up here, after the fetch.
        None => look_up(settings, &root),
    }
    outcome
}

/// The system identifier in `global/pg_control` of `data_dir`: the first field
/// of `ControlFileData`, a `uint64` in the machine's byte order.
fn system_identifier(data_dir: &Path) -> Option<u64> {
    use std::io::Read;
    let mut head = [0u8; 8];
    std::fs::File::open(data_dir.join("global/pg_control"))
        .and_then(|mut f| f.read_exact(&mut head))
        .ok()?;
    Some(u64::from_ne_bytes(head))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_is_on_by_default_for_object_storage_only() {
        let settings = |repo: &str, prefetch| Settings {
            repos: vec![repo.to_string()],
            store: StoreOptions::default(),
            prefetch,
            spool_dir: PathBuf::from("/nonexistent"),
            spool_max_bytes: prefetch::DEFAULT_MAX_BYTES,
            linger: prefetch::DEFAULT_LINGER,
            config_file: None,
        };
        assert_eq!(settings("/mnt/wal", None).prefetch_depth(), 0);
        assert_eq!(settings("file:///mnt/wal", None).prefetch_depth(), 0);
        assert_eq!(
            settings("s3://bucket/wal", None).prefetch_depth(),
            prefetch::DEFAULT_DEPTH_OBJECT_STORE
        );
        assert_eq!(settings("s3://bucket/wal", Some(0)).prefetch_depth(), 0);
        assert_eq!(settings("/mnt/wal", Some(3)).prefetch_depth(), 3);
    }

    #[test]
    fn auto_policy_follows_the_signal_files() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(OnError::Auto.resolve(dir.path()), ErrorPolicy::Abort);
        std::fs::write(dir.path().join("recovery.signal"), "").unwrap();
        assert_eq!(OnError::Auto.resolve(dir.path()), ErrorPolicy::Abort);
        std::fs::write(dir.path().join("standby.signal"), "").unwrap();
        assert_eq!(OnError::Auto.resolve(dir.path()), ErrorPolicy::Missing);
        assert_eq!(OnError::Abort.resolve(dir.path()), ErrorPolicy::Abort);
        assert_eq!(
            OnError::Missing.resolve(Path::new("/nonexistent")),
            ErrorPolicy::Missing
        );
    }
}
