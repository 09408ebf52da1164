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

pub mod check;
pub mod report;
pub mod timeline;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{self, IsTerminal};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use crate::durable::STAGING_SUFFIX;
use crate::error::{Error, Result};
use crate::repo::remote::{Scheme, StoreOptions};
use crate::repo::{Entry, Listed, Repository};
use crate::wal::name::{SegmentName, WalName};

use check::Checked;
use report::{
    BackupReport, Gap, IdentityReport, Problem, ProblemKind, Report, ScopeReport, Summary,
    TimelineReport, SCHEMA_VERSION,
};
use timeline::{Archived, BackupInfo, Fork, Tree};

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
}

/// Why verification could not run (exit 2); problems found are in the [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("{0}")]
    Usage(String),
    #[error(transparent)]
    Repository(#[from] Error),
    #[error("cannot write the report: {0}")]
    Output(io::Error),
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
pub fn run_and_print(settings: &Settings) -> Result<Report, VerifyError> {
    let report = run(settings)?;
    let mut out = io::stdout().lock();
    if settings.json {
        report.write_json(&mut out)
    } else {
        report.write_human(&mut out)
    }
    .map_err(VerifyError::Output)?;
    Ok(report)
}

/// Verifies the repository `settings.repo`.
pub fn run(settings: &Settings) -> Result<Report, VerifyError> {
    let open = || Repository::open_with(&settings.repo, &settings.store);
    verify(&open, settings)
}

/// One file to read.
struct Job {
    key: String,
    name: WalName,
    size: u64,
}

/// Runs `work` over `jobs` on `workers` threads, each with its own repository
/// handle, handing results to `done` on this thread in completion order.
fn pool<R: Send>(
    jobs: &[Job],
    workers: usize,
    open: &(dyn Fn() -> Result<Repository> + Sync),
    work: &(dyn Fn(&Repository, &Job) -> R + Sync),
    mut done: impl FnMut(&Job, R),
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let workers = workers.clamp(1, jobs.len());
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, R)>(workers * 2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                let tx = tx.clone();
                let next = &next;
                s.spawn(move || -> Result<()> {
                    let repo = open()?;
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            return Ok(());
                        };
                        if tx.send((i, work(&repo, job))).is_err() {
                            return Ok(());
                        }
                    }
                })
            })
            .collect();
        drop(tx);
        for (i, r) in rx {
            done(&jobs[i], r);
        }
        handles
            .into_iter()
            .try_for_each(|h| h.join().expect("verify worker panicked"))
    })
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

/// Verifies the repository that `open` opens (each worker opens its own handle).
pub fn verify(
    open: &(dyn Fn() -> Result<Repository> + Sync),
    settings: &Settings,
) -> Result<Report, VerifyError> {
    let started = Instant::now();
    let scope = &settings.scope;
    let repo = open()?;
    let listed = repo.list("")?;
    repo.check_format()?;
    let identity = repo.identity()?;
    let segment_size = identity.map(|i| i.segment_size);

    let mut problems: Vec<Problem> = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let mut meta_jobs = Vec::new();
    let mut wal_jobs = Vec::new();
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
                    notes.push(format!(
                        "{key}: staging file of an archive that may still be running"
                    ));
                } else if scope.is_everything() {
                    problems.push(Problem::file(
                        ProblemKind::StrayTempFile,
                        &key,
                        "staging file left by a writer that died; the next uxwal-archive removes it",
                    ));
                }
            }
            Entry::Staging | Entry::Unknown => {
                if scope.is_everything() {
                    problems.push(Problem::file(
                        ProblemKind::UnknownFile,
                        &key,
                        "not a file uxwal writes, or not where uxwal puts it",
                    ));
                }
            }
            Entry::Wal(name) => {
                let job = Job { key, name, size };
                match name {
                    WalName::History { .. } | WalName::Backup { .. } => meta_jobs.push(job),
                    WalName::Segment(_) | WalName::Partial(_) => wal_jobs.push(job),
                }
            }
        }
    }
    meta_jobs.sort_by(|a, b| a.key.cmp(&b.key));
    wal_jobs.sort_by(|a, b| a.key.cmp(&b.key));

    // Phase 1: history and backup files, always read (continuity needs them).
    let mut histories: BTreeMap<u32, Vec<Fork>> = BTreeMap::new();
    let mut backups: Vec<(String, WalName, BackupInfo)> = Vec::new();
    let mut files_checked = 0u64;
    let mut meta_stored = 0u64;
    let mut meta_original = 0u64;
    let check_any = |r: &Repository, j: &Job| check::check(r, &j.name, identity.as_ref());
    pool(
        &meta_jobs,
        settings.jobs,
        open,
        &check_any,
        |job, checked| {
            files_checked += 1;
            meta_stored += job.size;
            match checked {
                Checked::Intact { original, text } => {
                    meta_original += original;
                    let text = text.unwrap_or_default();
                    let parsed = match job.name {
                        WalName::History { timeline } => timeline::parse_history(timeline, &text)
                            .map(|h| {
                                histories.insert(timeline, h);
                            }),
                        WalName::Backup { segment, .. } => {
                            timeline::parse_backup(&text, segment.timeline).map(|b| {
                                backups.push((job.key.clone(), job.name, b));
                            })
                        }
                        _ => Ok(()),
                    };
                    if let Err(e) = parsed {
                        problems.push(Problem::file(ProblemKind::BadContent, &job.key, e));
                    }
                }
                Checked::Vanished => notes.push(format!("{}: removed while verifying", job.key)),
                Checked::Problem(kind, detail) => {
                    problems.push(Problem::file(kind, &job.key, detail))
                }
            }
        },
    )?;
    backups.sort_by_key(|(_, _, b)| (b.start, b.start_timeline));

    let tree = Tree::new(&histories);
    let newest = wal_jobs
        .iter()
        .filter_map(|j| j.name.segment().map(|s| s.timeline))
        .chain(histories.keys().copied())
        .max();

    // Which backup --backup means; the segments restoring it reads are the scope.
    let selected = match &scope.backup {
        None => None,
        Some(sel) => {
            let found = match sel {
                BackupSelector::Newest => backups.last(),
                BackupSelector::Label(l) => backups
                    .iter()
                    .rev()
                    .find(|(key, name, b)| b.label == *l || name.to_string() == *l || key == l),
            };
            let Some(found) = found else {
                let known: Vec<String> = backups
                    .iter()
                    .map(|(_, n, b)| format!("{n} ({:?})", b.label))
                    .collect();
                return Err(VerifyError::Usage(format!(
                    "no base backup {} in the archive; backups: {}",
                    match sel {
                        BackupSelector::Newest => "at all".to_string(),
                        BackupSelector::Label(l) => format!("labelled {l:?}"),
                    },
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )));
            };
            Some(found.clone())
        }
    };
    let backup_path = match (&selected, newest) {
        (Some(_), Some(n)) => tree.path(n),
        _ => Vec::new(),
    };
    let in_scope = |tli: u32, segno: Option<u64>| -> bool {
        if scope.timeline.is_some_and(|t| t != tli) {
            return false;
        }
        let (Some(segno), Some(size)) = (segno, segment_size) else {
            return scope.from.is_none() && scope.to.is_none() && selected.is_none();
        };
        let number = |s: &SegmentName| s.segment_number(size).unwrap_or(u64::MAX);
        if scope.from.as_ref().is_some_and(|f| segno < number(f))
            || scope.to.as_ref().is_some_and(|t| segno > number(t))
        {
            return false;
        }
        match &selected {
            Some((_, _, b)) => {
                segno >= b.start.segment(size)
                    && !backup_path.is_empty()
                    && timeline::serving_timeline(&backup_path, segno, size) == tli
            }
            None => true,
        }
    };

    // Presence comes from the listing (all of it: continuity is about names).
    let mut archived = Archived::default();
    let mut in_scope_jobs = Vec::new();
    for job in wal_jobs {
        let seg = job.name.segment().expect("segment or partial");
        let segno = segment_size.and_then(|s| seg.segment_number(s));
        if let (Some(size), None) = (segment_size, segno) {
            problems.push(Problem::file(
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
        if in_scope(seg.timeline, segno) {
            in_scope_jobs.push(job);
        }
    }
    if identity.is_none() && !in_scope_jobs.is_empty() {
        problems.push(Problem::file(
            ProblemKind::MissingIdentity,
            "IDENTITY",
            "segments are archived but the archive identity is missing: they cannot be \
             checked against the cluster, and continuity cannot be computed",
        ));
    }

    // Phase 2: segments and .partial files. A damaged segment stays "present"
    // for continuity (it is reported once, by name) but is not usable for restores.
    let mut usable = archived.clone();
    let mut stats: BTreeMap<u32, Stats> = BTreeMap::new();
    let unusable = |job: &Job, usable: &mut Archived| {
        if let (WalName::Segment(seg), Some(size)) = (job.name, segment_size) {
            if let (Some(n), Some(set)) =
                (seg.segment_number(size), usable.full.get_mut(&seg.timeline))
            {
                set.remove(&n);
            }
        }
    };
    let record = |job: &Job, original: u64, stats: &mut BTreeMap<u32, Stats>| {
        let seg = job.name.segment().expect("segment");
        let st = stats.entry(seg.timeline).or_default();
        st.stored += job.size;
        st.original += original;
        match job.name {
            WalName::Partial(_) => st.partial.push(job.name.to_string()),
            _ => {
                if let Some(n) = segment_size.and_then(|s| seg.segment_number(s)) {
                    st.segments.insert(n);
                }
            }
        }
    };
    if settings.quick {
        for job in &in_scope_jobs {
            files_checked += 1;
            record(job, 0, &mut stats);
            if job.size < MIN_OBJECT_LEN {
                problems.push(Problem::file(
                    ProblemKind::Truncated,
                    &job.key,
                    format!(
                        "stored object is {} bytes: too short to hold a uxwal trailer",
                        job.size
                    ),
                ));
                unusable(job, &mut usable);
            }
        }
    } else {
        let total: u64 = in_scope_jobs.iter().map(|j| j.size).sum();
        let bar = progress_bar(settings, total);
        pool(
            &in_scope_jobs,
            settings.jobs,
            open,
            &check_any,
            |job, checked| {
                if let Some(b) = &bar {
                    b.inc(job.size);
                }
                files_checked += 1;
                match checked {
                    Checked::Intact { original, .. } => record(job, original, &mut stats),
                    Checked::Vanished => {
                        notes.push(format!("{}: removed while verifying", job.key));
                        unusable(job, &mut usable);
                    }
                    Checked::Problem(kind, detail) => {
                        record(job, 0, &mut stats);
                        problems.push(Problem::file(kind, &job.key, detail));
                        unusable(job, &mut usable);
                    }
                }
            },
        )?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
    }

    // Every history file up to the newest timeline: `recovery_target_timeline =
    // 'latest'` probes 2, 3, ... and stops at the first one missing
    // (xlogrecovery.c findNewestTimeLine).
    if let Some(n) = newest {
        for tli in 2..=n {
            let key = format!("history/{tli:08X}.history");
            if !histories.contains_key(&tli)
                && !problems.iter().any(|p| p.file.as_ref() == Some(&key))
            {
                let name = format!("{tli:08X}.history");
                problems.push(missing(
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

    let mut timelines = Vec::new();
    let mut backup_reports = Vec::new();
    if let Some(size) = segment_size {
        let name = |t: u32, n: u64| SegmentName::from_segment_number(t, n, size).to_string();
        let continuity = timeline::continuity(&tree, &archived, size);
        let mut all: BTreeSet<u32> = continuity.iter().map(|c| c.timeline).collect();
        all.extend(stats.keys());
        let from = scope.from.and_then(|f| f.segment_number(size)).unwrap_or(0);
        let to = scope
            .to
            .and_then(|t| t.segment_number(size))
            .unwrap_or(u64::MAX);
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
                        if selected.is_none() {
                            run = Some((lo, hi));
                            break;
                        }
                        if in_scope(tli, Some(n)) {
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
                problems.push(missing(
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
            let original = (!settings.quick).then_some(st.original);
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

        // Base backups: can each reach the newest archived WAL?
        let newest_backup = backups.last().map(|(k, _, _)| k.clone());
        let chosen: Vec<&(String, WalName, BackupInfo)> = match &selected {
            Some(sel) => backups.iter().filter(|b| b.0 == sel.0).collect(),
            None => backups
                .iter()
                .filter(|(_, _, b)| scope.timeline.is_none_or(|t| t == b.start_timeline))
                .collect(),
        };
        let oldest = archived.oldest();
        for (key, wal_name, info) in chosen {
            let Some(target) = newest else { break };
            let r = timeline::restorability(&tree, &usable, size, info, target);
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
                timeline: info.start_timeline,
                start_lsn: info.start.to_string(),
                stop_lsn: info.stop.to_string(),
                start_segment: name(info.start_timeline, start_segno),
                start_time: info.start_time.clone(),
                stop_time: info.stop_time.clone(),
                target_timeline: r.target_timeline,
                restorable_to_latest: r.ok(),
                latest_segment: r.end.map(|s| s.to_string()),
                first_missing: r.first_missing.map(|s| s.to_string()),
                missing_segments: r.missing,
                reason,
            };
            // The newest backup (or the one asked for) must restore; older ones
            // may have been retired by cleanup, so they are reported, not failed.
            let must = selected.is_some() || newest_backup.as_deref() == Some(key.as_str());
            if must && !report.restorable_to_latest {
                let detail = match (&report.first_missing, &report.reason) {
                    (Some(m), _) => format!(
                        "cannot be restored to the latest WAL (timeline {}): first missing or damaged segment {m}, {} in all",
                        r.target_timeline, report.missing_segments
                    ),
                    (None, Some(why)) => format!("cannot be restored to the latest WAL: {why}"),
                    (None, None) => "cannot be restored to the latest WAL".into(),
                };
                problems.push(Problem {
                    kind: ProblemKind::NotRestorable,
                    file: Some(key.clone()),
                    timeline: Some(info.start_timeline),
                    first: report.first_missing.clone(),
                    last: None,
                    count: (report.missing_segments > 0).then_some(report.missing_segments),
                    detail,
                });
            }
            backup_reports.push(report);
        }
    }

    problems.sort_by(|a, b| {
        let key = |p: &Problem| (p.file.clone().or(p.first.clone()), p.kind);
        key(a).cmp(&key(b))
    });
    let stored = meta_stored + timelines.iter().map(|t| t.bytes_stored).sum::<u64>();
    let original = (!settings.quick).then(|| {
        meta_original
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
    Ok(Report {
        schema_version: SCHEMA_VERSION,
        repository: repo.describe(),
        mode: if settings.quick { "quick" } else { "full" },
        ok: problems.is_empty(),
        scope: ScopeReport {
            timeline: scope.timeline,
            from: scope.from.map(|s| s.to_string()),
            to: scope.to.map(|s| s.to_string()),
            backup: selected.as_ref().map(|(_, n, _)| n.to_string()),
        },
        identity: identity.map(|i| IdentityReport {
            system_identifier: i.system_identifier.to_string(),
            segment_size: i.segment_size,
            page_magic: i.page_magic,
        }),
        summary: Summary {
            files_checked,
            bytes_stored: stored,
            bytes_original: original,
            problems: problems.len() as u64,
            missing_segments,
            elapsed_seconds: (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0,
        },
        timelines,
        backups: backup_reports,
        problems,
        notes,
    })
}
