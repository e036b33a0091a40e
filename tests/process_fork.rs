//! `fork`, `reinit` and cooperative `waitpid`: the child runs its greenlets
//! and exits with a code the parent reads; the parent's timers, sockets and
//! signal handlers are unaffected by the child's hub. Also the signal burst
//! that needs the hub on the process's main thread.
//!
//! `harness = false`: forking inside libtest's multi-threaded runner would
//! copy a process whose other threads hold locks. `main` runs each scenario
//! in turn on this single thread and exits non-zero naming the failures. A
//! forked child never returns into the runner: [`in_child`] ends it.

mod common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::net::UnixStream;
use std::os::unix::process::ExitStatusExt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Log, TICK, assert_band, assert_quiet, assert_tick, timed};
use greenlet::{
    Fork, fork, hub, io::wait_read, send_signal, set_watch_children, signal, sleep, spawn,
    try_waitpid, waitpid, waitpid_timeout,
};

/// The whole run fails if it takes longer than this.
const WATCHDOG: Duration = Duration::from_secs(60);

/// Runs the child's side of a scenario and exits with its code: 101 if it
/// panicked. Never returns into the test runner.
fn in_child(f: impl FnOnce() -> i32) -> ! {
    let code = catch_unwind(AssertUnwindSafe(f)).unwrap_or(101);
    std::process::exit(code)
}

/// Forks, running `child` in the child (see [`in_child`]); returns the pid.
fn fork_child(child: impl FnOnce() -> i32) -> u32 {
    match fork().expect("fork") {
        Fork::Child => in_child(child),
        Fork::Parent(pid) => pid,
    }
}

/// `true` while `pid` exists, zombie included (it has not been reaped).
fn exists(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// The child runs the greenlets it inherited and new ones, and exits with a
/// code computed from their results; the parent reads it through `waitpid`,
/// which blocks only the waiting greenlet.
fn child_runs_greenlets_and_exits_with_code() {
    let inherited = spawn(|| {
        sleep(Duration::from_millis(10));
        20
    });
    let pid = fork_child(|| {
        let born_here = spawn(|| {
            sleep(TICK);
            22
        });
        let sum =
            inherited.get().expect("inherited greenlet") + born_here.get().expect("new greenlet");
        assert!(hub::stats().greenlets == 0);
        sum
    });
    let ticks = Rc::new(Cell::new(0u32));
    let t = ticks.clone();
    let ticker = spawn(move || {
        loop {
            sleep(Duration::from_millis(5));
            t.set(t.get() + 1);
        }
    });
    let waiter = spawn(move || timed(|| waitpid(pid)));
    let (status, elapsed) = waiter.into_result().expect("waiter greenlet");
    let status = status.expect("waitpid");
    ticker.kill().unwrap();
    assert_eq!(status.code(), Some(42), "{status:?}");
    assert!(
        elapsed >= TICK,
        "waitpid returned after {elapsed:?}, before the child's sleep"
    );
    assert!(
        ticks.get() >= 3,
        "the parent's greenlets ran only {} times while waitpid waited {elapsed:?}",
        ticks.get()
    );
    assert_eq!(
        inherited.get().expect("parent copy"),
        20,
        "the parent keeps its greenlet too"
    );
    assert!(!exists(pid), "the child was reaped");
    hub::join();
    assert_quiet();
}

/// After the fork the parent's pending timer and its greenlet waiting on a
/// socket still fire, even though the child tore its own hub down (which
/// deregisters every descriptor: from the child's new poller only).
fn parent_timers_and_sockets_work_after_fork() {
    let (a, mut b) = UnixStream::pair().expect("socket pair");
    let log = Log::new();
    let l = log.clone();
    let reader = spawn(move || {
        let (r, took) = timed(|| wait_read(&a, None));
        r.expect("wait_read");
        let mut buf = [0u8; 8];
        let n = (&a).read(&mut buf).expect("read");
        l.push(format!("read {}", String::from_utf8_lossy(&buf[..n])));
        took
    });
    let sleeper = spawn(|| timed(|| sleep(Duration::from_millis(120))).1);
    sleep(Duration::ZERO); // both are blocked: registered fd + timer
    let started = Instant::now();
    let pid = fork_child(|| {
        // Kill the inherited copies: deregisters `a` (reinit must have given
        // us our own poller, or this would remove the parent's registration).
        hub::destroy();
        let (_, took) = timed(|| sleep(TICK));
        assert_tick("sleep in the child", took);
        let (c, mut d) = UnixStream::pair().expect("child socket pair");
        let r = spawn(move || wait_read(&c, Duration::from_secs(5)).is_ok());
        sleep(Duration::ZERO);
        d.write_all(b"x").expect("child write");
        assert!(
            r.get().expect("child reader"),
            "the child's own sockets work"
        );
        0
    });
    let status = waitpid(pid).expect("waitpid");
    assert_eq!(status.code(), Some(0), "child failed: {status:?}");
    // The child is gone, its hub torn down; now use the parent's sources.
    sleep(Duration::from_millis(10));
    b.write_all(b"hi").expect("write");
    let took = reader.get().expect("reader");
    assert!(took < Duration::from_secs(2), "reader woke after {took:?}");
    assert_eq!(log.entries(), ["read hi"]);
    let slept = sleeper.get().expect("sleeper");
    assert_band(
        "the parent's 120 ms timer",
        slept,
        Duration::from_millis(120),
        Duration::from_millis(230),
    );
    assert!(started.elapsed() < Duration::from_secs(2));
    hub::join();
    assert_quiet();
}

/// `try_waitpid` does not block, `waitpid_timeout` gives up in its band and
/// leaves the child watched, `waitpid` on the native stack with nothing else
/// alive waits instead of failing with `LoopExit`.
fn waitpid_forms() {
    let pid = fork_child(|| {
        std::thread::sleep(Duration::from_millis(300));
        5
    });
    assert!(try_waitpid(pid).expect("try_waitpid").is_none());
    let (r, took) = timed(|| waitpid_timeout(pid, TICK));
    assert_eq!(r.expect_err("still running").kind(), ErrorKind::TimedOut);
    assert_tick("waitpid_timeout", took);
    assert!(
        hub::stats().fds == 1,
        "the SIGCHLD watcher stays while the child is watched"
    );
    // Nothing else is alive: the referenced watcher keeps this wait going.
    let (status, took) = timed(|| waitpid(pid));
    assert_eq!(status.expect("waitpid").code(), Some(5));
    assert_band(
        "waitpid",
        took,
        Duration::from_millis(150),
        Duration::from_secs(3),
    );
    assert_eq!(
        try_waitpid(pid).expect_err("collected").raw_os_error(),
        Some(libc::ECHILD)
    );
    assert_eq!(
        waitpid(0).expect_err("pid 0").kind(),
        ErrorKind::InvalidInput
    );
    assert_quiet();
}

/// A child killed by a signal reports it.
fn child_killed_by_signal() {
    let pid = fork_child(|| {
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    sleep(Duration::from_millis(5));
    send_signal(pid, libc::SIGTERM).expect("kill");
    let (status, took) = timed(|| waitpid(pid));
    let status = status.expect("waitpid");
    assert_eq!(status.signal(), Some(libc::SIGTERM), "{status:?}");
    assert!(took < Duration::from_secs(5));
    assert_quiet();
}

/// A child nobody waits for is reaped by the hub when SIGCHLD arrives (no
/// zombie); its status is kept for a later `waitpid`.
fn unwaited_child_is_reaped_in_background() {
    let pid = fork_child(|| 9);
    let deadline = Instant::now() + Duration::from_secs(5);
    while exists(pid) && Instant::now() < deadline {
        sleep(Duration::from_millis(5));
    }
    assert!(
        !exists(pid),
        "child {pid} still exists: {:?}",
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
    );
    assert_eq!(hub::stats().fds, 1, "kept status keeps the watcher");
    let (status, took) = timed(|| waitpid(pid));
    assert_eq!(status.expect("kept status").code(), Some(9));
    assert!(
        took < Duration::from_millis(5),
        "kept status returned at once ({took:?})"
    );
    assert_quiet();
}

/// Several children, waited for by several greenlets at once, in any order.
fn many_children_many_waiters() {
    let pids: Vec<u32> = (0..5)
        .map(|i| {
            fork_child(move || {
                // 80 ms apart: the exit order survives a loaded machine.
                std::thread::sleep(Duration::from_millis(80 * (5 - i)));
                10 + i as i32
            })
        })
        .collect();
    let order = Log::new();
    let waiters: Vec<_> = pids
        .iter()
        .enumerate()
        .map(|(i, &pid)| {
            let o = order.clone();
            spawn(move || {
                let code = waitpid(pid).expect("waitpid").code();
                o.push(format!("{i}"));
                code
            })
        })
        .collect();
    for (i, w) in waiters.iter().enumerate() {
        assert_eq!(w.get().expect("waiter"), Some(10 + i as i32));
    }
    // The last-forked child sleeps least, so it is collected first.
    assert_eq!(order.entries(), ["4", "3", "2", "1", "0"]);
    hub::join();
    assert_quiet();
}

/// `fork()` from inside a greenlet: the child continues in that greenlet.
fn fork_inside_a_greenlet() {
    let g = spawn(|| match fork().expect("fork") {
        Fork::Child => in_child(|| {
            sleep(Duration::from_millis(5));
            33
        }),
        Fork::Parent(pid) => waitpid(pid).expect("waitpid").code(),
    });
    assert_eq!(g.get().expect("greenlet"), Some(33));
    hub::join();
    assert_quiet();
}

/// A greenlet waiting for the parent's child is woken with `ECHILD` in a
/// forked child (the child forgets its parent's children).
fn child_forgets_parents_children() {
    let first = fork_child(|| {
        std::thread::sleep(Duration::from_secs(30));
        0
    });
    let waiter = spawn(move || waitpid(first).map_err(|e| e.raw_os_error()));
    sleep(Duration::ZERO);
    let second = fork_child(|| {
        let r = waiter.get().expect("waiter in the child");
        assert_eq!(r.map(|s| s.code()), Err(Some(libc::ECHILD)));
        assert_eq!(hub::stats().fds, 0, "no watcher left in the child");
        0
    });
    assert_eq!(waitpid(second).expect("second").code(), Some(0));
    send_signal(first, libc::SIGKILL).expect("kill first");
    // In the parent the same greenlet gets the status.
    let status = waiter
        .get()
        .expect("waiter in the parent")
        .expect("first's status");
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    hub::join();
    assert_quiet();
}

/// A handler installed before the fork runs in the process that got the
/// signal: the child's signal does not reach the parent's handler.
fn signal_handlers_follow_the_process() {
    let hits = Rc::new(Cell::new(0u32));
    let h = hits.clone();
    let handle = signal(libc::SIGUSR1, move || h.set(h.get() + 1)).expect("signal");
    let pid = fork_child(|| {
        send_signal(std::process::id(), libc::SIGUSR1).expect("raise in child");
        let deadline = Instant::now() + Duration::from_secs(5);
        while hits.get() == 0 && Instant::now() < deadline {
            sleep(Duration::from_millis(1));
        }
        handle.cancel();
        i32::try_from(hits.get()).expect("small")
    });
    let status = waitpid(pid).expect("waitpid");
    assert_eq!(
        status.code(),
        Some(1),
        "the child's handler ran once: {status:?}"
    );
    sleep(Duration::from_millis(20));
    assert_eq!(hits.get(), 0, "the child's SIGUSR1 reached the parent");
    send_signal(std::process::id(), libc::SIGUSR1).expect("raise");
    let deadline = Instant::now() + Duration::from_secs(5);
    while hits.get() == 0 && Instant::now() < deadline {
        sleep(Duration::from_millis(1));
    }
    assert_eq!(hits.get(), 1, "the parent's handler still works");
    handle.cancel();
    hub::join();
    assert_quiet();
}

/// With child watching off (`GREENLET_NOWAITPID`), no SIGCHLD watcher is
/// installed and `waitpid` polls.
fn nowaitpid_polls() {
    set_watch_children(false);
    let pid = fork_child(|| {
        std::thread::sleep(Duration::from_millis(60));
        4
    });
    assert_eq!(hub::stats().fds, 0, "no watcher with child watching off");
    let probe = spawn(|| {
        sleep(Duration::from_millis(20));
        hub::stats().fds
    });
    let (status, took) = timed(|| waitpid(pid));
    assert_eq!(status.expect("waitpid").code(), Some(4));
    assert_band(
        "polled waitpid",
        took,
        Duration::from_millis(50),
        Duration::from_millis(400),
    );
    assert_eq!(
        probe.get().expect("probe"),
        0,
        "no fd registered while polling"
    );
    set_watch_children(true);
    hub::join();
    assert_quiet();
}

/// `GREENLET_NOWAITPID=1` in the environment: children forked with `fork`
/// are not reaped by a SIGCHLD watcher (none is installed: SIGCHLD keeps its
/// default action and the exited child stays a zombie until collected), and
/// `waitpid` still works by polling. The variable is read once per process,
/// so this re-runs the test binary with it set.
fn nowaitpid_env_var() {
    if std::env::var_os("GREENLET_NOWAITPID").is_none() {
        let exe = std::env::current_exe().expect("current_exe");
        let out = std::process::Command::new(exe)
            .args(["--exact", "nowaitpid_env_var"])
            .env("GREENLET_NOWAITPID", "1")
            .output()
            .expect("re-run with GREENLET_NOWAITPID=1");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && stdout.contains("test nowaitpid_env_var ... ok"),
            "with GREENLET_NOWAITPID=1: {:?}\n{stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("1 scenarios, 0 failed"), "{stdout}");
        return;
    }
    assert!(!greenlet::watch_children(), "GREENLET_NOWAITPID=1 ignored");
    let pid = fork_child(|| 4);
    assert_eq!(hub::stats().fds, 0, "a SIGCHLD watcher was installed");
    // Let the child exit and the hub run: nobody may reap it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| stat.contains(") Z "))
    {
        assert!(Instant::now() < deadline, "the child did not exit");
        sleep(Duration::from_millis(1));
    }
    sleep(Duration::from_millis(20));
    assert!(exists(pid), "the child was reaped behind our back");
    assert_eq!(
        sigchld_handler(),
        libc::SIG_DFL,
        "SIGCHLD has a handler with GREENLET_NOWAITPID=1"
    );
    assert_eq!(waitpid(pid).expect("polled waitpid").code(), Some(4));
    assert!(!exists(pid), "waitpid reaped it");
    hub::join();
    assert_quiet();
}

/// The current SIGCHLD handler address (`SIG_DFL` when none).
fn sigchld_handler() -> libc::sighandler_t {
    // SAFETY: (test code) all-zero is a valid `sigaction`; a null `act`
    // only reads the current action into it.
    unsafe {
        let mut old: libc::sigaction = std::mem::zeroed();
        assert_eq!(
            libc::sigaction(libc::SIGCHLD, std::ptr::null(), &mut old),
            0
        );
        old.sa_sigaction
    }
}

/// `reinit()` in the original process keeps everything working.
fn reinit_in_the_parent_is_harmless() {
    let (a, mut b) = UnixStream::pair().expect("socket pair");
    let reader = spawn(move || wait_read(&a, Duration::from_secs(5)).is_ok());
    sleep(Duration::ZERO);
    greenlet::reinit().expect("reinit");
    b.write_all(b"x").expect("write");
    assert!(
        reader.get().expect("reader"),
        "registration survived reinit"
    );
    let (_, took) = timed(|| sleep(TICK));
    assert_tick("sleep after reinit", took);
    hub::join();
    assert_quiet();
}

/// A burst of 1,000 SIGUSR1 from another thread while greenlets sleep and
/// one waits on a socket. Here the hub runs on the main thread, which the
/// kernel prefers for process-directed signals: its `epoll_wait` is
/// interrupted over and over (EINTR must be retried, not surface as an error
/// or cut a sleep short). Under libtest (tests/signal_handler.rs) the
/// harness's main thread takes most of them instead.
fn signal_burst_interrupts_the_hub_thread() {
    // Loop iterations, counted by a greenlet that yields once per turn.
    let (turns, stop) = (Rc::new(Cell::new(0u64)), Rc::new(Cell::new(false)));
    let (t, st) = (turns.clone(), stop.clone());
    let ticker = spawn(move || {
        while !st.get() {
            t.set(t.get() + 1);
            sleep(Duration::ZERO);
        }
    });
    // Each run records the iteration it started in.
    let seen: Rc<std::cell::RefCell<Vec<u64>>> = Rc::default();
    let (s, t) = (seen.clone(), turns.clone());
    let handle = signal(libc::SIGUSR1, move || s.borrow_mut().push(t.get())).expect("signal");
    let sleepers: Vec<_> = (0..10).map(|_| spawn(|| timed(|| sleep(TICK)).1)).collect();
    let (a, mut b) = UnixStream::pair().expect("socket pair");
    let reader = spawn(move || wait_read(&a, Duration::from_secs(5)).is_ok());
    let writer = spawn(move || {
        sleep(Duration::from_millis(30));
        b.write_all(b"x").expect("write");
    });
    sleep(Duration::ZERO);
    let pid = std::process::id();
    let sender = std::thread::spawn(move || {
        for i in 0..1000 {
            send_signal(pid, libc::SIGUSR1).expect("send_signal");
            if i % 100 == 99 {
                // Spread the burst over the sleeps.
                std::thread::sleep(Duration::from_millis(3));
            }
        }
    });
    let mut slowest = Duration::ZERO;
    for s in &sleepers {
        let slept = s.get().expect("sleeper");
        assert_tick("sleep under the burst", slept);
        slowest = slowest.max(slept);
    }
    assert!(
        reader.get().expect("reader"),
        "wait_read failed under the burst"
    );
    writer.join().unwrap();
    sender.join().expect("sender");
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.borrow().is_empty() && Instant::now() < deadline {
        sleep(Duration::from_millis(1));
    }
    sleep(Duration::from_millis(10));
    stop.set(true);
    ticker.join().unwrap();
    let seen = seen.take();
    println!(
        "  1000 SIGUSR1 at the hub thread: handler ran {} times in {} loop turns, \
         slowest {TICK:?} sleep {slowest:?}",
        seen.len(),
        turns.get()
    );
    // The bound coalescing allows: at least one run, at most one per loop
    // wake-up. The number of wake-ups that saw a byte depends on timing, so
    // the count is not exact; instead no two runs may start in the same loop
    // iteration (a run per signal, or one delivery split over two reads,
    // would put several there).
    assert!(!seen.is_empty(), "the handler never ran");
    let mut distinct = seen.clone();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        seen.len(),
        "several runs in one loop iteration: {seen:?}"
    );
    handle.cancel();
    hub::join();
    assert_quiet();
}

/// `[(name, scenario)]` from the scenario functions.
macro_rules! scenarios {
    ($($f:ident),* $(,)?) => {
        [$((stringify!($f), $f as fn())),*]
    };
}

/// The libtest command line, as far as this runner uses it: filters
/// (substring, or exact with `--exact`), `--skip NAME` (repeatable), and
/// `--list`. Every other flag is accepted and ignored; flags that take a
/// value (`--test-threads 1`, `--skip x`, `--color auto`, …) consume it, in
/// either the `--flag value` or the `--flag=value` form.
#[derive(Debug, Default)]
struct Args {
    filters: Vec<String>,
    skip: Vec<String>,
    exact: bool,
    list: bool,
}

impl Args {
    fn parse(args: impl IntoIterator<Item = String>) -> Args {
        // libtest's options that take a value.
        const WITH_VALUE: [&str; 9] = [
            "--test-threads",
            "--skip",
            "--color",
            "--format",
            "--logfile",
            "--shuffle-seed",
            "--report-time",
            "-Z",
            "--ensure-time",
        ];
        let mut parsed = Args::default();
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let (flag, inline) = match arg.split_once('=') {
                Some((f, v)) if f.starts_with('-') => (f.to_owned(), Some(v.to_owned())),
                _ => (arg.clone(), None),
            };
            match flag.as_str() {
                "--exact" => parsed.exact = true,
                "--list" => parsed.list = true,
                f if WITH_VALUE.contains(&f) => {
                    // `--report-time`/`--ensure-time` take no value in the
                    // space-separated form.
                    let value = match inline {
                        Some(v) => Some(v),
                        None if f == "--report-time" || f == "--ensure-time" => None,
                        None => args.next(),
                    };
                    if f == "--skip" {
                        parsed.skip.extend(value);
                    }
                }
                f if f.starts_with('-') => {} // --nocapture, -q, --ignored, …
                _ => parsed.filters.push(arg),
            }
        }
        parsed
    }

    fn matches(&self, pattern: &str, name: &str) -> bool {
        if self.exact {
            name == pattern
        } else {
            name.contains(pattern)
        }
    }

    fn selects(&self, name: &str) -> bool {
        let wanted = self.filters.is_empty() || self.filters.iter().any(|f| self.matches(f, name));
        wanted && !self.skip.iter().any(|s| self.matches(s, name))
    }
}

/// The runner's own argument parsing, checked before any scenario runs.
fn check_args_parsing() {
    let parse = |line: &str| Args::parse(line.split_whitespace().map(str::to_owned));
    let a = parse("--test-threads 1");
    assert!(a.filters.is_empty() && a.selects("waitpid_forms"), "{a:?}");
    let a = parse("--test-threads=1 --nocapture waitpid");
    assert_eq!(a.filters, ["waitpid"]);
    assert!(a.selects("waitpid_forms") && !a.selects("fork_inside_a_greenlet"));
    let a = parse("--skip signal");
    assert!(!a.selects("signal_handlers_follow_the_process"));
    assert!(a.selects("waitpid_forms"));
    let a = parse("--exact --skip waitpid waitpid_forms waitpid");
    assert!(a.selects("waitpid_forms") && !a.selects("waitpid"));
    assert!(!a.selects("waitpid_forms_x"));
    let a = parse("--color never --format=pretty -q --list");
    assert!(a.list && a.filters.is_empty(), "{a:?}");
}

fn main() {
    check_args_parsing();
    let scenarios = scenarios![
        child_runs_greenlets_and_exits_with_code,
        parent_timers_and_sockets_work_after_fork,
        waitpid_forms,
        child_killed_by_signal,
        unwaited_child_is_reaped_in_background,
        many_children_many_waiters,
        fork_inside_a_greenlet,
        child_forgets_parents_children,
        signal_handlers_follow_the_process,
        nowaitpid_polls,
        nowaitpid_env_var,
        reinit_in_the_parent_is_harmless,
        signal_burst_interrupts_the_hub_thread,
    ];
    let args = Args::parse(std::env::args().skip(1));
    if args.list {
        for (name, _) in scenarios.iter().filter(|(n, _)| args.selects(n)) {
            println!("{name}: test");
        }
        return;
    }
    // A hang (a lost wake-up) must fail the test, not stall CI. The watchdog
    // thread only sleeps: it holds no lock a forked child could inherit.
    let current = Arc::new(Mutex::new(String::new()));
    let watched = Arc::clone(&current);
    std::thread::spawn(move || {
        std::thread::sleep(WATCHDOG);
        let name = watched.lock().map(|n| n.clone()).unwrap_or_default();
        println!("test {name} ... FAILED (still running after {WATCHDOG:?})");
        std::process::exit(2);
    });
    let mut failed = Vec::new();
    let mut ran = 0;
    for (name, scenario) in scenarios {
        if !args.selects(name) {
            continue;
        }
        ran += 1;
        name.clone_into(&mut current.lock().expect("only the runner writes it"));
        let start = Instant::now();
        // Each scenario has its own hub scope: it ends every greenlet the
        // scenario left, even when it panicked.
        let outcome = catch_unwind(|| greenlet::run(scenario));
        set_watch_children(true);
        match outcome {
            Ok(()) => println!("test {name} ... ok ({:?})", start.elapsed()),
            Err(_) => {
                println!("test {name} ... FAILED");
                failed.push(name);
            }
        }
    }
    println!("\n{ran} scenarios, {} failed", failed.len());
    if !failed.is_empty() {
        println!("failures: {}", failed.join(", "));
        std::process::exit(1);
    }
}
