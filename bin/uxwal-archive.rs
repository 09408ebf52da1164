//! `archive_command = 'uxwal-archive --repo DIR %p %f'`
use std::process::ExitCode;

use clap::Parser;
use uxwal::cli::ArchiveCli;

fn main() -> ExitCode {
    let cli = ArchiveCli::parse();
    uxwal::logging::init("uxwal-archive", cli.common.verbosity());
    let outcome = cli
        .settings()
        .and_then(|s| uxwal::archive::run(&cli.wal_path, &cli.wal_name, &s));
    uxwal::exit::archive(outcome, &cli.wal_name)
}
