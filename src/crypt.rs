//! Encryption at rest in the age format (age-encryption.org/v1): an archived
//! object, compressed with its trailer as always (`docs/FORMAT.md`), encrypted
//! to one or more X25519 recipients, so that `age -d -i KEY OBJECT | zstd -d`
//! gives the original file back.
//!
//! The archiving host holds recipients (public keys) only; restore, verify and
//! cleanup hold identities (private keys). The age header carries two kinds of
//! stanzas of uxwal's own, which age implementations skip as stanzas of an
//! unknown type and which need no private key to read:
//!
//! - `-> uxwal-to <recipient>`, one per recipient the object was encrypted to,
//!   so that a refusal can say which key is missing;
//! - `-> uxwal-mac <64 hex>`, a keyed digest (HMAC-SHA-256 under the digest
//!   key the archiving hosts share) of the original file's SHA-256 and size, so
//!   that a host without identities can still tell an identical duplicate from
//!   a different file, while the object shows no plain hash of the WAL.
//!
//! The header's own MAC (under the file key) covers these stanzas: a reader
//! with an identity notices a changed one.

// Parses data from outside: no indexing that could panic on it.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::collections::HashSet;
use std::io::{self, Read, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use age::x25519;
use age_core::format::{FileKey, Stanza};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The first line of every age file (without its newline).
pub const AGE_MAGIC: &[u8] = b"age-encryption.org/v1\n";

/// Most recipients one object may be encrypted to: each adds about 200 bytes
/// of header, which must stay within [`MAX_HEADER_LEN`].
pub const MAX_RECIPIENTS: usize = 16;

/// Longest age header uxwal reads (uxwal writes at most about 4 KiB).
pub const MAX_HEADER_LEN: usize = 16 * 1024;

/// Largest key, identity or recipients file read.
const MAX_KEY_FILE: u64 = 64 * 1024;

const TO_TAG: &str = "uxwal-to";
const MAC_TAG: &str = "uxwal-mac";
/// Separates the keyed digest's input from any other use of the key.
const MAC_CONTEXT: &[u8] = b"uxwal keyed digest v1\0";

/// Why a key, identity or recipient could not be used. Messages name files,
/// never their contents: an identity file holds a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("{0:?} is not an age recipient (age1...)")]
    BadRecipient(String),
    #[error("{path}: cannot read it: {reason}")]
    Unreadable { path: PathBuf, reason: String },
    #[error("{path}: readable by group or others (mode {mode:04o}); a file holding a secret must be private to its owner (chmod 600)")]
    Exposed { path: PathBuf, mode: u32 },
    #[error("{path}: line {line} is not an age identity (AGE-SECRET-KEY-1...)")]
    BadIdentity { path: PathBuf, line: usize },
    #[error("{path}: holds no {what}")]
    Empty { path: PathBuf, what: &'static str },
    #[error("{path}: a digest key must be 32 to 1024 bytes, not {len}")]
    BadDigestKey { path: PathBuf, len: u64 },
    #[error("{0} recipients given; at most {MAX_RECIPIENTS} are supported")]
    TooManyRecipients(usize),
    #[error("no recipients given")]
    NoRecipients,
    #[error("{0}: key files are named by absolute paths (a background worker runs elsewhere)")]
    RelativePath(PathBuf),
    #[error("encrypt_to needs digest_key_file: the key identical duplicates are recognised by without a private key")]
    NoDigestKey,
}

/// The public keys new objects are encrypted to.
pub struct Recipients {
    keys: Vec<x25519::Recipient>,
}

impl Recipients {
    /// Each item is a recipient (`age1...`) or the path of a recipients file
    /// (one recipient per line, `#` comments and blank lines skipped).
    pub fn parse(items: &[String]) -> Result<Recipients, KeyError> {
        let mut keys = Vec::new();
        for item in items {
            if item.starts_with("age1") {
                keys.push(recipient(item)?);
                continue;
            }
            keys.extend(keys_in(Path::new(item), false, "recipient", |_, line| {
                recipient(line)
            })?);
        }
        match keys.len() {
            0 => Err(KeyError::NoRecipients),
            n if n > MAX_RECIPIENTS => Err(KeyError::TooManyRecipients(n)),
            _ => Ok(Recipients { keys }),
        }
    }

    /// The recipients, as written in configuration files.
    pub fn names(&self) -> Vec<String> {
        self.keys.iter().map(ToString::to_string).collect()
    }

    /// Starts an encrypted object on `out`, with the keyed digest `mac` of its
    /// content (see [`DigestKey::mac`]) in the header. Everything written to
    /// the returned writer is encrypted; [`age::stream::StreamWriter::finish`]
    /// ends the object and gives `out` back.
    pub fn encrypt<W: Write>(
        &self,
        out: W,
        mac: &[u8; 32],
    ) -> io::Result<age::stream::StreamWriter<W>> {
        let labels = Labels {
            to: self.names(),
            mac: crate::codec::hex(mac),
        };
        let recipients = self
            .keys
            .iter()
            .map(|k| k as &dyn age::Recipient)
            .chain(std::iter::once(&labels as &dyn age::Recipient));
        age::Encryptor::with_recipients(recipients)
            .map_err(io::Error::other)?
            .wrap_output(out)
    }
}

fn recipient(text: &str) -> Result<x25519::Recipient, KeyError> {
    text.parse()
        .map_err(|_| KeyError::BadRecipient(text.chars().take(80).collect()))
}

/// uxwal's own header stanzas, added as if they were one more recipient's:
/// they wrap no file key.
struct Labels {
    to: Vec<String>,
    mac: String,
}

impl age::Recipient for Labels {
    fn wrap_file_key(
        &self,
        _: &FileKey,
    ) -> Result<(Vec<Stanza>, HashSet<String>), age::EncryptError> {
        let stanza = |tag: &str, arg: &str| Stanza {
            tag: tag.into(),
            args: vec![arg.into()],
            body: Vec::new(),
        };
        let mut stanzas: Vec<Stanza> = self.to.iter().map(|r| stanza(TO_TAG, r)).collect();
        stanzas.push(stanza(MAC_TAG, &self.mac));
        Ok((stanzas, HashSet::new()))
    }
}

/// The private keys objects are decrypted with: several, so that keys can
/// rotate (new recipients for new WAL, old identities kept for old WAL).
pub struct Identities {
    keys: Vec<x25519::Identity>,
}

impl Identities {
    /// Reads identity files as `age-keygen` writes them. A file readable by
    /// group or others is refused.
    pub fn load(files: &[PathBuf]) -> Result<Identities, KeyError> {
        let mut keys = Vec::new();
        for path in files {
            keys.extend(keys_in(path, true, "identity", |line, key| {
                key.parse().map_err(|_| KeyError::BadIdentity {
                    path: path.clone(),
                    line,
                })
            })?);
        }
        Ok(Identities { keys })
    }

    /// One new identity (for the fuzz target, which needs a key to try).
    #[cfg(any(fuzzing, test))]
    pub(crate) fn generated() -> Identities {
        Identities {
            keys: vec![x25519::Identity::generate()],
        }
    }

    /// The public keys of these identities.
    pub fn recipients(&self) -> Vec<String> {
        self.keys
            .iter()
            .map(|k| k.to_public().to_string())
            .collect()
    }

    /// Opens the encrypted object `r` (positioned at its start): the plaintext
    /// as a seekable reader, or why it cannot be read.
    pub fn decrypt<R: Read + Seek>(
        &self,
        r: R,
    ) -> Result<age::stream::StreamReader<R>, age::DecryptError> {
        age::Decryptor::new(r)?.decrypt(self.keys.iter().map(|k| k as &dyn age::Identity))
    }
}

/// The key of the keyed digest that lets hosts without identities recognise
/// identical duplicates. Losing it loses only that: a duplicate push of an
/// object whose digest cannot be checked is then refused.
pub struct DigestKey(Vec<u8>);

impl DigestKey {
    /// Reads the key file (32 to 1024 bytes, taken as they are; for example
    /// `head -c 32 /dev/urandom`). A file readable by group or others is refused.
    pub fn load(path: &Path) -> Result<DigestKey, KeyError> {
        let bytes = read_key_bytes(path, true)?;
        let len = bytes.len() as u64;
        if !(32..=1024).contains(&len) {
            return Err(KeyError::BadDigestKey {
                path: path.into(),
                len,
            });
        }
        Ok(DigestKey(bytes))
    }

    /// The keyed digest of a file with SHA-256 `sha256` and `size` bytes.
    pub fn mac(&self, sha256: &[u8; 32], size: u64) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(MAC_CONTEXT);
        mac.update(sha256);
        mac.update(&size.to_le_bytes());
        mac.finalize().into_bytes().into()
    }
}

/// Where the keys of one configuration come from: recipients (or recipients
/// files), the digest key file and identity files, as the configuration file
/// or the command line names them. Public keys and paths only, never a
/// secret: a background worker is handed these.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySources {
    pub encrypt_to: Vec<String>,
    pub digest_key_file: Option<PathBuf>,
    pub identity_files: Vec<PathBuf>,
}

impl KeySources {
    /// Each part from `self` where it names anything, else from `fallback`
    /// (the command line over the configuration file).
    pub fn or(self, fallback: KeySources) -> KeySources {
        KeySources {
            encrypt_to: match self.encrypt_to.is_empty() {
                true => fallback.encrypt_to,
                false => self.encrypt_to,
            },
            digest_key_file: self.digest_key_file.or(fallback.digest_key_file),
            identity_files: match self.identity_files.is_empty() {
                true => fallback.identity_files,
                false => self.identity_files,
            },
        }
    }
}

/// The keys of one configuration: what an archive encrypts to (with the
/// digest key its duplicates are recognised by), and what reads decrypt with.
#[derive(Default)]
pub struct Keys {
    pub recipients: Option<Recipients>,
    pub digest: Option<DigestKey>,
    pub identities: Option<Arc<Identities>>,
    /// Where they were loaded from.
    pub sources: KeySources,
}

impl Keys {
    /// Loads the keys `sources` names: recipients or recipients files
    /// (`encrypt_to`), the digest key (needed with them) and identities.
    pub fn load(sources: &KeySources) -> Result<Keys, KeyError> {
        let KeySources {
            encrypt_to,
            digest_key_file,
            identity_files,
        } = sources;
        let files = encrypt_to
            .iter()
            .filter(|item| !item.starts_with("age1"))
            .map(PathBuf::from)
            .chain(digest_key_file.iter().cloned())
            .chain(identity_files.iter().cloned());
        for file in files {
            if !file.is_absolute() {
                return Err(KeyError::RelativePath(file));
            }
        }
        let recipients = match encrypt_to.as_slice() {
            [] => None,
            items => Some(Recipients::parse(items)?),
        };
        let digest = match (digest_key_file, &recipients) {
            (Some(path), _) => Some(DigestKey::load(path)?),
            (None, Some(_)) => return Err(KeyError::NoDigestKey),
            (None, None) => None,
        };
        let identities = match identity_files.as_slice() {
            [] => None,
            files => Some(Arc::new(Identities::load(files)?)),
        };
        Ok(Keys {
            recipients,
            digest,
            identities,
            sources: sources.clone(),
        })
    }

    /// What the keys are, by their public halves only (for comparisons and
    /// debugging output: never a secret).
    fn public(&self) -> (Vec<String>, bool, Vec<String>) {
        (
            self.recipients
                .as_ref()
                .map(Recipients::names)
                .unwrap_or_default(),
            self.digest.is_some(),
            self.identities
                .as_ref()
                .map(|i| i.recipients())
                .unwrap_or_default(),
        )
    }
}

impl std::fmt::Debug for Keys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (to, digest, identities) = self.public();
        f.debug_struct("Keys")
            .field("encrypt_to", &to)
            .field("digest_key", &digest)
            .field("identities_for", &identities)
            .finish()
    }
}

impl PartialEq for Keys {
    fn eq(&self, other: &Keys) -> bool {
        self.public() == other.public()
    }
}

impl Eq for Keys {}

/// What the header of an encrypted object says without a private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    /// The `uxwal-to` recipients, in order.
    pub recipients: Vec<String>,
    /// The keyed digest, if the header has one.
    pub mac: Option<[u8; 32]>,
    /// Length of the header, through its MAC line.
    pub header_len: usize,
}

/// Why the start of an object is not an age header uxwal can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not an age file")]
    NotAge,
    #[error("age header longer than {MAX_HEADER_LEN} bytes or cut short")]
    TooLong,
    #[error("malformed age header")]
    Malformed,
}

/// Whether `head` (the first bytes of an object) starts an age file.
pub fn is_encrypted(head: &[u8]) -> bool {
    head.starts_with(AGE_MAGIC)
}

/// Reads the stanzas of the age header at the start of `head` (at most
/// [`MAX_HEADER_LEN`] bytes are looked at), keeping uxwal's own.
pub fn read_envelope(head: &[u8]) -> Result<Envelope, EnvelopeError> {
    let head = head.get(..MAX_HEADER_LEN).unwrap_or(head);
    let rest = head.strip_prefix(AGE_MAGIC).ok_or(EnvelopeError::NotAge)?;
    let mut envelope = Envelope {
        recipients: Vec::new(),
        mac: None,
        header_len: 0,
    };
    let mut offset = AGE_MAGIC.len();
    let mut lines = rest.split_inclusive(|&b| b == b'\n');
    // In a stanza's body: lines of 64 base64 characters end with a shorter one.
    let mut in_body = false;
    loop {
        let line = lines.next().ok_or(EnvelopeError::TooLong)?;
        offset += line.len();
        let text = line
            .strip_suffix(b"\n")
            .ok_or(EnvelopeError::TooLong)
            .and_then(|l| std::str::from_utf8(l).map_err(|_| EnvelopeError::Malformed))?;
        if in_body {
            in_body = text.len() == 64;
            continue;
        }
        if let Some(mac_line) = text.strip_prefix("--- ") {
            if mac_line.is_empty() {
                return Err(EnvelopeError::Malformed);
            }
            envelope.header_len = offset;
            return Ok(envelope);
        }
        let mut words = text
            .strip_prefix("-> ")
            .ok_or(EnvelopeError::Malformed)?
            .split(' ');
        match (words.next(), words.next(), words.next()) {
            (Some(TO_TAG), Some(to), None) => {
                if envelope.recipients.len() == MAX_RECIPIENTS {
                    return Err(EnvelopeError::Malformed);
                }
                envelope.recipients.push(to.to_owned());
            }
            (Some(MAC_TAG), Some(mac), None) => {
                envelope.mac = Some(parse_mac(mac).ok_or(EnvelopeError::Malformed)?);
            }
            (Some(tag), ..) if !tag.is_empty() => {}
            _ => return Err(EnvelopeError::Malformed),
        }
        in_body = true;
    }
}

fn parse_mac(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 || !hex.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut mac = [0u8; 32];
    for (i, out) in mac.iter_mut().enumerate() {
        *out = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(mac)
}

/// The keys of a key file (one per line, `#` comments and blank lines
/// skipped), each parsed by `parse` with its line number; a file without
/// one holds no `what`.
fn keys_in<T>(
    path: &Path,
    secret: bool,
    what: &'static str,
    parse: impl Fn(usize, &str) -> Result<T, KeyError>,
) -> Result<Vec<T>, KeyError> {
    let text = read_key_file(path, secret)?;
    let keys = text
        .lines()
        .enumerate()
        .map(|(i, l)| (i + 1, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'))
        .map(|(line, key)| parse(line, key))
        .collect::<Result<Vec<T>, KeyError>>()?;
    if keys.is_empty() {
        return Err(KeyError::Empty {
            path: path.into(),
            what,
        });
    }
    Ok(keys)
}

fn read_key_file(path: &Path, secret: bool) -> Result<String, KeyError> {
    let bytes = read_key_bytes(path, secret)?;
    String::from_utf8(bytes).map_err(|_| KeyError::Unreadable {
        path: path.into(),
        reason: "not UTF-8 text".into(),
    })
}

/// Reads a small key file; one holding a secret must be private to its owner.
fn read_key_bytes(path: &Path, secret: bool) -> Result<Vec<u8>, KeyError> {
    let unreadable = |e: io::Error| KeyError::Unreadable {
        path: path.into(),
        reason: e.to_string(),
    };
    let file = std::fs::File::open(path).map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(KeyError::Unreadable {
            path: path.into(),
            reason: "not a regular file".into(),
        });
    }
    if secret && meta.mode() & 0o077 != 0 {
        return Err(KeyError::Exposed {
            path: path.into(),
            mode: meta.mode() & 0o7777,
        });
    }
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_KEY_FILE {
        return Err(KeyError::Unreadable {
            path: path.into(),
            reason: format!("larger than {MAX_KEY_FILE} bytes"),
        });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;
    use std::io::Cursor;
    use std::os::unix::fs::PermissionsExt;

    fn private_file(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    fn identity_file(dir: &Path, name: &str) -> (PathBuf, String) {
        let id = x25519::Identity::generate();
        let text = format!(
            "# created: by a test\n# public key: {}\n{}\n",
            id.to_public(),
            id.to_string().expose_secret()
        );
        (
            private_file(dir, name, text.as_bytes()),
            id.to_public().to_string(),
        )
    }

    fn encrypt(recipients: &Recipients, mac: &[u8; 32], plain: &[u8]) -> Vec<u8> {
        let mut w = recipients.encrypt(Vec::new(), mac).unwrap();
        w.write_all(plain).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn an_object_decrypts_with_any_of_its_recipients_identities_and_names_them() {
        let dir = tempfile::tempdir().unwrap();
        let (old, old_pub) = identity_file(dir.path(), "old.txt");
        let (new, new_pub) = identity_file(dir.path(), "new.txt");
        let recipients = Recipients::parse(&[old_pub.clone(), new_pub.clone()]).unwrap();
        let plain: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mac = [7u8; 32];
        let object = encrypt(&recipients, &mac, &plain);
        assert!(is_encrypted(&object));

        let envelope = read_envelope(&object).unwrap();
        assert_eq!(envelope.recipients, vec![old_pub.clone(), new_pub]);
        assert_eq!(envelope.mac, Some(mac));
        assert!(envelope.header_len < 1024, "{}", envelope.header_len);

        for file in [&old, &new] {
            let ids = Identities::load(std::slice::from_ref(file)).unwrap();
            let mut r = ids.decrypt(Cursor::new(&object)).unwrap();
            // Seekable: the end gives the plaintext length.
            assert_eq!(r.seek(io::SeekFrom::End(0)).unwrap(), plain.len() as u64);
            r.seek(io::SeekFrom::Start(0)).unwrap();
            let mut out = Vec::new();
            r.read_to_end(&mut out).unwrap();
            assert_eq!(out, plain);
        }

        // Rotation: an object for the old key alone is not for the new one.
        let only_old = encrypt(&Recipients::parse(&[old_pub]).unwrap(), &mac, b"x");
        let ids = Identities::load(&[new]).unwrap();
        assert!(matches!(
            ids.decrypt(Cursor::new(&only_old)),
            Err(age::DecryptError::NoMatchingKeys)
        ));
    }

    #[test]
    fn a_changed_byte_anywhere_fails_authentication() {
        let dir = tempfile::tempdir().unwrap();
        let (file, public) = identity_file(dir.path(), "id.txt");
        let ids = Identities::load(&[file]).unwrap();
        let plain = vec![42u8; 200_000];
        let object = encrypt(&Recipients::parse(&[public]).unwrap(), &[1; 32], &plain);
        let header_len = read_envelope(&object).unwrap().header_len;
        for at in [
            AGE_MAGIC.len() + 30,
            header_len - 5,
            header_len + 20,
            object.len() / 2,
            object.len() - 1,
        ] {
            let mut bad = object.clone();
            bad[at] ^= 0x01;
            let read = ids.decrypt(Cursor::new(&bad)).and_then(|mut r| {
                let mut out = Vec::new();
                r.read_to_end(&mut out).map_err(age::DecryptError::Io)?;
                Ok(out)
            });
            assert!(read.is_err(), "byte {at} of {} changed", object.len());
        }
        // Cut short at a chunk boundary (64 KiB + 16 bytes of tag per chunk).
        let cut = &object[..header_len + 16 + 2 * (64 * 1024 + 16)];
        let mut out = Vec::new();
        let read = ids
            .decrypt(Cursor::new(cut))
            .map(|mut r| r.read_to_end(&mut out));
        assert!(!matches!(read, Ok(Ok(_))), "a truncated object reads back");
    }

    #[test]
    fn key_files_holding_secrets_must_be_private() {
        let dir = tempfile::tempdir().unwrap();
        let (file, _) = identity_file(dir.path(), "id.txt");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let err = Identities::load(std::slice::from_ref(&file)).err().unwrap();
        assert!(
            matches!(err, KeyError::Exposed { mode: 0o640, .. }),
            "{err}"
        );
        let key = private_file(dir.path(), "digest.key", &[9; 32]);
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
        assert!(matches!(
            DigestKey::load(&key),
            Err(KeyError::Exposed { .. })
        ));
        // A bad line is named by number, never shown.
        let bad = private_file(dir.path(), "bad.txt", b"# c\nAGE-SECRET-KEY-1NOTAKEY\n");
        let err = Identities::load(&[bad]).err().unwrap();
        assert_eq!(
            err.to_string(),
            format!(
                "{}: line 2 is not an age identity (AGE-SECRET-KEY-1...)",
                dir.path().join("bad.txt").display()
            )
        );
        assert!(!err.to_string().contains("NOTAKEY"));
    }

    #[test]
    fn recipients_come_from_strings_and_files_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let ids: Vec<String> = (0..3)
            .map(|_| x25519::Identity::generate().to_public().to_string())
            .collect();
        let file = dir.path().join("recipients.txt");
        std::fs::write(&file, format!("# team\n{}\n\n{}\n", ids[1], ids[2])).unwrap();
        let parsed =
            Recipients::parse(&[ids[0].clone(), file.to_string_lossy().into_owned()]).unwrap();
        assert_eq!(parsed.names(), ids);
        assert!(matches!(
            Recipients::parse(&["age1nope".into()]),
            Err(KeyError::BadRecipient(_))
        ));
        assert!(matches!(
            Recipients::parse(&[]),
            Err(KeyError::NoRecipients)
        ));
        let many = vec![ids[0].clone(); MAX_RECIPIENTS + 1];
        assert!(matches!(
            Recipients::parse(&many),
            Err(KeyError::TooManyRecipients(17))
        ));
    }

    #[test]
    fn the_keyed_digest_depends_on_the_key_the_hash_and_the_size() {
        let dir = tempfile::tempdir().unwrap();
        let a = DigestKey::load(&private_file(dir.path(), "a", &[1; 32])).unwrap();
        let b = DigestKey::load(&private_file(dir.path(), "b", &[2; 32])).unwrap();
        let h = [3u8; 32];
        assert_eq!(a.mac(&h, 10), a.mac(&h, 10));
        assert_ne!(a.mac(&h, 10), b.mac(&h, 10));
        assert_ne!(a.mac(&h, 10), a.mac(&h, 11));
        assert_ne!(a.mac(&h, 10), a.mac(&[4; 32], 10));
        assert!(matches!(
            DigestKey::load(&private_file(dir.path(), "short", &[1; 31])),
            Err(KeyError::BadDigestKey { len: 31, .. })
        ));
    }

    #[test]
    fn envelopes_of_other_files_are_refused_without_panicking() {
        assert_eq!(
            read_envelope(b"\x28\xb5\x2f\xfd"),
            Err(EnvelopeError::NotAge)
        );
        assert_eq!(
            read_envelope(b"age-encryption.org/v1\n-> X25519 abc\n"),
            Err(EnvelopeError::TooLong)
        );
        assert_eq!(
            read_envelope(b"age-encryption.org/v1\nnot a stanza\n--- mac\n"),
            Err(EnvelopeError::Malformed)
        );
        assert_eq!(
            read_envelope(b"age-encryption.org/v1\n-> uxwal-mac 00\n\n--- mac\n"),
            Err(EnvelopeError::Malformed)
        );
        let plain = b"age-encryption.org/v1\n-> X25519 abc\nAAAA\n--- mac\npayload";
        let envelope = read_envelope(plain).unwrap();
        assert_eq!(envelope.recipients, Vec::<String>::new());
        assert_eq!(envelope.mac, None);
        assert_eq!(&plain[envelope.header_len..], b"payload");
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes after the magic: an envelope or an error, never a panic,
        /// and a header length inside what was given.
        #[test]
        fn any_header_is_read_or_refused(tail in proptest::collection::vec(any::<u8>(), 0..512)) {
            let mut head = AGE_MAGIC.to_vec();
            head.extend_from_slice(&tail);
            if let Ok(envelope) = read_envelope(&head) {
                prop_assert!(envelope.header_len <= head.len());
            }
        }
    }
}
