//! The blocked-hub monitor (gevent's `monitor_thread` /
//! `max_blocking_time`), the loop counters, and the dump signal.
//!
//! # Design
//!
//! * **Heartbeat.** Each monitored hub shares a [`Beat`] with one watchdog
//!   thread per process. The hub bumps `turn` with a relaxed store at every
//!   loop iteration boundary (not per switch) and marks `idle` while it
//!   waits for I/O or timers. Only the hub's thread writes `turn`, `idle`
//!   and `has_work`; only the watchdog writes `flagged`.
//! * **Detection.** The watchdog wakes every quarter of the threshold. A
//!   hub that is not idle, has work (live greenlets or timers) and whose
//!   `turn` has not moved for `max_blocking_time` is *blocked*: the watchdog
//!   sets `flagged`, once per incident.
//! * **Report.** A greenlet's name and spawn site live in `!Send` hub data
//!   the watchdog cannot read, and the blocked thread cannot be made to
//!   talk while it is blocked without a signal handler (which could only
//!   call async-signal-safe code: no formatting, no locks, no backtrace
//!   symbolisation). So the report is written on the hub's thread, by the
//!   loop, the moment the culprit gives control back: after each switch the
//!   loop tests `flagged` (one relaxed load when the monitor is on, a
//!   `None` test when it is off) and reports the greenlet (or callback, or
//!   main-greenlet code) it just ran, with the turn's length. A hub that
//!   stays blocked for `max(1 s, 10 × threshold)` is also reported by the
//!   watchdog itself (thread name only), so a deadlocked hub is not silent.
//! * **No backtrace.** Taking another thread's backtrace needs a signal
//!   handler that unwinds the interrupted stack; `std::backtrace` is not
//!   async-signal-safe (it allocates and takes a lock), so the monitor does
//!   not do it. The report names the culprit instead.
//! * **fork.** The registry is a `Mutex`; a forked child never locks it
//!   (the watchdog does not exist there): hubs of a child are not
//!   monitored.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use super::reactor::sys::monotonic_coarse_nanos as coarse_nanos;
use super::{Hub, LOOP, MAIN, warn, with_hub};

// =============================================================== counters

/// Loop counters behind [`Stats`](super::Stats): plain integers, written on
/// the hub's thread only.
#[derive(Debug, Clone, Copy)]
pub(super) struct Counters {
    pub(super) switches: u64,
    pub(super) iterations: u64,
    pub(super) timers_fired: u64,
    /// Nanoseconds (coarse clock), kept as integers: cheaper per turn
    /// than `Duration` arithmetic.
    longest_turn: u64,
    /// When the running turn started (coarse clock, nanoseconds).
    turn_started: u64,
}

impl Counters {
    pub(super) const ZERO: Counters = Counters {
        switches: 0,
        iterations: 0,
        timers_fired: 0,
        longest_turn: 0,
        turn_started: 0,
    };

    /// The longest loop turn so far.
    pub(super) fn longest_turn(&self) -> Duration {
        Duration::from_nanos(self.longest_turn)
    }
}

impl Hub {
    /// Bytes of stack mapped by this hub: idle stacks by their size, and
    /// one stack per started greenlet (its own, or the size it asked for
    /// while its stack is out of the slot, running). Kept apart from
    /// `stacks.rs` on purpose: it reads only `Stack::size` and the pool.
    pub(super) fn stack_bytes(&self) -> usize {
        let idle: usize = self
            .stacks
            .pool
            .iter()
            .chain(&self.stacks.spare)
            .map(|s| s.size())
            .sum();
        let used: usize = self
            .slots
            .iter()
            .skip(1)
            .filter(|s| s.state != super::SlotState::Free && s.ran)
            .map(|s| match &s.stack {
                Some(stack) => stack.size(),
                None if s.stack_size != 0 => s.stack_size as usize,
                None => self.config.stack_size,
            })
            .sum();
        idle + used
    }
}

// =============================================================== heartbeat

/// What a hub shares with the watchdog (see module docs).
#[derive(Debug)]
pub(super) struct Beat {
    turn: AtomicU64,
    idle: AtomicBool,
    has_work: AtomicBool,
    /// Set by the watchdog: the running turn is over the threshold.
    flagged: AtomicBool,
    thread: String,
}

/// Registered heartbeats; `None` in a forked child (see module docs).
struct Registry {
    beats: Mutex<Vec<Weak<Beat>>>,
    pid: u32,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

/// The threshold in nanoseconds; 0 = off; `u64::MAX` = not read yet.
static THRESHOLD: AtomicU64 = AtomicU64::new(u64::MAX);

/// Environment variable read once, at the first hub's start:
/// `GREENLET_MAX_BLOCKING_TIME=100ms` (`ms`, `s` or `us` suffix; a bare
/// number is milliseconds), `0` or `off` turns the monitor off.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// assert_eq!(greenlet::hub::MAX_BLOCKING_TIME_ENV, "GREENLET_MAX_BLOCKING_TIME");
/// ```
pub const MAX_BLOCKING_TIME_ENV: &str = "GREENLET_MAX_BLOCKING_TIME";

/// The default threshold in builds with debug assertions.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use std::time::Duration;
/// assert_eq!(greenlet::hub::DEFAULT_MAX_BLOCKING_TIME, Duration::from_millis(100));
/// ```
pub const DEFAULT_MAX_BLOCKING_TIME: Duration = Duration::from_millis(100);

fn parse_env(value: &str) -> Option<Duration> {
    let v = value.trim();
    if v == "off" || v == "0" {
        return Some(Duration::ZERO);
    }
    let (num, unit) = match v.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => v.split_at(i),
        None => (v, "ms"),
    };
    let n: f64 = num.parse().ok()?;
    let secs = match unit.trim() {
        "s" => n,
        "ms" => n / 1e3,
        "us" => n / 1e6,
        _ => return None,
    };
    Duration::try_from_secs_f64(secs).ok()
}

fn threshold_nanos() -> u64 {
    let t = THRESHOLD.load(Relaxed);
    if t != u64::MAX {
        return t;
    }
    let default = if cfg!(debug_assertions) {
        DEFAULT_MAX_BLOCKING_TIME
    } else {
        Duration::ZERO
    };
    let d = match std::env::var(MAX_BLOCKING_TIME_ENV) {
        Ok(v) => parse_env(&v).unwrap_or_else(|| {
            warn(format_args!(
                "greenlet: ignoring {MAX_BLOCKING_TIME_ENV}={v:?} (expected e.g. `100ms`, `1s` or `off`)"
            ));
            default
        }),
        Err(_) => default,
    };
    let n = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1);
    // A concurrent `set_max_blocking_time` wins.
    match THRESHOLD.compare_exchange(u64::MAX, n, Relaxed, Relaxed) {
        Ok(_) => n,
        Err(current) => current,
    }
}

/// Sets the blocked-hub monitor's threshold for every hub of the process
/// (gevent's `max_blocking_time`); `None` turns the monitor off.
///
/// With a threshold, a watchdog thread reports any hub whose loop has not
/// turned for that long while it had work (live greenlets or timers): one
/// warning per incident, through `log::warn!` when a logger takes it (else
/// stderr), naming the greenlet that held the hub (its `Display`, spawn
/// site and id) and how long the turn lasted. The typical culprit is a
/// blocking call in a greenlet: `std::thread::sleep`, blocking I/O, a long
/// computation without `sleep(Duration::ZERO)`.
///
/// The default is [`DEFAULT_MAX_BLOCKING_TIME`] in builds with debug
/// assertions and off in release builds; the
/// [`GREENLET_MAX_BLOCKING_TIME`](MAX_BLOCKING_TIME_ENV) environment
/// variable (read once, when the first hub starts) changes that default.
/// Hubs start being watched at their next wait. The cost when on: one
/// relaxed store per loop iteration and one relaxed load per switch.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::hub;
/// use std::time::Duration;
///
/// hub::set_max_blocking_time(Some(Duration::from_millis(250)));
/// assert_eq!(hub::max_blocking_time(), Some(Duration::from_millis(250)));
/// hub::set_max_blocking_time(None);
/// assert_eq!(hub::max_blocking_time(), None);
/// ```
pub fn set_max_blocking_time(threshold: Option<Duration>) {
    let n = threshold.map_or(0, |d| {
        u64::try_from(d.as_nanos()).unwrap_or(u64::MAX - 1).max(1)
    });
    THRESHOLD.store(n, Relaxed);
}

/// The blocked-hub monitor's threshold, `None` when it is off (see
/// [`set_max_blocking_time`]).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// let _ = greenlet::hub::max_blocking_time();
/// ```
pub fn max_blocking_time() -> Option<Duration> {
    match threshold_nanos() {
        0 => None,
        n => Some(Duration::from_nanos(n)),
    }
}

/// Before `fork`: finishes the registry's one-time start in the parent. A
/// child forked while another thread runs that start would find it
/// half-done forever and block its first hub loop (see `hub::before_fork`).
pub(super) fn before_fork() {
    if threshold_nanos() != 0 {
        let _ = registry();
    }
}

fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| {
        std::thread::Builder::new()
            .name("greenlet-monitor".into())
            .spawn(watchdog)
            .map_err(|e| warn(format_args!("greenlet: cannot start the hub monitor: {e}")))
            .ok();
        Registry {
            beats: Mutex::new(Vec::new()),
            pid: std::process::id(),
        }
    })
}

impl Hub {
    /// Starts watching this hub when the monitor is on (at each
    /// `run_loop` entry: one relaxed load when it is already watched or off).
    #[inline]
    pub(super) fn maybe_watch(&mut self) {
        if self.beat.is_none() && THRESHOLD.load(Relaxed) != 0 {
            self.watch_slow();
        }
    }

    #[cold]
    fn watch_slow(&mut self) {
        if threshold_nanos() == 0 {
            return;
        }
        let registry = registry();
        if registry.pid != std::process::id() {
            return; // a forked child: no watchdog here (see module docs)
        }
        let beat = Arc::new(Beat {
            turn: AtomicU64::new(0),
            idle: AtomicBool::new(false),
            has_work: AtomicBool::new(true),
            flagged: AtomicBool::new(false),
            thread: super::dump::thread_label(),
        });
        let mut beats = registry
            .beats
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        beats.retain(|b| b.strong_count() > 0);
        beats.push(Arc::downgrade(&beat));
        drop(beats);
        self.beat = Some(beat);
    }

    /// The native stack enters the loop. If nothing was waiting for the hub
    /// meanwhile (no greenlet, no timer), the main greenlet's code did not
    /// delay anything: the turn starts now.
    #[inline]
    pub(super) fn loop_entered(&mut self) {
        if (self.live == 0 && self.timers.len() == 0) || self.counters.turn_started == 0 {
            self.counters.turn_started = coarse_nanos();
        }
    }

    /// A loop iteration ends (top of `boundary`).
    #[inline(always)]
    pub(super) fn turn_ended(&mut self) {
        let now = coarse_nanos();
        let c = &mut self.counters;
        c.iterations += 1;
        c.longest_turn = c.longest_turn.max(now.saturating_sub(c.turn_started));
        c.turn_started = now;
        if self.beat.is_some() {
            self.beat_turn();
        }
    }

    /// The monitor's part of [`turn_ended`](Self::turn_ended).
    #[inline(never)]
    fn beat_turn(&mut self) {
        if let Some(beat) = &self.beat {
            beat.turn
                .store(beat.turn.load(Relaxed).wrapping_add(1), Relaxed);
            let has_work = self.live > 0 || self.timers.len() > 0;
            if beat.has_work.load(Relaxed) != has_work {
                beat.has_work.store(has_work, Relaxed);
            }
        }
    }

    /// The loop is about to wait for I/O or timers.
    #[inline]
    pub(super) fn wait_begins(&mut self) {
        if let Some(beat) = &self.beat {
            beat.idle.store(true, Relaxed);
        }
    }

    /// The wait is over: a new turn starts now.
    #[inline]
    pub(super) fn wait_ended(&mut self) {
        self.counters.turn_started = coarse_nanos();
        if let Some(beat) = &self.beat {
            beat.turn
                .store(beat.turn.load(Relaxed).wrapping_add(1), Relaxed);
            beat.idle.store(false, Relaxed);
        }
    }

    /// After `culprit` (a slot, or `LOOP` for a callback) gave control
    /// back: report it if the watchdog flagged the turn.
    #[inline(always)]
    pub(super) fn check_stall(&mut self, culprit: u32) {
        if let Some(beat) = &self.beat
            && beat.flagged.load(Relaxed)
        {
            self.report_stall(culprit);
        }
    }

    /// The monitor flagged a stall that [`check_stall`](Self::check_stall)
    /// has not reported yet.
    #[inline]
    pub(super) fn stall_flagged(&self) -> bool {
        self.beat
            .as_ref()
            .is_some_and(|beat| beat.flagged.load(Relaxed))
    }

    #[cold]
    #[inline(never)]
    fn report_stall(&mut self, culprit: u32) {
        let Some(beat) = self.beat.clone() else {
            return;
        };
        beat.flagged.store(false, Relaxed);
        let took = Duration::from_nanos(coarse_nanos().saturating_sub(self.counters.turn_started));
        let who = match culprit {
            LOOP => "a hub callback (link, timer or signal callback, or a post)".to_owned(),
            MAIN => "the main greenlet (code on the native stack between two waits)".to_owned(),
            slot => self
                .dump_entries()
                .into_iter()
                .find(|g| g.id == self.meta.get(slot as usize).map_or(0, |m| m.id))
                .map(|g| {
                    let at = g
                        .spawned_at
                        .map(|at| format!(" (spawned at {}:{})", at.file(), at.line()))
                        .unwrap_or_default();
                    format!("greenlet #{} {}{at}", g.id, g.description)
                })
                .unwrap_or_else(|| format!("<greenlet #{slot}>")),
        };
        let limit = Duration::from_nanos(threshold_nanos());
        let message = format!(
            "greenlet: the hub of thread {} was blocked for {took:?} (max_blocking_time \
             {limit:?}) by {who}; a greenlet must not block its thread (std::thread::sleep, \
             blocking I/O, long computation without sleep(Duration::ZERO))",
            beat.thread
        );
        // Written by a hub callback, outside the hub's borrow: the logger is
        // user code.
        self.push_call(Box::new(move || {
            #[cfg(feature = "tracing")]
            tracing::warn!(
                target: "greenlet",
                blocked_ms = took.as_millis() as u64,
                culprit = %who,
                "hub blocked"
            );
            warn(format_args!("{message}"));
        }));
    }
}

// =============================================================== watchdog

#[derive(Debug)]
struct Watch {
    turn: u64,
    since: Instant,
    flagged: bool,
    long_reported: bool,
}

fn watchdog() {
    let mut watches: HashMap<usize, Watch> = HashMap::new();
    loop {
        let threshold = Duration::from_nanos(match threshold_nanos() {
            0 => {
                watches.clear();
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
            n => n,
        });
        std::thread::sleep(
            (threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(250)),
        );
        let Some(registry) = REGISTRY.get() else {
            continue;
        };
        let beats: Vec<Arc<Beat>> = {
            let mut beats = registry
                .beats
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            beats.retain(|b| b.strong_count() > 0);
            beats.iter().filter_map(Weak::upgrade).collect()
        };
        let now = Instant::now();
        watches.retain(|key, _| beats.iter().any(|b| Arc::as_ptr(b) as usize == *key));
        for beat in &beats {
            let turn = beat.turn.load(Relaxed);
            let w = watches.entry(Arc::as_ptr(beat) as usize).or_insert(Watch {
                turn,
                since: now,
                flagged: false,
                long_reported: false,
            });
            if turn != w.turn || beat.idle.load(Relaxed) || !beat.has_work.load(Relaxed) {
                *w = Watch {
                    turn,
                    since: now,
                    flagged: false,
                    long_reported: false,
                };
                continue;
            }
            let stalled = now - w.since;
            if !w.flagged && stalled >= threshold {
                w.flagged = true;
                beat.flagged.store(true, Relaxed);
            }
            let long = (threshold * 10).max(Duration::from_secs(1));
            if !w.long_reported && stalled >= long {
                w.long_reported = true;
                warn(format_args!(
                    "greenlet: the hub of thread {} has not turned for {stalled:?} and is still \
                     blocked (the culprit is named when it gives control back)",
                    beat.thread
                ));
            }
        }
    }
}

// =============================================================== dump signal

/// Hubs that print their [`dump`](super::dump) when the dump signal comes.
static DUMP_HUBS: Mutex<Vec<Weak<super::handle::Shared>>> = Mutex::new(Vec::new());
/// `dump_on_signal` was called: hubs register at their next wait.
static DUMP_ON: AtomicBool = AtomicBool::new(false);

impl Hub {
    /// Registers this hub for the dump signal when it is on (at each
    /// `run_loop` entry: one relaxed load otherwise).
    #[inline]
    pub(super) fn maybe_register_dump(&mut self) {
        if !self.dump_registered && DUMP_ON.load(Relaxed) {
            self.register_dump_slow();
        }
    }

    #[cold]
    fn register_dump_slow(&mut self) {
        let Some(shared) = self.ensure_shared() else {
            return;
        };
        self.dump_registered = true;
        let mut hubs = DUMP_HUBS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        hubs.retain(|w| w.strong_count() > 0);
        hubs.push(Arc::downgrade(&shared));
    }
}

/// Prints [`dump`](super::dump) for every hub of the process on stderr when
/// the process receives `signum` (for example `libc::SIGUSR2`, or
/// `SIGQUIT` as with the JVM's thread dump): gevent's `print_run_info`
/// for a hung process, triggered with `kill -USR2 <pid>`.
///
/// The signal handler only writes a byte to a pipe; a helper thread then
/// posts a callback to each hub (through its [`HubHandle`](super::HubHandle)
/// queue) and each hub prints its own dump on its own thread at its next
/// loop turn. A hub blocked by a greenlet prints once it is unblocked (the
/// blocked-hub monitor, [`set_max_blocking_time`], names that greenlet).
/// Hubs register at their next wait after this call. Calling it again with
/// the same signal does nothing.
///
/// # Errors
///
/// The OS error if the pipe or the helper thread cannot be created, or
/// `ErrorKind::InvalidInput` for a signal that cannot be handled
/// (`SIGKILL`, `SIGSTOP`, `SIGSEGV` and the other fault signals).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// greenlet::run(|| {
///     greenlet::hub::dump_on_signal(libc::SIGUSR2).unwrap();
///     // `kill -USR2 <pid>` now prints every hub's greenlets.
/// });
/// ```
pub fn dump_on_signal(signum: i32) -> std::io::Result<()> {
    static INSTALLED: Mutex<Vec<i32>> = Mutex::new(Vec::new());
    let mut installed = INSTALLED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if installed.contains(&signum) {
        return Ok(());
    }
    if signal_hook_registry::FORBIDDEN.contains(&signum)
        || signum == libc::SIGKILL
        || signum == libc::SIGSTOP
        || signum <= 0
    {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("dump_on_signal: signal {signum} cannot be handled"),
        ));
    }
    let (reader, writer) = std::os::unix::net::UnixStream::pair()?;
    // The handler never blocks: a full pipe drops the byte (a dump is
    // already pending then).
    writer.set_nonblocking(true)?;
    let fd = {
        use std::os::fd::IntoRawFd;
        // Owned by the signal action for the rest of the process.
        writer.into_raw_fd()
    };
    let target = Arc::new(super::reactor::sys::PipeTarget::new(fd, std::process::id()));
    std::thread::Builder::new()
        .name("greenlet-dump".into())
        .spawn(move || dump_thread(reader))?;
    crate::signal::registry_call(|| super::reactor::sys::register_signal_pipe(signum, target, 1))
        .unwrap_or_else(|| {
        Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "dump_on_signal: the signal registry may be locked in this forked child",
        ))
    })?;
    installed.push(signum);
    DUMP_ON.store(true, Relaxed);
    with_hub(|h| h.maybe_register_dump());
    Ok(())
}

fn dump_thread(mut reader: std::os::unix::net::UnixStream) {
    use std::io::Read;
    let mut buf = [0u8; 64];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return,
        }
        let hubs: Vec<_> = DUMP_HUBS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        for shared in hubs {
            let handle = super::handle::HubHandle::from_shared(shared);
            // A closed hub is gone: nothing to print.
            let _ = handle.post(|| eprintln!("{}", super::dump()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_env;
    use std::time::Duration;

    #[test]
    fn env_values() {
        assert_eq!(parse_env("100"), Some(Duration::from_millis(100)));
        assert_eq!(parse_env("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_env("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_env("off"), Some(Duration::ZERO));
        assert_eq!(parse_env("fast"), None);
    }
}
