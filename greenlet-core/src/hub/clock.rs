//! The hub's clock: every hub deadline is computed from [`now`], so a test
//! can pause it and let the loop jump over waits (tokio's `time::pause`).
//!
//! # Design
//!
//! The clock is per thread (one hub per thread) and lives in a `const`
//! thread-local `Cell` of its own, outside the hub's `RefCell`: deadlines are
//! computed inside hub borrows (`start_later`) and outside them alike.
//!
//! * **Running** (the default): `now()` is `Instant::now()` plus a fixed
//!   shift, zero until the clock was paused once. A resumed clock keeps the
//!   virtual time it had reached and runs at real speed from there.
//! * **Paused**: `now()` returns a frozen instant. It moves only through
//!   [`advance`] or when the loop has nothing to run: then, instead of
//!   sleeping until the next timer, the loop jumps the clock to that
//!   deadline (after a zero-timeout poll for I/O when fds are registered).
//!   A paused hub never sleeps for a timer, so a 30 s timeout in a test takes
//!   microseconds, and timers fire in the same order as in real time.
//!
//! The clock is reset to real time when the hub scope ends.

use std::cell::Cell;
use std::time::{Duration, Instant};

/// The clock's state (`Copy`, so the thread-local is a plain `Cell`).
#[derive(Debug, Clone, Copy)]
struct State {
    /// `Some(t)`: paused at virtual instant `t`.
    frozen: Option<Instant>,
    /// While running: virtual `now` = `real now + ahead - behind` (an
    /// `Instant` cannot hold a signed shift; one of the two is zero).
    ahead: Duration,
    behind: Duration,
}

const REAL: State = State {
    frozen: None,
    ahead: Duration::ZERO,
    behind: Duration::ZERO,
};

thread_local! {
    static CLOCK: Cell<State> = const { Cell::new(REAL) };
}

/// The hub clock's current instant.
#[inline]
pub(crate) fn current() -> Instant {
    let s = CLOCK.get();
    match s.frozen {
        Some(t) => t,
        None if s.ahead.is_zero() && s.behind.is_zero() => Instant::now(),
        None => shifted(Instant::now(), s),
    }
}

fn shifted(real: Instant, s: State) -> Instant {
    // `checked_*` can only fail near the ends of `Instant`'s range.
    real.checked_add(s.ahead)
        .and_then(|t| t.checked_sub(s.behind))
        .unwrap_or(real)
}

/// `true` while the clock is paused.
#[inline]
pub(crate) fn paused() -> bool {
    CLOCK.get().frozen.is_some()
}

/// Moves a paused clock forward to `to` (never backwards).
pub(crate) fn jump_to(to: Instant) {
    let mut s = CLOCK.get();
    if let Some(t) = s.frozen
        && to > t
    {
        s.frozen = Some(to);
        CLOCK.set(s);
    }
}

/// Back to real time (hub scope end).
pub(crate) fn reset() {
    CLOCK.set(REAL);
}

/// Pauses the hub clock of this thread (tokio's `time::pause`).
///
/// From now on [`now`] stands still and moves only by [`advance`], or when
/// the hub has nothing to run: then it jumps straight to the next timer's
/// deadline instead of sleeping. Sleeps, timeouts, `join_timeout` and
/// `spawn_later` all use this clock, so a test of a 30 s timeout runs in
/// microseconds and sees timers fire in real-time order. Pausing a paused
/// clock does nothing. The clock goes back to real time when the hub scope
/// ends; `#[greenlet::test(start_paused = true)]` pauses it for a test.
///
/// While paused, fd waits still see real readiness, but a timer is never
/// waited for in real time: with fds registered the loop polls them without
/// blocking, then jumps to the next deadline (as tokio does). While a
/// thread-pool job ([`spawn_blocking`](crate::spawn_blocking)) started on
/// this thread is pending and its handle alive, the loop does not jump: it
/// waits in real time for the job (tokio's rule for `spawn_blocking`), so a
/// job's result is never beaten by a timeout it would have met.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{hub, sleep, with_timeout};
/// use std::time::{Duration, Instant};
///
/// hub::pause();
/// let wall = Instant::now();
/// let start = hub::now();
/// let r = with_timeout(Duration::from_secs(30), || sleep(Duration::from_secs(3600)));
/// assert!(r.is_err());
/// assert_eq!(hub::now() - start, Duration::from_secs(30));
/// assert!(wall.elapsed() < Duration::from_secs(1));
/// hub::resume();
/// # });
/// ```
pub fn pause() {
    let mut s = CLOCK.get();
    if s.frozen.is_none() {
        s.frozen = Some(current());
        CLOCK.set(s);
    }
}

/// Resumes a paused hub clock (tokio's `time::resume`): it runs at real
/// speed again from the virtual instant it had reached. Does nothing when it
/// is not paused.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::hub;
/// use std::time::Duration;
///
/// hub::pause();
/// hub::advance(Duration::from_secs(60));
/// hub::resume();
/// assert!(!hub::is_paused());
/// # });
/// ```
pub fn resume() {
    let s = CLOCK.get();
    if let Some(virtual_now) = s.frozen {
        let real = Instant::now();
        let (ahead, behind) = if virtual_now >= real {
            (virtual_now - real, Duration::ZERO)
        } else {
            (Duration::ZERO, real - virtual_now)
        };
        CLOCK.set(State {
            frozen: None,
            ahead,
            behind,
        });
    }
}

/// `true` while this thread's hub clock is paused ([`pause`]).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// assert!(!greenlet::hub::is_paused());
/// greenlet::hub::pause();
/// assert!(greenlet::hub::is_paused());
/// # });
/// ```
pub fn is_paused() -> bool {
    paused()
}

/// Moves the paused hub clock forward by `duration` and lets the hub run
/// what became due (tokio's `time::advance`): timers whose deadline passed
/// fire, and the greenlets they wake run before this returns.
///
/// # Switches
///
/// Always (a fair yield, like `sleep(Duration::ZERO)`), so that what the
/// timers woke can run. A kill or timeout delivered meanwhile unwinds the
/// caller.
///
/// # Panics
///
/// When the clock is not paused, and inside a hub callback.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{hub, sleep, spawn};
/// use std::time::Duration;
///
/// hub::pause();
/// let g = spawn(|| sleep(Duration::from_secs(10)));
/// sleep(Duration::ZERO); // g starts sleeping
/// hub::advance(Duration::from_secs(9));
/// assert!(!g.is_ready());
/// hub::advance(Duration::from_secs(1));
/// assert!(g.is_ready());
/// # });
/// ```
#[track_caller]
pub fn advance(duration: Duration) {
    let s = CLOCK.get();
    let Some(t) = s.frozen else {
        panic!("hub::advance: the hub clock is not paused; call `hub::pause()` first");
    };
    jump_to(t.checked_add(duration).unwrap_or(t));
    // One pass through the loop fires what is due; the greenlets it woke
    // were queued before ours, so they run first. Another pass lets the
    // callbacks they queued (links) run too.
    super::yield_now("hub::advance");
    super::yield_now("hub::advance");
}

/// The hub clock's current instant: `Instant::now()` unless the clock was
/// paused (then the virtual instant it stands at). Sleeps, timeouts and
/// every other hub deadline are computed from it.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{hub, sleep};
/// use std::time::Duration;
///
/// let t = hub::now();
/// sleep(Duration::from_millis(5));
/// assert!(hub::now() - t >= Duration::from_millis(5));
/// # });
/// ```
pub fn now() -> Instant {
    current()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paused_clock_stands_still_and_resume_keeps_virtual_time() {
        reset();
        pause();
        let t = current();
        std::thread::sleep(Duration::from_millis(2));
        assert_eq!(current(), t);
        jump_to(t + Duration::from_secs(100));
        assert_eq!(current(), t + Duration::from_secs(100));
        jump_to(t); // never backwards
        assert_eq!(current(), t + Duration::from_secs(100));
        resume();
        let after = current();
        assert!(after >= t + Duration::from_secs(100));
        assert!(after < t + Duration::from_secs(101));
        reset();
        assert!(!paused());
    }
}
