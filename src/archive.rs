//! `uxwal-archive`: store one WAL file durably, or prove it is already stored.
//!
//! Order of work: check the name (nothing is touched for a bad one), open the
//! source, check the segment header and the archive identity, then hash and
//! compress in one streaming pass into a staged object, publish it without
//! replacing, and only then report success. When the name is already archived,
//! the stored copy decides: identical original bytes (SHA-256) is success, after
//! making the stored copy durable as `contrib/basic_archive` does; anything else
//! is a conflict and nothing changes.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::codec::{self, Compression, Encoder, ReadError, Trailer};
use crate::error::{Error, Result};
use crate::repo::{Identity, PutOutcome, Repository};
use crate::wal_header::LongPageHeader;
use crate::wal_name::{SegmentName, WalName};

/// How to archive.
#[derive(Debug, Clone)]
pub struct Settings {
    pub repo: String,
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

const CHUNK: usize = 1 << 20;

/// Archives `wal_path` under `wal_name`.
pub fn run(wal_path: &Path, wal_name: &str, settings: &Settings) -> Result<ArchiveOutcome> {
    let name: WalName = wal_name.parse()?;
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
    let mut filled = read_full(&mut source, &mut buf).map_err(source_error)?;

    let repo = Repository::open(&settings.repo)?;
    repo.ensure_format()?;
    if let WalName::Segment(segment) | WalName::Partial(segment) = name {
        check_segment(&repo, &name, segment, &buf[..filled], len)?;
    }

    let key = Repository::key(&name);
    let mut staged = repo.stage(&key)?;
    let write_error = |source: io::Error| Error::Storage {
        location: repo.describe(),
        op: "write",
        key: key.clone(),
        source,
    };
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    let mut encoder =
        Encoder::new(&mut staged, settings.compression, settings.level).map_err(write_error)?;
    while filled > 0 {
        hasher.update(&buf[..filled]);
        encoder.write_all(&buf[..filled]).map_err(write_error)?;
        total += filled as u64;
        filled = read_full(&mut source, &mut buf).map_err(source_error)?;
    }
    if total != len {
        return Err(Error::SourceChanged {
            path: wal_path.to_path_buf(),
            expected: len,
            actual: total,
        });
    }
    let trailer = Trailer {
        sha256: hasher.finalize().into(),
        size: total,
    };
    encoder.finish(&trailer).map_err(write_error)?;

    match repo.publish(staged, &key)? {
        PutOutcome::Created => {
            tracing::debug!(
                "archived {name} ({total} bytes, {}) to {}",
                settings.compression,
                repo.describe()
            );
            Ok(ArchiveOutcome::Archived)
        }
        PutOutcome::AlreadyExists => {
            compare_with_archived(&repo, &name, &key, &trailer)?;
            repo.make_durable(&key)?;
            tracing::info!(
                "{name} is already archived with identical content (sha256 {})",
                trailer.sha256_hex()
            );
            Ok(ArchiveOutcome::AlreadyArchived)
        }
    }
}

/// Checks the page header against the name and the file against the archive identity,
/// recording the identity when this is the archive's first segment.
fn check_segment(
    repo: &Repository,
    name: &WalName,
    segment: SegmentName,
    head: &[u8],
    len: u64,
) -> Result<()> {
    let bad_header = |source| Error::BadHeader {
        name: name.to_string(),
        source,
    };
    let header = LongPageHeader::parse(head).map_err(bad_header)?;
    let recorded = repo.identity()?;
    header
        .validate(segment, len, recorded.map(|i| i.page_magic))
        .map_err(bad_header)?;
    let mine = Identity {
        system_identifier: header.system_identifier,
        segment_size: u64::from(header.segment_size),
        page_magic: header.magic,
    };
    let archive = match recorded {
        Some(identity) => identity,
        None => repo.record_identity(&mine)?,
    };
    if archive.system_identifier != mine.system_identifier {
        return Err(Error::WrongCluster {
            name: name.to_string(),
            archive: archive.system_identifier,
            file: mine.system_identifier,
        });
    }
    if archive.segment_size != mine.segment_size {
        return Err(Error::WrongSegmentSize {
            name: name.to_string(),
            archive: archive.segment_size,
            file: mine.segment_size,
        });
    }
    Ok(())
}

/// Decides a duplicate: identical original content (checked by decoding the stored
/// copy in full, so a damaged copy is never taken as a good one) or a conflict.
fn compare_with_archived(
    repo: &Repository,
    name: &WalName,
    key: &str,
    mine: &Trailer,
) -> Result<()> {
    let mut obj = repo.get(key)?.ok_or_else(|| Error::Storage {
        location: repo.describe(),
        op: "read back",
        key: key.to_owned(),
        source: io::Error::new(
            io::ErrorKind::NotFound,
            "object vanished after a conflicting create",
        ),
    })?;
    let damaged = |source| Error::Corrupt {
        name: name.to_string(),
        source,
    };
    let read_error = |e: ReadError| match e {
        ReadError::Codec(c) => damaged(c),
        ReadError::Io(source) | ReadError::Output(source) => Error::Storage {
            location: repo.describe(),
            op: "read back",
            key: key.to_owned(),
            source,
        },
    };
    let (format, stored, payload) =
        codec::read_trailer(&mut obj.reader, obj.len).map_err(read_error)?;
    if stored != *mine {
        return Err(Error::Conflict {
            name: name.to_string(),
            archived: stored.sha256_hex(),
            new: mine.sha256_hex(),
        });
    }
    codec::decode_verified(&mut obj.reader, format, payload, &stored, &mut io::sink())
        .map_err(read_error)
}

/// Reads until `buf` is full or the file ends.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}
