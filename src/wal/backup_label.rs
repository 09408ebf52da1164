//! Backup history files (`<segment>.XXXXXXXX.backup`): the one parser.
//!
//! `pg_backup_stop` (`src/backend/access/transam/xlog.c` `do_pg_backup_stop`)
//! archives the backup label plus its stop lines as `KEY: value` lines: START
//! WAL LOCATION (`X/X (file <segment>)`), STOP WAL LOCATION, CHECKPOINT
//! LOCATION, BACKUP METHOD, BACKUP FROM, START TIME, LABEL, START TIMELINE,
//! STOP TIME, STOP TIMELINE (contract §4).
//!
//! Guarantees: [`BackupLabel::parse`] never panics; it refuses a text larger
//! than [`MAX_LEN`] without reading it, and anything that is not UTF-8; what it
//! returns has a start and a stop location, the stop not before the start, and
//! a start segment whose timeline agrees with START TIMELINE when that is
//! given. The first line of a key wins, so a label spanning lines cannot
//! override the locations, which come before it.

use crate::wal::history::parse_timeline;
use crate::wal::lsn::Lsn;
use crate::wal::name::{SegmentName, WalName};

/// The largest backup history file parsed. PostgreSQL limits the label to
/// `MAXPGPATH` (1024) bytes and the rest is under 400, so a real file is under
/// 2 KiB; this leaves room and bounds what a damaged file can cost.
pub const MAX_LEN: usize = 64 * 1024;

/// Values quoted in errors are cut to this many characters.
const QUOTE: usize = 80;

/// What a backup history file records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupLabel {
    /// START WAL LOCATION: where the backup's WAL begins.
    pub start: Lsn,
    /// The segment START WAL LOCATION names (`(file …)`).
    pub start_segment: SegmentName,
    /// STOP WAL LOCATION: the backup is consistent once WAL reaches it.
    pub stop: Lsn,
    /// START TIMELINE (absent before PostgreSQL 11).
    pub start_timeline: Option<u32>,
    /// LABEL (empty when absent).
    pub label: String,
    pub start_time: Option<String>,
    pub stop_time: Option<String>,
}

/// Why a backup history file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BackupLabelError {
    #[error("{len} bytes is larger than a backup history file can be ({MAX_LEN} at most)")]
    TooLarge { len: usize },
    #[error("not text")]
    NotText,
    #[error("no {field} line")]
    Missing { field: &'static str },
    #[error("cannot parse {field} {value:?}")]
    BadLocation { field: &'static str, value: String },
    #[error("START TIMELINE {value:?} is not a timeline ID")]
    BadTimeline { value: String },
    #[error("START TIMELINE {timeline} does not match segment {segment}")]
    TimelineMismatch { timeline: u32, segment: SegmentName },
    #[error("STOP WAL LOCATION {stop} is before START WAL LOCATION {start}")]
    StopBeforeStart { start: Lsn, stop: Lsn },
    #[error("START WAL LOCATION names segment {segment}, but the file is named {name}")]
    WrongName { segment: SegmentName, name: String },
}

const START: &str = "START WAL LOCATION";
const STOP: &str = "STOP WAL LOCATION";

impl BackupLabel {
    /// Parses the content of a backup history file.
    pub fn parse(bytes: &[u8]) -> Result<BackupLabel, BackupLabelError> {
        if bytes.len() > MAX_LEN {
            return Err(BackupLabelError::TooLarge { len: bytes.len() });
        }
        let text = std::str::from_utf8(bytes).map_err(|_| BackupLabelError::NotText)?;
        let field = |key: &str| {
            text.lines().find_map(|line| {
                let (k, v) = line.split_once(':')?;
                (k.trim() == key).then(|| v.trim())
            })
        };
        let required =
            |key: &'static str| field(key).ok_or(BackupLabelError::Missing { field: key });
        let bad = |field: &'static str, value: &str| BackupLabelError::BadLocation {
            field,
            value: value.chars().take(QUOTE).collect(),
        };

        // "0/2000028 (file 000000010000000000000002)"
        let location = required(START)?;
        let (lsn, file) = location
            .split_once(" (file ")
            .and_then(|(lsn, rest)| Some((lsn.trim(), rest.strip_suffix(')')?)))
            .ok_or_else(|| bad(START, location))?;
        let start = lsn.parse::<Lsn>().map_err(|_| bad(START, location))?;
        let Ok(WalName::Segment(start_segment)) = file.parse::<WalName>() else {
            return Err(bad(START, location));
        };

        let location = required(STOP)?;
        let stop = location
            .split_whitespace()
            .next()
            .and_then(|lsn| lsn.parse::<Lsn>().ok())
            .ok_or_else(|| bad(STOP, location))?;
        if stop < start {
            return Err(BackupLabelError::StopBeforeStart { start, stop });
        }

        let start_timeline = match field("START TIMELINE") {
            None => None,
            Some(v) => {
                let timeline = parse_timeline(v).ok_or_else(|| BackupLabelError::BadTimeline {
                    value: v.chars().take(QUOTE).collect(),
                })?;
                if timeline != start_segment.timeline {
                    return Err(BackupLabelError::TimelineMismatch {
                        timeline,
                        segment: start_segment,
                    });
                }
                Some(timeline)
            }
        };
        Ok(BackupLabel {
            start,
            start_segment,
            stop,
            start_timeline,
            label: field("LABEL").unwrap_or_default().to_owned(),
            start_time: field("START TIME").map(str::to_owned),
            stop_time: field("STOP TIME").map(str::to_owned),
        })
    }

    /// The timeline the backup started on: START TIMELINE, or where that is
    /// absent the start segment's timeline (the parser checks they agree).
    pub fn timeline(&self) -> u32 {
        self.start_timeline.unwrap_or(self.start_segment.timeline)
    }

    /// Checks the content against the file's name (`name`, whose first 24
    /// characters are `segment`): the backup starts in the segment it is named after.
    pub fn check_name(&self, segment: SegmentName, name: &str) -> Result<(), BackupLabelError> {
        if self.start_segment == segment {
            Ok(())
        } else {
            Err(BackupLabelError::WrongName {
                segment: self.start_segment,
                name: name.chars().take(QUOTE).collect(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const REAL: &str = "START WAL LOCATION: 0/2000028 (file 000000010000000000000002)\n\
        STOP WAL LOCATION: 0/2000100 (file 000000010000000000000002)\n\
        CHECKPOINT LOCATION: 0/2000060\nBACKUP METHOD: streamed\n\
        BACKUP FROM: primary\nSTART TIME: 2026-11-21 22:08:37 UTC\n\
        LABEL: nightly: one\nSTART TIMELINE: 1\n\
        STOP TIME: 2026-11-21 22:08:38 UTC\nSTOP TIMELINE: 1\n";

    /// What `do_pg_backup_stop` writes (1 MiB segments).
    fn written(b: &BackupLabel) -> String {
        let seg = |lsn: Lsn| {
            SegmentName::from_segment_number(
                b.start_segment.timeline,
                lsn.segment(1 << 20),
                1 << 20,
            )
        };
        format!(
            "START WAL LOCATION: {} (file {})\nSTOP WAL LOCATION: {} (file {})\n\
             CHECKPOINT LOCATION: {}\nBACKUP METHOD: streamed\nBACKUP FROM: primary\n\
             START TIME: {}\nLABEL: {}\nSTART TIMELINE: {}\nSTOP TIME: {}\nSTOP TIMELINE: {}\n",
            b.start,
            b.start_segment,
            b.stop,
            seg(b.stop),
            b.start,
            b.start_time.as_deref().unwrap_or(""),
            b.label,
            b.start_segment.timeline,
            b.stop_time.as_deref().unwrap_or(""),
            b.start_segment.timeline,
        )
    }

    fn label() -> impl Strategy<Value = BackupLabel> {
        (1u32.., 0u64..(1 << 44), 0u64..(1 << 30), "[ -~]{0,60}").prop_map(
            |(tli, start, len, label)| {
                let start = Lsn(start);
                BackupLabel {
                    start,
                    start_segment: SegmentName::from_segment_number(
                        tli,
                        start.segment(1 << 20),
                        1 << 20,
                    ),
                    stop: Lsn(start.0 + len),
                    start_timeline: Some(tli),
                    label: label.trim().to_owned(),
                    start_time: Some("2026-11-21 22:08:37 UTC".into()),
                    stop_time: Some("2026-11-21 22:08:38 UTC".into()),
                }
            },
        )
    }

    proptest! {
        #[test]
        fn what_postgres_writes_parses_back(b in label()) {
            prop_assert_eq!(BackupLabel::parse(written(&b).as_bytes()), Ok(b));
        }

        #[test]
        fn parser_never_panics(text in "(\\PC|\n|START WAL LOCATION: |STOP WAL LOCATION: | \\(file |[0-9A-F/])*") {
            if let Ok(b) = BackupLabel::parse(text.as_bytes()) {
                prop_assert!(b.stop >= b.start);
            }
        }

        #[test]
        fn parser_never_panics_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = BackupLabel::parse(&bytes);
        }
    }

    #[test]
    fn a_real_backup_history_file() {
        let b = BackupLabel::parse(REAL.as_bytes()).unwrap();
        assert_eq!(b.start, Lsn(0x2000028));
        assert_eq!(b.start_segment.to_string(), "000000010000000000000002");
        assert_eq!(b.stop, Lsn(0x2000100));
        assert_eq!(b.start_timeline, Some(1));
        assert_eq!(b.label, "nightly: one");
        assert_eq!(b.start_time.as_deref(), Some("2026-11-21 22:08:37 UTC"));
        let seg = b.start_segment;
        assert!(b
            .check_name(seg, "000000010000000000000002.00000028.backup")
            .is_ok());
        let other = SegmentName { seg: 3, ..seg };
        assert!(matches!(
            b.check_name(other, "000000010000000000000003.00000028.backup"),
            Err(BackupLabelError::WrongName { .. })
        ));
    }

    #[test]
    fn damaged_backup_history_files_are_refused() {
        let parse = |t: &str| BackupLabel::parse(t.as_bytes());
        assert!(matches!(
            parse(&REAL.replace("START TIMELINE: 1", "START TIMELINE: 2")),
            Err(BackupLabelError::TimelineMismatch { .. })
        ));
        assert!(matches!(
            parse(&REAL.replace("START TIMELINE: 1", "START TIMELINE: x")),
            Err(BackupLabelError::BadTimeline { .. })
        ));
        assert!(matches!(
            parse(&REAL.replace("STOP WAL LOCATION: 0/2000100", "STOP WAL LOCATION: 0/1")),
            Err(BackupLabelError::StopBeforeStart { .. })
        ));
        assert!(matches!(
            parse(&REAL.replace(" (file 000000010000000000000002)\nSTOP", "\nSTOP")),
            Err(BackupLabelError::BadLocation { .. })
        ));
        assert!(matches!(
            parse("LABEL: x\n"),
            Err(BackupLabelError::Missing { .. })
        ));
        assert_eq!(
            BackupLabel::parse(b"START WAL LOCATION: \xFF"),
            Err(BackupLabelError::NotText)
        );
        let huge = format!("{REAL}{}", "#".repeat(MAX_LEN));
        assert!(matches!(
            parse(&huge),
            Err(BackupLabelError::TooLarge { .. })
        ));
        // A label spanning lines cannot override the real fields.
        let injected = REAL.replace(
            "LABEL: nightly: one",
            "LABEL: x\nSTART WAL LOCATION: 0/9000028 (file 000000010000000000000009)",
        );
        assert_eq!(parse(&injected).unwrap().start, Lsn(0x2000028));
    }
}
