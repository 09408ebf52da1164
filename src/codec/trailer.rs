//! The trailer of a stored object: the SHA-256 and size of the original file,
//! after the compressed bytes, in a form the format's own tools skip
//! (`docs/FORMAT.md`). Fixed length per format, so a reader finds it from the
//! object's length alone, before decompressing anything.

// Parses data from outside: no indexing that could panic on it.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use std::io::{Read, Seek, SeekFrom};

use super::{hex, CodecError, ReadError};
use crate::field::array_at;

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

pub(super) const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];
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
/// The longest trailer of any format.
pub const MAX_TRAILER_LEN: u64 = GZIP_TRAILER_LEN as u64;

pub(super) fn zstd_trailer(t: &Trailer) -> [u8; ZSTD_TRAILER_LEN] {
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
        && array_at(b, 0) == Some(SKIPPABLE_MAGIC.to_le_bytes())
        && array_at(b, 4) == Some((ZSTD_TRAILER_PAYLOAD as u32).to_le_bytes())
        && array_at(b, 8).as_ref() == Some(TRAILER_TAG);
    if !ok {
        return None;
    }
    Some(Trailer {
        sha256: array_at(b, 16)?,
        size: u64::from_le_bytes(array_at(b, 48)?),
    })
}

pub(super) fn gzip_trailer(t: &Trailer) -> Vec<u8> {
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
        || array_at(b, 0) != Some(expected_head)
        || array_at(b, GZIP_TRAILER_LEN - 10) != Some([3, 0, 0, 0, 0, 0, 0, 0, 0, 0])
        || b.get(GZIP_TRAILER_LEN - 11) != Some(&0)
    {
        return None;
    }
    let comment = std::str::from_utf8(b.get(10..GZIP_TRAILER_LEN - 11)?).ok()?;
    let rest = comment.strip_prefix(GZIP_COMMENT_PREFIX)?;
    let (sha, size) = rest.split_once(" size=")?;
    // Lower-case hex digits only, as written (`docs/FORMAT.md`): `from_str_radix`
    // alone would also take a sign ("+f").
    let lower_hex = |s: &str| s.bytes().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'));
    if sha.len() != 64 || size.len() != 16 || !lower_hex(sha) || !lower_hex(size) {
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

/// Reads the format and trailer of a stored object of `len` bytes: its first
/// four bytes and its last few, nothing in between.
/// Returns them with the length of the compressed payload before the trailer.
pub fn read_trailer<R: Read + Seek + ?Sized>(
    r: &mut R,
    len: u64,
) -> Result<(StoredFormat, Trailer, u64), ReadError> {
    if len < 4 {
        return Err(CodecError::TooShort(len).into());
    }
    let mut magic = [0u8; 4];
    r.seek(SeekFrom::Start(0))?;
    r.read_exact(&mut magic)?;
    let format = if magic == ZSTD_MAGIC {
        StoredFormat::Zstd
    } else if magic.starts_with(&GZIP_MAGIC) {
        StoredFormat::Gzip
    } else {
        return Err(CodecError::UnknownFormat(hex(&magic)).into());
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trailers_have_fixed_sizes() {
        let t = Trailer {
            sha256: [0xAB; 32],
            size: 16 << 20,
        };
        assert_eq!(gzip_trailer(&t).len(), GZIP_TRAILER_LEN);
        assert_eq!(parse_gzip_trailer(&gzip_trailer(&t)), Some(t));
        assert_eq!(parse_zstd_trailer(&zstd_trailer(&t)), Some(t));
        assert!(ZSTD_TRAILER_LEN as u64 <= MAX_TRAILER_LEN);
    }

    #[test]
    fn a_gzip_trailer_holds_lower_case_hex_digits_only() {
        let t = Trailer {
            sha256: [0xAB; 32],
            size: 16 << 20,
        };
        let sha_at = 10 + GZIP_COMMENT_PREFIX.len();
        let size_at = sha_at + 64 + " size=".len();
        for (at, byte) in [
            (sha_at, b'+'),
            (sha_at, b'A'),
            (size_at, b'+'),
            (size_at, b' '),
        ] {
            let mut b = gzip_trailer(&t);
            b[at] = byte;
            assert_eq!(
                parse_gzip_trailer(&b),
                None,
                "{:?}",
                String::from_utf8_lossy(&b)
            );
        }
    }
}
