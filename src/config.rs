//! The configuration file (TOML) and how it combines with the command line.
//!
//! Precedence: command line, then environment (`UXWAL_REPO`), then the file.
//! The file is `--config FILE` / `UXWAL_CONFIG` when given (it must exist), else
//! `/etc/uxwal/uxwal.toml` when that exists. Unknown keys are an error, so a typo
//! cannot silently fall back to a default.

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

use crate::codec::Compression;
use crate::error::{Error, Result};
use crate::restore::OnError;

/// Read when no `--config` is given and the file exists.
pub const DEFAULT_PATH: &str = "/etc/uxwal/uxwal.toml";

/// Every key of the configuration file.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    /// Repository location (directory or `file://` URL).
    pub repo: Option<String>,
    /// `none`, `gzip` or `zstd` (uxwal-archive).
    pub compress: Option<Compression>,
    /// Compression level (uxwal-archive).
    pub level: Option<i32>,
    /// `auto`, `abort` or `missing` (uxwal-restore).
    pub on_error: Option<OnError>,
}

impl ConfigFile {
    /// Loads `explicit`, or the default file when it exists, or nothing.
    pub fn load(explicit: Option<&Path>) -> Result<Self> {
        let path = match explicit {
            Some(p) => p.to_path_buf(),
            None if Path::new(DEFAULT_PATH).exists() => PathBuf::from(DEFAULT_PATH),
            None => return Ok(ConfigFile::default()),
        };
        Self::read(&path).map_err(|e| Error::Config(format!("{e:#}")))
    }

    fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        let parsed: ConfigFile =
            toml::from_str(&text).with_context(|| format!("{} is invalid", path.display()))?;
        Ok(parsed)
    }

    /// The repository: the command line (or environment) value, else the file's.
    pub fn repo(&self, cli: Option<&str>) -> Result<String> {
        cli.map(str::to_owned).or_else(|| self.repo.clone()).ok_or_else(|| {
            Error::Config("no repository: give --repo, set UXWAL_REPO, or set repo in the configuration file".into())
        })
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
        assert_eq!(c.repo.as_deref(), Some("/mnt/wal"));
        assert_eq!(c.compress, Some(Compression::Gzip));
        assert_eq!(c.on_error, Some(OnError::Abort));
        assert_eq!(c.repo(Some("/cli")).unwrap(), "/cli");
        assert_eq!(c.repo(None).unwrap(), "/mnt/wal");

        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, "repository = \"/mnt/wal\"\n").unwrap();
        let err = ConfigFile::load(Some(&bad)).unwrap_err().to_string();
        assert!(err.contains("repository"), "{err}");
        assert!(ConfigFile::load(Some(&dir.path().join("missing.toml"))).is_err());
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
