//! The restore half of the data path: get a stored object from the first
//! repository that has it, decode and verify it, and publish it at the
//! destination. Nothing appears there until the content matches its recorded
//! SHA-256; "not in the archive" is reported only when the repository is really
//! there (its FORMAT object exists), so an unmounted or empty directory is an
//! error, never a miss.

use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::durable;
use crate::error::{Error, Result};
use crate::repo::remote::StoreOptions;
use crate::repo::Repository;
use crate::wal::name::WalName;

/// The resolved policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    Abort,
    Missing,
}

/// What restoring did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// The verified file is at the destination.
    Restored,
    /// The archive does not hold the file; nothing was written.
    NotInArchive,
}

/// Pauses between attempts under [`ErrorPolicy::Abort`]: brief, because the database waits.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(1000)];

/// Restores `name` to `dest` from the first of `repos` that has it, retrying
/// transient errors when the policy is to abort. When no repository has it and
/// one of them failed, the answer is that failure: it might have had the file.
pub fn fetch(
    repos: &[String],
    store: &StoreOptions,
    name: &WalName,
    dest: &Path,
    policy: ErrorPolicy,
) -> Result<RestoreOutcome> {
    let mut first_error = None;
    for location in repos {
        let attempt = Repository::open_with(location, store)
            .and_then(|repo| restore_with_retries(&repo, name, dest, policy));
        match attempt {
            Ok(RestoreOutcome::Restored) => return Ok(RestoreOutcome::Restored),
            Ok(RestoreOutcome::NotInArchive) => {}
            Err(e) if repos.len() > 1 => {
                tracing::warn!("{e}; trying the next repository");
                first_error.get_or_insert(e);
            }
            Err(e) => return Err(e),
        }
    }
    first_error.map_or(Ok(RestoreOutcome::NotInArchive), Err)
}

fn restore_with_retries(
    repo: &Repository,
    name: &WalName,
    dest: &Path,
    policy: ErrorPolicy,
) -> Result<RestoreOutcome> {
    let mut attempt = 0;
    loop {
        match restore_once(repo, name, dest) {
            Err(e)
                if policy == ErrorPolicy::Abort
                    && e.is_retryable()
                    && attempt < RETRY_DELAYS.len() =>
            {
                tracing::warn!("{e}; retrying");
                thread::sleep(RETRY_DELAYS[attempt]);
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn restore_once(repo: &Repository, name: &WalName, dest: &Path) -> Result<RestoreOutcome> {
    // The archive's segment size is not known here (reading IDENTITY would cost
    // a round trip per file): a segment's recorded size must be one PostgreSQL
    // allows, and at most that many bytes are ever written (see `repo::stored`).
    let Some(stored) = repo.open_stored(name, None)? else {
        repo.check_format()?;
        tracing::debug!("{name} is not in the archive");
        return Ok(RestoreOutcome::NotInArchive);
    };
    let destination = |source| Error::Destination {
        path: dest.to_path_buf(),
        source,
    };
    let size = stored.trailer().size;
    let mut staged = durable::stage_beside(dest).map_err(destination)?;
    stored.copy_to(&mut staged, dest)?;
    staged.publish_replace(dest).map_err(destination)?;
    tracing::debug!("restored {name} ({size} bytes) to {}", dest.display());
    Ok(RestoreOutcome::Restored)
}
