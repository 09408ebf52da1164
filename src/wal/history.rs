//! Timeline history files (`TTTTTTTT.history`): the one parser.
//!
//! PostgreSQL writes one line per ancestor, `parentTLI<TAB>X/X<TAB>reason`
//! (`src/backend/access/transam/timeline.c` `writeTimeLineHistory`), and reads
//! them back with `readTimeLineHistory`: blank lines and `#` comments are
//! allowed, timeline IDs must increase and stay below the file's own.
//!
//! Guarantees: [`parse`] never panics; it refuses a text larger than
//! [`MAX_LEN`] without reading it, and anything that is not UTF-8; every
//! [`Fork`] it returns has a parent timeline from 1 to below the file's own,
//! parents strictly increasing and switch points never going backwards.

use crate::wal::lsn::{InvalidLsn, Lsn};

/// The largest history file parsed: a line per ancestor is under 100 bytes
/// (the reason names at most a 64-byte restore point), so this allows
/// thousands of timelines while bounding what a damaged file can cost.
pub const MAX_LEN: usize = 1 << 20;

/// One line of a history file: `parent` ended (and its child began) at `switch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fork {
    pub parent: u32,
    pub switch: Lsn,
}

/// Why a history file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HistoryError {
    #[error("{len} bytes is larger than a history file can be ({MAX_LEN} at most)")]
    TooLarge { len: usize },
    #[error("not text")]
    NotText,
    #[error("line {line}: expected a timeline and a switch point")]
    MissingField { line: usize },
    #[error("line {line}: {text:?} is not a timeline ID")]
    BadTimeline { line: usize, text: String },
    #[error("line {line}: {source}")]
    BadSwitchPoint { line: usize, source: InvalidLsn },
    #[error("line {line}: timeline {parent} is out of order (timelines must increase and stay below {own})")]
    OutOfOrder { line: usize, parent: u32, own: u32 },
    #[error("line {line}: switch point {switch} goes backwards")]
    Backwards { line: usize, switch: Lsn },
    #[error("no timeline lines")]
    Empty,
}

/// Parses the history file of timeline `own`.
pub fn parse(own: u32, bytes: &[u8]) -> Result<Vec<Fork>, HistoryError> {
    if bytes.len() > MAX_LEN {
        return Err(HistoryError::TooLarge { len: bytes.len() });
    }
    let text = std::str::from_utf8(bytes).map_err(|_| HistoryError::NotText)?;
    let mut forks: Vec<Fork> = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line_no = n + 1;
        let line = line.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let (Some(tli), Some(lsn)) = (fields.next(), fields.next()) else {
            return Err(HistoryError::MissingField { line: line_no });
        };
        let parent = parse_timeline(tli).ok_or_else(|| HistoryError::BadTimeline {
            line: line_no,
            text: tli.chars().take(40).collect(),
        })?;
        let switch = lsn
            .parse::<Lsn>()
            .map_err(|source| HistoryError::BadSwitchPoint {
                line: line_no,
                source,
            })?;
        if parent == 0 || parent >= own || forks.last().is_some_and(|f| f.parent >= parent) {
            return Err(HistoryError::OutOfOrder {
                line: line_no,
                parent,
                own,
            });
        }
        if forks.last().is_some_and(|f| f.switch > switch) {
            return Err(HistoryError::Backwards {
                line: line_no,
                switch,
            });
        }
        forks.push(Fork { parent, switch });
    }
    if forks.is_empty() && own > 1 {
        return Err(HistoryError::Empty);
    }
    Ok(forks)
}

/// A decimal timeline ID as PostgreSQL prints it (`%u`): digits only, no sign.
pub(crate) fn parse_timeline(s: &str) -> Option<u32> {
    let digits = !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// What `writeTimeLineHistory` writes for `forks`.
    fn written(forks: &[Fork]) -> String {
        forks
            .iter()
            .map(|f| format!("{}\t{}\tno recovery target specified\n", f.parent, f.switch))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// A valid ancestry for timeline `own`: increasing parents below it, switch
    /// points not decreasing.
    fn ancestry() -> impl Strategy<Value = (u32, Vec<Fork>)> {
        proptest::collection::btree_map(1u32..1000, any::<u64>(), 0..20).prop_flat_map(|m| {
            let own_min = m.keys().last().map_or(1, |&t| t + 1);
            let mut switches: Vec<u64> = m.values().copied().collect();
            switches.sort_unstable();
            let forks: Vec<Fork> = m
                .keys()
                .zip(switches)
                .map(|(&parent, s)| Fork {
                    parent,
                    switch: Lsn(s),
                })
                .collect();
            (own_min..=own_min + 5, Just(forks))
        })
    }

    proptest! {
        #[test]
        fn what_postgres_writes_parses_back((own, forks) in ancestry()) {
            prop_assume!(!forks.is_empty() || own == 1);
            prop_assert_eq!(parse(own, written(&forks).as_bytes()), Ok(forks));
        }

        #[test]
        fn parser_never_panics(own in any::<u32>(), text in "(\\PC|[\t\n#/0-9A-F]){0,200}") {
            if let Ok(forks) = parse(own, text.as_bytes()) {
                for pair in forks.windows(2) {
                    prop_assert!(pair[0].parent < pair[1].parent);
                    prop_assert!(pair[0].switch <= pair[1].switch);
                }
                prop_assert!(forks.iter().all(|f| f.parent >= 1 && f.parent < own));
            }
        }

        #[test]
        fn parser_never_panics_on_bytes(own in any::<u32>(), bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(own, &bytes);
        }
    }

    #[test]
    fn real_history_files() {
        let h = parse(
            3,
            b"1\t0/10000B8\tno recovery target specified\n\n# c\n2\t0/3000000\tat restore point \"x\"\n",
        )
        .unwrap();
        assert_eq!(
            h,
            vec![
                Fork {
                    parent: 1,
                    switch: Lsn(0x10000B8)
                },
                Fork {
                    parent: 2,
                    switch: Lsn(0x3000000)
                }
            ]
        );
        assert_eq!(parse(1, b""), Ok(vec![]));
        assert_eq!(parse(2, b"\n# only a comment\n"), Err(HistoryError::Empty));
        assert!(matches!(
            parse(2, b"2\t0/1\tx\n"),
            Err(HistoryError::OutOfOrder { .. })
        ));
        assert!(matches!(
            parse(3, b"2\t0/5\tx\n1\t0/6\tx\n"),
            Err(HistoryError::OutOfOrder { .. })
        ));
        assert!(matches!(
            parse(3, b"1\t0/6\tx\n2\t0/5\tx\n"),
            Err(HistoryError::Backwards { .. })
        ));
        assert!(matches!(
            parse(2, b"1\tzz\tx\n"),
            Err(HistoryError::BadSwitchPoint { .. })
        ));
        assert!(matches!(
            parse(2, b"+1\t0/1\tx\n"),
            Err(HistoryError::BadTimeline { .. })
        ));
        assert!(matches!(
            parse(2, b"1\n"),
            Err(HistoryError::MissingField { line: 1 })
        ));
        assert_eq!(parse(2, b"1\t0/1\t\xFF\n"), Err(HistoryError::NotText));
        let huge = vec![b'#'; MAX_LEN + 1];
        assert_eq!(
            parse(2, &huge),
            Err(HistoryError::TooLarge { len: MAX_LEN + 1 })
        );
    }
}
