//! Exit codes: the contract with the database. Every code a command can return is
//! here, with what the database does with it (`docs/` and the man pages repeat it).
//!
//! PostgreSQL treats an exit status above 125 from `restore_command` as fatal: the
//! startup process stops and so does recovery (`src/common/wait_error.c`). uxwal uses
//! that only where stopping is the safe answer ([`ABORT_RECOVERY`]).

use std::process::ExitCode;

use crate::commands::archive::ArchiveOutcome;
use crate::commands::restore::{ErrorPolicy, RestoreOutcome};
use crate::error::{Error, Result};

/// Archived (or already archived with identical content); restored.
pub const SUCCESS: u8 = 0;
/// Archive: failed, the database will retry. Restore: not in the archive (or, on a
/// standby or with `--on-error missing`, an error), the database looks elsewhere.
pub const FAILURE: u8 = 1;
/// Invalid command line (reported by the argument parser).
pub const USAGE: u8 = 2;
/// Restore: an error other than "not found" during point-in-time recovery; the
/// database stops recovery with this error in its log instead of ending recovery early.
pub const ABORT_RECOVERY: u8 = 200;

/// The message of `e`, naming `wal_name`: the server log must say which file failed.
fn naming(e: &Error, wal_name: &str) -> String {
    let msg = e.to_string();
    if msg.contains(wal_name) {
        msg
    } else {
        format!("{wal_name}: {msg}")
    }
}

/// Maps an archive outcome to its exit code, logging the error line.
pub fn archive(outcome: Result<ArchiveOutcome>, wal_name: &str) -> ExitCode {
    match outcome {
        Ok(_) => ExitCode::from(SUCCESS),
        Err(e) => {
            tracing::error!("{}", naming(&e, wal_name));
            ExitCode::from(FAILURE)
        }
    }
}

/// Maps a restore outcome to its exit code under `policy`, logging the error line.
pub fn restore(outcome: Result<RestoreOutcome>, policy: ErrorPolicy, wal_name: &str) -> ExitCode {
    match outcome {
        Ok(RestoreOutcome::Restored) => ExitCode::from(SUCCESS),
        Ok(RestoreOutcome::NotInArchive) => ExitCode::from(FAILURE),
        // A malformed name cannot be in the archive: "not found" is the true answer.
        Err(e @ Error::InvalidName(_)) => {
            tracing::error!("{e}");
            ExitCode::from(FAILURE)
        }
        Err(e) => match policy {
            ErrorPolicy::Abort => {
                tracing::error!(
                    "{}; stopping recovery (exit {ABORT_RECOVERY}) rather than ending it early",
                    naming(&e, wal_name)
                );
                ExitCode::from(ABORT_RECOVERY)
            }
            ErrorPolicy::Missing => {
                tracing::error!(
                    "{}; reporting the file as unavailable (exit {FAILURE})",
                    naming(&e, wal_name)
                );
                ExitCode::from(FAILURE)
            }
        },
    }
}

/// Maps a cleanup outcome to `pg_archivecleanup`'s exit codes, logging the error
/// line: [`USAGE`] for a bad command line, name or archive location (nothing was
/// touched), [`FAILURE`] when listing, reading or some removal failed, else
/// [`SUCCESS`]. The database only logs a WARNING for a nonzero exit.
pub fn cleanup(
    outcome: std::result::Result<
        crate::commands::cleanup::Report,
        crate::commands::cleanup::CleanupError,
    >,
) -> ExitCode {
    use crate::commands::cleanup::CleanupError;
    match outcome {
        Ok(report) if report.failed == 0 => ExitCode::from(SUCCESS),
        Ok(report) => {
            tracing::error!(
                "could not remove {} of {} files; the others were removed",
                report.failed,
                report.failed + report.removed
            );
            ExitCode::from(FAILURE)
        }
        Err(e @ CleanupError::Usage(_)) => {
            tracing::error!("{e} (try \"uxwal-cleanup --help\")");
            ExitCode::from(USAGE)
        }
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(FAILURE)
        }
    }
}

/// Maps a verification to its exit code: [`SUCCESS`] only when nothing at all is
/// wrong, [`FAILURE`] when a problem was found (the report names each), [`USAGE`]
/// when it could not run (bad command line, or the repository cannot be read).
pub fn verify(
    outcome: std::result::Result<
        crate::commands::verify::report::Report,
        crate::commands::verify::VerifyError,
    >,
) -> ExitCode {
    match outcome {
        Ok(report) if report.ok => ExitCode::from(SUCCESS),
        Ok(_) => ExitCode::from(FAILURE),
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(USAGE)
        }
    }
}

/// A background worker's exit status, which nobody but a test looks at (its
/// output goes to /dev/null): [`SUCCESS`] unless it failed. `what` names the
/// worker in the log line.
pub fn worker<T: std::fmt::Debug>(what: &str, outcome: Result<T>) -> ExitCode {
    match outcome {
        Ok(o) => {
            tracing::debug!("{what}: {o:?}");
            ExitCode::from(SUCCESS)
        }
        Err(e) => {
            tracing::error!("{what}: {e}");
            ExitCode::from(FAILURE)
        }
    }
}
