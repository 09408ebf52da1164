//! `uxwal-verify --repo DIR`: is the archive complete and intact?
use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let _cli = uxwal::cli::VerifyCli::parse();
    ExitCode::from(uxwal::exit::FAILURE)
}
