//! Command-line definitions of the executables: the one source of `--help`, the
//! man pages and the settings each command runs with.

use std::path::PathBuf;

use clap::{Args, Parser};

use crate::codec::Compression;
use crate::config::ConfigFile;
use crate::error::{Error, Result};
use crate::logging::Verbosity;
use crate::restore::OnError;
use crate::{archive, restore};

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Repository: a directory path or file:// URL.
    #[arg(long, env = "UXWAL_REPO", value_name = "LOCATION")]
    pub repo: Option<String>,

    /// Configuration file (TOML). Default: /etc/uxwal/uxwal.toml when it exists.
    #[arg(long, env = "UXWAL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Print errors only.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print what each step does.
    #[arg(short, long)]
    pub verbose: bool,
}

impl Common {
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }
}

const ARCHIVE_EXIT: &str = "\
Exit status:
  0  archived and durable (also when the archive already holds identical content)
  1  not archived; the database keeps the file and retries
  2  invalid command line

Configuration: archive_command = 'uxwal-archive --repo /mnt/wal %p %f'";

/// Archive one WAL file durably, refusing to overwrite different content.
#[derive(Debug, Parser)]
#[command(name = "uxwal-archive", version = crate::VERSION_LINE, after_help = ARCHIVE_EXIT)]
#[command(
    long_about = "Archive one WAL file durably, refusing to overwrite different content.\n\n\
Validates the name and, for segments, the page header and the archive identity; compresses \
and hashes in one pass; publishes without replacing and fsyncs before exiting 0."
)]
pub struct ArchiveCli {
    #[command(flatten)]
    pub common: Common,

    /// Compression: none, gzip or zstd [default: zstd].
    #[arg(long, value_enum, value_name = "CODEC")]
    pub compress: Option<Compression>,

    /// Compression level [default: zstd 1, gzip 6].
    #[arg(long, value_name = "N")]
    pub level: Option<i32>,

    /// The file to archive (%p), relative to the current directory (the data directory).
    #[arg(value_name = "WAL_PATH")]
    pub wal_path: PathBuf,

    /// Its name (%f).
    #[arg(value_name = "WAL_NAME")]
    pub wal_name: String,
}

impl ArchiveCli {
    /// Combines the command line, environment and configuration file.
    pub fn settings(&self) -> Result<archive::Settings> {
        let file = ConfigFile::load(self.common.config.as_deref())?;
        let compression = self.compress.or(file.compress).unwrap_or(Compression::Zstd);
        // A level from the file belongs to the file's codec; one from the command line to the chosen one.
        let level = self
            .level
            .or(file.level)
            .unwrap_or_else(|| compression.default_level());
        if !compression.level_range().contains(&level) {
            return Err(Error::Config(format!(
                "level {level} is out of range for {compression} ({:?})",
                compression.level_range()
            )));
        }
        Ok(archive::Settings {
            repo: file.repo(self.common.repo.as_deref())?,
            compression,
            level,
        })
    }
}

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
            repo: file.repo(self.common.repo.as_deref())?,
        })
    }
}
