//! Stored formats of archived files: the compressed bytes followed by a trailer
//! that records the SHA-256 and size of the original file.
//!
//! Every stored object stays readable with standard tools if uxwal is gone
//! (`docs/FORMAT.md`): `zstd` objects (and `none`, which is a zstd frame made of
//! uncompressed "raw" blocks) end with a zstd *skippable frame*, which `zstd -d`
//! ignores; `gzip` objects end with an empty gzip member whose header comment holds
//! the checksum, which `gunzip` turns into zero bytes ([`trailer`]). Compression
//! streams: the source is read once, and hashed ([`digest`]) and compressed in the
//! same pass.
//!
//! Decoding is bounded: at most the size the trailer records ever comes out of
//! [`decode`], whatever the stored bytes say; an
//! object that would decode to more is refused ([`CodecError::TooLong`]) at that
//! point. Errors are sorted as they happen: the storage's own read errors
//! ([`ReadError::Io`]), damaged content ([`ReadError::Codec`]) and the output's
//! errors ([`ReadError::Output`]) never mix.

pub mod digest;
pub mod trailer;

pub use trailer::{read_trailer, StoredFormat, Trailer};

use std::fmt;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::str::FromStr;

use trailer::{gzip_trailer, zstd_trailer, ZSTD_MAGIC};

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

/// Formats the 32 bytes of a SHA-256 as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

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
    /// More comes out than the trailer records: decoding stopped there.
    #[error("stored object decodes to more than the {recorded} bytes its trailer records")]
    TooLong { recorded: u64 },
    /// The trailer records a size no file of this name can have.
    #[error("its trailer records {size} bytes, but {rule}")]
    SizeForName { size: u64, rule: String },
    /// The object is longer than any codec makes of the largest file its name allows.
    #[error("stored object is {len} bytes, more than uxwal stores for {original} bytes")]
    StoredLength { len: u64, original: u64 },
    /// An encrypted object failed to decrypt: altered, cut short, or not an
    /// age file after all.
    #[error("decryption failed: {0}")]
    Decrypt(String),
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

/// What a decode checks besides the formats' own checksums (zstd's content
/// checksum, gzip's CRC-32) and the size, which are always checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// The SHA-256 of what comes out, computed on a second thread
    /// ([`digest::hash_alongside`]).
    Sha256,
    /// Not the SHA-256: for a caller that checks it later itself (the prefetch
    /// spool: the call that serves an entry hashes it anyway).
    SizeOnly,
}

/// Decompresses the payload (`payload_len` bytes from offset 0 of `r`) into `out`
/// and checks what comes out against `trailer` as `check` says. At most
/// `trailer.size` bytes ever reach `out`.
pub fn decode<R: Read + Seek + ?Sized>(
    r: &mut R,
    format: StoredFormat,
    payload_len: u64,
    trailer: &Trailer,
    check: Check,
    out: &mut dyn Write,
) -> Result<(), ReadError> {
    let mut decoded = decoder(r, format, payload_len, trailer.size)?;
    if check == Check::Sha256 {
        let (actual, written) =
            digest::hash_alongside(&mut decoded, Vec::new(), &mut |chunk| out.write_all(chunk))
                .map_err(|e| match e {
                    digest::PumpError::Read(e) => classify(e),
                    digest::PumpError::Consume(e) => ReadError::Output(e),
                })?;
        return check_decoded(trailer, Some(actual), written);
    }
    let mut block = vec![0u8; digest::CHUNK];
    let mut written = 0;
    loop {
        let n = digest::read_full(&mut decoded, &mut block).map_err(classify)?;
        if n == 0 {
            break;
        }
        out.write_all(&block[..n]).map_err(ReadError::Output)?;
        written += n as u64;
    }
    check_decoded(trailer, None, written)
}

/// Compares what a decode produced (`written` bytes, and their SHA-256 when it
/// was computed) with what the trailer records.
fn check_decoded(
    trailer: &Trailer,
    sha256: Option<[u8; 32]>,
    written: u64,
) -> Result<(), ReadError> {
    if written == trailer.size && sha256.is_none_or(|h| h == trailer.sha256) {
        return Ok(());
    }
    Err(CodecError::Mismatch {
        recorded: trailer.sha256_hex(),
        recorded_size: trailer.size,
        actual: sha256.map_or_else(|| "not computed".into(), |h| hex(&h)),
        actual_size: written,
    }
    .into())
}

/// The decoder of `format` over the payload of `r`, yielding at most `limit`
/// bytes ([`Bounded`]). Errors of `r` itself come out tagged ([`SourceError`]).
fn decoder<'a, R: Read + Seek + ?Sized>(
    r: &'a mut R,
    format: StoredFormat,
    payload_len: u64,
    limit: u64,
) -> Result<Bounded<Box<dyn Read + 'a>>, ReadError> {
    r.seek(SeekFrom::Start(0))?;
    let payload = io::BufReader::with_capacity(256 * 1024, TaggedSource(r.take(payload_len)));
    let inner: Box<dyn Read + 'a> = match format {
        StoredFormat::Zstd => {
            Box::new(zstd::stream::read::Decoder::with_buffer(payload).map_err(CodecError::Decode)?)
        }
        StoredFormat::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(payload)),
    };
    Ok(Bounded {
        inner,
        left: limit,
        limit,
    })
}

/// An error of a stored object's reader that means the stored bytes are
/// damaged, not that the storage failed (an encrypted chunk that fails
/// authentication).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DamagedSource(pub String);

/// What a [`DamagedSource`] error says, if `e` is one (also as the
/// decoder's source error).
pub(crate) fn damaged_source(e: &io::Error) -> Option<String> {
    let direct = |e: &io::Error| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<DamagedSource>())
            .map(|d| d.0.clone())
    };
    direct(e).or_else(|| {
        e.get_ref()
            .and_then(|inner| inner.downcast_ref::<SourceError>())
            .and_then(|source| direct(&source.0))
    })
}

/// Sorts an error of reading decoded bytes: the storage's own, the bound, or damage.
fn classify(e: io::Error) -> ReadError {
    if let Some(why) = damaged_source(&e) {
        return CodecError::Decrypt(why).into();
    }
    if e.get_ref().is_some_and(|inner| inner.is::<SourceError>()) {
        let kind = e.kind();
        return match e.into_inner().map(|inner| inner.downcast::<SourceError>()) {
            Some(Ok(source)) => ReadError::Io(source.0),
            // Checked just above; kept as the storage's error of the same kind.
            _ => ReadError::Io(kind.into()),
        };
    }
    if let Some(TooLong(recorded)) = e.get_ref().and_then(|inner| inner.downcast_ref()) {
        return CodecError::TooLong {
            recorded: *recorded,
        }
        .into();
    }
    CodecError::Decode(e).into()
}

/// An error of the stored object's reader (the storage), tagged so that it is
/// reported as such and not as damaged stored data.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct SourceError(io::Error);

/// Tags every error of the reader it wraps as a [`SourceError`].
struct TaggedSource<R>(R);

impl<R: Read> Read for TaggedSource<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0
            .read(buf)
            .map_err(|e| io::Error::new(e.kind(), SourceError(e)))
    }
}

/// The decoded stream went past the size its trailer records.
#[derive(Debug, thiserror::Error)]
#[error("decodes to more than the {0} bytes its trailer records")]
struct TooLong(u64);

/// Yields at most `limit` bytes of `inner`; fails with [`TooLong`] as soon as
/// `inner` has even one byte more, so a decompression bomb stops at the size its
/// trailer claims instead of filling the disk.
struct Bounded<R> {
    inner: R,
    left: u64,
    limit: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        if self.left == 0 {
            let mut probe = [0u8; 1];
            return match digest::read_full(&mut self.inner, &mut probe)? {
                0 => Ok(0),
                _ => Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    TooLong(self.limit),
                )),
            };
        }
        let room = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..room])?;
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};
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

    fn decode_all(stored: &[u8]) -> Result<Vec<u8>, ReadError> {
        let mut r = Cursor::new(stored);
        let (format, trailer, payload) = read_trailer(&mut r, stored.len() as u64)?;
        let mut out = Vec::new();
        super::decode(&mut r, format, payload, &trailer, Check::Sha256, &mut out)?;
        Ok(out)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn round_trip_every_codec(data in proptest::collection::vec(any::<u8>(), 0..300_000), which in 0..3u8, repeat in any::<bool>()) {
            let data = if repeat { data.iter().cycle().take(data.len() * 3).copied().collect() } else { data };
            let c = [Compression::None, Compression::Gzip, Compression::Zstd][which as usize];
            let stored = encode(&data, c, c.default_level());
            prop_assert_eq!(decode_all(&stored).unwrap(), data);
        }

        #[test]
        fn damaged_objects_never_decode_to_wrong_content(data in proptest::collection::vec(any::<u8>(), 1..20_000), which in 0..3u8, pos in any::<prop::sample::Index>(), flip in 1u8..) {
            let c = [Compression::None, Compression::Gzip, Compression::Zstd][which as usize];
            let mut stored = encode(&data, c, c.default_level());
            let i = pos.index(stored.len());
            stored[i] ^= flip;
            if let Ok(out) = decode_all(&stored) {
                prop_assert_eq!(out, data);
            }
        }

        #[test]
        fn truncated_objects_are_refused(data in proptest::collection::vec(any::<u8>(), 1..20_000), which in 0..3u8, cut in any::<prop::sample::Index>()) {
            let c = [Compression::None, Compression::Gzip, Compression::Zstd][which as usize];
            let stored = encode(&data, c, c.default_level());
            let keep = cut.index(stored.len());
            prop_assert!(decode_all(&stored[..keep]).is_err());
        }
    }

    /// An object whose trailer claims `claimed` bytes but whose stream holds `data`.
    fn encode_claiming(data: &[u8], c: Compression, claimed: u64) -> Vec<u8> {
        let trailer = Trailer {
            sha256: Sha256::digest(&data[..claimed.min(data.len() as u64) as usize]).into(),
            size: claimed,
        };
        let mut e = Encoder::new(Vec::new(), c, c.default_level()).unwrap();
        e.write_all(data).unwrap();
        e.finish(&trailer).unwrap()
    }

    /// Counts what reaches it.
    struct Counted(u64);
    impl Write for Counted {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len() as u64;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn decode_counting(stored: &[u8], hashed: bool) -> (Result<(), ReadError>, u64) {
        let mut r = Cursor::new(stored);
        let (format, trailer, payload) = read_trailer(&mut r, stored.len() as u64).unwrap();
        let mut out = Counted(0);
        let result = if hashed {
            super::decode(&mut r, format, payload, &trailer, Check::Sha256, &mut out)
        } else {
            super::decode(&mut r, format, payload, &trailer, Check::SizeOnly, &mut out)
        };
        (result, out.0)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(48))]

        #[test]
        fn objects_that_decode_to_more_than_their_trailer_stop_there(len in 1usize..600_000, claimed in any::<prop::sample::Index>(), which in 0..3u8, hashed in any::<bool>()) {
            let c = [Compression::None, Compression::Gzip, Compression::Zstd][which as usize];
            let data: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let claimed = claimed.index(len) as u64;
            let stored = encode_claiming(&data, c, claimed);
            let (result, written) = decode_counting(&stored, hashed);
            prop_assert!(written <= claimed, "{written} bytes written, {claimed} claimed");
            prop_assert!(
                matches!(result, Err(ReadError::Codec(CodecError::TooLong { recorded })) if recorded == claimed),
                "{result:?}"
            );
        }

        #[test]
        fn objects_that_decode_to_less_than_their_trailer_are_refused(len in 0usize..100_000, more in 1u64..1_000_000, which in 0..3u8, hashed in any::<bool>()) {
            let c = [Compression::None, Compression::Gzip, Compression::Zstd][which as usize];
            let data = vec![3u8; len];
            let stored = encode_claiming(&data, c, len as u64 + more);
            let (result, written) = decode_counting(&stored, hashed);
            prop_assert_eq!(written, len as u64);
            prop_assert!(matches!(result, Err(ReadError::Codec(CodecError::Mismatch { .. }))), "{result:?}");
        }
    }

    #[test]
    fn a_decompression_bomb_stops_at_its_claimed_size() {
        // 256 MiB of zeros compress to a few KiB; the trailer claims 1 MiB.
        let claimed = 1u64 << 20;
        let trailer = Trailer {
            sha256: [0; 32],
            size: claimed,
        };
        let mut e = Encoder::new(Vec::new(), Compression::Zstd, 19).unwrap();
        let zeros = vec![0u8; 1 << 20];
        for _ in 0..256 {
            e.write_all(&zeros).unwrap();
        }
        let stored = e.finish(&trailer).unwrap();
        assert!(stored.len() < 64 * 1024, "{} bytes", stored.len());
        for hashed in [true, false] {
            let (result, written) = decode_counting(&stored, hashed);
            assert!(written <= claimed);
            assert!(matches!(
                result,
                Err(ReadError::Codec(CodecError::TooLong { .. }))
            ));
        }
    }

    #[test]
    fn storage_errors_are_not_damage_and_output_errors_are_the_output() {
        // Incompressible, so that decoding reads the object in several calls.
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..3 << 20)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        let stored = encode(&noise, Compression::Zstd, 1);
        /// Fails every read after the first `ok` bytes.
        struct FailingAfter(Cursor<Vec<u8>>, u64);
        impl Read for FailingAfter {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.0.position() >= self.1 {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "storage stalled"));
                }
                self.0.read(buf)
            }
        }
        impl Seek for FailingAfter {
            fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
                self.0.seek(pos)
            }
        }
        let len = stored.len() as u64;
        let mut r = Cursor::new(stored.clone());
        let (format, trailer, payload) = read_trailer(&mut r, len).unwrap();
        let mut failing = FailingAfter(Cursor::new(stored.clone()), 1 << 20);
        let e = super::decode(
            &mut failing,
            format,
            payload,
            &trailer,
            Check::Sha256,
            &mut io::sink(),
        );
        assert!(
            matches!(&e, Err(ReadError::Io(e)) if e.kind() == io::ErrorKind::TimedOut),
            "{e:?}"
        );
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        for hashed in [true, false] {
            let e = if hashed {
                super::decode(&mut r, format, payload, &trailer, Check::Sha256, &mut Full)
            } else {
                super::decode(
                    &mut r,
                    format,
                    payload,
                    &trailer,
                    Check::SizeOnly,
                    &mut Full,
                )
            };
            assert!(matches!(e, Err(ReadError::Output(_))), "{e:?}");
        }
    }
}
