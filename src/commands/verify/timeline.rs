//! Timelines and continuity: which segments an archive must hold, and which a
//! base backup needs to reach the newest archived WAL.
//!
//! Two rules, both from PostgreSQL's source:
//!
//! * A timeline's history file (`timeline.c` `writeTimeLineHistory`) lists every
//!   ancestor with the LSN where its child forked off. The child begins at that
//!   switch point `S`: its first segment is the one holding `S` (a copy of the
//!   parent's up to `S`, `xlog.c` `XLogInitNewTimeline`), or, when `S` falls on a
//!   segment boundary, the next fresh one. The parent's WAL runs up to `S`, so the
//!   parent must hold every segment through the one holding the byte before `S`;
//!   for that last one a `.partial` is enough (it is exactly "the parent up to the
//!   switch"), anywhere else a `.partial` never replaces a full segment.
//! * Recovery reads segment `n` from the newest timeline of the target's history
//!   whose first segment is at or before `n` (`xlogrecovery.c`
//!   `XLogFileReadAnyTLI`), so restoring a backup to the newest timeline needs,
//!   for every segment from the backup's start on, that timeline's copy.

use std::collections::{BTreeMap, BTreeSet};

use crate::wal::backup_label::BackupLabel;
use crate::wal::name::SegmentName;
pub use crate::wal::timeline::{Span, Tree};

/// Segment numbers archived per timeline: full segments and `.partial` files.
#[derive(Debug, Default, Clone)]
pub struct Archived {
    pub full: BTreeMap<u32, BTreeSet<u64>>,
    pub partial: BTreeMap<u32, BTreeSet<u64>>,
}

impl Archived {
    pub fn has_full(&self, timeline: u32, segno: u64) -> bool {
        self.full.get(&timeline).is_some_and(|s| s.contains(&segno))
    }

    fn has_partial(&self, timeline: u32, segno: u64) -> bool {
        self.partial
            .get(&timeline)
            .is_some_and(|s| s.contains(&segno))
    }

    /// The oldest segment number archived on any timeline: nothing older is
    /// expected (it was never archived, or uxwal-cleanup removed it).
    pub fn oldest(&self) -> Option<u64> {
        self.full
            .values()
            .chain(self.partial.values())
            .filter_map(|s| s.first().copied())
            .min()
    }

    fn own_range(&self, timeline: u32) -> Option<(u64, u64)> {
        let sets = [self.full.get(&timeline), self.partial.get(&timeline)];
        let lo = sets.iter().flatten().filter_map(|s| s.first()).min()?;
        let hi = sets.iter().flatten().filter_map(|s| s.last()).max()?;
        Some((*lo, *hi))
    }
}

/// Segments a timeline must hold, and the ones it lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Continuity {
    pub timeline: u32,
    /// First and last segment number the timeline must hold.
    pub required: Option<(u64, u64)>,
    /// Missing ranges (first, last segment number), in order.
    pub gaps: Vec<(u64, u64)>,
}

/// Finds the missing segments of every timeline (see the module docs). Nothing
/// older than the oldest archived segment is expected: uxwal-cleanup removes
/// old segments of every timeline alike.
pub fn continuity(tree: &Tree, archived: &Archived, segment_size: u64) -> Vec<Continuity> {
    let Some(oldest) = archived.oldest() else {
        return Vec::new();
    };
    let mut timelines = tree.timelines();
    timelines.extend(archived.full.keys().chain(archived.partial.keys()));
    let mut out = Vec::new();
    for tli in timelines {
        let own = archived.own_range(tli);
        // The parent's last byte before each child's switch point must be here.
        let child_end = tree
            .children(tli)
            .filter(|(_, s)| s.0 > 0)
            .map(|(_, s)| (s.0 - 1) / segment_size)
            .max();
        let Some(hi) = own.map(|r| r.1).into_iter().chain(child_end).max() else {
            out.push(Continuity {
                timeline: tli,
                required: None,
                gaps: Vec::new(),
            });
            continue;
        };
        let begin = match tree.parent(tli) {
            Some(fork) => fork.switch.segment(segment_size),
            None => own.map(|r| r.0).unwrap_or(oldest),
        };
        let lo = begin.max(oldest);
        let mut gaps: Vec<(u64, u64)> = Vec::new();
        if lo <= hi {
            // Walk the present numbers, not the whole range.
            let mut next = lo;
            let present = archived
                .full
                .get(&tli)
                .into_iter()
                .flat_map(|s| s.range(lo..=hi))
                .copied();
            for s in present.chain([hi + 1]) {
                if s > next {
                    let mut last = s - 1;
                    // A .partial is enough only as the timeline's required end.
                    if last == hi && archived.has_partial(tli, hi) {
                        if last == next {
                            next = s + 1;
                            continue;
                        }
                        last -= 1;
                    }
                    gaps.push((next, last));
                }
                next = s + 1;
            }
        }
        out.push(Continuity {
            timeline: tli,
            required: (lo <= hi).then_some((lo, hi)),
            gaps,
        });
    }
    out
}

/// Whether a base backup can be restored to the newest archived WAL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Restorability {
    /// The timeline recovery follows (`recovery_target_timeline = 'latest'`).
    pub target_timeline: u32,
    /// The newest segment along that timeline's history.
    pub end: Option<SegmentName>,
    /// First segment missing (or unusable) on the way there.
    pub first_missing: Option<SegmentName>,
    pub missing: u64,
    /// Why it is not restorable when that is not a missing segment.
    pub reason: Option<String>,
}

impl Restorability {
    pub fn ok(&self) -> bool {
        self.first_missing.is_none() && self.reason.is_none()
    }
}

/// The timeline that serves segment `segno` when recovering along `path`
/// (0, which no timeline is, for an empty path).
pub fn serving_timeline(path: &[Span], segno: u64, segment_size: u64) -> u32 {
    path.iter()
        .rev()
        .find(|s| s.begin.segment(segment_size) <= segno)
        .or(path.first())
        .map_or(0, |s| s.timeline)
}

/// Checks that every segment from the backup's start to the newest WAL archived
/// along `target`'s history is present (see the module docs).
pub fn restorability(
    tree: &Tree,
    archived: &Archived,
    segment_size: u64,
    backup: &BackupLabel,
    target: u32,
) -> Restorability {
    let path = tree.path(target);
    let mut r = Restorability {
        target_timeline: target,
        end: None,
        first_missing: None,
        missing: 0,
        reason: None,
    };
    if let Err(why) = tree.reaches(backup, target) {
        r.reason = Some(why.to_string());
        return r;
    }
    let start = backup.start.segment(segment_size);
    // The newest full segment along the path, each timeline within its share.
    let mut end = None;
    for (i, s) in path.iter().enumerate() {
        let from = s.begin.segment(segment_size);
        let until = path.get(i + 1).map(|n| n.begin.segment(segment_size));
        if let Some(set) = archived.full.get(&s.timeline) {
            let newest = match until {
                Some(u) if u > from => set.range(from..u).next_back(),
                Some(_) => None,
                None => set.range(from..).next_back(),
            };
            end = end.max(newest.copied());
        }
    }
    // The backup needs at least the WAL up to its stop location.
    let stop = backup.stop.0.saturating_sub(1) / segment_size;
    let end = end.unwrap_or(stop).max(stop).max(start);
    // Each timeline serves the segments from its first one to its child's
    // first one. The present segments are walked, not the whole range: a
    // hostile .backup or .history file (or an object named at the end of the
    // LSN space) can make the range 2^44 segments long.
    for (i, s) in path.iter().enumerate() {
        let from = if i == 0 {
            0
        } else {
            s.begin.segment(segment_size)
        };
        let until = path.get(i + 1).map(|n| n.begin.segment(segment_size));
        let lo = from.max(start);
        let hi = match until {
            Some(0) => continue,
            Some(u) => (u - 1).min(end),
            None => end,
        };
        if lo > hi {
            continue;
        }
        let mut next = lo;
        let mut present = 0u64;
        for &p in archived
            .full
            .get(&s.timeline)
            .into_iter()
            .flat_map(|set| set.range(lo..=hi))
        {
            if p > next && r.first_missing.is_none() {
                r.first_missing = Some(SegmentName::from_segment_number(
                    s.timeline,
                    next,
                    segment_size,
                ));
            }
            present += 1;
            next = p + 1;
        }
        if next <= hi && r.first_missing.is_none() {
            r.first_missing = Some(SegmentName::from_segment_number(
                s.timeline,
                next,
                segment_size,
            ));
        }
        r.missing += (hi - lo + 1) - present;
    }
    r.end = Some(SegmentName::from_segment_number(
        serving_timeline(&path, end, segment_size),
        end,
        segment_size,
    ));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wal::history::Fork;
    use crate::wal::lsn::Lsn;

    const SZ: u64 = 16 << 20;

    fn lsn(s: &str) -> Lsn {
        s.parse().unwrap()
    }

    fn history(own: u32, text: &str) -> Vec<Fork> {
        crate::wal::history::parse(own, text.as_bytes()).unwrap()
    }

    fn archived(full: &[(u32, u64)], partial: &[(u32, u64)]) -> Archived {
        let mut a = Archived::default();
        for &(t, s) in full {
            a.full.entry(t).or_default().insert(s);
        }
        for &(t, s) in partial {
            a.partial.entry(t).or_default().insert(s);
        }
        a
    }

    #[test]
    fn gaps_inside_a_timeline_and_across_switch_points() {
        // 1 -> 2 at 0/5000100 (inside segment 5), 2 -> 3 at 0/8000000 (a boundary).
        let mut h = BTreeMap::new();
        h.insert(2, history(2, "1\t0/5000100\tx"));
        h.insert(3, history(3, "1\t0/5000100\tx\n2\t0/8000000\ty"));
        let tree = Tree::new(&h);
        let complete = archived(
            &[
                (1, 3),
                (1, 4),
                (1, 5),
                (1, 6),
                (2, 5),
                (2, 6),
                (2, 7),
                (3, 8),
                (3, 9),
            ],
            &[],
        );
        let c = continuity(&tree, &complete, SZ);
        assert!(c.iter().all(|c| c.gaps.is_empty()), "{c:?}");
        assert_eq!(c[1].required, Some((5, 7)));

        // Timeline 1 ends in a .partial of the switch segment: enough.
        let partial_end = archived(&[(1, 3), (1, 4), (2, 5), (2, 6), (2, 7), (3, 8)], &[(1, 5)]);
        assert!(continuity(&tree, &partial_end, SZ)
            .iter()
            .all(|c| c.gaps.is_empty()));
        // ... but not in the middle of a timeline.
        let partial_mid = archived(
            &[(1, 3), (1, 4), (1, 6), (2, 5), (2, 6), (2, 7), (3, 8)],
            &[(1, 5)],
        );
        assert_eq!(continuity(&tree, &partial_mid, SZ)[0].gaps, vec![(5, 5)]);
        // Parent missing up to the switch; child missing its first segment.
        let holes = archived(&[(1, 3), (2, 6), (2, 7), (3, 8)], &[]);
        let c = continuity(&tree, &holes, SZ);
        assert_eq!(c[0].gaps, vec![(4, 5)]);
        assert_eq!(c[1].gaps, vec![(5, 5)]);

        let backup = BackupLabel {
            start: lsn("0/3000028"),
            start_segment: SegmentName {
                timeline: 1,
                log: 0,
                seg: 3,
            },
            stop: lsn("0/3000100"),
            start_timeline: Some(1),
            label: "b".into(),
            start_time: None,
            stop_time: None,
        };
        let r = restorability(&tree, &complete, SZ, &backup, 3);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.end.unwrap().to_string(), "000000030000000000000009");
        // Recovery reads segment 5 from timeline 2: timeline 1's copy is not needed.
        let no_tl1_5 = archived(
            &[(1, 3), (1, 4), (2, 5), (2, 6), (2, 7), (3, 8), (3, 9)],
            &[],
        );
        assert!(restorability(&tree, &no_tl1_5, SZ, &backup, 3).ok());
        let r = restorability(&tree, &holes, SZ, &backup, 3);
        assert_eq!(
            r.first_missing.unwrap().to_string(),
            "000000010000000000000004"
        );
        assert_eq!(r.missing, 2);
        // A backup taken on timeline 1 after timeline 2 forked off cannot reach 3.
        let late = BackupLabel {
            start: lsn("0/6000028"),
            ..backup.clone()
        };
        assert!(restorability(&tree, &complete, SZ, &late, 3)
            .reason
            .is_some());
        // A stop position at the end of the LSN space (a hostile .backup file)
        // is counted, not walked: 2^40 segments missing, answered at once.
        let hostile = BackupLabel {
            stop: Lsn(u64::MAX),
            ..backup
        };
        let r = restorability(&tree, &complete, SZ, &hostile, 3);
        assert_eq!(
            r.first_missing.unwrap().to_string(),
            "00000003000000000000000A"
        );
        assert_eq!(r.missing, u64::MAX / SZ - 9);
    }
}
