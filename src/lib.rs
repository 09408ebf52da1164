//! uxwal keeps a database's write-ahead log safe: durable, verified archiving and
//! restoring of WAL files for UXDB and PostgreSQL.
//!
//! The crate is the five executables' library, in layers whose dependencies
//! run one way, top to bottom:
//!
//! | layer | modules | what it decides |
//! |---|---|---|
//! | edge | [`cli`], [`config`], [`exit`], [`logging`], [`metrics`] | command lines, the configuration file, exit codes (the contract with the database), log lines, the metrics file |
//! | commands | [`commands`] | what `uxwal-archive`, `-restore`, `-cleanup`, `-verify` and `-sync` do |
//! | data path, workers | [`pipeline`], `background` | ship and fetch one file; push-ahead and prefetch in detached workers |
//! | core | [`wal`], [`codec`], [`crypt`], [`repo`], `durable`, [`error`], `signals` | WAL names and headers, codecs and the trailer, encryption at rest, repositories, durable local writes |
//!
//! The data path of `uxwal-archive` is: segment file -> [`wal::name`] and
//! [`wal::header`] validation -> hash and compress in one streaming pass
//! ([`codec`]) -> put-if-absent into the [`repo::Repository`] (local writes only
//! through `durable`) -> confirm ([`pipeline::ship`]). `uxwal-restore` runs it
//! backwards and checks the recorded SHA-256 before anything appears at the
//! destination ([`pipeline::fetch`]).
//!
//! Archiving and restoring a file through the library, as the executables do:
//!
//! ```
//! use uxwal::commands::{archive, restore};
//! use uxwal::pipeline::ship;
//! use uxwal::repo::remote::StoreOptions;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let repo = dir.path().join("archive").to_string_lossy().into_owned();
//! let spool_dir = dir.path().join("spool");
//! let history = dir.path().join("00000002.history");
//! std::fs::write(&history, "1\t0/3000000\tno recovery target specified\n")?;
//!
//! let settings = archive::Settings {
//!     ship: ship::Settings {
//!         repos: vec![repo.clone()],
//!         store: StoreOptions::default(),
//!         compression: uxwal::codec::Compression::Zstd,
//!         level: 1,
//!     },
//!     parallel: Some(1),
//!     spool_dir: spool_dir.clone(),
//!     config_file: None,
//!     require: None,
//!     retry_owed_after: archive::RETRY_OWED_AFTER,
//! };
//! let launch = uxwal::cli::worker::args;
//! let archived = archive::run(&history, "00000002.history", &settings, launch)?;
//! assert_eq!(archived.outcome, archive::ArchiveOutcome::Archived);
//!
//! let settings = restore::Settings {
//!     repos: vec![repo],
//!     store: StoreOptions::default(),
//!     prefetch: Some(0),
//!     spool_dir,
//!     spool_max_bytes: uxwal::commands::restore::DEFAULT_MAX_BYTES,
//!     linger: uxwal::commands::restore::DEFAULT_LINGER,
//!     config_file: None,
//! };
//! let dest = dir.path().join("RECOVERYHISTORY");
//! let policy = restore::ErrorPolicy::Abort;
//! let restored = restore::run("00000002.history", &dest, &settings, policy, launch)?;
//! assert!(matches!(restored, restore::RestoreOutcome::Restored(_)));
//! assert_eq!(std::fs::read(&dest)?, std::fs::read(&history)?);
//! # Ok(())
//! # }
//! ```
//!
//! Modules shown without a link are private: their guarantees are documented
//! where they open, and the commands re-export the little of them a caller
//! needs (the worker entry points, the spool's defaults).
//!
//! Exit codes, the contract with the database, live in [`exit`].

// The edge: command lines, configuration, logging and exit codes.
// Library code never unwraps: outside data (objects, names, files, options)
// reaches most of it, and a panic must not be what answers hostile input.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod cli;
pub mod config;
pub mod crypt;
pub mod exit;
mod field;
pub mod logging;
pub mod metrics;

// What each command decides, and the two layers it uses.
mod background;
pub mod commands;
pub mod pipeline;

// The core: used by every layer above, using none of them.
pub mod codec;
mod durable;
pub mod error;
pub mod repo;
mod signals;
pub mod wal;

// The fuzz targets' entry points (`fuzz/`); in unit tests too, to run the seeds.
#[cfg(any(fuzzing, test))]
#[doc(hidden)]
pub mod fuzzing;

pub use error::{Error, Result};

/// What `--version` prints after the program name: the release and the archive
/// format version it writes ([`repo::FORMAT_VERSION`]).
pub const VERSION_LINE: &str = concat!(env!("CARGO_PKG_VERSION"), " (archive format 1)");

#[cfg(test)]
#[test]
fn version_line_names_the_format_version() {
    assert!(VERSION_LINE.ends_with(&format!("(archive format {})", repo::FORMAT_VERSION)));
}
