//! Options read by name for the calls gevent gives keyword arguments:
//! [`KillOptions`] (`kill(exception, block, timeout)`, `killall(…)`) and
//! [`WaitOptions`] (`wait(objects, timeout, count)`, `iwait(…)`,
//! `joinall(greenlets, timeout, raise_error, count)`).

use std::time::Duration;

use super::error::KillError;

/// How to kill: gevent's `kill(exception=GreenletExit, block=True,
/// timeout=None)`, read by name. The default is a blocking `GreenletExit`
/// kill with no timeout.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{KillOptions, killall_with, sleep, spawn};
/// use std::time::Duration;
///
/// let gs: Vec<_> = (0..3).map(|_| spawn(|| sleep(Duration::from_secs(60)))).collect();
/// killall_with(&gs, KillOptions::new().nowait()).unwrap(); // kill(block=False)
/// assert!(gs.iter().all(|g| g.is_ready())); // none had run yet: dead at once
/// # });
/// ```
#[derive(Debug, Clone)]
#[must_use = "options do nothing until passed to a kill call"]
pub struct KillOptions {
    pub(crate) error: KillError,
    pub(crate) block: bool,
    pub(crate) timeout: Option<Duration>,
}

impl KillOptions {
    /// A blocking `GreenletExit` kill with no timeout.
    pub fn new() -> KillOptions {
        KillOptions {
            error: KillError::GreenletExit,
            block: true,
            timeout: None,
        }
    }

    /// Kill with a user error instead of `GreenletExit` (gevent's
    /// `exception=`): the greenlet ends unsuccessfully and it is reported.
    pub fn error<E>(self, error: E) -> KillOptions
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        self.kill_error(KillError::new(error))
    }

    /// Kill with this [`KillError`].
    pub fn kill_error(mut self, error: KillError) -> KillOptions {
        self.error = error;
        self
    }

    /// Do not wait for the greenlet to die (gevent's `block=False`).
    pub fn nowait(mut self) -> KillOptions {
        self.block = false;
        self
    }

    /// Wait at most `timeout` for it to die (gevent's `timeout=`).
    pub fn timeout(mut self, timeout: Duration) -> KillOptions {
        self.timeout = Some(timeout);
        self
    }
}

impl Default for KillOptions {
    fn default() -> Self {
        KillOptions::new()
    }
}

/// How to wait for several objects: gevent's `timeout`, `count` and
/// (`joinall` only) `raise_error`, read by name. The default waits for all
/// of them, without a timeout.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{WaitOptions, spawn, sleep, wait_with};
/// use std::time::Duration;
///
/// let fast = spawn(|| ());
/// let slow = spawn(|| sleep(Duration::from_secs(60)));
/// let done = wait_with([&fast, &slow], WaitOptions::new().count(1)).unwrap();
/// assert_eq!(done.len(), 1);
/// slow.kill().unwrap();
/// # });
/// ```
#[derive(Debug, Clone, Copy, Default)]
#[must_use = "options do nothing until passed to a wait call"]
pub struct WaitOptions {
    pub(crate) timeout: Option<Duration>,
    pub(crate) count: Option<usize>,
    pub(crate) raise_error: bool,
}

impl WaitOptions {
    /// Wait for all, without a timeout.
    pub fn new() -> WaitOptions {
        WaitOptions::default()
    }

    /// Give up after `timeout`, returning what is ready by then.
    pub fn timeout(mut self, timeout: Duration) -> WaitOptions {
        self.timeout = Some(timeout);
        self
    }

    /// Return once `count` objects are ready.
    pub fn count(mut self, count: usize) -> WaitOptions {
        self.count = Some(count);
        self
    }

    /// `joinall` only: stop at the first greenlet that failed and return
    /// its error (gevent's `raise_error=True`).
    pub fn raise_error(mut self) -> WaitOptions {
        self.raise_error = true;
        self
    }
}
