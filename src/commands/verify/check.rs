//! Checks one stored object: decodes it completely, compares the recorded
//! SHA-256 and size, and for segments checks the page header against the name
//! and the archive identity. Streaming: only the first 40 bytes of a segment
//! (its long page header) are kept; `.history` and `.backup` texts are kept
//! because continuity needs them (they are a few hundred bytes).

use crate::codec::CodecError;
use crate::error::Error;
use crate::repo::identity::{self, IdentityError};
use crate::repo::{Identity, Repository};
use crate::wal::header::LONG_HEADER_LEN;
use crate::wal::name::{is_valid_segment_size, WalName};

use super::report::ProblemKind;

/// What checking one object found.
#[derive(Debug)]
pub enum Checked {
    /// Intact; `original` is the size of the archived file, `text` the content
    /// of a `.history` / `.backup` file.
    Intact {
        original: u64,
        text: Option<String>,
        /// The recipients of an encrypted object; `None` for a plain one.
        encrypted_to: Option<Vec<String>>,
    },
    /// Listed, but gone when read (removed meanwhile, e.g. by uxwal-cleanup).
    Vanished,
    Problem(ProblemKind, String),
}

/// What a failure to read `name` is, in the report's terms.
fn read_problem(e: Error, name: &WalName, identity: Option<&Identity>) -> Checked {
    let source = match e {
        Error::Corrupt { source, .. } => source,
        Error::NoIdentity { .. } => {
            return Checked::Problem(ProblemKind::NoIdentity, e.to_string())
        }
        e => return Checked::Problem(ProblemKind::Unreadable, e.to_string()),
    };
    let kind = match source {
        CodecError::TooShort(_) | CodecError::NoTrailer => ProblemKind::Truncated,
        CodecError::Mismatch { .. } | CodecError::TooLong { .. } => ProblemKind::ChecksumMismatch,
        CodecError::UnknownFormat(_)
        | CodecError::Decode(_)
        | CodecError::Decrypt(_)
        | CodecError::StoredLength { .. } => ProblemKind::Corrupt,
        // A recorded size wrong for the name: a segment of another segment size
        // (another cluster), a segment whose size says it is none, or a text
        // file too large to be one.
        CodecError::SizeForName { size, .. } if name.has_page_header() => {
            match identity.filter(|_| is_valid_segment_size(size)) {
                Some(id) => {
                    let e = IdentityError::WrongSegmentSize {
                        archive: id.segment_size,
                        file: size,
                    };
                    return Checked::Problem(ProblemKind::WrongCluster, e.to_string());
                }
                None => ProblemKind::BadHeader,
            }
        }
        CodecError::SizeForName { .. } => ProblemKind::BadContent,
    };
    Checked::Problem(kind, source.to_string())
}

/// Reads and checks the stored copy of `name`.
pub fn check(repo: &Repository, name: &WalName, identity: Option<&Identity>) -> Checked {
    let stored = match repo.open_stored(name, identity.map(|i| i.segment_size)) {
        Ok(Some(stored)) => stored,
        Ok(None) => return Checked::Vanished,
        Err(e) => return read_problem(e, name, identity),
    };
    let original = stored.trailer().size;
    let encrypted_to = stored.encrypted_to().map(<[String]>::to_vec);
    let keep = match name.has_page_header() {
        true => LONG_HEADER_LEN,
        // At most `repo::stored::MAX_TEXT_FILE`: the reader refuses more.
        false => original as usize,
    };
    let head = match stored.read_head(keep) {
        Ok(head) => head,
        Err(e) => return read_problem(e, name, identity),
    };
    let Some(segment) = name.segment().filter(|_| name.has_page_header()) else {
        return match String::from_utf8(head) {
            Ok(text) => Checked::Intact {
                original,
                text: Some(text),
                encrypted_to,
            },
            Err(_) => Checked::Problem(ProblemKind::BadContent, "not text".into()),
        };
    };
    match identity::check_segment(&head, segment, original, identity) {
        Ok(_) => Checked::Intact {
            original,
            text: None,
            encrypted_to,
        },
        Err(e @ IdentityError::Header(_)) => {
            Checked::Problem(ProblemKind::BadHeader, e.to_string())
        }
        Err(e) => Checked::Problem(ProblemKind::WrongCluster, e.to_string()),
    }
}
