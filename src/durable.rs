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
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// Mode of every file uxwal creates: WAL holds every row of the database.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory uxwal creates.
pub const DIR_MODE: u32 = 0o700;
/// Suffix that marks a staging file.
pub const STAGING_SUFFIX: &str = ".uxwal-tmp";

/// fsyncs a directory, so that entries created or removed in it are durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Creates `dir` and any missing parents with mode 0700, fsyncing each parent
/// whose entry list changed (a new directory is not durable until its parent is).
pub fn create_dir_all(dir: &Path) -> io::Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        create_dir_all(parent)?;
    }
    match fs::DirBuilder::new().mode(DIR_MODE).create(dir) {
        Ok(()) => {}
        // Another writer created it first: fine, and it fsyncs the parent itself;
        // we fsync again anyway, it is cheap.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => {}
        Err(e) => return Err(e),
    }
    sync_dir(
        dir.parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new(".")),
    )
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
        let path = staging_path(staging_dir, final_name);
        let file = OpenOptions::new()
            .write(true)
            .read(true)
            .create_new(true)
            .mode(FILE_MODE)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)?;
        Ok(StagedFile {
            file,
            path,
            removed: false,
            _writer_lock: writer_lock,
        })
    }

    /// Moves the existing file `from` into `staging_dir` by a rename and opens it,
    /// so that this caller alone owns it: of two callers claiming one file, the
    /// second finds nothing. `None` when there is no file at `from`. Like a new
    /// staging file, a claimed one is removed when dropped unpublished, and by the
    /// next writer if this process dies first. (For spool entries, which are
    /// consumed by whoever uses them.)
    pub fn claim(from: &Path, staging_dir: &Path) -> io::Result<Option<Self>> {
        create_dir_all(staging_dir)?;
        let writer_lock = lock_staging_dir(staging_dir)?;
        let final_name = from.file_name().unwrap_or_default().to_string_lossy();
        let path = staging_path(staging_dir, &final_name);
        match fs::rename(from, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        }
        let opened = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path);
        match opened {
            Ok(file) => Ok(Some(StagedFile {
                file,
                path,
                removed: false,
                _writer_lock: writer_lock,
            })),
            Err(e) => {
                let _ = fs::remove_file(&path);
                Err(e)
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

    /// fsyncs the file and links it to `final_path` without ever replacing an
    /// existing file, then fsyncs the final directory.
    pub fn publish_no_replace(mut self, final_path: &Path) -> io::Result<Publish> {
        self.file.sync_all()?;
        let dir = final_path.parent().unwrap_or(Path::new("."));
        create_dir_all(dir)?;
        let outcome = match link_no_replace(&self.path, final_path) {
            Ok(()) => Publish::Created,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Publish::AlreadyExists,
            Err(e) => return Err(e),
        };
        if outcome == Publish::Created {
            sync_dir(dir)?;
        }
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

    /// fsyncs the file, renames it over `final_path` and fsyncs the directory: for
    /// uxwal's own records (spool entries), which must survive a crash once written.
    pub fn publish_replace_durable(mut self, final_path: &Path) -> io::Result<()> {
        self.file.sync_all()?;
        fs::rename(&self.path, final_path)?;
        self.removed = true;
        sync_dir(final_path.parent().unwrap_or(Path::new(".")))
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

/// A fresh staging path for `final_name`: unique per process and moment.
fn staging_path(staging_dir: &Path, final_name: &str) -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    staging_dir.join(format!(
        "{final_name}.{}.{nanos}{STAGING_SUFFIX}",
        std::process::id()
    ))
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

#[cfg(target_os = "linux")]
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| CString::new(p.as_os_str().as_bytes()).map_err(io::Error::other);
    let (f, t) = (cstr(from)?, cstr(to)?);
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD resolves them like open(2).
    let rc = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            f.as_ptr(),
            libc::AT_FDCWD,
            t.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(target_os = "linux"))]
fn rename_no_replace(_from: &Path, _to: &Path) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// Takes the shared writer lock on `dir`, first removing abandoned staging files
/// when no other writer holds it. Filesystems without locks get no clean-up
/// (and `None`), never a failed archive.
fn lock_staging_dir(dir: &Path) -> io::Result<Option<File>> {
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(dir.join(LOCK_NAME))?;
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
fn remove_staging_files(dir: &Path) -> io::Result<usize> {
    let mut removed = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if !entry
            .file_name()
            .to_string_lossy()
            .ends_with(STAGING_SUFFIX)
        {
            continue;
        }
        match fs::remove_file(entry.path()) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(removed)
}

/// A staging file beside `dest` for a restore target (same directory, so the final
/// rename is atomic). A leftover from a killed run is simply replaced.
pub fn stage_beside(dest: &Path) -> io::Result<StagedFile> {
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = dest.file_name().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "destination has no file name")
    })?;
    let path = dir.join(format!(".{}{STAGING_SUFFIX}", name.to_string_lossy()));
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&path)?;
    Ok(StagedFile {
        file,
        path,
        removed: false,
        _writer_lock: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
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
