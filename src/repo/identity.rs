//! The archive identity (system identifier, segment size, page magic) and the
//! one check of a segment's page header against its name and that identity.
//! Archiving a segment, serving one from the prefetch spool and verifying an
//! archived one all call [`check_segment`] (or its two halves), so a segment
//! is "this archive's" by the same rule everywhere.

// Parses data from outside: no indexing that could panic on it.
#![cfg_attr(not(test), deny(clippy::indexing_slicing))]

use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::wal::header::{HeaderError, LongPageHeader};
use crate::wal::name::{SegmentName, WalName};

/// The cluster an archive belongs to, recorded by the first archived segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// Decimal string: TOML integers are signed 64-bit and identifiers may not fit.
    #[serde(with = "u64_string")]
    pub system_identifier: u64,
    pub segment_size: u64,
    pub page_magic: u16,
}

mod u64_string {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Identity {
    /// The `IDENTITY` object's text (`docs/FORMAT.md`), as TOML.
    pub fn to_toml(&self) -> String {
        format!(
            "system_identifier = \"{}\"\nsegment_size = {}\npage_magic = {}\n",
            self.system_identifier, self.segment_size, self.page_magic
        )
    }
}

/// Why a segment is not one of this archive's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// The page header does not match the name or the file (or is not one).
    #[error(transparent)]
    Header(#[from] HeaderError),
    #[error("comes from database system {file}, but this archive holds database system {archive}")]
    WrongCluster { archive: u64, file: u64 },
    #[error("has {file}-byte segments, but this archive holds {archive}-byte segments")]
    WrongSegmentSize { archive: u64, file: u64 },
}

impl IdentityError {
    /// The library error for the file `name`.
    pub fn for_file(self, name: &WalName) -> Error {
        let name = name.to_string();
        match self {
            IdentityError::Header(source) => Error::BadHeader { name, source },
            IdentityError::WrongCluster { archive, file } => Error::WrongCluster {
                name,
                archive,
                file,
            },
            IdentityError::WrongSegmentSize { archive, file } => Error::WrongSegmentSize {
                name,
                archive,
                file,
            },
        }
    }
}

/// Reads the long page header at the start of `head` (the first bytes of a file
/// of `len` bytes archived as `segment`, or of its `.partial`), checks it against
/// the name and the length, and returns the identity the file carries.
/// `recorded_magic` is the archive's page magic, `None` for a new archive
/// (see [`LongPageHeader::validate`]).
pub fn identity_of(
    head: &[u8],
    segment: SegmentName,
    len: u64,
    recorded_magic: Option<u16>,
) -> Result<Identity, HeaderError> {
    let header = LongPageHeader::parse(head)?;
    header.validate(segment, len, recorded_magic)?;
    Ok(Identity {
        system_identifier: header.system_identifier,
        segment_size: u64::from(header.segment_size),
        page_magic: header.magic,
    })
}

/// A file of identity `file` belongs in the archive of identity `archive`: the
/// same system identifier and segment size (the page magic may differ: see
/// [`LongPageHeader::validate`]).
pub fn check_same(archive: &Identity, file: &Identity) -> Result<(), IdentityError> {
    if archive.system_identifier != file.system_identifier {
        return Err(IdentityError::WrongCluster {
            archive: archive.system_identifier,
            file: file.system_identifier,
        });
    }
    if archive.segment_size != file.segment_size {
        return Err(IdentityError::WrongSegmentSize {
            archive: archive.segment_size,
            file: file.segment_size,
        });
    }
    Ok(())
}

/// [`identity_of`] and, when the archive's identity is known, [`check_same`]:
/// `head` is the start of a segment (or `.partial`) of `len` bytes named
/// `segment` that belongs to the archive `archive`. Returns the file's identity.
pub fn check_segment(
    head: &[u8],
    segment: SegmentName,
    len: u64,
    archive: Option<&Identity>,
) -> Result<Identity, IdentityError> {
    let file = identity_of(head, segment, len, archive.map(|a| a.page_magic))?;
    if let Some(archive) = archive {
        check_same(archive, &file)?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::header::encode_long_header;

    const MIB: u64 = 1 << 20;

    fn head(segment: SegmentName, sysid: u64, seg_size: u64) -> [u8; 40] {
        encode_long_header(&LongPageHeader {
            magic: 0xD110,
            info: 0x0002,
            timeline: segment.timeline,
            page_address: segment.start_lsn(seg_size).unwrap(),
            system_identifier: sysid,
            segment_size: seg_size as u32,
            block_size: 8192,
        })
    }

    #[test]
    fn the_identity_text_reads_back_as_the_same_identity() {
        let identity = Identity {
            system_identifier: u64::MAX,
            segment_size: 1 << 30,
            page_magic: 0xD110,
        };
        let text = identity.to_toml();
        assert_eq!(toml::from_str::<Identity>(&text).unwrap(), identity);
        assert_eq!(text, toml::to_string(&identity).unwrap());
    }

    #[test]
    fn a_segment_is_the_archives_by_name_cluster_and_size() {
        let archive = Identity {
            system_identifier: 42,
            segment_size: MIB,
            page_magic: 0xD110,
        };
        let s = SegmentName::from_segment_number(1, 5, MIB);
        assert_eq!(
            check_segment(&head(s, 42, MIB), s, MIB, Some(&archive)),
            Ok(archive)
        );
        assert_eq!(
            check_segment(&head(s, 43, MIB), s, MIB, Some(&archive)),
            Err(IdentityError::WrongCluster {
                archive: 42,
                file: 43
            })
        );
        assert_eq!(
            check_segment(&head(s, 42, 2 * MIB), s, 2 * MIB, Some(&archive)),
            Err(IdentityError::WrongSegmentSize {
                archive: MIB,
                file: 2 * MIB
            })
        );
        let other = SegmentName::from_segment_number(1, 6, MIB);
        assert!(matches!(
            check_segment(&head(other, 42, MIB), s, MIB, Some(&archive)),
            Err(IdentityError::Header(HeaderError::WrongPageAddress { .. }))
        ));
        assert!(matches!(
            check_segment(&head(s, 42, MIB), s, MIB - 1, None),
            Err(IdentityError::Header(HeaderError::SizeMismatch { .. }))
        ));
        assert!(check_segment(&head(s, 43, MIB), s, MIB, None).is_ok());
    }
}
