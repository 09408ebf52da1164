//! uxwal keeps a database's write-ahead log safe: durable, verified archiving and
//! restoring of WAL files for UXDB and PostgreSQL.
//!
//! The data path of `uxwal-archive` is: segment file -> [`wal_name`] and
//! [`wal_header`] validation -> hash and compress in one streaming pass
//! ([`codec`]) -> put-if-absent into the [`repo::Repository`] (local writes only
//! through [`durable`]) -> confirm. `uxwal-restore` runs it backwards and checks
//! the recorded SHA-256 before anything appears at the destination.
//! Exit codes, the contract with the database, live in [`exit`].

pub mod archive;
pub mod cleanup;
pub mod cli;
pub mod codec;
pub mod config;
pub mod detach;
pub mod durable;
pub mod error;
pub mod exit;
pub mod logging;
pub mod prefetch;
pub mod push_ahead;
pub mod repo;
pub mod restore;
pub mod signals;
pub mod spool;
pub mod verify;
pub mod wal_header;
pub mod wal_name;

pub use error::{Error, Result};

/// What `--version` prints after the program name: the release and the archive
/// format version it writes ([`repo::FORMAT_VERSION`]).
pub const VERSION_LINE: &str = concat!(env!("CARGO_PKG_VERSION"), " (archive format 1)");

#[cfg(test)]
#[test]
fn version_line_names_the_format_version() {
    assert!(VERSION_LINE.ends_with(&format!("(archive format {})", repo::FORMAT_VERSION)));
}
