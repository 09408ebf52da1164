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
    let run = uxwal::metrics::Run::start("archive");
    let cli = ArchiveCli::parse();
    uxwal::logging::init("uxwal-archive", cli.common.verbosity());
    let (Some(wal_path), Some(wal_name)) = (&cli.wal_path, &cli.wal_name) else {
        // clap requires both unless --start-encryption is given.
        let outcome = cli
            .settings()
            .and_then(|s| uxwal::commands::archive::start_encryption(&s.ship));
        return uxwal::exit::start_encryption(outcome);
    };
    uxwal::exit::panic_names(wal_name);
    let settings = cli.settings();
    let repos = match &settings {
        Ok(s) => s.ship.repos.clone(),
        Err(_) => cli.common.repo.clone(),
    };
    let outcome =
        settings.and_then(|s| uxwal::commands::archive::run(wal_path, wal_name, &s, worker::args));
    let metrics_file = cli.common.metrics_file(None);
    run.record_archive(
        metrics_file.as_deref(),
        &repos,
        (wal_path, wal_name),
        &outcome,
    );
    uxwal::exit::archive(outcome, wal_name)
}
