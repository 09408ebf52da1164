//! Spool directories: private, local scratch space outside the database's data
//! directory, where `uxwal-archive --parallel` records what it pushed ahead and
//! `uxwal-restore --prefetch` keeps segments fetched ahead of the database.
//!
//! A spool only ever saves work: every entry is checked before it is trusted, so
//! losing or corrupting a spool costs time, never WAL. It lives outside
//! `pg_wal`/`ux_wal` on purpose: tools such as `pg_rewind` and `pg_basebackup`
//! treat everything there as the database's own, and a spool inside the data
//! directory is refused.
//!
//! The root is `/var/spool/uxwal` when that exists and belongs to the user running
//! uxwal (the packages create it for the database's user, mode 0700), else
//! `$TMPDIR/uxwal-<uid>`, or `--spool-dir`/`spool_dir`. Because a temp directory
//! is shared with every local user, a spool is trusted only through descriptors
//! (see `docs/SECURITY.md`): the root is opened once with
//! `O_DIRECTORY|O_NOFOLLOW` and checked with `fstat` (a directory owned by the
//! effective user, no group or other permissions), and every directory and file
//! below it is created, opened, renamed, listed and removed relative to a
//! checked descriptor (`openat`, `mkdirat`, `renameat`, `unlinkat`, `fstatat`
//! with `AT_SYMLINK_NOFOLLOW`). A path swapped for a symbolic link after the
//! check redirects nothing: no path is resolved again. A missing root is created
//! only in a parent owned by root or the effective user that others cannot
//! write to (unless it is sticky, like `/tmp`): never inside another user's
//! directory. A refused spool turns read-ahead off, never a restore or archive.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat, CWD};
use rustix::io::Errno;
use sha2::Digest;

use crate::codec;
use crate::durable::{self, StagedAt};
use crate::error::{Error, Result};

/// The spool root the packages create, owned by the database's user.
pub const PACKAGED_ROOT: &str = "/var/spool/uxwal";
/// Held (flock) by the one running worker of a spool directory.
pub const WORKER_LOCK: &str = ".worker.lock";
/// Where entries are written (and claimed to) before they are renamed.
pub const STAGING_DIR: &str = "tmp";

/// The effective user id: whose spool this is.
pub fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// The spool root used when neither `--spool-dir` nor `spool_dir` is given:
/// [`PACKAGED_ROOT`] when it is a directory of the effective user, else
/// `$TMPDIR/uxwal-<uid>` (usually `/tmp/uxwal-<uid>`).
pub fn default_root() -> PathBuf {
    default_root_in(Path::new(PACKAGED_ROOT), &std::env::temp_dir())
}

fn default_root_in(packaged: &Path, temp: &Path) -> PathBuf {
    use std::os::unix::fs::MetadataExt;
    match std::fs::symlink_metadata(packaged) {
        Ok(m) if m.is_dir() && m.uid() == euid() => packaged.to_path_buf(),
        _ => temp.join(format!("uxwal-{}", euid())),
    }
}

/// The database's data directory when this process runs in one (the database
/// starts its archive and restore commands there): the canonical working
/// directory, when it holds `global/pg_control`.
pub fn data_directory() -> Option<PathBuf> {
    let cwd = std::env::current_dir().ok()?.canonicalize().ok()?;
    cwd.join("global/pg_control").is_file().then_some(cwd)
}

/// First 16 hex digits of the SHA-256 of `key` (a repository location, a WAL
/// directory): names the spool directory of one archive or cluster.
pub fn location_key(key: &[u8]) -> String {
    codec::hex(&sha2::Sha256::digest(key)[..8])
}

/// A checked spool directory, used only through its descriptor.
#[derive(Debug)]
pub struct SpoolDir {
    fd: OwnedFd,
    /// Where it was found, for messages (and tests) only: never opened again.
    path: PathBuf,
}

impl SpoolDir {
    /// Opens the spool root at `root` (creating it when missing, see the module
    /// documentation) and checks it. With `data_dir` (the foreground, which runs
    /// in the data directory), a root inside it is refused.
    pub fn open_root(root: &Path, data_dir: Option<&Path>) -> Result<SpoolDir> {
        let refuse = |reason: String| refused(root, reason);
        if let Some(data_dir) = data_dir {
            // Checked before anything is created, and again below where the
            // descriptor really is.
            if resolved(root).starts_with(data_dir) {
                return Err(inside_data_dir(root, data_dir, &resolved(root)));
            }
        }
        let fd = match open_dir_nofollow(CWD, root) {
            Err(Errno::NOENT) => create_root(root).map_err(refuse)?,
            opened => opened.map_err(|e| refuse(opening_error(e)))?,
        };
        check_private(&fd).map_err(refuse)?;
        if let Some(data_dir) = data_dir {
            // Where the descriptor really is, not where the path pointed.
            let real = std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
                .or_else(|_| root.canonicalize())
                .map_err(|e| refuse(format!("cannot resolve: {e}")))?;
            if real.starts_with(data_dir) {
                return Err(inside_data_dir(root, data_dir, &real));
            }
        }
        Ok(SpoolDir {
            fd,
            path: root.to_path_buf(),
        })
    }

    /// Opens (creating, mode 0700) the sub-directory `name` and checks it like the root.
    pub fn open_dir(&self, name: &str) -> Result<SpoolDir> {
        let path = self.path.join(name);
        let refuse = |reason: String| refused(&path, reason);
        match rustix::fs::mkdirat(&self.fd, name, Mode::from_raw_mode(durable::DIR_MODE)) {
            Ok(()) => {
                // A new directory is durable once its parent is.
                let _ = rustix::fs::fsync(&self.fd);
            }
            Err(Errno::EXIST) => {}
            Err(e) => return Err(refuse(format!("cannot create: {e}"))),
        }
        let fd = open_dir_nofollow(self.fd.as_fd(), name).map_err(|e| refuse(opening_error(e)))?;
        check_private(&fd).map_err(refuse)?;
        Ok(SpoolDir { fd, path })
    }

    /// Where this directory was found (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this directory is in memory (tmpfs, ramfs): emptied by a reboot.
    pub fn is_in_memory(&self) -> io::Result<bool> {
        // statfs(2)'s f_type of tmpfs and ramfs (linux/magic.h).
        const IN_MEMORY: [i64; 2] = [0x0102_1994, 0x8584_58f6];
        let stat = rustix::fs::fstatfs(&self.fd)?;
        Ok(IN_MEMORY.contains(&(stat.f_type as i64)))
    }

    /// A second handle on the same directory.
    pub fn try_clone(&self) -> io::Result<SpoolDir> {
        Ok(SpoolDir {
            fd: self.fd.try_clone()?,
            path: self.path.clone(),
        })
    }

    fn staging(&self) -> io::Result<SpoolDir> {
        self.open_dir(STAGING_DIR).map_err(io::Error::other)
    }

    /// A new staging file for the entry `final_name`, to publish with
    /// [`SpoolDir::publish`] or [`SpoolDir::publish_durable`].
    pub fn stage(&self, final_name: &str) -> io::Result<StagedAt> {
        StagedAt::create(self.staging()?.fd.as_fd(), final_name)
    }

    /// Publishes `staged` as `name` (replacing it), not fsynced.
    pub fn publish(&self, staged: StagedAt, name: &str) -> io::Result<()> {
        staged.publish_replace_at(self.fd.as_fd(), name)
    }

    /// Publishes `staged` as `name` (replacing it) durably.
    pub fn publish_durable(&self, staged: StagedAt, name: &str) -> io::Result<()> {
        staged.publish_replace_durable_at(self.fd.as_fd(), name)
    }

    /// Claims the entry `name`: renames it to a staging name of this call's own
    /// (so that no other caller gets it) and opens it. It is used only when it is
    /// a regular file owned by the effective user with one link: anything else is
    /// removed and reported as an error. `None` when there is no entry.
    pub fn claim(&self, name: &str) -> io::Result<Option<StagedAt>> {
        let Some(claimed) = StagedAt::claim(self.fd.as_fd(), name, self.staging()?.fd.as_fd())?
        else {
            return Ok(None);
        };
        check_own_file(&rustix::fs::fstat(claimed.file())?)
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))?;
        Ok(Some(claimed))
    }

    /// The content of the file `name`, at most `max` bytes of it; `None` when
    /// there is none. Only a regular file of the effective user is read.
    pub fn read_small(&self, name: &str, max: u64) -> io::Result<Option<Vec<u8>>> {
        let fd = match rustix::fs::openat(
            &self.fd,
            name,
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        check_own_file(&rustix::fs::fstat(&fd)?)
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))?;
        let mut bytes = Vec::new();
        File::from(fd).take(max).read_to_end(&mut bytes)?;
        Ok(Some(bytes))
    }

    /// Every name in this directory (but `.` and `..`) with what `fstatat`
    /// (not following symbolic links) found; names that vanished are left out.
    pub fn entries(&self) -> io::Result<Vec<(String, Stat)>> {
        let mut found = Vec::new();
        for entry in Dir::read_from(&self.fd)? {
            let entry = entry?;
            let Ok(name) = entry.file_name().to_str() else {
                continue;
            };
            if name == "." || name == ".." {
                continue;
            }
            if let Ok(stat) = rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                found.push((name.to_owned(), stat));
            }
        }
        Ok(found)
    }

    /// Makes this directory's entries durable (fsync of the directory).
    pub fn sync(&self) -> io::Result<()> {
        rustix::fs::fsync(&self.fd).map_err(io::Error::from)
    }

    /// Whether `name` exists (whatever it is).
    pub fn exists(&self, name: &str) -> bool {
        rustix::fs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Removes the file `name`; one already gone is fine.
    pub fn unlink(&self, name: &str) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Opens the lock file `name` (mode 0600, never through a symbolic link):
    /// with `create_new`, only when it does not exist yet (a claim); otherwise
    /// creating it if needed.
    pub fn open_lock(&self, name: &str, create_new: bool) -> io::Result<File> {
        let mut flags = OFlags::RDWR | OFlags::CREATE | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        if create_new {
            flags |= OFlags::EXCL;
        }
        let fd = rustix::fs::openat(
            &self.fd,
            name,
            flags | OFlags::NONBLOCK,
            Mode::from_raw_mode(durable::FILE_MODE),
        )?;
        check_own_file(&rustix::fs::fstat(&fd)?)
            .map_err(|reason| io::Error::new(io::ErrorKind::InvalidData, reason))?;
        Ok(File::from(fd))
    }

    /// The worker lock ([`WORKER_LOCK`]), taken without waiting; `None` when a
    /// running worker holds it.
    pub fn try_worker_lock(&self) -> io::Result<Option<File>> {
        let lock = self.open_lock(WORKER_LOCK, false)?;
        match lock.try_lock() {
            Ok(()) => Ok(Some(lock)),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(e),
        }
    }

    /// Takes ownership of an inherited worker-lock descriptor after checking that
    /// it is this directory's [`WORKER_LOCK`] (a number on a command line is not proof).
    pub fn adopt_worker_lock(&self, fd: RawFd) -> io::Result<File> {
        use std::os::unix::fs::MetadataExt;
        let expected = rustix::fs::statat(&self.fd, WORKER_LOCK, AtFlags::SYMLINK_NOFOLLOW)?;
        // What the descriptor refers to, found without touching the descriptor:
        // an fd number that is not open simply has no entry here.
        let inherited = std::fs::metadata(format!("/proc/self/fd/{fd}"))?;
        if fd <= 2 || inherited.dev() != expected.st_dev || inherited.ino() != expected.st_ino {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "descriptor {fd} is not {}",
                    self.path.join(WORKER_LOCK).display()
                ),
            ));
        }
        // SAFETY: the descriptor is open (it has a /proc entry) and refers to this
        // spool's worker lock; it was inherited for exactly this purpose, and
        // nothing else in this process opened or owns it (a worker adopts its lock
        // before it opens any file that could reuse the number).
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    /// Starts this program detached with `args` in this directory, handing it
    /// the locked `lock` (see [`super::detach::spawn_with_lock`]).
    pub fn spawn_worker(&self, args: Vec<std::ffi::OsString>, lock: &File) -> io::Result<()> {
        super::detach::spawn_with_lock(args, lock, self.fd.as_fd())
    }

    /// An inotify watch on this directory for names renamed into it (see
    /// [`DirWatch`]).
    pub fn watch_renames_into(&self) -> io::Result<DirWatch> {
        use rustix::fs::inotify;
        let fd = inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)?;
        // The directory the descriptor refers to, whatever its path is now.
        inotify::add_watch(
            &fd,
            format!("/proc/self/fd/{}", self.fd.as_raw_fd()),
            inotify::WatchFlags::MOVED_TO | inotify::WatchFlags::ONLYDIR,
        )?;
        Ok(DirWatch { fd })
    }

    /// Removes the sub-directory `name`, its files and its staging directory's
    /// files, all relative to descriptors; a directory that is not empty by then
    /// (a caller came back meanwhile) stays.
    pub fn remove_tree(&self, name: &str) -> io::Result<()> {
        let dir = self.open_dir(name).map_err(io::Error::other)?;
        if let Ok(staging) = dir.open_dir(STAGING_DIR) {
            staging.remove_files();
            let _ = rustix::fs::unlinkat(&dir.fd, STAGING_DIR, AtFlags::REMOVEDIR);
        }
        dir.remove_files();
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::REMOVEDIR) {
            Ok(()) | Err(Errno::NOENT | Errno::NOTEMPTY | Errno::EXIST) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes every non-directory in this directory.
    fn remove_files(&self) {
        for (name, stat) in self.entries().unwrap_or_default() {
            if FileType::from_raw_mode(stat.st_mode) != FileType::Directory {
                let _ = self.unlink(&name);
            }
        }
    }
}

impl AsFd for SpoolDir {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Wakes a waiting worker when a name is renamed into its spool directory.
pub struct DirWatch {
    fd: OwnedFd,
}

impl DirWatch {
    /// Waits up to `timeout` for an event; any error ends the wait early.
    pub fn wait(&self, timeout: std::time::Duration) {
        use rustix::event::{poll, PollFd, PollFlags, Timespec};
        let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
        let timeout = Timespec {
            tv_sec: timeout.as_secs() as i64,
            tv_nsec: i64::from(timeout.subsec_nanos()),
        };
        let _ = poll(&mut fds, Some(&timeout));
    }

    /// Reads every queued event; false on an error.
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match rustix::io::read(&self.fd, &mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return true,
                Err(_) => return false,
            }
        }
    }
}

fn refused(dir: &Path, reason: String) -> Error {
    Error::Config(format!("spool directory {}: {reason}", dir.display()))
}

fn inside_data_dir(root: &Path, data_dir: &Path, real: &Path) -> Error {
    refused(
        root,
        format!(
            "it is inside the data directory {} (as {}); tools such as pg_rewind and \
             pg_basebackup treat everything there as the database's",
            data_dir.display(),
            real.display()
        ),
    )
}

/// `path` with its longest existing ancestor resolved (symbolic links, `..`)
/// and the missing rest appended.
fn resolved(path: &Path) -> PathBuf {
    let mut rest = Vec::new();
    let mut at = path;
    loop {
        if let Ok(real) = at.canonicalize() {
            return rest.iter().rev().fold(real, |p, c| p.join(c));
        }
        match (at.parent(), at.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                at = parent;
            }
            _ => return path.to_path_buf(),
        }
    }
}

fn opening_error(e: Errno) -> String {
    match e {
        // O_NOFOLLOW|O_DIRECTORY on a symbolic link fails with either.
        Errno::LOOP | Errno::NOTDIR => "a symbolic link or not a directory".into(),
        e => format!("cannot open: {e}"),
    }
}

fn open_dir_nofollow<P: rustix::path::Arg>(
    at: BorrowedFd<'_>,
    path: P,
) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        at,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// A directory owned by the effective user, closed to group and others.
fn check_private(fd: &OwnedFd) -> std::result::Result<(), String> {
    let st = rustix::fs::fstat(fd).map_err(|e| e.to_string())?;
    let uid = euid();
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err("not a directory".into());
    }
    if st.st_uid != uid {
        return Err(format!(
            "owned by uid {}, not by the user running uxwal (uid {uid})",
            st.st_uid
        ));
    }
    if st.st_mode & 0o077 != 0 {
        return Err(format!(
            "mode {:o} lets others in; it must be 0700",
            st.st_mode & 0o777
        ));
    }
    Ok(())
}

/// A regular file owned by the effective user with one link.
fn check_own_file(st: &Stat) -> std::result::Result<(), String> {
    if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
        return Err("not a regular file".into());
    }
    if st.st_uid != euid() {
        return Err(format!("owned by uid {}, not by uid {}", st.st_uid, euid()));
    }
    if st.st_nlink != 1 {
        return Err(format!("it has {} links, not one", st.st_nlink));
    }
    Ok(())
}

/// Creates the missing root `root` (mode 0700) in its parent, when that parent
/// is safe: owned by root or the effective user, and not writable by group or
/// others unless sticky. Missing parents are created under the same rule.
fn create_root(root: &Path) -> std::result::Result<OwnedFd, String> {
    let parent = match root.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = root
        .file_name()
        .ok_or_else(|| "it has no name to create".to_string())?;
    let parent_fd = match rustix::fs::open(
        parent,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Err(Errno::NOENT) => create_root(parent)?,
        opened => {
            opened.map_err(|e| format!("cannot open its parent {}: {e}", parent.display()))?
        }
    };
    let st = rustix::fs::fstat(&parent_fd).map_err(|e| e.to_string())?;
    let owner_ok = st.st_uid == 0 || st.st_uid == euid();
    let sticky = st.st_mode & 0o1000 != 0;
    if !owner_ok || (st.st_mode & 0o022 != 0 && !sticky) {
        return Err(format!(
            "it is missing, and its parent {} (uid {}, mode {:o}) is not a safe place to create \
             it: it must belong to root or uid {} and be closed to others' writes, or be sticky",
            parent.display(),
            st.st_uid,
            st.st_mode & 0o7777,
            euid()
        ));
    }
    match rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(durable::DIR_MODE)) {
        Ok(()) => {
            let _ = rustix::fs::fsync(&parent_fd);
        }
        Err(Errno::EXIST) => {}
        Err(e) => return Err(format!("cannot create: {e}")),
    }
    open_dir_nofollow(parent_fd.as_fd(), name).map_err(opening_error)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn creates_a_private_directory_and_refuses_an_open_one() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b");
        let root = SpoolDir::open_root(&dir, None).unwrap();
        assert_eq!(root.path(), dir);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = SpoolDir::open_root(&dir, None).unwrap_err().to_string();
        assert!(err.contains("0700"), "{err}");
        let sub = root.open_dir("sub").unwrap();
        assert!(sub.path().ends_with("b/sub"));
    }

    #[test]
    fn symbolic_links_are_refused_at_every_level() {
        let base = tempfile::tempdir().unwrap();
        let real = base.path().join("real");
        let root = SpoolDir::open_root(&real, None).unwrap();
        std::os::unix::fs::symlink(&real, base.path().join("link")).unwrap();
        let err = SpoolDir::open_root(&base.path().join("link"), None).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let elsewhere = base.path().join("elsewhere");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::os::unix::fs::symlink(&elsewhere, real.join("leaf")).unwrap();
        let err = root.open_dir("leaf").unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        std::fs::write(elsewhere.join("x"), b"x").unwrap();
        std::os::unix::fs::symlink(elsewhere.join("x"), real.join("entry")).unwrap();
        assert!(root.read_small("entry", 10).is_err());
        assert!(root.claim("entry").is_err(), "a link is not an entry");
        assert!(elsewhere.join("x").exists(), "and its target is untouched");
        assert!(!root.exists("entry"), "the link is removed");
    }

    #[test]
    fn entries_are_staged_published_claimed_and_read_by_descriptor() {
        let base = tempfile::tempdir().unwrap();
        let root = SpoolDir::open_root(&base.path().join("s"), None).unwrap();
        let mut staged = root.stage("e").unwrap();
        std::io::Write::write_all(&mut staged, b"hello").unwrap();
        root.publish(staged, "e").unwrap();
        assert_eq!(root.read_small("e", 3).unwrap().unwrap(), b"hel");
        std::fs::hard_link(base.path().join("s/e"), base.path().join("s/e2")).unwrap();
        assert!(root.claim("e").is_err(), "two links: not ours alone");
        assert!(!root.exists("e"), "and removed");
        assert!(root.claim("e").unwrap().is_none());
        let names: Vec<String> = root
            .entries()
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert!(names.contains(&"e2".to_string()) && names.contains(&STAGING_DIR.to_string()));
        root.remove_tree(STAGING_DIR).unwrap();
        assert!(!root.exists(STAGING_DIR));
    }

    #[test]
    fn a_root_is_created_only_in_a_safe_parent() {
        let base = tempfile::tempdir().unwrap();
        let open = base.path().join("open");
        std::fs::create_dir(&open).unwrap();
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = SpoolDir::open_root(&open.join("spool"), None).unwrap_err();
        assert!(err.to_string().contains("not a safe place"), "{err}");
        assert!(!open.join("spool").exists());
        std::fs::set_permissions(&open, std::fs::Permissions::from_mode(0o1777)).unwrap();
        SpoolDir::open_root(&open.join("spool"), None).unwrap();
    }

    #[test]
    fn a_root_inside_the_data_directory_is_refused() {
        let base = tempfile::tempdir().unwrap();
        let data = base.path().canonicalize().unwrap();
        let err = SpoolDir::open_root(&data.join("pg_wal/spool"), Some(&data)).unwrap_err();
        assert!(
            err.to_string().contains("inside the data directory"),
            "{err}"
        );
        assert!(!data.join("pg_wal").exists(), "nothing was created");
        std::fs::create_dir(data.join("pg_wal")).unwrap();
        std::os::unix::fs::symlink(data.join("pg_wal"), base.path().join("wal-link")).unwrap();
        let err = SpoolDir::open_root(&base.path().join("wal-link/x"), Some(&data)).unwrap_err();
        assert!(
            err.to_string().contains("inside the data directory"),
            "{err}"
        );
        SpoolDir::open_root(&data.join("pg_wal/spool"), Some(&data.join("other"))).unwrap();
    }

    #[test]
    fn the_packaged_root_is_the_default_only_when_it_is_ours() {
        let base = tempfile::tempdir().unwrap();
        let temp = base.path().join("tmp");
        let packaged = base.path().join("var-spool-uxwal");
        let fallback = temp.join(format!("uxwal-{}", euid()));
        assert_eq!(default_root_in(&packaged, &temp), fallback);
        std::fs::create_dir(&packaged).unwrap();
        assert_eq!(default_root_in(&packaged, &temp), packaged);
    }
}
