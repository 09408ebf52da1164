//! `uxwal-verify --repo DIR`: is the archive complete and intact?
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::VerifyCli;

fn main() -> ExitCode {
    uxwal::exit::exit_on_panic("uxwal-verify", uxwal::exit::USAGE);
    let cli = VerifyCli::parse();
    uxwal::logging::init("uxwal-verify", cli.common.verbosity());
    uxwal::exit::verify(
        cli.settings()
            .and_then(|s| uxwal::commands::verify::run_and_print(&s)),
    )
}
