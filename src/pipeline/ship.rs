//! The archive half of the data path: store one WAL file durably in every
//! repository, or prove it is already stored.
//!
//! Order of work: check the name (nothing is touched for a bad one), open the
//! source, check the segment header and the archive identity, then hash and
//! compress in one streaming pass into a staged object, publish it without
//! replacing, and only then report success. When the name is already archived,
//! the stored copy decides: identical original bytes (SHA-256) is success, after
//! making the stored copy durable as `contrib/basic_archive` does; anything else
//! is a conflict and nothing changes.
//!
//! [`archive_file`] is that path for one file; with `--parallel` above 1, the
//! push-ahead worker runs it for other ready files too ([`archive_file_checked`],
//! checking the repositories once per run).

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use crate::codec::digest::{self, PumpError, CHUNK};
use crate::codec::{Compression, Encoder, Trailer};
use crate::crypt::Keys;
use crate::error::{Error, Result};
use crate::repo::remote::StoreOptions;
use crate::repo::{identity, Identity, PutOutcome, Repository};
use crate::wal::name::{SegmentName, WalName};

/// How to archive.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Every repository must hold the file before the archive counts as done.
    pub repos: Vec<String>,
    pub store: StoreOptions,
    pub compression: Compression,
    pub level: i32,
}

/// What archiving did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArchiveOutcome {
    /// Newly stored.
    Archived,
    /// The archive already held identical content; nothing was written.
    AlreadyArchived,
}

/// What archiving one file stored: enough for push-ahead to record it and later
/// confirm, without downloading, that the repositories still hold it.
#[derive(Debug, Clone)]
pub struct Shipped {
    pub outcome: ArchiveOutcome,
    /// Size of the local file.
    pub size: u64,
    /// SHA-256 of the local file's bytes.
    pub sha256: [u8; 32],
    /// Size of the stored object in each repository, in the order of `Settings::repos`.
    pub stored_sizes: Vec<u64>,
    /// Each repository's identity as checked for this file (for history and
    /// backup files, which are not checked against it, the one known beforehand
    /// if any).
    pub identities: Vec<Option<Identity>>,
}

/// Opens every repository of `settings`. Sends no request. A [`Repository`] is used
/// by one thread only, so each concurrent archive opens its own.
pub fn open_repos(settings: &Settings) -> Result<Vec<Repository>> {
    settings
        .repos
        .iter()
        .map(|location| Repository::open_with(location, &settings.store))
        .collect()
}

/// Archives one file into every repository of `repos` (opened from `settings`):
/// the single path every archived file takes, the requested one and those pushed
/// ahead alike. Stops between chunks, without publishing, once a shutdown signal
/// has been received (the private `signals` module).
pub fn archive_file(
    repos: &[Repository],
    wal_path: &Path,
    name: &WalName,
    settings: &Settings,
) -> Result<Shipped> {
    archive_file_checked(repos, wal_path, name, settings, None)
}

/// The repositories' format and identities, checked once for many files: the
/// push-ahead worker then archives each file with one request, its upload.
/// Each segment's page header is still checked against the identity; a
/// repository that had none yet is asked again until one is learnt
/// ([`CheckedRepos::learn`]).
#[derive(Debug, Clone)]
pub struct CheckedRepos {
    /// Each repository's identity, in the order of `Settings::repos`.
    identities: Vec<Option<Identity>>,
}

impl CheckedRepos {
    /// Checks (creating it when the repository is new) each repository's FORMAT
    /// and reads its identity.
    pub fn check(repos: &[Repository]) -> Result<CheckedRepos> {
        let identities = repos
            .iter()
            .map(|repo| {
                repo.ensure_format()?;
                repo.identity()
            })
            .collect::<Result<_>>()?;
        Ok(CheckedRepos { identities })
    }

    /// Takes the identities a file was checked against (see [`Shipped::identities`])
    /// for the repositories that had none: each is the one the repository holds.
    pub fn learn(&mut self, identities: &[Option<Identity>]) {
        for (known, found) in self.identities.iter_mut().zip(identities) {
            if known.is_none() {
                *known = *found;
            }
        }
    }
}

/// [`archive_file`], with the repositories' format and identities already
/// checked when `checked` is given (see [`CheckedRepos`]).
pub fn archive_file_checked(
    repos: &[Repository],
    wal_path: &Path,
    name: &WalName,
    settings: &Settings,
    checked: Option<&CheckedRepos>,
) -> Result<Shipped> {
    let source_error = |source: io::Error| Error::Source {
        path: wal_path.to_path_buf(),
        source,
    };
    let mut source = File::open(wal_path).map_err(source_error)?;
    let meta = source.metadata().map_err(source_error)?;
    if !meta.is_file() {
        return Err(Error::NotRegularFile {
            path: wal_path.to_path_buf(),
        });
    }
    let len = meta.len();
    let mut buf = vec![0u8; CHUNK];
    let filled = digest::read_full(&mut source, &mut buf).map_err(source_error)?;
    buf.truncate(filled);

    let mut identities = Vec::with_capacity(repos.len());
    for (i, repo) in repos.iter().enumerate() {
        let known = match checked {
            Some(checked) => checked.identities.get(i).copied().flatten(),
            None => {
                repo.ensure_format()?;
                None
            }
        };
        identities.push(match *name {
            WalName::Segment(segment) | WalName::Partial(segment) => {
                Some(check_segment(repo, name, segment, &buf, len, known)?)
            }
            _ => known,
        });
    }

    // One pass over the source: hashed on a second thread, compressed once, and
    // the compressed bytes written to a staged object in every repository.
    let key = Repository::key(name);
    let mut staged = repos
        .iter()
        .map(|r| r.stage(&key))
        .collect::<Result<Vec<_>>>()?;
    let write_error = |e: TeeError| {
        let repo = &repos[e.index];
        Error::Storage {
            location: repo.describe(),
            op: "write",
            key: key.clone(),
            source: e.source,
        }
    };
    let tee = Tee {
        outs: staged
            .iter_mut()
            .map(|s| s.as_mut() as &mut dyn Write)
            .collect(),
        written: 0,
    };
    let out = io::BufWriter::with_capacity(CHUNK, tee);
    let keys = &settings.store.keys;
    let out = match (&keys.recipients, &keys.digest) {
        (Some(recipients), Some(digest)) => {
            // The keyed digest goes in the header, before the payload: a first
            // pass hashes the file (the second, below, must agree).
            let (sha256, size) = hash_at(&source).map_err(source_error)?;
            let sealed = recipients
                .encrypt(out, &digest.mac(&sha256, size))
                .map_err(|e| write_error(TeeError::from_io(e)))?;
            Sink::Sealed(sealed, sha256)
        }
        _ => Sink::Plain(out),
    };
    let mut encoder = Encoder::new(out, settings.compression, settings.level)
        .map_err(|e| write_error(TeeError::first(e)))?;
    let mut stream = |chunk: &[u8]| {
        // Abandoning here publishes nothing: the staged objects are dropped unseen.
        if crate::signals::stop_requested() {
            return Err(source_error(io::Error::new(
                io::ErrorKind::Interrupted,
                "stopped by a shutdown signal before it was archived",
            )));
        }
        encoder
            .write_all(chunk)
            .map_err(|e| write_error(TeeError::from_io(e)))
    };
    let (sha256, total) =
        digest::hash_alongside(&mut source, buf, &mut stream).map_err(|e| match e {
            PumpError::Read(e) => source_error(e),
            PumpError::Consume(e) => e,
        })?;
    if total != len {
        return Err(Error::SourceChanged {
            path: wal_path.to_path_buf(),
            expected: len,
            actual: total,
        });
    }
    let trailer = Trailer {
        sha256,
        size: total,
    };
    let sink = encoder
        .finish(&trailer)
        .map_err(|e| write_error(TeeError::from_io(e)))?;
    if let Sink::Sealed(_, first) = &sink {
        if *first != sha256 {
            return Err(Error::SourceChanged {
                path: wal_path.to_path_buf(),
                expected: len,
                actual: total,
            });
        }
    }
    let tee = sink
        .finish()
        .and_then(|out| out.into_inner().map_err(|e| e.into_error()))
        .map_err(|e| write_error(TeeError::from_io(e)))?;
    let written = tee.written;
    drop(tee);

    // Success only when every repository holds the file.
    let mut outcome = ArchiveOutcome::Archived;
    let mut stored_sizes = Vec::with_capacity(repos.len());
    for ((repo, staged), identity) in repos.iter().zip(staged).zip(&identities) {
        match repo.publish(staged, &key)? {
            PutOutcome::Created => {
                tracing::debug!(
                    "archived {name} ({total} bytes, {}) to {}",
                    settings.compression,
                    repo.describe()
                );
                stored_sizes.push(written);
            }
            PutOutcome::AlreadyExists => {
                let segment_size = identity.map(|i| i.segment_size);
                stored_sizes.push(compare_with_archived(
                    repo,
                    name,
                    &key,
                    &trailer,
                    segment_size,
                    &settings.store.keys,
                )?);
                repo.make_durable(&key)?;
                tracing::info!(
                    "{name} is already archived with identical content in {} (sha256 {})",
                    repo.describe(),
                    trailer.sha256_hex()
                );
                outcome = ArchiveOutcome::AlreadyArchived;
            }
        }
    }
    Ok(Shipped {
        outcome,
        size: total,
        sha256,
        stored_sizes,
        identities,
    })
}

/// Where the encoder's output goes: straight to the repositories, or through
/// age encryption (with the SHA-256 of the first pass over the source).
enum Sink<W: Write> {
    Plain(W),
    Sealed(age::stream::StreamWriter<W>, [u8; 32]),
}

impl<W: Write> Sink<W> {
    /// Ends the encryption, if any: the output, complete.
    fn finish(self) -> io::Result<W> {
        match self {
            Sink::Plain(w) => Ok(w),
            Sink::Sealed(w, _) => w.finish(),
        }
    }
}

impl<W: Write> Write for Sink<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Sealed(w, _) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Sealed(w, _) => w.flush(),
        }
    }
}

/// SHA-256 and length of the first `len` bytes of `file`, read at their
/// offsets (the file position is left alone).
fn hash_at(file: &File) -> io::Result<([u8; 32], u64)> {
    use sha2::Digest;
    use std::os::unix::fs::FileExt;
    let mut hasher = sha2::Sha256::new();
    let mut block = vec![0u8; CHUNK];
    let mut offset = 0u64;
    loop {
        let n = file.read_at(&mut block, offset)?;
        if n == 0 {
            break;
        }
        hasher.update(block.get(..n).unwrap_or_default());
        offset += n as u64;
    }
    Ok((hasher.finalize().into(), offset))
}

/// Writes every byte to each of several outputs (one per repository).
struct Tee<'a> {
    outs: Vec<&'a mut dyn Write>,
    /// Bytes written to each output: the stored object's size.
    written: u64,
}

/// Which output of a [`Tee`] failed.
#[derive(Debug, thiserror::Error)]
#[error("{source}")]
struct TeeError {
    index: usize,
    source: io::Error,
}

impl TeeError {
    fn first(source: io::Error) -> Self {
        TeeError { index: 0, source }
    }

    /// Recovers the failing output's index from an error that went through the encoder.
    fn from_io(e: io::Error) -> Self {
        let kind = e.kind();
        match e.into_inner().map(|inner| inner.downcast::<TeeError>()) {
            Some(Ok(tee)) => *tee,
            Some(Err(other)) => TeeError::first(io::Error::new(kind, other)),
            None => TeeError::first(io::Error::from(kind)),
        }
    }
}

impl Write for Tee<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_all(buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        for (index, out) in self.outs.iter_mut().enumerate() {
            if let Err(source) = out.write_all(buf) {
                return Err(io::Error::new(source.kind(), TeeError { index, source }));
            }
        }
        self.written += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        for (index, out) in self.outs.iter_mut().enumerate() {
            out.flush()
                .map_err(|source| io::Error::new(source.kind(), TeeError { index, source }))?;
        }
        Ok(())
    }
}

/// Checks the page header against the name and the file against the archive identity
/// (`known`, else read from `repo`), recording the identity when this is the
/// archive's first segment. Returns the archive's identity.
fn check_segment(
    repo: &Repository,
    name: &WalName,
    segment: SegmentName,
    head: &[u8],
    len: u64,
    known: Option<Identity>,
) -> Result<Identity> {
    let recorded = match known {
        Some(identity) => Some(identity),
        None => repo.identity()?,
    };
    let mine = identity::identity_of(head, segment, len, recorded.map(|i| i.page_magic)).map_err(
        |source| Error::BadHeader {
            name: name.to_string(),
            source,
        },
    )?;
    let archive = match recorded {
        Some(identity) => identity,
        None => repo.record_identity(&mine)?,
    };
    identity::check_same(&archive, &mine).map_err(|e| e.for_file(name))?;
    Ok(archive)
}

/// Decides a duplicate: identical original content (checked by decoding the stored
/// copy in full, so a damaged copy is never taken as a good one) or a conflict.
/// Returns the stored object's size.
fn compare_with_archived(
    repo: &Repository,
    name: &WalName,
    key: &str,
    mine: &Trailer,
    segment_size: Option<u64>,
    keys: &Keys,
) -> Result<u64> {
    let stored = match repo.open_stored(name, segment_size) {
        // Encrypted, and this host cannot decrypt: the keyed digest in the
        // header decides (this host's digest of this file, the same key).
        Err(Error::NoIdentity {
            mac, stored_len, ..
        }) if keys.digest.is_some() => {
            let ours = keys.digest.as_ref().map(|d| d.mac(&mine.sha256, mine.size));
            return match mac.is_some() && mac == ours {
                true => Ok(stored_len),
                false => Err(Error::SealedConflict {
                    name: name.to_string(),
                }),
            };
        }
        other => other?,
    };
    let stored = stored.ok_or_else(|| Error::Storage {
        location: repo.describe(),
        op: "read back",
        key: key.to_owned(),
        source: io::Error::new(
            io::ErrorKind::NotFound,
            "object vanished after a conflicting create",
        ),
    })?;
    if stored.trailer() != mine {
        return Err(Error::Conflict {
            name: name.to_string(),
            archived: stored.trailer().sha256_hex(),
            new: mine.sha256_hex(),
        });
    }
    let len = stored.stored_len();
    stored.read_head(0)?;
    Ok(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn identity(system_identifier: u64) -> Identity {
        Identity {
            system_identifier,
            segment_size: 1 << 24,
            page_magic: 0xD110,
        }
    }

    #[test]
    fn checked_repositories_learn_only_the_identities_they_lacked() {
        let mut checked = CheckedRepos {
            identities: vec![None, Some(identity(1)), None],
        };
        checked.learn(&[Some(identity(7)), Some(identity(8)), None]);
        assert_eq!(
            checked.identities,
            [Some(identity(7)), Some(identity(1)), None],
            "a known identity is never replaced; history files teach nothing"
        );
    }
}
