//! `uxwal-sync` command line.
//!
//! Not [`super::Common`]: its `--repo` (and `UXWAL_REPO`) names one place,
//! and a sync has two, `--from` and `--to`; its encryption keys for writing
//! do not apply either, since objects are copied as they are stored. The
//! options that do apply keep Common's names and meaning.

use std::path::PathBuf;

use clap::Parser;

use crate::commands::sync;
use crate::config::ConfigFile;
use crate::error::{Error, Result};
use crate::logging::Verbosity;
use crate::wal::name::WalName;

const SYNC_EXIT: &str = "\
Exit status:
  0  every WAL file of FROM in scope is in TO with the same content (with --dry-run:
     nothing stands in the way of copying the rest)
  1  something was not copied: a conflict (TO holds different content), a damaged
     object in FROM, a storage error; or the two repositories belong to different
     clusters (different IDENTITY: nothing was copied). Each is named on stderr.
  2  invalid command line, or it could not run (a bad location, FROM is not a uxwal
     repository, metadata or listing unreadable, TO cannot be prepared)

Example: uxwal-sync --from /mnt/wal --to s3://bucket/cluster --json";

/// How long object storage work may take in all (the per-request limit still applies).
const OBJECT_STORE_DEADLINE_SECS: u64 = 24 * 3600;

/// Copy the WAL files one repository has and another lacks.
#[derive(Debug, Parser)]
#[command(name = "uxwal-sync", version = crate::VERSION_LINE, after_help = SYNC_EXIT)]
#[command(
    long_about = "Copy the WAL files one repository has and another lacks.\n\n\
Lists both repositories; every segment, .partial, .history and .backup file of FROM that TO \
lacks is read, checked (decoded completely against its recorded SHA-256 and size, a segment's \
header against the archive identity) and stored in TO as it is stored in FROM (no \
recompression; encrypted files stay encrypted) with a create that never replaces. A file TO \
already holds with the same content is skipped, one with different content is a conflict. \
Refuses two repositories of different clusters. Running it again after an interruption continues \
where it stopped."
)]
pub struct SyncCli {
    /// The repository to copy from: a directory, file://, s3://bucket/prefix,
    /// az://container/prefix or gs://bucket/prefix.
    #[arg(long, value_name = "LOCATION")]
    pub from: String,

    /// The repository to copy to (created when new, with FROM's identity and
    /// encryption marker).
    #[arg(long, value_name = "LOCATION")]
    pub to: String,

    /// Only segments and .partial files from SEGMENT on (a 24-digit segment name; its
    /// timeline part is ignored); .history and .backup files are always copied.
    #[arg(long, value_name = "SEGMENT")]
    pub from_segment: Option<String>,

    /// List what would be copied (on stdout), and write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Files copied at once [default: 4 when either repository is object storage, else 1].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs: Option<u16>,

    /// Print the summary as one JSON object on stdout (fields: README, uxwal-sync).
    #[arg(long)]
    pub json: bool,

    /// Seconds all storage work of this command may take [default: 24 hours].
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub deadline: Option<u64>,

    /// Configuration file (TOML): its s3, azure and gcs tables, limits and
    /// identity_file apply to both repositories. Default: /etc/uxwal/uxwal.toml when it
    /// exists.
    #[arg(long, env = "UXWAL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// age identity file (absolute path, mode 0600) that encrypted files are checked with
    /// (they are copied encrypted); repeatable [default: identity_file in the file].
    #[arg(long, value_name = "FILE")]
    pub identity: Vec<PathBuf>,

    /// Print errors only.
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,

    /// Also print a line per file, terminal or not.
    #[arg(short, long)]
    pub verbose: bool,
}

impl SyncCli {
    pub fn verbosity(&self) -> Verbosity {
        match (self.quiet, self.verbose) {
            (true, _) => Verbosity::Quiet,
            (_, true) => Verbosity::Verbose,
            _ => Verbosity::Normal,
        }
    }

    /// Combines the command line, environment and configuration file.
    pub fn settings(&self) -> Result<sync::Settings> {
        use std::io::IsTerminal;
        let file = ConfigFile::load(self.config.as_deref())?;
        // As uxwal-verify: the file's `deadline` is sized for one WAL file.
        let keys = crate::crypt::KeySources {
            identity_files: self.identity.clone(),
            ..Default::default()
        };
        let mut store = file.store_options(
            Some(self.deadline.unwrap_or(OBJECT_STORE_DEADLINE_SECS)),
            &keys,
        )?;
        // Objects are copied as stored: nothing is encrypted here.
        if let Some(keys) = std::sync::Arc::get_mut(&mut store.keys) {
            keys.recipients = None;
            keys.digest = None;
        }
        let from_segment = match self.from_segment.as_deref().map(str::parse::<WalName>) {
            None => None,
            Some(Ok(WalName::Segment(s))) => Some(s),
            Some(_) => {
                return Err(Error::Usage(format!(
                    "--from-segment {:?}: expected a 24-digit upper-case hex segment name",
                    self.from_segment.as_deref().unwrap_or("")
                )))
            }
        };
        let (from, to) = (
            crate::repo::Repository::absolute_location(self.from.clone()),
            crate::repo::Repository::absolute_location(self.to.clone()),
        );
        if from == to {
            return Err(Error::Usage(format!(
                "--from and --to are the same repository {from:?}"
            )));
        }
        Ok(sync::Settings {
            jobs: self
                .jobs
                .map_or_else(|| sync::default_jobs(&from, &to), usize::from),
            from,
            to,
            store,
            from_segment,
            dry_run: self.dry_run,
            json: self.json,
            progress: self.verbose || (!self.quiet && std::io::stderr().is_terminal()),
        })
    }
}
