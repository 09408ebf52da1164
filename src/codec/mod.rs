//! Stored formats of archived files: the compressed bytes followed by a trailer
//! that records the SHA-256 and size of the original file.
//!
//! Every stored object stays readable with standard tools if uxwal is gone
//! (`docs/FORMAT.md`): `zstd` objects (and `none`, which is a zstd frame made of
//! uncompressed "raw" blocks) end with a zstd *skippable frame*, which `zstd -d`
//! ignores; `gzip` objects end with an empty gzip member whose header comment holds
//! the checksum, which `gunzip` turns into zero bytes. Compression streams: the
//! source is read once, and hashed and compressed in the same pass.

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::str::FromStr;

use sha2::{Digest, Sha256};

/// How `uxwal-archive` stores a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// Uncompressed bytes in a zstd frame of raw blocks (`zstd -d` restores them).
    None,
    /// gzip (deflate); `gunzip` restores it.
    Gzip,
    /// Zstandard; `zstd -d` restores it.
    Zstd,
}

impl Compression {
    /// The level used when none is given: chosen from `bench/archive-bench` (see README).
    pub fn default_level(self) -> i32 {
        match self {
            Compression::None => 0,
            Compression::Gzip => 6,
            Compression::Zstd => 1,
        }
    }

    /// The levels this codec accepts.
    pub fn level_range(self) -> std::ops::RangeInclusive<i32> {
        match self {
            Compression::None => 0..=0,
            Compression::Gzip => 1..=9,
            Compression::Zstd => 1..=19,
        }
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        })
    }
}

impl FromStr for Compression {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Self as clap::ValueEnum>::from_str(s, false)
    }
}

/// What the archive recorded about the original file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trailer {
    pub sha256: [u8; 32],
    pub size: u64,
}

impl Trailer {
    pub fn sha256_hex(&self) -> String {
        hex(&self.sha256)
    }
}

/// Formats the 32 bytes of a SHA-256 as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
const GZIP_MAGIC: [u8; 2] = [0x1F, 0x8B];
/// Skippable frame magic 0x184D2A5E (any of 0x184D2A50..=0x184D2A5F is skippable).
const SKIPPABLE_MAGIC: u32 = 0x184D_2A5E;
const TRAILER_TAG: &[u8; 8] = b"UXWALSUM";
const ZSTD_TRAILER_PAYLOAD: usize = 8 + 32 + 8;
const ZSTD_TRAILER_LEN: usize = 8 + ZSTD_TRAILER_PAYLOAD;
const GZIP_COMMENT_PREFIX: &str = "uxwal-sum sha256=";
/// gzip header (10) + comment ("uxwal-sum sha256=" 17 + 64 hex + " size=" 6 + 16 hex + NUL) +
/// empty deflate block (2) + CRC32 (4) + ISIZE (4).
const GZIP_TRAILER_LEN: usize = 10 + 17 + 64 + 6 + 16 + 1 + 2 + 4 + 4;

/// Why a stored object cannot be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("stored object is {0} bytes: too short to hold a uxwal trailer")]
    TooShort(u64),
    #[error("stored object is neither zstd nor gzip (starts with {0})")]
    UnknownFormat(String),
    #[error(
        "stored object has no valid uxwal checksum trailer (truncated or not written by uxwal)"
    )]
    NoTrailer,
    #[error("decompression failed: {0}")]
    Decode(io::Error),
    #[error("content does not match the recorded checksum: recorded {recorded} ({recorded_size} bytes), got {actual} ({actual_size} bytes)")]
    Mismatch {
        recorded: String,
        recorded_size: u64,
        actual: String,
        actual_size: u64,
    },
}

/// A writer that compresses into `W`; `finish` appends the trailer and returns `W`.
pub struct Encoder<W: Write> {
    inner: Inner<W>,
}

enum Inner<W: Write> {
    Raw(RawFrameWriter<W>),
    Gzip(flate2::write::GzEncoder<W>),
    Zstd(zstd::stream::write::Encoder<'static, W>),
}

impl<W: Write> Encoder<W> {
    pub fn new(out: W, compression: Compression, level: i32) -> io::Result<Self> {
        let inner = match compression {
            Compression::None => Inner::Raw(RawFrameWriter::new(out)),
            Compression::Gzip => Inner::Gzip(flate2::write::GzEncoder::new(
                out,
                flate2::Compression::new(level as u32),
            )),
            Compression::Zstd => {
                let mut z = zstd::stream::write::Encoder::new(out, level)?;
                // zstd's own content checksum lets `zstd -d` detect damage without uxwal.
                z.include_checksum(true)?;
                Inner::Zstd(z)
            }
        };
        Ok(Encoder { inner })
    }

    /// Ends the compressed stream, appends the trailer and returns the writer.
    pub fn finish(self, trailer: &Trailer) -> io::Result<W> {
        match self.inner {
            Inner::Raw(w) => {
                let mut out = w.finish()?;
                out.write_all(&zstd_trailer(trailer))?;
                Ok(out)
            }
            Inner::Zstd(z) => {
                let mut out = z.finish()?;
                out.write_all(&zstd_trailer(trailer))?;
                Ok(out)
            }
            Inner::Gzip(g) => {
                let mut out = g.finish()?;
                out.write_all(&gzip_trailer(trailer))?;
                Ok(out)
            }
        }
    }
}

impl<W: Write> Write for Encoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match &mut self.inner {
            Inner::Raw(w) => w.write(buf),
            Inner::Gzip(w) => w.write(buf),
            Inner::Zstd(w) => w.write(buf),
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        match &mut self.inner {
            Inner::Raw(w) => w.flush(),
            Inner::Gzip(w) => w.flush(),
            Inner::Zstd(w) => w.flush(),
        }
    }
}

fn zstd_trailer(t: &Trailer) -> [u8; ZSTD_TRAILER_LEN] {
    let mut b = [0u8; ZSTD_TRAILER_LEN];
    b[0..4].copy_from_slice(&SKIPPABLE_MAGIC.to_le_bytes());
    b[4..8].copy_from_slice(&(ZSTD_TRAILER_PAYLOAD as u32).to_le_bytes());
    b[8..16].copy_from_slice(TRAILER_TAG);
    b[16..48].copy_from_slice(&t.sha256);
    b[48..56].copy_from_slice(&t.size.to_le_bytes());
    b
}

fn parse_zstd_trailer(b: &[u8]) -> Option<Trailer> {
    let ok = b.len() == ZSTD_TRAILER_LEN
        && b[0..4] == SKIPPABLE_MAGIC.to_le_bytes()
        && b[4..8] == (ZSTD_TRAILER_PAYLOAD as u32).to_le_bytes()
        && &b[8..16] == TRAILER_TAG;
    ok.then(|| Trailer {
        sha256: b[16..48].try_into().expect("32 bytes"),
        size: u64::from_le_bytes(b[48..56].try_into().expect("8 bytes")),
    })
}

fn gzip_trailer(t: &Trailer) -> Vec<u8> {
    // FLG = FCOMMENT, MTIME 0, XFL 0, OS 255 (unknown).
    let mut b = vec![0x1F, 0x8B, 8, 0x10, 0, 0, 0, 0, 0, 0xFF];
    b.extend_from_slice(
        format!(
            "{GZIP_COMMENT_PREFIX}{} size={:016x}\0",
            t.sha256_hex(),
            t.size
        )
        .as_bytes(),
    );
    // An empty final stored-as-fixed deflate block, CRC32 of nothing, ISIZE 0.
    b.extend_from_slice(&[0x03, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]);
    debug_assert_eq!(b.len(), GZIP_TRAILER_LEN);
    b
}

fn parse_gzip_trailer(b: &[u8]) -> Option<Trailer> {
    let expected_head = [0x1F, 0x8B, 8, 0x10, 0, 0, 0, 0, 0, 0xFF];
    if b.len() != GZIP_TRAILER_LEN
        || b[..10] != expected_head
        || b[b.len() - 10..] != [3, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    {
        return None;
    }
    let comment = std::str::from_utf8(&b[10..b.len() - 11]).ok()?;
    let rest = comment.strip_prefix(GZIP_COMMENT_PREFIX)?;
    let (sha, size) = rest.split_once(" size=")?;
    if sha.len() != 64 || size.len() != 16 || b[b.len() - 11] != 0 {
        return None;
    }
    let mut sha256 = [0u8; 32];
    for (i, out) in sha256.iter_mut().enumerate() {
        *out = u8::from_str_radix(sha.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(Trailer {
        sha256,
        size: u64::from_str_radix(size, 16).ok()?,
    })
}

/// Writes a zstd frame of uncompressed ("raw") blocks: the `none` codec.
///
/// Frame header: magic, descriptor 0x00 (no content size, no checksum), window
/// descriptor 0x38 (128 KiB = the largest block). Each block: a 3-byte header
/// (last flag, type 0 = raw, size) and the bytes themselves.
struct RawFrameWriter<W: Write> {
    out: W,
    block: Vec<u8>,
    started: bool,
}

const RAW_BLOCK_MAX: usize = 128 * 1024;

impl<W: Write> RawFrameWriter<W> {
    fn new(out: W) -> Self {
        RawFrameWriter {
            out,
            block: Vec::with_capacity(RAW_BLOCK_MAX),
            started: false,
        }
    }

    fn emit(&mut self, last: bool) -> io::Result<()> {
        if !self.started {
            self.out.write_all(&ZSTD_MAGIC)?;
            self.out.write_all(&[0x00, 0x38])?;
            self.started = true;
        }
        let header = ((self.block.len() as u32) << 3) | u32::from(last);
        self.out.write_all(&header.to_le_bytes()[..3])?;
        self.out.write_all(&self.block)?;
        self.block.clear();
        Ok(())
    }

    fn finish(mut self) -> io::Result<W> {
        self.emit(true)?;
        Ok(self.out)
    }
}

impl<W: Write> Write for RawFrameWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.block.len() == RAW_BLOCK_MAX {
            self.emit(false)?;
        }
        let n = buf.len().min(RAW_BLOCK_MAX - self.block.len());
        self.block.extend_from_slice(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// The stored format of an object, known from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoredFormat {
    Zstd,
    Gzip,
}

impl StoredFormat {
    fn trailer_len(self) -> usize {
        match self {
            StoredFormat::Zstd => ZSTD_TRAILER_LEN,
            StoredFormat::Gzip => GZIP_TRAILER_LEN,
        }
    }
}

/// Reads the format and trailer of a stored object of `len` bytes.
/// Returns them with the length of the compressed payload before the trailer.
pub fn read_trailer<R: Read + Seek>(
    r: &mut R,
    len: u64,
) -> Result<(StoredFormat, Trailer, u64), ReadError> {
    let mut magic = [0u8; 4];
    let head_len = len.min(4) as usize;
    r.seek(SeekFrom::Start(0))?;
    r.read_exact(&mut magic[..head_len])?;
    let format = if magic == ZSTD_MAGIC {
        StoredFormat::Zstd
    } else if magic[..2] == GZIP_MAGIC {
        StoredFormat::Gzip
    } else if len < 4 {
        return Err(CodecError::TooShort(len).into());
    } else {
        return Err(CodecError::UnknownFormat(hex(&magic[..head_len])).into());
    };
    let tlen = format.trailer_len() as u64;
    if len < tlen + 4 {
        return Err(CodecError::TooShort(len).into());
    }
    let mut tail = vec![0u8; tlen as usize];
    r.seek(SeekFrom::Start(len - tlen))?;
    r.read_exact(&mut tail)?;
    let trailer = match format {
        StoredFormat::Zstd => parse_zstd_trailer(&tail),
        StoredFormat::Gzip => parse_gzip_trailer(&tail),
    }
    .ok_or(CodecError::NoTrailer)?;
    Ok((format, trailer, len - tlen))
}

/// Reading a stored object failed: the storage (I/O) or the content (codec).
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Io(#[from] io::Error),
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Writing the decoded bytes failed (the destination, not the stored object).
    #[error("{0}")]
    Output(io::Error),
}

/// Decompresses the payload (`payload_len` bytes from offset 0 of `r`) into `out`,
/// hashing what comes out, and checks it against `trailer`.
pub fn decode_verified<R: Read + Seek, W: Write>(
    r: &mut R,
    format: StoredFormat,
    payload_len: u64,
    trailer: &Trailer,
    out: &mut W,
) -> Result<(), ReadError> {
    // SHA-256 costs about as much as decompressing and writing together, so it
    // runs on a second thread, fed in batches of decoded bytes.
    let (decoded, actual) = std::thread::scope(|scope| {
        let (to_hasher, batches) = std::sync::mpsc::sync_channel::<Vec<u8>>(4);
        let hasher = scope.spawn(move || {
            let mut h = Sha256::new();
            for batch in batches {
                h.update(&batch);
            }
            <[u8; 32]>::from(h.finalize())
        });
        let mut sink = HashingWriter {
            out,
            batch: Vec::with_capacity(HASH_BATCH),
            to_hasher,
        };
        let decoded = decode_into(r, format, payload_len, &mut sink).and_then(|written| {
            sink.send_batch()
                .map(|()| written)
                .map_err(|e| CodecError::Decode(e).into())
        });
        drop(sink);
        let actual = hasher.join().expect("hashing thread does not panic");
        (decoded, actual)
    });
    let written = decoded?;
    if actual != trailer.sha256 || written != trailer.size {
        return Err(CodecError::Mismatch {
            recorded: trailer.sha256_hex(),
            recorded_size: trailer.size,
            actual: hex(&actual),
            actual_size: written,
        }
        .into());
    }
    Ok(())
}

/// Decompresses the payload (`payload_len` bytes from offset 0 of `r`) into `out`
/// without hashing it, for a caller that checks the SHA-256 later itself (the
/// prefetch spool: the call that uses an entry hashes it anyway). The formats'
/// own checksums (zstd's content checksum, gzip's CRC-32) are still checked.
/// Returns the number of bytes written.
pub fn decode_into<R: Read + Seek, W: Write>(
    r: &mut R,
    format: StoredFormat,
    payload_len: u64,
    out: &mut W,
) -> Result<u64, ReadError> {
    r.seek(SeekFrom::Start(0))?;
    let payload = io::BufReader::with_capacity(256 * 1024, r.take(payload_len));
    let mut sink = TaggedOutput(out);
    let copied = match format {
        StoredFormat::Zstd => zstd::stream::read::Decoder::with_buffer(payload)
            .and_then(|mut d| copy_in_blocks(&mut d, &mut sink)),
        StoredFormat::Gzip => copy_in_blocks(
            &mut flate2::bufread::MultiGzDecoder::new(payload),
            &mut sink,
        ),
    };
    // Errors of the output are tagged (ours: a local file); anything else is the
    // stored data.
    copied.map_err(|e| {
        if e.get_ref().is_some_and(|inner| inner.is::<OutputError>()) {
            ReadError::Output(e)
        } else {
            CodecError::Decode(e).into()
        }
    })
}
/// `io::copy` in [`DECODE_BLOCK`]-sized writes: its own 8 KiB buffer makes
/// 2048 system calls of a 16 MiB segment, which cost more than the copying.
fn copy_in_blocks<R: Read, W: Write>(r: &mut R, w: &mut W) -> io::Result<u64> {
    let mut block = vec![0u8; DECODE_BLOCK];
    let mut total = 0;
    loop {
        let n = match r.read(&mut block) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&block[..n])?;
        total += n as u64;
    }
}

/// Decoded bytes written at a time.
const DECODE_BLOCK: usize = 256 * 1024;

/// Bytes handed to the hashing thread at a time.
const HASH_BATCH: usize = 1 << 20;

struct HashingWriter<'a, W: Write> {
    out: &'a mut W,
    /// Decoded bytes written out but not yet handed to the hasher.
    batch: Vec<u8>,
    to_hasher: std::sync::mpsc::SyncSender<Vec<u8>>,
}

impl<W: Write> HashingWriter<'_, W> {
    fn send_batch(&mut self) -> io::Result<()> {
        let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(HASH_BATCH));
        self.to_hasher
            .send(batch)
            .map_err(|_| io::Error::other("hashing thread stopped"))
    }
}

impl<W: Write> Write for HashingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.batch.extend_from_slice(&buf[..n]);
        if self.batch.len() >= HASH_BATCH {
            self.send_batch()?;
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// An error of the output, tagged so that it is reported as local I/O and not as
/// damaged stored data.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct OutputError(io::Error);

/// Tags every error of the writer it wraps as an [`OutputError`].
struct TaggedOutput<'a, W: Write>(&'a mut W);

impl<W: Write> Write for TaggedOutput<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .write(buf)
            .map_err(|e| io::Error::new(e.kind(), OutputError(e)))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0
            .flush()
            .map_err(|e| io::Error::new(e.kind(), OutputError(e)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::io::Cursor;

    fn encode(data: &[u8], c: Compression, level: i32) -> Vec<u8> {
        let trailer = Trailer {
            sha256: Sha256::digest(data).into(),
            size: data.len() as u64,
        };
        let mut e = Encoder::new(Vec::new(), c, level).unwrap();
        e.write_all(data).unwrap();
        e.finish(&trailer).unwrap()
    }

    fn decode(stored: &[u8]) -> Result<Vec<u8>, ReadError> {
        let mut r = Cursor::new(stored);
        let (format, trailer, payload) = read_trailer(&mut r, stored.len() as u64)?;
        let mut out = Vec::new();
        decode_verified(&mut r, format, payload, &trailer, &mut out)?;
        Ok(out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip_every_codec(data in proptest::collection::vec(any::<u8>(), 0..300_000), which in 0..3u8, repeat in any::<bool>()) {
            let data = if repeat { data.iter().cycle().take(data.len() * 3).copied().collect() } else { data };
            let c = [Compression::None, Compression::Gzip, Compression::Zstd][which as usize];
            let stored = encode(&data, c, c.default_level());
            prop_assert_eq!(decode(&stored).unwrap(), data);
        }

        #[test]
        fn damaged_objects_never_decode_to_wrong_content(data in proptest::collection::vec(any::<u8>(), 1..20_000), which in 0..3u8, pos in any::<prop::sample::Index>(), flip in 1u8..) {
            let c = [Compression::None, Compression::Gzip, Compression::Zstd][which as usize];
            let mut stored = encode(&data, c, c.default_level());
            let i = pos.index(stored.len());
            stored[i] ^= flip;
            if let Ok(out) = decode(&stored) {
                prop_assert_eq!(out, data);
            }
        }

        #[test]
        fn truncated_objects_are_refused(data in proptest::collection::vec(any::<u8>(), 1..20_000), which in 0..3u8, cut in any::<prop::sample::Index>()) {
            let c = [Compression::None, Compression::Gzip, Compression::Zstd][which as usize];
            let stored = encode(&data, c, c.default_level());
            let keep = cut.index(stored.len());
            prop_assert!(decode(&stored[..keep]).is_err());
        }
    }

    #[test]
    fn trailers_have_fixed_sizes() {
        let t = Trailer {
            sha256: [0xAB; 32],
            size: 16 << 20,
        };
        assert_eq!(gzip_trailer(&t).len(), GZIP_TRAILER_LEN);
        assert_eq!(parse_gzip_trailer(&gzip_trailer(&t)), Some(t));
        assert_eq!(parse_zstd_trailer(&zstd_trailer(&t)), Some(t));
    }
}
