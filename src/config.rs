//! The configuration file (TOML) and how it combines with the command line.
//!
//! Precedence: command line, then environment (`UXWAL_REPO`), then the file.
//! The file is `--config FILE` / `UXWAL_CONFIG` when given (it must exist), else
//! `/etc/uxwal/uxwal.toml` when that exists. Unknown keys are an error, so a typo
//! cannot silently fall back to a default; so is a default file that exists but
//! cannot be read (or whose directory cannot be searched): only a file that is
//! really absent means "no configuration".

// Parses data from outside: no indexing that could panic on it.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::background::spool;
use crate::codec::Compression;
use crate::commands::restore::OnError;
use crate::crypt::KeySources;
use crate::error::{Error, Result};
use crate::repo::remote::{self, Scheme, StoreOptions};

/// Read when no `--config` is given and the file exists.
pub const DEFAULT_PATH: &str = "/etc/uxwal/uxwal.toml";

/// Largest configuration file read: anything bigger is not one.
const MAX_FILE_BYTES: u64 = 1 << 20;

/// Every key of the configuration file.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Repository location(s): a string, or a list (archive to all, restore from the first that has the file).
    pub repo: Option<Repos>,
    /// `none`, `gzip` or `zstd` (uxwal-archive).
    pub compress: Option<Compression>,
    /// Compression level (uxwal-archive).
    pub level: Option<i32>,
    /// `auto`, `abort` or `missing` (uxwal-restore).
    pub on_error: Option<OnError>,
    /// Seconds the whole command may spend on object storage (default 60).
    pub deadline: Option<u64>,
    /// Seconds one storage request may take (default 30).
    pub request_timeout: Option<u64>,
    /// Retries of a failed storage request (default 3).
    pub retries: Option<usize>,
    /// Files one uxwal-archive call ships at once: the one asked for plus up to
    /// N-1 others the database has marked ready (uxwal-archive).
    pub parallel: Option<usize>,
    /// Segments uxwal-restore fetches ahead in the background; 0 turns it off (uxwal-restore).
    pub prefetch: Option<usize>,
    /// Root of the spool directories of `parallel` and `prefetch` (default
    /// `/var/spool/uxwal` when it exists and belongs to the user, else `$TMPDIR/uxwal-<uid>`).
    pub spool_dir: Option<PathBuf>,
    /// Bytes one prefetch spool directory may hold (default 2 GiB, at least 2 MiB) (uxwal-restore).
    pub spool_max_bytes: Option<u64>,
    /// Encrypt new objects to these age recipients (`age1...`) or the
    /// recipients in these files (uxwal-archive).
    pub encrypt_to: Option<Vec<String>>,
    /// The key of the keyed digest that recognises identical duplicates of
    /// encrypted objects without a private key (needed with `encrypt_to`).
    pub digest_key_file: Option<PathBuf>,
    /// age identity files (private keys) that encrypted objects are read with;
    /// several, so that keys can rotate (uxwal-restore, -verify, -cleanup).
    pub identity_file: Option<Vec<PathBuf>>,
    /// How many repositories must hold a file before uxwal-archive reports it
    /// archived: `"all"` (the default) or a number; the others are owed the
    /// copy (uxwal-archive).
    pub require: Option<Require>,
    /// Seconds a repository that could not be reached is left alone before an
    /// archive call tries it again (default 60) (uxwal-archive, with `require`).
    pub retry_owed_after: Option<u64>,
    /// Prometheus text-format file every run updates, for node_exporter's
    /// textfile collector (absolute path; `docs/metrics.md`).
    pub metrics_file: Option<PathBuf>,
    /// S3 settings: object_store's S3 configuration keys (`region`, `endpoint`, ...).
    pub s3: Option<BTreeMap<String, toml::Value>>,
    /// Azure Blob settings: object_store's Azure configuration keys.
    pub azure: Option<BTreeMap<String, toml::Value>>,
    /// Google Cloud Storage settings: object_store's GCS configuration keys.
    pub gcs: Option<BTreeMap<String, toml::Value>>,
}

/// `require = "all"` or `require = K`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Require {
    All,
    Count(usize),
}

impl std::str::FromStr for Require {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Require, String> {
        match s {
            "all" => Ok(Require::All),
            n => match n.parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Require::Count(n)),
                _ => Err(format!(
                    "require = {n}: expected \"all\" or a number of repositories from 1"
                )),
            },
        }
    }
}

impl<'de> Deserialize<'de> for Require {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Require, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Count(i64),
            Word(String),
        }
        match Raw::deserialize(d)? {
            Raw::Count(n) => n.to_string().parse(),
            Raw::Word(w) => w.parse(),
        }
        .map_err(serde::de::Error::custom)
    }
}

/// `repo = "..."` or `repo = ["...", "..."]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Repos {
    One(String),
    Many(Vec<String>),
}

impl Repos {
    fn to_vec(&self) -> Vec<String> {
        match self {
            Repos::One(r) => vec![r.clone()],
            Repos::Many(v) => v.clone(),
        }
    }
}

/// Keys whose values are secrets: never printed, and a file holding them should be private.
const SECRET_WORDS: &[&str] = &["secret", "key", "token", "password", "sas", "credential"];

impl ConfigFile {
    /// Loads `explicit`, or the default file when it exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        Self::load_from(explicit, Path::new(DEFAULT_PATH))
    }

    /// [`ConfigFile::load`] with `default` as the default file's path.
    fn load_from(explicit: Option<&Path>, default: &Path) -> Result<Self> {
        let path = match explicit {
            Some(p) => p,
            // `Path::exists` is false for EACCES too: an unreadable default file
            // must not look absent (the configured repository and error policy
            // would silently fall back to defaults).
            None => match std::fs::metadata(default) {
                Ok(_) => default,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Ok(ConfigFile::default())
                }
                Err(e) => {
                    return Err(Error::Config(format!(
                        "cannot read {}: {e}",
                        default.display()
                    )))
                }
            },
        };
        Self::read(path)
    }

    fn read(path: &Path) -> Result<Self> {
        use std::io::Read;
        let cannot =
            |e: std::io::Error| Error::Config(format!("cannot read {}: {e}", path.display()));
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES + 1).read_to_string(&mut text))
            .map_err(cannot)?;
        let parsed = Self::parse_str(&text, &path.display().to_string())?;
        parsed.warn_if_exposed(path);
        Ok(parsed)
    }

    /// Parses the text of a configuration file; `origin` names it in errors
    /// (one line each: the server log takes one line per message).
    pub fn parse_str(text: &str, origin: &str) -> Result<Self> {
        if text.len() as u64 > MAX_FILE_BYTES {
            return Err(Error::Config(format!(
                "{origin} is larger than {MAX_FILE_BYTES} bytes: not a uxwal configuration file"
            )));
        }
        toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|span| text.as_bytes().iter().take(span.start))
                // Counted in bytes: no `str` slicing to panic, wherever the span points.
                .map(|before| before.filter(|&&b| b == b'\n').count() + 1);
            let at = line.map(|l| format!(" (line {l})")).unwrap_or_default();
            Error::Config(format!("{origin} is invalid{at}: {}", e.message()))
        })
    }

    /// Warns when the file holds credentials and others than its owner may read it.
    fn warn_if_exposed(&self, path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        let has_secret = [&self.s3, &self.azure, &self.gcs]
            .into_iter()
            .flatten()
            .flat_map(|t| t.keys())
            .any(|k| SECRET_WORDS.iter().any(|w| k.contains(w)));
        let mode = std::fs::metadata(path)
            .map(|m| m.permissions().mode())
            .unwrap_or(0);
        if has_secret && mode & 0o077 != 0 {
            tracing::warn!(
                "{} holds credentials but is readable by group or others (mode {:o}); run chmod 600 on it",
                path.display(),
                mode & 0o777
            );
        }
    }

    /// Storage settings: the file's tables, limits and keys, `deadline` and
    /// the keys from the command line winning. Unknown store keys are an error.
    pub fn store_options(&self, deadline: Option<u64>, keys: &KeySources) -> Result<StoreOptions> {
        let mut o = StoreOptions::default();
        for (scheme, table, out) in [
            (Scheme::S3, &self.s3, &mut o.s3),
            (Scheme::Azure, &self.azure, &mut o.azure),
            (Scheme::Gcs, &self.gcs, &mut o.gcs),
        ] {
            *out = table
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), value_text(v)))
                .collect();
            remote::check_keys(scheme, out)?;
        }
        if let Some(secs) = deadline.or(self.deadline) {
            o.deadline = Duration::from_secs(secs);
        }
        if let Some(secs) = self.request_timeout {
            o.request_timeout = Duration::from_secs(secs);
        }
        if let Some(n) = self.retries {
            o.retries = n;
        }
        o.keys = std::sync::Arc::new(
            crate::crypt::Keys::load(&keys.clone().or(KeySources {
                encrypt_to: self.encrypt_to.clone().unwrap_or_default(),
                digest_key_file: self.digest_key_file.clone(),
                identity_files: self.identity_file.clone().unwrap_or_default(),
            }))
            .map_err(|e| Error::Config(e.to_string()))?,
        );
        if o.deadline.is_zero() || o.request_timeout.is_zero() {
            return Err(Error::Config(
                "deadline and request_timeout must be at least 1 second".into(),
            ));
        }
        Ok(o)
    }

    /// The repositories: those given on the command line (or in `UXWAL_REPO`),
    /// else the file's. At least one.
    pub fn repos(&self, cli: &[String]) -> Result<Vec<String>> {
        let repos = if cli.is_empty() {
            self.repo.as_ref().map(Repos::to_vec).unwrap_or_default()
        } else {
            cli.to_vec()
        };
        if repos.is_empty() {
            return Err(Error::Config(
                "no repository: give --repo, set UXWAL_REPO, or set repo in the configuration file"
                    .into(),
            ));
        }
        Ok(repos)
    }

    /// The spool root: the command line's, else the file's, else `/var/spool/uxwal` or `$TMPDIR/uxwal-UID` (docs/SECURITY.md).
    pub fn spool_dir(&self, cli: Option<&Path>) -> PathBuf {
        cli.map(Path::to_path_buf)
            .or_else(|| self.spool_dir.clone())
            .unwrap_or_else(spool::default_root)
    }

    /// The one repository of a command that works on a single repository.
    pub fn repo(&self, cli: &[String]) -> Result<String> {
        let mut repos = self.repos(cli)?;
        if repos.len() > 1 {
            return Err(Error::Config(format!(
                "{} repositories are configured; this command works on one: choose it with --repo",
                repos.len()
            )));
        }
        Ok(repos.remove(0))
    }
}

/// A TOML value as the store client wants it: strings as they are, others as written.
fn value_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_key_and_refuses_unknown_ones() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.toml");
        std::fs::write(
            &good,
            "repo = \"/mnt/wal\"\ncompress = \"gzip\"\nlevel = 4\non_error = \"abort\"\n",
        )
        .unwrap();
        let c = ConfigFile::load(Some(&good)).unwrap();
        assert_eq!(c.repo, Some(Repos::One("/mnt/wal".into())));
        assert_eq!(c.compress, Some(Compression::Gzip));
        assert_eq!(c.on_error, Some(OnError::Abort));
        assert_eq!(c.repo(&["/cli".into()]).unwrap(), "/cli");
        assert_eq!(c.repo(&[]).unwrap(), "/mnt/wal");
        let two: ConfigFile = toml::from_str("repo = [\"/a\", \"s3://b/p\"]").unwrap();
        assert_eq!(two.repos(&[]).unwrap(), ["/a", "s3://b/p"]);
        assert!(
            two.repo(&[]).is_err(),
            "a single-repository command needs a choice"
        );

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "repository = \"/mnt/wal\"\n").unwrap();
        let err = ConfigFile::load(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("repository"), "{err}");
        assert!(ConfigFile::load(Some(&dir.path().join("missing.toml"))).is_err());
        assert!(!err.contains('\n'), "one line for the server log: {err}");
    }

    #[test]
    fn a_default_file_that_cannot_be_looked_at_is_an_error_not_an_absence() {
        let dir = tempfile::tempdir().unwrap();
        let absent = dir.path().join("uxwal.toml");
        assert_eq!(
            ConfigFile::load_from(None, &absent).unwrap(),
            ConfigFile::default()
        );
        // A path component that is not a directory fails with ENOTDIR, as one
        // the caller may not search fails with EACCES (which root bypasses).
        let file = dir.path().join("not-a-dir");
        std::fs::write(&file, "").unwrap();
        let err = ConfigFile::load_from(None, &file.join("uxwal.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cannot read"), "{err}");
        let big = dir.path().join("big.toml");
        std::fs::write(&big, "#".repeat(MAX_FILE_BYTES as usize + 1)).unwrap();
        let err = ConfigFile::load(Some(&big)).unwrap_err().to_string();
        assert!(err.contains("larger than"), "{err}");
    }

    #[test]
    fn store_tables_and_limits() {
        let c: ConfigFile = toml::from_str(
            "deadline = 20\nretries = 1\n[s3]\nregion = \"us-east-1\"\nallow_http = true\n[azure]\nuse_emulator = true\n",
        )
        .unwrap();
        let o = c.store_options(None, &KeySources::default()).unwrap();
        assert_eq!(o.s3["allow_http"], "true");
        assert_eq!(o.deadline, Duration::from_secs(20));
        assert_eq!(
            c.store_options(Some(5), &KeySources::default())
                .unwrap()
                .deadline,
            Duration::from_secs(5)
        );
        let bad: ConfigFile = toml::from_str("[s3]\nregoin = \"x\"\n").unwrap();
        assert!(bad
            .store_options(None, &KeySources::default())
            .unwrap_err()
            .to_string()
            .contains("regoin"));
    }

    #[test]
    fn example_config_parses_with_every_key_enabled() {
        let text = include_str!("../packaging/uxwal.toml");
        let enabled: String = text
            .lines()
            .map(|l| {
                l.strip_prefix('#')
                    .filter(|r| r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: ConfigFile = toml::from_str(&enabled).unwrap();
        assert!(
            parsed.repo.is_some()
                && parsed.compress.is_some()
                && parsed.level.is_some()
                && parsed.on_error.is_some()
        );
    }
}
