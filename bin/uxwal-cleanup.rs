//! `archive_cleanup_command = 'uxwal-cleanup --repo DIR %r'`
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::CleanupCli;

fn main() -> ExitCode {
    uxwal::exit::exit_on_panic("uxwal-cleanup", uxwal::exit::FAILURE);
    let run = uxwal::metrics::Run::start("cleanup");
    let cli = CleanupCli::parse();
    uxwal::logging::init("uxwal-cleanup", cli.verbosity());
    let settings = cli.settings();
    let location = match &settings {
        Ok(s) => s.location.clone(),
        Err(_) => cli.common.repo.first().cloned().unwrap_or_default(),
    };
    let stdout = std::io::stdout();
    let outcome = settings.and_then(|s| uxwal::commands::cleanup::run(&s, &mut stdout.lock()));
    // A dry run changes nothing, so it has nothing to report.
    if !cli.dry_run {
        let metrics_file = cli.common.metrics_file(None);
        run.record_cleanup(metrics_file.as_deref(), &location, &outcome);
    }
    uxwal::exit::cleanup(outcome)
}
