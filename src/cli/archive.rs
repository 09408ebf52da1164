//! `uxwal-archive` command line.

use std::path::PathBuf;

use clap::Parser;

use super::{absolute, absolute_repos, Common};
use crate::codec::Compression;
use crate::commands::archive;
use crate::config::ConfigFile;
use crate::error::{Error, Result};
use crate::pipeline::ship;

const ARCHIVE_EXIT: &str = "\
Exit status:
  0  archived and durable (also when the archive already holds identical content);
     with --start-encryption: every repository is encrypted from now on
  1  not archived; the database keeps the file and retries
     (--start-encryption: a repository could not be marked)
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

    #[command(flatten)]
    pub codec: CodecArgs,

    /// Push ready files ahead: a background worker started by the call archives the
    /// files the database has marked ready (archive_status/*.ready), up to N-1 at a
    /// time, recorded in the spool so that their own calls only confirm them, with
    /// local checks and no request to the store (repositories, identity, the file
    /// unchanged by its stamp or SHA-256); 1 turns it off [default: 1 when every
    /// repository is a local directory, 4 when one is an object store].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub parallel: Option<u16>,

    /// Spool root, outside the data directory, private to the user running uxwal
    /// (mode 0700; anything else is refused with a warning) [default:
    /// /var/spool/uxwal when it exists and is the user's, else $TMPDIR/uxwal-UID]. Push-ahead
    /// keeps one entry of about 300 bytes per file pushed ahead, removed once confirmed
    /// or once the database has removed the file, and an empty lock file per file
    /// pushed or archived, removed with the file.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// How many repositories must hold the file before the call exits 0: all (the
    /// default) or a number K. With K below the number of repositories, a repository
    /// that fails with a storage error (or was unreachable less than retry_owed_after
    /// seconds ago) is left out while K remain, and is owed the copy: recorded
    /// durably in the spool root's backlog (owed/), and copied there by later calls
    /// from a repository that holds it.
    #[arg(long, value_name = "K|all")]
    pub require: Option<crate::config::Require>,

    /// Instead of archiving a file: start encrypting each repository (encrypt_to or
    /// --encrypt-to must be set), so that WAL archived from now on is encrypted;
    /// files archived before stay readable as they are. Run once, by hand, before
    /// archive_command starts encrypting (it refuses to mix plain and encrypted WAL
    /// unannounced). Prints what it did per repository.
    #[arg(long, conflicts_with_all = ["wal_path", "wal_name", "parallel"])]
    pub start_encryption: bool,

    /// The file to archive (%p), relative to the current directory (the data directory).
    #[arg(value_name = "WAL_PATH", required_unless_present = "start_encryption")]
    pub wal_path: Option<PathBuf>,

    /// Its name (%f).
    #[arg(value_name = "WAL_NAME", required_unless_present = "start_encryption")]
    pub wal_name: Option<String>,
}

/// How archived files are compressed: the flags of `uxwal-archive` and of its
/// push-ahead worker, spelt once.
#[derive(Debug, Clone, Copy, Default, clap::Args)]
pub struct CodecArgs {
    /// Compression: none, gzip or zstd [default: zstd].
    #[arg(long, value_enum, value_name = "CODEC")]
    pub compress: Option<Compression>,

    /// Compression level [default: zstd 1, gzip 6].
    #[arg(long, value_name = "N")]
    pub level: Option<i32>,
}

impl ArchiveCli {
    /// Combines the command line, environment and configuration file.
    pub fn settings(&self) -> Result<archive::Settings> {
        settings(
            &self.common,
            self.codec,
            self.parallel,
            self.spool_dir.as_deref(),
            self.require,
        )
    }
}

/// The settings of an archive call (or of the worker it starts), options beating the file.
pub(super) fn settings(
    common: &Common,
    codec: CodecArgs,
    parallel: Option<u16>,
    spool_dir: Option<&std::path::Path>,
    require_cli: Option<crate::config::Require>,
) -> Result<archive::Settings> {
    let file = ConfigFile::load(common.config.as_deref())?;
    let compression = codec
        .compress
        .or(file.compress)
        .unwrap_or(Compression::Zstd);
    // A level from the file belongs to the file's codec; one from the command line to the chosen one.
    let level = codec
        .level
        .or(file.level)
        .unwrap_or_else(|| compression.default_level());
    if !compression.level_range().contains(&level) {
        return Err(Error::Config(format!(
            "level {level} is out of range for {compression} ({:?})",
            compression.level_range()
        )));
    }
    let repos = absolute_repos(common, &file)?;
    Ok(archive::Settings {
        require: require(require_cli.or(file.require), repos.len())?,
        ship: ship::Settings {
            repos,
            store: file.store_options(common.deadline, &common.keys())?,
            compression,
            level,
        },
        parallel: parallel_files(parallel, &file)?,
        spool_dir: absolute(file.spool_dir(spool_dir)),
        config_file: common.config.clone().map(absolute),
        retry_owed_after: file
            .retry_owed_after
            .map_or(archive::RETRY_OWED_AFTER, std::time::Duration::from_secs),
    })
}

/// `--require`, else the file's `require`: at most the number of repositories.
fn require(value: Option<crate::config::Require>, repos: usize) -> Result<Option<usize>> {
    match value {
        None | Some(crate::config::Require::All) => Ok(None),
        Some(crate::config::Require::Count(k)) if k > repos => Err(Error::Config(format!(
            "require = {k}, but {repos} repositories are configured"
        ))),
        Some(crate::config::Require::Count(k)) => Ok(Some(k)),
    }
}

/// Largest `--parallel` (and `parallel` in the file).
pub const MAX_PARALLEL: usize = 64;

/// `--parallel`, else the file's `parallel` (1 to [`MAX_PARALLEL`]).
fn parallel_files(cli: Option<u16>, file: &ConfigFile) -> Result<Option<usize>> {
    super::in_range("parallel", cli, file.parallel, 1..=MAX_PARALLEL)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_from_the_file_is_bounded_like_the_option() {
        let file = |text: &str| -> ConfigFile { toml::from_str(text).unwrap() };
        assert_eq!(
            parallel_files(None, &file("parallel = 64")).unwrap(),
            Some(64)
        );
        assert_eq!(
            parallel_files(Some(3), &file("parallel = 99")).unwrap(),
            Some(3)
        );
        for bad in ["parallel = 65", "parallel = 0"] {
            let err = parallel_files(None, &file(bad)).unwrap_err();
            assert!(err.to_string().contains("must be from 1 to 64"), "{err}");
        }
    }
}
