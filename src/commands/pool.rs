//! The worker pool of the commands that read many objects (`uxwal-verify`,
//! `uxwal-sync`): a fixed number of scoped threads, each with its own state
//! (repository handles), taking jobs in order from a shared counter.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;

use crate::error::{Error, Result};

/// Runs `work` over `jobs` on `workers` threads, each with the state `open`
/// gives it, handing results to `done` on this thread in completion order.
///
/// As many threads as can be had are started (at least one is needed); an
/// error opening a thread's state, or a panic in one, is the whole run's
/// error. `what` names the command in those messages.
pub(crate) fn run<J: Sync, S, R: Send>(
    what: &str,
    jobs: &[J],
    workers: usize,
    open: &(dyn Fn() -> Result<S> + Sync),
    work: &(dyn Fn(&S, &J) -> R + Sync),
    mut done: impl FnMut(&J, R),
) -> Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let workers = workers.clamp(1, jobs.len());
    let next = AtomicUsize::new(0);
    let (tx, rx) = mpsc::sync_channel::<(usize, R)>(workers * 2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map_while(|_| {
                let tx = tx.clone();
                let next = &next;
                std::thread::Builder::new()
                    .spawn_scoped(s, move || -> Result<()> {
                        let state = open()?;
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(job) = jobs.get(i) else {
                                return Ok(());
                            };
                            if tx.send((i, work(&state, job))).is_err() {
                                return Ok(());
                            }
                        }
                    })
                    .ok()
            })
            .collect();
        drop(tx);
        if handles.is_empty() {
            return Err(Error::Internal(format!(
                "cannot start a {what} worker thread"
            )));
        }
        for (i, r) in rx {
            if let Some(job) = jobs.get(i) {
                done(job, r);
            }
        }
        handles.into_iter().try_for_each(|h| {
            h.join()
                .map_err(|_| Error::Internal(format!("a {what} worker thread panicked")))?
        })
    })
}
