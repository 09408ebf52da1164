//! `archive_command = 'uxwal-archive --repo DIR %p %f'`
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::{worker, ArchiveCli, PushAheadWorkerCli};

fn main() -> ExitCode {
    uxwal::exit::exit_on_panic("uxwal-archive", uxwal::exit::FAILURE);
    if let Some(worker) = PushAheadWorkerCli::from_env() {
        uxwal::logging::init("uxwal-archive", worker.common.verbosity());
        let outcome = worker
            .job()
            .and_then(|job| uxwal::commands::archive::run_push_ahead_worker(&job, worker.lock_fd));
        return uxwal::exit::worker("push-ahead worker", outcome);
    }
    let cli = ArchiveCli::parse();
    uxwal::exit::panic_names(&cli.wal_name);
    uxwal::logging::init("uxwal-archive", cli.common.verbosity());
    let outcome = cli.settings().and_then(|s| {
        uxwal::commands::archive::run(&cli.wal_path, &cli.wal_name, &s, worker::args)
    });
    uxwal::exit::archive(outcome, &cli.wal_name)
}
