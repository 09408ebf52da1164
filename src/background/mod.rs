//! The detached background workers that save the database waiting: archive
//! push-ahead ([`push_ahead`]) and restore prefetch ([`prefetch`]), the spool
//! they keep their work in ([`spool`]), how they are started and stopped
//! ([`detach`], [`crate::signals`]). A worker only ever saves time: whatever it
//! leaves behind is checked again before the foreground trusts it.
//!
//! A worker is a hidden mode of its command's own binary. This layer does not
//! know that binary's command line: the caller hands it a [`Launcher`] that
//! turns a [`WorkerJob`] into the worker's arguments (`cli::worker`, where the
//! clap definitions of every flag live).

pub mod backlog;
pub mod detach;
pub mod prefetch;
pub mod push_ahead;
pub mod spool;

use std::ffi::OsString;
use std::os::fd::RawFd;

/// What a worker is started to do.
#[derive(Debug, Clone, Copy)]
pub enum WorkerJob<'a> {
    /// Restore prefetch for an archive.
    Prefetch(&'a prefetch::Job),
    /// Archive push-ahead for a WAL directory.
    PushAhead(&'a push_ahead::Job),
}

/// Turns a job and the descriptor of the worker lock it inherits into the
/// worker's command line (after the program name).
pub type Launcher = fn(&WorkerJob<'_>, RawFd) -> Vec<OsString>;

/// Runs `work` on up to `n` threads at once and returns when all are done; on
/// the calling thread alone when no thread can be started (a process limit),
/// so that a worker slows down instead of failing.
pub(crate) fn on_threads(n: usize, work: impl Fn() + Sync) {
    std::thread::scope(|scope| {
        let started = (0..n)
            .take_while(|_| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, &work)
                    .is_ok()
            })
            .count();
        if started == 0 && n > 0 {
            work();
        }
    });
}
