//! uxwal keeps a database's write-ahead log safe: durable, verified archiving and
//! restoring of WAL files for UXDB and PostgreSQL.
//!
//! The data path of `uxwal-archive` is: segment file -> [`wal::name`] and
//! [`wal::header`] validation -> hash and compress in one streaming pass
//! ([`codec`]) -> put-if-absent into the [`repo::Repository`] (local writes only
//! through [`durable`]) -> confirm. `uxwal-restore` runs it backwards and checks
//! the recorded SHA-256 before anything appears at the destination.
//! Exit codes, the contract with the database, live in [`exit`].

// The edge: command lines, configuration, logging and exit codes.
pub mod cli;
pub mod config;
pub mod exit;
pub mod logging;

// What each command decides, and the two layers it uses.
pub mod background;
pub mod commands;
pub mod pipeline;

// The core: used by every layer above, using none of them.
pub mod codec;
pub mod durable;
pub mod error;
pub mod repo;
pub mod signals;
pub mod wal;

pub use error::{Error, Result};

/// What `--version` prints after the program name: the release and the archive
/// format version it writes ([`repo::FORMAT_VERSION`]).
pub const VERSION_LINE: &str = concat!(env!("CARGO_PKG_VERSION"), " (archive format 1)");

#[cfg(test)]
#[test]
fn version_line_names_the_format_version() {
    assert!(VERSION_LINE.ends_with(&format!("(archive format {})", repo::FORMAT_VERSION)));
}
