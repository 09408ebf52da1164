//! Exit codes: the contract with the database. Every code a command can return is
//! here, with what the database does with it (`docs/` and the man pages repeat it).
//!
//! PostgreSQL treats an exit status above 125 from `restore_command` as fatal: the
//! startup process stops and so does recovery (`src/common/wait_error.c`). uxwal uses
//! that only where stopping is the safe answer ([`ABORT_RECOVERY`]).

use std::process::ExitCode;

use crate::commands::archive::Archived;
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

/// The message of `e`, naming `wal_name`: the server log must say which file
/// failed, so it is prefixed unless the error already names that file.
fn naming(e: &Error, wal_name: &str) -> String {
    if e.names_file() == Some(wal_name) {
        e.to_string()
    } else {
        format!("{wal_name}: {e}")
    }
}

/// Maps an archive outcome to its exit code, logging the error line.
pub fn archive(outcome: Result<Archived>, wal_name: &str) -> ExitCode {
    match outcome {
        Ok(_) => ExitCode::from(SUCCESS),
        Err(e) => {
            tracing::error!("{}", naming(&e, wal_name));
            ExitCode::from(FAILURE)
        }
    }
}

/// Reports `uxwal-archive --start-encryption`: a line per repository on
/// standard output, 0 when all are encrypted from now on, else 1.
pub fn start_encryption(outcome: Result<Vec<(String, crate::repo::Started)>>) -> ExitCode {
    use crate::repo::Started;
    match outcome {
        Ok(repos) => {
            for (location, started) in repos {
                match started {
                    Started::Now(marker) => println!(
                        "{location}: WAL archived from now on is encrypted (to {})",
                        marker.recipients.join(", ")
                    ),
                    Started::Already(marker) => {
                        println!("{location}: encrypted already, since {}", marker.since)
                    }
                }
            }
            ExitCode::from(SUCCESS)
        }
        Err(e) => {
            tracing::error!("--start-encryption: {e}");
            ExitCode::from(FAILURE)
        }
    }
}

/// Maps a restore outcome to its exit code under `policy`, logging the error line.
pub fn restore(outcome: Result<RestoreOutcome>, policy: ErrorPolicy, wal_name: &str) -> ExitCode {
    match outcome {
        Ok(RestoreOutcome::Restored(_)) => ExitCode::from(SUCCESS),
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
pub fn cleanup(outcome: Result<crate::commands::cleanup::Report>) -> ExitCode {
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
        Err(
            e @ (Error::Usage(_)
            | Error::NoArchiveLocation { .. }
            | Error::InvalidCutoff(_)
            | Error::UnsupportedLocation(_)
            | Error::Config(_)),
        ) => {
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
/// when it could not run (bad command line, or the repository cannot be read):
/// every error means it could not run, since problems found are in the report.
pub fn verify(outcome: Result<crate::commands::verify::report::Report>) -> ExitCode {
    match outcome {
        Ok(report) if report.ok => ExitCode::from(SUCCESS),
        Ok(_) => ExitCode::from(FAILURE),
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(USAGE)
        }
    }
}

/// Maps a sync to its exit code: [`SUCCESS`] when everything in scope is in
/// the target identically, [`FAILURE`] when something was not copied (each
/// file is named in the log already) or the repositories belong to different
/// clusters (nothing was copied), [`USAGE`] when it could not run.
pub fn sync(outcome: Result<crate::commands::sync::Report>) -> ExitCode {
    match outcome {
        Ok(report) if report.ok() => ExitCode::from(SUCCESS),
        Ok(report) => {
            tracing::error!(
                "{} files not copied ({} conflicts, {} damaged, {} failed)",
                report.conflicts + report.damaged + report.failed,
                report.conflicts,
                report.damaged,
                report.failed
            );
            ExitCode::from(FAILURE)
        }
        Err(e @ Error::DifferentArchives { .. }) => {
            tracing::error!("{e}");
            ExitCode::from(FAILURE)
        }
        Err(e @ Error::Usage(_)) => {
            tracing::error!("{e} (try \"uxwal-sync --help\")");
            ExitCode::from(USAGE)
        }
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

/// True during a point-in-time recovery: `recovery.signal` without
/// `standby.signal` in `data_dir` (the directory the database starts
/// `restore_command` in). There, exit 1 (or 2, or any status up to 125) ends
/// recovery early as if the archive had ended.
pub fn in_point_in_time_recovery(data_dir: &std::path::Path) -> bool {
    data_dir.join("recovery.signal").exists() && !data_dir.join("standby.signal").exists()
}

/// Maps a command line `uxwal-restore` could not parse to its exit code: help
/// and version are printed as asked; a usage error is logged as one line and,
/// during a point-in-time recovery, exits [`ABORT_RECOVERY`] (a typo in
/// `restore_command` must stop the recovery, not end it early at the end of
/// `pg_wal`), otherwise [`USAGE`].
pub fn restore_usage(e: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::from(SUCCESS);
    }
    crate::logging::init("uxwal-restore", crate::logging::Verbosity::Normal);
    let rendered = e.to_string();
    let first = rendered
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("invalid command line");
    let first = first.strip_prefix("error: ").unwrap_or(first);
    if in_point_in_time_recovery(std::path::Path::new(".")) {
        tracing::error!(
            "invalid command line: {first} (try \"uxwal-restore --help\"); stopping recovery (exit {ABORT_RECOVERY}) rather than ending it early"
        );
        ExitCode::from(ABORT_RECOVERY)
    } else {
        tracing::error!("invalid command line: {first} (try \"uxwal-restore --help\")");
        ExitCode::from(USAGE)
    }
}

/// The WAL file a panic's log line names (see [`panic_names`]).
static PANIC_SUBJECT: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes the log line of a panic name `wal_name`, the file the call was for.
pub fn panic_names(wal_name: &str) {
    let _ = PANIC_SUBJECT.set(wal_name.to_owned());
}

/// The status a panic exits with (see [`exit_on_panic`]).
static PANIC_STATUS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(FAILURE);

/// Makes a panic (always a bug in uxwal) end the whole process at once with
/// `status`, after one line naming `program` in the log. Rust's default is exit
/// 101 after unwinding the panicking thread only, and 101 from
/// `restore_command` means "not found" to the database: during a
/// point-in-time recovery a bug would end recovery early. Called again, it
/// only changes the status (a restore learns its error policy after parsing).
pub fn exit_on_panic(program: &'static str, status: u8) {
    static HOOK: std::sync::Once = std::sync::Once::new();
    PANIC_STATUS.store(status, std::sync::atomic::Ordering::SeqCst);
    HOOK.call_once(|| {
        std::panic::set_hook(Box::new(move |info| {
            let status = PANIC_STATUS.load(std::sync::atomic::Ordering::SeqCst);
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "panic".into());
            let at = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            let what = what.replace('\n', " ");
            let file = PANIC_SUBJECT
                .get()
                .map(|f| format!("{f}: "))
                .unwrap_or_default();
            eprintln!(
                "{program}: error: {file}internal error (a bug in uxwal): {what}{at}; exiting {status}"
            );
            std::process::exit(i32::from(status));
        }));
    });
}

/// The status a panic in `uxwal-restore` exits with under `policy`: the one an
/// error would (see [`restore`]).
pub fn restore_panic_status(policy: ErrorPolicy) -> u8 {
    match policy {
        ErrorPolicy::Abort => ABORT_RECOVERY,
        ErrorPolicy::Missing => FAILURE,
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::path::PathBuf;

    use super::*;

    #[test]
    fn the_wal_name_is_prefixed_unless_the_error_names_that_file() {
        const NAME: &str = "000000010000000000000005";
        let storage = Error::Storage {
            location: "/r".into(),
            op: "read",
            key: format!("wal/0000000100000000/{NAME}"),
            source: io::Error::other("busy"),
        };
        assert!(naming(&storage, NAME).starts_with("repository /r"));
        let restore_target = Error::Destination {
            path: PathBuf::from("pg_wal/RECOVERYXLOG"),
            source: io::Error::other("full"),
        };
        assert!(naming(&restore_target, NAME).starts_with(&format!("{NAME}: cannot write")));
        let config = Error::Config("bad".into());
        assert_eq!(naming(&config, NAME), format!("{NAME}: configuration: bad"));
        // A message that merely contains the name somewhere does not count.
        let metadata = Error::BadMetadata {
            key: "IDENTITY".into(),
            reason: format!("mentions {NAME}"),
        };
        assert!(naming(&metadata, NAME).starts_with(&format!("{NAME}: ")));
    }
}
