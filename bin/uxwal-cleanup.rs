//! `archive_cleanup_command = 'uxwal-cleanup --repo DIR %r'`
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::CleanupCli;

fn main() -> ExitCode {
    uxwal::exit::exit_on_panic("uxwal-cleanup", uxwal::exit::FAILURE);
    let cli = CleanupCli::parse();
    uxwal::logging::init("uxwal-cleanup", cli.verbosity());
    let stdout = std::io::stdout();
    uxwal::exit::cleanup(
        cli.settings()
            .and_then(|s| uxwal::commands::cleanup::run(&s, &mut stdout.lock())),
    )
}
