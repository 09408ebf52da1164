//! `uxwal-cleanup` command line: `pg_archivecleanup`'s arguments and options,
//! plus the repository settings every uxwal command takes, plus retention.

use std::time::Duration;

use clap::{ArgAction, Parser};

use super::Common;
use crate::commands::cleanup::{self, Target};
use crate::config::ConfigFile;
use crate::error::{Error, Result};

const CLEANUP_EXIT: &str = "\
Exit status:
  0  done: everything selected was removed (or listed, with --dry-run), or nothing
     needed removing
  1  the archive could not be listed or read, a file could not be removed (the
     others were), or retention found no usable .backup file, no readable history
     of the newest timeline, or no base backup that can reach that timeline
  2  invalid command line, invalid file name, or the archive location does not exist

Configuration: archive_cleanup_command = 'uxwal-cleanup --repo /mnt/wal %r'
As pg_archivecleanup: archive_cleanup_command = 'uxwal-cleanup /mnt/wal %r'
Retention, by hand or from cron (always try --dry-run first):
  uxwal-cleanup --repo /mnt/wal --retain-backups 2 --dry-run";

const USAGE: &str = "uxwal-cleanup [OPTIONS] <OLDEST_KEPT>
       uxwal-cleanup [OPTIONS] <ARCHIVE_LOCATION> <OLDEST_KEPT>
       uxwal-cleanup [OPTIONS] --retain-backups <N> [--older-than <DURATION>] [ARCHIVE_LOCATION]";

/// Remove archived WAL files the database no longer needs.
#[derive(Debug, Parser)]
#[command(name = "uxwal-cleanup", version = crate::VERSION_LINE, after_help = CLEANUP_EXIT)]
#[command(override_usage = USAGE, disable_help_flag = true)]
#[command(
    long_about = "Remove archived WAL files the database no longer needs.\n\n\
As archive_cleanup_command (a drop-in for pg_archivecleanup): removes every WAL segment and \
.partial file whose name, timeline ignored, sorts before OLDEST_KEPT (%r). Timeline .history \
files, the repository's metadata and anything not named like WAL are never removed; .backup \
files only with -b. Files are removed oldest first, so an interruption never leaves a hole.\n\n\
ARCHIVE_LOCATION, when given, is the repository (it wins over --repo); a directory without a \
uxwal FORMAT file is cleaned exactly as pg_archivecleanup does (top-level files only).\n\n\
Retention, instead of OLDEST_KEPT: --retain-backups N keeps every WAL file the newest N base \
backups need (from their archived .backup files) and everything after; only backups that can \
reach the newest timeline (from its .history file) count, and when none can, nothing is \
removed. --older-than also spares files archived more recently than DURATION."
)]
pub struct CleanupCli {
    #[command(flatten)]
    pub common: Common,

    /// Print the files that would be removed, one per line on stdout; remove nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// Print what is kept and removed on stderr (as --verbose; pg_archivecleanup's -d).
    #[arg(short = 'd', long)]
    pub debug: bool,

    /// Strip this extension from file names before checking them (e.g. .gz), as
    /// pg_archivecleanup does for archives written with it.
    #[arg(short = 'x', long, value_name = "EXT", allow_hyphen_values = true)]
    pub strip_extension: Option<String>,

    /// Also remove backup history files (.backup) older than the cutoff.
    #[arg(short = 'b', long)]
    pub clean_backup_history: bool,

    /// Keep every WAL file the newest N base backups need, and everything after;
    /// remove older WAL. Only backups that can reach the newest timeline count
    /// (one taken on a branch abandoned by a point-in-time recovery cannot).
    /// Instead of OLDEST_KEPT.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub retain_backups: Option<u32>,

    /// Remove only files archived longer ago than DURATION (e.g. 7d, 12h, 30m,
    /// 1d12h), never what a retained backup needs (the newest one unless
    /// --retain-backups says more). Instead of OLDEST_KEPT.
    #[arg(long, value_name = "DURATION", value_parser = cleanup::parse_duration)]
    pub older_than: Option<Duration>,

    /// Print help (-? as in pg_archivecleanup).
    #[arg(short = 'h', long, short_alias = '?', action = ArgAction::Help)]
    pub help: Option<bool>,

    /// OLDEST_KEPT, or ARCHIVE_LOCATION then OLDEST_KEPT: the oldest WAL file to keep (%r): a segment,
    /// `<segment>.partial` or `<segment>.XXXXXXXX.backup`; only its segment part counts.
    #[arg(value_name = "ARGS")]
    pub args: Vec<String>,
}

impl CleanupCli {
    /// Verbose with `-d` as with `-v`.
    pub fn verbosity(&self) -> crate::logging::Verbosity {
        if self.debug && !self.common.quiet {
            crate::logging::Verbosity::Verbose
        } else {
            self.common.verbosity()
        }
    }

    /// Combines the arguments, environment and configuration file, with
    /// `pg_archivecleanup`'s messages for missing and extra arguments.
    pub fn settings(&self) -> Result<cleanup::Settings> {
        let usage = |m: &str| Error::Usage(m.to_owned());
        let file = ConfigFile::load(self.common.config.as_deref())?;
        let store = file.store_options(self.common.deadline, &self.common.keys())?;
        let configured = || -> Result<Option<String>> {
            if self.common.repo.is_empty() && file.repo.is_none() {
                return Ok(None);
            }
            file.repo(&self.common.repo).map(Some)
        };
        let no_location = "must specify archive location (ARCHIVE_LOCATION, --repo, UXWAL_REPO, or repo in the configuration file)";
        let retention = self.retain_backups.is_some() || self.older_than.is_some();
        let (location, target) = if retention {
            let target = Target::Retention {
                retain_backups: self.retain_backups.unwrap_or(1),
                older_than: self.older_than,
            };
            match self.args.as_slice() {
                [] => (configured()?.ok_or_else(|| usage(no_location))?, target),
                [location] => (location.clone(), target),
                [_, _] => {
                    return Err(usage(
                        "OLDEST_KEPT cannot be combined with --retain-backups or --older-than",
                    ))
                }
                _ => return Err(usage("too many command-line arguments")),
            }
        } else {
            match self.args.as_slice() {
                [] => match configured()? {
                    None => return Err(usage(no_location)),
                    Some(_) => return Err(usage("must specify oldest kept WAL file")),
                },
                [one] => {
                    let stripped = cleanup::trim_extension(one, self.strip_extension.as_deref());
                    // A single argument is OLDEST_KEPT when a repository is
                    // configured; a path (pg_archivecleanup DIR) lacks it.
                    let looks_like_name = cleanup::cutoff_segment(stripped).is_some();
                    match configured()? {
                        Some(repo) if looks_like_name || !one.contains('/') => {
                            (repo, Target::OldestKept(one.clone()))
                        }
                        None if looks_like_name => return Err(usage(no_location)),
                        _ => return Err(usage("must specify oldest kept WAL file")),
                    }
                }
                [location, oldest] => (location.clone(), Target::OldestKept(oldest.clone())),
                _ => return Err(usage("too many command-line arguments")),
            }
        };
        Ok(cleanup::Settings {
            location,
            store,
            target,
            dry_run: self.dry_run,
            strip_extension: self.strip_extension.clone(),
            clean_backup_history: self.clean_backup_history,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use clap::Parser;

    use super::*;
    use crate::cli::VerifyCli;

    #[test]
    fn deadline_on_the_command_line_applies_to_cleanup_and_verify() {
        let config = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(config.path(), "deadline = 30\n").unwrap();
        let config = config.path().to_str().unwrap();
        let cleanup = |extra: &[&str]| {
            let args = [
                &["uxwal-cleanup", "--config", config, "--repo", "/r"],
                extra,
                &["000000010000000000000001"],
            ]
            .concat();
            CleanupCli::parse_from(args)
                .settings()
                .unwrap()
                .store
                .deadline
        };
        assert_eq!(cleanup(&[]), Duration::from_secs(30));
        assert_eq!(cleanup(&["--deadline", "5"]), Duration::from_secs(5));
        let verify = |extra: &[&str]| {
            let args = [&["uxwal-verify", "--config", config, "--repo", "/r"], extra].concat();
            VerifyCli::parse_from(args)
                .settings()
                .unwrap()
                .store
                .deadline
        };
        assert_eq!(verify(&[]), Duration::from_secs(24 * 3600));
        assert_eq!(verify(&["--deadline", "7"]), Duration::from_secs(7));
    }
}
