//! What `uxwal-verify` found, as a human summary or as JSON for monitoring.
//!
//! The JSON form is a stable interface (`docs/verify-json.md`,
//! `docs/verify.schema.json`): fields are only ever added, and
//! [`SCHEMA_VERSION`] changes if one ever changes meaning.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};

use serde::Serialize;

/// Version of the JSON document (`schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// Every kind of problem, as named in the JSON `kind` field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// The stored bytes do not decompress.
    Corrupt,
    /// The object ends early (no trailer, or shorter than one).
    Truncated,
    /// Decompressed content differs from the recorded SHA-256 or size.
    ChecksumMismatch,
    /// A segment of another database system (or segment size).
    WrongCluster,
    /// A segment whose page header does not match its name.
    BadHeader,
    /// The storage could not read the object.
    Unreadable,
    /// A staging file left by a writer that died.
    StrayTempFile,
    /// A file uxwal does not write, or one in the wrong place.
    UnknownFile,
    /// A `.history` or `.backup` file that cannot be parsed.
    BadContent,
    /// Segments missing from a timeline (a range).
    MissingSegments,
    /// A timeline history file that recovery needs is missing.
    MissingHistory,
    /// Segments are archived but the IDENTITY object is missing.
    MissingIdentity,
    /// An encrypted object none of the identities given opens: its content
    /// is unchecked.
    NoIdentity,
    /// The newest base backup (or the one `--backup` names) cannot reach the
    /// newest archived WAL.
    NotRestorable,
}

impl ProblemKind {
    pub fn describe(self) -> &'static str {
        match self {
            ProblemKind::Corrupt => "corrupt",
            ProblemKind::Truncated => "truncated",
            ProblemKind::ChecksumMismatch => "checksum mismatch",
            ProblemKind::WrongCluster => "wrong cluster",
            ProblemKind::BadHeader => "bad header",
            ProblemKind::Unreadable => "unreadable",
            ProblemKind::StrayTempFile => "stray temp file",
            ProblemKind::UnknownFile => "unknown file",
            ProblemKind::BadContent => "bad content",
            ProblemKind::MissingSegments => "missing",
            ProblemKind::MissingHistory => "missing history",
            ProblemKind::MissingIdentity => "missing identity",
            ProblemKind::NoIdentity => "no identity",
            ProblemKind::NotRestorable => "not restorable",
        }
    }
}

/// One problem: a file, or a missing range.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    pub kind: ProblemKind,
    /// Object key relative to the repository root (`null` for missing files).
    pub file: Option<String>,
    /// Timeline concerned, where there is one.
    pub timeline: Option<u32>,
    /// Missing files: first and last missing name, and how many.
    pub first: Option<String>,
    pub last: Option<String>,
    pub count: Option<u64>,
    pub detail: String,
}

impl Problem {
    pub fn file(kind: ProblemKind, key: &str, detail: impl Into<String>) -> Problem {
        Problem {
            kind,
            file: Some(key.to_owned()),
            timeline: None,
            first: None,
            last: None,
            count: None,
            detail: detail.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdentityReport {
    /// Decimal string: may exceed what JSON numbers hold exactly.
    pub system_identifier: String,
    pub segment_size: u64,
    pub page_magic: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ScopeReport {
    pub timeline: Option<u32>,
    pub from: Option<String>,
    pub to: Option<String>,
    pub backup: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    pub first: String,
    pub last: String,
    pub count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimelineReport {
    pub timeline: u32,
    /// Parent timeline and switch point from the history files (`null` for a root).
    pub parent: Option<u32>,
    pub switch_lsn: Option<String>,
    pub has_history_file: bool,
    /// First and last full segment archived (in scope), `null` when none.
    pub first_segment: Option<String>,
    pub last_segment: Option<String>,
    /// Full segments archived (in scope).
    pub segments: u64,
    /// `.partial` files archived (in scope).
    pub partial: Vec<String>,
    pub bytes_stored: u64,
    /// Sum of original sizes; `null` with `--quick` (the trailer is not read).
    pub bytes_original: Option<u64>,
    /// `bytes_original / bytes_stored`; `null` when unknown.
    pub compression_ratio: Option<f64>,
    pub gaps: Vec<Gap>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupReport {
    /// The `.backup` file name.
    pub file: String,
    pub label: String,
    pub timeline: u32,
    pub start_lsn: String,
    pub stop_lsn: String,
    pub start_segment: String,
    pub start_time: Option<String>,
    pub stop_time: Option<String>,
    /// Timeline recovery with `recovery_target_timeline = 'latest'` follows.
    pub target_timeline: u32,
    pub restorable_to_latest: bool,
    /// Newest segment along the target timeline's history.
    pub latest_segment: Option<String>,
    /// First segment missing or damaged on the way there.
    pub first_missing: Option<String>,
    pub missing_segments: u64,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub files_checked: u64,
    pub bytes_stored: u64,
    pub bytes_original: Option<u64>,
    pub problems: u64,
    pub missing_segments: u64,
    pub elapsed_seconds: f64,
}

/// Encryption at rest: what the repository records, and what the checked
/// files are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EncryptionReport {
    /// Whether the repository records that it is encrypted (`ENCRYPTION`).
    pub encrypted: bool,
    /// When it started, and the recipients its first encrypted WAL went to.
    pub since: Option<String>,
    pub first_recipients: Vec<String>,
    /// Files opened and found encrypted, and found plain; `null` with
    /// `--quick` (objects are not opened).
    pub files_encrypted: Option<u64>,
    pub files_plain: Option<u64>,
    /// For each recipient, how many opened files are encrypted to it.
    pub recipients: BTreeMap<String, u64>,
}

/// The whole result of a verification.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub repository: String,
    /// `full` (every object decoded) or `quick` (listing only; see docs).
    pub mode: &'static str,
    pub ok: bool,
    pub scope: ScopeReport,
    pub identity: Option<IdentityReport>,
    pub encryption: EncryptionReport,
    pub summary: Summary,
    pub timelines: Vec<TimelineReport>,
    pub backups: Vec<BackupReport>,
    pub problems: Vec<Problem>,
    /// Things worth knowing that are not problems (e.g. files removed meanwhile).
    pub notes: Vec<String>,
    /// WAL files this repository is owed: archived to enough other
    /// repositories (`require`) while this one was unreachable, and still in
    /// the backlog of the spool root this host's uxwal-archive uses.
    pub owed: Vec<String>,
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl Report {
    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        serde_json::to_writer_pretty(&mut *out, self)?;
        writeln!(out)
    }

    pub fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        let mut s = String::new();
        let _ = write!(s, "repository {}", self.repository);
        if let Some(id) = &self.identity {
            let _ = write!(
                s,
                ": database system {}, {} segments, page magic {:#06X}",
                id.system_identifier,
                bytes(id.segment_size),
                id.page_magic
            );
        }
        s.push('\n');
        let sc = &self.scope;
        let scope: Vec<String> = [
            sc.timeline.map(|t| format!("timeline {t}")),
            sc.from.as_ref().map(|f| format!("from {f}")),
            sc.to.as_ref().map(|t| format!("to {t}")),
            sc.backup.as_ref().map(|b| format!("backup {b}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        let sm = &self.summary;
        let _ = write!(
            s,
            "{} {} files, {} stored",
            if self.mode == "quick" {
                "listed (--quick: segments not read)"
            } else {
                "checked"
            },
            sm.files_checked,
            bytes(sm.bytes_stored),
        );
        if let Some(o) = sm.bytes_original {
            let _ = write!(s, ", {} original", bytes(o));
        }
        let _ = write!(s, ", in {:.1} s", sm.elapsed_seconds);
        if !scope.is_empty() {
            let _ = write!(s, " (scope: {})", scope.join(", "));
        }
        s.push('\n');
        let e = &self.encryption;
        if e.encrypted || e.files_encrypted.is_some_and(|n| n > 0) {
            s.push_str("encryption:");
            if let Some(since) = &e.since {
                let _ = write!(s, " since {since}");
            }
            if let (Some(enc), Some(plain)) = (e.files_encrypted, e.files_plain) {
                let _ = write!(s, "; {enc} files encrypted, {plain} plain");
            }
            let to: Vec<String> = e
                .recipients
                .iter()
                .map(|(r, n)| format!("{r} ({n})"))
                .collect();
            if !to.is_empty() {
                let _ = write!(s, "; to {}", to.join(", "));
            }
            s.push('\n');
        }
        s.push('\n');
        for t in &self.timelines {
            let _ = write!(s, "timeline {}", t.timeline);
            if let (Some(p), Some(at)) = (t.parent, &t.switch_lsn) {
                let _ = write!(s, " (from {p} at {at})");
            }
            match (&t.first_segment, &t.last_segment) {
                (Some(f), Some(l)) => {
                    let _ = write!(s, ": {f} .. {l}, {} segments", t.segments);
                }
                _ => s.push_str(": no full segments"),
            }
            if !t.partial.is_empty() {
                let _ = write!(s, ", {} partial", t.partial.len());
            }
            let _ = write!(s, ", {} stored", bytes(t.bytes_stored));
            if let (Some(o), Some(r)) = (t.bytes_original, t.compression_ratio) {
                let _ = write!(s, " of {} (ratio {r:.1})", bytes(o));
            }
            if t.gaps.is_empty() {
                s.push_str("; gaps: none\n");
            } else {
                let gaps: Vec<String> = t
                    .gaps
                    .iter()
                    .map(|g| {
                        if g.count == 1 {
                            g.first.clone()
                        } else {
                            format!("{} .. {} ({})", g.first, g.last, g.count)
                        }
                    })
                    .collect();
                let _ = writeln!(s, "; gaps: {}", gaps.join(", "));
            }
        }
        if !self.timelines.is_empty() {
            s.push('\n');
        }
        for b in &self.backups {
            let _ = write!(
                s,
                "backup {} {:?} (timeline {}, start {}): restorable to latest (timeline {}",
                b.file, b.label, b.timeline, b.start_lsn, b.target_timeline
            );
            if let Some(l) = &b.latest_segment {
                let _ = write!(s, ", up to {l}");
            }
            s.push_str("): ");
            if b.restorable_to_latest {
                s.push_str("yes\n");
            } else if let Some(m) = &b.first_missing {
                let _ = writeln!(s, "no, first missing {m} ({} missing)", b.missing_segments);
            } else {
                let _ = writeln!(s, "no, {}", b.reason.as_deref().unwrap_or("unknown"));
            }
        }
        if !self.backups.is_empty() {
            s.push('\n');
        }
        for n in &self.notes {
            let _ = writeln!(s, "note: {n}");
        }
        if let (Some(first), Some(last)) = (self.owed.first(), self.owed.last()) {
            let _ = writeln!(
                s,
                "owed: {} file{} archived elsewhere while this repository was unreachable, \
                 still to be copied here by uxwal-archive (first {first}, last {last})",
                self.owed.len(),
                if self.owed.len() == 1 { "" } else { "s" }
            );
        }
        if !self.problems.is_empty() {
            let _ = writeln!(s, "problems:");
            for p in &self.problems {
                let what = match (&p.file, &p.first, &p.last) {
                    (Some(f), _, _) => f.clone(),
                    (None, Some(a), Some(b)) if a != b => format!("{a} .. {b}"),
                    (None, Some(a), _) => a.clone(),
                    _ => String::new(),
                };
                let _ = writeln!(s, "  {}: {what}: {}", p.kind.describe(), p.detail);
            }
            s.push('\n');
        }
        if self.ok {
            s.push_str("OK: nothing is wrong\n");
        } else {
            let n = self.problems.len();
            let _ = writeln!(s, "FAILED: {n} problem{}", if n == 1 { "" } else { "s" });
        }
        out.write_all(s.as_bytes())
    }
}
