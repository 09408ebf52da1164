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
use std::sync::mpsc;
use std::time::SystemTime;

use crate::codec::digest::{self, PumpError, CHUNK};
use crate::codec::{Compression, Encoder, Trailer};
use crate::crypt::{DigestKey, Keys, Recipients};
use crate::error::{Error, Result};
use crate::pipeline::stamp::FileStamp;
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

/// What one archive call reports: its outcome, and the bytes behind it (the
/// metrics file counts them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Archived {
    pub outcome: ArchiveOutcome,
    /// Size of the local file.
    pub size: u64,
    /// Size of the stored object in each repository, in the order of `Settings::repos`.
    pub stored_sizes: Vec<u64>,
    /// The repositories (indices into `Settings::repos`) that lack the file
    /// and are owed the copy (`require` below the number of repositories).
    pub owed: Vec<usize>,
}

impl From<Shipped> for Archived {
    fn from(shipped: Shipped) -> Archived {
        Archived {
            outcome: shipped.outcome,
            size: shipped.size,
            stored_sizes: shipped.stored_sizes,
            owed: Vec::new(),
        }
    }
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
    /// The local file's stamp, when it proves the file unchanged since before it
    /// was read ([`FileStamp::taken`]).
    pub stamp: Option<FileStamp>,
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
    /// Checks (creating it when the repository is new) each repository's
    /// FORMAT and encryption, and reads its identity
    /// ([`Repository::prepare_archive`]).
    pub fn check(repos: &[Repository], settings: &Settings) -> Result<CheckedRepos> {
        let encrypting = settings.store.keys.recipients.as_ref();
        let identities = repos
            .iter()
            .map(|repo| Ok(repo.prepare_archive(encrypting)?.identity))
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
    // Taken before the file is opened: a stamp needs a ctime older than this.
    let began = SystemTime::now();
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
        // What the repository records, read now (one round trip on object
        // storage) or known from the worker's check.
        let (known, fresh) = match checked {
            Some(checked) => (checked.identities.get(i).copied().flatten(), false),
            None => {
                let encrypting = settings.store.keys.recipients.as_ref();
                (repo.prepare_archive(encrypting)?.identity, true)
            }
        };
        identities.push(match *name {
            WalName::Segment(segment) | WalName::Partial(segment) => {
                Some(check_segment(repo, name, segment, &buf, len, known, fresh)?)
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
    let mut reader = &source;
    // Scoped: an encrypted object's first hashing pass runs on its own thread
    // while this one compresses (see `Held`).
    let (trailer, tee) = std::thread::scope(|scope| {
        let out = match (&keys.recipients, &keys.digest) {
            (Some(recipients), Some(digest)) => {
                Sink::Held(Held::start(scope, &source, len, out, recipients, digest))
            }
            _ => Sink::Plain(out),
        };
        let out_error = |e: io::Error| match e.get_ref().and_then(|i| i.downcast_ref::<FirstPass>())
        {
            Some(_) => source_error(e),
            None => write_error(TeeError::from_io(e)),
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
            encoder.write_all(chunk).map_err(out_error)
        };
        let (sha256, total) =
            digest::hash_alongside(&mut reader, buf, &mut stream).map_err(|e| match e {
                PumpError::Read(e) => source_error(e),
                PumpError::Consume(e) => e,
            })?;
        let changed = || Error::SourceChanged {
            path: wal_path.to_path_buf(),
            expected: len,
            actual: total,
        };
        if total != len {
            return Err(changed());
        }
        let trailer = Trailer {
            sha256,
            size: total,
        };
        let (out, first) = encoder
            .finish(&trailer)
            .map_err(out_error)?
            .finish((sha256, total))
            .map_err(out_error)?;
        // Both passes read the same bytes, or the file changed under us.
        if first.is_some_and(|first| first != (sha256, total)) {
            return Err(changed());
        }
        let tee = out
            .into_inner()
            .map_err(|e| write_error(TeeError::from_io(e.into_error())))?;
        Ok((trailer, tee))
    })?;
    let (sha256, total) = (trailer.sha256, trailer.size);
    let written = tee.written;
    drop(tee);
    let stamp = source
        .metadata()
        .ok()
        .and_then(|after| FileStamp::taken(began, &meta, &after));

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
        stamp,
    })
}

/// Where the encoder's output goes: straight to the repositories, or through
/// age encryption once the first pass's digest is known.
enum Sink<'s, W: Write> {
    Plain(W),
    Held(Held<'s, W>),
}

impl<W: Write> Sink<'_, W> {
    /// Ends the encryption, if any, `streamed` being what the streaming pass
    /// hashed: the output, complete, and the SHA-256 and length the first
    /// pass read, if there was one.
    fn finish(self, streamed: Hashed) -> io::Result<(W, Option<Hashed>)> {
        match self {
            Sink::Plain(w) => Ok((w, None)),
            Sink::Held(held) => held.finish(streamed),
        }
    }
}

impl<W: Write> Write for Sink<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Sink::Plain(w) => w.write(buf),
            Sink::Held(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Plain(w) => w.flush(),
            Sink::Held(w) => w.flush(),
        }
    }
}

/// The SHA-256 and length of what a pass read.
type Hashed = ([u8; 32], u64);

/// Most compressed bytes held back while the first pass still hashes.
const HOLD_MAX: usize = 8 << 20;

/// Files up to this size (a default 16 MiB segment) are encrypted in one
/// pass: everything compressed is held until the stream's own hash is known.
const SINGLE_PASS_MAX: u64 = 16 << 20;

/// Age encryption whose header must carry the keyed digest of the whole file
/// before any payload.
///
/// A file of at most [`SINGLE_PASS_MAX`] is read once: its compressed output
/// (at most the stored-length bound of its size) is held in memory until the
/// end, when the one hash of the bytes that were compressed gives the digest.
/// A larger file gets a first pass that hashes it on its own thread, while the
/// compressed output is held (at most [`HOLD_MAX`], then the writer waits) and
/// goes out encrypted once the digest is known; the streaming pass's own hash
/// must then agree, or the file changed between the passes.
struct Held<'s, W: Write> {
    stage: Stage<W>,
    /// The first pass's result, for a file that gets one.
    first: Option<mpsc::Receiver<io::Result<Hashed>>>,
    recipients: &'s Recipients,
    digest: &'s DigestKey,
    /// What the first pass read, once it is done.
    hashed: Option<Hashed>,
}

enum Stage<W: Write> {
    Holding(W, Vec<u8>),
    Sealed(age::stream::StreamWriter<W>),
    /// Sealing failed; the error was returned.
    Failed,
}

/// The first hashing pass failed: an error of the source, not the output.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct FirstPass(String);

impl<'s, W: Write> Held<'s, W> {
    fn start<'e>(
        scope: &'s std::thread::Scope<'s, 'e>,
        source: &'s File,
        len: u64,
        out: W,
        recipients: &'s Recipients,
        digest: &'s DigestKey,
    ) -> Self {
        let mut held = Held {
            stage: Stage::Holding(out, Vec::new()),
            first: None,
            recipients,
            digest,
            hashed: None,
        };
        if len <= SINGLE_PASS_MAX {
            return held;
        }
        let (done, first) = mpsc::sync_channel(1);
        let inline = done.clone();
        let spawned = std::thread::Builder::new()
            .name("sha256-first".into())
            .spawn_scoped(scope, move || {
                let _ = done.send(hash_at(source));
            });
        if let Err(e) = spawned {
            // No thread to be had (a process limit): the first pass here, first.
            tracing::debug!("first hashing pass on the calling thread: cannot start one ({e})");
            let _ = inline.send(hash_at(source));
        }
        held.first = Some(first);
        held
    }

    /// Writes the header and what is held once the first pass is done (waiting
    /// for it when `wait`).
    fn seal(&mut self, wait: bool) -> io::Result<()> {
        let (Stage::Holding(..), Some(first)) = (&self.stage, &self.first) else {
            return Ok(());
        };
        let stopped = || io::Error::other(FirstPass("the first hashing pass stopped".into()));
        let hashed = match wait {
            true => first.recv().map_err(|_| stopped())?,
            false => match first.try_recv() {
                Ok(hashed) => hashed,
                Err(mpsc::TryRecvError::Empty) => return Ok(()),
                Err(mpsc::TryRecvError::Disconnected) => return Err(stopped()),
            },
        };
        let hashed = hashed.map_err(|e| io::Error::new(e.kind(), FirstPass(e.to_string())))?;
        self.seal_with(hashed)
    }

    /// Writes the header, with the keyed digest of `hashed`, and what is held.
    fn seal_with(&mut self, (sha256, size): Hashed) -> io::Result<()> {
        self.hashed = Some((sha256, size));
        let Stage::Holding(out, held) = std::mem::replace(&mut self.stage, Stage::Failed) else {
            return Ok(());
        };
        let mut sealed = self
            .recipients
            .encrypt(out, &self.digest.mac(&sha256, size))?;
        sealed.write_all(&held)?;
        self.stage = Stage::Sealed(sealed);
        Ok(())
    }

    /// Ends the object; `streamed` is what the streaming pass hashed. Returns
    /// the output and what the first pass hashed, if there was one.
    fn finish(mut self, streamed: Hashed) -> io::Result<(W, Option<Hashed>)> {
        match self.first.is_some() {
            true => self.seal(true)?,
            false => self.seal_with(streamed)?,
        }
        let first = self.first.is_some().then_some(self.hashed).flatten();
        match self.stage {
            Stage::Sealed(sealed) => Ok((sealed.finish()?, first)),
            _ => Err(io::Error::other("encryption failed earlier")),
        }
    }
}

impl<W: Write> Write for Held<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.seal(false)?;
        let single_pass = self.first.is_none();
        if let Stage::Holding(_, held) = &mut self.stage {
            let after = held.len().saturating_add(buf.len()) as u64;
            // A file that grows while it is read would be held without end.
            if single_pass && after > crate::repo::stored::max_stored_len(SINGLE_PASS_MAX) {
                return Err(io::Error::other(FirstPass(
                    "it grew while being archived".into(),
                )));
            }
            if single_pass || after <= HOLD_MAX as u64 {
                held.extend_from_slice(buf);
                return Ok(buf.len());
            }
            self.seal(true)?;
        }
        match &mut self.stage {
            Stage::Sealed(sealed) => sealed.write(buf),
            _ => Err(io::Error::other("encryption failed earlier")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match &mut self.stage {
            Stage::Sealed(sealed) => sealed.flush(),
            _ => Ok(()),
        }
    }
}

/// SHA-256 and length of `file`'s bytes, read at their offsets (the file
/// position, which the second pass uses, is left alone).
fn hash_at(file: &File) -> io::Result<Hashed> {
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
/// (`known`; when none is known and `fresh` is false, read from `repo`), recording
/// the identity when this is the archive's first segment. Returns the archive's
/// identity.
fn check_segment(
    repo: &Repository,
    name: &WalName,
    segment: SegmentName,
    head: &[u8],
    len: u64,
    known: Option<Identity>,
    fresh: bool,
) -> Result<Identity> {
    let recorded = match known {
        Some(identity) => Some(identity),
        None if fresh => None,
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
