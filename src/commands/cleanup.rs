//! `uxwal-cleanup`: remove archived WAL the database no longer needs, as
//! `archive_cleanup_command` (a drop-in for `pg_archivecleanup`) or by retention.
//!
//! What it guarantees:
//!
//! - **Only WAL is ever removed**: segments and `.partial` files, and `.backup`
//!   history files only with `-b`. Timeline `.history` files, the repository's
//!   `FORMAT` and `IDENTITY`, staging files and anything not named like WAL are
//!   never touched.
//! - **`pg_archivecleanup`'s rule** (`src/bin/pg_archivecleanup/pg_archivecleanup.c`):
//!   a file goes when its name, timeline ignored, sorts before the cutoff
//!   (`strcmp(name + 8, cutoff + 8) < 0`). Ignoring the timeline keeps the later
//!   segments of every timeline, so a restartpoint on timeline 2 never removes
//!   what a timeline-1 ancestor still needs after the switch, and the cutoff
//!   `000000000000000000000000` removes nothing.
//! - **Oldest first**: the candidates are sorted by position in WAL (then
//!   timeline) and removed in that order, in batches, so an interruption leaves
//!   a contiguous archive, never a hole in the middle.
//! - **Failures**: a file that cannot be removed is reported and the rest are
//!   still removed (everything selected is unneeded, whatever happens to the
//!   others); the command then exits 1. Listing is done once, before anything is
//!   removed; a listing failure removes nothing.
//! - **Retention** (`--retain-backups`, `--older-than`) keeps every WAL file the
//!   retained base backups need, found from their archived `.backup` files, and
//!   refuses to run when there is none: without one nothing says which WAL a
//!   backup needs.
//!
//! A local directory without a `FORMAT` file is treated as a plain directory of
//! WAL-named files, exactly as `pg_archivecleanup` treats it (top-level files
//! only, `-x EXT` stripped before the name is checked). A uxwal repository is
//! handled through its layout (`docs/FORMAT.md`).

use std::fs;
use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::error::Error;
use crate::repo::remote::StoreOptions;
use crate::repo::{Entry, Repository};
use crate::wal::name::{InvalidWalName, WalName};

/// Files removed per call to the storage: S3's bulk delete takes at most 1000
/// keys, and a local batch fsyncs each directory once.
const BATCH: usize = 1000;

/// A backup history file is a few hundred bytes; anything much larger is not one.
const MAX_BACKUP_FILE: u64 = 64 * 1024;

/// What to clean and how.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Repository or plain directory, as the user wrote it.
    pub location: String,
    /// Object storage settings (from the configuration file).
    pub store: StoreOptions,
    pub target: Target,
    /// `-n`: print what would be removed (one per line, on stdout), remove nothing.
    pub dry_run: bool,
    /// `-x EXT`: strip this extension from names before checking them.
    pub strip_extension: Option<String>,
    /// `-b`: also remove `.backup` history files before the cutoff.
    pub clean_backup_history: bool,
}

/// Which files are unneeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `OLDEST_KEPT` (`%r`): everything before this file, timeline ignored.
    OldestKept(String),
    /// Keep what the newest `retain_backups` base backups need; with
    /// `older_than`, remove only files archived longer ago than that.
    Retention {
        retain_backups: u32,
        older_than: Option<Duration>,
    },
}

/// What a run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// Removed (or, in a dry run, would have been removed).
    pub removed: usize,
    /// Could not be removed (each already reported on stderr).
    pub failed: usize,
}

/// Why cleaning did not run (or did not finish).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CleanupError {
    /// Invalid command line, name or archive location: nothing was touched
    /// (`pg_archivecleanup` exits 2 for these).
    #[error("{0}")]
    Usage(String),
    /// The repository could not be listed or read; nothing was removed.
    #[error(transparent)]
    Repository(#[from] Error),
    /// `pg_archivecleanup`'s "could not open archive location".
    #[error("could not open archive location \"{location}\": {source}")]
    List { location: String, source: io::Error },
    /// Retention asked for, but there is no `.backup` file to say what a backup needs.
    #[error("no backup history file (*.backup) in {0}: nothing tells which WAL a base backup needs, so nothing was removed (run pg_basebackup, or give OLDEST_KEPT)")]
    NoBackups(String),
    /// A `.backup` file that cannot be read or understood: retention cannot be
    /// computed safely, so nothing was removed.
    #[error("backup history file {name}: {reason}; nothing was removed")]
    BadBackup { name: String, reason: String },
}

impl CleanupError {
    fn usage(msg: impl Into<String>) -> Self {
        CleanupError::Usage(msg.into())
    }
}

/// Removes what `settings` selects, printing dry-run names to `out`.
pub fn run(settings: &Settings, out: &mut dyn Write) -> Result<Report, CleanupError> {
    let local = local_path(&settings.location);
    // pg_archivecleanup checks the location before the name.
    if let Some(dir) = &local {
        if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(CleanupError::usage(format!(
                "archive location \"{}\" does not exist",
                settings.location
            )));
        }
    }
    let cutoff = match &settings.target {
        Target::OldestKept(name) => {
            let trimmed = trim_extension(name, settings.strip_extension.as_deref());
            Some(
                cutoff_segment(trimmed)
                    .ok_or_else(|| CleanupError::usage("invalid file name argument"))?,
            )
        }
        Target::Retention { .. } => None,
    };
    let repo = Repository::open_with(&settings.location, &settings.store).map_err(|e| match e {
        Error::UnsupportedLocation(_) | Error::Config(_) => CleanupError::usage(e.to_string()),
        other => other.into(),
    })?;
    let archive = match repo.check_format() {
        Ok(()) => Archive::Layout(repo),
        Err(Error::NotARepository { .. }) if local.is_some() => Archive::Plain {
            dir: local.expect("checked"),
            repo,
        },
        Err(e) => return Err(e.into()),
    };
    let cleaner = Cleaner {
        settings,
        archive,
        display_root: settings.location.clone(),
    };
    cleaner.run(cutoff, out)
}

/// A directory path or `file://` URL: where the plain-directory behaviour applies.
fn local_path(location: &str) -> Option<PathBuf> {
    match location.split_once("://") {
        None if !location.is_empty() => Some(PathBuf::from(location)),
        Some(("file", path)) if path.starts_with('/') => Some(PathBuf::from(path)),
        _ => None,
    }
}

enum Archive {
    /// A uxwal repository: WAL under `wal/`, found through the layout.
    Layout(Repository),
    /// A plain directory of WAL-named files (no FORMAT): top level only.
    Plain { dir: PathBuf, repo: Repository },
}

/// One removable file.
#[derive(Debug, Clone)]
struct Candidate {
    /// The WAL name, any `-x` extension stripped: what the rule compares.
    name: String,
    /// What to pass to the storage's delete.
    key: String,
    modified: Option<SystemTime>,
    is_backup: bool,
}

impl Candidate {
    /// Position in WAL (log and seg parts), then timeline, then the suffix.
    fn order(&self) -> (&str, &str, &str) {
        (&self.name[8..24], &self.name[..8], &self.name[24..])
    }
}

/// A base backup, from its archived `.backup` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Backup {
    /// The `.backup` file name.
    name: String,
    /// The segment holding START WAL LOCATION: the first one the backup needs.
    start_segment: String,
    start_lsn: u64,
    /// `YYYY-MM-DD HH:MM:SS` of START TIME (the zone dropped), for ordering.
    start_time: String,
}

struct Cleaner<'a> {
    settings: &'a Settings,
    archive: Archive,
    display_root: String,
}

impl Cleaner<'_> {
    fn run(&self, cutoff: Option<String>, out: &mut dyn Write) -> Result<Report, CleanupError> {
        // %r = 000000000000000000000000 (cleanup disabled) removes nothing: don't even list.
        if cutoff
            .as_deref()
            .is_some_and(|c| c[8..].bytes().all(|b| b == b'0'))
        {
            tracing::debug!(
                "nothing sorts before {}: nothing to remove",
                cutoff.unwrap()
            );
            return Ok(Report::default());
        }
        let all = self.list()?;
        let (cutoff, older_than) = match (&self.settings.target, cutoff) {
            (_, Some(cutoff)) => (cutoff, None),
            (
                Target::Retention {
                    retain_backups,
                    older_than,
                },
                None,
            ) => (self.retention_cutoff(&all, *retain_backups)?, *older_than),
            (Target::OldestKept(_), None) => unreachable!("parsed before"),
        };
        tracing::debug!(
            "keeping WAL file \"{}\" and later",
            self.display(&self.cut_display(&cutoff))
        );
        let mut selected: Vec<Candidate> = all
            .into_iter()
            .filter(|c| !c.is_backup || self.settings.clean_backup_history)
            .filter(|c| c.name[8..] < cutoff[8..])
            .collect();
        selected.sort_by(|a, b| a.order().cmp(&b.order()));
        if let Some(age) = older_than {
            // Stop at the first file archived too recently, so that what is
            // removed stays a contiguous oldest part of the archive.
            let limit = SystemTime::now().checked_sub(age);
            let old_enough = |c: &Candidate| match (c.modified, limit) {
                (Some(m), Some(l)) => m < l,
                _ => false,
            };
            let keep_from = selected
                .iter()
                .position(|c| !old_enough(c))
                .unwrap_or(selected.len());
            if keep_from < selected.len() {
                tracing::debug!(
                    "keeping \"{}\" and later: archived less than {} ago",
                    self.display(&selected[keep_from].key),
                    format_duration(age)
                );
            }
            selected.truncate(keep_from);
        }
        self.remove(&selected, out)
    }

    /// How the cutoff appears in the "keeping" message: as pg_archivecleanup
    /// prints it for a plain directory, at its layout key for a repository.
    fn cut_display(&self, cutoff: &str) -> String {
        match &self.archive {
            Archive::Plain { .. } => cutoff.to_owned(),
            Archive::Layout(_) => format!("wal/{}/{cutoff}", &cutoff[..16]),
        }
    }

    fn display(&self, key: &str) -> String {
        match &self.archive {
            // Exactly pg_archivecleanup's "<location>/<name>".
            Archive::Plain { .. } => format!("{}/{key}", self.display_root),
            Archive::Layout(_) => format!("{}/{key}", self.display_root.trim_end_matches('/')),
        }
    }

    /// Every WAL-family file that the rule may consider (segments, `.partial`,
    /// `.backup`), listed once.
    fn list(&self) -> Result<Vec<Candidate>, CleanupError> {
        let ext = self.settings.strip_extension.as_deref();
        match &self.archive {
            Archive::Layout(repo) => {
                let mut found = Vec::new();
                for listed in repo.list("wal/")? {
                    let Entry::Wal(name) = Repository::classify(&listed.key) else {
                        continue;
                    };
                    let is_backup = match name {
                        WalName::Segment(_) | WalName::Partial(_) => false,
                        WalName::Backup { .. } => true,
                        WalName::History { .. } => continue,
                    };
                    let base = listed.key.rsplit('/').next().unwrap_or(&listed.key);
                    found.push(Candidate {
                        name: trim_extension(base, ext).to_owned(),
                        key: listed.key.clone(),
                        modified: listed.modified,
                        is_backup,
                    });
                }
                Ok(found)
            }
            Archive::Plain { dir, .. } => {
                let list_error = |source| CleanupError::List {
                    location: self.display_root.clone(),
                    source,
                };
                let need_times = matches!(
                    self.settings.target,
                    Target::Retention {
                        older_than: Some(_),
                        ..
                    }
                );
                let mut found = Vec::new();
                for entry in fs::read_dir(dir).map_err(list_error)? {
                    let entry = entry.map_err(list_error)?;
                    // WAL names are ASCII: a name that is not UTF-8 is never one.
                    let Some(file) = entry.file_name().to_str().map(str::to_owned) else {
                        continue;
                    };
                    let name = trim_extension(&file, ext);
                    let is_backup = if is_segment(name) || is_partial(name) {
                        false
                    } else if is_backup_history(name) {
                        true
                    } else {
                        continue;
                    };
                    let modified = if need_times {
                        entry.metadata().ok().and_then(|m| m.modified().ok())
                    } else {
                        None
                    };
                    found.push(Candidate {
                        name: name.to_owned(),
                        key: file.clone(),
                        modified,
                        is_backup,
                    });
                }
                Ok(found)
            }
        }
    }

    /// The oldest start segment among the retained backups.
    fn retention_cutoff(&self, all: &[Candidate], keep: u32) -> Result<String, CleanupError> {
        let mut backups = Vec::new();
        for c in all.iter().filter(|c| c.is_backup) {
            backups.push(self.read_backup(c)?);
        }
        if backups.is_empty() {
            return Err(CleanupError::NoBackups(self.display_root.clone()));
        }
        let retained = newest_backups(&backups, keep as usize);
        if backups.len() < keep as usize {
            tracing::info!(
                "only {} base backup(s) archived, fewer than the {keep} to retain: keeping all of them",
                backups.len()
            );
        }
        for b in &retained {
            tracing::debug!(
                "retaining base backup {} (started {} at {:X}/{:X})",
                b.name,
                b.start_time,
                b.start_lsn >> 32,
                b.start_lsn & 0xFFFF_FFFF
            );
        }
        let oldest = retained
            .iter()
            .min_by(|a, b| a.start_segment[8..].cmp(&b.start_segment[8..]))
            .expect("at least one retained");
        Ok(oldest.start_segment.clone())
    }

    fn read_backup(&self, c: &Candidate) -> Result<Backup, CleanupError> {
        let bad = |reason: String| CleanupError::BadBackup {
            name: c.name.clone(),
            reason,
        };
        let text = match &self.archive {
            Archive::Layout(repo) => {
                let name: WalName = c
                    .name
                    .parse()
                    .map_err(|e: InvalidWalName| bad(e.to_string()))?;
                // A damaged object is this backup file's problem; any other failure the storage's.
                let damaged = |e: Error| match e {
                    Error::Corrupt { source, .. } => bad(source.to_string()),
                    e => CleanupError::Repository(e),
                };
                let stored = repo
                    .open_stored(&name, None)
                    .map_err(damaged)?
                    .ok_or_else(|| {
                        bad("listed, but gone when read (is another cleanup running?)".into())
                    })?;
                let size = stored.trailer().size;
                if size > MAX_BACKUP_FILE {
                    return Err(bad(format!("{size} bytes is too large")));
                }
                stored.read_head(size as usize).map_err(damaged)?
            }
            Archive::Plain { dir, .. } => {
                let mut bytes = Vec::new();
                fs::File::open(dir.join(&c.key))
                    .and_then(|f| f.take(MAX_BACKUP_FILE).read_to_end(&mut bytes))
                    .map_err(|e| bad(e.to_string()))?;
                bytes
            }
        };
        let text = String::from_utf8(text).map_err(|_| bad("not text".into()))?;
        parse_backup_file(&c.name, &text).map_err(bad)
    }

    /// Removes `selected` (already in order), oldest first, in batches.
    fn remove(&self, selected: &[Candidate], out: &mut dyn Write) -> Result<Report, CleanupError> {
        let mut report = Report::default();
        if self.settings.dry_run {
            for c in selected {
                let path = self.display(&c.key);
                // The list goes to stdout so it can be piped; a closed pipe is not our failure.
                let _ = writeln!(out, "{path}");
                tracing::debug!("file \"{path}\" would be removed");
                report.removed += 1;
            }
            let _ = out.flush();
            return Ok(report);
        }
        let repo = match &self.archive {
            Archive::Layout(repo) | Archive::Plain { repo, .. } => repo,
        };
        for batch in selected.chunks(BATCH) {
            let keys: Vec<String> = batch
                .iter()
                .map(|c| {
                    tracing::debug!("removing file \"{}\"", self.display(&c.key));
                    c.key.clone()
                })
                .collect();
            for (key, result) in repo.delete(&keys) {
                match result {
                    Ok(()) => report.removed += 1,
                    Err(e) => {
                        let reason = match &e {
                            Error::Storage { source, .. } => source.to_string(),
                            other => other.to_string(),
                        };
                        tracing::error!(
                            "could not remove file \"{}\": {reason}",
                            self.display(&key)
                        );
                        report.failed += 1;
                    }
                }
            }
        }
        Ok(report)
    }
}

/// The newest `n` backups by start time, together with the newest `n` by start
/// position. The two agree on one line of history; after a point-in-time
/// recovery to an earlier point (a newer timeline starting at a lower LSN) or a
/// clock or time zone change they can differ, and then both are kept.
fn newest_backups(backups: &[Backup], n: usize) -> Vec<Backup> {
    let mut by_time: Vec<&Backup> = backups.iter().collect();
    by_time.sort_by(|a, b| (&b.start_time, b.start_lsn).cmp(&(&a.start_time, a.start_lsn)));
    let mut by_lsn: Vec<&Backup> = backups.iter().collect();
    by_lsn.sort_by(|a, b| (b.start_lsn, &b.start_time).cmp(&(a.start_lsn, &a.start_time)));
    let mut kept: Vec<Backup> = Vec::new();
    for b in by_time
        .into_iter()
        .take(n)
        .chain(by_lsn.into_iter().take(n))
    {
        if !kept.iter().any(|k| k.name == b.name) {
            kept.push(b.clone());
        }
    }
    kept
}

/// Reads the fields retention needs from a backup history file
/// (`do_pg_backup_stop` writes `KEY: value` lines), checking them against its name.
fn parse_backup_file(name: &str, text: &str) -> Result<Backup, String> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(':').map(str::trim))
    };
    let location = field("START WAL LOCATION").ok_or("no START WAL LOCATION line")?;
    // "0/2000028 (file 000000010000000000000002)"
    let (lsn, file) = location
        .split_once(" (file ")
        .and_then(|(lsn, rest)| Some((lsn.trim(), rest.strip_suffix(')')?)))
        .ok_or_else(|| format!("cannot parse START WAL LOCATION {location:?}"))?;
    let start_lsn = parse_lsn(lsn).ok_or_else(|| format!("cannot parse LSN {lsn:?}"))?;
    if !is_segment(file) || !name.starts_with(file) {
        return Err(format!(
            "START WAL LOCATION names segment {file:?}, but the file is named {name}"
        ));
    }
    if let Some(tli) = field("START TIMELINE") {
        let tli: u32 = tli
            .parse()
            .map_err(|_| format!("cannot parse START TIMELINE {tli:?}"))?;
        if format!("{tli:08X}") != file[..8] {
            return Err(format!(
                "START TIMELINE {tli} does not match segment {file}"
            ));
        }
    }
    let start_time = field("START TIME")
        .map(|t| t.chars().take(19).collect())
        .unwrap_or_default();
    Ok(Backup {
        name: name.to_owned(),
        start_segment: file.to_owned(),
        start_lsn,
        start_time,
    })
}

/// `X/Y` in hex, as PostgreSQL prints an LSN.
fn parse_lsn(s: &str) -> Option<u64> {
    let (hi, lo) = s.split_once('/')?;
    let hi = u32::from_str_radix(hi, 16).ok()?;
    let lo = u32::from_str_radix(lo, 16).ok()?;
    Some((u64::from(hi) << 32) | u64::from(lo))
}

/// `pg_archivecleanup`'s TrimExtension: drop `ext` when the name is longer and ends with it.
fn trim_extension<'a>(name: &'a str, ext: Option<&str>) -> &'a str {
    match ext {
        Some(ext) if name.len() > ext.len() => name.strip_suffix(ext).unwrap_or(name),
        _ => name,
    }
}

fn upper_hex(b: &[u8]) -> bool {
    b.iter()
        .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(c))
}

/// `IsXLogFileName`: 24 upper-case hex digits.
fn is_segment(s: &str) -> bool {
    s.len() == 24 && upper_hex(s.as_bytes())
}

/// `IsPartialXLogFileName`: a segment name followed by `.partial`.
fn is_partial(s: &str) -> bool {
    s.len() == 32 && upper_hex(&s.as_bytes()[..24]) && &s[24..] == ".partial"
}

/// `IsBackupHistoryFileName`: exactly 24 leading upper-case hex digits, ending in `.backup`.
fn is_backup_history(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() > 24 && upper_hex(&b[..24]) && !upper_hex(&b[24..25]) && s.ends_with(".backup")
}

/// The cutoff segment named by `OLDEST_KEPT` (already stripped of `-x EXT`), as
/// `pg_archivecleanup`'s SetWALFileNameForCleanup takes it: a segment name, or
/// the 24-digit prefix of a `.partial` or `<segment>.<offset>.backup` name
/// (those sort after their own segment, so the full name would remove it).
pub fn cutoff_segment(name: &str) -> Option<String> {
    if is_segment(name) {
        return Some(name.to_owned());
    }
    let backup_with_offset = || {
        is_backup_history(name)
            && name.as_bytes()[24] == b'.'
            && name.as_bytes().get(25).is_some_and(u8::is_ascii_hexdigit)
    };
    (is_partial(name) || backup_with_offset()).then(|| name[..24].to_owned())
}

/// Parses a duration such as `7d`, `12h`, `30m`, `45s`, `2w` or `1d12h`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let bad = || {
        format!("invalid duration {text:?}: use a number with a unit, s, m, h, d or w (e.g. 7d, 12h, 1d12h)")
    };
    let mut total: u64 = 0;
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let n: u64 = rest[..digits].parse().map_err(|_| bad())?;
        let unit = rest[digits..].chars().next().ok_or_else(bad)?;
        let secs = match unit {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            'w' => 7 * 86_400,
            _ => return Err(bad()),
        };
        total = n
            .checked_mul(secs)
            .and_then(|s| total.checked_add(s))
            .ok_or_else(bad)?;
        rest = &rest[digits + unit.len_utf8()..];
    }
    Ok(Duration::from_secs(total))
}

/// The shortest text [`parse_duration`] reads back as `d` (whole seconds).
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (unit, size) in [
        ('w', 7 * 86_400),
        ('d', 86_400),
        ('h', 3600),
        ('m', 60),
        ('s', 1),
    ] {
        if secs >= size {
            out.push_str(&format!("{}{unit}", secs / size));
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const A: &str = "0000000100000037000000";

    #[test]
    fn cutoff_follows_pg_archivecleanup() {
        for (arg, cut) in [
            (format!("{A}0E"), Some(format!("{A}0E"))),
            (format!("{A}0E.partial"), Some(format!("{A}0E"))),
            (format!("{A}0E.00000020.backup"), Some(format!("{A}0E"))),
            (format!("{A}0e"), None),
            // pg_archivecleanup's sscanf reads the "b" of "backup" as the hex offset.
            (format!("{A}0E.backup"), Some(format!("{A}0E"))),
            (format!("{A}0E.xyz.backup"), None),
            (format!("{A}0E.history"), None),
            ("00000002.history".to_owned(), None),
            ("foo".to_owned(), None),
            (String::new(), None),
        ] {
            assert_eq!(cutoff_segment(&arg), cut, "{arg}");
        }
        assert_eq!(trim_extension("x.gz", Some(".gz")), "x");
        assert_eq!(trim_extension(".gz", Some(".gz")), ".gz");
        assert_eq!(trim_extension("x.gz", None), "x.gz");
    }

    #[test]
    fn family_names() {
        assert!(is_segment(&format!("{A}0D")));
        assert!(is_partial(&format!("{A}0D.partial")));
        assert!(is_backup_history(&format!("{A}0D.backup")));
        assert!(is_backup_history(&format!("{A}0D.00000028.backup")));
        assert!(!is_backup_history(&format!("{A}0D0.backup")));
        assert!(!is_segment("unrelated_file"));
        assert!(!is_partial(&format!("{A}0d.partial")));
    }

    #[test]
    fn backup_files_are_parsed_and_checked_against_their_name() {
        let text = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
                    STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n\
                    CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\n\
                    BACKUP FROM: primary\nSTART TIME: 2026-11-21 22:08:37 UTC\n\
                    LABEL: x\nSTART TIMELINE: 1\n";
        let name = "000000010000000000000002.00000028.backup";
        let b = parse_backup_file(name, text).unwrap();
        assert_eq!(b.start_segment, "000000010000000000000002");
        assert_eq!(b.start_lsn, 0x2000028);
        assert_eq!(b.start_time, "2026-11-21 22:08:37");
        assert!(parse_backup_file("000000010000000000000003.00000028.backup", text).is_err());
        assert!(parse_backup_file(
            name,
            &text.replace("START TIMELINE: 1", "START TIMELINE: 2")
        )
        .is_err());
        assert!(parse_backup_file(name, "LABEL: x\n").is_err());
    }

    #[test]
    fn newest_backups_keep_both_orders() {
        let b = |name: &str, lsn: u64, time: &str| Backup {
            name: name.into(),
            start_segment: name[..24].into(),
            start_lsn: lsn,
            start_time: time.into(),
        };
        let old = b(
            "000000010000000000000002.00000028.backup",
            0x2000028,
            "2026-01-01 00:00:00",
        );
        let tl1 = b(
            "000000010000000000000009.00000028.backup",
            0x9000028,
            "2026-01-03 00:00:00",
        );
        // A newer backup on a timeline that branched off before tl1's start.
        let tl2 = b(
            "000000020000000000000005.00000028.backup",
            0x5000028,
            "2026-01-04 00:00:00",
        );
        let kept = newest_backups(&[old.clone(), tl1.clone(), tl2.clone()], 1);
        let names: Vec<&str> = kept.iter().map(|k| k.name.as_str()).collect();
        assert_eq!(names, [tl2.name.as_str(), tl1.name.as_str()]);
        let kept = newest_backups(&[old.clone(), tl1.clone()], 1);
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0], tl1);
        assert_eq!(newest_backups(&[old.clone(), tl1.clone()], 5).len(), 2);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("7d"), Ok(Duration::from_secs(7 * 86_400)));
        assert_eq!(parse_duration("12h"), Ok(Duration::from_secs(12 * 3600)));
        assert_eq!(parse_duration("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_duration("1d12h"), Ok(Duration::from_secs(36 * 3600)));
        for bad in [
            "",
            " ",
            "7",
            "d",
            "7x",
            "-1d",
            "1.5h",
            "99999999999999999999w",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn durations_round_trip(secs in 0u64..(1u64 << 40)) {
            let d = Duration::from_secs(secs);
            prop_assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }

        #[test]
        fn duration_parser_never_panics(s in "\\PC{0,24}") {
            let _ = parse_duration(&s);
        }

        #[test]
        fn cutoff_is_always_a_segment_prefix(s in "[0-9A-Fa-f.a-z]{0,40}") {
            if let Some(cut) = cutoff_segment(&s) {
                prop_assert!(is_segment(&cut) && s.starts_with(&cut));
            }
        }
    }
}
