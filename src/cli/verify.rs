//! `uxwal-verify` command line.

use clap::Parser;

use super::Common;
use crate::commands::verify::{self, BackupSelector, Scope};
use crate::config::ConfigFile;
use crate::error::{Error, Result};
use crate::wal::name::{SegmentName, WalName};

const VERIFY_EXIT: &str = "\
Exit status:
  0  nothing is wrong: every file is intact and no segment is missing
  1  a problem was found (each is named: file and what is wrong, or the missing range)
  2  invalid command line, or the repository cannot be read (missing, not a
     uxwal repository, unreadable metadata)

Example: uxwal-verify --repo /mnt/wal --json > verify.json";

/// How long object storage work may take in all (the per-request limit still applies).
const OBJECT_STORE_DEADLINE_SECS: u64 = 24 * 3600;

/// Prove an archive is complete and intact.
#[derive(Debug, Parser)]
#[command(name = "uxwal-verify", version = crate::VERSION_LINE, after_help = VERIFY_EXIT)]
#[command(long_about = "Prove an archive is complete and intact.\n\n\
Reads every archived file: decompresses it fully, checks the recorded SHA-256 and size, and \
checks segment headers against the name and the archive identity. Builds the timeline tree from \
the .history files and reports every missing segment within each timeline and across each switch \
point, and, for each base backup (.backup file), whether it can be restored to the newest archived \
WAL.")]
pub struct VerifyCli {
    #[command(flatten)]
    pub common: Common,

    /// Only timeline TLI (decimal).
    #[arg(long, value_name = "TLI", value_parser = clap::value_parser!(u32).range(1..))]
    pub timeline: Option<u32>,

    /// Only segments from SEGMENT on (a 24-digit segment name; its timeline part is ignored).
    #[arg(long, value_name = "SEGMENT")]
    pub from: Option<String>,

    /// Only segments up to SEGMENT (a 24-digit segment name; its timeline part is ignored).
    #[arg(long, value_name = "SEGMENT")]
    pub to: Option<String>,

    /// Only what restoring one base backup to the latest WAL reads: its LABEL, its
    /// .backup file name, or "newest".
    #[arg(long, value_name = "LABEL|newest")]
    pub backup: Option<String>,

    /// Names and sizes from the listing only: no segment is read, so checksums and
    /// headers are not checked (.history and .backup files are still read).
    #[arg(long)]
    pub quick: bool,

    /// Print the report as JSON (schema: docs/verify-json.md).
    #[arg(long)]
    pub json: bool,

    /// Objects read at once [default: CPU cores; more on object storage].
    #[arg(short, long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: Option<u16>,

    /// Spool root of the uxwal-archive whose backlog of owed copies (require) is
    /// listed for this repository [default: spool_dir, else as uxwal-archive].
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<std::path::PathBuf>,
}

fn segment_arg(option: &str, value: &Option<String>) -> Result<Option<SegmentName>> {
    match value.as_deref().map(str::parse::<WalName>) {
        None => Ok(None),
        Some(Ok(WalName::Segment(s))) => Ok(Some(s)),
        Some(_) => Err(Error::Usage(format!(
            "{option} {:?}: expected a 24-digit upper-case hex segment name",
            value.as_deref().unwrap_or("")
        ))),
    }
}

impl VerifyCli {
    /// Combines the command line, environment and configuration file.
    pub fn settings(&self) -> Result<verify::Settings> {
        let file = ConfigFile::load(self.common.config.as_deref())?;
        let repo = file.repo(&self.common.repo)?;
        // The file's `deadline` is sized for one WAL file; reading a whole archive
        // gets its own default, and only an explicit --deadline shortens it.
        let store = file.store_options(
            Some(self.common.deadline.unwrap_or(OBJECT_STORE_DEADLINE_SECS)),
            &self.common.keys(),
        )?;
        let backup = self.backup.as_ref().map(|b| match b.as_str() {
            "newest" => BackupSelector::Newest,
            label => BackupSelector::Label(label.to_owned()),
        });
        let scope = Scope {
            timeline: self.timeline,
            from: segment_arg("--from", &self.from)?,
            to: segment_arg("--to", &self.to)?,
            backup,
        };
        if let (Some(f), Some(t)) = (&scope.from, &scope.to) {
            if (f.log, f.seg) > (t.log, t.seg) {
                return Err(Error::Usage(format!("--from {f} is after --to {t}")));
            }
        }
        Ok(verify::Settings {
            jobs: self
                .jobs
                .map_or_else(|| verify::default_jobs(&repo), usize::from),
            repo,
            store,
            scope,
            quick: self.quick,
            json: self.json,
            progress: !self.common.quiet,
            spool_dir: file.spool_dir(self.spool_dir.as_deref()),
        })
    }
}
