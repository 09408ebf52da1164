//! `restore_command = 'uxwal-restore --repo DIR %f %p'`
use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::{worker, PrefetchWorkerCli, RestoreCli};
use uxwal::commands::restore::OnError;
use uxwal::config::ConfigFile;
use uxwal::exit;

fn main() -> ExitCode {
    // Until the policy is known, a panic stops a point-in-time recovery.
    let auto = OnError::Auto.resolve(Path::new("."));
    exit::exit_on_panic("uxwal-restore", exit::restore_panic_status(auto));
    if let Some(worker) = PrefetchWorkerCli::from_env() {
        exit::exit_on_panic("uxwal-restore", exit::FAILURE);
        uxwal::logging::init("uxwal-restore", worker.common.verbosity());
        let outcome = ConfigFile::load(worker.common.config.as_deref())
            .and_then(|f| worker.job(&f))
            .and_then(|job| uxwal::commands::restore::run_prefetch_worker(&job, worker.lock_fd));
        return exit::worker("prefetch worker", outcome);
    }
    let run = uxwal::metrics::Run::start("restore");
    let cli = match RestoreCli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return exit::restore_usage(e),
    };
    exit::panic_names(&cli.wal_name);
    uxwal::logging::init("uxwal-restore", cli.common.verbosity());
    let file = ConfigFile::load(cli.common.config.as_deref());
    let policy = cli.policy(file.as_ref().ok());
    exit::exit_on_panic("uxwal-restore", exit::restore_panic_status(policy));
    let metrics_file = file.as_ref().ok().map(|f| cli.common.metrics_file(Some(f)));
    let settings = file.and_then(|f| cli.settings(&f));
    let repos = match &settings {
        Ok(s) => s.repos.clone(),
        Err(_) => cli.common.repo.clone(),
    };
    let outcome = settings.and_then(|s| {
        uxwal::commands::restore::run(&cli.wal_name, &cli.dest_path, &s, policy, worker::args)
    });
    let metrics_file = metrics_file.unwrap_or_else(|| cli.common.metrics_file.clone());
    run.record_restore(metrics_file.as_deref(), &repos, &cli.wal_name, &outcome);
    exit::restore(outcome, policy, &cli.wal_name)
}
