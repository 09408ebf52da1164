//! Shared test harness: real binaries run the way the database runs them, WAL
//! files that pass uxwal's checks, and the one way to poll and to wait for a
//! detached worker. `pg` starts real PostgreSQL servers, `pitr` is the
//! point-in-time recovery scenario several of them share, `servers` the object
//! storage emulators.
#![allow(dead_code)]

pub mod pg;
pub mod pitr;
pub mod proxy;
pub mod servers;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use uxwal::wal::header::{encode_long_header, LongPageHeader};
use uxwal::wal::name::SegmentName;

pub const ARCHIVE: &str = env!("CARGO_BIN_EXE_uxwal-archive");
pub const RESTORE: &str = env!("CARGO_BIN_EXE_uxwal-restore");
pub const MIB: u64 = 1 << 20;
pub const SYSID: u64 = 7_312_345_678_901_234_567;

/// `age-keygen -o DIR/NAME` (the real age CLI): the identity file (mode 0600,
/// as age-keygen writes it) and its public key.
pub fn age_keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let out = Command::new("age-keygen")
        .arg("-o")
        .arg(&path)
        .output()
        .expect("age-keygen (Debian package age; scripts/install-deps installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let public = Command::new("age-keygen")
        .arg("-y")
        .arg(&path)
        .output()
        .unwrap();
    assert!(public.status.success());
    (
        path,
        String::from_utf8(public.stdout).unwrap().trim().to_owned(),
    )
}

/// A private digest key file (0600) in `dir`: 32 bytes of `byte`.
pub fn digest_key_file(dir: &Path, name: &str, byte: u8) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, [byte; 32]).unwrap();
    fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    path
}

/// A data directory with a `pg_wal/`, and a repository beside it, in a temp dir.
pub struct Site {
    pub dir: tempfile::TempDir,
    pub data: PathBuf,
    /// The local repository directory (when `location` is local).
    pub repo: PathBuf,
    /// What `$REPO` expands to: `repo`, or an object storage URL.
    pub location: String,
    /// Extra environment for every command (object storage settings).
    pub env: Vec<(String, String)>,
}

/// What a command did.
pub struct Ran {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Ran {
    fn from(o: Output) -> Self {
        Ran {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Site {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        fs::create_dir_all(data.join("pg_wal")).unwrap();
        let repo = dir.path().join("repo");
        let location = repo.display().to_string();
        Site {
            dir,
            data,
            repo,
            location,
            env: Vec::new(),
        }
    }

    /// Runs `template` through `sh -c` in the data directory after substituting
    /// `%p`, `%f` and `%r` as PostgreSQL does; the binaries are `$ARCHIVE`/`$RESTORE`.
    pub fn sh(&self, template: &str, p: &str, f: &str) -> Ran {
        self.command(template, p, f).output().unwrap().into()
    }

    /// [`Site::sh`] started, not waited for, its output discarded: for a call
    /// the test kills.
    pub fn spawn_sh(&self, template: &str, p: &str, f: &str) -> std::process::Child {
        let mut cmd = self.command(&format!("exec {template}"), p, f);
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }

    fn command(&self, template: &str, p: &str, f: &str) -> Command {
        let cmd = template.replace("%p", p).replace("%f", f);
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg(cmd)
            .current_dir(&self.data)
            .env("ARCHIVE", ARCHIVE)
            .env("RESTORE", RESTORE)
            .env("REPO", &self.location)
            // The default spool root ($TMPDIR/uxwal-<uid>) inside this site, so that
            // nothing a command spools outlives the test or meets another test's.
            .env("TMPDIR", self.dir.path())
            // Prefetch workers exit as soon as their window is full instead of
            // lingering, so that a test can wait for one (see tests/prefetch.rs;
            // the PostgreSQL tests keep the default).
            .env("UXWAL_PREFETCH_LINGER", "0")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .env_remove("UXWAL_REPO")
            .env_remove("UXWAL_CONFIG");
        command
    }

    /// `archive_command = '$ARCHIVE --repo $REPO [extra] %p %f'` for `pg_wal/<name>`.
    pub fn archive(&self, name: &str, extra: &str) -> Ran {
        self.sh(
            &format!("\"$ARCHIVE\" --repo \"$REPO\" {extra} %p %f"),
            &format!("pg_wal/{name}"),
            name,
        )
    }

    /// `restore_command = '$RESTORE --repo $REPO [extra] %f %p'` into `pg_wal/RECOVERYXLOG`.
    pub fn restore(&self, name: &str, extra: &str) -> Ran {
        self.sh(
            &format!("\"$RESTORE\" --repo \"$REPO\" {extra} %f %p"),
            "pg_wal/RECOVERYXLOG",
            name,
        )
    }

    pub fn wal(&self, name: &str) -> PathBuf {
        self.data.join("pg_wal").join(name)
    }

    pub fn write_wal(&self, name: &str, bytes: &[u8]) {
        fs::write(self.wal(name), bytes).unwrap();
    }

    pub fn restored(&self) -> Option<Vec<u8>> {
        fs::read(self.wal("RECOVERYXLOG")).ok()
    }

    /// Every file under the repository whose name is `name`.
    pub fn archived(&self, name: &str) -> Vec<PathBuf> {
        let mut found = Vec::new();
        walk(&self.repo, &mut |p| {
            if p.file_name().is_some_and(|n| n == name) {
                found.push(p.to_path_buf())
            }
        });
        found
    }

    /// Every file in the repository's staging directory.
    pub fn staging_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        walk(&self.repo.join("tmp"), &mut |p| {
            if p.file_name() != Some(".lock".as_ref()) {
                found.push(p.to_path_buf())
            }
        });
        found
    }
}

/// How long [`poll_until`] (and every wait of the harness) polls before giving
/// up. Generous on purpose: it bounds a hang, it measures nothing. CI machines
/// have two cores and archive 16 MiB segments.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(300);

/// Pause between two polls of a condition.
const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// The harness's one polling loop: calls `probe` until it returns `Ok`, or gives
/// up after [`WAIT_TIMEOUT`] with `what` and the last `Err` (the state it last
/// saw). Never panics, so it can run in `Drop`.
pub fn poll<T>(what: &str, mut probe: impl FnMut() -> Result<T, String>) -> Result<T, String> {
    let deadline = Instant::now() + WAIT_TIMEOUT;
    loop {
        match probe() {
            Ok(value) => return Ok(value),
            Err(last) if Instant::now() > deadline => {
                return Err(format!(
                    "timed out after {WAIT_TIMEOUT:?} waiting for {what}; last state: {last}"
                ))
            }
            Err(_) => std::thread::sleep(POLL_INTERVAL),
        }
    }
}

/// [`poll`], failing the test when it gives up.
pub fn poll_until<T>(what: &str, probe: impl FnMut() -> Result<T, String>) -> T {
    poll(what, probe).unwrap_or_else(|e| panic!("{e}"))
}

/// The lock every detached worker (prefetch and push-ahead) holds in its spool
/// directory, from before the call that started it returns until it exits.
const WORKER_LOCK: &str = ".worker.lock";

/// The harness's one way to wait for a detached worker: until nothing holds
/// `dir/.worker.lock` (no lock file: no worker ever ran there). `Err` says that
/// a worker was still running after [`WAIT_TIMEOUT`]. Never panics.
pub fn wait_for_worker(dir: &Path) -> Result<(), String> {
    let path = dir.join(WORKER_LOCK);
    let Ok(lock) = fs::File::options().read(true).write(true).open(&path) else {
        return Ok(());
    };
    poll(
        &format!("the worker holding {} to exit", path.display()),
        || lock.try_lock().map_err(|e| e.to_string()),
    )?;
    lock.unlock()
        .map_err(|e| format!("unlock {}: {e}", path.display()))
}

/// [`wait_for_worker`] for every spool directory under `spool_root` (prefetch
/// and push-ahead ones alike). `Err` lists the directories whose worker was
/// still running.
pub fn wait_for_workers(spool_root: &Path) -> Result<(), String> {
    let leaked: Vec<String> = fs::read_dir(spool_root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| wait_for_worker(&entry.path()).err())
        .collect();
    if leaked.is_empty() {
        Ok(())
    } else {
        Err(leaked.join("\n"))
    }
}

/// [`wait_for_workers`] in a `Drop`: a worker that outlived its test fails the
/// test (when it is failing already, a second panic would abort the run, so the
/// leak is only printed then).
pub fn fail_on_leaked_workers(spool_root: &Path) {
    if let Err(leaked) = wait_for_workers(spool_root) {
        let message = format!("a worker outlived its test:\n{leaked}");
        if std::thread::panicking() {
            eprintln!("{message}");
        } else {
            panic!("{message}");
        }
    }
}

/// Waits, when dropped, for the workers of every spool directory under a spool
/// root and fails the test when one is still running: no worker outlives its
/// test, even one that failed half way. Declare it after the directories it
/// watches, so that it is dropped before them.
pub struct WorkersJoined(pub PathBuf);

impl Drop for WorkersJoined {
    fn drop(&mut self) {
        fail_on_leaked_workers(&self.0);
    }
}

impl Drop for Site {
    /// Waits for the workers that the commands of this site started, under the
    /// default spool root (see [`Site::sh`]) and any spool root in the site's
    /// directory (e.g. `spool/`), and fails the test when one is still running.
    fn drop(&mut self) {
        for root in fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            fail_on_leaked_workers(&root.path());
        }
    }
}

/// Runs `f` on a thread of its own and returns what it returns, failing the
/// test when it has not returned after [`WAIT_TIMEOUT`]: for a call that must
/// not wait on something the test holds (a lock, a frozen server), so that a
/// regression fails instead of hanging the run. It bounds a hang; the test's
/// own assertions say why the call returned.
pub fn finishes<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WAIT_TIMEOUT)
        .unwrap_or_else(|e| panic!("{what} has not returned after {WAIT_TIMEOUT:?}: {e}"))
}

/// A small tmpfs mounted at a directory (created if missing), unmounted on
/// drop: a filesystem of its own (a full disk, another device). Mounting needs
/// root: see [`require_root`].
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    pub fn mount(at: &Path, size: &str) -> Tmpfs {
        fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .status()
            .unwrap();
        assert!(ok.success(), "mount a tmpfs at {}", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

/// Sends `sig` (e.g. `"TERM"`, `"STOP"`) to `pid` with kill(1).
pub fn signal(pid: u32, sig: &str) {
    let sent = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{sig} {pid}");
}

/// Fails the test, saying why, unless it runs as root: what it checks needs
/// root (mounting a filesystem, running a command as another user). CI runs the
/// tests as root; a check that cannot run must not pass as if it had.
pub fn require_root(why: &str) {
    assert!(
        pg::is_root(),
        "this test needs root ({why}) and cannot check anything without it: \
         run the tests as root (CI does), or skip it by name"
    );
}

pub fn walk(dir: &Path, f: &mut dyn FnMut(&Path)) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            walk(&p, f);
        } else {
            f(&p);
        }
    }
}

/// A synthetic WAL segment with a valid long page header and pseudo-random,
/// partly compressible content derived from `seed`.
pub fn segment(name: &str, size: u64, sysid: u64, seed: u64) -> Vec<u8> {
    let seg = match name
        .split('.')
        .next()
        .unwrap()
        .parse::<uxwal::wal::name::WalName>()
        .unwrap()
    {
        uxwal::wal::name::WalName::Segment(s) | uxwal::wal::name::WalName::Partial(s) => s,
        other => panic!("{other} is not a segment"),
    };
    segment_for(seg, size, sysid, seed)
}

pub fn segment_for(seg: SegmentName, size: u64, sysid: u64, seed: u64) -> Vec<u8> {
    let mut bytes = vec![0u8; size as usize];
    // Random words in the first half, zeros after: like a segment switched early.
    let words = pseudo_random(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    for (chunk, x) in bytes[64..size as usize / 2].chunks_mut(8).zip(words) {
        let v = (x % 64).to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
    let h = LongPageHeader {
        magic: 0xD110,
        info: 0x0006,
        timeline: seg.timeline,
        page_address: seg.start_lsn(size).unwrap(),
        system_identifier: sysid,
        segment_size: size as u32,
        block_size: 8192,
    };
    bytes[..40].copy_from_slice(&encode_long_header(&h));
    bytes
}

/// Random bytes (for incompressible segments).
pub fn noise(bytes: &mut [u8], seed: u64) {
    for (b, x) in bytes.chunks_mut(8).zip(pseudo_random(seed)) {
        let v = x.to_le_bytes();
        b.copy_from_slice(&v[..b.len()]);
    }
}

/// The harness's one pseudo-random generator: an endless xorshift64 sequence
/// from `seed`, the same for the same seed (tests rebuild expected bytes from
/// their seed).
pub fn pseudo_random(seed: u64) -> impl Iterator<Item = u64> {
    let mut x = seed | 1;
    std::iter::repeat_with(move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    })
}
