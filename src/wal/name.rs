//! WAL file names: the only names uxwal will archive, restore or delete.
//!
//! PostgreSQL hands the helpers four kinds of file (see the archive contract,
//! `src/include/access/xlog_internal.h`): full segments (`TTTTTTTTLLLLLLLLSSSSSSSS`),
//! timeline history files (`TTTTTTTT.history`), backup history files
//! (`<segment>.XXXXXXXX.backup`) and the last, incomplete segment of an old
//! timeline (`<segment>.partial`). Parsing is strict (upper-case hex, exact
//! lengths), so a name that parses can never contain a path separator or `..`.

use std::fmt;
use std::str::FromStr;

/// Smallest WAL segment size PostgreSQL allows (`--wal-segsize=1`).
pub const MIN_SEGMENT_SIZE: u64 = 1 << 20;
/// Largest WAL segment size PostgreSQL allows (`--wal-segsize=1024`).
pub const MAX_SEGMENT_SIZE: u64 = 1 << 30;

/// True when `size` is a segment size PostgreSQL accepts: a power of two from 1 MiB to 1 GiB.
pub fn is_valid_segment_size(size: u64) -> bool {
    size.is_power_of_two() && (MIN_SEGMENT_SIZE..=MAX_SEGMENT_SIZE).contains(&size)
}

/// A full WAL segment name: timeline, "log" and "seg" parts, each 8 upper-case hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SegmentName {
    pub timeline: u32,
    pub log: u32,
    pub seg: u32,
}

impl SegmentName {
    /// Number of segments per "log" unit (`0x100000000 / segment_size`).
    fn segments_per_log(segment_size: u64) -> u64 {
        0x1_0000_0000 / segment_size
    }

    /// The segment number (`lsn / segment_size`) this name stands for, or `None`
    /// when the `seg` part is too large for that segment size.
    pub fn segment_number(&self, segment_size: u64) -> Option<u64> {
        let per_log = Self::segments_per_log(segment_size);
        (u64::from(self.seg) < per_log).then(|| u64::from(self.log) * per_log + u64::from(self.seg))
    }

    /// The name of segment number `segno` on `timeline`.
    pub fn from_segment_number(timeline: u32, segno: u64, segment_size: u64) -> Self {
        let per_log = Self::segments_per_log(segment_size);
        SegmentName {
            timeline,
            log: (segno / per_log) as u32,
            seg: (segno % per_log) as u32,
        }
    }

    /// The segment that follows this one on the same timeline.
    pub fn next(&self, segment_size: u64) -> Option<Self> {
        let segno = self.segment_number(segment_size)?;
        let next = segno.checked_add(1)?;
        let per_log = Self::segments_per_log(segment_size);
        (next / per_log <= u64::from(u32::MAX))
            .then(|| Self::from_segment_number(self.timeline, next, segment_size))
    }

    /// The first byte position (LSN) of this segment.
    pub fn start_lsn(&self, segment_size: u64) -> Option<u64> {
        self.segment_number(segment_size)?.checked_mul(segment_size)
    }

    fn parse(s: &str) -> Option<Self> {
        if s.len() != 24 {
            return None;
        }
        Self::parse_prefix(s)
    }

    /// The segment named by the first 24 characters of `s`, whatever follows
    /// (as `pg_archivecleanup` takes the segment part of a longer name).
    pub fn parse_prefix(s: &str) -> Option<Self> {
        // `get` instead of slicing: `s` may hold multi-byte characters.
        Some(SegmentName {
            timeline: parse_hex8(s.get(0..8)?)?,
            log: parse_hex8(s.get(8..16)?)?,
            seg: parse_hex8(s.get(16..24)?)?,
        })
    }
}

impl fmt::Display for SegmentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:08X}{:08X}{:08X}", self.timeline, self.log, self.seg)
    }
}

/// Any file name PostgreSQL may hand to `archive_command` or ask of `restore_command`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WalName {
    /// `TTTTTTTTLLLLLLLLSSSSSSSS`
    Segment(SegmentName),
    /// `<segment>.partial`: the incomplete last segment of a timeline that ended.
    Partial(SegmentName),
    /// `<segment>.XXXXXXXX.backup`: the backup history file of a base backup starting
    /// at byte `offset` of `segment`.
    Backup { segment: SegmentName, offset: u32 },
    /// `TTTTTTTT.history`
    History { timeline: u32 },
}

impl WalName {
    /// The segment this file belongs to (`None` for history files).
    pub fn segment(&self) -> Option<SegmentName> {
        match *self {
            WalName::Segment(s) | WalName::Partial(s) => Some(s),
            WalName::Backup { segment, .. } => Some(segment),
            WalName::History { .. } => None,
        }
    }

    /// True for files whose content starts with a WAL page header (segments and `.partial`).
    pub fn has_page_header(&self) -> bool {
        matches!(self, WalName::Segment(_) | WalName::Partial(_))
    }
}

/// Why a string is not a WAL file name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a WAL file name (expected a 24-digit upper-case hex segment, TTTTTTTT.history, <segment>.XXXXXXXX.backup or <segment>.partial)")]
pub struct InvalidWalName(pub String);

impl FromStr for WalName {
    type Err = InvalidWalName;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s).ok_or_else(|| InvalidWalName(s.to_owned()))
    }
}

fn parse(s: &str) -> Option<WalName> {
    // WAL names are ASCII; checking first keeps every slice below on a char boundary.
    if !s.is_ascii() {
        return None;
    }
    if let Some(tli) = s.strip_suffix(".history") {
        return (tli.len() == 8)
            .then(|| parse_hex8(tli))
            .flatten()
            .map(|timeline| WalName::History { timeline });
    }
    if let Some(seg) = s.strip_suffix(".partial") {
        return SegmentName::parse(seg).map(WalName::Partial);
    }
    if let Some(rest) = s.strip_suffix(".backup") {
        let (seg, offset) = rest.split_once('.')?;
        let segment = SegmentName::parse(seg)?;
        let offset = (offset.len() == 8).then(|| parse_hex8(offset)).flatten()?;
        return Some(WalName::Backup { segment, offset });
    }
    SegmentName::parse(s).map(WalName::Segment)
}

/// PostgreSQL's `IsBackupHistoryFileName` (`xlog_internal.h`), which
/// `pg_archivecleanup` uses to pick the files it considers: 24 upper-case hex
/// digits, then something that is not one, ending in `.backup`. Looser than
/// [`WalName::Backup`] (`<segment>.backup` passes): for recognising the files
/// `pg_archivecleanup` would, never for naming one.
pub fn is_backup_history_file_name(s: &str) -> bool {
    let b = s.as_bytes();
    let hex_prefix = b.iter().take_while(|&&c| is_upper_hex(c)).count() == 24;
    b.len() > 24 && hex_prefix && s.ends_with(".backup")
}

fn is_upper_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'A'..=b'F').contains(&b)
}

/// Exactly eight upper-case hex digits (PostgreSQL writes `%08X`; `IsXLogFileName` rejects lower case).
fn parse_hex8(s: &str) -> Option<u32> {
    let ok = s.len() == 8 && s.bytes().all(is_upper_hex);
    ok.then(|| u32::from_str_radix(s, 16).ok()).flatten()
}

impl fmt::Display for WalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WalName::Segment(s) => write!(f, "{s}"),
            WalName::Partial(s) => write!(f, "{s}.partial"),
            WalName::Backup { segment, offset } => write!(f, "{segment}.{offset:08X}.backup"),
            WalName::History { timeline } => write!(f, "{timeline:08X}.history"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn seg_sizes() -> impl Strategy<Value = u64> {
        (20u32..=30).prop_map(|shift| 1u64 << shift)
    }

    proptest! {
        #[test]
        fn names_round_trip(tli in any::<u32>(), log in any::<u32>(), seg in any::<u32>(), off in any::<u32>(), kind in 0..4u8) {
            let segment = SegmentName { timeline: tli, log, seg };
            let name = match kind {
                0 => WalName::Segment(segment),
                1 => WalName::Partial(segment),
                2 => WalName::Backup { segment, offset: off },
                _ => WalName::History { timeline: tli },
            };
            let text = name.to_string();
            prop_assert_eq!(text.parse::<WalName>(), Ok(name));
        }

        #[test]
        fn next_segment_steps_by_one_segment(size in seg_sizes(), tli in 1u32.., segno in 0u64..(1u64 << 40)) {
            let per_log = 0x1_0000_0000 / size;
            let segno = segno % (per_log * u64::from(u32::MAX));
            let name = SegmentName::from_segment_number(tli, segno, size);
            prop_assert_eq!(name.segment_number(size), Some(segno));
            let next = name.next(size).unwrap();
            prop_assert_eq!(next.segment_number(size), Some(segno + 1));
            prop_assert_eq!(next.timeline, tli);
            prop_assert_eq!(next.start_lsn(size).unwrap(), name.start_lsn(size).unwrap() + size);
            prop_assert!(next.seg < per_log as u32);
        }

        #[test]
        fn prefix_parser_never_panics(s in "\\PC{0,30}") {
            if let Some(seg) = SegmentName::parse_prefix(&s) {
                prop_assert!(s.starts_with(&seg.to_string()));
            }
            let _ = is_backup_history_file_name(&s);
        }

        #[test]
        fn parser_never_panics_and_accepts_only_safe_names(s in "\\PC{0,48}") {
            if let Ok(name) = s.parse::<WalName>() {
                prop_assert!(!s.contains('/') && !s.contains(".."));
                prop_assert_eq!(name.to_string(), s);
            }
        }
    }

    #[test]
    fn backup_history_file_names_as_pg_archivecleanup_sees_them() {
        const A: &str = "0000000100000037000000";
        assert!(is_backup_history_file_name(&format!("{A}0D.backup")));
        assert!(is_backup_history_file_name(&format!(
            "{A}0D.00000028.backup"
        )));
        assert!(!is_backup_history_file_name(&format!("{A}0D0.backup")));
        assert!(!is_backup_history_file_name(&format!("{A}0d.backup")));
        assert!(!is_backup_history_file_name(&format!("{A}0D")));
        assert!(!is_backup_history_file_name(".backup"));
        assert_eq!(
            SegmentName::parse_prefix(&format!("{A}0D.backup")).map(|s| (s.timeline, s.log, s.seg)),
            Some((1, 0x37, 0x0D))
        );
        assert_eq!(SegmentName::parse_prefix("000000010000000000000é00"), None);
    }

    #[test]
    fn known_names() {
        let seg: WalName = "000000010000000000000010".parse().unwrap();
        assert_eq!(
            seg,
            WalName::Segment(SegmentName {
                timeline: 1,
                log: 0,
                seg: 0x10
            })
        );
        assert!(matches!(
            "00000002.history".parse(),
            Ok(WalName::History { timeline: 2 })
        ));
        assert!(matches!(
            "000000010000000000000010.partial".parse(),
            Ok(WalName::Partial(_))
        ));
        assert!(matches!(
            "00000001000000000000000C.00000028.backup".parse(),
            Ok(WalName::Backup { offset: 0x28, .. })
        ));
        for bad in [
            "",
            "00000001000000000000000c",
            "0000000100000000000000",
            "../00000001000000000000000C",
            "00000001/00000000000000C",
            "0000002.history",
            "00000001000000000000000C.28.backup",
            "00000001000000000000000C.partial.gz",
            "RECOVERYXLOG",
            "+0000001000000000000000C",
        ] {
            assert!(bad.parse::<WalName>().is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn segment_numbers_for_16mib_and_1mib() {
        let s = SegmentName {
            timeline: 1,
            log: 1,
            seg: 0xFF,
        };
        assert_eq!(s.segment_number(16 << 20), Some(0x1FF));
        assert_eq!(
            s.next(16 << 20).unwrap().to_string(),
            "000000010000000200000000"
        );
        assert_eq!(s.segment_number(1 << 20), Some(0x10FF));
        let big = SegmentName {
            timeline: 1,
            log: 0,
            seg: 0x100,
        };
        assert_eq!(
            big.segment_number(16 << 20),
            None,
            "seg part above 0xFF is invalid for 16 MiB"
        );
    }
}
