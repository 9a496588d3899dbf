//! A bounded per-SMMU log of decoded events. Fixed capacity, no allocation,
//! no panics: when full it drops either the oldest or the newest record and
//! counts what it dropped, so a fault storm costs a counter, not memory.

use super::event::Event;

/// What to drop when the log is full.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverflowPolicy {
    /// Keep the most recent faults (overwrite the oldest).
    DropOldest,
    /// Keep the first faults, which usually show the root cause.
    DropNewest,
}

pub struct FaultLog<const N: usize> {
    buf: [Event; N],
    /// Index of the oldest record.
    head: usize,
    len: usize,
    policy: OverflowPolicy,
    recorded: u64,
    dropped: u64,
}

impl<const N: usize> FaultLog<N> {
    pub const fn new(policy: OverflowPolicy) -> Self {
        Self {
            buf: [Event::EMPTY; N],
            head: 0,
            len: 0,
            policy,
            recorded: 0,
            dropped: 0,
        }
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    pub const fn len(&self) -> usize {
        self.len
    }

    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Records pushed since creation (kept or not).
    pub const fn recorded(&self) -> u64 {
        self.recorded
    }

    /// Records lost to the overflow policy.
    pub const fn dropped(&self) -> u64 {
        self.dropped
    }

    pub const fn policy(&self) -> OverflowPolicy {
        self.policy
    }

    /// Adds a record; never fails, never allocates.
    pub fn push(&mut self, event: Event) {
        self.recorded = self.recorded.saturating_add(1);
        if N == 0 {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        if self.len < N {
            let slot = (self.head + self.len) % N;
            self.buf[slot] = event;
            self.len += 1;
            return;
        }
        self.dropped = self.dropped.saturating_add(1);
        if self.policy == OverflowPolicy::DropOldest {
            self.buf[self.head] = event;
            self.head = (self.head + 1) % N;
        }
    }

    /// Removes and returns the oldest record.
    pub fn pop(&mut self) -> Option<Event> {
        if self.len == 0 {
            return None;
        }
        let e = self.buf[self.head];
        self.head = (self.head + 1) % N;
        self.len -= 1;
        Some(e)
    }

    /// Records from oldest to newest.
    pub fn iter(&self) -> impl Iterator<Item = &Event> + '_ {
        (0..self.len).map(move |i| &self.buf[(self.head + i) % N])
    }

    /// Forgets all records (counters are kept).
    pub fn clear(&mut self) {
        self.head = 0;
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::smmu::event::EventKind;
    use std::vec::Vec;

    fn ev(sid: u32) -> Event {
        Event::decode([0x10 | (u64::from(sid) << 32), 0, 0, 0])
    }

    fn sids<const N: usize>(log: &FaultLog<N>) -> Vec<u32> {
        log.iter().map(|e| e.sid).collect()
    }

    #[test]
    fn keeps_order_until_full() {
        let mut log = FaultLog::<4>::new(OverflowPolicy::DropOldest);
        assert!(log.is_empty());
        for s in 0..3 {
            log.push(ev(s));
        }
        assert_eq!(sids(&log), [0, 1, 2]);
        assert_eq!(log.pop().map(|e| e.sid), Some(0));
        assert_eq!(log.len(), 2);
        assert_eq!(
            log.iter().next().map(|e| e.kind),
            Some(EventKind::Translation)
        );
    }

    #[test]
    fn drop_oldest_overwrites_and_counts() {
        let mut log = FaultLog::<4>::new(OverflowPolicy::DropOldest);
        for s in 0..10 {
            log.push(ev(s));
        }
        assert_eq!(sids(&log), [6, 7, 8, 9]);
        assert_eq!(log.dropped(), 6);
        assert_eq!(log.recorded(), 10);
    }

    #[test]
    fn drop_newest_keeps_the_first() {
        let mut log = FaultLog::<4>::new(OverflowPolicy::DropNewest);
        for s in 0..10 {
            log.push(ev(s));
        }
        assert_eq!(sids(&log), [0, 1, 2, 3]);
        assert_eq!(log.dropped(), 6);
        log.clear();
        assert!(log.is_empty());
        log.push(ev(42));
        assert_eq!(sids(&log), [42]);
        assert_eq!(log.dropped(), 6);
    }

    #[test]
    fn zero_capacity_only_counts() {
        let mut log = FaultLog::<0>::new(OverflowPolicy::DropOldest);
        log.push(ev(1));
        assert_eq!((log.len(), log.dropped(), log.recorded()), (0, 1, 1));
        assert_eq!(log.pop(), None);
        assert_eq!(log.iter().count(), 0);
    }
}
