//! `uxwal-sync`: copies the WAL files one repository holds and another lacks,
//! as they are stored (no recompression; encrypted objects stay encrypted),
//! never overwriting anything.
//!
//! Order of work: read both repositories' metadata and refuse two different
//! archive identities before anything is written; make the target ready
//! ([`Repository::prepare_copy`]: `FORMAT`, and the source's `ENCRYPTION` and
//! `IDENTITY` when it has none); list both; then, on `jobs` threads each with
//! its own repository handles, for every WAL file of the source in scope:
//!
//! - the target lacks it: download the stored object once into an unlinked
//!   spill file, check exactly those bytes with verify's check
//!   ([`check::check`]: the one stored-object reader, a full decode against the
//!   recorded SHA-256 and size, a segment's header against the identity), and
//!   publish them with the target's no-overwrite create (the path archive
//!   uses; durable local writes for a directory). A damaged object is reported
//!   and not copied. An encrypted object no configured identity opens is
//!   copied after the checks that need no key (its header and length), and
//!   counted as unverified;
//! - the target holds it: the recorded SHA-256 and size decide (for encrypted
//!   objects no identity opens, the keyed digest in their headers), else the
//!   stored bytes: the same content is skipped, anything else is a conflict.
//!
//! Each copy is one atomic create, so a run that was killed is resumed by
//! running it again: what it copied is skipped.

use std::collections::BTreeSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::codec::digest::{self, CHUNK};
use crate::commands::verify::check::{self, Checked};
use crate::commands::verify::report::ProblemKind;
use crate::error::{Error, Result};
use crate::repo::remote::{Scheme, StoreOptions};
use crate::repo::stored::{max_stored_len, SizeRule};
use crate::repo::{Backend, Entry, Identity, Listed, Object, PutOutcome, Repository, Staged};
use crate::wal::name::{SegmentName, WalName};

/// How to sync.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The repository copied from.
    pub from: String,
    /// The repository copied to.
    pub to: String,
    pub store: StoreOptions,
    /// Only segments and `.partial` files at or after this position (within
    /// each timeline; the timeline part is ignored); `.history` and `.backup`
    /// files are always taken.
    pub from_segment: Option<SegmentName>,
    /// List what would be copied; write nothing.
    pub dry_run: bool,
    /// Files copied at once.
    pub jobs: usize,
    pub json: bool,
    /// A line per file on stderr (asked for, or stderr is a terminal).
    pub progress: bool,
}

/// The default number of files copied at once: 4 when either side is object
/// storage (requests wait on the network), else 1.
pub fn default_jobs(from: &str, to: &str) -> usize {
    if Scheme::of(from).is_some() || Scheme::of(to).is_some() {
        4
    } else {
        1
    }
}

/// What a run did: the `--json` summary (README, "uxwal-sync").
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub dry_run: bool,
    /// Files copied (with `--dry-run`: that would be copied).
    pub copied: u64,
    /// Files the target already held with the same content.
    pub skipped: u64,
    /// Files the target holds with different content: not copied.
    pub conflicts: u64,
    /// Damaged objects of the source: not copied.
    pub damaged: u64,
    /// Files that could not be read or stored (storage errors): not copied.
    pub failed: u64,
    /// Of `copied`, encrypted files no configured identity opens: copied after
    /// checking their header and length only.
    pub unverified: u64,
    /// Stored bytes copied (with `--dry-run`: that would be copied).
    pub bytes: u64,
    /// Each file not copied, and why.
    pub problems: Vec<Problem>,
}

/// A file that was not copied.
#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    /// The WAL file name.
    pub file: String,
    /// `conflict`, `damaged` or `failed`.
    pub kind: &'static str,
    pub detail: String,
}

impl Report {
    /// True when everything in scope is in the target identically (with
    /// `--dry-run`: nothing in the way of copying it).
    pub fn ok(&self) -> bool {
        self.conflicts == 0 && self.damaged == 0 && self.failed == 0
    }

    fn write_human(&self, out: &mut dyn Write) -> io::Result<()> {
        let verb = if self.dry_run { "would copy" } else { "copied" };
        writeln!(
            out,
            "{verb} {} files ({} bytes) from {} to {}; {} already there; {} conflicts, {} damaged, {} failed",
            self.copied,
            self.bytes,
            self.from,
            self.to,
            self.skipped,
            self.conflicts,
            self.damaged,
            self.failed
        )?;
        if self.unverified > 0 {
            writeln!(
                out,
                "{} encrypted files were copied without decrypting them (no matching identity): \
                 their header and length were checked, not their content",
                self.unverified
            )?;
        }
        Ok(())
    }
}

/// Syncs and prints the summary (human or JSON) on stdout.
pub fn run_and_print(settings: &Settings) -> Result<Report> {
    let report = run(settings)?;
    let mut out = io::stdout().lock();
    if settings.json {
        serde_json::to_writer_pretty(&mut out, &report)
            .map_err(io::Error::from)
            .and_then(|()| writeln!(out))
    } else {
        report.write_human(&mut out)
    }
    .map_err(Error::Output)?;
    Ok(report)
}

/// One file of the source in scope.
struct Job {
    key: String,
    name: WalName,
    size: u64,
    /// The target lists this key.
    held: bool,
}

/// What became of one file.
enum Done {
    Copied {
        bytes: u64,
        /// Why the content was not checked (an encrypted object no identity opens).
        unverified: Option<String>,
    },
    WouldCopy,
    Skipped,
    Conflict(String),
    Damaged(String),
    Failed(String),
    /// Listed in the source, but not there when read.
    Gone(String),
}

/// Copies what `settings.from` holds and `settings.to` lacks.
pub fn run(settings: &Settings) -> Result<Report> {
    let open = |location: &str| Repository::open_with(location, &settings.store);
    let (from, to) = (open(&settings.from)?, open(&settings.to)?);
    let source = from.recorded()?;
    if !source.is_repository {
        return Err(Error::NotARepository {
            location: from.describe(),
        });
    }
    let target = to.recorded()?;
    refuse_different(&from, &to, source.identity, target.identity)?;
    let target_exists = target.is_repository || !settings.dry_run;
    if !settings.dry_run {
        let now = to.prepare_copy(&source)?;
        refuse_different(&from, &to, source.identity, now.identity)?;
    }
    let held: BTreeSet<String> = match to.list("") {
        Ok(listed) => listed.into_iter().map(|l| l.key).collect(),
        // A dry run to a repository not created yet: it holds nothing.
        Err(Error::Storage { source, .. })
            if !target_exists && source.kind() == io::ErrorKind::NotFound =>
        {
            BTreeSet::new()
        }
        Err(e) => return Err(e),
    };
    let jobs = in_scope(from.list("")?, &held, settings.from_segment);

    let mut report = Report {
        from: from.describe(),
        to: to.describe(),
        dry_run: settings.dry_run,
        ..Report::default()
    };
    let identity = source.identity;
    let open = || {
        Ok((
            Repository::open_with(&settings.from, &settings.store)?,
            Repository::open_with(&settings.to, &settings.store)?,
        ))
    };
    let work = |(from, to): &(Repository, Repository), job: &Job| {
        sync_one(from, to, job, settings, identity.as_ref())
    };
    super::pool::run("sync", &jobs, settings.jobs, &open, &work, |job, done| {
        tally(&mut report, job, done, settings)
    })?;
    Ok(report)
}

/// Refuses two repositories that record different archive identities.
fn refuse_different(
    from: &Repository,
    to: &Repository,
    source: Option<Identity>,
    target: Option<Identity>,
) -> Result<()> {
    match (source, target) {
        (Some(a), Some(b))
            if a.system_identifier != b.system_identifier || a.segment_size != b.segment_size =>
        {
            Err(Error::DifferentArchives {
                from: from.describe(),
                to: to.describe(),
                from_system: a.system_identifier,
                from_segment_size: a.segment_size,
                to_system: b.system_identifier,
                to_segment_size: b.segment_size,
            })
        }
        _ => Ok(()),
    }
}

/// The WAL files of the source listing in scope, in key order (history files
/// first, then each timeline's files in order). Keys that are not WAL files at
/// their proper place are named and left alone; metadata and staging files
/// are never copied.
fn in_scope(listed: Vec<Listed>, held: &BTreeSet<String>, from: Option<SegmentName>) -> Vec<Job> {
    let mut jobs: Vec<Job> = listed
        .into_iter()
        .filter_map(|l| match Repository::classify(&l.key) {
            Entry::Wal(name) => Some((l, name)),
            Entry::Unknown => {
                tracing::warn!("{}: not a file uxwal stores there; not copied", l.key);
                None
            }
            Entry::Metadata | Entry::Staging => None,
        })
        .filter(|(_, name)| match (name, from) {
            (WalName::Segment(s) | WalName::Partial(s), Some(f)) => {
                (s.log, s.seg) >= (f.log, f.seg)
            }
            _ => true,
        })
        .map(|(l, name)| Job {
            held: held.contains(&l.key),
            key: l.key,
            name,
            size: l.size,
        })
        .collect();
    jobs.sort_by(|a, b| a.key.cmp(&b.key));
    jobs
}

/// Counts one file's result and says what became of it.
fn tally(report: &mut Report, job: &Job, done: Done, settings: &Settings) {
    let problem = |report: &mut Report, kind: &'static str, detail: String| {
        tracing::error!("{}: not copied: {detail}", job.name);
        report.problems.push(Problem {
            file: job.name.to_string(),
            kind,
            detail,
        });
    };
    match done {
        Done::Conflict(why) => {
            report.conflicts += 1;
            problem(report, "conflict", why);
        }
        Done::Damaged(why) => {
            report.damaged += 1;
            problem(report, "damaged", why);
        }
        Done::Failed(why) | Done::Gone(why) => {
            report.failed += 1;
            problem(report, "failed", why);
        }
        Done::Skipped => {
            report.skipped += 1;
            tracing::debug!("{}: already there with the same content", job.name);
        }
        Done::WouldCopy => {
            report.copied += 1;
            report.bytes += job.size;
            if !settings.json {
                println!("would copy {} ({} bytes)", job.key, job.size);
            }
        }
        Done::Copied { bytes, unverified } => {
            report.copied += 1;
            report.bytes += bytes;
            let note = match &unverified {
                Some(why) => {
                    report.unverified += 1;
                    format!(", encrypted, content not verified: {why}")
                }
                None => String::new(),
            };
            if settings.progress {
                tracing::info!("copied {} ({bytes} bytes{note})", job.key);
            } else {
                tracing::debug!("copied {} ({bytes} bytes{note})", job.key);
            }
        }
    }
}

/// Syncs one file.
fn sync_one(
    from: &Repository,
    to: &Repository,
    job: &Job,
    settings: &Settings,
    identity: Option<&Identity>,
) -> Done {
    if job.held {
        return compare(from, to, job, identity);
    }
    if settings.dry_run {
        return Done::WouldCopy;
    }
    copy(from, to, job, settings, identity)
}

/// Copies one file the target lacks: download, check those bytes, create.
fn copy(
    from: &Repository,
    to: &Repository,
    job: &Job,
    settings: &Settings,
    identity: Option<&Identity>,
) -> Done {
    let identities = settings.store.keys.identities.as_ref();
    copy_checked(from, to, job, identities, identity)
        .unwrap_or_else(|e| Done::Failed(e.to_string()))
}

/// What [`copy_file`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Copied {
    /// The target holds the file now (an encrypted object no identity opens:
    /// after the checks that need no key).
    Copied,
    /// The target already held the same content.
    AlreadyThere,
    /// The source does not hold the file.
    NotInSource,
    /// Not copied, and copying again will not help: the target holds
    /// different content, or the source's copy is damaged.
    Refused(String),
}

/// Copies one WAL file from `from` to `to` as sync does (download into an
/// unlinked spill file, check those bytes completely, create without
/// replacing), for the archive's backlog of owed copies. An error is a
/// storage failure of one of the two (its location says which).
pub fn copy_file(
    from: &Repository,
    to: &Repository,
    name: &WalName,
    store: &StoreOptions,
    identity: Option<&Identity>,
) -> Result<Copied> {
    let job = Job {
        key: Repository::key(name),
        name: *name,
        size: 0,
        held: false,
    };
    Ok(
        match copy_checked(from, to, &job, store.keys.identities.as_ref(), identity)? {
            Done::Copied { .. } => Copied::Copied,
            Done::Skipped => Copied::AlreadyThere,
            Done::Gone(_) => Copied::NotInSource,
            Done::Conflict(why) | Done::Damaged(why) => Copied::Refused(why),
            Done::Failed(why) => {
                return Err(Error::Storage {
                    location: to.describe(),
                    op: "compare",
                    key: job.key,
                    source: io::Error::other(why),
                })
            }
            Done::WouldCopy => Copied::Copied,
        },
    )
}

/// [`copy`], with the storage failures of either repository as errors.
fn copy_checked(
    from: &Repository,
    to: &Repository,
    job: &Job,
    identities: Option<&std::sync::Arc<crate::crypt::Identities>>,
    identity: Option<&Identity>,
) -> Result<Done> {
    let rule = SizeRule::for_name(&job.name, identity.map(|i| i.segment_size));
    let (mut file, len) = match download(from, job, max_stored_len(rule.max()))? {
        Ok(spilled) => spilled,
        Err(done) => return Ok(done),
    };
    let unverified = match file.try_clone() {
        Ok(copy) => {
            let spilled = Spilled {
                location: from.describe(),
                key: job.key.clone(),
                file: copy,
                len,
            };
            let held = Repository::with_backend(Box::new(spilled));
            let held = match identities {
                Some(identities) => held.with_identities(identities.clone()),
                None => held,
            };
            match check::check(&held, &job.name, identity) {
                Checked::Intact { .. } => None,
                Checked::Problem(ProblemKind::NoIdentity, why) => Some(why),
                // The spill file could not be read back: a local failure,
                // not damage.
                Checked::Problem(ProblemKind::Unreadable, why) => return Ok(Done::Failed(why)),
                Checked::Problem(kind, why) => {
                    return Ok(Done::Damaged(format!(
                        "{} in {}: {why}",
                        kind.describe(),
                        from.describe()
                    )))
                }
                Checked::Vanished => return Ok(Done::Failed("the spill file vanished".into())),
            }
        }
        Err(e) => return Ok(Done::Failed(format!("cannot reopen the spill file: {e}"))),
    };
    Ok(match store(to, job, &mut file)? {
        PutOutcome::Created => Done::Copied {
            bytes: len,
            unverified,
        },
        // Created meanwhile (another sync, or an archive into the target).
        PutOutcome::AlreadyExists => compare(from, to, job, identity),
    })
}

/// Downloads the source's stored object of `job` into an unlinked spill
/// file: `Ok(Err(_))` for an object absent or too long for its name (refused
/// from its length, unread).
fn download(
    from: &Repository,
    job: &Job,
    max_len: u64,
) -> Result<std::result::Result<(File, u64), Done>> {
    let Some(mut obj) = from.get(&job.key)? else {
        return Ok(Err(Done::Gone(format!(
            "listed in {}, but gone when read",
            from.describe()
        ))));
    };
    if obj.len > max_len {
        return Ok(Err(Done::Damaged(format!(
            "{} bytes stored in {}: longer than uxwal ever stores for this name",
            obj.len,
            from.describe()
        ))));
    }
    let storage = |source: io::Error| Error::Storage {
        location: from.describe(),
        op: "read",
        key: job.key.clone(),
        source,
    };
    let spill_error = |e: io::Error| Error::Internal(format!("spill file for {}: {e}", job.name));
    let mut file = spill_file().map_err(spill_error)?;
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0u64;
    loop {
        let n = obj.reader.read(&mut buf).map_err(storage)?;
        if n == 0 {
            break;
        }
        total += n as u64;
        if total > obj.len {
            break;
        }
        file.write_all(buf.get(..n).unwrap_or_default())
            .map_err(spill_error)?;
    }
    if total != obj.len {
        return Err(storage(io::Error::other(format!(
            "{total} bytes read of an object of {} bytes (changed while read?)",
            obj.len
        ))));
    }
    Ok(Ok((file, total)))
}

/// Publishes the spilled bytes in the target without replacing anything.
fn store(to: &Repository, job: &Job, file: &mut File) -> Result<PutOutcome> {
    let storage = |op: &'static str, source: io::Error| Error::Storage {
        location: to.describe(),
        op,
        key: job.key.clone(),
        source,
    };
    file.seek(SeekFrom::Start(0))
        .map_err(|e| Error::Internal(format!("spill file for {}: {e}", job.name)))?;
    let mut staged = to.stage(&job.key)?;
    io::copy(file, &mut staged).map_err(|e| storage("write", e))?;
    to.publish(staged, &job.key)
}

/// Decides a file both hold: the recorded SHA-256 and size (or, for
/// encrypted objects no identity opens, their keyed digests), else the stored
/// bytes.
fn compare(from: &Repository, to: &Repository, job: &Job, identity: Option<&Identity>) -> Done {
    let size = identity.map(|i| i.segment_size);
    let here = from.open_stored(&job.name, size);
    let there = to.open_stored(&job.name, size);
    let mut damaged_here = None;
    match (here, there) {
        (Ok(Some(a)), Ok(Some(b))) => {
            return match a.trailer() == b.trailer() {
                true => Done::Skipped,
                false => Done::Conflict(format!(
                    "{} holds different content (sha256 {}, {} bytes; here sha256 {}, {} bytes)",
                    to.describe(),
                    b.trailer().sha256_hex(),
                    b.trailer().size,
                    a.trailer().sha256_hex(),
                    a.trailer().size
                )),
            };
        }
        (
            Err(Error::NoIdentity { mac: Some(a), .. }),
            Err(Error::NoIdentity { mac: Some(b), .. }),
        ) if a == b => return Done::Skipped,
        (Ok(None), _) | (_, Ok(None)) => {
            return Done::Failed("listed, but gone when read".into());
        }
        (Err(e @ Error::Corrupt { .. }), _) => damaged_here = Some(e.to_string()),
        (Err(e @ Error::Storage { .. }), _) | (_, Err(e @ Error::Storage { .. })) => {
            return Done::Failed(e.to_string())
        }
        _ => {}
    }
    match (raw_sha256(from, &job.key), raw_sha256(to, &job.key)) {
        (Ok(a), Ok(b)) if a == b => Done::Skipped,
        (Ok(_), Ok(_)) => match damaged_here {
            Some(why) => Done::Damaged(why),
            None => Done::Conflict(format!(
                "{} holds a different object under {}",
                to.describe(),
                job.key
            )),
        },
        (Err(e), _) | (_, Err(e)) => Done::Failed(e.to_string()),
    }
}

/// SHA-256 of a stored object's bytes as stored.
fn raw_sha256(repo: &Repository, key: &str) -> Result<Option<[u8; 32]>> {
    let Some(mut obj) = repo.get(key)? else {
        return Ok(None);
    };
    let (sha256, _) = digest::hash_reader(&mut obj.reader).map_err(|source| Error::Storage {
        location: repo.describe(),
        op: "read",
        key: key.to_owned(),
        source,
    })?;
    Ok(Some(sha256))
}

/// A new file in the temporary directory (`TMPDIR`), mode 0600, created
/// exclusively (never an existing file or a symlink planted there) and
/// unlinked at once: nothing is left behind however the run ends.
fn spill_file() -> io::Result<File> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    // A file with no name at all where the filesystem can (O_TMPFILE): nobody
    // else sharing the directory can see, open or race for it.
    use rustix::fs::{Mode, OFlags};
    let unnamed = OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC;
    if let Ok(fd) = rustix::fs::open(&dir, unnamed, Mode::from_raw_mode(0o600)) {
        return Ok(File::from(fd));
    }
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".uxwal-sync.{}.{n}", std::process::id()));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)
        {
            Ok(file) => {
                std::fs::remove_file(&path)?;
                return Ok(file);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 1_000_000 => continue,
            Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        }
    }
}

/// The one object just downloaded, as a read-only repository: the stored
/// object reader checks exactly the bytes that are then copied.
struct Spilled {
    location: String,
    key: String,
    file: File,
    len: u64,
}

impl Backend for Spilled {
    fn describe(&self) -> String {
        self.location.clone()
    }
    fn stage(&self, _: &str) -> io::Result<Box<dyn Staged>> {
        Err(io::Error::other("a spilled object is read-only"))
    }
    fn get(&self, key: &str) -> io::Result<Option<Object>> {
        if key != self.key {
            return Ok(None);
        }
        Ok(Some(Object {
            len: self.len,
            reader: Box::new(self.file.try_clone()?),
        }))
    }
    fn stat(&self, key: &str) -> io::Result<Option<u64>> {
        Ok((key == self.key).then_some(self.len))
    }
    fn make_durable(&self, _: &str) -> io::Result<()> {
        Ok(())
    }
    fn list(&self, _: &str) -> io::Result<Vec<Listed>> {
        Ok(Vec::new())
    }
    fn delete(&self, keys: &[String]) -> Vec<io::Result<()>> {
        keys.iter()
            .map(|_| Err(io::Error::other("a spilled object is read-only")))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(key: &str) -> Listed {
        Listed {
            key: key.into(),
            size: 1,
            modified: None,
        }
    }

    #[test]
    fn the_scope_takes_wal_files_from_the_segment_on_and_every_history_and_backup_file() {
        let keys = [
            "FORMAT",
            "IDENTITY",
            "tmp/x.uxwal-tmp",
            "wal/0000000100000000/000000010000000000000001",
            "wal/0000000100000000/000000010000000000000002.00000028.backup",
            "wal/0000000100000000/000000010000000000000003",
            "wal/0000000200000000/000000020000000000000002.partial",
            "wal/0000000200000000/000000020000000000000004",
            "history/00000002.history",
            "wal/stray",
        ];
        let held: BTreeSet<String> = ["history/00000002.history".to_string()].into();
        let from = "000000010000000000000003"
            .parse::<WalName>()
            .unwrap()
            .segment();
        let jobs = in_scope(keys.iter().map(|k| listed(k)).collect(), &held, from);
        let got: Vec<(&str, bool)> = jobs.iter().map(|j| (j.key.as_str(), j.held)).collect();
        assert_eq!(
            got,
            [
                ("history/00000002.history", true),
                (
                    "wal/0000000100000000/000000010000000000000002.00000028.backup",
                    false
                ),
                ("wal/0000000100000000/000000010000000000000003", false),
                ("wal/0000000200000000/000000020000000000000004", false),
            ]
        );
    }
}
