//! The library's error type: each variant says what the caller must do.
//!
//! Rules: an error names the WAL file it concerns; "not found" is never an error
//! variant (it is `RestoreOutcome::NotInArchive`), so a storage failure can never be
//! mistaken for a missing file; `is_retryable` separates transient storage failures
//! from permanent ones (bad input, conflicts, corruption that re-reading won't fix).

use std::io;
use std::path::PathBuf;

use crate::codec::CodecError;
use crate::wal::header::HeaderError;
use crate::wal::name::InvalidWalName;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The name is not a WAL file name; nothing was read or written.
    #[error(transparent)]
    InvalidName(#[from] InvalidWalName),

    /// The file to archive cannot be opened or read.
    #[error("cannot read {}: {source}", path.display())]
    Source { path: PathBuf, source: io::Error },

    #[error("{} is not a regular file", path.display())]
    NotRegularFile { path: PathBuf },

    #[error("{} changed size while being archived ({expected} bytes expected, {actual} read)", path.display())]
    SourceChanged {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },

    /// A segment whose header does not match its name or is not WAL at all.
    #[error("{name} is not a valid WAL segment: {source}")]
    BadHeader { name: String, source: HeaderError },

    #[error("{name} comes from database system {file}, but this archive holds database system {archive}; use a separate repository for each cluster")]
    WrongCluster {
        name: String,
        archive: u64,
        file: u64,
    },

    #[error("{name} has {file}-byte segments, but this archive holds {archive}-byte segments; use a separate repository for each cluster")]
    WrongSegmentSize {
        name: String,
        archive: u64,
        file: u64,
    },

    /// The archive holds the name with different content; nothing was changed.
    #[error("refusing to overwrite {name}: the archive already holds different content (archived sha256 {archived}, this file {new})")]
    Conflict {
        name: String,
        archived: String,
        new: String,
    },

    /// The archived copy cannot be decoded or does not match its recorded checksum.
    #[error("archived copy of {name} is damaged: {source}")]
    Corrupt { name: String, source: CodecError },

    /// The repository location exists but holds no uxwal repository (an empty or
    /// unmounted directory): answering "not found" here would end a recovery early.
    #[error("{location} is not a uxwal repository (no FORMAT file: not mounted, or nothing archived to it yet)")]
    NotARepository { location: String },

    #[error(
        "repository {location} has format version {found}; this uxwal reads version {supported}"
    )]
    UnsupportedFormat {
        location: String,
        found: u32,
        supported: u32,
    },

    #[error("repository metadata {key} is invalid: {reason}")]
    BadMetadata { key: String, reason: String },

    /// Reading or writing the repository failed.
    #[error("repository {location}: cannot {op} {key}: {source}")]
    Storage {
        location: String,
        op: &'static str,
        key: String,
        source: io::Error,
    },

    /// Writing the restore target failed.
    #[error("cannot write {}: {source}", path.display())]
    Destination { path: PathBuf, source: io::Error },

    #[error("unsupported repository location {0:?}: use a directory path, file://, s3://, az:// or gs:// URL (no credentials in URLs)")]
    UnsupportedLocation(String),

    #[error("configuration: {0}")]
    Config(String),

    /// Something uxwal itself got wrong or could not set up (a thread that ended
    /// without a result, a worker lock); not the input's fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// True when trying again may succeed: storage and destination I/O failures
    /// that can pass (a busy NFS server, a timeout, a momentarily full disk),
    /// and damage seen while reading the archive (a re-read can differ when the
    /// fault was in transit). An I/O failure that the same request meets again
    /// (permission denied, not found, invalid input or data) is permanent,
    /// whatever the operation.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Storage { source, .. } | Error::Destination { source, .. } => !matches!(
                source.kind(),
                io::ErrorKind::PermissionDenied
                    | io::ErrorKind::NotFound
                    | io::ErrorKind::InvalidInput
                    | io::ErrorKind::InvalidData
            ),
            Error::Corrupt { .. } | Error::NotARepository { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_failures_are_retried_only_when_they_can_pass() {
        let storage = |kind| Error::Storage {
            location: "s3://b".into(),
            op: "read",
            key: "k".into(),
            source: io::Error::new(kind, "x"),
        };
        let destination = |kind| Error::Destination {
            path: "pg_wal/RECOVERYXLOG".into(),
            source: io::Error::new(kind, "x"),
        };
        for kind in [
            io::ErrorKind::PermissionDenied,
            io::ErrorKind::NotFound,
            io::ErrorKind::InvalidInput,
            io::ErrorKind::InvalidData,
        ] {
            assert!(!storage(kind).is_retryable(), "{kind:?}");
            assert!(!destination(kind).is_retryable(), "{kind:?}");
        }
        for kind in [
            io::ErrorKind::TimedOut,
            io::ErrorKind::Other,
            io::ErrorKind::StorageFull,
            io::ErrorKind::ConnectionReset,
        ] {
            assert!(storage(kind).is_retryable(), "{kind:?}");
            assert!(destination(kind).is_retryable(), "{kind:?}");
        }
        assert!(!Error::Config("x".into()).is_retryable());
    }
}
