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

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use crate::codec::ReadError;
use crate::error::{Error, HistoryFileFault, Result};
use crate::repo::remote::StoreOptions;
use crate::repo::{Entry, Repository};
use crate::wal::backup_label::{self, BackupLabel};
use crate::wal::history::{self, Fork};
use crate::wal::name::{is_backup_history_file_name, SegmentName, WalName};
use crate::wal::timeline::Tree;

/// Files removed per call to the storage: S3's bulk delete takes at most 1000
/// keys, and a local batch fsyncs each directory once.
const BATCH: usize = 1000;

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

/// Removes what `settings` selects, printing dry-run names to `out`.
pub fn run(settings: &Settings, out: &mut dyn Write) -> Result<Report> {
    let local = local_path(&settings.location);
    // pg_archivecleanup checks the location before the name.
    if let Some(dir) = &local {
        if !fs::metadata(dir).is_ok_and(|m| m.is_dir()) {
            return Err(Error::NoArchiveLocation {
                location: settings.location.clone(),
            });
        }
    }
    let cutoff = match &settings.target {
        Target::OldestKept(name) => {
            let trimmed = trim_extension(name, settings.strip_extension.as_deref());
            Some(cutoff_segment(trimmed).ok_or_else(|| Error::InvalidCutoff(name.clone()))?)
        }
        Target::Retention { .. } => None,
    };
    let repo = Repository::open_with(&settings.location, &settings.store)?;
    let archive = match (repo.check_format(), local) {
        (Ok(()), _) => Archive::Layout(repo),
        (Err(Error::NotARepository { .. }), Some(dir)) => Archive::Plain { dir, repo },
        (Err(e), _) => return Err(e),
    };
    let cleaner = Cleaner {
        settings,
        archive,
        display_root: settings.location.clone(),
        histories: RefCell::default(),
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
    /// The WAL name, any `-x` extension stripped.
    name: String,
    /// The segment part of `name`: what the rule compares.
    segment: SegmentName,
    /// What to pass to the storage's delete.
    key: String,
    modified: Option<SystemTime>,
    is_backup: bool,
}

impl Candidate {
    /// A file `pg_archivecleanup` considers (its step 4): `name` (`-x` already
    /// stripped) is a segment, a `.partial` or a backup history file name.
    fn new(name: &str, key: String, modified: Option<SystemTime>) -> Option<Candidate> {
        let (segment, is_backup) = match name.parse::<WalName>() {
            Ok(WalName::Segment(s) | WalName::Partial(s)) => (s, false),
            _ if is_backup_history_file_name(name) => (SegmentName::parse_prefix(name)?, true),
            _ => return None,
        };
        Some(Candidate {
            name: name.to_owned(),
            segment,
            key,
            modified,
            is_backup,
        })
    }

    /// Position in WAL (log and seg parts), then timeline, then the name's suffix.
    fn order(&self) -> (u32, u32, u32, &str) {
        let s = self.segment;
        (s.log, s.seg, s.timeline, &self.name)
    }
}

/// `pg_archivecleanup`'s rule, `strcmp(name + 8, cutoff + 8) < 0`: the names are
/// upper-case hex of fixed width, so this compares the log and seg parts as
/// numbers, timeline ignored; a longer name in the cutoff's segment sorts after it.
fn before(segment: SegmentName, cutoff: SegmentName) -> bool {
    (segment.log, segment.seg) < (cutoff.log, cutoff.seg)
}

/// A base backup, from its archived `.backup` file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Backup {
    /// The `.backup` file name.
    name: String,
    label: BackupLabel,
    /// `YYYY-MM-DD HH:MM:SS` of START TIME (the zone dropped), for ordering.
    start_time: String,
}

struct Cleaner<'a> {
    settings: &'a Settings,
    archive: Archive,
    display_root: String,
    /// The timeline history files listed (for retention): timeline -> key.
    histories: RefCell<BTreeMap<u32, String>>,
}

impl Cleaner<'_> {
    fn run(&self, cutoff: Option<SegmentName>, out: &mut dyn Write) -> Result<Report> {
        // %r = 000000000000000000000000 (cleanup disabled) removes nothing: don't even list.
        if let Some(c) = cutoff.filter(|c| c.log == 0 && c.seg == 0) {
            tracing::debug!("nothing sorts before {c}: nothing to remove");
            return Ok(Report::default());
        }
        let all = self.list()?;
        let (cutoff, older_than) = match (cutoff, &self.settings.target) {
            (Some(cutoff), _) => (cutoff, None),
            (
                None,
                Target::Retention {
                    retain_backups,
                    older_than,
                },
            ) => (self.retention_cutoff(&all, *retain_backups)?, *older_than),
            // `run` gives every OLDEST_KEPT its cutoff; without one, remove nothing.
            (None, Target::OldestKept(name)) => {
                return Err(Error::InvalidCutoff(name.clone()));
            }
        };
        tracing::debug!(
            "keeping WAL file \"{}\" and later",
            self.display(&self.cut_display(cutoff))
        );
        let mut selected: Vec<Candidate> = all
            .into_iter()
            .filter(|c| !c.is_backup || self.settings.clean_backup_history)
            .filter(|c| before(c.segment, cutoff))
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
            if let Some(keep_from) = selected.iter().position(|c| !old_enough(c)) {
                if let Some(first_kept) = selected.get(keep_from) {
                    tracing::debug!(
                        "keeping \"{}\" and later: archived less than {} ago",
                        self.display(&first_kept.key),
                        format_duration(age)
                    );
                }
                selected.truncate(keep_from);
            }
        }
        self.remove(&selected, out)
    }

    /// How the cutoff appears in the "keeping" message: as pg_archivecleanup
    /// prints it for a plain directory, at its layout key for a repository.
    fn cut_display(&self, cutoff: SegmentName) -> String {
        match &self.archive {
            Archive::Plain { .. } => cutoff.to_string(),
            Archive::Layout(_) => Repository::key(&WalName::Segment(cutoff)),
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
    /// `.backup`), listed once; in a plain directory the timeline history files
    /// seen on the way go to `histories`.
    fn list(&self) -> Result<Vec<Candidate>> {
        let ext = self.settings.strip_extension.as_deref();
        match &self.archive {
            Archive::Layout(repo) => {
                let mut found = Vec::new();
                for listed in repo.list("wal/")? {
                    let Entry::Wal(name) = Repository::classify(&listed.key) else {
                        continue;
                    };
                    if let WalName::History { .. } = name {
                        continue;
                    }
                    // The name is checked again once `-x` is stripped, as
                    // pg_archivecleanup does: `-x 0000000000000002` turns
                    // `…0002` into `00000001`, which is no WAL name (issue 13).
                    let base = name.to_string();
                    let candidate =
                        Candidate::new(trim_extension(&base, ext), listed.key, listed.modified);
                    found.extend(candidate);
                }
                Ok(found)
            }
            Archive::Plain { dir, .. } => {
                let list_error = |source| Error::ListLocation {
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
                    if let Ok(WalName::History { timeline }) = name.parse() {
                        self.histories.borrow_mut().insert(timeline, file.clone());
                    }
                    let Some(mut candidate) = Candidate::new(name, file.clone(), None) else {
                        continue;
                    };
                    if need_times {
                        candidate.modified = entry.metadata().ok().and_then(|m| m.modified().ok());
                    }
                    found.push(candidate);
                }
                Ok(found)
            }
        }
    }

    /// The oldest start segment among the retained backups: the newest `keep`
    /// of those that can reach the newest timeline (the highest archived in a
    /// name), found from its history file ([`Tree::reaches`]). Backups on an
    /// abandoned branch do not count; when none can reach it, nothing is removed.
    fn retention_cutoff(&self, all: &[Candidate], keep: u32) -> Result<SegmentName> {
        let mut backups = Vec::new();
        for c in all.iter().filter(|c| c.is_backup) {
            backups.push(self.read_backup(c)?);
        }
        if backups.is_empty() {
            return Err(Error::NoBackupHistory {
                location: self.display_root.clone(),
            });
        }
        if let Archive::Layout(repo) = &self.archive {
            for listed in repo.list("history/")? {
                if let Entry::Wal(WalName::History { timeline }) = Repository::classify(&listed.key)
                {
                    self.histories.borrow_mut().insert(timeline, listed.key);
                }
            }
        }
        let histories = self.histories.borrow().clone();
        let newest = all
            .iter()
            .map(|c| c.segment.timeline)
            .chain(histories.keys().copied())
            .max()
            .unwrap_or(1);
        let tree = self.timeline_tree(newest, &histories)?;
        let (reaching, abandoned): (Vec<Backup>, Vec<Backup>) = backups
            .into_iter()
            .partition(|b| tree.reaches(&b.label, newest).is_ok());
        // Each unreachable backup with why: the reason names its timeline.
        let describe = |b: &Backup| match tree.reaches(&b.label, newest) {
            Err(why) => format!("{} ({why})", b.name),
            Ok(()) => b.name.clone(),
        };
        for b in &abandoned {
            tracing::info!(
                "base backup {} does not count toward the {keep} to retain",
                describe(b)
            );
        }
        if reaching.is_empty() {
            return Err(Error::NoRestorableBackup {
                timeline: newest,
                backups: abandoned.iter().map(describe).collect(),
            });
        }
        let retained = newest_backups(&reaching, keep as usize);
        if reaching.len() < keep as usize {
            tracing::info!(
                "only {} base backup(s) can reach timeline {newest}, fewer than the {keep} to retain: keeping all of them",
                reaching.len()
            );
        }
        for b in &retained {
            tracing::debug!(
                "retaining base backup {} (started {} at {} on timeline {})",
                b.name,
                b.start_time,
                b.label.start,
                b.label.timeline()
            );
        }
        // The oldest start position, timeline ignored as the rule ignores it.
        retained
            .iter()
            .map(|b| b.label.start_segment)
            .min_by_key(|s| (s.log, s.seg))
            .ok_or_else(|| Error::NoBackupHistory {
                location: self.display_root.clone(),
            })
    }

    /// The ancestry of timeline `newest`, from its own history file (which
    /// lists every ancestor). Timeline 1 has none and needs none.
    fn timeline_tree(&self, newest: u32, histories: &BTreeMap<u32, String>) -> Result<Tree> {
        if newest <= 1 {
            return Ok(Tree::default());
        }
        let name = WalName::History { timeline: newest }.to_string();
        let bad = |fault: HistoryFileFault| Error::BadTimelineHistory {
            name: name.clone(),
            timeline: newest,
            fault,
        };
        let key = histories
            .get(&newest)
            .ok_or_else(|| bad(HistoryFileFault::Missing))?;
        let text = self.read_small(&name, key, history::MAX_LEN, &bad)?;
        let forks: Vec<Fork> =
            history::parse(newest, &text).map_err(|e| bad(HistoryFileFault::Timeline(e)))?;
        Ok(Tree::new(&BTreeMap::from([(newest, forks)])))
    }

    /// Reads a small metadata file (`.backup`, `.history`) whose parser takes
    /// at most `max` bytes: one more is read, so that the parser sees a file too
    /// large. Damage is an error of the file (`bad`), any other failure the
    /// storage's.
    fn read_small(
        &self,
        name: &str,
        key: &str,
        max: usize,
        bad: &dyn Fn(HistoryFileFault) -> Error,
    ) -> Result<Vec<u8>> {
        match &self.archive {
            Archive::Layout(repo) => {
                let name: WalName = name.parse()?;
                let damaged = |e: Error| match e {
                    Error::Corrupt { source, .. } => {
                        bad(HistoryFileFault::Read(ReadError::Codec(source)))
                    }
                    e => e,
                };
                let stored = repo
                    .open_stored(&name, None)
                    .map_err(damaged)?
                    .ok_or_else(|| bad(HistoryFileFault::Vanished))?;
                stored.read_head(max.saturating_add(1)).map_err(damaged)
            }
            Archive::Plain { dir, .. } => {
                let mut bytes = Vec::new();
                fs::File::open(dir.join(key))
                    .and_then(|f| f.take(max as u64 + 1).read_to_end(&mut bytes))
                    .map_err(|e| bad(HistoryFileFault::Read(ReadError::Io(e))))?;
                Ok(bytes)
            }
        }
    }

    fn read_backup(&self, c: &Candidate) -> Result<Backup> {
        let bad = |fault: HistoryFileFault| Error::BadBackupHistory {
            name: c.name.clone(),
            fault,
        };
        let text = self.read_small(&c.name, &c.key, backup_label::MAX_LEN, &bad)?;
        let label = BackupLabel::parse(&text)
            .and_then(|l| l.check_name(c.segment, &c.name).map(|()| l))
            .map_err(|e| bad(HistoryFileFault::Backup(e)))?;
        Ok(Backup {
            name: c.name.clone(),
            start_time: label
                .start_time
                .as_deref()
                .map(|t| t.chars().take(19).collect())
                .unwrap_or_default(),
            label,
        })
    }

    /// Removes `selected` (already in order), oldest first, in batches.
    fn remove(&self, selected: &[Candidate], out: &mut dyn Write) -> Result<Report> {
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
    by_time.sort_by(|a, b| (&b.start_time, b.label.start).cmp(&(&a.start_time, a.label.start)));
    let mut by_lsn: Vec<&Backup> = backups.iter().collect();
    by_lsn.sort_by(|a, b| (b.label.start, &b.start_time).cmp(&(a.label.start, &a.start_time)));
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

/// `pg_archivecleanup`'s TrimExtension: drop `ext` when the name is longer and ends with it.
pub fn trim_extension<'a>(name: &'a str, ext: Option<&str>) -> &'a str {
    match ext {
        Some(ext) if name.len() > ext.len() => name.strip_suffix(ext).unwrap_or(name),
        _ => name,
    }
}

/// The cutoff segment named by `OLDEST_KEPT` (already stripped of `-x EXT`), as
/// `pg_archivecleanup`'s SetWALFileNameForCleanup takes it: a segment name, or
/// the 24-digit prefix of a `.partial` or `<segment>.<offset>.backup` name
/// (those sort after their own segment, so the full name would remove it).
pub fn cutoff_segment(name: &str) -> Option<SegmentName> {
    if let Ok(WalName::Segment(s) | WalName::Partial(s)) = name.parse::<WalName>() {
        return Some(s);
    }
    // pg_archivecleanup's sscanf wants a dot and a hex digit after the segment
    // (it reads the "b" of a bare ".backup" as one).
    let dot_hex = matches!(name.as_bytes().get(24..26), Some([b'.', h]) if h.is_ascii_hexdigit());
    (dot_hex && is_backup_history_file_name(name))
        .then(|| SegmentName::parse_prefix(name))
        .flatten()
}

/// A `--older-than` value that is not a duration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: use a number with a unit, s, m, h, d or w (e.g. 7d, 12h, 1d12h)")]
pub struct InvalidDuration(pub String);

/// Parses a duration such as `7d`, `12h`, `30m`, `45s`, `2w` or `1d12h`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, InvalidDuration> {
    let bad = || InvalidDuration(text.to_owned());
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
        let (number, after) = rest.split_at_checked(digits).ok_or_else(bad)?;
        let n: u64 = number.parse().map_err(|_| bad())?;
        let mut after = after.chars();
        let unit = after.next().ok_or_else(bad)?;
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
        rest = after.as_str();
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
    use crate::wal::lsn::Lsn;
    use proptest::prelude::*;

    const A: &str = "0000000100000037000000";

    #[test]
    fn cutoff_follows_pg_archivecleanup() {
        for (arg, cut) in [
            (format!("{A}0E"), Some(format!("{A}0E"))),
            (format!("{A}0E.partial"), Some(format!("{A}0E"))),
            (format!("{A}0E.00000020.backup"), Some(format!("{A}0E"))),
            (format!("{A}0e"), None),
            (format!("{A}0E\u{e9}"), None),
            (format!("{A}0\u{e9}.backup"), None),
            // pg_archivecleanup's sscanf reads the "b" of "backup" as the hex offset.
            (format!("{A}0E.backup"), Some(format!("{A}0E"))),
            (format!("{A}0E.xyz.backup"), None),
            (format!("{A}0E.history"), None),
            ("00000002.history".to_owned(), None),
            ("foo".to_owned(), None),
            (String::new(), None),
        ] {
            assert_eq!(cutoff_segment(&arg).map(|s| s.to_string()), cut, "{arg}");
        }
        assert_eq!(trim_extension("x.gz", Some(".gz")), "x");
        assert_eq!(trim_extension(".gz", Some(".gz")), ".gz");
        assert_eq!(trim_extension("x.gz", None), "x.gz");
    }

    #[test]
    fn candidates_are_what_pg_archivecleanup_considers() {
        let is = |name: &str| Candidate::new(name, name.to_owned(), None).map(|c| c.is_backup);
        assert_eq!(is(&format!("{A}0D")), Some(false));
        assert_eq!(is(&format!("{A}0D.partial")), Some(false));
        assert_eq!(is(&format!("{A}0D.backup")), Some(true));
        assert_eq!(is(&format!("{A}0D.00000028.backup")), Some(true));
        for not in [
            format!("{A}0D0.backup"),
            format!("{A}0d.partial"),
            "unrelated_file".to_owned(),
            "00000001".to_owned(),
            "00000002.history".to_owned(),
            String::new(),
        ] {
            assert_eq!(is(&not), None, "{not:?}");
        }
        let cut = cutoff_segment(&format!("{A}0E")).unwrap();
        let c = |n: &str| Candidate::new(n, n.to_owned(), None).unwrap().segment;
        assert!(before(c(&format!("{A}0D.partial")), cut));
        assert!(
            before(c("00000002000000370000000D"), cut),
            "timeline ignored"
        );
        assert!(!before(c(&format!("{A}0E.00000028.backup")), cut));
        assert!(!before(c(&format!("{A}0F")), cut));
    }

    #[test]
    fn newest_backups_keep_both_orders() {
        let b = |name: &str, lsn: u64, time: &str| Backup {
            name: name.into(),
            label: BackupLabel {
                start: Lsn(lsn),
                start_segment: SegmentName::parse_prefix(name).unwrap(),
                stop: Lsn(lsn + 0x100),
                start_timeline: None,
                label: String::new(),
                start_time: Some(time.into()),
                stop_time: None,
            },
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
        assert_eq!(
            parse_duration("2w3s"),
            Ok(Duration::from_secs(14 * 86_400 + 3))
        );
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
            "1\u{e9}",
            "1d\u{e9}",
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
        fn cutoff_is_always_a_segment_prefix(s in "[0-9A-Fa-f.a-z]{0,40}|\\PC{0,40}") {
            if let Some(cut) = cutoff_segment(&s) {
                prop_assert!(s.starts_with(&cut.to_string()));
            }
        }

        #[test]
        fn any_stripped_extension_leaves_candidates_well_formed(name in "[0-9A-F]{24}(\\.partial|\\.[0-9A-F]{8}\\.backup)?", ext in "\\PC{0,30}") {
            // Issue 13: -x may eat into a WAL name; what remains is checked again.
            let trimmed = trim_extension(&name, Some(&ext));
            if let Some(c) = Candidate::new(trimmed, name.clone(), None) {
                prop_assert!(c.name.starts_with(&c.segment.to_string()));
                let _ = c.order();
            }
        }
    }
}
