//! Push-ahead (`uxwal-archive --parallel N`): while the database waits for one
//! file, ship up to N-1 others it has already marked ready, concurrently, so that
//! their own calls only have to confirm them.
//!
//! PostgreSQL's archiver is serial: it calls `archive_command` for one file and
//! waits. Against an object store most of that time is round trips, so the call for
//! `F` also archives other files named by `archive_status/*.ready` beside `F` (the
//! order is the database's: `.history` first, then by name), each through exactly
//! the same path as `F` ([`archive::archive_file`]: validation, identity,
//! refuse-to-overwrite, durability), each thread with its own repositories. The
//! call waits for all of them and exits with `F`'s result only; a file pushed ahead
//! that fails is a one-line warning and is simply archived by its own call later.
//!
//! Each file pushed ahead successfully is recorded, durably, in a spool entry
//! (`<spool root>/archive-<hash of the WAL directory>/<name>.pushed`: size and
//! SHA-256 of the local file, and the exact repository list with each one's
//! identity and stored object size). The later call for that name exits 0 without
//! archiving only after confirming all of it again: the local file still hashes to
//! the recorded SHA-256, the repository list is the same, and every repository
//! still has the same identity and holds the object with the recorded size. Any
//! doubt (an unreadable entry, a changed file, a missing object, a storage error)
//! removes the entry and archives normally, which compares with what is stored and
//! refuses different content: a spool can save work but never make a call report
//! success for content that is not in the repository.
//!
//! Never touched: anything in the WAL directory or `archive_status/` (the
//! `.ready`/`.done` files are the database's business; they are only read).
//! Disk use: an entry (about 300 bytes) exists only for a file that was pushed
//! ahead and whose own call has not confirmed it yet, and every call removes the
//! entries of files no longer in the WAL directory, so the spool holds at most one
//! small entry per file in the WAL directory. No lock is held across calls: entries
//! are replaced atomically (write, fsync, rename, fsync the directory).
//!
//! Shutdown signals (SIGTERM, SIGINT, SIGHUP) stop the batch: no new file is
//! started, files in flight are abandoned between chunks without being published,
//! and the call exits 1 unless `F` was already stored.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::archive::{self, ArchiveOutcome, Settings, Shipped};
use crate::codec::hex;
use crate::durable::StagedFile;
use crate::error::{Error, Result};
use crate::repo::Repository;
use crate::wal_name::WalName;
use crate::{signals, spool};

/// Suffix of a spool entry: `<name>.pushed`.
const ENTRY_SUFFIX: &str = ".pushed";
/// Largest spool entry read; anything bigger is not one of ours.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// Archives `wal_path` as `name`, pushing up to `parallel - 1` other ready files
/// ahead (see the module documentation).
pub fn run(
    wal_path: &Path,
    name: &WalName,
    settings: &Settings,
    parallel: usize,
) -> Result<ArchiveOutcome> {
    signals::install();
    let wal_dir = match wal_path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let repos = archive::open_repos(settings)?;
    let spool = match Spool::open(&settings.spool_dir, wal_dir) {
        Ok(spool) => spool,
        Err(e) => {
            // Push-ahead only saves time: without a spool, archive this file alone.
            tracing::warn!("{name}: not pushing ahead: {e}");
            return archive::archive_file(&repos, wal_path, name, settings).map(|s| s.outcome);
        }
    };
    spool.remove_stale(wal_dir);

    if spool.confirms(name, wal_path, &repos, settings) {
        tracing::debug!("{name} is already archived by push-ahead (confirmed)");
        return Ok(ArchiveOutcome::AlreadyArchived);
    }

    let others = choose(
        ready_names(&wal_dir.join("archive_status")),
        name,
        |other| spool.has_entry(other),
        parallel - 1,
    );
    std::thread::scope(|scope| {
        for other in &others {
            let path = wal_dir.join(other.to_string());
            let spool = &spool;
            scope.spawn(move || push_one(spool, &path, other, settings));
        }
        archive::archive_file(&repos, wal_path, name, settings).map(|s| s.outcome)
    })
}

/// Archives one file ahead of its own call and records it; failures are warnings.
fn push_one(spool: &Spool, path: &Path, name: &WalName, settings: &Settings) {
    if signals::stop_requested() {
        return;
    }
    let shipped = archive::open_repos(settings).and_then(|repos| {
        let shipped = archive::archive_file(&repos, path, name, settings)?;
        let entry = PushedEntry::new(name, &shipped, &repos, settings)?;
        Ok(entry)
    });
    match shipped {
        Ok(entry) => match spool.record(&entry) {
            Ok(()) => tracing::debug!("{name} pushed ahead and recorded"),
            Err(e) => {
                tracing::warn!("{name}: pushed ahead, but cannot record it in the spool: {e}")
            }
        },
        // The database removed or recycled it after listing: nothing to do.
        Err(Error::Source { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!("{name}: not pushed ahead (its own call will retry): {e}"),
    }
}

/// The names of `archive_status/*.ready` in `status_dir` that are WAL names.
/// An unreadable directory gives none: push-ahead is optional.
fn ready_names(status_dir: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(status_dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".ready"))
                .map(str::to_owned)
        })
        .collect()
}

/// Picks up to `max` files to push ahead from the `.ready` base names: valid WAL
/// names other than `requested` and not yet recorded, in the order PostgreSQL
/// archives them (`pgarch.c` `ready_file_comparator`: history files first, then
/// by name).
fn choose(
    ready: Vec<String>,
    requested: &WalName,
    recorded: impl Fn(&WalName) -> bool,
    max: usize,
) -> Vec<WalName> {
    let mut names: Vec<(bool, String, WalName)> = ready
        .into_iter()
        .filter_map(|n| {
            let name = n.parse::<WalName>().ok()?;
            (name != *requested && !recorded(&name)).then_some((
                !matches!(name, WalName::History { .. }),
                n,
                name,
            ))
        })
        .collect();
    names.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    names.into_iter().take(max).map(|(_, _, n)| n).collect()
}

/// A spool entry: what was pushed ahead, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PushedEntry {
    name: String,
    /// Size of the local file.
    size: u64,
    /// SHA-256 of the local file, lower-case hex.
    sha256: String,
    /// One per repository, in the order given to the command.
    repos: Vec<RepoRecord>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepoRecord {
    /// The location exactly as configured.
    location: String,
    /// The repository's system identifier (decimal), when it has an identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    system_identifier: Option<String>,
    /// Size of the stored object.
    stored_size: u64,
}

impl PushedEntry {
    /// The entry for `shipped`; identities not already known are read from `repos`.
    fn new(
        name: &WalName,
        shipped: &Shipped,
        repos: &[Repository],
        settings: &Settings,
    ) -> Result<Self> {
        let mut records = Vec::with_capacity(repos.len());
        for (i, repo) in repos.iter().enumerate() {
            let identity = match shipped.identities.get(i).copied().flatten() {
                Some(identity) => Some(identity),
                None => repo.identity()?,
            };
            records.push(RepoRecord {
                location: settings.repos[i].clone(),
                system_identifier: identity.map(|i| i.system_identifier.to_string()),
                stored_size: shipped.stored_sizes[i],
            });
        }
        Ok(PushedEntry {
            name: name.to_string(),
            size: shipped.size,
            sha256: hex(&shipped.sha256),
            repos: records,
        })
    }

    /// Parses an entry for `name`; `None` for anything that is not one.
    fn parse(text: &str, name: &WalName) -> Option<Self> {
        let entry: PushedEntry = toml::from_str(text).ok()?;
        let well_formed = entry.name == name.to_string()
            && entry.sha256.len() == 64
            && entry
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            && !entry.repos.is_empty();
        well_formed.then_some(entry)
    }
}

/// The spool directory of one WAL directory.
struct Spool {
    dir: PathBuf,
}

impl Spool {
    /// Opens (creating) `<root>/archive-<16 hex digits of the SHA-256 of the
    /// canonical WAL directory path>`: one per cluster, so that two clusters on one
    /// host never see each other's entries. Root and directory must be private.
    fn open(root: &Path, wal_dir: &Path) -> Result<Spool> {
        let canonical = fs::canonicalize(wal_dir).map_err(|e| {
            Error::Config(format!(
                "cannot resolve the WAL directory {}: {e}",
                wal_dir.display()
            ))
        })?;
        let digest = Sha256::digest(canonical.as_os_str().as_encoded_bytes());
        spool::open_private_dir(root)?;
        let dir = spool::open_private_dir(&root.join(format!("archive-{}", hex(&digest[..8]))))?;
        Ok(Spool { dir })
    }

    fn entry_path(&self, name: &WalName) -> PathBuf {
        self.dir.join(format!("{name}{ENTRY_SUFFIX}"))
    }

    fn has_entry(&self, name: &WalName) -> bool {
        self.entry_path(name).exists()
    }

    /// Writes `entry` durably, replacing any older one for the same name.
    fn record(&self, entry: &PushedEntry) -> io::Result<()> {
        let text = toml::to_string(entry).map_err(io::Error::other)?;
        let final_name = format!("{}{ENTRY_SUFFIX}", entry.name);
        let mut staged = StagedFile::create(&self.dir.join("tmp"), &final_name)?;
        staged.write_all(text.as_bytes())?;
        staged.publish_replace_durable(&self.dir.join(final_name))
    }

    /// Removes the entry of `name`. Not fsynced: an entry that comes back after a
    /// crash is checked in full before it is trusted, like any other.
    fn remove(&self, name: &WalName) {
        match fs::remove_file(self.entry_path(name)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::warn!("{name}: cannot remove its spool entry: {e}"),
        }
    }

    /// Removes the entries of files the database has removed or recycled.
    fn remove_stale(&self, wal_dir: &Path) {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(base) = file_name
                .to_str()
                .and_then(|n| n.strip_suffix(ENTRY_SUFFIX))
            else {
                continue;
            };
            let gone = match fs::symlink_metadata(wal_dir.join(base)) {
                Err(e) => e.kind() == io::ErrorKind::NotFound,
                Ok(_) => false,
            };
            if gone {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// True when `name` has an entry and everything in it still holds (see the
    /// module documentation). The entry is removed either way: once confirmed it
    /// has served its purpose, and when not, the normal path decides.
    fn confirms(
        &self,
        name: &WalName,
        wal_path: &Path,
        repos: &[Repository],
        settings: &Settings,
    ) -> bool {
        let text = match read_entry(&self.entry_path(name)) {
            Ok(None) => return false,
            Ok(Some(text)) => text,
            Err(e) => {
                tracing::warn!("{name}: cannot read its spool entry ({e}); archiving it again");
                self.remove(name);
                return false;
            }
        };
        let verdict = match PushedEntry::parse(&text, name) {
            None => Err("its spool entry is damaged".to_string()),
            Some(entry) => check_entry(&entry, name, wal_path, repos, settings),
        };
        self.remove(name);
        match verdict {
            Ok(()) => true,
            Err(reason) => {
                tracing::info!("{name}: {reason}; archiving it again");
                false
            }
        }
    }
}

/// Checks a recorded push against the local file and the repositories now.
fn check_entry(
    entry: &PushedEntry,
    name: &WalName,
    wal_path: &Path,
    repos: &[Repository],
    settings: &Settings,
) -> std::result::Result<(), String> {
    let locations: Vec<&str> = entry.repos.iter().map(|r| r.location.as_str()).collect();
    if locations
        != settings
            .repos
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
    {
        return Err("it was pushed ahead to other repositories".into());
    }
    // The local hash is CPU and the repository checks are round trips: overlap them.
    std::thread::scope(|scope| {
        let hashed = scope.spawn(|| hash_file(wal_path));
        let stored = check_repositories(entry, name, repos, settings);
        let (size, sha256) = hashed
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("hashing thread panicked")))
            .map_err(|e| format!("cannot read {}: {e}", wal_path.display()))?;
        if size != entry.size || hex(&sha256) != entry.sha256 {
            return Err("the file changed since it was pushed ahead".into());
        }
        stored
    })
}

/// Checks that every repository still has the recorded identity and holds the
/// object with the recorded size. The object checks run on clients of their own
/// (a [`Repository`] serves one thread), so they are in flight together with the
/// identity checks: a confirmation costs one round trip, not two per repository.
fn check_repositories(
    entry: &PushedEntry,
    name: &WalName,
    repos: &[Repository],
    settings: &Settings,
) -> std::result::Result<(), String> {
    let key = Repository::key(name);
    std::thread::scope(|scope| {
        let stats: Vec<_> = settings
            .repos
            .iter()
            .map(|location| {
                let key = &key;
                scope.spawn(move || {
                    Repository::open_with(location, &settings.store).and_then(|r| r.stat(key))
                })
            })
            .collect();
        for (repo, record) in repos.iter().zip(&entry.repos) {
            let identity = repo
                .identity()
                .map_err(|e| e.to_string())?
                .map(|i| i.system_identifier.to_string());
            // A repository without an identity then (only history files in it) may
            // have gained one since; one that had an identity must still have it.
            if record.system_identifier.is_some() && identity != record.system_identifier {
                return Err(format!(
                    "repository {} has another identity than when it was pushed ahead",
                    repo.describe()
                ));
            }
        }
        for ((stat, repo), record) in stats.into_iter().zip(repos).zip(&entry.repos) {
            let stored = stat
                .join()
                .map_err(|_| "the checking thread panicked".to_string())?
                .map_err(|e| e.to_string())?;
            if stored != Some(record.stored_size) {
                return Err(format!(
                    "repository {} no longer holds what was pushed ahead",
                    repo.describe()
                ));
            }
        }
        Ok(())
    })
}

/// Reads an entry file; `None` when there is none.
fn read_entry(path: &Path) -> io::Result<Option<String>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut text = String::new();
    file.take(MAX_ENTRY_BYTES).read_to_string(&mut text)?;
    Ok(Some(text))
}

/// Size and SHA-256 of a file, read in 1 MiB blocks.
fn hash_file(path: &Path) -> io::Result<(u64, [u8; 32])> {
    let mut hasher = Sha256::new();
    let size = io::copy(
        &mut io::BufReader::with_capacity(1 << 20, File::open(path)?),
        &mut hasher,
    )?;
    Ok((size, hasher.finalize().into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    fn shown(picked: Vec<WalName>) -> Vec<String> {
        picked.into_iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn picks_in_the_database_order_skipping_the_requested_recorded_and_invalid() {
        let requested: WalName = "000000010000000000000003".parse().unwrap();
        let recorded: WalName = "000000010000000000000005".parse().unwrap();
        let ready = names(&[
            "000000010000000000000006",
            "000000010000000000000003",
            "000000010000000000000005",
            "000000020000000000000001",
            "00000002.history",
            "000000010000000000000004.00000028.backup",
            "000000010000000000000004",
            "not-a-wal-name",
            "00000001000000000000000g",
            "000000010000000000000002.partial",
        ]);
        let all = choose(ready.clone(), &requested, |n| *n == recorded, 64);
        assert_eq!(
            shown(all),
            [
                "00000002.history",
                "000000010000000000000002.partial",
                "000000010000000000000004",
                "000000010000000000000004.00000028.backup",
                "000000010000000000000006",
                "000000020000000000000001",
            ]
        );
        let three = choose(ready, &requested, |n| *n == recorded, 3);
        assert_eq!(
            shown(three),
            [
                "00000002.history",
                "000000010000000000000002.partial",
                "000000010000000000000004",
            ]
        );
        assert!(choose(Vec::new(), &requested, |_| false, 3).is_empty());
        assert!(choose(
            names(&["000000010000000000000009"]),
            &requested,
            |_| false,
            0
        )
        .is_empty());
    }

    fn sample() -> PushedEntry {
        PushedEntry {
            name: "000000010000000000000004".into(),
            size: 1 << 20,
            sha256: "ab".repeat(32),
            repos: vec![
                RepoRecord {
                    location: "/srv/wal".into(),
                    system_identifier: Some("7312345678901234567".into()),
                    stored_size: 1234,
                },
                RepoRecord {
                    location: "s3://bucket/prefix".into(),
                    system_identifier: None,
                    stored_size: 1234,
                },
            ],
        }
    }

    #[test]
    fn entries_round_trip_and_damaged_ones_are_refused() {
        let name: WalName = "000000010000000000000004".parse().unwrap();
        let entry = sample();
        let text = toml::to_string(&entry).unwrap();
        assert_eq!(PushedEntry::parse(&text, &name), Some(entry.clone()));

        let other: WalName = "000000010000000000000005".parse().unwrap();
        assert_eq!(
            PushedEntry::parse(&text, &other),
            None,
            "another file's entry"
        );
        assert_eq!(PushedEntry::parse(&text[..text.len() / 2], &name), None);
        assert_eq!(PushedEntry::parse("", &name), None);
        assert_eq!(PushedEntry::parse("\u{0}\u{1}garbage", &name), None);
        let unknown = format!("surprise = 1\n{text}");
        assert_eq!(PushedEntry::parse(&unknown, &name), None);
        let bad_hash = text.replace(&"ab".repeat(32), &"AB".repeat(32));
        assert_eq!(PushedEntry::parse(&bad_hash, &name), None);
        let short_hash = text.replace(&"ab".repeat(32), "abcd");
        assert_eq!(PushedEntry::parse(&short_hash, &name), None);
        let no_repos = toml::to_string(&PushedEntry {
            repos: Vec::new(),
            ..entry
        })
        .unwrap();
        assert_eq!(PushedEntry::parse(&no_repos, &name), None);
    }

    #[test]
    fn spool_records_replaces_and_forgets_removed_files() {
        let base = tempfile::tempdir().unwrap();
        let wal_dir = base.path().join("pg_wal");
        fs::create_dir(&wal_dir).unwrap();
        let root = base.path().join("spool");
        let spool = Spool::open(&root, &wal_dir).unwrap();
        let again = Spool::open(&root, &wal_dir).unwrap();
        assert_eq!(spool.dir, again.dir, "one directory per WAL directory");
        let elsewhere = base.path().join("other_wal");
        fs::create_dir(&elsewhere).unwrap();
        assert_ne!(Spool::open(&root, &elsewhere).unwrap().dir, spool.dir);

        let name: WalName = "000000010000000000000004".parse().unwrap();
        let mut entry = sample();
        spool.record(&entry).unwrap();
        entry.size = 42;
        spool.record(&entry).unwrap();
        let text = read_entry(&spool.entry_path(&name)).unwrap().unwrap();
        assert_eq!(PushedEntry::parse(&text, &name).unwrap().size, 42);
        assert!(spool.has_entry(&name));

        fs::write(wal_dir.join(name.to_string()), b"still here").unwrap();
        spool.remove_stale(&wal_dir);
        assert!(
            spool.has_entry(&name),
            "the file is still in the WAL directory"
        );
        fs::remove_file(wal_dir.join(name.to_string())).unwrap();
        spool.remove_stale(&wal_dir);
        assert!(!spool.has_entry(&name), "the database removed the file");
    }
}
