//! The long page header at the start of every WAL segment, and the checks that
//! prove a file really is the segment its name says.
//!
//! Layout (`XLogLongPageHeaderData`, native byte order, little-endian on every
//! platform uxwal supports): magic u16, info u16, tli u32, pageaddr u64,
//! rem_len u32, padding, sysid u64 at 24, seg_size u32 at 32, blcksz u32 at 36.
//! The checks mirror PostgreSQL's `XLogReaderValidatePageHeader`.

use crate::field::array_at;
use crate::wal::name::{is_valid_segment_size, SegmentName};

/// Size of `XLogLongPageHeaderData`.
pub const LONG_HEADER_LEN: usize = 40;

const XLP_LONG_HEADER: u16 = 0x0002;
const XLP_ALL_FLAGS: u16 = 0x000F;

/// `XLOG_PAGE_MAGIC` of the PostgreSQL releases uxwal knows (12 to 18, 19devel).
pub const KNOWN_PAGE_MAGICS: &[(u16, &str)] = &[
    (0xD101, "PostgreSQL 12"),
    (0xD106, "PostgreSQL 13"),
    (0xD10D, "PostgreSQL 14"),
    (0xD110, "PostgreSQL 15"),
    (0xD113, "PostgreSQL 16"),
    (0xD116, "PostgreSQL 17"),
    (0xD118, "PostgreSQL 18"),
    (0xD121, "PostgreSQL 19devel"),
];

/// The fields of a segment's long page header that uxwal checks and records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongPageHeader {
    pub magic: u16,
    pub info: u16,
    pub timeline: u32,
    pub page_address: u64,
    pub system_identifier: u64,
    pub segment_size: u32,
    pub block_size: u32,
}

/// What is wrong with a segment's header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("file is {0} bytes, shorter than a WAL page header")]
    TooShort(usize),
    #[error(
        "page header has no long-header flag (info {0:#06x}): not the first page of a WAL segment"
    )]
    NotLongHeader(u16),
    #[error("page header has unknown flags (info {0:#06x})")]
    UnknownFlags(u16),
    #[error("header segment size {0} is not a power of two from 1 MiB to 1 GiB")]
    BadSegmentSize(u32),
    #[error("file is {file} bytes but its header says segments are {header} bytes")]
    SizeMismatch { file: u64, header: u32 },
    #[error("header block size {0} is not a power of two from 1 KiB to 64 KiB")]
    BadBlockSize(u32),
    #[error("name's segment number is out of range for {0}-byte segments")]
    NameOutOfRange(u64),
    #[error("page address {actual:#X} does not match the name (expected {expected:#X})")]
    WrongPageAddress { expected: u64, actual: u64 },
    #[error("header timeline {header} is 0 or above the name's timeline {name}")]
    WrongTimeline { header: u32, name: u32 },
    #[error("header has system identifier 0")]
    NoSystemIdentifier,
    #[error("unknown page magic {0:#06X} (neither a known PostgreSQL release nor the one this archive recorded)")]
    UnknownMagic(u16),
}

impl LongPageHeader {
    /// Reads the header fields from the first bytes of a segment (no checks).
    pub fn parse(bytes: &[u8]) -> Result<Self, HeaderError> {
        if bytes.len() < LONG_HEADER_LEN {
            return Err(HeaderError::TooShort(bytes.len()));
        }
        let too_short = || HeaderError::TooShort(bytes.len());
        let u16_at = |o: usize| {
            array_at(bytes, o)
                .map(u16::from_le_bytes)
                .ok_or_else(too_short)
        };
        let u32_at = |o: usize| {
            array_at(bytes, o)
                .map(u32::from_le_bytes)
                .ok_or_else(too_short)
        };
        let u64_at = |o: usize| {
            array_at(bytes, o)
                .map(u64::from_le_bytes)
                .ok_or_else(too_short)
        };
        Ok(LongPageHeader {
            magic: u16_at(0)?,
            info: u16_at(2)?,
            timeline: u32_at(4)?,
            page_address: u64_at(8)?,
            system_identifier: u64_at(24)?,
            segment_size: u32_at(32)?,
            block_size: u32_at(36)?,
        })
    }

    /// Checks that this header belongs to the segment `name` in a file of `file_len` bytes.
    ///
    /// The header timeline may be *below* the name's: the first segment of a new
    /// timeline is a copy of the old one and keeps its header (contract §4).
    /// The page magic is accepted when PostgreSQL knows it or when it equals
    /// `recorded_magic` (UXDB may use its own value); `recorded_magic = None`
    /// means a new archive, where any structurally valid header is accepted.
    pub fn validate(
        &self,
        name: SegmentName,
        file_len: u64,
        recorded_magic: Option<u16>,
    ) -> Result<(), HeaderError> {
        if self.info & XLP_LONG_HEADER == 0 {
            return Err(HeaderError::NotLongHeader(self.info));
        }
        if self.info & !XLP_ALL_FLAGS != 0 {
            return Err(HeaderError::UnknownFlags(self.info));
        }
        let seg_size = u64::from(self.segment_size);
        if !is_valid_segment_size(seg_size) {
            return Err(HeaderError::BadSegmentSize(self.segment_size));
        }
        if file_len != seg_size {
            return Err(HeaderError::SizeMismatch {
                file: file_len,
                header: self.segment_size,
            });
        }
        let block = self.block_size;
        if !block.is_power_of_two() || !(1024..=65536).contains(&block) {
            return Err(HeaderError::BadBlockSize(block));
        }
        let expected = name
            .start_lsn(seg_size)
            .ok_or(HeaderError::NameOutOfRange(seg_size))?;
        if self.page_address != expected {
            return Err(HeaderError::WrongPageAddress {
                expected,
                actual: self.page_address,
            });
        }
        if self.timeline == 0 || self.timeline > name.timeline {
            return Err(HeaderError::WrongTimeline {
                header: self.timeline,
                name: name.timeline,
            });
        }
        if self.system_identifier == 0 {
            return Err(HeaderError::NoSystemIdentifier);
        }
        let known = KNOWN_PAGE_MAGICS.iter().any(|(m, _)| *m == self.magic);
        match recorded_magic {
            Some(recorded) if !known && recorded != self.magic => {
                Err(HeaderError::UnknownMagic(self.magic))
            }
            _ => Ok(()),
        }
    }
}

/// Builds a valid long page header; used by tests and benchmarks to make synthetic segments.
pub fn encode_long_header(h: &LongPageHeader) -> [u8; LONG_HEADER_LEN] {
    let mut b = [0u8; LONG_HEADER_LEN];
    b[0..2].copy_from_slice(&h.magic.to_le_bytes());
    b[2..4].copy_from_slice(&h.info.to_le_bytes());
    b[4..8].copy_from_slice(&h.timeline.to_le_bytes());
    b[8..16].copy_from_slice(&h.page_address.to_le_bytes());
    b[24..32].copy_from_slice(&h.system_identifier.to_le_bytes());
    b[32..36].copy_from_slice(&h.segment_size.to_le_bytes());
    b[36..40].copy_from_slice(&h.block_size.to_le_bytes());
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MIB16: u64 = 16 << 20;

    fn header_for(name: SegmentName, size: u64) -> LongPageHeader {
        LongPageHeader {
            magic: 0xD110,
            info: 0x0006,
            timeline: name.timeline,
            page_address: name.start_lsn(size).unwrap(),
            system_identifier: 7_312_345_678_901_234_567,
            segment_size: size as u32,
            block_size: 8192,
        }
    }

    #[test]
    fn accepts_a_real_looking_header_and_rejects_each_fault() {
        let name = SegmentName {
            timeline: 2,
            log: 0,
            seg: 0x10,
        };
        let good = header_for(name, MIB16);
        let parsed = LongPageHeader::parse(&encode_long_header(&good)).unwrap();
        assert_eq!(parsed, good);
        assert_eq!(parsed.validate(name, MIB16, None), Ok(()));
        // First segment of a new timeline keeps the old timeline in its header.
        assert_eq!(
            LongPageHeader {
                timeline: 1,
                ..good
            }
            .validate(name, MIB16, None),
            Ok(())
        );

        let cases: Vec<(LongPageHeader, u64)> = vec![
            (
                LongPageHeader {
                    info: 0x0005,
                    ..good
                },
                MIB16,
            ),
            (
                LongPageHeader {
                    info: 0x0012,
                    ..good
                },
                MIB16,
            ),
            (
                LongPageHeader {
                    segment_size: 3 << 20,
                    ..good
                },
                3 << 20,
            ),
            (good, MIB16 - 1),
            (
                LongPageHeader {
                    block_size: 100,
                    ..good
                },
                MIB16,
            ),
            (
                LongPageHeader {
                    page_address: good.page_address + MIB16,
                    ..good
                },
                MIB16,
            ),
            (
                LongPageHeader {
                    timeline: 3,
                    ..good
                },
                MIB16,
            ),
            (
                LongPageHeader {
                    timeline: 0,
                    ..good
                },
                MIB16,
            ),
            (
                LongPageHeader {
                    system_identifier: 0,
                    ..good
                },
                MIB16,
            ),
        ];
        for (h, len) in cases {
            assert!(
                h.validate(name, len, None).is_err(),
                "{h:?} with len {len} must be refused"
            );
        }
    }

    #[test]
    fn unknown_magic_needs_a_new_archive_or_the_recorded_value() {
        let name = SegmentName {
            timeline: 1,
            log: 0,
            seg: 1,
        };
        let h = LongPageHeader {
            magic: 0xABCD,
            ..header_for(name, MIB16)
        };
        assert_eq!(h.validate(name, MIB16, None), Ok(()));
        assert_eq!(h.validate(name, MIB16, Some(0xABCD)), Ok(()));
        assert_eq!(
            h.validate(name, MIB16, Some(0xD110)),
            Err(HeaderError::UnknownMagic(0xABCD))
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = LongPageHeader::parse(&bytes);
        }

        #[test]
        fn encoded_headers_validate(shift in 20u32..=30, tli in 1u32..1000, segno in 0u64..100_000) {
            let size = 1u64 << shift;
            let name = SegmentName::from_segment_number(tli, segno, size);
            let h = header_for(name, size);
            let parsed = LongPageHeader::parse(&encode_long_header(&h)).unwrap();
            prop_assert_eq!(parsed.validate(name, size, None), Ok(()));
        }
    }
}
