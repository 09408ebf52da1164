//! Object storage locations (`s3://`, `az://`/`azure://`, `gs://`) and their settings.
//!
//! Settings come from the configuration file's `[s3]`, `[azure]` and `[gcs]` tables
//! and from each store's standard environment variables (`AWS_*`, `AZURE_*`,
//! `GOOGLE_*`), the environment winning. Keys are `object_store`'s own
//! configuration keys, so every option the store client knows is available and a
//! misspelt key is an error. Every request is bounded: a per-request timeout,
//! a few retries with exponential backoff for transient failures, and one overall
//! deadline for the whole command, because a helper that hangs blocks the
//! database's archiver and its shutdown.

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::azure::{AzureConfigKey, MicrosoftAzureBuilder};
use object_store::gcp::{GoogleCloudStorageBuilder, GoogleConfigKey};
use object_store::{ClientOptions, ObjectStore, RetryConfig};

use crate::error::{Error, Result};

/// How to reach object storage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// `[s3]` settings (object_store `AmazonS3ConfigKey` names).
    pub s3: BTreeMap<String, String>,
    /// `[azure]` settings (`AzureConfigKey` names).
    pub azure: BTreeMap<String, String>,
    /// `[gcs]` settings (`GoogleConfigKey` names).
    pub gcs: BTreeMap<String, String>,
    /// Limit for the whole command's storage work.
    pub deadline: Duration,
    /// Limit for one request.
    pub request_timeout: Duration,
    /// Retries of a failed request (transient failures only).
    pub retries: usize,
    /// Encryption keys: what new objects are encrypted to, what reads decrypt with.
    pub keys: std::sync::Arc<crate::crypt::Keys>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            s3: BTreeMap::new(),
            azure: BTreeMap::new(),
            gcs: BTreeMap::new(),
            deadline: Duration::from_secs(60),
            request_timeout: Duration::from_secs(30),
            retries: 3,
            keys: Default::default(),
        }
    }
}

/// Which store a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    S3,
    Azure,
    Gcs,
}

impl Scheme {
    /// The scheme of `location`, or `None` for a local path / `file://` URL.
    pub fn of(location: &str) -> Option<Self> {
        match location.split_once("://")?.0 {
            "s3" | "s3a" => Some(Scheme::S3),
            "az" | "azure" | "abfs" | "abfss" => Some(Scheme::Azure),
            "gs" => Some(Scheme::Gcs),
            _ => None,
        }
    }
}

/// Checks that every key of a settings table is one the store client knows.
pub fn check_keys(scheme: Scheme, table: &BTreeMap<String, String>) -> Result<()> {
    for key in table.keys() {
        let known = match scheme {
            Scheme::S3 => AmazonS3ConfigKey::from_str(key).is_ok(),
            Scheme::Azure => AzureConfigKey::from_str(key).is_ok(),
            Scheme::Gcs => GoogleConfigKey::from_str(key).is_ok(),
        };
        if !known {
            return Err(Error::Config(format!("unknown {scheme:?} setting {key:?}")));
        }
    }
    Ok(())
}

/// The key prefix inside the bucket or container: the URL's path.
fn prefix_of(location: &str) -> Result<(String, String)> {
    let (_, rest) = location
        .split_once("://")
        .ok_or_else(|| Error::UnsupportedLocation(location.to_owned()))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() || bucket.contains('@') {
        return Err(Error::UnsupportedLocation(location.to_owned()));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

/// The file's settings, then the environment variables starting with `prefix`
/// (lower-cased, as object_store's `from_env` reads them), which therefore win.
fn settings(file: &BTreeMap<String, String>, prefix: &str) -> Vec<(String, String)> {
    let env = std::env::vars()
        .filter(|(k, _)| k.starts_with(prefix))
        .map(|(k, v)| (k.to_ascii_lowercase(), v));
    file.clone().into_iter().chain(env).collect()
}

/// Builds the store for `location`; returns it with the location to show in
/// messages (scheme, bucket and prefix only: never credentials) and the key prefix.
pub fn build(
    scheme: Scheme,
    location: &str,
    options: &StoreOptions,
) -> Result<(Arc<dyn ObjectStore>, String, String)> {
    let (bucket, prefix) = prefix_of(location)?;
    let shown = location.to_owned();
    let client = ClientOptions::new()
        .with_timeout(options.request_timeout)
        .with_connect_timeout(Duration::from_secs(5).min(options.request_timeout));
    let retry = RetryConfig {
        max_retries: options.retries,
        retry_timeout: options.deadline,
        ..Default::default()
    };
    let config_error = |e: object_store::Error| Error::Config(format!("{location}: {e}"));
    let store: Arc<dyn ObjectStore> = match scheme {
        Scheme::S3 => {
            let mut b = AmazonS3Builder::new()
                .with_client_options(client)
                .with_retry(retry);
            for (k, v) in settings(&options.s3, "AWS_") {
                if let Ok(key) = AmazonS3ConfigKey::from_str(&k) {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.with_bucket_name(bucket).build().map_err(config_error)?)
        }
        Scheme::Azure => {
            let mut b = MicrosoftAzureBuilder::new()
                .with_client_options(client)
                .with_retry(retry);
            for (k, v) in settings(&options.azure, "AZURE_") {
                if let Ok(key) = AzureConfigKey::from_str(&k) {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(
                b.with_container_name(bucket)
                    .build()
                    .map_err(config_error)?,
            )
        }
        Scheme::Gcs => {
            let mut b = GoogleCloudStorageBuilder::new()
                .with_client_options(client)
                .with_retry(retry);
            for (k, v) in settings(&options.gcs, "GOOGLE_") {
                if let Ok(key) = GoogleConfigKey::from_str(&k) {
                    b = b.with_config(key, v);
                }
            }
            Arc::new(b.with_bucket_name(bucket).build().map_err(config_error)?)
        }
    };
    Ok((store, shown, prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_and_prefixes() {
        assert_eq!(Scheme::of("s3://b/p"), Some(Scheme::S3));
        assert_eq!(Scheme::of("az://c/p"), Some(Scheme::Azure));
        assert_eq!(Scheme::of("azure://c"), Some(Scheme::Azure));
        assert_eq!(Scheme::of("gs://b/p/q"), Some(Scheme::Gcs));
        assert_eq!(Scheme::of("/mnt/wal"), None);
        assert_eq!(Scheme::of("file:///mnt/wal"), None);
        assert_eq!(
            prefix_of("s3://b/p/q/").unwrap(),
            ("b".into(), "p/q".into())
        );
        assert_eq!(prefix_of("gs://b").unwrap(), ("b".into(), "".into()));
        assert!(prefix_of("s3:///p").is_err());
        assert!(
            prefix_of("s3://user:secret@b/p").is_err(),
            "no credentials in URLs"
        );
    }

    #[test]
    fn unknown_settings_are_refused() {
        let mut t = BTreeMap::new();
        t.insert("region".to_string(), "us-east-1".to_string());
        t.insert("endpoint".to_string(), "http://127.0.0.1:9".to_string());
        assert!(check_keys(Scheme::S3, &t).is_ok());
        t.insert("regoin".to_string(), "x".to_string());
        assert!(check_keys(Scheme::S3, &t).is_err());
        let mut a = BTreeMap::new();
        a.insert("account_name".to_string(), "devstoreaccount1".to_string());
        assert!(check_keys(Scheme::Azure, &a).is_ok());
        let mut g = BTreeMap::new();
        g.insert(
            "service_account".to_string(),
            "/etc/uxwal/gcs.json".to_string(),
        );
        assert!(check_keys(Scheme::Gcs, &g).is_ok());
    }

    #[test]
    fn the_keys_the_readme_documents_are_accepted() {
        // Operators copy store keys from the README: the "common keys (file)"
        // column of its object storage table, and the `[s3]`, `[azure]` and
        // `[gcs]` rows of its configuration reference. Every key named in
        // either place must be one the store client accepts.
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/README.md");
        let readme = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
        let backticked = |cell: &str| -> Vec<String> {
            cell.split('`')
                .skip(1)
                .step_by(2)
                .map(str::to_owned)
                .collect()
        };
        for (scheme, store_row, table_row) in [
            (Scheme::S3, "S3", "`[s3]`"),
            (Scheme::Azure, "Azure", "`[azure]`"),
            (Scheme::Gcs, "GCS", "`[gcs]`"),
        ] {
            let (mut in_store_table, mut in_reference) = (Vec::new(), Vec::new());
            for line in readme.lines().filter(|l| l.starts_with('|')) {
                // cells[0] is what comes before the first `|`.
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                match cells[..] {
                    [_, first, keys, ..] if first == store_row => {
                        in_store_table.extend(backticked(keys))
                    }
                    // "table of S3 settings: the `object_store` crate's keys
                    // (`region`, ...)": the keys are those in the parentheses.
                    [_, first, _, value, ..] if first == table_row => {
                        let listed = value.split_once('(').map_or("", |(_, keys)| keys);
                        in_reference.extend(backticked(listed))
                    }
                    _ => {}
                }
            }
            // A table that moved or changed shape must fail here, not pass empty.
            assert!(
                !in_store_table.is_empty(),
                "no {store_row} row with keys in README.md's object storage table"
            );
            assert!(
                !in_reference.is_empty(),
                "no {table_row} row with keys in README.md's configuration reference"
            );
            for key in in_store_table.iter().chain(&in_reference) {
                let table = BTreeMap::from([(key.clone(), String::new())]);
                if let Err(e) = check_keys(scheme, &table) {
                    panic!("README.md documents {key:?} for {scheme:?}, which is refused: {e}");
                }
            }
            // The same check refuses a key the store client does not know.
            let unknown = BTreeMap::from([("not_a_store_key".to_string(), String::new())]);
            assert!(check_keys(scheme, &unknown).is_err());
        }
    }

    #[test]
    fn gcs_locations_build_without_network() {
        // No GCS emulator accepts object_store uploads (see README); the URL and
        // settings are still parsed and the client is built.
        let dir = tempfile::tempdir().unwrap();
        let sa = dir.path().join("sa.json");
        std::fs::write(&sa, r#"{"gcs_base_url":"http://127.0.0.1:9","disable_oauth":true,"client_email":"","private_key":"","private_key_id":""}"#).unwrap();
        let mut options = StoreOptions::default();
        options
            .gcs
            .insert("service_account".into(), sa.display().to_string());
        let (_, shown, prefix) = build(Scheme::Gcs, "gs://bucket/wal/main", &options).unwrap();
        assert_eq!(
            (shown.as_str(), prefix.as_str()),
            ("gs://bucket/wal/main", "wal/main")
        );
    }
}
