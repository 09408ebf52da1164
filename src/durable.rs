//! Durable local writes: the only code in uxwal that writes files.
//!
//! An archived file is written to a staging file in the repository's `tmp/`
//! directory (created exclusively, mode 0600, locked while it is written), fsynced,
//! then published under its final name with `link(2)`, which fails with `EEXIST`
//! instead of replacing anything, and finally the final directory is fsynced. This
//! is the order of PostgreSQL's `contrib/basic_archive` and `durable_rename`: when
//! the function returns, the file and its directory entry survive a power cut, and
//! a crash at any moment leaves only a staging file, never a partial final file.
//! Staging files of dead writers are removed by the next writer: every writer
//! holds a shared `flock` on `tmp/.lock` from before it creates its staging file
//! until it is done, so a writer that can take that lock *exclusively* knows that no
//! other writer is alive and every staging file there is abandoned. (A lock per
//! staging file would leave a window between creating the file and locking it.)

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags, CWD};

/// Mode of every file uxwal creates: WAL holds every row of the database.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory uxwal creates.
pub const DIR_MODE: u32 = 0o700;
/// Suffix that marks a staging file.
pub const STAGING_SUFFIX: &str = ".uxwal-tmp";

/// fsyncs a directory, so that entries created or removed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(test)]
    tests::SYNCED.with(|s| s.borrow_mut().push(dir.to_path_buf()));
    File::open(dir)?.sync_all()
}

/// The directory `path` is in (`.` for a bare name).
fn parent_of(path: &Path) -> &Path {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

/// Creates `dir` and any missing parents with mode 0700, and fsyncs the parent
/// of every directory it created, and of `dir` itself even when `dir` was there
/// already: a directory another writer has just created may not be durable yet
/// (its creator may not have fsynced the parent), and a file linked into it
/// would be lost with it. A directory fsync with nothing to flush is cheap.
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if !dir.is_dir() {
        if let Some(parent) = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty() && !p.is_dir())
        {
            create_dir_all(parent)?;
        }
        match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
            Ok(()) => {}
            // Another writer created it first: fine; the parent is fsynced below.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
            Err(e) => return Err(e),
        }
    }
    sync_dir(parent_of(dir))
}

/// A file being written in a staging directory, not yet visible under its final name.
/// Dropping it without publishing removes it.
pub struct StagedFile {
    file: File,
    path: PathBuf,
    removed: bool,
    /// The shared lock on the staging directory, held while this file exists.
    _writer_lock: Option<File>,
}

/// Name of the lock file in a staging directory.
const LOCK_NAME: &str = ".lock";

/// What publishing found at the final name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    Created,
    AlreadyExists,
}

impl StagedFile {
    /// Creates a new staging file for `final_name` in `staging_dir`, first removing
    /// staging files that crashed writers left there.
    pub fn create(staging_dir: &Path, final_name: &str) -> io::Result<Self> {
        create_dir_all(staging_dir)?;
        let writer_lock = lock_staging_dir(staging_dir)?;
        Self::open(staging_path(staging_dir, final_name), false, writer_lock)
    }

    /// Opens the staging file at `path`: created new, or with `replace` truncated
    /// if a killed run left it there.
    fn open(path: PathBuf, replace: bool, writer_lock: Option<File>) -> io::Result<Self> {
        let mut options = OpenOptions::new();
        options
            .write(true)
            .read(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC);
        match replace {
            true => options.create(true).truncate(true),
            false => options.create_new(true),
        };
        Ok(StagedFile {
            file: options.open(&path)?,
            path,
            removed: false,
            _writer_lock: writer_lock,
        })
    }

    /// fsyncs the file and links it to `final_path` without ever replacing an
    /// existing file, then fsyncs the final directory and (in
    /// [`create_dir_all`]) its parent. Both are fsynced whatever the link found:
    /// a file that is already there may have been linked a moment ago by a
    /// writer that has not fsynced the directory yet, and the caller is about to
    /// report it archived.
    pub fn publish_no_replace(mut self, final_path: &Path) -> io::Result<Publish> {
        self.file.sync_all()?;
        let dir = parent_of(final_path);
        create_dir_all(dir)?;
        let outcome = match link_no_replace(&self.path, final_path) {
            Ok(()) => Publish::Created,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Publish::AlreadyExists,
            Err(e) => return Err(e),
        };
        sync_dir(dir)?;
        self.remove();
        Ok(outcome)
    }

    /// Renames the file over `final_path` (replacing it): for restore targets, where
    /// the database has removed any stale file and makes the result durable itself.
    pub fn publish_replace(mut self, final_path: &Path) -> io::Result<()> {
        fs::rename(&self.path, final_path)?;
        self.removed = true;
        Ok(())
    }

    fn remove(&mut self) {
        if !self.removed {
            self.removed = true;
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Write for StagedFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for StagedFile {
    fn drop(&mut self) {
        self.remove();
    }
}

/// A fresh staging path for `final_name` in `staging_dir`.
fn staging_path(staging_dir: &Path, final_name: &str) -> PathBuf {
    staging_dir.join(staging_name(final_name))
}

/// A fresh staging file name for `final_name`: unique per process, moment and
/// call (two threads of one process may stage the same name at once).
fn staging_name(final_name: &str) -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{final_name}.{}.{nanos}.{}{STAGING_SUFFIX}",
        std::process::id(),
        SEQUENCE.fetch_add(1, Ordering::Relaxed)
    )
}

/// Publishes with `link(2)` (atomic, never replaces; works on NFS), falling back to
/// `renameat2(RENAME_NOREPLACE)` on filesystems without hard links.
fn link_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    match fs::hard_link(from, to) {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EPERM | libc::EOPNOTSUPP | libc::EMLINK)) => {
            rename_no_replace(from, to).map_err(|e2| {
                io::Error::new(
                    e2.kind(),
                    format!("cannot publish without replacing: link failed ({e}), rename-noreplace failed ({e2})"),
                )
            })
        }
        Err(e) => Err(e),
    }
}

fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    rustix::fs::renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(io::Error::from)
}

/// Takes the shared writer lock on `dir`, first removing abandoned staging files
/// when no other writer holds it. Filesystems without locks get no clean-up
/// (and `None`), never a failed archive.
fn lock_staging_dir(dir: &Path) -> io::Result<Option<File>> {
    let fd = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    lock_staging_dir_at(fd.as_fd())
}

/// [`lock_staging_dir`] for a directory held by descriptor.
fn lock_staging_dir_at(dir: BorrowedFd<'_>) -> io::Result<Option<File>> {
    let lock = File::from(rustix::fs::openat(
        dir,
        LOCK_NAME,
        OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(FILE_MODE),
    )?);
    if lock.try_lock().is_ok() {
        remove_staging_files(dir)?;
    }
    match lock.lock_shared() {
        Ok(()) => Ok(Some(lock)),
        Err(e) if e.raw_os_error() == Some(libc::ENOLCK) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Removes every staging file in `dir`; only called while no writer is alive.
fn remove_staging_files(dir: BorrowedFd<'_>) -> io::Result<usize> {
    let mut removed = 0;
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        if !name.to_bytes().ends_with(STAGING_SUFFIX.as_bytes()) {
            continue;
        }
        match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
            Ok(()) => removed += 1,
            Err(rustix::io::Errno::NOENT) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(removed)
}

/// A file being written in a staging directory held open by descriptor (a
/// spool's `tmp/`), published by a rename between descriptors: no path is
/// resolved again after the directories were checked, so nothing swapped in
/// under a path meanwhile can redirect a write. Dropping it unpublished removes
/// it; the same writer lock as [`StagedFile`]'s lets the next writer remove what
/// a dead one left.
pub struct StagedAt {
    file: File,
    /// The staging directory.
    dir: OwnedFd,
    /// The file's name in it.
    name: String,
    removed: bool,
    _writer_lock: Option<File>,
}

impl StagedAt {
    /// Creates a new staging file for `final_name` in the directory `staging`.
    pub fn create(staging: BorrowedFd<'_>, final_name: &str) -> io::Result<Self> {
        let dir = staging.try_clone_to_owned()?;
        let writer_lock = lock_staging_dir_at(dir.as_fd())?;
        let name = staging_name(final_name);
        let fd = rustix::fs::openat(
            &dir,
            &name,
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(FILE_MODE),
        )?;
        Ok(StagedAt {
            file: File::from(fd),
            dir,
            name,
            removed: false,
            _writer_lock: writer_lock,
        })
    }

    /// Moves the existing file `from_name` of directory `from` into `staging` by
    /// a rename and opens it, so that this caller alone owns it: of two callers
    /// claiming one file, the second finds nothing. `None` when there is no such
    /// file. Removed when dropped unpublished, like a new staging file. The
    /// caller checks what it opened (see `background::spool`).
    pub fn claim(
        from: BorrowedFd<'_>,
        from_name: &str,
        staging: BorrowedFd<'_>,
    ) -> io::Result<Option<Self>> {
        let dir = staging.try_clone_to_owned()?;
        let writer_lock = lock_staging_dir_at(dir.as_fd())?;
        let name = staging_name(from_name);
        match rustix::fs::renameat(from, from_name, &dir, &name) {
            Ok(()) => {}
            Err(rustix::io::Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        }
        // Non-blocking: whatever is there, opening it must not hang (a FIFO).
        let opened = rustix::fs::openat(
            &dir,
            &name,
            OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        );
        match opened {
            Ok(fd) => Ok(Some(StagedAt {
                file: File::from(fd),
                dir,
                name,
                removed: false,
                _writer_lock: writer_lock,
            })),
            Err(e) => {
                let _ = rustix::fs::unlinkat(&dir, &name, AtFlags::empty());
                Err(e.into())
            }
        }
    }

    /// The open file, for reading back what is in it.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Cuts the file to `len` bytes.
    pub fn truncate(&mut self, len: u64) -> io::Result<()> {
        self.file.set_len(len)
    }

    /// Renames the file over `name` in `dir` (replacing it), not fsynced: for
    /// what only saves work (a prefetched segment, a position).
    pub fn publish_replace_at(mut self, dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
        rustix::fs::renameat(&self.dir, &self.name, dir, name)?;
        self.removed = true;
        Ok(())
    }

    /// fsyncs the file, renames it over `name` in `dir` and fsyncs `dir`: for
    /// records that must survive a crash once written (push-ahead entries).
    pub fn publish_replace_durable_at(mut self, dir: BorrowedFd<'_>, name: &str) -> io::Result<()> {
        self.file.sync_all()?;
        rustix::fs::renameat(&self.dir, &self.name, dir, name)?;
        self.removed = true;
        rustix::fs::fsync(dir).map_err(io::Error::from)
    }

    /// Renames the file over `dest` (a path relative to the working directory):
    /// for a restore target, which the database makes durable itself.
    pub fn publish_replace_path(mut self, dest: &Path) -> io::Result<()> {
        rustix::fs::renameat(&self.dir, &self.name, CWD, dest)?;
        self.removed = true;
        Ok(())
    }
}

impl Write for StagedAt {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

impl Drop for StagedAt {
    fn drop(&mut self) {
        if !self.removed {
            self.removed = true;
            let _ = rustix::fs::unlinkat(&self.dir, &self.name, AtFlags::empty());
        }
    }
}

/// A staging file beside `dest` for a restore target (same directory, so the final
/// rename is atomic). A leftover from a killed run is simply replaced.
pub fn stage_beside(dest: &Path) -> io::Result<StagedFile> {
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name")
    })?;
    let path = parent_of(dest).join(format!(".{}{STAGING_SUFFIX}", name.to_string_lossy()));
    StagedFile::open(path, true, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// Every directory [`sync_dir`] fsynced on this thread, in order.
        pub(super) static SYNCED: RefCell<Vec<PathBuf>> = const { RefCell::new(Vec::new()) };
    }

    fn synced_during(f: impl FnOnce()) -> Vec<PathBuf> {
        SYNCED.with(|s| s.borrow_mut().clear());
        f();
        SYNCED.with(|s| s.take())
    }

    /// A writer that finds the final directory already there (another writer
    /// has just created it, perhaps without fsyncing its parent yet) still
    /// fsyncs the directory and its parent, for a new file and for a duplicate.
    #[test]
    fn publishing_into_an_existing_directory_fsyncs_it_and_its_parent() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        let wal = dir.path().join("wal");
        let leaf = wal.join("0000000100000000");
        fs::create_dir_all(&leaf).unwrap();
        for expected in [Publish::Created, Publish::AlreadyExists] {
            let synced = synced_during(|| {
                let mut s = StagedFile::create(&tmp, "file").unwrap();
                s.write_all(b"one").unwrap();
                assert_eq!(s.publish_no_replace(&leaf.join("file")).unwrap(), expected);
            });
            assert!(synced.contains(&leaf), "{expected:?}: {synced:?}");
            assert!(synced.contains(&wal), "{expected:?}: {synced:?}");
        }
    }

    #[test]
    fn creating_directories_fsyncs_each_new_ones_parent() {
        let dir = tempfile::tempdir().unwrap();
        let leaf = dir.path().join("a/b/c");
        let synced = synced_during(|| create_dir_all(&leaf).unwrap());
        let expect: Vec<PathBuf> = ["", "a", "a/b"]
            .iter()
            .map(|p| dir.path().join(p))
            .collect();
        let expect: Vec<PathBuf> = expect.iter().map(|p| p.components().collect()).collect();
        let synced: Vec<PathBuf> = synced.iter().map(|p| p.components().collect()).collect();
        assert_eq!(synced, expect);
        assert_eq!(
            synced_during(|| create_dir_all(&leaf).unwrap()),
            [dir.path().join("a/b")]
        );
    }
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn publish_never_replaces_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        let dest = dir.path().join("a/b/file");
        let mut s = StagedFile::create(&tmp, "file").unwrap();
        s.write_all(b"one").unwrap();
        assert_eq!(s.publish_no_replace(&dest).unwrap(), Publish::Created);
        let mut s = StagedFile::create(&tmp, "file").unwrap();
        s.write_all(b"two").unwrap();
        assert_eq!(s.publish_no_replace(&dest).unwrap(), Publish::AlreadyExists);
        assert_eq!(fs::read(&dest).unwrap(), b"one");
        let staged = fs::read_dir(&tmp)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name() != LOCK_NAME)
            .count();
        assert_eq!(staged, 0, "staging files are removed");
        assert_eq!(
            fs::metadata(&dest).unwrap().permissions().mode() & 0o777,
            FILE_MODE
        );
        assert_eq!(
            fs::metadata(dir.path().join("a/b"))
                .unwrap()
                .permissions()
                .mode()
                & 0o777,
            DIR_MODE
        );
    }

    #[test]
    fn staging_files_are_removed_only_when_no_writer_is_alive() {
        let dir = tempfile::tempdir().unwrap();
        let dead = dir.path().join(format!("y.1.2{STAGING_SUFFIX}"));
        fs::write(&dead, b"left by a crash").unwrap();
        let live = StagedFile::create(dir.path(), "x").unwrap();
        assert!(!dead.exists(), "no writer was alive: the leftover goes");
        fs::write(&dead, b"left by a crash").unwrap();
        let second = StagedFile::create(dir.path(), "z").unwrap();
        assert!(
            dead.exists() && live.path.exists(),
            "a live writer holds the lock: nothing is removed"
        );
        drop((live, second));
        let _third = StagedFile::create(dir.path(), "w").unwrap();
        assert!(!dead.exists());
    }
}
