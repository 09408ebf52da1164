//! `uxwal-restore` command line.

use std::path::PathBuf;

use clap::Parser;

use super::{absolute, absolute_repos, Common};
use crate::commands::restore::{self, OnError};
use crate::config::ConfigFile;
use crate::error::Result;

const RESTORE_EXIT: &str = "\
Exit status:
  0    restored: DEST_PATH holds the verified file
  1    not in the archive (or an error, on a standby or with --on-error missing)
  2    invalid command line (outside a point-in-time recovery)
  200  an error during point-in-time recovery (--on-error abort), or an invalid
       command line there: recovery stops with the error in the server log
       instead of ending early

Configuration: restore_command = 'uxwal-restore --repo /mnt/wal %f %p'";

/// Restore one WAL file from the archive, verifying it before it appears.
#[derive(Debug, Parser)]
#[command(name = "uxwal-restore", version = crate::VERSION_LINE, after_help = RESTORE_EXIT)]
#[command(
    long_about = "Restore one WAL file from the archive, verifying it before it appears.\n\n\
Decompresses, checks the recorded SHA-256 (and the size of segments), checks that a segment's \
page header matches its name and the data directory's system identifier, writes a temporary file \
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
    /// the spool, where later calls find them verified; 0 turns it off [default: 8
    /// when the first repository is object storage, 0 for a directory]. The spool
    /// holds at most N segments per archive, and at most spool_max_bytes.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=64))]
    pub prefetch: Option<u16>,

    /// Spool root, outside the data directory, private to the user running uxwal
    /// (mode 0700; anything else is refused with a warning) [default:
    /// /var/spool/uxwal when it exists and is the user's, else $TMPDIR/uxwal-$UID].
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
        settings(&self.common, self.prefetch, self.spool_dir.as_deref(), file)
    }
}

/// The settings of a restore (or of the worker it starts), options beating the file.
pub(super) fn settings(
    common: &Common,
    prefetch: Option<u16>,
    spool_dir: Option<&std::path::Path>,
    file: &ConfigFile,
) -> Result<restore::Settings> {
    Ok(restore::Settings {
        repos: absolute_repos(common, file)?,
        store: file.store_options(common.deadline, &common.keys())?,
        prefetch: prefetch_depth(prefetch, file)?,
        spool_dir: absolute(file.spool_dir(spool_dir)),
        spool_max_bytes: spool_max_bytes(file)?,
        linger: restore::linger_from_env()?,
        config_file: common.config.clone().map(absolute),
    })
}

/// Largest `--prefetch` (and `prefetch` in the file): bounds the spool's disk use.
pub const MAX_PREFETCH: usize = 64;

/// `--prefetch`, else the file's `prefetch`, which must be in the same range.
fn prefetch_depth(cli: Option<u16>, file: &ConfigFile) -> Result<Option<usize>> {
    super::in_range("prefetch", cli, file.prefetch, 0..=MAX_PREFETCH)
}

/// The file's `spool_max_bytes`, which must leave room for at least one small segment.
fn spool_max_bytes(file: &ConfigFile) -> Result<u64> {
    use crate::commands::restore::{DEFAULT_MAX_BYTES, MIN_MAX_BYTES};
    match file.spool_max_bytes {
        None => Ok(DEFAULT_MAX_BYTES),
        Some(n) if n >= MIN_MAX_BYTES => Ok(n),
        Some(n) => Err(crate::Error::Config(format!(
            "spool_max_bytes = {n}: at least {MIN_MAX_BYTES} bytes (2 MiB)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefetch_from_the_file_is_bounded_like_the_option() {
        let file = |text: &str| -> ConfigFile { toml::from_str(text).unwrap() };
        assert_eq!(prefetch_depth(None, &file("")).unwrap(), None);
        assert_eq!(
            prefetch_depth(None, &file("prefetch = 64")).unwrap(),
            Some(64)
        );
        assert_eq!(
            prefetch_depth(Some(2), &file("prefetch = 99")).unwrap(),
            Some(2)
        );
        let err = prefetch_depth(None, &file("prefetch = 65")).unwrap_err();
        assert!(err.to_string().contains("must be from 0 to 64"), "{err}");
        assert!(spool_max_bytes(&file("spool_max_bytes = 1024")).is_err());
        assert_eq!(
            spool_max_bytes(&file("spool_max_bytes = 3145728")).unwrap(),
            3 << 20
        );
    }
}
