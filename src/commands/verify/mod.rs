//! `uxwal-verify`: proves an archive is complete and intact, before a restore
//! needs it.
//!
//! One pass over the repository listing, then: every `.history` and `.backup`
//! file is decoded and parsed (they define the timeline tree and the base
//! backups); every segment and `.partial` in scope is decoded completely by a
//! small pool of threads ([`check`]), each streaming one object at a time, so
//! memory stays constant; continuity and restorability come from the names
//! alone ([`timeline`]). Every problem names its file or missing range
//! ([`report`]). The result is only "ok" when nothing at all is wrong: exit 0
//! means the archive can be trusted.
//!
//! [`verify`] runs the phases in order, one function each: list (sort the
//! listing into files to read), check (read the history and backup files,
//! then the segments in scope), continuity (what each timeline lacks),
//! backups (whether each base backup restores) and report (put it together).

pub mod check;
pub mod report;
pub mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, IsTerminal};
use std::time::{Duration, Instant, SystemTime};

use crate::background::backlog::Backlog;
use crate::durable::STAGING_SUFFIX;
use crate::error::{Error, Result};
use crate::repo::remote::{Scheme, StoreOptions};
use crate::repo::{Entry, Identity, Listed, Repository};
use crate::wal::backup_label::BackupLabel;
use crate::wal::history::{self, Fork};
use crate::wal::name::{SegmentName, WalName};

use check::Checked;
use report::{
    BackupReport, EncryptionReport, Gap, IdentityReport, Problem, ProblemKind, Report, ScopeReport,
    Summary, TimelineReport, SCHEMA_VERSION,
};
use timeline::{Archived, Span, Tree};

/// A staging file younger than this may belong to an archive still running
/// (one segment takes well under a second), so it is noted, not reported.
pub const STAGING_GRACE: Duration = Duration::from_secs(15 * 60);

/// The staging lock every writer holds (`docs/FORMAT.md`): normal, not stray.
const STAGING_LOCK: &str = "tmp/.lock";

/// A stored object shorter than this cannot hold even the smallest trailer
/// (zstd: 4-byte frame magic + 56-byte skippable frame).
pub const MIN_OBJECT_LEN: u64 = 60;

/// `--backup`: which base backup to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BackupSelector {
    Newest,
    /// A `LABEL` or a `.backup` file name.
    Label(String),
}

/// What to check.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub timeline: Option<u32>,
    pub from: Option<SegmentName>,
    pub to: Option<SegmentName>,
    pub backup: Option<BackupSelector>,
}

impl Scope {
    fn is_everything(&self) -> bool {
        *self == Scope::default()
    }
}

/// How to run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub repo: String,
    pub store: StoreOptions,
    pub scope: Scope,
    /// Listing only: names and sizes (history and backup files are still read).
    pub quick: bool,
    /// Objects read at once.
    pub jobs: usize,
    pub json: bool,
    /// Show a progress bar when stderr is a terminal.
    pub progress: bool,
    /// The spool root whose backlog of owed copies is listed (`owed`).
    pub spool_dir: std::path::PathBuf,
}

/// The default number of objects read at once: one per core locally (decoding
/// is CPU-bound), more on object storage (requests wait on the network).
pub fn default_jobs(location: &str) -> usize {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    if Scheme::of(location).is_some() {
        (cores * 4).clamp(8, 32)
    } else {
        cores.clamp(1, 16)
    }
}

/// Verifies and prints the report (human or JSON) on stdout.
pub fn run_and_print(settings: &Settings) -> Result<Report> {
    let report = run(settings)?;
    let mut out = io::stdout().lock();
    if settings.json {
        report.write_json(&mut out)
    } else {
        report.write_human(&mut out)
    }
    .map_err(Error::Output)?;
    Ok(report)
}

/// Verifies the repository `settings.repo`.
pub fn run(settings: &Settings) -> Result<Report> {
    let open = || Repository::open_with(&settings.repo, &settings.store);
    let mut report = verify(&open, settings)?;
    match owed_to(&report.repository, &settings.spool_dir) {
        Ok(owed) => report.owed = owed,
        Err(e) => report
            .notes
            .push(format!("the backlog of owed copies was not read: {e}")),
    }
    Ok(report)
}

/// What the backlog of the spool root `root` owes `repository`.
fn owed_to(repository: &str, root: &std::path::Path) -> Result<Vec<String>> {
    let Some(backlog) = Backlog::open_existing(root)? else {
        return Ok(Vec::new());
    };
    Ok(backlog
        .all()?
        .into_iter()
        .filter(|(location, _)| location == repository)
        .flat_map(|(_, names)| names.into_iter().map(|n| n.to_string()))
        .collect())
}

/// One file to read.
struct Job {
    key: String,
    name: WalName,
    size: u64,
}

/// Reads and checks each of `jobs` ([`check::check`]) on `workers` threads,
/// handing each result to `done` on this thread.
fn check_each(
    open: &Opener<'_>,
    workers: usize,
    identity: Option<Identity>,
    jobs: &[Job],
    done: impl FnMut(&Job, Checked),
) -> Result<()> {
    let check_one = |r: &Repository, j: &Job| check::check(r, &j.name, identity.as_ref());
    super::pool::run("verify", jobs, workers, open, &check_one, done)
}

fn progress_bar(settings: &Settings, total: u64) -> Option<indicatif::ProgressBar> {
    if !settings.progress || !io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "{bar:30} {binary_bytes}/{binary_total_bytes} {binary_bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    Some(bar)
}

/// Per-timeline statistics of what was checked.
#[derive(Default)]
struct Stats {
    segments: BTreeSet<u64>,
    partial: Vec<String>,
    stored: u64,
    original: u64,
}

fn missing(
    kind: ProblemKind,
    tli: u32,
    first: String,
    last: String,
    count: u64,
    detail: String,
) -> Problem {
    Problem {
        kind,
        file: None,
        timeline: Some(tli),
        first: Some(first),
        last: Some(last),
        count: Some(count),
        detail,
    }
}

/// A base backup, from its `.backup` file.
struct Backup {
    key: String,
    name: WalName,
    label: BackupLabel,
}

/// The listing, sorted into what the other phases read.
struct Listing {
    /// `.history` and `.backup` files.
    meta: Vec<Job>,
    /// Segments and `.partial` files.
    wal: Vec<Job>,
}

/// What the history and backup files say.
#[derive(Default)]
struct Metadata {
    histories: BTreeMap<u32, Vec<Fork>>,
    /// Oldest first (start position, then timeline).
    backups: Vec<Backup>,
    files: u64,
    stored: u64,
    original: u64,
}

/// What reading the segments found.
struct Segments {
    /// What is archived and intact: a damaged segment stays "present" for
    /// continuity (it is reported once, by name) but is not usable for restores.
    usable: Archived,
    stats: BTreeMap<u32, Stats>,
    files: u64,
    segment_size: Option<u64>,
}

impl Segments {
    fn unusable(&mut self, job: &Job) {
        if let (WalName::Segment(seg), Some(size)) = (job.name, self.segment_size) {
            if let (Some(n), Some(set)) = (
                seg.segment_number(size),
                self.usable.full.get_mut(&seg.timeline),
            ) {
                set.remove(&n);
            }
        }
    }

    fn record(&mut self, job: &Job, original: u64) {
        let Some(seg) = job.name.segment() else {
            return;
        };
        let st = self.stats.entry(seg.timeline).or_default();
        st.stored += job.size;
        st.original += original;
        match job.name {
            WalName::Partial(_) => st.partial.push(job.name.to_string()),
            _ => {
                if let Some(n) = self.segment_size.and_then(|s| seg.segment_number(s)) {
                    st.segments.insert(n);
                }
            }
        }
    }
}

/// Which segments the scope takes in; with `--backup`, the ones restoring
/// that backup reads.
struct InScope<'a> {
    scope: &'a Scope,
    segment_size: Option<u64>,
    selected: Option<&'a Backup>,
    /// The newest timeline's ancestry, when a backup is selected.
    path: Vec<Span>,
}

impl InScope<'_> {
    fn contains(&self, tli: u32, segno: Option<u64>) -> bool {
        let scope = self.scope;
        if scope.timeline.is_some_and(|t| t != tli) {
            return false;
        }
        let (Some(segno), Some(size)) = (segno, self.segment_size) else {
            return scope.from.is_none() && scope.to.is_none() && self.selected.is_none();
        };
        let number = |s: &SegmentName| s.segment_number(size).unwrap_or(u64::MAX);
        if scope.from.as_ref().is_some_and(|f| segno < number(f))
            || scope.to.as_ref().is_some_and(|t| segno > number(t))
        {
            return false;
        }
        match self.selected {
            Some(b) => {
                segno >= b.label.start.segment(size)
                    && !self.path.is_empty()
                    && timeline::serving_timeline(&self.path, segno, size) == tli
            }
            None => true,
        }
    }
}

/// What the continuity and backup phases look at: the timeline tree and the
/// archived segment numbers.
struct Wal<'a> {
    tree: &'a Tree,
    archived: &'a Archived,
    size: u64,
}

/// Which backup `--backup` means (`None` when it is not given).
fn select_backup<'a>(
    selector: Option<&BackupSelector>,
    backups: &'a [Backup],
) -> Result<Option<&'a Backup>> {
    let Some(selector) = selector else {
        return Ok(None);
    };
    let found = match selector {
        BackupSelector::Newest => backups.last(),
        BackupSelector::Label(l) => backups
            .iter()
            .rev()
            .find(|b| b.label.label == *l || b.name.to_string() == *l || b.key == *l),
    };
    match found {
        Some(b) => Ok(Some(b)),
        None => Err(Error::NoSuchBackup {
            label: match selector {
                BackupSelector::Newest => None,
                BackupSelector::Label(l) => Some(l.clone()),
            },
            known: backups
                .iter()
                .map(|b| format!("{} ({:?})", b.name, b.label.label))
                .collect(),
        }),
    }
}

/// One verification: its settings, and what the phases found so far.
struct Run<'a> {
    settings: &'a Settings,
    identity: Option<Identity>,
    /// Problems: the report fails.
    problems: Vec<Problem>,
    /// Notes: worth saying, but nothing is wrong.
    notes: Vec<String>,
    /// What the opened files say of encryption.
    encryption: EncryptionReport,
    /// Keys of encrypted files no identity opened, in a `--quick` run (which
    /// promises names and sizes only): noted, not problems.
    unopened: BTreeSet<String>,
}

impl Run<'_> {
    /// Counts one opened file as encrypted (to `to`) or plain.
    fn tally(&mut self, to: Option<Vec<String>>) {
        let e = &mut self.encryption;
        let encrypted = e.files_encrypted.get_or_insert(0);
        let plain = e.files_plain.get_or_insert(0);
        match &to {
            Some(_) => *encrypted += 1,
            None => *plain += 1,
        }
        for recipient in to.into_iter().flatten() {
            *e.recipients.entry(recipient).or_default() += 1;
        }
    }

    fn segment_size(&self) -> Option<u64> {
        self.identity.map(|i| i.segment_size)
    }

    /// Phase 1, list: sorts the repository listing into files to read, and
    /// reports what does not belong (stray staging files, unknown files).
    fn list(&mut self, listed: Vec<Listed>) -> Listing {
        let everything = self.settings.scope.is_everything();
        let mut listing = Listing {
            meta: Vec::new(),
            wal: Vec::new(),
        };
        let now = SystemTime::now();
        for Listed {
            key,
            size,
            modified,
        } in listed
        {
            match Repository::classify(&key) {
                Entry::Metadata => {}
                Entry::Staging if key == STAGING_LOCK => {}
                Entry::Staging if key.ends_with(STAGING_SUFFIX) => {
                    let age = modified.and_then(|m| now.duration_since(m).ok());
                    if age.is_some_and(|a| a < STAGING_GRACE) {
                        self.notes.push(format!(
                            "{key}: staging file of an archive that may still be running"
                        ));
                    } else if everything {
                        self.problems.push(Problem::file(
                            ProblemKind::StrayTempFile,
                            &key,
                            "staging file left by a writer that died; the next uxwal-archive removes it",
                        ));
                    }
                }
                Entry::Staging | Entry::Unknown => {
                    if everything {
                        self.problems.push(Problem::file(
                            ProblemKind::UnknownFile,
                            &key,
                            "not a file uxwal writes, or not where uxwal puts it",
                        ));
                    }
                }
                Entry::Wal(name) => {
                    let job = Job { key, name, size };
                    match name {
                        WalName::History { .. } | WalName::Backup { .. } => listing.meta.push(job),
                        WalName::Segment(_) | WalName::Partial(_) => listing.wal.push(job),
                    }
                }
            }
        }
        listing.meta.sort_by(|a, b| a.key.cmp(&b.key));
        listing.wal.sort_by(|a, b| a.key.cmp(&b.key));
        listing
    }

    /// Phase 2, check, for history and backup files: always read, whatever
    /// the scope, because continuity needs them.
    fn read_metadata(&mut self, open: &Opener<'_>, jobs: &[Job]) -> Result<Metadata> {
        let mut meta = Metadata::default();
        let (workers, identity) = (self.settings.jobs, self.identity);
        check_each(open, workers, identity, jobs, |job, checked| {
            meta.files += 1;
            meta.stored += job.size;
            match checked {
                Checked::Intact {
                    original,
                    text,
                    encrypted_to,
                } => {
                    self.tally(encrypted_to);
                    meta.original += original;
                    let text = text.unwrap_or_default();
                    let parsed = match job.name {
                        WalName::History { timeline } => history::parse(timeline, text.as_bytes())
                            .map(|h| {
                                meta.histories.insert(timeline, h);
                            })
                            .map_err(|e| e.to_string()),
                        WalName::Backup { .. } => BackupLabel::parse(text.as_bytes())
                            .map(|label| {
                                meta.backups.push(Backup {
                                    key: job.key.clone(),
                                    name: job.name,
                                    label,
                                });
                            })
                            .map_err(|e| e.to_string()),
                        WalName::Segment(_) | WalName::Partial(_) => Ok(()),
                    };
                    if let Err(e) = parsed {
                        self.problems
                            .push(Problem::file(ProblemKind::BadContent, &job.key, e));
                    }
                }
                Checked::Vanished => self
                    .notes
                    .push(format!("{}: removed while verifying", job.key)),
                Checked::Problem(ProblemKind::NoIdentity, detail) if self.settings.quick => {
                    self.notes.push(format!(
                        "{}: not opened (--quick without its identity): {detail}",
                        job.key
                    ));
                    self.unopened.insert(job.key.clone());
                }
                Checked::Problem(kind, detail) => {
                    self.problems.push(Problem::file(kind, &job.key, detail))
                }
            }
        })?;
        meta.backups
            .sort_by_key(|b| (b.label.start, b.label.timeline()));
        Ok(meta)
    }

    /// Presence from the listing (all of it: continuity is about names), and
    /// the segment files in scope, to be read.
    fn presence(&mut self, wal: Vec<Job>, in_scope: &InScope<'_>) -> (Archived, Vec<Job>) {
        let segment_size = self.segment_size();
        let mut archived = Archived::default();
        let mut to_check = Vec::new();
        for job in wal {
            let Some(seg) = job.name.segment() else {
                continue;
            };
            let segno = segment_size.and_then(|s| seg.segment_number(s));
            if let (Some(size), None) = (segment_size, segno) {
                self.problems.push(Problem::file(
                    ProblemKind::BadHeader,
                    &job.key,
                    format!("name is out of range for {size}-byte segments"),
                ));
                continue;
            }
            if let Some(n) = segno {
                let set = match job.name {
                    WalName::Partial(_) => &mut archived.partial,
                    _ => &mut archived.full,
                };
                set.entry(seg.timeline).or_default().insert(n);
            }
            if in_scope.contains(seg.timeline, segno) {
                to_check.push(job);
            }
        }
        if self.identity.is_none() && !to_check.is_empty() {
            self.problems.push(Problem::file(
                ProblemKind::MissingIdentity,
                "IDENTITY",
                "segments are archived but the archive identity is missing: they cannot be \
                 checked against the cluster, and continuity cannot be computed",
            ));
        }
        (archived, to_check)
    }

    /// Phase 2, check, for the segments and `.partial` files in scope: each
    /// decoded completely, or with `--quick` only its listed size looked at.
    fn check_segments(
        &mut self,
        open: &Opener<'_>,
        jobs: &[Job],
        archived: &Archived,
    ) -> Result<Segments> {
        let mut segs = Segments {
            usable: archived.clone(),
            stats: BTreeMap::new(),
            files: 0,
            segment_size: self.segment_size(),
        };
        if self.settings.quick {
            for job in jobs {
                segs.files += 1;
                segs.record(job, 0);
                if job.size < MIN_OBJECT_LEN {
                    self.problems.push(Problem::file(
                        ProblemKind::Truncated,
                        &job.key,
                        format!(
                            "stored object is {} bytes: too short to hold a uxwal trailer",
                            job.size
                        ),
                    ));
                    segs.unusable(job);
                }
            }
            return Ok(segs);
        }
        let total: u64 = jobs.iter().map(|j| j.size).sum();
        let bar = progress_bar(self.settings, total);
        let (workers, identity) = (self.settings.jobs, self.identity);
        check_each(open, workers, identity, jobs, |job, checked| {
            if let Some(b) = &bar {
                b.inc(job.size);
            }
            segs.files += 1;
            match checked {
                Checked::Intact {
                    original,
                    encrypted_to,
                    ..
                } => {
                    self.tally(encrypted_to);
                    segs.record(job, original)
                }
                Checked::Vanished => {
                    self.notes
                        .push(format!("{}: removed while verifying", job.key));
                    segs.unusable(job);
                }
                Checked::Problem(kind, detail) => {
                    segs.record(job, 0);
                    self.problems.push(Problem::file(kind, &job.key, detail));
                    segs.unusable(job);
                }
            }
        })?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        Ok(segs)
    }

    /// Every history file up to the newest timeline: `recovery_target_timeline =
    /// 'latest'` probes 2, 3, ... and stops at the first one missing
    /// (xlogrecovery.c findNewestTimeLine).
    fn missing_histories(&mut self, newest: Option<u32>, histories: &BTreeMap<u32, Vec<Fork>>) {
        let Some(n) = newest else { return };
        for tli in 2..=n {
            let key = format!("history/{tli:08X}.history");
            if !histories.contains_key(&tli)
                && !self.unopened.contains(&key)
                && !self.problems.iter().any(|p| p.file.as_ref() == Some(&key))
            {
                let name = format!("{tli:08X}.history");
                self.problems.push(missing(
                    ProblemKind::MissingHistory,
                    tli,
                    name.clone(),
                    name,
                    1,
                    format!("timeline {tli} has no history file: recovery to the latest timeline stops before it"),
                ));
            }
        }
    }

    /// Phase 3, continuity: each timeline in scope, with the in-scope
    /// stretches of its gaps (each also a problem).
    fn continuity(
        &mut self,
        wal: &Wal<'_>,
        in_scope: &InScope<'_>,
        histories: &BTreeMap<u32, Vec<Fork>>,
        mut stats: BTreeMap<u32, Stats>,
    ) -> Vec<TimelineReport> {
        let (tree, size) = (wal.tree, wal.size);
        let scope = in_scope.scope;
        let name = |t: u32, n: u64| SegmentName::from_segment_number(t, n, size).to_string();
        let continuity = timeline::continuity(tree, wal.archived, size);
        let mut all: BTreeSet<u32> = continuity.iter().map(|c| c.timeline).collect();
        all.extend(stats.keys());
        let from = scope.from.and_then(|f| f.segment_number(size)).unwrap_or(0);
        let to = scope
            .to
            .and_then(|t| t.segment_number(size))
            .unwrap_or(u64::MAX);
        let mut timelines = Vec::new();
        for tli in all {
            if scope.timeline.is_some_and(|t| t != tli) {
                continue;
            }
            let mut gaps = Vec::new();
            for c in continuity.iter().filter(|c| c.timeline == tli) {
                for &(first, last) in &c.gaps {
                    // Keep the in-scope stretches of the gap.
                    let (lo, hi) = (first.max(from), last.min(to));
                    let mut run: Option<(u64, u64)> = None;
                    for n in lo..=hi {
                        if in_scope.selected.is_none() {
                            run = Some((lo, hi));
                            break;
                        }
                        if in_scope.contains(tli, Some(n)) {
                            run = Some(run.map_or((n, n), |(a, _)| (a, n)));
                        } else if let Some((a, b)) = run.take() {
                            gaps.push((a, b));
                        }
                    }
                    if let Some(r) = run {
                        gaps.push(r);
                    }
                }
            }
            let gaps: Vec<Gap> = gaps
                .into_iter()
                .map(|(a, b)| Gap {
                    first: name(tli, a),
                    last: name(tli, b),
                    count: b - a + 1,
                })
                .collect();
            for g in &gaps {
                let s = if g.count == 1 { "" } else { "s" };
                self.problems.push(missing(
                    ProblemKind::MissingSegments,
                    tli,
                    g.first.clone(),
                    g.last.clone(),
                    g.count,
                    format!("{} segment{s} missing on timeline {tli}", g.count),
                ));
            }
            let st = stats.remove(&tli).unwrap_or_default();
            let fork = tree.parent(tli);
            let original = (!self.settings.quick).then_some(st.original);
            timelines.push(TimelineReport {
                timeline: tli,
                parent: fork.map(|f| f.parent),
                switch_lsn: fork.map(|f| f.switch.to_string()),
                has_history_file: histories.contains_key(&tli),
                first_segment: st.segments.first().map(|&n| name(tli, n)),
                last_segment: st.segments.last().map(|&n| name(tli, n)),
                segments: st.segments.len() as u64,
                partial: st.partial,
                bytes_stored: st.stored,
                bytes_original: original,
                compression_ratio: original
                    .filter(|_| st.stored > 0)
                    .map(|o| (o as f64 / st.stored as f64 * 100.0).round() / 100.0),
                gaps,
            });
        }
        timelines
    }

    /// Phase 4, backups: can each one in scope reach the newest archived WAL
    /// (timeline `newest`)? The newest one, or the one asked for, must; older
    /// ones may have been retired by cleanup, so they are reported, not failed.
    fn backups(
        &mut self,
        wal: &Wal<'_>,
        usable: &Archived,
        backups: &[Backup],
        selected: Option<&Backup>,
        newest: Option<u32>,
    ) -> Vec<BackupReport> {
        let Some(target) = newest else {
            return Vec::new();
        };
        let size = wal.size;
        let scope = &self.settings.scope;
        let name = |t: u32, n: u64| SegmentName::from_segment_number(t, n, size).to_string();
        let newest_backup = backups.last().map(|b| b.key.as_str());
        let chosen: Vec<&Backup> = match selected {
            Some(sel) => backups.iter().filter(|b| b.key == sel.key).collect(),
            None => backups
                .iter()
                .filter(|b| scope.timeline.is_none_or(|t| t == b.label.timeline()))
                .collect(),
        };
        let oldest = wal.archived.oldest();
        let mut reports = Vec::new();
        for Backup {
            key,
            name: wal_name,
            label: info,
        } in chosen
        {
            let r = timeline::restorability(wal.tree, usable, size, info, target);
            let start_segno = info.start.segment(size);
            let mut reason = r.reason.clone();
            if let Some(o) = oldest.filter(|&o| start_segno < o && !r.ok() && reason.is_none()) {
                reason = Some(format!(
                    "its WAL starts before the oldest archived segment (number {o}): removed by cleanup, or never archived"
                ));
            }
            let report = BackupReport {
                file: wal_name.to_string(),
                label: info.label.clone(),
                timeline: info.timeline(),
                start_lsn: info.start.to_string(),
                stop_lsn: info.stop.to_string(),
                start_segment: name(info.timeline(), start_segno),
                start_time: info.start_time.clone(),
                stop_time: info.stop_time.clone(),
                target_timeline: r.target_timeline,
                restorable_to_latest: r.ok(),
                latest_segment: r.end.map(|s| s.to_string()),
                first_missing: r.first_missing.map(|s| s.to_string()),
                missing_segments: r.missing,
                reason,
            };
            let must = selected.is_some() || newest_backup == Some(key.as_str());
            if must && !report.restorable_to_latest {
                let detail = match (&report.first_missing, &report.reason) {
                    (Some(m), _) => format!(
                        "cannot be restored to the latest WAL (timeline {}): first missing or damaged segment {m}, {} in all",
                        r.target_timeline, report.missing_segments
                    ),
                    (None, Some(why)) => format!("cannot be restored to the latest WAL: {why}"),
                    (None, None) => "cannot be restored to the latest WAL".into(),
                };
                self.problems.push(Problem {
                    kind: ProblemKind::NotRestorable,
                    file: Some(key.clone()),
                    timeline: Some(info.timeline()),
                    first: report.first_missing.clone(),
                    last: None,
                    count: (report.missing_segments > 0).then_some(report.missing_segments),
                    detail,
                });
            }
            reports.push(report);
        }
        reports
    }

    /// Phase 5, report: the problems in order, the totals, and everything found.
    fn report(self, repository: String, parts: Parts<'_>, started: Instant) -> Report {
        let Run {
            settings,
            identity,
            mut problems,
            notes,
            mut encryption,
            unopened: _,
        } = self;
        // Segments are not opened with --quick: their encryption is unknown.
        if settings.quick {
            encryption.files_encrypted = None;
            encryption.files_plain = None;
            encryption.recipients.clear();
        }
        let scope = &settings.scope;
        problems.sort_by(|a, b| {
            let key = |p: &Problem| (p.file.clone().or(p.first.clone()), p.kind);
            key(a).cmp(&key(b))
        });
        let timelines = parts.timelines;
        let stored = parts.meta.stored + timelines.iter().map(|t| t.bytes_stored).sum::<u64>();
        let original = (!settings.quick).then(|| {
            parts.meta.original
                + timelines
                    .iter()
                    .filter_map(|t| t.bytes_original)
                    .sum::<u64>()
        });
        let missing_segments = problems
            .iter()
            .filter(|p| p.kind == ProblemKind::MissingSegments)
            .filter_map(|p| p.count)
            .sum();
        Report {
            schema_version: SCHEMA_VERSION,
            repository,
            mode: if settings.quick { "quick" } else { "full" },
            ok: problems.is_empty(),
            scope: ScopeReport {
                timeline: scope.timeline,
                from: scope.from.map(|s| s.to_string()),
                to: scope.to.map(|s| s.to_string()),
                backup: parts.selected.map(|b| b.name.to_string()),
            },
            identity: identity.map(|i| IdentityReport {
                system_identifier: i.system_identifier.to_string(),
                segment_size: i.segment_size,
                page_magic: i.page_magic,
            }),
            encryption,
            summary: Summary {
                files_checked: parts.meta.files + parts.segment_files,
                bytes_stored: stored,
                bytes_original: original,
                problems: problems.len() as u64,
                missing_segments,
                elapsed_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
            },
            owed: Vec::new(),
            timelines,
            backups: parts.backups,
            problems,
            notes,
        }
    }
}

/// What the report is made of, besides the problems and notes.
struct Parts<'a> {
    meta: &'a Metadata,
    selected: Option<&'a Backup>,
    segment_files: u64,
    timelines: Vec<TimelineReport>,
    backups: Vec<BackupReport>,
}

/// Opens a repository handle (each worker thread opens its own).
type Opener<'a> = dyn Fn() -> Result<Repository> + Sync + 'a;

/// Verifies the repository that `open` opens, running the phases in order.
pub fn verify(open: &Opener<'_>, settings: &Settings) -> Result<Report> {
    let started = Instant::now();
    let scope = &settings.scope;
    let repo = open()?;
    let listed = repo.list("")?;
    let recorded = repo.recorded()?;
    if !recorded.is_repository {
        return Err(Error::NotARepository {
            location: repo.describe(),
        });
    }
    let marker = recorded.encryption;
    let mut run = Run {
        settings,
        identity: recorded.identity,
        problems: Vec::new(),
        notes: Vec::new(),
        encryption: EncryptionReport {
            encrypted: marker.is_some(),
            since: marker.as_ref().map(|m| m.since.clone()),
            first_recipients: marker.map(|m| m.recipients).unwrap_or_default(),
            files_encrypted: None,
            files_plain: None,
            recipients: Default::default(),
        },
        unopened: BTreeSet::new(),
    };

    let listing = run.list(listed);
    let meta = run.read_metadata(open, &listing.meta)?;
    let tree = Tree::new(&meta.histories);
    let newest = listing
        .wal
        .iter()
        .filter_map(|j| j.name.segment().map(|s| s.timeline))
        .chain(meta.histories.keys().copied())
        .max();
    let selected = select_backup(scope.backup.as_ref(), &meta.backups)?;
    let in_scope = InScope {
        scope,
        segment_size: run.segment_size(),
        selected,
        path: match (selected, newest) {
            (Some(_), Some(n)) => tree.path(n),
            _ => Vec::new(),
        },
    };
    let (archived, to_check) = run.presence(listing.wal, &in_scope);
    let segs = run.check_segments(open, &to_check, &archived)?;
    run.missing_histories(newest, &meta.histories);

    let (timelines, backups) = match run.segment_size() {
        Some(size) => {
            let wal = Wal {
                tree: &tree,
                archived: &archived,
                size,
            };
            let timelines = run.continuity(&wal, &in_scope, &meta.histories, segs.stats);
            let backups = run.backups(&wal, &segs.usable, &meta.backups, selected, newest);
            (timelines, backups)
        }
        None => (Vec::new(), Vec::new()),
    };
    let parts = Parts {
        meta: &meta,
        selected,
        segment_files: segs.files,
        timelines,
        backups,
    };
    Ok(run.report(repo.describe(), parts, started))
}
