//! The timeline tree, from the archived history files, and the one rule of
//! which base backup can reach which timeline.
//!
//! A timeline's history file (`timeline.c` `writeTimeLineHistory`) lists every
//! ancestor with the LSN where its child forked off. Recovery from a base backup
//! can follow a timeline only when the backup's own timeline is in that
//! timeline's ancestry and the backup started before its timeline forked off
//! towards it: a backup taken later on the parent lies on the abandoned branch.

use std::collections::{BTreeMap, BTreeSet};

use crate::wal::backup_label::BackupLabel;
use crate::wal::history::Fork;
use crate::wal::lsn::Lsn;

/// The timeline tree: each timeline's parent and switch point, from every
/// history file (a timeline's own file wins over what its descendants say).
#[derive(Debug, Default, Clone)]
pub struct Tree {
    parents: BTreeMap<u32, Fork>,
}

/// One timeline on the way from the root to a target timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub timeline: u32,
    /// Where it began (its parent's switch point); 0 for the root.
    pub begin: Lsn,
    /// Where its child on this path began; `None` for the target itself.
    pub end: Option<Lsn>,
}

impl Tree {
    /// Builds the tree from the parsed history files (timeline → its forks).
    pub fn new(histories: &BTreeMap<u32, Vec<Fork>>) -> Tree {
        let mut parents = BTreeMap::new();
        // What descendants say (newest first), then each timeline's own file wins.
        for (&own, forks) in histories.iter().rev() {
            let children = forks.iter().skip(1).map(|f| f.parent).chain([own]);
            for (fork, child) in forks.iter().zip(children) {
                parents.entry(child).or_insert(*fork);
            }
        }
        for (&own, forks) in histories {
            if let Some(last) = forks.last() {
                parents.insert(own, *last);
            }
        }
        Tree { parents }
    }

    pub fn parent(&self, timeline: u32) -> Option<Fork> {
        self.parents.get(&timeline).copied()
    }

    /// Every timeline the tree knows (as a child or as a parent).
    pub fn timelines(&self) -> BTreeSet<u32> {
        self.parents
            .iter()
            .flat_map(|(&c, f)| [c, f.parent])
            .collect()
    }

    /// Children of `timeline` with their switch points.
    pub fn children(&self, timeline: u32) -> impl Iterator<Item = (u32, Lsn)> + '_ {
        self.parents
            .iter()
            .filter(move |(_, f)| f.parent == timeline)
            .map(|(&c, f)| (c, f.switch))
    }

    /// The ancestry of `target`, root first. Stops at a timeline whose parent is
    /// unknown (timeline 1, or a missing history file).
    pub fn path(&self, target: u32) -> Vec<Span> {
        let mut rev = Vec::new();
        let mut cur = Span {
            timeline: target,
            begin: Lsn(0),
            end: None,
        };
        // Parents below their child only: a damaged tree cannot loop.
        while let Some(fork) = self
            .parent(cur.timeline)
            .filter(|f| f.parent < cur.timeline)
        {
            cur.begin = fork.switch;
            rev.push(cur);
            cur = Span {
                timeline: fork.parent,
                begin: Lsn(0),
                end: Some(fork.switch),
            };
        }
        rev.push(cur);
        rev.reverse();
        rev
    }
}

/// Why a base backup cannot reach a timeline ([`Tree::reaches`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unreachable {
    #[error("its timeline {timeline} is not in the history of the newest timeline {target}")]
    NotAnAncestor { timeline: u32, target: u32 },
    #[error("it started at {start} on timeline {timeline}, after the newest timeline {target} forked off at {fork}")]
    AfterTheFork {
        start: Lsn,
        timeline: u32,
        target: u32,
        fork: Lsn,
    },
}

impl Tree {
    /// Whether recovery from `backup` can follow timeline `target`.
    pub fn reaches(&self, backup: &BackupLabel, target: u32) -> Result<(), Unreachable> {
        let timeline = backup.timeline();
        let path = self.path(target);
        let Some(span) = path.iter().find(|s| s.timeline == timeline) else {
            return Err(Unreachable::NotAnAncestor { timeline, target });
        };
        match span.end {
            Some(fork) if backup.start >= fork => Err(Unreachable::AfterTheFork {
                start: backup.start,
                timeline,
                target,
                fork,
            }),
            _ => Ok(()),
        }
    }
}
