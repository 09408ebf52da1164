//! `uxwal-restore` command line.

use std::path::PathBuf;

use clap::Parser;

use super::Common;
use crate::config::ConfigFile;
use crate::error::Result;
use crate::restore::{self, OnError};

const RESTORE_EXIT: &str = "\
Exit status:
  0    restored: DEST_PATH holds the verified file
  1    not in the archive (or an error, on a standby or with --on-error missing)
  2    invalid command line
  200  an error during point-in-time recovery (--on-error abort): recovery stops
       with the error in the server log instead of ending early

Configuration: restore_command = 'uxwal-restore --repo /mnt/wal %f %p'";

/// Restore one WAL file from the archive, verifying it before it appears.
#[derive(Debug, Parser)]
#[command(name = "uxwal-restore", version = crate::VERSION_LINE, after_help = RESTORE_EXIT)]
#[command(
    long_about = "Restore one WAL file from the archive, verifying it before it appears.\n\n\
Decompresses, checks the recorded SHA-256 (and the size of segments), writes a temporary file \
beside DEST_PATH and renames it into place. A file that is not in the archive exits 1 at once."
)]
pub struct RestoreCli {
    #[command(flatten)]
    pub common: Common,

    /// What an error other than "not found" does: auto (abort during point-in-time
    /// recovery, missing on a standby), abort (exit 200), missing (exit 1) [default: auto].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub on_error: Option<OnError>,

    /// Fetch up to N following segments of the same timeline in the background into
    /// the spool, where later calls find them verified; 0 turns it off.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=64))]
    pub prefetch: Option<u16>,

    /// Spool root, outside the data directory [default: $TMPDIR/uxwal-<uid>].
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// The file the database asks for (%f).
    #[arg(value_name = "WAL_NAME")]
    pub wal_name: String,

    /// Where to put it (%p), relative to the current directory (the data directory).
    #[arg(value_name = "DEST_PATH")]
    pub dest_path: PathBuf,
}

impl RestoreCli {
    /// The error policy, known even when the rest of the configuration is broken.
    pub fn policy(&self, file: Option<&ConfigFile>) -> restore::ErrorPolicy {
        let on_error = self
            .on_error
            .or(file.and_then(|f| f.on_error))
            .unwrap_or(OnError::Auto);
        on_error.resolve(std::path::Path::new("."))
    }

    pub fn settings(&self, file: &ConfigFile) -> Result<restore::Settings> {
        Ok(restore::Settings {
            repos: file.repos(&self.common.repo)?,
            store: file.store_options(self.common.deadline)?,
            prefetch: self.prefetch.map(usize::from).or(file.prefetch),
            spool_dir: file.spool_dir(self.spool_dir.as_deref()),
        })
    }
}
