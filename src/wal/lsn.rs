//! WAL positions (LSNs): the one parser and printer of PostgreSQL's `X/X`.
//!
//! Guarantees: [`Lsn`]'s `FromStr` accepts exactly what PostgreSQL's `pg_lsn`
//! input accepts (`src/backend/utils/adt/pg_lsn.c` `pg_lsn_in_internal`): one
//! to eight hex digits (either case), `/`, one to eight hex digits, nothing
//! else; so it never reads more than 17 bytes and never panics. `Display`
//! prints `%X/%X` as PostgreSQL does, and parsing what it prints gives the same
//! position back.

use std::fmt;
use std::str::FromStr;

/// A position in the WAL (PostgreSQL's `XLogRecPtr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// The number of the segment holding this position.
    pub fn segment(self, segment_size: u64) -> u64 {
        self.0 / segment_size
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Why a string is not an LSN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an LSN (expected X/X: 1 to 8 hex digits on each side of the slash)")]
pub struct InvalidLsn(pub String);

impl FromStr for Lsn {
    type Err = InvalidLsn;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidLsn(s.chars().take(40).collect());
        let (hi, lo) = s.split_once('/').ok_or_else(invalid)?;
        let half = |part: &str| {
            let hex = (1..=8).contains(&part.len()) && part.bytes().all(|b| b.is_ascii_hexdigit());
            // All hex digits, so from_str_radix sees no sign and cannot overflow.
            hex.then(|| u32::from_str_radix(part, 16).ok()).flatten()
        };
        match (half(hi), half(lo)) {
            (Some(hi), Some(lo)) => Ok(Lsn((u64::from(hi) << 32) | u64::from(lo))),
            _ => Err(invalid()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn printed_lsns_parse_back(v in any::<u64>()) {
            let lsn = Lsn(v);
            prop_assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
        }

        #[test]
        fn parser_never_panics(s in "\\PC{0,24}") {
            if let Ok(lsn) = s.parse::<Lsn>() {
                prop_assert!(s.len() <= 17);
                prop_assert_eq!(lsn.to_string().parse::<Lsn>(), Ok(lsn));
            }
        }
    }

    #[test]
    fn known_lsns() {
        assert_eq!("0/10000B8".parse(), Ok(Lsn(0x10000B8)));
        assert_eq!("1/c000028".parse(), Ok(Lsn((1 << 32) | 0xC000028)));
        assert_eq!(
            "FFFFFFFF/FFFFFFFF".parse(),
            Ok(Lsn(u64::MAX)),
            "the largest LSN"
        );
        assert_eq!(Lsn((1 << 32) | 0xC000028).to_string(), "1/C000028");
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0/0/0",
            "+1/0",
            "0/+1",
            "-1/0",
            " 0/1",
            "0/1 ",
            "100000000/0",
            "0/100000000",
            "0x1/0",
            "0/1g",
        ] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad:?} must be refused");
        }
    }
}
