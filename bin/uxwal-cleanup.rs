//! `archive_cleanup_command = 'uxwal-cleanup --repo DIR %r'`
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let _cli = uxwal::cli::CleanupCli::parse();
    ExitCode::from(uxwal::exit::FAILURE)
}
