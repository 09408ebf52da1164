//! `uxwal-verify --repo DIR`: is the archive complete and intact?
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::VerifyCli;

fn main() -> ExitCode {
    uxwal::exit::exit_on_panic("uxwal-verify", uxwal::exit::USAGE);
    let run = uxwal::metrics::Run::start("verify");
    let cli = VerifyCli::parse();
    uxwal::logging::init("uxwal-verify", cli.common.verbosity());
    let settings = cli.settings();
    let location = match &settings {
        Ok(s) => s.repo.clone(),
        Err(_) => cli.common.repo.first().cloned().unwrap_or_default(),
    };
    let outcome = settings.and_then(|s| uxwal::commands::verify::run_and_print(&s));
    let metrics_file = cli.common.metrics_file(None);
    run.record_verify(metrics_file.as_deref(), &location, &outcome);
    uxwal::exit::verify(outcome)
}
