//! `uxwal-verify` command line (stub).

use clap::Parser;

/// Prove an archive is complete and intact.
#[derive(Debug, Parser)]
#[command(name = "uxwal-verify", version = crate::VERSION_LINE)]
pub struct VerifyCli {}
