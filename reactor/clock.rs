//! The loop's cached clock.
//!
//! Reading the monotonic clock costs a (v)syscall, and callbacks that each read it would each see
//! a different "now". So the loop reads it once per iteration, caches the result, and every
//! callback of that iteration sees the same time through [`Core::now`]. Timers are measured
//! against the cached value in whole milliseconds since the loop started, like libuv's
//! `uv_now()`.
//!
//! The special problem of time updates: a callback that runs for a long time makes the cached
//! time stale, and a timer it arms would then expire early by that much. Such a callback can call
//! [`Core::update_time`] first. The loop itself also refreshes the time after a poll that may have
//! slept, so that I/O callbacks never see a time from before the wait.
//!
//! For tests the clock can be *virtual* ([`Builder::virtual_clock`]): it stands still while the
//! loop has work, and when the loop would sleep until a timer it jumps straight to the deadline
//! instead. Timer tests then run instantly and see exact times.
//!
//! [`Core::now`]: crate::Core::now
//! [`Core::update_time`]: crate::Core::update_time
//! [`Builder::virtual_clock`]: crate::Builder::virtual_clock

use std::time::{Duration, Instant};

pub(crate) struct Clock {
    /// When the loop was created: loop time zero.
    origin: Instant,
    /// The cached time.
    now: Instant,
    /// `now - origin` in whole milliseconds: the timer queue's time scale.
    now_ms: u64,
    /// Where the next millisecond starts: `origin + (now_ms + 1) ms`.
    next_ms: Instant,
    is_virtual: bool,
}

impl Clock {
    pub(crate) fn new(is_virtual: bool) -> Self {
        let origin = Instant::now();
        let next_ms = origin + Duration::from_millis(1);
        Clock { origin, now: origin, now_ms: 0, next_ms, is_virtual }
    }

    /// Reads the real clock. A virtual clock only moves through [`Clock::advance`].
    pub(crate) fn update(&mut self) {
        if !self.is_virtual {
            self.set(Instant::now());
        }
    }

    /// Moves a virtual clock forward; ignored by the real one.
    pub(crate) fn advance(&mut self, by: Duration) {
        if self.is_virtual {
            self.set(self.now + by);
        }
    }

    fn set(&mut self, now: Instant) {
        self.now = now;
        // A busy loop reads the clock many times per millisecond: one comparison tells that
        // `now_ms` has not changed, and the division is done once per millisecond at most.
        if now < self.next_ms {
            return;
        }
        // `Instant` is monotonic, so `now >= origin` and the subtraction cannot panic.
        self.now_ms = u64::try_from((now - self.origin).as_millis()).unwrap_or(u64::MAX);
        let next = self.now_ms.saturating_add(1);
        // Past `Instant`'s range (never, in practice) every call takes the slow path.
        self.next_ms = self.origin.checked_add(Duration::from_millis(next)).unwrap_or(now);
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    pub(crate) fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub(crate) fn is_virtual(&self) -> bool {
        self.is_virtual
    }
}

/// Whole milliseconds in `duration`, rounded up so that a timer never fires early.
pub(crate) fn ceil_ms(duration: Duration) -> u64 {
    let ms = duration.as_millis() + u128::from(duration.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_up_to_whole_milliseconds() {
        assert_eq!(ceil_ms(Duration::ZERO), 0);
        assert_eq!(ceil_ms(Duration::from_micros(1)), 1);
        assert_eq!(ceil_ms(Duration::from_millis(5)), 5);
        assert_eq!(ceil_ms(Duration::from_micros(5_001)), 6);
        assert_eq!(ceil_ms(Duration::MAX), u64::MAX);
    }

    #[test]
    fn a_virtual_clock_moves_only_when_advanced() {
        let mut clock = Clock::new(true);
        let start = clock.now();
        clock.update();
        assert_eq!(clock.now(), start);
        clock.advance(Duration::from_millis(1500));
        assert_eq!(clock.now() - start, Duration::from_millis(1500));
        assert_eq!(clock.now_ms(), 1500);
    }
}
