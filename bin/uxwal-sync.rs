//! `uxwal-sync --from A --to B`: copy the WAL files A has and B lacks.
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::SyncCli;

fn main() -> ExitCode {
    uxwal::exit::exit_on_panic("uxwal-sync", uxwal::exit::USAGE);
    let cli = SyncCli::parse();
    uxwal::logging::init("uxwal-sync", cli.verbosity());
    let outcome = cli
        .settings()
        .and_then(|s| uxwal::commands::sync::run_and_print(&s));
    uxwal::exit::sync(outcome)
}
