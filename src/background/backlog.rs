//! The backlog of owed copies: with `require = K` below the number of
//! repositories, `uxwal-archive` exits 0 once K repositories hold a file, and
//! records here, durably and before it exits, each repository that still lacks
//! it. Later calls copy what is owed from a repository that holds it (see
//! `commands::archive`), and remove an entry only once the copy is confirmed.
//!
//! It lives in the spool root, so it is owned and checked like the spool
//! ([`super::spool`]: a private directory, used only through descriptors):
//!
//! ```text
//! <spool root>/owed/<key>/REPOSITORY   the repository's location
//! <spool root>/owed/<key>/DOWN         the last attempt to reach it failed (when, in Unix seconds)
//! <spool root>/owed/<key>/<WAL name>   one empty file per owed copy
//! ```
//!
//! `<key>` is [`location_key`] of the repository's location. Unlike the rest of
//! the spool, losing the backlog loses information (which copies are owed; the
//! WAL itself is still in K repositories, and `uxwal-verify` of the repository
//! that lacks it shows the gap), so it is written with fsyncs and never
//! silently dropped. At most [`MAX_OWED`] copies are owed per repository: a
//! full backlog makes a call require every repository again, so the database
//! keeps its WAL instead.

use std::io::{self, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::fs::FileType;

use super::spool::{location_key, SpoolDir, STAGING_DIR};
use crate::error::{Error, Result};
use crate::wal::name::WalName;

/// The directory of the backlog in the spool root.
pub const DIR: &str = "owed";
/// Most copies owed to one repository.
pub const MAX_OWED: usize = 10_000;
const REPOSITORY: &str = "REPOSITORY";
const DOWN: &str = "DOWN";
/// Longest repository location recorded.
const MAX_LOCATION: u64 = 4096;

/// The backlog of one spool root.
#[derive(Debug)]
pub struct Backlog {
    dir: SpoolDir,
}

/// The copies owed to one repository.
#[derive(Debug)]
pub struct Owed {
    dir: SpoolDir,
    location: String,
}

fn failed(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::Internal(format!(
        "backlog of owed copies {}: cannot {what}: {e}",
        path.display()
    ))
}

impl Backlog {
    /// Opens (creating it) the backlog of the spool root `root`.
    /// Refused on a spool root in memory (tmpfs, the usual `/tmp` of the
    /// fallback root): a reboot would forget every owed copy.
    pub fn open(root: &Path) -> Result<Backlog> {
        let root = SpoolDir::open_root(root, super::spool::data_directory().as_deref())?;
        if root
            .is_in_memory()
            .map_err(|e| failed(root.path(), "find its filesystem", e))?
        {
            return Err(Error::Config(format!(
                "the spool root {} is in memory (tmpfs), which a reboot empties: \
                 set spool_dir to a directory on a disk to keep the backlog of owed copies",
                root.path().display()
            )));
        }
        Ok(Backlog {
            dir: root.open_dir(DIR)?,
        })
    }

    /// Opens the backlog of `root` only when it exists: `None` otherwise (a
    /// reader, such as `uxwal-verify`, creates nothing).
    pub fn open_existing(root: &Path) -> Result<Option<Backlog>> {
        if !root.join(DIR).is_dir() {
            return Ok(None);
        }
        Backlog::open(root).map(Some)
    }

    /// The copies owed to the repository at `location` (its directory is made
    /// when it is new).
    pub fn owed(&self, location: &str) -> Result<Owed> {
        let dir = self.dir.open_dir(&location_key(location.as_bytes()))?;
        let recorded = dir
            .read_small(REPOSITORY, MAX_LOCATION)
            .map_err(|e| failed(dir.path(), "read its REPOSITORY file", e))?;
        match recorded {
            Some(bytes) if bytes == location.as_bytes() => {}
            Some(_) => {
                return Err(failed(
                    dir.path(),
                    "use it",
                    format!("it records another repository than {location}"),
                ))
            }
            None => {
                let write = || -> io::Result<()> {
                    let staged = dir.stage(REPOSITORY)?;
                    staged.file().write_all(location.as_bytes())?;
                    dir.publish_durable(staged, REPOSITORY)
                };
                write().map_err(|e| failed(dir.path(), "record its repository", e))?;
            }
        }
        Ok(Owed {
            dir,
            location: location.to_owned(),
        })
    }

    /// Every repository with owed copies, and the copies (sorted).
    pub fn all(&self) -> Result<Vec<(String, Vec<WalName>)>> {
        let mut found = Vec::new();
        let entries = self
            .dir
            .entries()
            .map_err(|e| failed(self.dir.path(), "list it", e))?;
        for (name, stat) in entries {
            if FileType::from_raw_mode(stat.st_mode) != FileType::Directory || name == STAGING_DIR {
                continue;
            }
            let dir = self.dir.open_dir(&name)?;
            let Some(location) = dir
                .read_small(REPOSITORY, MAX_LOCATION)
                .map_err(|e| failed(dir.path(), "read its REPOSITORY file", e))?
            else {
                continue;
            };
            let location = String::from_utf8_lossy(&location).into_owned();
            let owed = Owed { dir, location };
            let names = owed.names()?;
            if !names.is_empty() {
                found.push((owed.location, names));
            }
        }
        found.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(found)
    }
}

impl Owed {
    /// The owed copies, sorted (WAL order within a timeline).
    pub fn names(&self) -> Result<Vec<WalName>> {
        let entries = self
            .dir
            .entries()
            .map_err(|e| failed(self.dir.path(), "list it", e))?;
        let mut names: Vec<(String, WalName)> = entries
            .into_iter()
            .filter(|(_, stat)| FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile)
            .filter_map(|(file, _)| file.parse().ok().map(|name| (file, name)))
            .collect();
        names.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(names.into_iter().map(|(_, name)| name).collect())
    }

    /// Records, durably, that `name` is owed. Refused when [`MAX_OWED`] copies
    /// are owed already.
    pub fn record(&self, name: &WalName) -> Result<()> {
        let file = name.to_string();
        if self.dir.exists(&file) {
            return Ok(());
        }
        if self.names()?.len() >= MAX_OWED {
            return Err(Error::BacklogFull {
                location: self.location.clone(),
                max: MAX_OWED,
            });
        }
        let write = || -> io::Result<()> {
            let staged = self.dir.stage(&file)?;
            self.dir.publish_durable(staged, &file)
        };
        write().map_err(|e| failed(self.dir.path(), &format!("record {file}"), e))
    }

    /// Removes `name` once its copy is confirmed.
    pub fn remove(&self, name: &WalName) -> Result<()> {
        let file = name.to_string();
        self.dir
            .unlink(&file)
            .and_then(|()| self.dir.sync())
            .map_err(|e| failed(self.dir.path(), &format!("remove {file}"), e))
    }

    /// Whether the last attempt to reach the repository failed less than
    /// `interval` ago.
    pub fn recently_down(&self, interval: Duration) -> bool {
        let Ok(Some(bytes)) = self.dir.read_small(DOWN, 32) else {
            return false;
        };
        let Some(at) = std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
        else {
            return false;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        now.saturating_sub(at) < interval.as_secs()
    }

    /// Records that an attempt to reach the repository failed now.
    pub fn mark_down(&self) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let write = || -> io::Result<()> {
            let staged = self.dir.stage(DOWN)?;
            write!(staged.file(), "{now}")?;
            self.dir.publish(staged, DOWN)
        };
        if let Err(e) = write() {
            tracing::debug!("cannot mark {} unreachable: {e}", self.location);
        }
    }

    /// Records that the repository was reached.
    pub fn mark_up(&self) {
        let _ = self.dir.unlink(DOWN);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> WalName {
        s.parse().unwrap()
    }

    #[test]
    fn records_lists_and_removes_durably() {
        let root = tempfile::tempdir().unwrap();
        let spool = root.path().join("spool");
        let backlog = Backlog::open(&spool).unwrap();
        let owed = backlog.owed("s3://bucket/wal").unwrap();
        owed.record(&name("000000010000000000000003")).unwrap();
        owed.record(&name("000000010000000000000002")).unwrap();
        owed.record(&name("000000010000000000000002")).unwrap();
        assert_eq!(
            backlog.all().unwrap(),
            vec![(
                "s3://bucket/wal".to_owned(),
                vec![
                    name("000000010000000000000002"),
                    name("000000010000000000000003")
                ]
            )]
        );
        owed.remove(&name("000000010000000000000002")).unwrap();
        let again = Backlog::open_existing(&spool).unwrap().unwrap();
        assert_eq!(
            again.owed("s3://bucket/wal").unwrap().names().unwrap(),
            vec![name("000000010000000000000003")]
        );
    }

    #[test]
    fn down_marks_expire() {
        let root = tempfile::tempdir().unwrap();
        let owed = Backlog::open(&root.path().join("spool"))
            .unwrap()
            .owed("/mnt/wal")
            .unwrap();
        assert!(!owed.recently_down(Duration::from_secs(60)));
        owed.mark_down();
        assert!(owed.recently_down(Duration::from_secs(60)));
        assert!(!owed.recently_down(Duration::ZERO));
        owed.mark_up();
        assert!(!owed.recently_down(Duration::from_secs(60)));
    }

    #[test]
    fn a_reader_creates_nothing() {
        let root = tempfile::tempdir().unwrap();
        assert!(Backlog::open_existing(&root.path().join("none"))
            .unwrap()
            .is_none());
        assert!(!root.path().join("none").exists());
    }
}
