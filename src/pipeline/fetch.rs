//! The restore half of the data path: get a stored object from the first
//! repository that has it, decode and verify it, and publish it at the
//! destination. Nothing appears there until the content matches its recorded
//! SHA-256; "not in the archive" is reported only when the repository is really
//! there (its FORMAT object exists), so an unmounted or empty directory is an
//! error, never a miss. A segment must also be the one its name says: its page
//! header is checked against the name and size ([`identity::identity_of`]) and,
//! when the restoring data directory's system identifier is known, against that
//! too, so a well-formed object of another position or another cluster stored
//! under the name (a mixed-up or tampered repository) is refused before the
//! database could read it and end recovery there.

use std::io::{self, Write};
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::durable;
use crate::error::{Error, Result};
use crate::repo::remote::StoreOptions;
use crate::repo::{identity, Repository};
use crate::wal::header::LONG_HEADER_LEN;
use crate::wal::name::{SegmentName, WalName};

/// The resolved policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorPolicy {
    Abort,
    Missing,
}

/// What restoring did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreOutcome {
    /// The verified file is at the destination.
    Restored(Served),
    /// The archive does not hold the file; nothing was written.
    NotInArchive,
}

/// Where a restored file came from, and how big it was: the `--verbose` line
/// and the metrics file report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The repository location that held it (for a spooled segment: the one
    /// the prefetch worker fetched it from).
    pub repository: String,
    /// Whether it came from the prefetch spool rather than a request.
    pub from_spool: bool,
    /// Bytes of the restored file.
    pub bytes: u64,
    /// Bytes read from the repository for it (0 from the spool).
    pub stored_bytes: u64,
}

/// Pauses between attempts under [`ErrorPolicy::Abort`]: brief, because the database waits.
const RETRY_DELAYS: [Duration; 2] = [Duration::from_millis(200), Duration::from_millis(1000)];

/// Restores `name` to `dest` from the first of `repos` that has it, retrying
/// transient errors when the policy is to abort. When no repository has it and
/// one of them failed, the answer is that failure: it might have had the file.
/// `own_system` is the system identifier of the data directory restoring (from
/// its `global/pg_control`), when known: a segment of another database system
/// is refused.
pub fn fetch(
    repos: &[String],
    store: &StoreOptions,
    name: &WalName,
    dest: &Path,
    policy: ErrorPolicy,
    own_system: Option<u64>,
) -> Result<RestoreOutcome> {
    let mut first_error = None;
    for location in repos {
        let attempt = Repository::open_with(location, store)
            .and_then(|repo| restore_with_retries(&repo, name, dest, policy, own_system));
        match attempt {
            Ok(Some((bytes, stored_bytes))) => {
                return Ok(RestoreOutcome::Restored(Served {
                    repository: location.clone(),
                    from_spool: false,
                    bytes,
                    stored_bytes,
                }))
            }
            Ok(None) => {}
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
    own_system: Option<u64>,
) -> Result<Option<(u64, u64)>> {
    let mut attempt = 0;
    loop {
        match restore_once(repo, name, dest, own_system) {
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

/// A restored segment's page header must match its name and size and, when
/// known, the data directory's system identifier.
fn check_header(
    head: &[u8],
    name: &WalName,
    segment: SegmentName,
    size: u64,
    own_system: Option<u64>,
) -> Result<()> {
    let file = identity::identity_of(head, segment, size, None)
        .map_err(|e| identity::IdentityError::from(e).for_file(name))?;
    match own_system {
        Some(own) if own != file.system_identifier => Err(Error::ForeignSegment {
            name: name.to_string(),
            file: file.system_identifier,
            own,
        }),
        _ => Ok(()),
    }
}

/// Passes a segment through to `out` once its first [`LONG_HEADER_LEN`]
/// bytes, the long page header, have passed `check`; a refused header is kept
/// in `refused` and ends the copy.
struct HeaderGate<'a, W: Write> {
    out: W,
    head: Vec<u8>,
    check: &'a dyn Fn(&[u8]) -> Result<()>,
    refused: Option<Error>,
}

impl<W: Write> Write for HeaderGate<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let missing = LONG_HEADER_LEN - self.head.len();
        if missing == 0 {
            return self.out.write(buf);
        }
        let take = missing.min(buf.len());
        self.head.extend_from_slice(&buf[..take]);
        if self.head.len() == LONG_HEADER_LEN {
            if let Err(e) = (self.check)(&self.head) {
                self.refused = Some(e);
                return Err(io::Error::other("page header refused"));
            }
            self.out.write_all(&self.head)?;
        }
        Ok(take)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Restores `name` from `repo`: the bytes of the file and of the object it
/// came from, or `None` when the repository does not hold it.
fn restore_once(
    repo: &Repository,
    name: &WalName,
    dest: &Path,
    own_system: Option<u64>,
) -> Result<Option<(u64, u64)>> {
    // The archive's segment size is not known here (reading IDENTITY would cost
    // a round trip per file): a segment's recorded size must be one PostgreSQL
    // allows, and at most that many bytes are ever written (see `repo::stored`).
    let Some(stored) = repo.open_stored(name, None)? else {
        repo.check_format()?;
        tracing::debug!("{name} is not in the archive");
        return Ok(None);
    };
    let destination = |source| Error::Destination {
        path: dest.to_path_buf(),
        source,
    };
    let size = stored.trailer().size;
    let stored_len = stored.stored_len();
    let mut staged = durable::stage_beside(dest).map_err(destination)?;
    match name {
        WalName::Segment(segment) => {
            // The page header is checked as soon as it is decoded, so a hostile
            // object whose trailer claims a larger segment size than its header
            // gets no further than 40 bytes into pg_wal.
            let check = |head: &[u8]| check_header(head, name, *segment, size, own_system);
            let mut gate = HeaderGate {
                out: &mut staged,
                head: Vec::with_capacity(LONG_HEADER_LEN),
                check: &check,
                refused: None,
            };
            let copied = stored.copy_to(&mut gate, dest);
            if let Some(refused) = gate.refused.take() {
                return Err(refused);
            }
            copied?;
            if gate.head.len() < LONG_HEADER_LEN {
                check(&gate.head)?;
            }
        }
        _ => stored.copy_to(&mut staged, dest)?,
    }
    staged.publish_replace(dest).map_err(destination)?;
    Ok(Some((size, stored_len)))
}
