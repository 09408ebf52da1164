//! The hidden worker modes' command lines: `uxwal-archive --push-ahead-worker`
//! and `uxwal-restore --prefetch-worker`. A call encodes its worker's job here
//! ([`args`], the [`crate::commands::archive::Launcher`] the binaries hand the
//! commands) and the worker parses it back with the same clap definitions, so
//! every flag is spelt in one place; a test round-trips both.
//!
//! People never type these, so they have no man page.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::path::PathBuf;

use clap::Parser;

use super::Common;
use crate::commands::archive::{PushAheadJob, WorkerJob};
use crate::commands::restore::PrefetchJob;
use crate::config::ConfigFile;
use crate::error::Result;

/// The first argument that makes `uxwal-archive` the background push-ahead worker.
pub const PUSH_AHEAD_WORKER_ARG: &str = "--push-ahead-worker";
/// The first argument that makes `uxwal-restore` the background prefetch worker.
pub const PREFETCH_WORKER_ARG: &str = "--prefetch-worker";

/// The background push-ahead worker of uxwal-archive (internal: started by uxwal-archive itself).
#[derive(Debug, Parser)]
#[command(bin_name = "uxwal-archive --push-ahead-worker", version = crate::VERSION_LINE)]
pub struct PushAheadWorkerCli {
    #[command(flatten)]
    pub common: Common,

    #[command(flatten)]
    pub codec: super::archive::CodecArgs,

    /// Files in flight: the worker pushes up to N-1 at a time.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(2..=64))]
    pub parallel: u16,

    /// Spool root.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// The WAL directory whose ready files to push (absolute).
    #[arg(long, value_name = "DIR")]
    pub wal_dir: PathBuf,

    /// The worker lock descriptor inherited from the call that started it.
    #[arg(long, value_name = "FD")]
    pub lock_fd: Option<i32>,
}

impl PushAheadWorkerCli {
    /// The worker's command line, when the program was started as the worker
    /// (first argument [`PUSH_AHEAD_WORKER_ARG`]).
    pub fn from_env() -> Option<Self> {
        worker_args(PUSH_AHEAD_WORKER_ARG).map(Self::parse_from)
    }

    /// The job, with the configuration file's settings where the command line
    /// has none (the call passed everything it resolved itself).
    pub fn job(&self) -> Result<PushAheadJob> {
        let settings = super::archive::settings(
            &self.common,
            self.codec,
            Some(self.parallel),
            self.spool_dir.as_deref(),
            // The worker ships to every repository; the calls apply `require`.
            None,
        )?;
        Ok(PushAheadJob {
            ship: settings.ship,
            parallel: usize::from(self.parallel),
            spool_dir: settings.spool_dir,
            wal_dir: self.wal_dir.clone(),
            config_file: settings.config_file,
        })
    }
}

/// The background prefetch worker of uxwal-restore (internal: started by uxwal-restore itself).
#[derive(Debug, Parser)]
#[command(bin_name = "uxwal-restore --prefetch-worker", version = crate::VERSION_LINE)]
pub struct PrefetchWorkerCli {
    #[command(flatten)]
    pub common: Common,

    /// Segments to keep fetched after the last restored one.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(0..=64))]
    pub prefetch: Option<u16>,

    /// Spool root.
    #[arg(long, value_name = "DIR")]
    pub spool_dir: Option<PathBuf>,

    /// The worker lock descriptor inherited from the restore that started it.
    #[arg(long, value_name = "FD")]
    pub lock_fd: Option<i32>,
}

impl PrefetchWorkerCli {
    /// The worker's command line, when the program was started as the worker
    /// (first argument [`PREFETCH_WORKER_ARG`]).
    pub fn from_env() -> Option<Self> {
        worker_args(PREFETCH_WORKER_ARG).map(Self::parse_from)
    }

    /// The job, with `file`'s settings where the command line has none.
    pub fn job(&self, file: &ConfigFile) -> Result<PrefetchJob> {
        super::restore::settings(&self.common, self.prefetch, self.spool_dir.as_deref(), file)
            .map(|s| s.prefetch_job())
    }
}

/// The command line (after the program name) of a worker for `job`, inheriting
/// the worker lock as descriptor `lock_fd`: the settings exactly as the call
/// resolved them (absolute paths: the worker runs in the spool directory), and
/// `--quiet`, since nobody reads its output. Values are passed as
/// `--option=value`, so that none is ever read as an option.
pub fn args(job: &WorkerJob<'_>, lock_fd: RawFd) -> Vec<OsString> {
    let mut out = Args(Vec::new());
    match job {
        WorkerJob::Prefetch(job) => {
            out.flag(PREFETCH_WORKER_ARG);
            out.value("--prefetch", job.depth.to_string());
            out.common(&job.spool_dir, job.store.deadline, [&job.location]);
            out.keys(&job.store.keys.sources);
            out.config(job.config_file.as_ref());
        }
        WorkerJob::PushAhead(job) => {
            out.flag(PUSH_AHEAD_WORKER_ARG);
            out.value("--wal-dir", &job.wal_dir);
            out.value("--parallel", job.parallel.to_string());
            out.value("--compress", job.ship.compression.to_string());
            out.value("--level", job.ship.level.to_string());
            out.common(&job.spool_dir, job.ship.store.deadline, &job.ship.repos);
            out.keys(&job.ship.store.keys.sources);
            out.config(job.config_file.as_ref());
        }
    }
    out.value("--lock-fd", lock_fd.to_string());
    out.0
}

/// A worker command line being built.
struct Args(Vec<OsString>);

impl Args {
    fn flag(&mut self, flag: &str) {
        self.0.push(flag.into());
    }

    fn value(&mut self, option: &str, value: impl Into<OsString>) {
        let mut arg = OsString::from(format!("{option}="));
        arg.push(value.into());
        self.0.push(arg);
    }

    /// The options of [`Common`] and the spool root; the deadline cut to the
    /// command line's range.
    fn common<'a>(
        &mut self,
        spool_dir: &std::path::Path,
        deadline: std::time::Duration,
        repos: impl IntoIterator<Item = &'a String>,
    ) {
        self.value("--spool-dir", spool_dir);
        self.value("--deadline", deadline.as_secs().clamp(1, 3600).to_string());
        self.flag("--quiet");
        for repo in repos {
            self.value("--repo", repo);
        }
    }

    /// The keys the call used, so that the worker loads the same ones (the
    /// command line's win over the configuration file's there too).
    fn keys(&mut self, keys: &crate::crypt::KeySources) {
        for recipient in &keys.encrypt_to {
            self.value("--encrypt-to", recipient);
        }
        if let Some(file) = &keys.digest_key_file {
            self.value("--digest-key-file", file);
        }
        for file in &keys.identity_files {
            self.value("--identity", file);
        }
    }

    fn config(&mut self, config: Option<&PathBuf>) {
        if let Some(config) = config {
            self.value("--config", config);
        }
    }
}

/// The command line after `marker` when the program was started with `marker` as
/// its first argument (a hidden worker mode), with the program name in front;
/// `None` otherwise.
fn worker_args(marker: &str) -> Option<Vec<OsString>> {
    let mut args = std::env::args_os();
    let program = args.next()?;
    let mut rest = args.peekable();
    if rest.peek()? != marker {
        return None;
    }
    rest.next();
    Some(std::iter::once(program).chain(rest).collect())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::codec::Compression;
    use crate::pipeline::ship;
    use crate::repo::remote::StoreOptions;

    /// Parses `args` as the worker would: program name, marker dropped.
    fn parse<T: Parser>(args: Vec<OsString>) -> T {
        T::try_parse_from(std::iter::once(OsString::from("uxwal")).chain(args.into_iter().skip(1)))
            .unwrap()
    }

    fn store() -> StoreOptions {
        StoreOptions {
            deadline: Duration::from_secs(42),
            ..StoreOptions::default()
        }
    }

    #[test]
    fn a_push_ahead_job_round_trips_through_its_command_line() {
        let job = PushAheadJob {
            ship: ship::Settings {
                repos: vec!["/mnt/wal".into(), "s3://b/--quiet".into()],
                store: store(),
                compression: Compression::Gzip,
                level: 3,
            },
            parallel: 7,
            spool_dir: "/var/spool/uxwal".into(),
            wal_dir: "/data/pg_wal".into(),
            config_file: Some("/etc/uxwal/other.toml".into()),
        };
        let args = args(&WorkerJob::PushAhead(&job), 9);
        assert_eq!(args[0], PUSH_AHEAD_WORKER_ARG);
        let cli: PushAheadWorkerCli = parse(args);
        assert_eq!(cli.lock_fd, Some(9));
        assert!(cli.common.quiet);
        assert_eq!(cli.common.deadline, Some(42));
        assert_eq!(cli.common.repo, job.ship.repos);
        assert_eq!(cli.common.config, job.config_file);
        assert_eq!(cli.codec.compress, Some(Compression::Gzip));
        assert_eq!(cli.codec.level, Some(3));
        assert_eq!(cli.parallel, 7);
        assert_eq!(cli.spool_dir.as_deref(), Some(job.spool_dir.as_path()));
        assert_eq!(cli.wal_dir, job.wal_dir);
    }

    #[test]
    fn a_prefetch_job_round_trips_through_its_command_line() {
        let job = PrefetchJob {
            location: "s3://bucket/wal".into(),
            store: store(),
            depth: 5,
            max_bytes: crate::commands::restore::DEFAULT_MAX_BYTES,
            linger: crate::commands::restore::DEFAULT_LINGER,
            spool_dir: "/tmp/uxwal-101".into(),
            config_file: None,
        };
        let args = args(&WorkerJob::Prefetch(&job), 4);
        assert_eq!(args[0], PREFETCH_WORKER_ARG);
        let cli: PrefetchWorkerCli = parse(args);
        let parsed = cli.job(&ConfigFile::default()).unwrap();
        assert_eq!(cli.lock_fd, Some(4));
        assert!(cli.common.quiet);
        assert_eq!(parsed.location, job.location);
        assert_eq!(parsed.depth, job.depth);
        assert_eq!(parsed.spool_dir, job.spool_dir);
        assert_eq!(parsed.store.deadline, job.store.deadline);
        assert_eq!(parsed.config_file, None);
    }
}
