//! Local users for the spool security tests: the database's user (`postgres`),
//! who runs uxwal, and an unprivileged attacker (`uxwal-attacker`, created with
//! `useradd` when missing). Only usable as root: without root there is no second
//! user, and these helpers panic with the reason rather than let a test pass
//! without its check.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Mutex;

/// The attacker's user name.
pub const ATTACKER: &str = "uxwal-attacker";
/// The database's user, who runs uxwal.
pub const DATABASE: &str = "postgres";

/// A local user.
#[derive(Debug, Clone, Copy)]
pub struct User {
    pub name: &'static str,
    pub uid: u32,
    pub gid: u32,
}

/// Panics unless this runs as root: these tests need two real users.
pub fn require_root(what: &str) {
    if !rustix::process::geteuid().is_root() {
        panic!(
            "{what} needs root (to create the user {ATTACKER} and run uxwal as {DATABASE}); \
             CI runs the suite as root. Not passing without the check."
        );
    }
}

fn ids(name: &str) -> Option<(u32, u32)> {
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
    };
    Some((id("-u")?, id("-g")?))
}

/// The database's user (must exist: the postgresql package creates it).
pub fn database() -> User {
    require_root("this test");
    let (uid, gid) =
        ids(DATABASE).unwrap_or_else(|| panic!("no `{DATABASE}` user: run scripts/install-deps"));
    User {
        name: DATABASE,
        uid,
        gid,
    }
}

/// The attacker, created (system user, no home, no login shell) when missing.
pub fn attacker() -> User {
    require_root("this test");
    static CREATING: Mutex<()> = Mutex::new(());
    let _one = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    if ids(ATTACKER).is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
            ])
            .arg(ATTACKER)
            .output()
            .expect("run useradd");
        // Another test binary may have created it meanwhile: look again.
        assert!(
            out.status.success() || ids(ATTACKER).is_some(),
            "useradd {ATTACKER}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let (uid, gid) = ids(ATTACKER).expect("the attacker exists");
    User {
        name: ATTACKER,
        uid,
        gid,
    }
}

impl User {
    /// `program` to run as this user (uid, gid, no supplementary groups).
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new(program);
        cmd.uid(self.uid).gid(self.gid).env("HOME", "/");
        cmd
    }

    /// Runs `script` with `/bin/sh -c` as this user; panics when it fails.
    pub fn sh(&self, script: &str) -> Output {
        let out = self
            .command("/bin/sh")
            .arg("-c")
            .arg(script)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "as {}: {script}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Hands `path` and everything below it to this user (symbolic links
    /// themselves, never their targets).
    pub fn chown(&self, path: &Path) {
        std::os::unix::fs::lchown(path, Some(self.uid), Some(self.gid))
            .unwrap_or_else(|e| panic!("chown {}: {e}", path.display()));
        if path.is_dir() && !path.is_symlink() {
            for entry in std::fs::read_dir(path).unwrap() {
                self.chown(&entry.unwrap().path());
            }
        }
    }
}
