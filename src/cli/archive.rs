//! `uxwal-archive` command line.

use std::path::PathBuf;

use clap::Parser;

use super::{absolute, absolute_repos, Common};
use crate::archive;
use crate::codec::Compression;
use crate::config::ConfigFile;
use crate::error::{Error, Result};

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

    /// Push ready files ahead: a background worker started by the call archives the
    /// files the database has marked ready (archive_status/*.ready), up to N-1 at a
    /// time, recorded in the spool so that their own calls only confirm them (size,
    /// SHA-256, repository); 1 turns it off [default: 1 when every repository is a
    /// local directory, 4 when one is an object store].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: Option<u16>,

    /// Spool root, outside the data directory [default: $TMPDIR/uxwal-UID]. Push-ahead
    /// keeps one entry of about 300 bytes per file pushed ahead, removed once confirmed
    /// or once the database has removed the file, and an empty lock file per file
    /// pushed or archived, removed with the file.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

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
        settings(
            &self.common,
            self.compress,
            self.level,
            self.parallel,
            self.spool_dir.as_deref(),
        )
    }
}

/// The first argument that makes `uxwal-archive` the background push-ahead worker.
pub const PUSH_AHEAD_WORKER_ARG: &str = "--push-ahead-worker";

/// The background push-ahead worker of uxwal-archive (internal: started by uxwal-archive itself).
// `uxwal-archive --push-ahead-worker [OPTIONS]` ([`crate::push_ahead`]) runs with the
// options of the archive call that started it; people never type it, so no man page.
#[derive(Debug, Parser)]
#[command(bin_name = "uxwal-archive --push-ahead-worker", version = crate::VERSION_LINE)]
pub struct PushAheadWorkerCli {
    #[command(flatten)]
    pub common: Common,

    /// Compression: none, gzip or zstd.
    #[arg(long, value_enum, value_name = "CODEC")]
    pub compress: Option<Compression>,

    /// Compression level.
    #[arg(long, value_name = "N")]
    pub level: Option<i32>,

    /// Files in flight: the worker pushes up to N-1 at a time.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=64))]
    pub parallel: u16,

    /// Spool root.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// The WAL directory whose ready files to push (absolute).
    #[arg(long, value_name = "DIR")]
    pub wal_dir: PathBuf,

    /// The worker lock descriptor inherited from the call that started it.
    #[arg(long, value_name = "FD")]
    pub lock_fd: Option<i32>,
}

impl PushAheadWorkerCli {
    /// The worker's command line, when the program was started as the worker
    /// (first argument [`PUSH_AHEAD_WORKER_ARG`]).
    pub fn from_env() -> Option<Self> {
        super::worker_args(PUSH_AHEAD_WORKER_ARG).map(Self::parse_from)
    }

    pub fn settings(&self) -> Result<archive::Settings> {
        settings(
            &self.common,
            self.compress,
            self.level,
            Some(self.parallel),
            self.spool_dir.as_deref(),
        )
    }
}

/// The settings of an archive call (or of the worker it starts), options beating the file.
fn settings(
    common: &Common,
    compress: Option<Compression>,
    level: Option<i32>,
    parallel: Option<u16>,
    spool_dir: Option<&std::path::Path>,
) -> Result<archive::Settings> {
    let file = ConfigFile::load(common.config.as_deref())?;
    let compression = compress.or(file.compress).unwrap_or(Compression::Zstd);
    // A level from the file belongs to the file's codec; one from the command line to the chosen one.
    let level = level
        .or(file.level)
        .unwrap_or_else(|| compression.default_level());
    if !compression.level_range().contains(&level) {
        return Err(Error::Config(format!(
            "level {level} is out of range for {compression} ({:?})",
            compression.level_range()
        )));
    }
    Ok(archive::Settings {
        repos: absolute_repos(common, &file)?,
        store: file.store_options(common.deadline)?,
        compression,
        level,
        parallel: parallel.map(usize::from).or(file.parallel),
        spool_dir: absolute(file.spool_dir(spool_dir)),
        config_file: common.config.clone().map(absolute),
    })
}
