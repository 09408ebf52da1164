//! The library's error type: each variant says what the caller must do.
//!
//! Rules: an error names the WAL file it concerns; "not found" is never an error
//! variant (it is `RestoreOutcome::NotInArchive`), so a storage failure can never be
//! mistaken for a missing file; `is_retryable` separates transient storage failures
//! from permanent ones (bad input, conflicts, corruption that re-reading won't fix).

use std::io;
use std::path::PathBuf;

use crate::codec::{CodecError, ReadError};
use crate::wal::backup_label::BackupLabelError;
use crate::wal::header::HeaderError;
use crate::wal::history::HistoryError;
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
    /// The archive's copy of `name` is a well-formed segment of another
    /// database system than the data directory restoring it.
    #[error("the archived copy of {name} comes from database system {file}, but this data directory belongs to database system {own}; refusing to restore it (is the repository mixed up or tampered with?)")]
    ForeignSegment { name: String, file: u64, own: u64 },

    #[error("refusing to overwrite {name}: the archive already holds different content (archived sha256 {archived}, this file {new})")]
    Conflict {
        name: String,
        archived: String,
        new: String,
    },

    /// An encrypted copy is archived under the name, and its keyed digest is
    /// not this file's under this host's digest key.
    #[error("refusing to overwrite {name}: the archive holds an encrypted copy whose keyed digest is not this file's (different content, or a different digest_key_file)")]
    SealedConflict { name: String },

    /// The archived copy cannot be decoded or does not match its recorded checksum.
    #[error("archived copy of {name} is damaged: {source}")]
    Corrupt { name: String, source: CodecError },

    /// The archived copy is encrypted and none of the configured identities
    /// (private keys) is one of its recipients.
    #[error("the archived copy of {name} is encrypted to {}, and no configured identity matches (identities for: {}); add the matching identity_file", list(.recipients), list(.have))]
    NoIdentity {
        name: String,
        recipients: Vec<String>,
        have: Vec<String>,
        /// What the object's header says without a key: its keyed digest
        /// (by which an archiving host decides a duplicate) and its length.
        mac: Option<[u8; 32]>,
        stored_len: u64,
    },

    /// The repository records that its WAL is encrypted, and this host is not
    /// configured to encrypt: nothing was written.
    #[error("repository {location} holds encrypted WAL (since {since}); configure encrypt_to and digest_key_file to archive to it")]
    EncryptedRepository { location: String, since: String },

    /// The repository holds unencrypted WAL and this host encrypts: nothing
    /// was written, so the archive never mixes the two unannounced.
    #[error("repository {location} holds unencrypted WAL; run `uxwal-archive --start-encryption` once with this configuration to encrypt what is archived there from now on (files archived before stay readable), or archive to a new repository")]
    PlainRepository { location: String },

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

    /// `require` below the number of repositories: a repository lacks the file,
    /// and the backlog cannot record another owed copy, so the file is not
    /// archived until the repository is back or the backlog drains.
    #[error("repository {location} is unreachable and already owed {max} copies (the backlog's limit); not archived until it is reachable again")]
    BacklogFull { location: String, max: usize },

    /// Writing the restore target failed.
    #[error("cannot write {}: {source}", path.display())]
    Destination { path: PathBuf, source: io::Error },

    /// The storage accepted a second create of one key (it ignores
    /// conditional writes): uxwal cannot keep archived WAL from being
    /// overwritten there, so it creates no repository in it.
    #[error("repository {location}: the storage accepted a second create of the same key, so it ignores conditional writes (If-None-Match) and uxwal cannot guarantee that archived WAL is never overwritten there; use a store that supports conditional writes (docs/SECURITY.md)")]
    OverwritingStore { location: String },

    #[error("unsupported repository location {0:?}: use a directory path, file://, s3://, az:// or gs:// URL (no credentials in URLs)")]
    UnsupportedLocation(String),

    #[error("configuration: {0}")]
    Config(String),

    /// Something uxwal itself got wrong or could not set up (a thread that ended
    /// without a result, a worker lock); not the input's fault.
    #[error("internal error: {0}")]
    Internal(String),

    /// The command line is wrong (an argument missing, extra or malformed);
    /// nothing was read or changed. The text is the message for the user.
    #[error("{0}")]
    Usage(String),

    /// The archive location given to uxwal-cleanup is not a directory
    /// (`pg_archivecleanup`'s message, checked before the file name).
    #[error("archive location \"{location}\" does not exist")]
    NoArchiveLocation { location: String },

    /// OLDEST_KEPT is none of the names `pg_archivecleanup` takes; nothing was touched.
    #[error("invalid file name argument {0:?} (expected a segment, <segment>.partial or <segment>.XXXXXXXX.backup)")]
    InvalidCutoff(String),

    /// A plain archive directory cannot be listed (`pg_archivecleanup`'s
    /// "could not open archive location"); nothing was removed.
    #[error("could not open archive location \"{location}\": {source}")]
    ListLocation { location: String, source: io::Error },

    /// Retention was asked for, but no `.backup` file says which WAL a base
    /// backup needs; nothing was removed.
    #[error("no backup history file (*.backup) in {location}: nothing tells which WAL a base backup needs, so nothing was removed (run pg_basebackup, or give OLDEST_KEPT)")]
    NoBackupHistory { location: String },

    /// A `.backup` file that cannot be read or understood: retention cannot be
    /// computed safely, so nothing was removed.
    #[error("backup history file {name}: {fault}; nothing was removed")]
    BadBackupHistory {
        name: String,
        fault: HistoryFileFault,
    },

    /// The newest timeline's history file cannot be read or understood (or is
    /// not archived): which base backups can reach that timeline is unknown,
    /// so retention removed nothing.
    #[error("timeline history file {name}: {fault}; which base backups can reach timeline {timeline} is unknown, so nothing was removed")]
    BadTimelineHistory {
        name: String,
        timeline: u32,
        fault: HistoryFileFault,
    },

    /// Retention would leave the newest timeline without a base backup that
    /// can reach it; nothing was removed. `backups` names each archived
    /// backup with its timeline and why it cannot.
    #[error("no archived base backup can reach the newest timeline {timeline}, so nothing was removed (take a new base backup): {}", backups.join("; "))]
    NoRestorableBackup { timeline: u32, backups: Vec<String> },

    /// `uxwal-verify --backup` names no archived base backup (`label` `None`:
    /// the newest, and there is none); `known` lists the ones there are.
    #[error("no base backup {} in the archive; backups: {}",
        label.as_ref().map_or("at all".to_owned(), |l| format!("labelled {l:?}")),
        if known.is_empty() { "none".to_owned() } else { known.join(", ") })]
    NoSuchBackup {
        label: Option<String>,
        known: Vec<String>,
    },

    /// `uxwal-sync`: the two repositories record different archive
    /// identities (two clusters' WAL); nothing was copied.
    #[error("{from} holds database system {from_system} with {from_segment_size}-byte segments, but {to} holds database system {to_system} with {to_segment_size}-byte segments; refusing to mix two clusters' WAL, nothing was copied")]
    DifferentArchives {
        from: String,
        to: String,
        from_system: u64,
        from_segment_size: u64,
        to_system: u64,
        to_segment_size: u64,
    },

    /// The report could not be written to standard output.
    #[error("cannot write the report: {0}")]
    Output(io::Error),
}

/// Why a backup history file (`.backup`) or a timeline history file
/// (`.history`) could not be used ([`Error::BadBackupHistory`],
/// [`Error::BadTimelineHistory`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryFileFault {
    #[error("listed, but gone when read (is another cleanup running?)")]
    Vanished,
    #[error("not archived")]
    Missing,
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Backup(#[from] BackupLabelError),
    #[error(transparent)]
    Timeline(#[from] HistoryError),
}

impl Error {
    /// The file name this error's message already contains, if any: the WAL
    /// name it concerns, or the last component of the path or key it names.
    /// Callers that must name the WAL file (the server log must say which
    /// file failed) prefix it when this is not that file.
    pub fn names_file(&self) -> Option<&str> {
        match self {
            Error::InvalidName(InvalidWalName(name)) => Some(name),
            Error::Source { path, .. }
            | Error::NotRegularFile { path }
            | Error::SourceChanged { path, .. }
            | Error::Destination { path, .. } => path.file_name().and_then(|f| f.to_str()),
            Error::BadHeader { name, .. }
            | Error::WrongCluster { name, .. }
            | Error::WrongSegmentSize { name, .. }
            | Error::Conflict { name, .. }
            | Error::ForeignSegment { name, .. }
            | Error::Corrupt { name, .. }
            | Error::NoIdentity { name, .. }
            | Error::SealedConflict { name, .. }
            | Error::BadBackupHistory { name, .. }
            | Error::BadTimelineHistory { name, .. } => Some(name),
            Error::Storage { key, .. } => key.rsplit('/').next(),
            _ => None,
        }
    }

    /// The repository this error shows unreachable or failing (its location as
    /// described): a storage failure, or a repository that is not there (an
    /// unmounted directory). With `require` below the number of repositories,
    /// such a repository is owed the copy; every other error (a conflict, a
    /// foreign cluster, a bad file) fails the call whatever `require` says.
    pub fn unavailable_repository(&self) -> Option<&str> {
        match self {
            Error::Storage { location, .. } | Error::NotARepository { location } => Some(location),
            _ => None,
        }
    }

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

/// A list of keys for a message: "a, b", or "none" when empty.
fn list(keys: &[String]) -> String {
    if keys.is_empty() {
        "none".into()
    } else {
        keys.join(", ")
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
