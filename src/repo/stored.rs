//! The one reader of stored objects: the only code that turns an archived
//! object into verified bytes (trailer, bounded decoding, SHA-256, size) and the
//! only place that decides whether a failure is the object's (corrupt), the
//! storage's, or the destination's. Restore, prefetch, archive's duplicate check,
//! cleanup and verify all read through [`Repository::open_stored`].
//!
//! Every read is bounded by the file's name (`docs/FORMAT.md`, "Reading
//! objects back"): the trailer of a segment must record exactly the archive's
//! segment size (any size PostgreSQL allows when the caller does not know it),
//! a `.partial` at most that, a `.history` or `.backup` file at most
//! [`MAX_TEXT_FILE`]. An object longer than uxwal ever stores for that size is
//! refused from its length alone, before its body is read, and decoding stops
//! at the recorded size: whatever an object holds, at most that many bytes
//! reach the destination, and a hostile object is reported corrupt (never as
//! absent).

// Parses data from outside: no indexing that could panic on it.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use super::{Blob, Object, Repository};
use crate::codec::trailer::MAX_TRAILER_LEN;
use crate::codec::{self, Check, CodecError, ReadError, StoredFormat, Trailer};
use crate::crypt::{self, Envelope, Identities};
use crate::error::{Error, Result};
use crate::wal::name::{is_valid_segment_size, WalName, MAX_SEGMENT_SIZE};

/// The largest `.history` or `.backup` file uxwal reads back. A backup history
/// file is a few hundred bytes; a timeline history file gains one line (under
/// 100 bytes plus the reason) per timeline: 1 MiB is thousands of timelines.
pub const MAX_TEXT_FILE: u64 = 1 << 20;

/// The original sizes a file of a given name may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeRule {
    /// A segment of an archive whose segment size is known.
    Exactly(u64),
    /// A segment of an archive whose segment size the caller does not know:
    /// one of the sizes PostgreSQL allows (a power of two, 1 MiB to 1 GiB).
    SegmentSize,
    /// A `.partial` (at most a segment), `.history` or `.backup` file.
    AtMost(u64),
}

impl SizeRule {
    /// The rule for `name` in an archive of `segment_size`-byte segments, when known.
    pub fn for_name(name: &WalName, segment_size: Option<u64>) -> SizeRule {
        match name {
            WalName::Segment(_) => segment_size.map_or(SizeRule::SegmentSize, SizeRule::Exactly),
            WalName::Partial(_) => SizeRule::AtMost(segment_size.unwrap_or(MAX_SEGMENT_SIZE)),
            WalName::History { .. } | WalName::Backup { .. } => SizeRule::AtMost(MAX_TEXT_FILE),
        }
    }

    /// The largest size the rule allows.
    pub fn max(self) -> u64 {
        match self {
            SizeRule::Exactly(n) | SizeRule::AtMost(n) => n,
            SizeRule::SegmentSize => MAX_SEGMENT_SIZE,
        }
    }

    /// `Err` says what the rule wanted when `size` breaks it.
    fn check(self, size: u64) -> std::result::Result<(), String> {
        match self {
            SizeRule::Exactly(n) if size != n => {
                Err(format!("a segment of this archive is {n} bytes"))
            }
            SizeRule::SegmentSize if !is_valid_segment_size(size) => {
                Err("that is not a WAL segment size".into())
            }
            SizeRule::AtMost(n) if size > n => {
                Err(format!("a file of this kind is at most {n} bytes"))
            }
            _ => Ok(()),
        }
    }
}

/// The longest object uxwal stores for an original of `original` bytes: every
/// codec's worst case (incompressible input) adds well under an eighth, plus
/// frame headers and the trailer. Anything longer was not written by uxwal.
pub fn max_stored_len(original: u64) -> u64 {
    original
        .saturating_add(original / 8)
        .saturating_add(64 * 1024 + MAX_TRAILER_LEN)
}

/// A stored object whose length and trailer have been checked against its
/// name; its body is read (once) by one of the consuming methods.
pub struct StoredObject<'r> {
    at: Place<'r>,
    reader: Box<dyn Blob>,
    format: StoredFormat,
    trailer: Trailer,
    payload_len: u64,
    /// The recipients an encrypted object names in its header.
    encrypted_to: Option<Vec<String>>,
}

/// Which object of which repository: what every error names.
struct Place<'r> {
    repo: &'r Repository,
    name: WalName,
    key: String,
    len: u64,
}

impl Repository {
    /// Opens the stored copy of `name` and checks its length and trailer against
    /// the name ([`SizeRule::for_name`] with `segment_size`, the archive's
    /// segment size when the caller knows it). `Ok(None)` only when the storage
    /// says the object does not exist. Reads the object's first and last bytes
    /// only (a local file; an object store's body is read by the consuming
    /// method), and nothing of an object whose length is implausible.
    pub fn open_stored(
        &self,
        name: &WalName,
        segment_size: Option<u64>,
    ) -> Result<Option<StoredObject<'_>>> {
        let key = Repository::key(name);
        let Some(mut obj) = self.get(&key)? else {
            return Ok(None);
        };
        let at = Place {
            repo: self,
            name: *name,
            key,
            len: obj.len,
        };
        let rule = SizeRule::for_name(name, segment_size);
        at.check_length(rule.max())?;
        let envelope = sealed(&mut obj.reader, obj.len).map_err(|e| at.read_error(e, None))?;
        if let Some(envelope) = &envelope {
            obj = at.open_sealed(obj, envelope, self.identities.as_deref())?;
        }
        let (format, trailer, payload_len) =
            codec::read_trailer(&mut obj.reader, obj.len).map_err(|e| at.read_error(e, None))?;
        rule.check(trailer.size).map_err(|rule| {
            at.corrupt(CodecError::SizeForName {
                size: trailer.size,
                rule,
            })
        })?;
        at.check_length(trailer.size)?;
        Ok(Some(StoredObject {
            at,
            reader: obj.reader,
            format,
            trailer,
            payload_len,
            encrypted_to: envelope.map(|e| e.recipients),
        }))
    }
}

impl StoredObject<'_> {
    /// What the archive recorded about the original file (already checked
    /// against the name).
    pub fn trailer(&self) -> &Trailer {
        &self.trailer
    }

    /// For an encrypted object, the recipients its header names (the header's
    /// MAC, checked on opening, covers them); `None` for a plain one.
    pub fn encrypted_to(&self) -> Option<&[String]> {
        self.encrypted_to.as_deref()
    }

    /// The stored object's length in bytes.
    pub fn stored_len(&self) -> u64 {
        self.at.len
    }

    /// Decodes the object into `out` (the file `dest`, for messages), checking
    /// its SHA-256 and size. At most the recorded size is written to `out`; on
    /// an error the caller must discard what was written.
    pub fn copy_to(self, out: &mut dyn Write, dest: &Path) -> Result<()> {
        self.decode(Check::Sha256, out, Some(dest))
    }

    /// [`StoredObject::copy_to`] without the SHA-256 check, for a caller that
    /// checks it itself later (the prefetch spool: the call that serves an entry
    /// hashes it anyway). The formats' own checksums and the size are checked.
    pub fn copy_unhashed_to(self, out: &mut dyn Write, dest: &Path) -> Result<()> {
        self.decode(Check::SizeOnly, out, Some(dest))
    }

    /// Decodes and verifies the whole object, keeping its first `keep` bytes:
    /// 0 to prove it intact, a page header's length for a segment, or all of a
    /// (bounded) `.history` / `.backup` file.
    pub fn read_head(self, keep: usize) -> Result<Vec<u8>> {
        let keep = keep.min(usize::try_from(self.trailer.size).unwrap_or(usize::MAX));
        let mut head = Head {
            keep,
            bytes: Vec::with_capacity(keep),
        };
        self.decode(Check::Sha256, &mut head, None)?;
        Ok(head.bytes)
    }

    fn decode(mut self, check: Check, out: &mut dyn Write, dest: Option<&Path>) -> Result<()> {
        let (format, len) = (self.format, self.payload_len);
        codec::decode(&mut self.reader, format, len, &self.trailer, check, out)
            .map_err(|e| self.at.read_error(e, dest))
    }
}

/// The envelope of an encrypted object (an age file; `docs/FORMAT.md`), or
/// `None` for a plain one. Reads at most the header's first bytes.
fn sealed(r: &mut Box<dyn Blob>, len: u64) -> std::result::Result<Option<Envelope>, ReadError> {
    let want = len.min(crypt::MAX_HEADER_LEN as u64);
    let mut head = Vec::with_capacity(crypt::AGE_MAGIC.len());
    r.seek(SeekFrom::Start(0))?;
    (&mut *r)
        .take(crypt::AGE_MAGIC.len() as u64)
        .read_to_end(&mut head)?;
    if !crypt::is_encrypted(&head) {
        return Ok(None);
    }
    (&mut *r)
        .take(want.saturating_sub(head.len() as u64))
        .read_to_end(&mut head)?;
    r.seek(SeekFrom::Start(0))?;
    crypt::read_envelope(&head)
        .map(Some)
        .map_err(|e| CodecError::Decrypt(e.to_string()).into())
}

/// The plaintext of an encrypted object, seekable, whose read errors of
/// authentication say that the object is damaged (not the storage).
struct Opened<R>(R);

impl<R: Read> Read for Opened<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf).map_err(damaged)
    }
}

impl<R: Seek> Seek for Opened<R> {
    fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
        self.0.seek(pos).map_err(damaged)
    }
}

/// age reports a chunk that fails authentication (altered, cut short) as
/// `InvalidData`; the storage's own errors keep their kinds.
fn damaged(e: io::Error) -> io::Error {
    if e.kind() == io::ErrorKind::InvalidData {
        io::Error::new(e.kind(), codec::DamagedSource(e.to_string()))
    } else {
        e
    }
}

impl Place<'_> {
    /// Decrypts `obj` with `identities`: the plaintext object, or why not.
    fn open_sealed(
        &self,
        obj: Object,
        envelope: &Envelope,
        identities: Option<&Identities>,
    ) -> Result<Object> {
        let no_identity = |have: Vec<String>| Error::NoIdentity {
            name: self.name.to_string(),
            recipients: envelope.recipients.clone(),
            have,
            mac: envelope.mac,
            stored_len: self.len,
        };
        let identities = identities.ok_or_else(|| no_identity(Vec::new()))?;
        let mut plain = match identities.decrypt(obj.reader) {
            Ok(plain) => Opened(plain),
            Err(age::DecryptError::NoMatchingKeys) => {
                return Err(no_identity(identities.recipients()))
            }
            Err(age::DecryptError::Io(e)) => return Err(self.read_error(e.into(), None)),
            Err(e) => return Err(self.corrupt(CodecError::Decrypt(e.to_string()))),
        };
        let len = plain
            .seek(SeekFrom::End(0))
            .map_err(|e| self.read_error(e.into(), None))?;
        Ok(Object {
            len,
            reader: Box::new(plain),
        })
    }

    fn corrupt(&self, source: CodecError) -> Error {
        Error::Corrupt {
            name: self.name.to_string(),
            source,
        }
    }

    /// Refuses an object longer than uxwal stores for `original` bytes.
    fn check_length(&self, original: u64) -> Result<()> {
        if self.len > max_stored_len(original) {
            return Err(self.corrupt(CodecError::StoredLength {
                len: self.len,
                original,
            }));
        }
        Ok(())
    }

    /// The one decision of whose failure a read error is: the object's
    /// (corrupt), the storage's, or the destination's.
    fn read_error(&self, e: ReadError, dest: Option<&Path>) -> Error {
        // An encrypted object's authentication failure, wherever it was met.
        let e = match e {
            ReadError::Io(e) => match codec::damaged_source(&e) {
                Some(why) => CodecError::Decrypt(why).into(),
                None => ReadError::Io(e),
            },
            other => other,
        };
        match (e, dest) {
            (ReadError::Codec(c), _) => self.corrupt(c),
            (ReadError::Io(source), _) => Error::Storage {
                location: self.repo.describe(),
                op: "read",
                key: self.key.clone(),
                source,
            },
            (ReadError::Output(source), Some(path)) => Error::Destination {
                path: path.to_path_buf(),
                source,
            },
            (ReadError::Output(e), None) => {
                Error::Internal(format!("keeping {} in memory failed: {e}", self.name))
            }
        }
    }
}

/// Keeps the first bytes written and counts the rest.
struct Head {
    keep: usize,
    bytes: Vec<u8>,
}

impl Write for Head {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.keep.saturating_sub(self.bytes.len()).min(buf.len());
        self.bytes.extend(buf.iter().take(room));
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{Compression, Encoder};
    use crate::repo::{Backend, Listed, Object, Staged};
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};
    use std::io::{Cursor, Read, Seek, SeekFrom};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::Arc;

    const MIB: u64 = 1 << 20;
    const SEGMENT: &str = "000000010000000000000003";

    /// A read-only repository holding one object, counting the bytes read from it.
    struct OneObject {
        key: String,
        body: Vec<u8>,
        read: Arc<AtomicU64>,
    }

    struct Counting(Cursor<Vec<u8>>, Arc<AtomicU64>);

    impl Read for Counting {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.0.read(buf)?;
            self.1.fetch_add(n as u64, Ordering::SeqCst);
            Ok(n)
        }
    }

    impl Seek for Counting {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.0.seek(pos)
        }
    }

    impl Backend for OneObject {
        fn describe(&self) -> String {
            "test".into()
        }
        fn stage(&self, _: &str) -> io::Result<Box<dyn Staged>> {
            Err(io::Error::other("read-only"))
        }
        fn get(&self, key: &str) -> io::Result<Option<Object>> {
            Ok((key == self.key).then(|| Object {
                len: self.body.len() as u64,
                reader: Box::new(Counting(Cursor::new(self.body.clone()), self.read.clone())),
            }))
        }
        fn stat(&self, key: &str) -> io::Result<Option<u64>> {
            Ok((key == self.key).then_some(self.body.len() as u64))
        }
        fn make_durable(&self, _: &str) -> io::Result<()> {
            Ok(())
        }
        fn list(&self, _: &str) -> io::Result<Vec<Listed>> {
            Ok(Vec::new())
        }
        fn delete(&self, keys: &[String]) -> Vec<io::Result<()>> {
            keys.iter().map(|_| Ok(())).collect()
        }
    }

    /// A repository holding `body` as the object of `name`, and its read counter.
    fn holding(name: &WalName, body: Vec<u8>) -> (Repository, Arc<AtomicU64>) {
        let read = Arc::new(AtomicU64::new(0));
        let backend = OneObject {
            key: Repository::key(name),
            body,
            read: read.clone(),
        };
        (Repository::with_backend(Box::new(backend)), read)
    }

    /// Stores `data` the way uxwal-archive does, with a trailer that claims
    /// `claimed` bytes (the SHA-256 of the first `claimed` bytes of `data`).
    fn stored(data: &[u8], c: Compression, claimed: u64) -> Vec<u8> {
        let head = &data[..claimed.min(data.len() as u64) as usize];
        let trailer = Trailer {
            sha256: Sha256::digest(head).into(),
            size: claimed,
        };
        let mut e = Encoder::new(Vec::new(), c, c.default_level()).unwrap();
        e.write_all(data).unwrap();
        e.finish(&trailer).unwrap()
    }

    fn segment() -> WalName {
        SEGMENT.parse().unwrap()
    }

    fn codec(which: u8) -> Compression {
        [Compression::None, Compression::Gzip, Compression::Zstd][which as usize]
    }

    fn corrupt_because(e: &Error) -> Option<&CodecError> {
        match e {
            Error::Corrupt { source, .. } => Some(source),
            _ => None,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(12))]

        #[test]
        fn a_hostile_object_is_corrupt_after_at_most_its_claimed_size(extra in 1u64..(2 * MIB), which in 0..3u8, hashed in any::<bool>()) {
            let data = vec![0u8; (MIB + extra) as usize];
            let (repo, _) = holding(&segment(), stored(&data, codec(which), MIB));
            let object = match repo.open_stored(&segment(), Some(MIB)) {
                Ok(object) => object.unwrap(),
                // Stored uncompressed, it is too long for 1 MiB: refused unread.
                Err(e) => {
                    prop_assert!(matches!(corrupt_because(&e), Some(CodecError::StoredLength { .. })), "{e}");
                    return Ok(());
                }
            };
            let mut out = Vec::new();
            let e = match hashed {
                true => object.copy_to(&mut out, Path::new("dest")),
                false => object.copy_unhashed_to(&mut out, Path::new("dest")),
            }
            .unwrap_err();
            prop_assert!(out.len() as u64 <= MIB, "{} bytes written", out.len());
            prop_assert!(matches!(corrupt_because(&e), Some(CodecError::TooLong { recorded }) if *recorded == MIB), "{e}");
        }

        #[test]
        fn damaged_objects_are_corrupt_never_absent(len in 1usize..50_000, which in 0..3u8, pos in any::<prop::sample::Index>(), flip in 1u8.., cut in any::<bool>()) {
            let name: WalName = "00000002.history".parse().unwrap();
            let data: Vec<u8> = (0..len).map(|i| (i % 7) as u8).collect();
            let mut body = stored(&data, codec(which), len as u64);
            let i = pos.index(body.len());
            match cut {
                true => body.truncate(i),
                false => body[i] ^= flip,
            }
            let (repo, _) = holding(&name, body);
            let read = repo
                .open_stored(&name, None)
                .and_then(|o| o.expect("present, never absent").read_head(usize::MAX));
            match read {
                Ok(text) => prop_assert!(!cut && text == data, "damage that decodes must be harmless"),
                Err(e) => prop_assert!(corrupt_because(&e).is_some(), "{e}"),
            }
        }
    }

    #[test]
    fn sizes_wrong_for_the_name_are_refused_before_the_body_is_read() {
        let two = stored(&vec![1u8; 2 * MIB as usize], Compression::Zstd, 2 * MIB);
        let (repo, read) = holding(&segment(), two.clone());
        // A 2 MiB segment in a 1 MiB archive: only the magic and the trailer read.
        let e = repo.open_stored(&segment(), Some(MIB)).err().unwrap();
        assert!(
            matches!(corrupt_because(&e), Some(CodecError::SizeForName { size, .. }) if *size == 2 * MIB),
            "{e}"
        );
        assert!(read.load(Ordering::SeqCst) <= 4 + MAX_TRAILER_LEN);
        // The same object is a fine segment where 2 MiB segments are the rule.
        let object = repo.open_stored(&segment(), None).unwrap().unwrap();
        assert_eq!(object.read_head(0).unwrap(), b"");

        // A trailer recording no segment size at all.
        let odd = stored(&[5u8; 1000], Compression::Gzip, 1000);
        let (repo, _) = holding(&segment(), odd);
        let e = repo.open_stored(&segment(), None).err().unwrap();
        assert!(
            matches!(corrupt_because(&e), Some(CodecError::SizeForName { .. })),
            "{e}"
        );

        // A history file of 3 MiB stored: refused from its length, nothing read.
        let history: WalName = "00000002.history".parse().unwrap();
        let (repo, read) = holding(&history, vec![0x28; 3 * MIB as usize]);
        let e = repo.open_stored(&history, None).err().unwrap();
        assert!(
            matches!(corrupt_because(&e), Some(CodecError::StoredLength { .. })),
            "{e}"
        );
        assert_eq!(read.load(Ordering::SeqCst), 0);

        // A history file whose trailer records more than a text file may hold.
        let big = stored(
            b"1\t0/3000000\tno recovery target specified\n",
            Compression::Zstd,
            2 * MIB,
        );
        let (repo, _) = holding(&history, big);
        let e = repo.open_stored(&history, None).err().unwrap();
        assert!(
            matches!(corrupt_because(&e), Some(CodecError::SizeForName { .. })),
            "{e}"
        );

        // A segment object far longer than any codec makes of 1 MiB.
        let mut padded = stored(&[0u8; MIB as usize], Compression::Zstd, MIB);
        padded.splice(4..4, vec![0u8; 2 * MIB as usize]);
        let (repo, read) = holding(&segment(), padded);
        let e = repo.open_stored(&segment(), Some(MIB)).err().unwrap();
        assert!(
            matches!(corrupt_because(&e), Some(CodecError::StoredLength { .. })),
            "{e}"
        );
        assert_eq!(read.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn an_intact_object_reads_back_and_an_absent_one_is_none() {
        let data = b"START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n".to_vec();
        let name: WalName = "000000010000000000000002.00000028.backup".parse().unwrap();
        let (repo, _) = holding(&name, stored(&data, Compression::Gzip, data.len() as u64));
        let object = repo.open_stored(&name, Some(MIB)).unwrap().unwrap();
        assert_eq!(object.trailer().size, data.len() as u64);
        assert_eq!(object.read_head(usize::MAX).unwrap(), data);
        assert!(repo.open_stored(&segment(), None).unwrap().is_none());
        assert_eq!(
            SizeRule::for_name(&"000000010000000000000002.partial".parse().unwrap(), None),
            SizeRule::AtMost(MAX_SEGMENT_SIZE)
        );
    }
}
