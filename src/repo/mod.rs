//! The repository: where archived WAL lives, whatever the storage.
//!
//! A repository is a set of objects under a root (`docs/FORMAT.md`):
//!
//! ```text
//! FORMAT                         format version; created by the first archive
//! IDENTITY                       system identifier, segment size, page magic
//! ENCRYPTION                     present when WAL archived here is encrypted
//! wal/<TTTTTTTTLLLLLLLL>/<name>  segments, .partial and .backup files
//! history/<TTTTTTTT>.history     timeline history files
//! ```
//!
//! Storage backends implement [`Backend`]: a put that never replaces
//! ([`Staged::publish`]), a get that says "absent" only when the object is
//! definitely absent, and a way to make an existing object durable. The local
//! directory backend is [`local`]; [`object`] adapts any `object_store` store.
//! Archived objects are read back through one reader only, [`stored`]; the
//! archive [`identity`] and the check of a segment against it live beside it.

pub mod identity;
pub mod local;
pub mod object;
pub mod remote;
pub mod stored;

pub use identity::Identity;

use std::io::{self, Read, Seek, Write};
use std::time::SystemTime;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::wal::name::WalName;

/// The repository layout version this uxwal writes and reads.
pub const FORMAT_VERSION: u32 = 1;
const FORMAT_KEY: &str = "FORMAT";
/// Where [`Repository::probe_create_refused`] puts its probe objects.
const PROBE_PREFIX: &str = "tmp/create-probe.";
/// Age at which a probe object is a killed run's leftover.
const PROBE_STALE_AFTER: std::time::Duration = std::time::Duration::from_secs(3600);
const IDENTITY_KEY: &str = "IDENTITY";
const ENCRYPTION_KEY: &str = "ENCRYPTION";
/// `FORMAT` and `IDENTITY` are a few lines of TOML; a longer object is not one.
const MAX_METADATA: u64 = 64 * 1024;

/// Outcome of a put that never replaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    Created,
    /// Something is already stored under the key; nothing was changed.
    AlreadyExists,
}

/// An object being written; invisible until published.
pub trait Staged: Write {
    /// Makes the object durable and visible under its key, unless the key exists.
    fn publish(self: Box<Self>) -> io::Result<PutOutcome>;
}

/// A readable stored object.
pub trait Blob: Read + Seek {}
impl<T: Read + Seek> Blob for T {}

/// A stored object with its length.
pub struct Object {
    pub len: u64,
    pub reader: Box<dyn Blob>,
}

/// An object found by listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    /// Key relative to the repository root, `/`-separated.
    pub key: String,
    /// Stored size in bytes.
    pub size: u64,
    /// When it was stored (last modified), where the storage says.
    pub modified: Option<SystemTime>,
}

/// What a listed key is, by where it sits in the layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    /// An archived WAL file at its proper key.
    Wal(WalName),
    /// `FORMAT`, `IDENTITY` or `ENCRYPTION`: never removed.
    Metadata,
    /// A staging file (a writer's, or one a crash left behind), or the staging lock.
    Staging,
    /// Anything else: not written by uxwal, or in the wrong place.
    Unknown,
}

/// A small object read whole ([`Backend::read_small`]): its length, and its
/// bytes when that is within the bound asked for (else empty, unread).
pub type Small = (u64, Vec<u8>);

/// One kind of storage. `Send`, so that a worker can keep a repository (its
/// client and connections) from one fetch to the next on whichever thread.
pub trait Backend: Send {
    /// Where this is, for messages (never includes credentials).
    fn describe(&self) -> String;
    /// Starts writing the object `key`.
    fn stage(&self, key: &str) -> io::Result<Box<dyn Staged>>;
    /// Opens `key`; `Ok(None)` only when the storage says it does not exist.
    fn get(&self, key: &str) -> io::Result<Option<Object>>;
    /// The stored size of `key`; `Ok(None)` only when the storage says it does not
    /// exist. Cheap (metadata or a HEAD request): push-ahead confirms with it that an
    /// object it recorded is still there without downloading it.
    fn stat(&self, key: &str) -> io::Result<Option<u64>>;
    /// Reads each of several small objects whole: its length and, when that is
    /// at most `max`, its bytes (a longer one is not read). `Ok(None)` only when
    /// the storage says it does not exist. Object stores send the requests at
    /// once, so the metadata of a repository costs one round trip.
    fn read_small(&self, keys: &[&str], max: u64) -> Vec<io::Result<Option<Small>>> {
        keys.iter()
            .map(|key| {
                let Some(mut obj) = self.get(key)? else {
                    return Ok(None);
                };
                let mut bytes = Vec::new();
                if obj.len <= max {
                    obj.reader.by_ref().take(max).read_to_end(&mut bytes)?;
                }
                Ok(Some((obj.len, bytes)))
            })
            .collect()
    }
    /// Makes an object that already exists durable (for duplicates found on archive).
    fn make_durable(&self, key: &str) -> io::Result<()>;
    /// Every object whose key starts with `prefix` (`""`: all), in no particular
    /// order. Fails (`NotFound`) when the repository root itself does not exist.
    fn list(&self, prefix: &str) -> io::Result<Vec<Listed>>;
    /// Deletes `keys` (in the given order where the storage allows), returning one
    /// result per key; deleting an absent key succeeds.
    fn delete(&self, keys: &[String]) -> Vec<io::Result<()>>;
    /// Whether a create that must not replace is this backend's own doing
    /// (`link(2)` on a filesystem) rather than a request the storage may
    /// ignore: then a new repository needs no probe
    /// ([`Repository::probe_create_refused`]).
    fn create_refusal_is_local(&self) -> bool {
        false
    }
    /// Starts the deadline of the storage work again, from now (a backend
    /// without one ignores this).
    fn restart_deadline(&self) {}
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FormatFile {
    format_version: u32,
}

/// The `ENCRYPTION` object: WAL archived to the repository since `since` is
/// encrypted (age); files archived before stay as they were. It holds public
/// keys only, and is never replaced or removed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Encryption {
    /// `"age"`, the only scheme this uxwal writes; any other is refused.
    pub scheme: String,
    /// When encryption started (UTC, `YYYY-MM-DDTHH:MM:SSZ`); for people.
    pub since: String,
    /// The recipients the first encrypted WAL went to (each object's header
    /// names its own).
    pub recipients: Vec<String>,
}

impl Encryption {
    fn to_toml(&self) -> String {
        let quoted: Vec<String> = self.recipients.iter().map(|r| format!("{r:?}")).collect();
        format!(
            "# WAL archived here since then is encrypted to age recipients (docs/FORMAT.md)\n\
             scheme = {:?}\nsince = {:?}\nrecipients = [{}]\n",
            self.scheme,
            self.since,
            quoted.join(", ")
        )
    }
}

/// What a repository records of itself ([`Repository::recorded`]).
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// Whether `FORMAT` exists (its version is checked when it does).
    pub is_repository: bool,
    pub identity: Option<Identity>,
    pub encryption: Option<Encryption>,
}

/// What [`Repository::start_encryption`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The marker was written now.
    Now(Encryption),
    /// The repository was encrypted already.
    Already(Encryption),
}

/// A repository opened from a location.
pub struct Repository {
    backend: Box<dyn Backend>,
    /// The private keys encrypted objects are read with, if any.
    identities: Option<std::sync::Arc<crate::crypt::Identities>>,
}

impl Repository {
    /// Opens `location` with default settings (see [`Repository::open_with`]).
    pub fn open(location: &str) -> Result<Self> {
        Self::open_with(location, &remote::StoreOptions::default())
    }

    /// Opens `location`: a directory path, a `file://` URL, or an object storage
    /// URL (`s3://bucket/prefix`, `az://container/prefix`, `gs://bucket/prefix`).
    /// Opening sends no request.
    pub fn open_with(location: &str, options: &remote::StoreOptions) -> Result<Self> {
        refuse_unsubstituted(location)?;
        if let Some(scheme) = remote::Scheme::of(location) {
            let (store, shown, prefix) = remote::build(scheme, location, options)?;
            let backend = object::ObjectStoreBackend::new(store, &shown, &prefix, options.deadline)
                .map_err(|e| Error::Config(format!("cannot start the storage client: {e}")))?;
            return Ok(Self::with_backend(Box::new(backend)).with_keys(options));
        }
        let path = match location.split_once("://") {
            None if !location.is_empty() => location,
            Some(("file", path)) if path.starts_with('/') => path,
            _ => return Err(Error::UnsupportedLocation(location.to_owned())),
        };
        Ok(
            Self::with_backend(Box::new(local::LocalDirectory::new(path.into())))
                .with_keys(options),
        )
    }

    /// `location` with a relative local path made absolute (against the current
    /// directory); object storage URLs and absolute paths unchanged. For
    /// locations handed to a detached worker, which runs elsewhere, and for
    /// everything that compares or records locations (spool entries, spool
    /// names), which must see the same string in the call and in the worker.
    pub fn absolute_location(location: String) -> String {
        // Every URL, object storage and file:// alike, has a scheme.
        if location.contains("://") {
            return location;
        }
        match std::path::absolute(&location) {
            Ok(path) => path.to_string_lossy().into_owned(),
            Err(_) => location,
        }
    }

    pub fn with_backend(backend: Box<dyn Backend>) -> Self {
        Repository {
            backend,
            identities: None,
        }
    }

    /// This repository with the identities of `options`, if any.
    fn with_keys(self, options: &remote::StoreOptions) -> Self {
        match &options.keys.identities {
            Some(identities) => self.with_identities(identities.clone()),
            None => self,
        }
    }

    /// This repository, reading encrypted objects with `identities`.
    pub fn with_identities(mut self, identities: std::sync::Arc<crate::crypt::Identities>) -> Self {
        self.identities = Some(identities);
        self
    }

    pub fn describe(&self) -> String {
        self.backend.describe()
    }

    /// Starts the deadline (`StoreOptions::deadline`) again from now: a
    /// handle kept for many independent operations (a worker's fetches)
    /// bounds each of them alone, and keeps its client and connections.
    pub fn restart_deadline(&self) {
        self.backend.restart_deadline();
    }

    /// The object key of an archived WAL file.
    pub fn key(name: &WalName) -> String {
        match name.segment() {
            Some(seg) => format!("wal/{:08X}{:08X}/{name}", seg.timeline, seg.log),
            None => format!("history/{name}"),
        }
    }

    fn storage_error(&self, op: &'static str, key: &str, source: io::Error) -> Error {
        Error::Storage {
            location: self.describe(),
            op,
            key: key.to_owned(),
            source,
        }
    }

    /// Starts writing an object.
    pub fn stage(&self, key: &str) -> Result<Box<dyn Staged>> {
        self.backend
            .stage(key)
            .map_err(|e| self.storage_error("stage", key, e))
    }

    /// Publishes a staged object without replacing anything.
    pub fn publish(&self, staged: Box<dyn Staged>, key: &str) -> Result<PutOutcome> {
        staged
            .publish()
            .map_err(|e| self.storage_error("store", key, e))
    }

    /// Opens an object; `None` when the storage says it is absent.
    pub fn get(&self, key: &str) -> Result<Option<Object>> {
        self.backend
            .get(key)
            .map_err(|e| self.storage_error("read", key, e))
    }

    /// The stored size of an object; `None` when the storage says it is absent.
    pub fn stat(&self, key: &str) -> Result<Option<u64>> {
        self.backend
            .stat(key)
            .map_err(|e| self.storage_error("stat", key, e))
    }

    /// Lists every object under `prefix` (`""` for the whole repository).
    pub fn list(&self, prefix: &str) -> Result<Vec<Listed>> {
        self.backend
            .list(prefix)
            .map_err(|e| self.storage_error("list", prefix, e))
    }

    /// Deletes `keys`, one result per key. Callers must never pass metadata keys.
    pub fn delete(&self, keys: &[String]) -> Vec<(String, Result<()>)> {
        let results = self.backend.delete(keys);
        keys.iter()
            .cloned()
            .zip(results)
            .map(|(k, r)| {
                let r = r.map_err(|e| self.storage_error("delete", &k, e));
                (k, r)
            })
            .collect()
    }

    /// What `key` is in the layout.
    pub fn classify(key: &str) -> Entry {
        if key == FORMAT_KEY || key == IDENTITY_KEY || key == ENCRYPTION_KEY {
            return Entry::Metadata;
        }
        if key.starts_with("tmp/") {
            return Entry::Staging;
        }
        let base = key.rsplit('/').next().unwrap_or(key);
        match base.parse::<WalName>() {
            Ok(name) if Self::key(&name) == key => Entry::Wal(name),
            _ => Entry::Unknown,
        }
    }

    pub fn make_durable(&self, key: &str) -> Result<()> {
        self.backend
            .make_durable(key)
            .map_err(|e| self.storage_error("sync", key, e))
    }

    fn get_small(&self, key: &str) -> Result<Option<String>> {
        Ok(self.get_small_many(&[key])?.pop().flatten())
    }

    /// Metadata objects, read at once ([`Backend::read_small`]: one round trip
    /// on object storage), one text per key. Each is refused from its length,
    /// before its body is read, and unless it is UTF-8 text.
    fn get_small_many(&self, keys: &[&str]) -> Result<Vec<Option<String>>> {
        let reads = self.backend.read_small(keys, MAX_METADATA);
        if reads.len() != keys.len() {
            return Err(Error::Internal(format!(
                "{} answers to {} metadata reads",
                reads.len(),
                keys.len()
            )));
        }
        keys.iter()
            .zip(reads)
            .map(|(key, read)| {
                let bad = |reason: String| Error::BadMetadata {
                    key: (*key).into(),
                    reason,
                };
                match read.map_err(|e| self.storage_error("read", key, e))? {
                    None => Ok(None),
                    Some((len, _)) if len > MAX_METADATA => {
                        Err(bad(format!("{len} bytes: longer than any uxwal metadata")))
                    }
                    Some((_, bytes)) => String::from_utf8(bytes)
                        .map(Some)
                        .map_err(|_| bad("not UTF-8 text".into())),
                }
            })
            .collect()
    }

    fn put_small(&self, key: &str, text: &str) -> Result<PutOutcome> {
        let mut staged = self.stage(key)?;
        staged
            .write_all(text.as_bytes())
            .map_err(|e| self.storage_error("write", key, e))?;
        self.publish(staged, key)
    }

    /// Checks that this is a uxwal repository of a format we read.
    /// `Err(NotARepository)` when the FORMAT object is absent.
    pub fn check_format(&self) -> Result<()> {
        match self.get_small(FORMAT_KEY)? {
            None => Err(Error::NotARepository {
                location: self.describe(),
            }),
            Some(text) => self.parse_format(&text),
        }
    }

    fn parse_format(&self, text: &str) -> Result<()> {
        let f: FormatFile = parse_metadata(FORMAT_KEY, text)?;
        if f.format_version > FORMAT_VERSION {
            return Err(Error::UnsupportedFormat {
                location: self.describe(),
                found: f.format_version,
                supported: FORMAT_VERSION,
            });
        }
        Ok(())
    }

    /// Creates the FORMAT object if the repository is new, else checks it. A
    /// new repository is first probed: the storage must refuse a second create
    /// of one key ([`Repository::probe_create_refused`]).
    pub fn ensure_format(&self) -> Result<()> {
        match self.check_format() {
            Err(Error::NotARepository { .. }) => {
                self.probe_create_refused()?;
                let text = format!("format_version = {FORMAT_VERSION}\n");
                match self.put_small(FORMAT_KEY, &text)? {
                    PutOutcome::Created => Ok(()),
                    // Another writer created it meanwhile: check theirs.
                    PutOutcome::AlreadyExists => self.check_format(),
                }
            }
            other => other,
        }
    }

    /// Proves that the storage refuses to create an object that exists
    /// (`If-None-Match: *` on S3 and Azure, a generation precondition on GCS):
    /// everything uxwal promises about never overwriting rests on it, and some
    /// S3-compatible stores accept the header and overwrite anyway. Creates a
    /// probe object under `tmp/` twice and removes it; a store that accepts the
    /// second create is refused. A local directory needs no probe: its creates
    /// are `link(2)`, which never replaces. A probe left by a killed run is
    /// removed by a later probe once it is an hour old (sooner, it may be a
    /// concurrent writer's probe in progress).
    pub fn probe_create_refused(&self) -> Result<()> {
        if self.backend.create_refusal_is_local() {
            return Ok(());
        }
        let now = std::time::SystemTime::now();
        let nanos = now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let key = format!("{PROBE_PREFIX}{}.{nanos}", std::process::id());
        let first = self.put_small(&key, "uxwal create probe: first\n");
        let second = first
            .as_ref()
            .ok()
            .map(|_| self.put_small(&key, "uxwal create probe: second\n"));
        let stale = now.checked_sub(PROBE_STALE_AFTER);
        let mut remove = vec![key];
        if let Ok(listed) = self.list(PROBE_PREFIX) {
            remove.extend(
                listed
                    .into_iter()
                    .filter(|l| l.modified.zip(stale).is_some_and(|(m, s)| m < s))
                    .map(|l| l.key),
            );
        }
        for (key, result) in self.delete(&remove) {
            if let Err(e) = result {
                tracing::warn!("could not remove the probe object {key}: {e}");
            }
        }
        match (first?, second.transpose()?) {
            // The key is this process's own: a first create answered
            // "exists" was a retried request that had already succeeded.
            (_, Some(PutOutcome::AlreadyExists)) => Ok(()),
            _ => Err(Error::OverwritingStore {
                location: self.describe(),
            }),
        }
    }

    /// `FORMAT`, `IDENTITY` and `ENCRYPTION`, read at once (one round trip
    /// on object storage), each checked.
    pub fn recorded(&self) -> Result<Recorded> {
        let mut texts = self
            .get_small_many(&[FORMAT_KEY, IDENTITY_KEY, ENCRYPTION_KEY])?
            .into_iter();
        let (format, identity, encryption) = (
            texts.next().flatten(),
            texts.next().flatten(),
            texts.next().flatten(),
        );
        if let Some(text) = &format {
            self.parse_format(text)?;
        }
        Ok(Recorded {
            is_repository: format.is_some(),
            identity: identity
                .map(|t| parse_metadata(IDENTITY_KEY, &t))
                .transpose()?,
            encryption: encryption.map(|t| self.parse_encryption(&t)).transpose()?,
        })
    }

    fn parse_encryption(&self, text: &str) -> Result<Encryption> {
        let marker: Encryption = parse_metadata(ENCRYPTION_KEY, text)?;
        if marker.scheme != "age" {
            return Err(Error::BadMetadata {
                key: ENCRYPTION_KEY.into(),
                reason: format!(
                    "encryption scheme {:?}: this uxwal reads \"age\" only",
                    marker.scheme.chars().take(40).collect::<String>()
                ),
            });
        }
        Ok(marker)
    }

    /// Makes the repository ready to take WAL, creating it when new, and
    /// checks that it is encrypted exactly when this host encrypts
    /// (`encrypting`: the recipients it encrypts to). Returns what it records.
    /// A new repository archived to with encryption is encrypted from its
    /// first file (`ENCRYPTION` is written before `FORMAT`, so a crash
    /// between the two leaves it encrypted).
    pub fn prepare_archive(
        &self,
        encrypting: Option<&crate::crypt::Recipients>,
    ) -> Result<Recorded> {
        let mut recorded = self.recorded()?;
        if !recorded.is_repository {
            self.probe_create_refused()?;
            if let (Some(recipients), None) = (encrypting, &recorded.encryption) {
                self.put_small(ENCRYPTION_KEY, &marker_for(recipients).to_toml())?;
            }
            let text = format!("format_version = {FORMAT_VERSION}\n");
            self.put_small(FORMAT_KEY, &text)?;
            // Another writer may have created either meanwhile: theirs counts.
            recorded = self.recorded()?;
        }
        match (&recorded.encryption, encrypting) {
            (Some(marker), None) => Err(Error::EncryptedRepository {
                location: self.describe(),
                since: marker.since.clone(),
            }),
            (None, Some(_)) => Err(Error::PlainRepository {
                location: self.describe(),
            }),
            _ => Ok(recorded),
        }
    }

    /// Starts encrypting a repository that holds unencrypted WAL: files
    /// archived from now on are encrypted to `recipients`, and the ones there
    /// stay readable as they are. Creates the repository when new.
    pub fn start_encryption(&self, recipients: &crate::crypt::Recipients) -> Result<Started> {
        if let Some(marker) = self.recorded()?.encryption {
            return Ok(Started::Already(marker));
        }
        let marker = marker_for(recipients);
        let started = match self.put_small(ENCRYPTION_KEY, &marker.to_toml())? {
            PutOutcome::Created => Started::Now(marker),
            PutOutcome::AlreadyExists => match self.recorded()?.encryption {
                Some(theirs) => Started::Already(theirs),
                None => {
                    return Err(Error::BadMetadata {
                        key: ENCRYPTION_KEY.into(),
                        reason: "exists but cannot be read".into(),
                    })
                }
            },
        };
        self.ensure_format()?;
        Ok(started)
    }

    /// Makes this repository ready to take copies of the WAL of a repository
    /// that records `source` (`uxwal-sync`), creating it when new: probed
    /// first as [`Repository::prepare_archive`] does, then the source's
    /// `ENCRYPTION` marker when this one has none (before `FORMAT`, so a crash
    /// between the two leaves it marked encrypted), `FORMAT`, and the source's
    /// identity when this one has none ([`Repository::record_identity`]).
    /// Returns what this repository records afterwards (another writer's
    /// identity, recorded meanwhile, included: the caller compares).
    pub fn prepare_copy(&self, source: &Recorded) -> Result<Recorded> {
        let recorded = self.recorded()?;
        if !recorded.is_repository {
            self.probe_create_refused()?;
        }
        if let (Some(marker), None) = (&source.encryption, &recorded.encryption) {
            self.put_small(ENCRYPTION_KEY, &marker.to_toml())?;
        }
        if !recorded.is_repository {
            let text = format!("format_version = {FORMAT_VERSION}\n");
            self.put_small(FORMAT_KEY, &text)?;
        }
        if let (Some(identity), None) = (&source.identity, &recorded.identity) {
            self.record_identity(identity)?;
        }
        self.recorded()
    }

    /// The recorded identity, if any segment was archived yet.
    pub fn identity(&self) -> Result<Option<Identity>> {
        self.get_small(IDENTITY_KEY)?
            .map(|text| parse_metadata(IDENTITY_KEY, &text))
            .transpose()
    }

    /// Records `identity` unless one is recorded already; returns the recorded one.
    pub fn record_identity(&self, identity: &Identity) -> Result<Identity> {
        let text = identity.to_toml();
        match self.put_small(IDENTITY_KEY, &text)? {
            PutOutcome::Created => Ok(*identity),
            PutOutcome::AlreadyExists => self.identity()?.ok_or_else(|| Error::BadMetadata {
                key: IDENTITY_KEY.into(),
                reason: "exists but cannot be read".into(),
            }),
        }
    }
}

/// The `ENCRYPTION` object for a repository starting now with `recipients`.
fn marker_for(recipients: &crate::crypt::Recipients) -> Encryption {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    Encryption {
        scheme: "age".into(),
        since: utc(secs),
        recipients: recipients.names(),
    }
}

/// `secs` since the epoch as `YYYY-MM-DDTHH:MM:SSZ` (the proleptic Gregorian
/// calendar, by days since 1970-01-01 counted in 400-year eras).
fn utc(secs: u64) -> String {
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

fn parse_metadata<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T> {
    toml::from_str(text).map_err(|e| Error::BadMetadata {
        key: key.into(),
        reason: one_line(&e.to_string()),
    })
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// A location with a literal `%c` in it: Greenplum and Cloudberry substitute
/// `%c` (the segment's content id) in `archive_command`, but `pg_rewind -c`,
/// PostgreSQL itself and a hand-run command do not, and each content id must
/// archive into its own repository. Storing into a directory or prefix really
/// named `%c` would mix the segments' WAL, so it is refused.
fn refuse_unsubstituted(location: &str) -> Result<()> {
    if location.contains("%c") {
        return Err(Error::Config(format!(
            "repository location {location:?} holds a literal %c: the caller did not substitute it \
             (Greenplum and Cloudberry replace %c with the content id in archive_command; \
             pg_rewind -c and PostgreSQL do not); give the location with the content id written out"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_encryption_marker_reads_back_and_other_schemes_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repository::open(dir.path().to_str().unwrap()).unwrap();
        let marker = Encryption {
            scheme: "age".into(),
            since: utc(1_796_169_599),
            recipients: vec!["age1a".into(), "age1b\"quoted".into()],
        };
        assert_eq!(repo.parse_encryption(&marker.to_toml()).unwrap(), marker);
        let other = Encryption {
            scheme: "rot13".into(),
            ..marker
        };
        let err = repo.parse_encryption(&other.to_toml()).unwrap_err();
        assert!(err.to_string().contains("reads \"age\" only"), "{err}");
    }

    #[test]
    fn timestamps_are_written_in_utc() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_796_169_599), "2026-12-01T23:59:59Z");
        assert_eq!(utc(4_107_542_400), "2100-03-01T00:00:00Z");
    }
}

#[cfg(test)]
mod conformance {
    //! Every backend passes the same tests.
    use super::*;

    fn put(repo: &Repository, key: &str, body: &[u8]) -> PutOutcome {
        let mut s = repo.stage(key).unwrap();
        s.write_all(body).unwrap();
        repo.publish(s, key).unwrap()
    }

    fn read(repo: &Repository, key: &str) -> Option<Vec<u8>> {
        let mut obj = repo.get(key).unwrap()?;
        let mut v = Vec::new();
        obj.reader.read_to_end(&mut v).unwrap();
        assert_eq!(v.len() as u64, obj.len);
        Some(v)
    }

    fn run(repo: Repository) {
        assert!(matches!(
            repo.check_format(),
            Err(Error::NotARepository { .. })
        ));
        assert_eq!(
            read(&repo, "wal/0000000100000000/000000010000000000000001"),
            None
        );
        repo.ensure_format().unwrap();
        repo.ensure_format().unwrap();
        repo.check_format().unwrap();

        let key = "wal/0000000100000000/000000010000000000000001";
        assert_eq!(put(&repo, key, b"first"), PutOutcome::Created);
        assert_eq!(put(&repo, key, b"second"), PutOutcome::AlreadyExists);
        assert_eq!(read(&repo, key).unwrap(), b"first");
        assert_eq!(repo.stat(key).unwrap(), Some(5));
        assert_eq!(
            repo.stat("wal/0000000100000000/000000010000000000000009")
                .unwrap(),
            None
        );
        repo.make_durable(key).unwrap();

        assert_eq!(repo.identity().unwrap(), None);
        let a = Identity {
            system_identifier: u64::MAX - 1,
            segment_size: 16 << 20,
            page_magic: 0xD110,
        };
        let b = Identity {
            system_identifier: 42,
            ..a
        };
        assert_eq!(repo.record_identity(&a).unwrap(), a);
        assert_eq!(
            repo.record_identity(&b).unwrap(),
            a,
            "the first identity stays"
        );
        assert_eq!(repo.identity().unwrap(), Some(a));

        let history = "history/00000002.history";
        assert_eq!(
            put(&repo, history, b"1\t0/3000000\tx\n"),
            PutOutcome::Created
        );
        let mut keys: Vec<String> = repo.list("").unwrap().into_iter().map(|l| l.key).collect();
        keys.retain(|k| Repository::classify(k) != Entry::Staging);
        keys.sort();
        assert_eq!(keys, ["FORMAT", "IDENTITY", history, key]);
        let listed = repo.list("wal/").unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!((listed[0].key.as_str(), listed[0].size), (key, 5));
        assert!(matches!(
            Repository::classify(key),
            Entry::Wal(WalName::Segment(_))
        ));
        assert_eq!(
            Repository::classify("wal/0000000200000000/000000010000000000000001"),
            Entry::Unknown
        );
        assert_eq!(Repository::classify("IDENTITY"), Entry::Metadata);

        let gone = vec![
            key.to_string(),
            "wal/0000000100000000/000000010000000000000009".to_string(),
        ];
        for (k, r) in repo.delete(&gone) {
            r.unwrap_or_else(|e| panic!("delete {k}: {e}"));
        }
        assert_eq!(read(&repo, key), None);
        assert!(repo.list("wal/").unwrap().is_empty());
    }

    #[test]
    fn local_directory() {
        let dir = tempfile::tempdir().unwrap();
        run(Repository::open(dir.path().join("repo").to_str().unwrap()).unwrap());
        let url = format!("file://{}", dir.path().join("repo2").display());
        run(Repository::open(&url).unwrap());
    }

    #[test]
    fn object_store_in_memory() {
        let store = std::sync::Arc::new(object_store::memory::InMemory::new());
        run(Repository::with_backend(Box::new(
            object::ObjectStoreBackend::new(
                store,
                "memory://",
                "prefix",
                std::time::Duration::from_secs(10),
            )
            .unwrap(),
        )));
    }

    #[test]
    fn unsupported_locations_are_refused() {
        for loc in [
            "",
            "s3x://b/p",
            "file://relative",
            "http://x/y",
            "s3://user:pw@b/p",
        ] {
            assert!(
                matches!(Repository::open(loc), Err(Error::UnsupportedLocation(_))),
                "{loc}"
            );
        }
    }

    #[test]
    fn a_literal_content_id_placeholder_is_refused() {
        for loc in [
            "/mnt/wal/seg%c",
            "s3://bucket/wal/seg%c",
            "file:///mnt/%c/wal",
        ] {
            let err = Repository::open(loc).err().expect(loc).to_string();
            assert!(err.contains("did not substitute"), "{loc}: {err}");
        }
        assert!(Repository::open("/mnt/wal/seg-1").is_ok());
        assert!(Repository::open("/mnt/wal/100%").is_ok());
    }
}
