//! Shutdown signals for the work that runs longer than one file: the push-ahead
//! and prefetch workers.
//!
//! When the database shuts down it signals its archiver and startup processes and
//! their children; a helper must then stop promptly without leaving anything half
//! written. [`install`] replaces the default "die at once" of SIGTERM, SIGINT and
//! SIGHUP with a flag, and the long-running loops check [`stop_requested`] between
//! files (or chunks) and return. What is cut short is a staging file at most, which
//! `durable` removes or a later writer cleans up; nothing is ever published half done.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: the one thing a signal handler may safely do here.
    STOP.store(true, Ordering::SeqCst);
}

/// Turns SIGTERM, SIGINT and SIGHUP into a request to stop (see [`stop_requested`]).
pub fn install() {
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe;
        // the sigaction struct is fully initialised before use.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
            libc::sigemptyset(&mut action.sa_mask);
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(sig, &action, std::ptr::null_mut());
        }
    }
}

/// True once a shutdown signal has arrived since [`install`].
///
/// Tested through the binaries (a signal sent to a running command), not in unit
/// tests: the flag is process-wide and would leak into other tests.
pub fn stop_requested() -> bool {
    STOP.load(Ordering::SeqCst)
}
