//! Shared test harness: real binaries run the way the database runs them, and
//! WAL files that pass uxwal's checks. `pg` starts real PostgreSQL servers.
#![allow(dead_code)]

pub mod pg;
pub mod servers;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use uxwal::wal::header::{encode_long_header, LongPageHeader};
use uxwal::wal::name::SegmentName;

pub const ARCHIVE: &str = env!("CARGO_BIN_EXE_uxwal-archive");
pub const RESTORE: &str = env!("CARGO_BIN_EXE_uxwal-restore");
pub const MIB: u64 = 1 << 20;
pub const SYSID: u64 = 7_312_345_678_901_234_567;

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
        let cmd = template.replace("%p", p).replace("%f", f);
        Command::new("/bin/sh")
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
            .env_remove("UXWAL_CONFIG")
            .output()
            .unwrap()
            .into()
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

/// Waits (polling, up to `limit`) until no `uxwal-restore` prefetch worker runs
/// for any spool directory under `spool_root`: a worker holds its directory's
/// `.worker.lock` from before the restore that started it returns until it
/// exits. Returns false when one was still running at the limit. Never panics,
/// so it can run in `Drop`.
pub fn wait_for_prefetch_workers(spool_root: &Path, limit: std::time::Duration) -> bool {
    let until = std::time::Instant::now() + limit;
    for entry in fs::read_dir(spool_root).into_iter().flatten().flatten() {
        let lock = entry.path().join(".worker.lock");
        let Ok(lock) = fs::File::options().read(true).write(true).open(lock) else {
            continue;
        };
        loop {
            if lock.try_lock().is_ok() {
                let _ = lock.unlock();
                break;
            }
            if std::time::Instant::now() > until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(50)); // polling a lock, bounded
        }
    }
    true
}

/// Waits until no `uxwal-archive` push-ahead worker runs for any WAL directory
/// under `spool_root` (a blocking flock on each `archive-*/.worker.lock`, which a
/// worker holds from before the call that started it returns until it exits; up
/// to `limit` each). Returns false when one was still running at the limit.
/// Never panics, so it can run in `Drop`.
pub fn wait_for_push_ahead_worker(spool_root: &Path, limit: std::time::Duration) -> bool {
    for entry in fs::read_dir(spool_root).into_iter().flatten().flatten() {
        if !entry.file_name().to_string_lossy().starts_with("archive-") {
            continue;
        }
        let Ok(lock) = fs::File::options()
            .read(true)
            .write(true)
            .open(entry.path().join(".worker.lock"))
        else {
            continue;
        };
        let (tx, rx) = std::sync::mpsc::channel();
        // The blocking lock runs on a thread of its own so that the wait is bounded.
        std::thread::spawn(move || {
            let _ = tx.send(lock.lock().is_ok());
        });
        if rx.recv_timeout(limit) != Ok(true) {
            return false;
        }
    }
    true
}

impl Drop for Site {
    /// Waits for the prefetch workers that restores of this site started, under
    /// the default spool root (see [`Site::sh`]) and under `spool/`.
    fn drop(&mut self) {
        for root in fs::read_dir(self.dir.path())
            .into_iter()
            .flatten()
            .flatten()
        {
            wait_for_prefetch_workers(&root.path(), std::time::Duration::from_secs(120));
        }
    }
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
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    // Random words in the first half, zeros after: like a segment switched early.
    for chunk in bytes[64..size as usize / 2].chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
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
    let mut x = seed | 1;
    for b in bytes.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let v = x.to_le_bytes();
        b.copy_from_slice(&v[..b.len()]);
    }
}
