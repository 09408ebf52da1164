//! `uxwal-cleanup` command line (stub).

use clap::Parser;

/// Remove archived WAL files the database no longer needs.
#[derive(Debug, Parser)]
#[command(name = "uxwal-cleanup", version = crate::VERSION_LINE)]
pub struct CleanupCli {}
