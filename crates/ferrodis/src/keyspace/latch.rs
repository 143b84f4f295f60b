//! Slot latches: what makes a pipeline's commands atomic (`commands::dispatch::Group`) at the
//! granularity of a hash slot, far finer than a stripe lock.
//!
//! A connection about to run the commands of one read takes the latch of every slot their keys
//! hash to, all at once or none (`try_take`), and holds them, without any stripe lock, until its
//! last command has run. Every command of every other connection checks the latches of its keys'
//! slots while it holds their stripe locks (`held_by_other`) and, if one is held, lets its stripes
//! go and waits (`wait_free`). So no other connection's command on those slots runs between the
//! pipeline's commands, while commands on other slots run on in parallel. Holding no stripe
//! while waiting, and taking all latches or none, nobody waits while holding what another waits
//! for: no deadlock.
//!
//! Commands that reach every key (scripts, FLUSHALL, KEYS, ...) run `exclusive`: one exclusive
//! section at a time (a reentrant lock), no group starts meanwhile, and they begin once the
//! groups running on other threads have ended. A pipeline holding such a command is an exclusive
//! section as a whole, and takes its latches inside it.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

thread_local! {
    /// Latch groups this thread holds (0 or 1).
    static OWN: Cell<usize> = const { Cell::new(0) };
}

pub struct Latches {
    /// Per hash slot: the id of the connection holding its latch, 0 when free.
    slots: Box<[AtomicU64]>,
    /// Groups holding latches (or about to).
    active: AtomicUsize,
    /// Exclusive sections running or waiting.
    exclusive: AtomicUsize,
    /// One exclusive section at a time (reentrant: a script inside an exclusive pipeline).
    exclusive_lock: parking_lot::ReentrantMutex<()>,
}

impl Default for Latches {
    fn default() -> Self {
        Latches {
            slots: (0..super::SLOTS).map(|_| AtomicU64::new(0)).collect(),
            active: AtomicUsize::new(0),
            exclusive: AtomicUsize::new(0),
            exclusive_lock: parking_lot::ReentrantMutex::new(()),
        }
    }
}

/// Spins a little, then lets other threads run.
fn backoff(round: &mut u32) {
    *round += 1;
    if *round < 64 {
        std::hint::spin_loop();
    } else if *round < 256 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(std::time::Duration::from_micros(50));
    }
}

impl Latches {
    /// Takes the latches of `slots` (ascending, no repeats) for connection `owner`: all of
    /// them, or none when one is held or an exclusive section runs.
    /// `in_exclusive`: the caller runs an exclusive section (which other groups wait for).
    pub fn try_take(&self, slots: &[u16], owner: u64, in_exclusive: bool) -> bool {
        if !in_exclusive && self.exclusive.load(Ordering::SeqCst) > 0 {
            return false;
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        if !in_exclusive && self.exclusive.load(Ordering::SeqCst) > 0 {
            self.active.fetch_sub(1, Ordering::SeqCst);
            return false;
        }
        for (i, &s) in slots.iter().enumerate() {
            if self.slots[s as usize].compare_exchange(0, owner, Ordering::AcqRel, Ordering::Relaxed).is_err() {
                for &t in &slots[..i] {
                    self.slots[t as usize].store(0, Ordering::Release);
                }
                self.active.fetch_sub(1, Ordering::SeqCst);
                return false;
            }
        }
        OWN.with(|c| c.set(c.get() + 1));
        true
    }

    /// `try_take` until it succeeds.
    pub fn take(&self, slots: &[u16], owner: u64, in_exclusive: bool) {
        let mut round = 0;
        while !self.try_take(slots, owner, in_exclusive) {
            backoff(&mut round);
        }
    }

    /// Lets go of latches taken by `try_take`.
    pub fn release(&self, slots: &[u16]) {
        for &s in slots {
            self.slots[s as usize].store(0, Ordering::Release);
        }
        OWN.with(|c| c.set(c.get().saturating_sub(1)));
        self.active.fetch_sub(1, Ordering::SeqCst);
    }

    /// True when no group holds latches (one load: the common case costs nothing more).
    #[inline]
    pub fn quiet(&self) -> bool {
        self.active.load(Ordering::Acquire) == 0
    }

    /// True when another connection than `me` holds the latch of `slot`.
    #[inline]
    pub fn held_by_other(&self, slot: usize, me: u64) -> bool {
        let h = self.slots[slot].load(Ordering::Acquire);
        h != 0 && h != me
    }

    /// Waits until no other connection than `me` holds the latch of any of `slots`.
    pub fn wait_free(&self, slots: impl Iterator<Item = usize> + Clone, me: u64) {
        let mut round = 0;
        while slots.clone().any(|s| self.held_by_other(s, me)) {
            backoff(&mut round);
        }
    }

    /// Starts an exclusive section: one at a time, no group starts until the guard is dropped,
    /// and this returns once the groups of other threads have ended. Take it before any stripe
    /// lock (groups need stripes to end). Sections nest on one thread.
    pub fn exclusive(&self) -> Exclusive<'_> {
        let lock = self.exclusive_lock.lock();
        self.exclusive.fetch_add(1, Ordering::SeqCst);
        let own = OWN.with(|c| c.get());
        let mut round = 0;
        while self.active.load(Ordering::SeqCst) > own {
            backoff(&mut round);
        }
        Exclusive { latches: self, _lock: lock }
    }
}

/// An exclusive section (`Latches::exclusive`).
pub struct Exclusive<'a> {
    latches: &'a Latches,
    _lock: parking_lot::ReentrantMutexGuard<'a, ()>,
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        self.latches.exclusive.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latches_are_taken_all_or_none_and_shut_out_other_connections() {
        let l = Latches::default();
        assert!(l.quiet());
        assert!(l.try_take(&[1, 5, 9], 7, false));
        assert!(!l.quiet());
        assert!(l.held_by_other(5, 8) && !l.held_by_other(5, 7) && !l.held_by_other(6, 8));
        // Overlapping at slot 9: nothing taken.
        assert!(!l.try_take(&[2, 9], 8, false));
        assert!(!l.held_by_other(2, 7));
        l.release(&[1, 5, 9]);
        assert!(l.quiet() && !l.held_by_other(5, 8));
        assert!(l.try_take(&[2, 9], 8, false));
        l.release(&[2, 9]);
        // An exclusive section keeps groups out.
        let x = l.exclusive();
        assert!(!l.try_take(&[3], 1, false));
        // ... but the section's own pipeline takes its latches inside it.
        assert!(l.try_take(&[4], 2, true));
        // A script inside that pipeline nests a section without waiting for itself.
        drop(l.exclusive());
        l.release(&[4]);
        drop(x);
        assert!(l.try_take(&[3], 1, false));
        l.release(&[3]);
    }
}
