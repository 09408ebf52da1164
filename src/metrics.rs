//! The metrics file: a Prometheus text-format file for node_exporter's textfile
//! collector, updated by every archive, restore, cleanup and verify run that is
//! given one (`metrics_file`, `--metrics-file`; `docs/metrics.md` names every
//! series).
//!
//! A run merges its own series into the file. Under an exclusive lock on the
//! sibling `NAME.lock` it reads the file (at most [`MAX_FILE_BYTES`]), keeps the
//! series of uxwal's families found there, adds or replaces its own, and writes
//! the result to a staging file (`durable`; its name does not end in `.prom`,
//! so the collector skips it) that it renames over the file: the collector only
//! ever reads a whole file. Metrics report on the work and are not part of it: a
//! file that cannot be written costs a warning, never a different exit status.
//!
//! The directory must not be writable by every user (a neighbour could hold the
//! lock or plant files): such a directory is refused with a warning.

// Parses a file from outside: no indexing that could panic on it.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use rustix::fs::{Mode, OFlags};

use crate::commands::archive::Archived;
use crate::commands::restore::RestoreOutcome;
use crate::commands::{cleanup, verify};
use crate::durable;
use crate::error::Result;

/// Largest metrics file read back; a bigger one is replaced, not merged.
pub const MAX_FILE_BYTES: u64 = 1 << 20;
/// Most series kept from the file (each run adds a few per repository).
const MAX_SERIES: usize = 10_000;
/// Longest wait for another writer's lock before giving up on this update.
const LOCK_WAIT: Duration = Duration::from_secs(2);
/// Mode of the metrics file: the collector runs as another user.
const FILE_MODE: u32 = 0o644;
/// Most `archive_status` entries looked at for the ready-file gauges.
const MAX_STATUS_ENTRIES: usize = 100_000;

/// uxwal's metric families: name, type and help, in the order written.
const FAMILIES: &[(&str, &str, &str)] = &[
    ("uxwal_runs_total", "counter", "Runs by command, repository and result (success, failure, not_found)."),
    ("uxwal_last_success_timestamp_seconds", "gauge", "When the last successful run ended, in Unix time."),
    ("uxwal_last_failure_timestamp_seconds", "gauge", "When the last failed run ended, in Unix time."),
    ("uxwal_last_duration_seconds", "gauge", "How long the last run took, whatever its result."),
    ("uxwal_original_bytes_total", "counter", "Bytes of the WAL files archived or restored."),
    ("uxwal_stored_bytes_total", "counter", "Bytes of their stored objects (restore: read from the repository, 0 when served from the prefetch spool)."),
    ("uxwal_archive_ready_files", "gauge", "Files marked ready for archiving (archive_status/*.ready) when the last archive call ran, its own included."),
    ("uxwal_archive_oldest_ready_age_seconds", "gauge", "Age of the oldest of those files (0 when there were none)."),
    ("uxwal_cleanup_removed_files_total", "counter", "Files uxwal-cleanup removed from the repository."),
    ("uxwal_verify_problems", "gauge", "Problems the last uxwal-verify run found."),
    ("uxwal_verify_gaps", "gauge", "Gaps (runs of missing segments) the last uxwal-verify run found."),
    ("uxwal_verify_missing_segments", "gauge", "Segments missing inside the archived ranges, by the last uxwal-verify run."),
    ("uxwal_verify_backups", "gauge", "Base backups the last uxwal-verify run found."),
    ("uxwal_verify_restorable_backups", "gauge", "Of those, the ones restorable to the latest archived WAL."),
];

/// How a run ended, as the `result` label says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Failure,
    /// Restore only: the file is not in the archive (the end of a recovery).
    NotFound,
}

impl Outcome {
    fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Failure => "failure",
            Outcome::NotFound => "not_found",
        }
    }
}

/// One run of a command, timed from its start; its `record_*` method writes
/// the metrics file when one is configured.
pub struct Run {
    command: &'static str,
    started: Instant,
}

/// Series keyed by family and rendered labels.
type Series = BTreeMap<(String, String), f64>;

/// The updates one run makes.
#[derive(Default)]
struct Update {
    set: Vec<(&'static str, String, f64)>,
    add: Vec<(&'static str, String, f64)>,
}

impl Run {
    /// Starts timing a run of `command` (`archive`, `restore`, `cleanup`, `verify`).
    pub fn start(command: &'static str) -> Run {
        Run {
            command,
            started: Instant::now(),
        }
    }

    /// Records an archive call of the file `wal_name` at `wal_path` into `repos`.
    pub fn record_archive(
        self,
        file: Option<&Path>,
        repos: &[String],
        (wal_path, wal_name): (&Path, &str),
        outcome: &Result<Archived>,
    ) {
        let Some(file) = file else { return };
        let mut update = Update::default();
        match outcome {
            Ok(archived) => {
                for (i, repo) in repos.iter().enumerate() {
                    // A repository owed the copy (`require`) did not get the file.
                    if archived.owed.contains(&i) {
                        self.result(&mut update, repo, Outcome::Failure);
                        continue;
                    }
                    let stored = archived.stored_sizes.get(i).copied().unwrap_or(0);
                    self.result(&mut update, repo, Outcome::Success);
                    self.bytes(&mut update, repo, archived.size, stored);
                }
            }
            Err(_) => self.each(&mut update, repos, Outcome::Failure),
        }
        let wal_dir = match wal_path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => dir,
            _ => Path::new("."),
        };
        if let Some((count, oldest)) = ready_files(&wal_dir.join("archive_status")) {
            let age = oldest
                .and_then(|t| SystemTime::now().duration_since(t).ok())
                .map_or(0.0, |d| d.as_secs_f64());
            update
                .set
                .push(("uxwal_archive_ready_files", String::new(), count as f64));
            update
                .set
                .push(("uxwal_archive_oldest_ready_age_seconds", String::new(), age));
        }
        write_logged(file, &update, Some(wal_name));
    }

    /// Records a restore call of `wal_name` that read from `repos`.
    pub fn record_restore(
        self,
        file: Option<&Path>,
        repos: &[String],
        wal_name: &str,
        outcome: &Result<RestoreOutcome>,
    ) {
        let Some(file) = file else { return };
        let mut update = Update::default();
        match outcome {
            Ok(RestoreOutcome::Restored(served)) => {
                self.result(&mut update, &served.repository, Outcome::Success);
                self.bytes(
                    &mut update,
                    &served.repository,
                    served.bytes,
                    served.stored_bytes,
                );
            }
            Ok(RestoreOutcome::NotInArchive) => self.each(&mut update, repos, Outcome::NotFound),
            Err(_) => self.each(&mut update, repos, Outcome::Failure),
        }
        write_logged(file, &update, Some(wal_name));
    }

    /// Records a cleanup run of `location` (a dry run is not recorded).
    pub fn record_cleanup(
        self,
        file: Option<&Path>,
        location: &str,
        outcome: &Result<cleanup::Report>,
    ) {
        let Some(file) = file else { return };
        let mut update = Update::default();
        match outcome {
            Ok(report) => {
                let result = match report.failed {
                    0 => Outcome::Success,
                    _ => Outcome::Failure,
                };
                self.result(&mut update, location, result);
                let labels = labels(&[("repository", location)]);
                let removed = report.removed as f64;
                update
                    .add
                    .push(("uxwal_cleanup_removed_files_total", labels, removed));
            }
            Err(_) => self.result(&mut update, location, Outcome::Failure),
        }
        write_logged(file, &update, None);
    }

    /// Records a verify run of `location`: a run that found problems is a failure.
    pub fn record_verify(
        self,
        file: Option<&Path>,
        location: &str,
        outcome: &Result<verify::report::Report>,
    ) {
        let Some(file) = file else { return };
        let mut update = Update::default();
        match outcome {
            Ok(report) => {
                let result = match report.ok {
                    true => Outcome::Success,
                    false => Outcome::Failure,
                };
                self.result(&mut update, location, result);
                let gaps: usize = report.timelines.iter().map(|t| t.gaps.len()).sum();
                let restorable = report
                    .backups
                    .iter()
                    .filter(|b| b.restorable_to_latest)
                    .count();
                let labels = labels(&[("repository", location)]);
                for (family, value) in [
                    ("uxwal_verify_problems", report.summary.problems as f64),
                    ("uxwal_verify_gaps", gaps as f64),
                    (
                        "uxwal_verify_missing_segments",
                        report.summary.missing_segments as f64,
                    ),
                    ("uxwal_verify_backups", report.backups.len() as f64),
                    ("uxwal_verify_restorable_backups", restorable as f64),
                ] {
                    update.set.push((family, labels.clone(), value));
                }
            }
            Err(_) => self.result(&mut update, location, Outcome::Failure),
        }
        write_logged(file, &update, None);
    }

    fn each(&self, update: &mut Update, repos: &[String], outcome: Outcome) {
        for repo in repos {
            self.result(update, repo, outcome);
        }
        if repos.is_empty() {
            self.result(update, "", outcome);
        }
    }

    /// The run's count, duration and, unless "not found", its timestamp.
    fn result(&self, update: &mut Update, repo: &str, outcome: Outcome) {
        let repo = &label_location(repo);
        let series = labels(&[("command", self.command), ("repository", repo)]);
        let counted = labels(&[
            ("command", self.command),
            ("repository", repo),
            ("result", outcome.label()),
        ]);
        update.add.push(("uxwal_runs_total", counted, 1.0));
        let elapsed = self.started.elapsed().as_secs_f64();
        update
            .set
            .push(("uxwal_last_duration_seconds", series.clone(), elapsed));
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        match outcome {
            Outcome::Success => {
                update
                    .set
                    .push(("uxwal_last_success_timestamp_seconds", series, now))
            }
            Outcome::Failure => {
                update
                    .set
                    .push(("uxwal_last_failure_timestamp_seconds", series, now))
            }
            Outcome::NotFound => {}
        }
    }

    fn bytes(&self, update: &mut Update, repo: &str, original: u64, stored: u64) {
        let repo = &label_location(repo);
        let series = labels(&[("command", self.command), ("repository", repo)]);
        update.add.push((
            "uxwal_original_bytes_total",
            series.clone(),
            original as f64,
        ));
        update
            .add
            .push(("uxwal_stored_bytes_total", series, stored as f64));
    }
}

/// A repository location as a label value: without what a URL may carry
/// beside the place (user information, a query such as a SAS token).
fn label_location(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_owned();
    };
    let rest = rest.split(['?', '#']).next().unwrap_or_default();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let host = authority.rsplit('@').next().unwrap_or_default();
    format!("{scheme}://{host}{path}")
}

/// Rendered labels, in the order given (uxwal's own are in name order, as
/// [`parse`] sorts what it reads): `{a="x",b="y"}` (empty: none).
fn labels(pairs: &[(&str, &str)]) -> String {
    if pairs.is_empty() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"");
        for c in value.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                c => out.push(c),
            }
        }
        out.push('"');
    }
    out.push('}');
    out
}

/// The label pairs of `text` (`{...}` as in the exposition format), or `None`
/// when it is not well formed.
fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let inner = text.strip_prefix('{')?.strip_suffix('}')?;
    let mut pairs = Vec::new();
    let mut chars = inner.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        let name = name.trim_start_matches([',', ' ']).to_owned();
        if name.is_empty() {
            return chars.next().is_none().then_some(pairs);
        }
        if !valid_name(&name) || chars.next() != Some('=') || chars.next() != Some('"') {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '"' => break,
                '\\' => match chars.next()? {
                    'n' => value.push('\n'),
                    c @ ('\\' | '"') => value.push(c),
                    _ => return None,
                },
                c => value.push(c),
            }
        }
        pairs.push((name, value));
        match chars.next() {
            None => return Some(pairs),
            Some(',') => {}
            Some(_) => return None,
        }
    }
}

/// A metric or label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The series of uxwal's families in `text`; anything else (other families,
/// malformed lines) is dropped.
fn parse(text: &str) -> Series {
    let mut series = Series::new();
    for line in text.lines() {
        if series.len() >= MAX_SERIES {
            break;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let (name, rest) = line.split_at(name_end);
        if !FAMILIES.iter().any(|(family, _, _)| *family == name) {
            continue;
        }
        let (label_text, value) = match rest.strip_prefix('{') {
            Some(_) => match rest.rfind('}') {
                Some(end) => rest.split_at(end + 1),
                None => continue,
            },
            None => ("", rest),
        };
        let rendered = match label_text {
            "" => String::new(),
            text => match parse_labels(text) {
                // Sorted, as uxwal writes them, so that one series has one
                // spelling; a label given twice is not a series.
                Some(mut pairs) => {
                    pairs.sort();
                    if pairs.windows(2).any(|w| matches!(w, [a, b] if a.0 == b.0)) {
                        continue;
                    }
                    let pairs: Vec<(&str, &str)> = pairs
                        .iter()
                        .map(|(n, v)| (n.as_str(), v.as_str()))
                        .collect();
                    labels(&pairs)
                }
                None => continue,
            },
        };
        let Some(Ok(value)) = value.split_whitespace().next().map(str::parse::<f64>) else {
            continue;
        };
        if value.is_finite() {
            series.insert((name.to_owned(), rendered), value);
        }
    }
    series
}

/// What the `metrics_file` fuzz target asserts: parsing `text` keeps at most
/// [`MAX_SERIES`] series, and what it keeps renders to text that parses back
/// the same.
#[cfg(any(fuzzing, test))]
pub(crate) fn check_round_trip(text: &str) {
    let series = parse(text);
    assert!(series.len() <= MAX_SERIES);
    assert_eq!(parse(&render(&series)), series, "{text:?}");
}

/// `series` in the exposition format, family by family.
fn render(series: &Series) -> String {
    let mut out = String::new();
    for (family, kind, help) in FAMILIES {
        let mut members = series
            .range((family.to_string(), String::new())..)
            .take_while(|((f, _), _)| f == family)
            .peekable();
        if members.peek().is_none() {
            continue;
        }
        let _ = writeln!(out, "# HELP {family} {help}");
        let _ = writeln!(out, "# TYPE {family} {kind}");
        for ((_, labels), value) in members {
            let _ = writeln!(out, "{family}{labels} {value}");
        }
    }
    out
}

fn apply(series: &mut Series, update: &Update) {
    for (family, labels, value) in &update.set {
        series.insert((family.to_string(), labels.clone()), *value);
    }
    for (family, labels, value) in &update.add {
        *series
            .entry((family.to_string(), labels.clone()))
            .or_insert(0.0) += value;
    }
}

/// The count of `*.ready` files in `status_dir` and the oldest one's time;
/// `None` when the directory cannot be read.
fn ready_files(status_dir: &Path) -> Option<(usize, Option<SystemTime>)> {
    let mut count = 0;
    let mut oldest: Option<SystemTime> = None;
    for entry in std::fs::read_dir(status_dir).ok()?.take(MAX_STATUS_ENTRIES) {
        let Ok(entry) = entry else { continue };
        if !entry.file_name().as_encoded_bytes().ends_with(b".ready") {
            continue;
        }
        count += 1;
        if let Ok(modified) = entry.metadata().and_then(|m| m.modified()) {
            oldest = Some(oldest.map_or(modified, |o| o.min(modified)));
        }
    }
    Some((count, oldest))
}

/// [`write`], a failure logged as a warning (naming the WAL file of the run, if any).
fn write_logged(file: &Path, update: &Update, wal_name: Option<&str>) {
    if let Err(e) = write(file, update) {
        let file = file.display();
        match wal_name {
            Some(wal) => tracing::warn!("{wal}: metrics file {file} not updated: {e}"),
            None => tracing::warn!("metrics file {file} not updated: {e}"),
        }
    }
}

/// Merges `update` into the metrics file `file` (see the module documentation).
fn write(file: &Path, update: &Update) -> io::Result<()> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidInput, what.to_owned());
    if !file.is_absolute() {
        return Err(invalid("the path must be absolute"));
    }
    let (Some(dir), Some(name)) = (file.parent(), file.file_name().and_then(|n| n.to_str())) else {
        return Err(invalid("the path must name a file"));
    };
    let dir: OwnedFd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    if rustix::fs::fstat(&dir)?.st_mode & 0o002 != 0 {
        return Err(invalid("its directory is writable by every user"));
    }
    let _lock = lock(&dir, &format!("{name}.lock"))?;
    let mut series = read(&dir, name)?;
    apply(&mut series, update);
    let mut staged = durable::StagedAt::create(dir.as_fd(), name)?;
    rustix::fs::fchmod(staged.file(), Mode::from_raw_mode(FILE_MODE))?;
    staged.write_all(render(&series).as_bytes())?;
    staged.publish_replace_at(dir.as_fd(), name)
}

/// Takes the exclusive writer lock `lock_name` in `dir`, waiting at most [`LOCK_WAIT`].
fn lock(dir: &OwnedFd, lock_name: &str) -> io::Result<File> {
    let lock = File::from(rustix::fs::openat(
        dir,
        lock_name,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(durable::FILE_MODE),
    )?);
    let deadline = Instant::now() + LOCK_WAIT;
    loop {
        match lock.try_lock() {
            Ok(()) => return Ok(lock),
            Err(std::fs::TryLockError::WouldBlock) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "another writer holds its lock",
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(e),
        }
    }
}

/// The series in the metrics file `name` of `dir` (none when it is absent, too
/// big or not a regular file).
fn read(dir: &OwnedFd, name: &str) -> io::Result<Series> {
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK;
    let fd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(Series::new()),
        Err(e) => return Err(e.into()),
    };
    let stat = rustix::fs::fstat(&fd)?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "it is not a regular file",
        ));
    }
    let mut bytes = Vec::new();
    File::from(fd)
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        tracing::warn!(
            "metrics file {name} is larger than {MAX_FILE_BYTES} bytes; starting it afresh"
        );
        return Ok(Series::new());
    }
    Ok(parse(&String::from_utf8_lossy(&bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_escape_and_parse_back() {
        let rendered = labels(&[("command", "archive"), ("repository", "a\"b\\c\nd")]);
        assert_eq!(rendered, r#"{command="archive",repository="a\"b\\c\nd"}"#);
        let pairs = parse_labels(&rendered).unwrap();
        assert_eq!(pairs[1].1, "a\"b\\c\nd");
        for bad in [
            r#"{a="x"#,
            r#"{a=x}"#,
            r#"{1a="x"}"#,
            r#"{a="\q"}"#,
            r#"{a="x"b="y"}"#,
        ] {
            assert_eq!(parse_labels(bad), None, "{bad}");
        }
        assert_eq!(parse_labels("{}"), Some(vec![]));
    }

    #[test]
    fn merging_keeps_uxwal_series_and_drops_the_rest() {
        let text = "# HELP x y\nother_metric 3\nuxwal_runs_total{command=\"archive\",repository=\"/r\",result=\"success\"} 41\n\
                    uxwal_runs_total{broken 1\nuxwal_verify_gaps NaN\nuxwal_archive_ready_files 7 1700000000\n";
        let mut series = parse(text);
        assert_eq!(series.len(), 2, "{series:?}");
        let key = labels(&[
            ("command", "archive"),
            ("repository", "/r"),
            ("result", "success"),
        ]);
        let update = Update {
            add: vec![("uxwal_runs_total", key.clone(), 1.0)],
            set: vec![("uxwal_archive_ready_files", String::new(), 2.0)],
        };
        apply(&mut series, &update);
        let out = render(&series);
        assert!(
            out.contains(&format!("uxwal_runs_total{key} 42\n")),
            "{out}"
        );
        assert!(out.contains("uxwal_archive_ready_files 2\n"), "{out}");
        assert_eq!(out.matches("# TYPE uxwal_runs_total counter").count(), 1);
        assert!(!out.contains("other_metric"));
        assert_eq!(parse(&out), series, "what is written reads back the same");
    }

    #[test]
    fn one_series_has_one_spelling() {
        let text = "uxwal_verify_gaps{repository=\"/r\",command=\"verify\"} 1\n\
                    uxwal_verify_gaps{command=\"verify\",repository=\"/r\"} 2\n\
                    uxwal_verify_gaps{a=\"1\",a=\"2\"} 3\n";
        let series = parse(text);
        let key = labels(&[("command", "verify"), ("repository", "/r")]);
        assert_eq!(series.len(), 1, "{series:?}");
        assert_eq!(series[&("uxwal_verify_gaps".to_string(), key)], 2.0);
    }

    proptest::proptest! {
        #[test]
        fn any_text_reads_back_as_it_is_written(
            lines in proptest::collection::vec(
                "(uxwal_runs_total|uxwal_verify_gaps|other)(\\{[a-z_]{0,3}=\"[a-z\\\\\"}{ ,n]{0,6}\"(,[a-z]=\"x\")?,?\\})? ?[-+0-9.eInfa]{0,8}( [0-9]{0,4})?",
                0..20,
            )
        ) {
            check_round_trip(&lines.join("\n"));
        }
    }

    #[test]
    fn locations_lose_credentials_and_queries() {
        assert_eq!(label_location("/mnt/wal"), "/mnt/wal");
        assert_eq!(label_location("s3://bucket/pre/fix"), "s3://bucket/pre/fix");
        assert_eq!(
            label_location("https://user:secret@acct.blob.core.windows.net/c/p?sig=abc"),
            "https://acct.blob.core.windows.net/c/p"
        );
        assert_eq!(label_location("az://c?sv=1"), "az://c");
    }

    #[test]
    fn concurrent_runs_lose_no_count() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("uxwal.prom");
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let file = file.clone();
                std::thread::spawn(move || {
                    for _ in 0..10 {
                        let outcome: Result<RestoreOutcome> = Ok(RestoreOutcome::NotInArchive);
                        let repos = ["/r".to_string()];
                        Run::start("restore").record_restore(Some(&file), &repos, "x", &outcome);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let series = parse(&std::fs::read_to_string(&file).unwrap());
        let key = labels(&[
            ("command", "restore"),
            ("repository", "/r"),
            ("result", "not_found"),
        ]);
        assert_eq!(series[&("uxwal_runs_total".to_string(), key)], 80.0);
    }

    #[test]
    fn a_run_merges_into_the_file_and_refuses_a_world_writable_directory() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("uxwal.prom");
        let repos = vec!["/r".to_string()];
        for _ in 0..2 {
            let outcome: Result<RestoreOutcome> = Ok(RestoreOutcome::NotInArchive);
            Run::start("restore").record_restore(Some(&file), &repos, "x", &outcome);
        }
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains(
                "uxwal_runs_total{command=\"restore\",repository=\"/r\",result=\"not_found\"} 2\n"
            ),
            "{text}"
        );
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o644
        );
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.ends_with(".prom"))
            .collect();
        assert_eq!(
            names,
            ["uxwal.prom"],
            "no staging file left with a .prom name"
        );

        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = write(&file, &Update::default()).unwrap_err();
        assert!(err.to_string().contains("writable by every user"), "{err}");
        let err = write(Path::new("relative.prom"), &Update::default()).unwrap_err();
        assert!(err.to_string().contains("absolute"), "{err}");
    }
}
