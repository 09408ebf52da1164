//! Detached background workers: the restore prefetch worker and the archive
//! push-ahead worker are hidden modes of their own binaries, started by a call the
//! database waits for and outliving it.
//!
//! The database waits for its command's process and output, and signals the
//! command's process group on shutdown; a worker must have no part in either. So
//! it runs in its own session with no standard streams, holds none of the
//! descriptors the database left open for the command, hears SIGTERM even when
//! the caller had it blocked, and inherits exactly one descriptor: the worker
//! lock the caller took for it. From the caller's `try_lock` until the worker
//! exits the lock is held, so whoever waits for the lock waits for the worker,
//! and at most one worker runs per lock.

use std::fs::{self, File};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Starts `cmd` detached (see the module documentation) in `cwd`, handing it the
/// locked `lock` as `--lock-fd FD`. The child is not waited for: it outlives this
/// process and is reaped by init.
pub fn spawn_with_lock(mut cmd: Command, lock: &File, cwd: &Path) -> io::Result<()> {
    let fd = lock.as_raw_fd();
    cmd.arg("--lock-fd")
        .arg(fd.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .current_dir(cwd);
    // SAFETY: between fork and exec only async-signal-safe calls: setsid(2),
    // sigprocmask(2) on a local set, close_range(2) and fcntl(2) on descriptors
    // this process owns.
    unsafe {
        cmd.pre_exec(move || {
            libc::setsid();
            // Descriptors the database left open for the command (its WAL files,
            // its postmaster-death pipe) are not the worker's to hold: close them
            // at exec. Best effort: kernels before 5.11 lack the flag.
            libc::syscall(
                libc::SYS_close_range,
                3 as libc::c_uint,
                libc::c_uint::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            // Signals the caller had blocked stay blocked across exec; the worker
            // must hear SIGTERM to stop.
            let mut none: libc::sigset_t = std::mem::zeroed();
            libc::sigemptyset(&mut none);
            libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());
            // Keep the locked descriptor open across exec (std opens files with
            // O_CLOEXEC); only the child's copy of the flag changes.
            if libc::fcntl(fd, libc::F_SETFD, 0) == -1 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
    cmd.spawn().map(drop)
}

/// Takes ownership of an inherited lock descriptor after checking that it is the
/// lock file at `path` (a number on a command line is not proof).
pub fn adopt_lock(path: &Path, fd: RawFd) -> io::Result<File> {
    let expected = fs::metadata(path)?;
    // SAFETY: fstat only reads the descriptor's metadata into a zeroed struct.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(fd, &mut st) } != 0
        || st.st_dev as u64 != expected.dev()
        || st.st_ino as u64 != expected.ino()
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("descriptor {fd} is not {}", path.display()),
        ));
    }
    // SAFETY: the descriptor is open (fstat succeeded), refers to the lock file,
    // and nothing else in this process owns it: it was inherited for this purpose.
    Ok(unsafe { File::from_raw_fd(fd) })
}
