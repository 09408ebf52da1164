//! Spool directories: private, local scratch space outside the database's data
//! directory, where `uxwal-archive --parallel` records what it pushed ahead and
//! `uxwal-restore --prefetch` keeps segments fetched ahead of the database.
//!
//! A spool only ever saves work: every entry is checked (size and SHA-256) before
//! it is trusted, so losing or corrupting a spool costs time, never WAL. It lives
//! outside `pg_wal`/`ux_wal` on purpose: tools such as `pg_rewind` and
//! `pg_basebackup` treat everything there as the database's own. The default root
//! is `$TMPDIR/uxwal-<uid>`; because the temp directory is shared, a spool
//! directory must belong to the user running uxwal and be closed to everyone
//! else, or it is refused.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use crate::durable;
use crate::error::{Error, Result};

/// The spool root used when neither `--spool-dir` nor `spool_dir` is given:
/// `$TMPDIR/uxwal-<uid>` (usually `/tmp/uxwal-<uid>`).
pub fn default_root() -> PathBuf {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    std::env::temp_dir().join(format!("uxwal-{uid}"))
}

/// Creates `dir` (mode 0700) when missing and checks that only the current user
/// can use it: owned by the effective user, no group or other permissions.
pub fn open_private_dir(dir: &Path) -> Result<PathBuf> {
    let refuse =
        |reason: String| Error::Config(format!("spool directory {}: {reason}", dir.display()));
    durable::create_dir_all(dir).map_err(|e| refuse(format!("cannot create: {e}")))?;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| refuse(e.to_string()))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    if !meta.is_dir() {
        return Err(refuse("not a directory".into()));
    }
    if meta.uid() != uid {
        return Err(refuse(format!(
            "owned by uid {}, not by the user running uxwal (uid {uid})",
            meta.uid()
        )));
    }
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(refuse(format!(
            "mode {:o} lets others in; it must be 0700",
            meta.permissions().mode() & 0o777
        )));
    }
    Ok(dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn creates_a_private_directory_and_refuses_an_open_one() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("a/b");
        assert_eq!(open_private_dir(&dir).unwrap(), dir);
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = open_private_dir(&dir).unwrap_err().to_string();
        assert!(err.contains("0700"), "{err}");
    }
}
