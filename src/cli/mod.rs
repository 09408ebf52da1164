//! Command-line definitions of the executables: the one source of `--help`, the
//! man pages and the settings each command runs with. One file per command;
//! the options every command shares are here.

mod archive;
mod cleanup;
mod restore;
mod sync;
mod verify;
pub mod worker;

pub use archive::ArchiveCli;
pub use cleanup::CleanupCli;
pub use restore::RestoreCli;
pub use sync::SyncCli;
pub use verify::VerifyCli;
pub use worker::{PrefetchWorkerCli, PushAheadWorkerCli};

use std::path::PathBuf;

use clap::Args;

use crate::logging::Verbosity;

/// Options every command takes.
#[derive(Debug, Args)]
pub struct Common {
    /// Repository: a directory, file://, s3://bucket/prefix, az://container/prefix or
    /// gs://bucket/prefix. uxwal-archive and uxwal-restore take it more than once
    /// (archive stores into every one, restore reads from the first that has the file);
    /// uxwal-cleanup and uxwal-verify take one.
    #[arg(long, env = "UXWAL_REPO", value_name = "LOCATION")]
    pub repo: Vec<String>,

    /// Seconds all storage work of this command may take [default: 60, or `deadline` in the
    /// file; uxwal-verify: 24 hours].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub deadline: Option<u64>,

    /// Configuration file (TOML). Default: /etc/uxwal/uxwal.toml when it exists.
    #[arg(long, env = "UXWAL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Encrypt archived files to this age recipient (age1...) or to the recipients
    /// in this file (absolute path); repeatable (uxwal-archive) [default: encrypt_to
    /// in the file].
    #[arg(long, value_name = "RECIPIENT")]
    pub encrypt_to: Vec<String>,

    /// The digest key file (absolute path, mode 0600) that identical duplicates of
    /// encrypted files are recognised by; needed with --encrypt-to (uxwal-archive)
    /// [default: digest_key_file in the file].
    #[arg(long, value_name = "FILE")]
    pub digest_key_file: Option<PathBuf>,

    /// age identity file (absolute path, mode 0600) that encrypted files are read with;
    /// repeatable, so that keys can rotate [default: identity_file in the file].
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,

    /// Prometheus text-format file that each run updates, for node_exporter's
    /// textfile collector (absolute path; see docs/metrics.md) [default: metrics_file
    /// in the file].
    #[arg(long, value_name = "FILE")]
    pub metrics_file: Option<PathBuf>,

    /// Print errors only.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print what each step does.
    #[arg(short, long)]
    pub verbose: bool,
}

impl Common {
    /// The keys the command line names (see [`crate::crypt::KeySources`]).
    pub fn keys(&self) -> crate::crypt::KeySources {
        crate::crypt::KeySources {
            encrypt_to: self.encrypt_to.clone(),
            digest_key_file: self.digest_key_file.clone(),
            identity_files: self.identity.clone(),
        }
    }

    /// The metrics file: `--metrics-file`, else the `metrics_file` of the
    /// configuration file (`loaded`, or loaded now; none when it cannot be
    /// loaded: that error is the command's to report).
    pub fn metrics_file(&self, loaded: Option<&crate::config::ConfigFile>) -> Option<PathBuf> {
        if self.metrics_file.is_some() {
            return self.metrics_file.clone();
        }
        match loaded {
            Some(file) => file.metrics_file.clone(),
            None => {
                crate::config::ConfigFile::load(self.config.as_deref())
                    .ok()?
                    .metrics_file
            }
        }
    }

    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }
}

/// `path` made absolute against the current directory (unchanged if that fails):
/// the detached workers run in the spool directory.
pub(crate) fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// The repositories of `common` and `file`, local paths made absolute (see
/// [`crate::repo::Repository::absolute_location`]): the detached workers run in
/// the spool directory, and a call and its worker must name every place alike.
pub(crate) fn absolute_repos(
    common: &Common,
    file: &crate::config::ConfigFile,
) -> crate::error::Result<Vec<String>> {
    Ok(file
        .repos(&common.repo)?
        .into_iter()
        .map(crate::repo::Repository::absolute_location)
        .collect())
}

/// The command line's value, else the configuration file's `key`, which must lie
/// in `range` like the option's: a value out of range is a configuration error,
/// never a silently disabled feature.
fn in_range(
    key: &str,
    cli: Option<u16>,
    file: Option<usize>,
    range: std::ops::RangeInclusive<usize>,
) -> crate::Result<Option<usize>> {
    match cli.map(usize::from).or(file) {
        Some(n) if !range.contains(&n) => Err(crate::Error::Config(format!(
            "{key} = {n}: must be from {} to {}",
            range.start(),
            range.end()
        ))),
        other => Ok(other),
    }
}
