//! Checks one stored object: decodes it completely, compares the recorded
//! SHA-256 and size, and for segments checks the page header against the name
//! and the archive identity. Streaming: only the first 40 bytes of a segment
//! (its long page header) are kept; `.history` and `.backup` texts are kept
//! because continuity needs them (they are a few hundred bytes).

use std::io::{self, Write};

use crate::codec::{self, CodecError, ReadError};
use crate::repo::{Identity, Repository};
use crate::wal::header::{LongPageHeader, LONG_HEADER_LEN};
use crate::wal::name::WalName;

use super::report::ProblemKind;

/// The largest `.history` / `.backup` text kept for parsing.
pub const MAX_TEXT: u64 = 1 << 20;

/// What checking one object found.
#[derive(Debug)]
pub enum Checked {
    /// Intact; `original` is the size of the archived file, `text` the content
    /// of a `.history` / `.backup` file.
    Intact {
        original: u64,
        text: Option<String>,
    },
    /// Listed, but gone when read (removed meanwhile, e.g. by uxwal-cleanup).
    Vanished,
    Problem(ProblemKind, String),
}

/// Keeps the first bytes written and counts the rest.
struct Head {
    keep: usize,
    bytes: Vec<u8>,
}

impl Write for Head {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let room = self.keep.saturating_sub(self.bytes.len()).min(buf.len());
        self.bytes.extend_from_slice(&buf[..room]);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn codec_problem(e: ReadError) -> Checked {
    match e {
        ReadError::Io(e) | ReadError::Output(e) => {
            Checked::Problem(ProblemKind::Unreadable, format!("cannot read: {e}"))
        }
        ReadError::Codec(c) => {
            let kind = match c {
                CodecError::TooShort(_) | CodecError::NoTrailer => ProblemKind::Truncated,
                CodecError::Mismatch { .. } => ProblemKind::ChecksumMismatch,
                CodecError::UnknownFormat(_) | CodecError::Decode(_) => ProblemKind::Corrupt,
            };
            Checked::Problem(kind, c.to_string())
        }
    }
}

/// Reads and checks the object `key`, archived as `name`.
pub fn check(repo: &Repository, key: &str, name: &WalName, identity: Option<&Identity>) -> Checked {
    let mut obj = match repo.get(key) {
        Ok(Some(o)) => o,
        Ok(None) => return Checked::Vanished,
        Err(e) => return Checked::Problem(ProblemKind::Unreadable, e.to_string()),
    };
    let (format, trailer, payload) = match codec::read_trailer(&mut obj.reader, obj.len) {
        Ok(t) => t,
        Err(e) => return codec_problem(e),
    };
    let keep = if name.has_page_header() {
        LONG_HEADER_LEN
    } else {
        trailer.size.min(MAX_TEXT) as usize
    };
    let mut head = Head {
        keep,
        bytes: Vec::with_capacity(keep),
    };
    if let Err(e) = codec::decode_verified(&mut obj.reader, format, payload, &trailer, &mut head) {
        return codec_problem(e);
    }
    let Some(segment) = name.segment().filter(|_| name.has_page_header()) else {
        if trailer.size > MAX_TEXT {
            return Checked::Problem(
                ProblemKind::BadContent,
                format!("{} bytes: too large for a {name} file", trailer.size),
            );
        }
        return match String::from_utf8(head.bytes) {
            Ok(text) => Checked::Intact {
                original: trailer.size,
                text: Some(text),
            },
            Err(_) => Checked::Problem(ProblemKind::BadContent, "not text".into()),
        };
    };
    let header = match LongPageHeader::parse(&head.bytes) {
        Ok(h) => h,
        Err(e) => return Checked::Problem(ProblemKind::BadHeader, e.to_string()),
    };
    if let Err(e) = header.validate(segment, trailer.size, identity.map(|i| i.page_magic)) {
        return Checked::Problem(ProblemKind::BadHeader, e.to_string());
    }
    if let Some(id) = identity {
        if header.system_identifier != id.system_identifier {
            return Checked::Problem(
                ProblemKind::WrongCluster,
                format!(
                    "comes from database system {}, but this archive holds database system {}",
                    header.system_identifier, id.system_identifier
                ),
            );
        }
        if u64::from(header.segment_size) != id.segment_size {
            return Checked::Problem(
                ProblemKind::WrongCluster,
                format!(
                    "has {}-byte segments, but this archive holds {}-byte segments",
                    header.segment_size, id.segment_size
                ),
            );
        }
    }
    Checked::Intact {
        original: trailer.size,
        text: None,
    }
}
