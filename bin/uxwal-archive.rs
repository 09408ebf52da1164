//! `archive_command = 'uxwal-archive --repo DIR %p %f'`
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::{ArchiveCli, PushAheadWorkerCli};

fn main() -> ExitCode {
    if let Some(worker) = PushAheadWorkerCli::from_env() {
        uxwal::logging::init("uxwal-archive", worker.common.verbosity());
        let outcome = worker
            .settings()
            .and_then(|s| uxwal::push_ahead::run_worker(&s, &worker.wal_dir, worker.lock_fd));
        return uxwal::push_ahead::worker_exit(outcome);
    }
    let cli = ArchiveCli::parse();
    uxwal::logging::init("uxwal-archive", cli.common.verbosity());
    let outcome = cli
        .settings()
        .and_then(|s| uxwal::archive::run(&cli.wal_path, &cli.wal_name, &s));
    uxwal::exit::archive(outcome, &cli.wal_name)
}
