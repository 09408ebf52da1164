#![allow(dead_code)]
//! A real PostgreSQL server for end-to-end tests.
//!
//! Every [`Cluster`] lives in its own temporary directory under `/tmp` that
//! holds the data directory, the unix socket directory, the server log and a
//! private copy of the uxwal binaries. The server listens only on that socket
//! (`listen_addresses = ''`), so clusters of tests running in parallel never
//! share a socket file, whatever port they were given.
//!
//! PostgreSQL refuses to run as root. When the tests run as root (CI, fresh
//! Debian machines), every PostgreSQL program is started through
//! `runuser -u postgres --` and every directory the server touches is chowned
//! to `postgres`. That is also why the binaries are copied: the postgres user
//! may not be allowed to read cargo's target directory (e.g. under `/root`).
//!
//! Dropping a [`Cluster`] stops its server (`pg_ctl stop -m immediate`, then
//! SIGKILL to the postmaster from `postmaster.pid`), so a failing test leaves
//! no server behind. A panicking test also prints the tail of the server log.

use std::ffi::{CString, OsStr};
use std::fmt::Write as _;
use std::fs;
use std::io::Write as _;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use tempfile::TempDir;

use super::{poll, poll_until};

/// Seconds `pg_ctl` may wait for a start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "300";

/// The directory holding `initdb`, `pg_ctl`, `psql`, ...
///
/// `UXWAL_PG_BINDIR` wins; otherwise the newest `/usr/lib/postgresql/*/bin`
/// that contains `initdb` (Debian's layout). Panics when there is none: CI
/// installs PostgreSQL (`scripts/install-deps`), and an end-to-end test that
/// silently skips would hide exactly the breakage it exists to catch.
pub fn bindir() -> &'static Path {
    static BINDIR: OnceLock<PathBuf> = OnceLock::new();
    BINDIR.get_or_init(|| {
        if let Some(dir) = std::env::var_os("UXWAL_PG_BINDIR") {
            let dir = PathBuf::from(dir);
            assert!(
                dir.join("initdb").is_file(),
                "UXWAL_PG_BINDIR={} has no initdb",
                dir.display()
            );
            return dir;
        }
        let mut found: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|entry| {
                let bin = entry.path().join("bin");
                if !bin.join("initdb").is_file() {
                    return None;
                }
                let version = entry
                    .file_name()
                    .to_string_lossy()
                    .split('.')
                    .map(|part| part.parse().unwrap_or(0))
                    .collect();
                Some((version, bin))
            })
            .collect();
        found.sort();
        match found.pop() {
            Some((_, bin)) => bin,
            None => panic!(
                "PostgreSQL server binaries not found: no /usr/lib/postgresql/*/bin/initdb \
                 and UXWAL_PG_BINDIR is not set. Run scripts/install-deps (as root) or \
                 set UXWAL_PG_BINDIR to the directory holding initdb and pg_ctl."
            ),
        }
    })
}

/// Whether this test process runs as root (and so must hand PostgreSQL to
/// the `postgres` user).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// uid and gid of the `postgres` user. Only called when running as root.
fn postgres_ids() -> (u32, u32) {
    static IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *IDS.get_or_init(|| {
        let name = CString::new("postgres").unwrap();
        // SAFETY: `name` is a valid NUL-terminated string; the returned
        // record is read before any other getpw* call can overwrite it
        // (OnceLock runs this closure once, and nothing else here calls
        // getpw*).
        let pw = unsafe { libc::getpwnam(name.as_ptr()) };
        assert!(
            !pw.is_null(),
            "running as root but there is no `postgres` user to run PostgreSQL as \
             (install the postgresql package: scripts/install-deps)"
        );
        // SAFETY: checked non-null above.
        unsafe { ((*pw).pw_uid, (*pw).pw_gid) }
    })
}

/// Hands `path` and everything below it to the `postgres` user when running
/// as root; does nothing otherwise. Symlinks themselves are chowned, never
/// followed.
pub fn chown_to_postgres(path: &Path) {
    if !is_root() {
        return;
    }
    let (uid, gid) = postgres_ids();
    let meta =
        fs::symlink_metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    std::os::unix::fs::lchown(path, Some(uid), Some(gid))
        .unwrap_or_else(|e| panic!("chown {} to postgres: {e}", path.display()));
    if meta.is_dir() {
        for entry in fs::read_dir(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())) {
            chown_to_postgres(&entry.unwrap().path());
        }
    }
}

/// A fresh directory under `/tmp` that the PostgreSQL user owns, for things
/// several clusters share (an archive repository, a base backup).
pub fn pg_tempdir(prefix: &str) -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in("/tmp")
        .expect("create temp dir under /tmp");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
    chown_to_postgres(dir.path());
    dir
}

/// A command that runs `program` as the user PostgreSQL runs as: through
/// `runuser -u postgres --` when we are root, directly otherwise.
pub fn command_as_pg(program: impl AsRef<OsStr>) -> Command {
    if is_root() {
        let mut cmd = Command::new("runuser");
        cmd.args(["-u", "postgres", "--"]).arg(program);
        cmd
    } else {
        Command::new(program)
    }
}

/// A command for the PostgreSQL program `name` from [`bindir`], run as the
/// PostgreSQL user.
pub fn pg_command(name: &str) -> Command {
    let mut cmd = command_as_pg(bindir().join(name));
    // The user's own libpq settings must not redirect the tests anywhere.
    for var in [
        "PGHOST",
        "PGHOSTADDR",
        "PGPORT",
        "PGDATABASE",
        "PGUSER",
        "PGDATA",
        "PGSERVICE",
        "PGOPTIONS",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("TZ", "UTC");
    // A server that does not answer must fail the test, not hang it.
    cmd.env("PGCONNECT_TIMEOUT", "10");
    cmd
}

/// Runs `cmd` to completion and panics, with everything it printed, unless it
/// exited 0.
pub fn run_ok(cmd: &mut Command) -> Output {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    assert_succeeded(cmd, out)
}

/// Panics, with everything `cmd` printed, unless it exited 0.
fn assert_succeeded(cmd: &Command, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{cmd:?} failed with {}\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Like [`run_ok`], but fails the test when `cmd` has not finished after
/// [`super::WAIT_TIMEOUT`]. For commands that wait on the server, such as
/// pg_basebackup, which waits (forever) for the archiver to ship the backup's
/// last segment.
pub fn run_ok_waiting(cmd: &mut Command) -> Output {
    use std::io::Read as _;
    use std::process::Stdio;

    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {cmd:?}: {e}"));
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let stdout = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let stderr = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let finished = poll(&format!("{cmd:?} to finish"), || {
        child
            .try_wait()
            .expect("wait for child")
            .ok_or_else(|| "still running".to_string())
    });
    let status = match finished {
        Ok(status) => status,
        Err(timed_out) => {
            // SIGTERM, not SIGKILL: runuser forwards it to the program it
            // runs, which would survive a SIGKILLed runuser.
            // SAFETY: plain kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let _ = child.wait();
            let err = stderr.join().unwrap_or_default();
            panic!("{timed_out}\n--- stderr\n{}", String::from_utf8_lossy(&err));
        }
    };
    let out = Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    };
    assert_succeeded(cmd, out)
}

/// A TCP port number nobody on this machine is listening on right now, and
/// that no other cluster of this test process was given. The server never
/// binds it (it listens on a unix socket only): the number just names the
/// socket file `.s.PGSQL.<port>`, which lives in a per-cluster directory.
fn free_port() -> u16 {
    static TAKEN: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    let mut taken = TAKEN.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        let port = TcpListener::bind(("127.0.0.1", 0))
            .and_then(|l| l.local_addr())
            .expect("bind 127.0.0.1:0")
            .port();
        if !taken.contains(&port) {
            taken.push(port);
            return port;
        }
    }
}

/// The first file named exactly `name` anywhere below `repo` (the repository
/// layout shards files into subdirectories; tests check presence by name,
/// because stored files are compressed).
pub fn find_in_repo(repo: &Path, name: &str) -> Option<PathBuf> {
    let entries = fs::read_dir(repo).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            if let Some(found) = find_in_repo(&path, name) {
                return Some(found);
            }
        } else if entry.file_name() == name {
            return Some(path);
        }
    }
    None
}

/// Names of every regular file below `repo` that satisfies `keep`, sorted.
pub fn files_in_repo(repo: &Path, keep: &dyn Fn(&str) -> bool) -> Vec<String> {
    fn walk(dir: &Path, keep: &dyn Fn(&str) -> bool, out: &mut Vec<String>) {
        let Ok(entries) = fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                walk(&entry.path(), keep, out);
            } else if kind.is_file() {
                let name = entry.file_name().to_string_lossy().into_owned();
                if keep(&name) {
                    out.push(name);
                }
            }
        }
    }
    let mut out = Vec::new();
    walk(repo, keep, &mut out);
    out.sort();
    out
}

/// Waits until a file named `name` is somewhere below `repo`.
pub fn wait_for_file_in_repo(repo: &Path, name: &str) -> PathBuf {
    poll_until(&format!("{name} in {}", repo.display()), || {
        find_in_repo(repo, name).ok_or_else(|| "not there yet".to_string())
    })
}

/// A postgres-owned temp directory holding an empty repository `repo/`, for
/// repositories and base backups that outlive the clusters using them.
pub fn shared_repo(prefix: &str) -> (TempDir, PathBuf) {
    let shared = pg_tempdir(prefix);
    let repo = shared.path().join("repo");
    fs::create_dir(&repo).unwrap();
    chown_to_postgres(&repo);
    (shared, repo)
}

/// How a new cluster is created by [`Cluster::init`].
#[derive(Debug, Clone)]
pub struct InitOptions {
    /// `initdb --wal-segsize`, in MiB (a power of two, 1 to 1024).
    pub wal_segsize_mb: u32,
    /// Archive every WAL file with uxwal-archive (`archive_mode = on`).
    pub archive: bool,
    /// Where the archive repository lives; `None` means `repo/` inside the
    /// cluster's own directory.
    pub repo: Option<PathBuf>,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            wal_segsize_mb: 16,
            archive: true,
            repo: None,
        }
    }
}

/// What a cluster made from a base backup does at start-up.
#[derive(Debug, Clone)]
pub enum Recovery {
    /// Archive recovery (`recovery.signal`): replay from the repository with
    /// uxwal-restore, then act as `recovery_target_action` says.
    PointInTime {
        /// `recovery_target_name` (a `pg_create_restore_point` label);
        /// `None` replays everything the archive has.
        target_name: Option<String>,
        /// `recovery_target_timeline` (`latest`, `current` or a number);
        /// `None` keeps PostgreSQL's default (`latest`).
        target_timeline: Option<String>,
        /// `recovery_target_action` (`promote`, `pause`, `shutdown`).
        action: String,
    },
    /// A standby (`standby.signal`): WAL from uxwal-restore, and also
    /// streamed from `primary_conninfo` when that is given (see
    /// [`Cluster::conninfo`]).
    Standby {
        primary_conninfo: Option<String>,
        /// `recovery_target_timeline`; `None` keeps the default (`latest`).
        /// A standby of a primary that stayed on an older timeline than the
        /// archive's newest needs `current`.
        target_timeline: Option<String>,
    },
}

impl Recovery {
    /// Point-in-time recovery to the restore point `target_name` (`None`: to the
    /// end of the archive) on `target_timeline`, then promotion.
    pub fn promote(target_name: Option<&str>, target_timeline: Option<&str>) -> Self {
        Recovery::PointInTime {
            target_name: target_name.map(str::to_owned),
            target_timeline: target_timeline.map(str::to_owned),
            action: "promote".to_owned(),
        }
    }
}

/// How a cluster is created from a base backup by [`Cluster::from_backup`].
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// Repository uxwal-restore reads (and uxwal-archive writes, when
    /// `archive` is set).
    pub repo: PathBuf,
    pub recovery: Recovery,
    /// Archive this cluster's own WAL into `repo` once it is a primary.
    pub archive: bool,
}

/// A PostgreSQL cluster in its own temporary directory. See the module docs.
pub struct Cluster {
    name: String,
    port: u16,
    data: PathBuf,
    sockdir: PathBuf,
    bin: PathBuf,
    repo: PathBuf,
    log: PathBuf,
    /// Replaces `--repo <repo>` in the uxwal commands (see [`Cluster::set_repo_args`]).
    repo_args: Option<String>,
    running: bool,
    /// Last so that it is removed after the server is stopped.
    dir: TempDir,
}

impl Cluster {
    /// An empty cluster: the directory, the binaries, and the socket
    /// directory, but no data directory yet.
    fn prepare(name: &str, repo: Option<PathBuf>) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix(&format!("uxwal-{name}."))
            .tempdir_in("/tmp")
            .expect("create cluster dir under /tmp");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o700)).unwrap();
        let root = dir.path().to_path_buf();
        let sockdir = root.join("sock");
        let bin = root.join("bin");
        fs::create_dir(&sockdir).unwrap();
        fs::create_dir(&bin).unwrap();
        for (exe, built) in [
            ("uxwal-archive", env!("CARGO_BIN_EXE_uxwal-archive")),
            ("uxwal-restore", env!("CARGO_BIN_EXE_uxwal-restore")),
        ] {
            let dest = bin.join(exe);
            fs::copy(built, &dest).unwrap_or_else(|e| panic!("copy {built}: {e}"));
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).unwrap();
        }
        let repo = repo.unwrap_or_else(|| {
            let repo = root.join("repo");
            fs::create_dir(&repo).unwrap();
            repo
        });
        chown_to_postgres(&root);
        Cluster {
            name: name.to_string(),
            port: free_port(),
            data: root.join("data"),
            sockdir,
            bin,
            repo,
            log: root.join("server.log"),
            repo_args: None,
            running: false,
            dir,
        }
    }

    /// `initdb` a new cluster (superuser `postgres`, trust auth, C locale)
    /// and configure it for this harness. Not started yet.
    pub fn init(name: &str, opts: &InitOptions) -> Cluster {
        let cluster = Cluster::prepare(name, opts.repo.clone());
        run_ok(
            pg_command("initdb")
                .current_dir(cluster.dir.path())
                .arg("-D")
                .arg(&cluster.data)
                .args(["-A", "trust", "-U", "postgres", "--no-sync"])
                .args(["--locale=C", "--encoding=UTF8"])
                .arg(format!("--wal-segsize={}", opts.wal_segsize_mb)),
        );
        cluster.write_base_conf();
        cluster.append_conf(&format!(
            "wal_level = replica\nmax_wal_senders = 4\n{}",
            cluster.archive_conf(opts.archive)
        ));
        cluster
    }

    /// A cluster whose data directory is a copy of `backup` (made by
    /// [`Cluster::base_backup`]), set up to recover from `opts.repo` with
    /// uxwal-restore. Not started yet. `backup` itself is left untouched, so
    /// several clusters can start from the same backup.
    pub fn from_backup(name: &str, backup: &Path, opts: &RestoreOptions) -> Cluster {
        let cluster = Cluster::prepare(name, Some(opts.repo.clone()));
        // cp -a as the PostgreSQL user keeps modes and ownership right.
        run_ok(
            command_as_pg("cp")
                .current_dir(cluster.dir.path())
                .arg("-a")
                .arg(backup)
                .arg(&cluster.data),
        );
        // pg_basebackup leaves these out, but a copied data directory might
        // carry them and they would confuse pg_ctl.
        for stale in ["postmaster.pid", "postmaster.opts"] {
            let _ = fs::remove_file(cluster.data.join(stale));
        }
        cluster.write_base_conf();
        let mut conf = cluster.archive_conf(opts.archive);
        writeln!(conf, "restore_command = '{}'", cluster.restore_command()).unwrap();
        let signal = match &opts.recovery {
            Recovery::PointInTime {
                target_name,
                target_timeline,
                action,
            } => {
                if let Some(target) = target_name {
                    writeln!(conf, "recovery_target_name = '{target}'").unwrap();
                }
                if let Some(timeline) = target_timeline {
                    writeln!(conf, "recovery_target_timeline = '{timeline}'").unwrap();
                }
                writeln!(conf, "recovery_target_action = '{action}'").unwrap();
                "recovery.signal"
            }
            Recovery::Standby {
                primary_conninfo,
                target_timeline,
            } => {
                if let Some(conninfo) = primary_conninfo {
                    writeln!(conf, "primary_conninfo = '{conninfo}'").unwrap();
                }
                if let Some(timeline) = target_timeline {
                    writeln!(conf, "recovery_target_timeline = '{timeline}'").unwrap();
                }
                "standby.signal"
            }
        };
        cluster.append_conf(&conf);
        let signal = cluster.data.join(signal);
        fs::write(&signal, "").unwrap();
        chown_to_postgres(&signal);
        cluster
    }

    /// Settings every cluster gets, whatever its origin: socket only, in our
    /// own directory, and nothing slow that the tests do not need.
    fn write_base_conf(&self) {
        self.append_conf(&format!(
            "\n# uxwal test harness\n\
             listen_addresses = ''\n\
             port = {port}\n\
             unix_socket_directories = '{sock}'\n\
             fsync = off\n\
             shared_buffers = 32MB\n\
             max_wal_size = 256MB\n\
             checkpoint_timeout = 30min\n\
             log_line_prefix = '%m [%p] %b '\n\
             log_min_messages = info\n\
             log_checkpoints = on\n\
             hot_standby = on\n",
            port = self.port,
            sock = self.sockdir.display(),
        ));
    }

    fn archive_conf(&self, archive: bool) -> String {
        if archive {
            format!(
                "archive_mode = on\narchive_command = '{}'\n",
                self.archive_command()
            )
        } else {
            "archive_mode = off\n".to_string()
        }
    }

    /// The `archive_command` this cluster uses: its copy of uxwal-archive
    /// into its repository.
    pub fn archive_command(&self) -> String {
        format!(
            "{} {} %p %f",
            self.bin.join("uxwal-archive").display(),
            self.repo_arg()
        )
    }

    fn repo_arg(&self) -> String {
        self.repo_args
            .clone()
            .unwrap_or_else(|| format!("--repo {}", self.repo.display()))
    }

    /// Makes the uxwal commands use `args` (e.g. `--config FILE` naming an S3
    /// repository) instead of `--repo <repo dir>`, rewriting both commands in
    /// `postgresql.conf` (later lines win). Call before `start`.
    pub fn set_repo_args(&mut self, args: &str) {
        self.repo_args = Some(args.to_string());
        self.append_conf(&format!(
            "archive_command = '{}'\nrestore_command = '{}'\n",
            self.archive_command(),
            self.restore_command()
        ));
    }

    /// The `restore_command` this cluster uses: its copy of uxwal-restore
    /// from its repository, with its own prefetch spool (see [`Cluster::spool_dir`]).
    pub fn restore_command(&self) -> String {
        format!(
            "{} {} --spool-dir {} %f %p",
            self.bin.join("uxwal-restore").display(),
            self.repo_arg(),
            self.spool_dir().display()
        )
    }

    /// The spool root of this cluster's uxwal-restore, inside its directory, so
    /// that dropping the cluster can wait for the prefetch workers its restores
    /// started (prefetch is on by default for object storage).
    pub fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool")
    }

    /// Appends `text` to `postgresql.conf` (later lines win).
    pub fn append_conf(&self, text: &str) {
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(self.data.join("postgresql.conf"))
            .expect("open postgresql.conf");
        writeln!(file, "{text}").unwrap();
    }

    /// A standby made from `backup` that restores from `repo` and streams from
    /// `primary` (on the newest timeline), archiving into `repo` when
    /// `archive` is set. Not started.
    pub fn streaming_standby(
        name: &str,
        backup: &Path,
        repo: &Path,
        primary: &Cluster,
        archive: bool,
    ) -> Cluster {
        Cluster::from_backup(
            name,
            backup,
            &RestoreOptions {
                repo: repo.to_path_buf(),
                recovery: Recovery::Standby {
                    primary_conninfo: Some(primary.conninfo()),
                    target_timeline: None,
                },
                archive,
            },
        )
    }

    /// A started primary with `wal_segsize_mb` segments, archiving into `repo`.
    pub fn archiving_primary(name: &str, wal_segsize_mb: u32, repo: &Path) -> Cluster {
        let mut primary = Cluster::init(
            name,
            &InitOptions {
                wal_segsize_mb,
                archive: true,
                repo: Some(repo.to_path_buf()),
            },
        );
        primary.start();
        primary
    }

    /// Starts the server and waits until it accepts connections (a server
    /// in archive recovery accepts read-only ones once consistent).
    pub fn start(&mut self) {
        let log = self.log.clone();
        // Even a failed start may have left a postmaster behind.
        self.running = true;
        self.pg_ctl("start", &[OsStr::new("-l"), log.as_os_str()]);
    }

    /// Runs `pg_ctl -D <data> -w -t <timeout> <args> <action>` and asserts it
    /// succeeded, showing the server log's tail when it did not.
    fn pg_ctl(&self, action: &str, args: &[&OsStr]) {
        let out = pg_command("pg_ctl")
            .current_dir(self.dir.path())
            .arg("-D")
            .arg(&self.data)
            .args(args)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS, action])
            .output()
            .unwrap_or_else(|e| panic!("run pg_ctl {action}: {e}"));
        assert!(
            out.status.success(),
            "pg_ctl {action} of {} failed: {}\n{}\n--- server log (tail)\n{}",
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr),
            self.log_tail(80)
        );
    }

    /// Fast shutdown: the archiver finishes its queue first (PostgreSQL
    /// waits for it), so every WAL file up to the shutdown is archived when
    /// this returns.
    pub fn stop(&mut self) {
        if !self.running {
            return;
        }
        self.pg_ctl("stop", &[OsStr::new("-m"), OsStr::new("fast")]);
        self.running = false;
    }

    /// Promotes a standby (`pg_ctl promote -w`): returns once it accepts
    /// writes.
    pub fn promote(&self) {
        self.pg_ctl("promote", &[]);
    }

    /// A libpq connection string for this server (its unix socket), for a
    /// standby's `primary_conninfo`.
    pub fn conninfo(&self) -> String {
        format!(
            "host={} port={} user=postgres application_name=uxwal_e2e",
            self.sockdir.display(),
            self.port
        )
    }

    /// Runs `sql` with `psql -XAtq` and returns its output without the
    /// trailing newline. Panics if psql fails.
    pub fn psql(&self, sql: &str) -> String {
        self.try_psql(sql).unwrap_or_else(|err| {
            panic!(
                "psql on {} failed for `{sql}`:\n{err}\n--- server log (tail)\n{}",
                self.name,
                self.log_tail(40)
            )
        })
    }

    /// Like [`Cluster::psql`], but returns psql's stderr as the error.
    pub fn try_psql(&self, sql: &str) -> Result<String, String> {
        let out = pg_command("psql")
            .current_dir(self.dir.path())
            .args(["-XAtq", "-v", "ON_ERROR_STOP=1"])
            .args(self.conn_args())
            .args(["-d", "postgres", "-c", sql])
            .output()
            .map_err(|e| format!("could not run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(format!(
                "{}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim_end()
            ))
        }
    }

    /// Runs pgbench against database `postgres` with `args` (e.g.
    /// `["-i", "-s", "2"]` or `["-n", "-t", "200"]`); returns its stdout.
    pub fn pgbench(&self, args: &[&str]) -> String {
        let out = run_ok_waiting(
            pg_command("pgbench")
                .current_dir(self.dir.path())
                .args(self.conn_args())
                .args(args)
                .arg("postgres"),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Takes a base backup into `dest` (which must not exist; its parent
    /// must be writable by the PostgreSQL user, e.g. a [`pg_tempdir`]).
    ///
    /// `-X none`: the backup holds no WAL, so recovering it needs every WAL
    /// file from the backup's start to its end from the archive — exactly
    /// what uxwal-restore must serve. With `-X none`, pg_basebackup also
    /// waits until the server has archived the segment holding the backup's
    /// end, so a successful return proves the archive_command works.
    pub fn base_backup(&self, dest: &Path) {
        run_ok_waiting(
            pg_command("pg_basebackup")
                .current_dir(self.dir.path())
                .args(self.conn_args())
                .arg("-D")
                .arg(dest)
                .args(["-X", "none", "--checkpoint=fast", "--no-sync"])
                .args(["-l", "uxwal e2e base backup"]),
        );
    }

    /// Polls `sql` until it returns `expected`; panics after
    /// [`super::WAIT_TIMEOUT`] showing the last answer or error.
    pub fn wait_for(&self, sql: &str, expected: &str) {
        poll_until(
            &format!("`{sql}` = `{expected}` on {}", self.name),
            || match self.try_psql(sql) {
                Ok(got) if got == expected => Ok(()),
                Ok(got) => Err(format!("got `{got}`")),
                Err(err) => Err(err),
            },
        );
    }

    /// Waits until `pg_stat_archiver.last_archived_wal` has reached the
    /// WAL file `wal_name` (file names of one timeline sort in WAL order).
    pub fn wait_for_archived(&self, wal_name: &str) {
        self.wait_for(
            &format!(
                "select coalesce(last_archived_wal, '') >= '{wal_name}' from pg_stat_archiver"
            ),
            "t",
        );
    }

    /// Switches to a new WAL segment and returns the name of the segment
    /// that was just completed (the one the archiver must ship next).
    pub fn switch_wal(&self) -> String {
        self.psql("select pg_walfile_name(pg_switch_wal())")
    }

    /// `pg_stat_archiver.failed_count`.
    pub fn archive_failures(&self) -> u64 {
        self.psql("select failed_count from pg_stat_archiver")
            .parse()
            .expect("failed_count is a number")
    }

    /// The timeline of the WAL the server is writing now.
    pub fn current_timeline(&self) -> u32 {
        let wal = self.psql("select pg_walfile_name(pg_current_wal_lsn())");
        u32::from_str_radix(&wal[..8], 16).expect("timeline in WAL file name")
    }

    /// `-h <socket dir> -p <port> -U postgres`.
    pub fn conn_args(&self) -> Vec<String> {
        vec![
            "-h".into(),
            self.sockdir.display().to_string(),
            "-p".into(),
            self.port.to_string(),
            "-U".into(),
            "postgres".into(),
        ]
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    pub fn socket_dir(&self) -> &Path {
        &self.sockdir
    }

    pub fn repo(&self) -> &Path {
        &self.repo
    }

    /// The cluster's own temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The last `lines` lines of the server log.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// The postmaster's pid, from the first line of `postmaster.pid`.
    fn postmaster_pid(&self) -> Option<libc::pid_t> {
        fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- server log of {} (tail)\n{}\n---",
                self.name,
                self.log_tail(60)
            );
        }
        if self.running {
            self.stop_now();
        }
        // No prefetch worker outlives the cluster (they exit on their own once
        // the window is full and the linger is over; this waits, and fails the
        // test when one does not).
        super::fail_on_leaked_workers(&self.spool_dir());
    }
}

impl Cluster {
    /// Immediate stop, then SIGKILL to the postmaster if it is still there.
    fn stop_now(&mut self) {
        let pid = self.postmaster_pid();
        let _ = pg_command("pg_ctl")
            .current_dir(self.dir.path())
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "-t", "60", "stop"])
            .output();
        // If pg_ctl could not stop it, make sure no postmaster outlives the
        // test; its children exit on their own once it is gone.
        if let Some(pid) = pid {
            if pid > 0 {
                // SAFETY: plain syscalls on a pid we read from the server's
                // own pid file; signal 0 only checks existence.
                unsafe {
                    if libc::kill(pid, 0) == 0 {
                        libc::kill(pid, libc::SIGKILL);
                    }
                }
            }
        }
        self.running = false;
    }
}

/// A short human-readable summary of the repository contents, for test
/// failure messages.
pub fn describe_repo(repo: &Path) -> String {
    let mut out = String::new();
    for name in files_in_repo(repo, &|_| true) {
        let _ = writeln!(out, "  {name}");
    }
    out
}
