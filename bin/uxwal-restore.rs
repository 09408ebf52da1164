//! `restore_command = 'uxwal-restore --repo DIR %f %p'`
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::{worker, PrefetchWorkerCli, RestoreCli};
use uxwal::config::ConfigFile;

fn main() -> ExitCode {
    if let Some(worker) = PrefetchWorkerCli::from_env() {
        uxwal::logging::init("uxwal-restore", worker.common.verbosity());
        let outcome = ConfigFile::load(worker.common.config.as_deref())
            .and_then(|f| worker.job(&f))
            .and_then(|job| uxwal::background::prefetch::run_worker(&job, worker.lock_fd));
        return uxwal::exit::worker("prefetch worker", outcome);
    }
    let cli = RestoreCli::parse();
    uxwal::logging::init("uxwal-restore", cli.common.verbosity());
    let file = ConfigFile::load(cli.common.config.as_deref());
    let policy = cli.policy(file.as_ref().ok());
    let outcome = file.and_then(|f| cli.settings(&f)).and_then(|s| {
        uxwal::commands::restore::run(&cli.wal_name, &cli.dest_path, &s, policy, worker::args)
    });
    uxwal::exit::restore(outcome, policy, &cli.wal_name)
}
