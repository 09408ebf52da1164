//! `uxwal-archive`: store one WAL file durably, or prove it is already stored.
//!
//! With `--parallel` 1 the call ships its own file through the pipeline
//! ([`crate::pipeline::ship`]); above 1 it also makes sure a push-ahead worker
//! ships the other ready files, and confirms its own file from the worker's
//! record when the worker already pushed it ([`run_push_ahead_worker`], `docs/push-ahead.md`).

use std::path::{Path, PathBuf};

use crate::background::push_ahead;
pub use crate::background::push_ahead::{run_worker as run_push_ahead_worker, Job as PushAheadJob};
pub use crate::background::{Launcher, WorkerJob};
use crate::error::{Error, Result};
use crate::pipeline::ship;
pub use crate::pipeline::ship::{ArchiveOutcome, Archived};
use crate::repo::remote::Scheme;
use crate::repo::{Repository, Started};
use crate::wal::name::WalName;

/// How to archive.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Repositories, codec and level: how each file is shipped.
    pub ship: ship::Settings,
    /// Files to ship per call (`--parallel`); `None` picks the default for the repositories.
    pub parallel: Option<usize>,
    /// Spool root for push-ahead records.
    pub spool_dir: PathBuf,
    /// The configuration file given, handed on to the push-ahead worker.
    pub config_file: Option<PathBuf>,
}

/// Files shipped per call when neither `--parallel` nor `parallel` is given: 1 when
/// every repository is a local directory (a local write is fast, and extra files
/// would compete with the database for the same disk), else 4, because an object
/// store spends most of each file's time waiting on round trips.
pub fn default_parallel(repos: &[String]) -> usize {
    if repos.iter().any(|r| Scheme::of(r).is_some()) {
        4
    } else {
        1
    }
}

/// Archives `wal_path` under `wal_name`, pushing other ready files ahead when
/// `parallel` (or its default) is above 1; `launch` gives the push-ahead
/// worker's command line.
pub fn run(
    wal_path: &Path,
    wal_name: &str,
    settings: &Settings,
    launch: Launcher,
) -> Result<Archived> {
    let name: WalName = wal_name.parse()?;
    let parallel = settings
        .parallel
        .unwrap_or_else(|| default_parallel(&settings.ship.repos));
    if parallel > 1 {
        let wal_dir = match wal_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let job = push_ahead::Job {
            ship: settings.ship.clone(),
            parallel,
            spool_dir: settings.spool_dir.clone(),
            wal_dir: std::path::absolute(wal_dir).unwrap_or_else(|_| wal_dir.to_path_buf()),
            config_file: settings.config_file.clone(),
        };
        return push_ahead::run(wal_path, &name, &job, launch);
    }
    let repos = ship::open_repos(&settings.ship)?;
    ship::archive_file(&repos, wal_path, &name, &settings.ship).map(Archived::from)
}

/// `uxwal-archive --start-encryption`: marks every repository of `settings`
/// encrypted from now on ([`Repository::start_encryption`]), one after the
/// other. Returns each repository with what was found or done.
pub fn start_encryption(settings: &ship::Settings) -> Result<Vec<(String, Started)>> {
    let recipients = settings.store.keys.recipients.as_ref().ok_or_else(|| {
        Error::Config("--start-encryption needs recipients: set encrypt_to or --encrypt-to".into())
    })?;
    settings
        .repos
        .iter()
        .map(|location| {
            let repo = Repository::open_with(location, &settings.store)?;
            Ok((repo.describe(), repo.start_encryption(recipients)?))
        })
        .collect()
}
