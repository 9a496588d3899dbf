//! Bounded waiting. Every loop in the driver that waits for the SMMU goes
//! through [`poll_until`], which gives up after a time budget *or* a number
//! of polls, whichever comes first: a stuck SMMU (or a stuck clock) turns
//! into an error value, never a hang.

/// Monotonic time source for poll timeouts.
pub trait Clock {
    /// Monotonic time in nanoseconds. Only differences are used.
    fn now_ns(&self) -> u64;

    /// Called between two polls. The default is a spin-loop hint; a platform
    /// may wait for an event or a short delay instead.
    fn relax(&self) {
        core::hint::spin_loop();
    }
}

impl<T: Clock + ?Sized> Clock for &T {
    fn now_ns(&self) -> u64 {
        (**self).now_ns()
    }
    fn relax(&self) {
        (**self).relax()
    }
}

/// A clock that never advances: waits are bounded by
/// [`PollBudget::max_polls`] alone. Useful before a timer is set up.
#[derive(Clone, Copy, Debug, Default)]
pub struct PollCountOnly;

impl Clock for PollCountOnly {
    fn now_ns(&self) -> u64 {
        0
    }
}

/// How long a single wait may last.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PollBudget {
    /// Give up once this much time has passed since the wait began.
    pub timeout_ns: u64,
    /// Give up after this many unsuccessful polls even if the clock says
    /// there is time left (a clock that does not move must not hang us).
    pub max_polls: u64,
}

impl PollBudget {
    /// One second (the Linux driver's CMD_SYNC timeout) or ten million
    /// polls.
    pub const DEFAULT: Self = Self {
        timeout_ns: 1_000_000_000,
        max_polls: 10_000_000,
    };
}

impl Default for PollBudget {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The wait ran out of budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expired;

/// Calls `poll` until it returns `Some`, at most `budget` long. `poll` is
/// always called at least once.
pub fn poll_until<C: Clock + ?Sized, T>(
    clock: &C,
    budget: PollBudget,
    mut poll: impl FnMut() -> Option<T>,
) -> Result<T, Expired> {
    let start = clock.now_ns();
    let mut polls: u64 = 0;
    loop {
        if let Some(value) = poll() {
            return Ok(value);
        }
        polls += 1;
        if polls >= budget.max_polls || clock.now_ns().wrapping_sub(start) >= budget.timeout_ns {
            return Err(Expired);
        }
        clock.relax();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::cell::Cell;

    struct Ticking(Cell<u64>);
    impl Clock for Ticking {
        fn now_ns(&self) -> u64 {
            let t = self.0.get();
            self.0.set(t + 10);
            t
        }
    }

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut n = 0;
        let r = poll_until(&PollCountOnly, PollBudget::DEFAULT, || {
            n += 1;
            (n == 3).then_some(n)
        });
        assert_eq!(r, Ok(3));
    }

    #[test]
    fn a_stopped_clock_is_bounded_by_the_poll_count() {
        let mut n = 0u64;
        let budget = PollBudget {
            timeout_ns: u64::MAX,
            max_polls: 1000,
        };
        let r: Result<(), _> = poll_until(&PollCountOnly, budget, || {
            n += 1;
            None
        });
        assert_eq!(r, Err(Expired));
        assert_eq!(n, 1000);
    }

    #[test]
    fn the_clock_bounds_the_wait() {
        let clock = Ticking(Cell::new(0));
        let budget = PollBudget {
            timeout_ns: 100,
            max_polls: u64::MAX,
        };
        let mut n = 0u64;
        let r: Result<(), _> = poll_until(&clock, budget, || {
            n += 1;
            None
        });
        assert_eq!(r, Err(Expired));
        assert!(n <= 11, "{n} polls");
    }
}
