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

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};

/// Starts this program with `args` detached (see the module documentation) in
/// the directory `cwd` (a descriptor: entered with `fchdir`, so that no path
/// swapped meanwhile can send the worker elsewhere), handing it the locked
/// `lock` (whose descriptor number `args` names). The child is not waited for:
/// it outlives this process and is reaped by init.
pub fn spawn_with_lock(
    args: Vec<std::ffi::OsString>,
    lock: &File,
    cwd: BorrowedFd<'_>,
) -> io::Result<()> {
    let fd = lock.as_raw_fd();
    let dir = cwd.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe()?);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: between fork and exec only async-signal-safe calls: fchdir(2),
    // setsid(2), sigprocmask(2) on a local set, close_range(2) and fcntl(2), on
    // descriptors this process owns (`cwd` and `lock` are borrowed for the whole
    // of this function, so they are open in the child).
    unsafe {
        cmd.pre_exec(move || {
            if libc::fchdir(dir) == -1 {
                return Err(io::Error::last_os_error());
            }
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

/// How often a worker's main thread looks at the stop flag while its work runs.
pub const STOP_CHECK: std::time::Duration = std::time::Duration::from_millis(100);

/// Runs a worker's `work` on a thread of its own and returns its result, or
/// `stopped` as soon as a shutdown signal arrives: the main thread returns, and
/// with it the process ends, even while the work waits on the storage. (The
/// workers publish only whole files by rename, so nothing is left half done.)
/// `what` names the worker in the error of a thread that ended without a result.
pub fn run_until_stopped<T: Send + 'static>(
    what: &str,
    stopped: T,
    work: impl FnOnce() -> crate::error::Result<T> + Send + 'static,
) -> crate::error::Result<T> {
    crate::signals::install();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .spawn(move || {
            let _ = tx.send(work());
        })
        .map_err(|e| {
            crate::error::Error::Internal(format!("{what}: cannot start its thread: {e}"))
        })?;
    loop {
        if crate::signals::stop_requested() {
            return Ok(stopped);
        }
        match rx.recv_timeout(STOP_CHECK) {
            Ok(outcome) => return outcome,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                return Err(crate::error::Error::Internal(format!(
                    "{what} thread ended without a result"
                )))
            }
        }
    }
}
