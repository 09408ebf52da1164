//! `uxwal-archive`: store one WAL file durably, or prove it is already stored.
//!
//! With `--parallel` 1 the call ships its own file through the pipeline
//! ([`crate::pipeline::ship`]); above 1 it also makes sure a push-ahead worker
//! ships the other ready files, and confirms its own file from the worker's
//! record when the worker already pushed it ([`run_push_ahead_worker`], `docs/push-ahead.md`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::background::backlog::{Backlog, Owed};
use crate::background::push_ahead;
pub use crate::background::push_ahead::{run_worker as run_push_ahead_worker, Job as PushAheadJob};
pub use crate::background::{Launcher, WorkerJob};
use crate::commands::sync::{copy_file, Copied};
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
    /// Repositories that must hold a file before the call exits 0 (`require`);
    /// `None` (or the number of repositories) is all of them. Below that, the
    /// others are owed the copy (the private `background::backlog` module; README, "Enough repositories").
    pub require: Option<usize>,
    /// How long a repository that could not be reached is left alone before a
    /// call tries it again (`retry_owed_after`).
    pub retry_owed_after: Duration,
}

/// Default of [`Settings::retry_owed_after`].
pub const RETRY_OWED_AFTER: Duration = Duration::from_secs(60);

/// Most owed copies one call makes before its own file.
pub const OWED_PER_CALL: usize = 8;

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
    match settings.require {
        Some(k) if k < settings.ship.repos.len() => {
            run_enough(wal_path, &name, settings, k, launch)
        }
        _ => run_all(wal_path, &name, settings, &settings.ship, launch),
    }
}

/// Archives into every repository of `ship`.
fn run_all(
    wal_path: &Path,
    name: &WalName,
    settings: &Settings,
    ship: &ship::Settings,
    launch: Launcher,
) -> Result<Archived> {
    let parallel = settings
        .parallel
        .unwrap_or_else(|| default_parallel(&ship.repos));
    if parallel > 1 {
        let wal_dir = match wal_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        let job = push_ahead::Job {
            ship: ship.clone(),
            parallel,
            spool_dir: settings.spool_dir.clone(),
            wal_dir: std::path::absolute(wal_dir).unwrap_or_else(|_| wal_dir.to_path_buf()),
            config_file: settings.config_file.clone(),
        };
        return push_ahead::run(wal_path, name, &job, launch);
    }
    let repos = ship::open_repos(ship)?;
    ship::archive_file(&repos, wal_path, name, ship).map(Archived::from)
}

/// Archives with `require = k` below the number of repositories: first the
/// copies owed to reachable repositories (at most [`OWED_PER_CALL`]), then
/// the file into every repository not known to be unreachable; a repository
/// that fails with a storage error is left out while `k` remain. Each
/// repository left out is owed the copy, recorded durably before this
/// returns. Any other error (a conflict, another cluster's file) fails the
/// call as with every repository required.
fn run_enough(
    wal_path: &Path,
    name: &WalName,
    settings: &Settings,
    k: usize,
    launch: Launcher,
) -> Result<Archived> {
    let all = &settings.ship.repos;
    let handles = ship::open_repos(&settings.ship)?;
    let described: Vec<String> = handles.iter().map(Repository::describe).collect();
    let owed = match Backlog::open(&settings.spool_dir).and_then(|backlog| {
        described
            .iter()
            .map(|d| backlog.owed(d))
            .collect::<Result<Vec<_>>>()
    }) {
        Ok(owed) => owed,
        Err(e) => {
            tracing::warn!("{name}: cannot use the backlog of owed copies, so every repository is required: {e}");
            return run_all(wal_path, name, settings, &settings.ship, launch);
        }
    };

    // Repositories recently unreachable are left alone; the others get what
    // they are owed first.
    let mut down: Vec<bool> = owed
        .iter()
        .map(|o| o.recently_down(settings.retry_owed_after))
        .collect();
    for (i, o) in owed.iter().enumerate() {
        if down[i] {
            continue;
        }
        match pay_owed(&handles, i, o, &down, settings) {
            Ok(true) => {}
            Ok(false) => {
                o.mark_down();
                down[i] = true;
            }
            // The backlog itself failed (listing, removing an entry): its
            // entries stay, to be paid by a later call; this file goes on.
            Err(e) => tracing::warn!("{name}: owed copies to {} not paid: {e}", described[i]),
        }
    }

    let mut up: Vec<usize> = (0..all.len()).filter(|&i| !down[i]).collect();
    if up.len() < k {
        // Too few left by their marks: try every repository.
        up = (0..all.len()).collect();
    }
    for i in (0..all.len()).filter(|i| !up.contains(i)) {
        tracing::warn!(
            "{name}: repository {} was unreachable less than {} s ago: not tried, the copy is owed",
            described[i],
            settings.retry_owed_after.as_secs()
        );
    }
    let archived = loop {
        let ship = ship::Settings {
            repos: up.iter().map(|&i| all[i].clone()).collect(),
            ..settings.ship.clone()
        };
        let result = if up.len() == all.len() {
            run_all(wal_path, name, settings, &ship, launch)
        } else {
            // Push-ahead records name every repository; while one is owed
            // copies, each call ships its own file.
            let repos: Vec<Repository> = up
                .iter()
                .map(|&i| Repository::open_with(&all[i], &settings.ship.store))
                .collect::<Result<_>>()?;
            ship::archive_file(&repos, wal_path, name, &ship).map(Archived::from)
        };
        let e = match result {
            Ok(archived) => break archived,
            Err(e) => e,
        };
        let Some(at) = e
            .unavailable_repository()
            .and_then(|location| up.iter().position(|&i| described[i] == location))
        else {
            return Err(e);
        };
        owed[up[at]].mark_down();
        if up.len() <= k {
            return Err(e);
        }
        tracing::warn!("{name}: {e}; archiving to the other repositories, the copy is owed");
        up.remove(at);
    };

    // The copies owed, on disk before the database hears success.
    let mut stored_sizes = vec![0; all.len()];
    for (slot, size) in up.iter().zip(&archived.stored_sizes) {
        stored_sizes[*slot] = *size;
    }
    let mut owes = Vec::new();
    for i in (0..all.len()).filter(|i| !up.contains(i)) {
        owed[i].record(name)?;
        owes.push(i);
    }
    if up.len() == all.len() {
        for o in &owed {
            o.mark_up();
        }
    }
    Ok(Archived {
        stored_sizes,
        owed: owes,
        ..archived
    })
}

/// Makes up to [`OWED_PER_CALL`] of the copies owed to repository `i`, each
/// from another repository that holds the file, removing each entry once
/// the copy is confirmed. False when repository `i` failed (it is still
/// unreachable); an entry whose copy cannot be made for another reason is
/// kept and reported.
fn pay_owed(
    handles: &[Repository],
    i: usize,
    owed: &Owed,
    down: &[bool],
    settings: &Settings,
) -> Result<bool> {
    let names = owed.names()?;
    if names.is_empty() {
        return Ok(true);
    }
    let target = &handles[i];
    let sources: Vec<&Repository> = handles
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != i && !down[j])
        .map(|(_, r)| r)
        .collect();
    if sources.is_empty() {
        // Every other repository is down: nothing to copy from, and nothing
        // known about the target.
        return Ok(true);
    }
    let identity = sources.iter().find_map(|r| r.identity().ok().flatten());
    for name in names.iter().take(OWED_PER_CALL) {
        let mut settled = false;
        let mut failures = Vec::new();
        for source in &sources {
            match copy_file(
                source,
                target,
                name,
                &settings.ship.store,
                identity.as_ref(),
            ) {
                Ok(Copied::Copied | Copied::AlreadyThere) => {
                    owed.remove(name)?;
                    tracing::info!(
                        "{name}: owed copy made in {} from {}",
                        target.describe(),
                        source.describe()
                    );
                    settled = true;
                    break;
                }
                Ok(Copied::NotInSource) => {}
                Ok(Copied::Refused(why)) => {
                    tracing::error!(
                        "{name}: owed copy to {} not made, kept in the backlog: {why}",
                        target.describe()
                    );
                    settled = true;
                    break;
                }
                Err(e) if e.unavailable_repository() == Some(&target.describe()) => {
                    tracing::warn!("{name}: owed copy not made: {e}");
                    return Ok(false);
                }
                Err(e) => failures.push(e.to_string()),
            }
        }
        if !settled && failures.is_empty() {
            // No other repository holds it any more (removed by cleanup):
            // there is nothing left to copy.
            tracing::warn!(
                "{name}: owed to {}, but no other repository holds it any more; dropped from the backlog",
                target.describe()
            );
            owed.remove(name)?;
        } else if !settled {
            tracing::warn!(
                "{name}: owed copy to {} not made, kept in the backlog: {}",
                target.describe(),
                failures.join("; ")
            );
        }
    }
    Ok(true)
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn owed_copies_are_kept_while_every_other_repository_is_down() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o700)).unwrap();
        let locations: Vec<String> = ["a", "b"]
            .iter()
            .map(|r| {
                let path = dir.path().join(r);
                std::fs::create_dir(&path).unwrap();
                path.display().to_string()
            })
            .collect();
        let handles: Vec<Repository> = locations
            .iter()
            .map(|l| Repository::open(l).unwrap())
            .collect();
        let owed = Backlog::open(&spool)
            .unwrap()
            .owed(&handles[0].describe())
            .unwrap();
        let name: WalName = "000000010000000000000007".parse().unwrap();
        owed.record(&name).unwrap();
        let settings = Settings {
            ship: ship::Settings {
                repos: locations,
                store: Default::default(),
                compression: crate::codec::Compression::None,
                level: 0,
            },
            parallel: Some(1),
            spool_dir: spool,
            config_file: None,
            require: Some(1),
            retry_owed_after: RETRY_OWED_AFTER,
        };
        // The only source is down: nothing can be learned, nothing is dropped.
        assert!(pay_owed(&handles, 0, &owed, &[false, true], &settings).unwrap());
        assert_eq!(owed.names().unwrap(), [name]);
        // Up and lacking the file: no repository holds it any more, dropped.
        assert!(pay_owed(&handles, 0, &owed, &[false, false], &settings).unwrap());
        assert!(owed.names().unwrap().is_empty());
    }
}
