//! `#[greenlet] fn`: calling the function spawns its body as a greenlet.

use greenlet::{GreenletError, greenlet, hub, sleep};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

type Log = Rc<RefCell<Vec<String>>>;

fn log() -> Log {
    Rc::new(RefCell::new(Vec::new()))
}

fn push(log: &Log, entry: impl Into<String>) {
    log.borrow_mut().push(entry.into());
}

/// Runs the hub dry and checks the counters are back to baseline.
fn assert_quiet() {
    hub::join();
    let stats = hub::stats();
    assert!(stats.is_quiet(), "hub not quiet: {stats:?}");
}

#[greenlet]
fn record(log: Log, entry: &'static str) -> usize {
    push(&log, entry);
    log.borrow().len()
}

#[greenlet::test]
fn call_spawns_and_body_runs_at_the_next_switch() {
    let log = log();
    let g = record(log.clone(), "body");
    push(&log, "after call");
    assert!(g.is_started() && !g.is_ready());
    assert_eq!(g.get().unwrap(), 2);
    assert_eq!(*log.borrow(), ["after call", "body"]);
    assert!(g.is_successful());
    assert_quiet();
}

#[greenlet]
fn download(url: String, tries: u32) -> Vec<u8> {
    sleep(Duration::from_millis(50));
    format!("{url}#{tries}").into_bytes()
}

#[greenlet::test]
fn greenlet_functions_run_concurrently() {
    let started = Instant::now();
    let gs: Vec<_> = (0..5).map(|i| download(format!("u{i}"), i)).collect();
    let got: Vec<_> = gs.iter().map(|g| g.get().unwrap()).collect();
    let elapsed = started.elapsed();
    assert_eq!(got[3], b"u3#3");
    assert!(elapsed >= Duration::from_millis(50), "{elapsed:?}");
    // Five 50 ms sleeps: under 100 ms only if no two of them ran one after
    // the other (serial would take 250 ms).
    assert!(
        elapsed < Duration::from_millis(100),
        "sleeps did not overlap: {elapsed:?}"
    );
    assert_quiet();
}

#[greenlet::test]
fn name_defaults_to_the_function_name() {
    let g = download("x".into(), 1);
    assert_eq!(g.name(), Some("download"));
    assert!(
        g.to_string().starts_with("<Greenlet \"download\" at "),
        "{g}"
    );
    g.join().unwrap();
    assert_quiet();
}

#[greenlet(name = "fetcher")]
fn named() -> u8 {
    1
}

#[greenlet::test]
fn name_option_overrides_the_name() {
    let g = named();
    assert_eq!(g.name(), Some("fetcher"));
    assert_eq!(g.get().unwrap(), 1);
    assert_quiet();
}

#[greenlet(start = "later")]
fn counted(hits: Rc<Cell<u32>>) {
    hits.set(hits.get() + 1);
}

#[greenlet::test]
fn start_later_returns_an_unstarted_greenlet() {
    let hits = Rc::new(Cell::new(0));
    let g = counted(hits.clone());
    assert!(!g.is_started());
    sleep(Duration::ZERO);
    sleep(Duration::ZERO);
    assert_eq!(hits.get(), 0, "an unstarted greenlet must not run");
    assert_eq!(hub::stats().stacks_allocated, 0, "unstarted holds no stack");
    g.start();
    g.join().unwrap();
    assert_eq!(hits.get(), 1);
    assert_quiet();
}

#[greenlet::test]
fn start_later_then_start_later_with_delay() {
    let hits = Rc::new(Cell::new(0));
    let g = counted(hits.clone());
    let started = Instant::now();
    g.start_later(Duration::from_millis(30));
    g.join().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(hits.get(), 1);
    assert!(elapsed >= Duration::from_millis(30), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(130), "{elapsed:?}");
    assert_quiet();
}

#[greenlet::test]
fn kill_before_the_first_switch_means_the_body_never_runs() {
    let hits = Rc::new(Cell::new(0));
    let g = {
        #[greenlet]
        fn bump(hits: Rc<Cell<u32>>) {
            hits.set(hits.get() + 1);
        }
        bump(hits.clone())
    };
    g.kill().unwrap();
    assert!(g.is_dead() && g.is_successful());
    hub::join();
    assert_eq!(hits.get(), 0);
    assert_quiet();
}

/// Recursion that needs about `depth` KiB of stack.
fn deep(depth: u32) -> u32 {
    let pad = std::hint::black_box([depth as u8; 1024]);
    if depth == 0 {
        u32::from(pad[0])
    } else {
        deep(depth - 1) + u32::from(pad[1])
    }
}

/// Bytes of stack left below this frame, measured: the distance from a
/// local down to the start of the memory mapping that holds it
/// (`/proc/self/maps`). With `mprotect` guards a greenlet stack has a
/// `PROT_NONE` guard page (a mapping of its own) below it, so its mapping
/// starts exactly where the stack ends. Nothing
/// overflows (an overflow aborts the process).
#[inline(never)]
fn stack_left() -> usize {
    let local = std::hint::black_box(0u8);
    let addr = std::ptr::from_ref(&local) as usize;
    let maps = std::fs::read_to_string("/proc/self/maps").expect("Linux has /proc/self/maps");
    for line in maps.lines() {
        let range = line.split_whitespace().next().expect("a range per line");
        let (lo, hi) = range.split_once('-').expect("lo-hi");
        let lo = usize::from_str_radix(lo, 16).expect("hex");
        let hi = usize::from_str_radix(hi, 16).expect("hex");
        if (lo..hi).contains(&addr) {
            return addr - lo;
        }
    }
    panic!("{addr:#x} is in no mapping");
}

#[greenlet(stack_size = 16 * 1024)]
fn small_stack() -> usize {
    stack_left()
}

#[greenlet]
fn default_stack() -> usize {
    stack_left()
}

#[greenlet(stack_size = 1024 * 1024)]
fn big_stack(depth: u32) -> (usize, u32) {
    (stack_left(), deep(depth))
}

const KIB: usize = 1024;

/// `stack_left` finds a stack's end as the start of its memory mapping,
/// which only holds with `mprotect` guards (each guard splits the stack
/// region's mapping; guard markers, Linux ≥ 6.13, do not). With guard
/// markers the test re-runs itself in a child process with the fallback
/// forced (`GREENLET_STACK_GUARDS=mprotect`): the slot sizes are the same.
/// `true` in the parent once the child passed.
fn ran_with_mprotect_guards() -> bool {
    if !hub::uses_guard_markers() {
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary knows its path");
    let out = std::process::Command::new(exe)
        .args([
            "stack_size_option_sets_the_greenlet_stack",
            "--exact",
            "--test-threads=1",
        ])
        .env("GREENLET_STACK_GUARDS", "mprotect")
        .output()
        .expect("the test binary can be re-run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "child with mprotect guards failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

#[greenlet::test]
fn stack_size_option_sets_the_greenlet_stack() {
    if ran_with_mprotect_guards() {
        return;
    }
    let default = default_stack().get().unwrap();
    assert!(
        default > 16 * KIB && default <= hub::DEFAULT_STACK_SIZE,
        "default stack: {default} bytes left"
    );
    let small = small_stack().get().unwrap();
    assert!(
        small > 0 && small <= 16 * KIB,
        "16 KiB stack: {small} bytes left"
    );
    // 300 frames of at least 1 KiB: more than the 256 KiB default holds.
    let (big, sum) = big_stack(300).get().unwrap();
    assert!(
        big > hub::DEFAULT_STACK_SIZE && big <= 1024 * KIB,
        "1 MiB stack: {big} bytes left"
    );
    assert_eq!(sum, deep(300)); // same result as on the native stack
    assert_quiet();
}

#[greenlet]
fn sum_all<T: Copy + Into<u64>>(items: Vec<T>) -> u64 {
    items.iter().map(|&x| x.into()).sum()
}

#[greenlet]
fn make_default<T: Default>() -> T {
    T::default()
}

#[greenlet]
fn pair<A: Clone, const N: usize>(a: A) -> [A; N] {
    std::array::from_fn(|_| a.clone())
}

#[greenlet::test]
fn generic_functions() {
    assert_eq!(sum_all(vec![1u8, 2, 3]).get().unwrap(), 6);
    assert_eq!(sum_all(vec![10u32, 20]).get().unwrap(), 30);
    assert_eq!(make_default::<String>().get().unwrap(), "");
    let v: Vec<u8> = make_default().get().unwrap();
    assert!(v.is_empty());
    assert_eq!(pair::<_, 3>('x').get().unwrap(), ['x', 'x', 'x']);
    assert_quiet();
}

#[greenlet]
fn parse_number(text: String) -> Result<u32, std::num::ParseIntError> {
    let n: u32 = text.trim().parse()?;
    Ok(n * 2)
}

#[greenlet]
fn nothing(log: Log) {
    push(&log, "ran");
}

#[greenlet]
fn early(n: u32) -> &'static str {
    if n == 0 {
        return "zero";
    }
    sleep(Duration::ZERO);
    "nonzero"
}

#[greenlet::test]
fn result_unit_and_early_return() {
    assert_eq!(parse_number(" 21 ".into()).get().unwrap(), Ok(42));
    assert!(parse_number("x".into()).get().unwrap().is_err());
    let log = log();
    let g: greenlet::Greenlet<()> = nothing(log.clone());
    g.join().unwrap();
    assert_eq!(*log.borrow(), ["ran"]);
    assert_eq!(early(0).get().unwrap(), "zero");
    assert_eq!(early(1).get().unwrap(), "nonzero");
    assert_quiet();
}

#[greenlet]
fn shown(n: u32) -> impl std::fmt::Display {
    n + 1
}

#[greenlet::test]
fn impl_trait_return_type() {
    assert_eq!(shown(1).into_result().unwrap().to_string(), "2");
    assert_quiet();
}

mod workers {
    use greenlet::greenlet;

    #[greenlet]
    pub(crate) fn double(x: u64) -> u64 {
        x * 2
    }

    pub(crate) mod nested {
        #[greenlet::greenlet(name = "triple")]
        pub(crate) fn triple(x: u64) -> u64 {
            super::double(x).get().expect("double does not fail") + x
        }
    }
}

#[greenlet::test]
fn functions_in_modules_keep_their_visibility() {
    assert_eq!(workers::double(4).get().unwrap(), 8);
    let t = workers::nested::triple(5);
    assert_eq!(t.name(), Some("triple"));
    assert_eq!(t.get().unwrap(), 15);
    assert_quiet();
}

#[greenlet]
fn patterns((a, b): (u32, u32), mut n: u32, [x, y]: [u8; 2]) -> u32 {
    n += a * b;
    n + u32::from(x) + u32::from(y)
}

#[greenlet::test]
fn argument_patterns() {
    assert_eq!(patterns((2, 3), 1, [4, 5]).get().unwrap(), 16);
    assert_quiet();
}

/// Logs when dropped.
struct Noisy(Log, &'static str);

impl Drop for Noisy {
    fn drop(&mut self) {
        push(&self.0, format!("drop {}", self.1));
    }
}

fn plain_call(a: Noisy, _: Noisy, c: Noisy) {
    push(&a.0, "body");
    let _ = &c;
}

#[greenlet]
fn green_call(a: Noisy, _: Noisy, c: Noisy) {
    sleep(Duration::ZERO);
    push(&a.0, "body");
    let _ = &c;
}

#[greenlet::test]
fn arguments_live_until_the_body_ends_and_drop_like_a_plain_call() {
    let plain = log();
    plain_call(
        Noisy(plain.clone(), "a"),
        Noisy(plain.clone(), "b"),
        Noisy(plain.clone(), "c"),
    );

    let green = log();
    let g = green_call(
        Noisy(green.clone(), "a"),
        Noisy(green.clone(), "b"),
        Noisy(green.clone(), "c"),
    );
    push(&green, "spawned");
    g.join().unwrap();
    assert_eq!(green.borrow().first().map(String::as_str), Some("spawned"));
    assert_eq!(
        green.borrow()[1..],
        plain.borrow()[..],
        "plain call: {plain:?}"
    );
    assert_quiet();
}

#[greenlet::test]
fn killed_body_drops_its_arguments_once() {
    let log = log();
    #[greenlet]
    fn sleeper(guard: Noisy) {
        sleep(Duration::from_secs(60));
        push(&guard.0, "woke");
    }
    let g = sleeper(Noisy(log.clone(), "guard"));
    sleep(Duration::ZERO);
    assert!(
        log.borrow().is_empty(),
        "arguments live while the body sleeps"
    );
    g.kill().unwrap();
    assert_eq!(*log.borrow(), ["drop guard"]);
    assert_quiet();
}

#[greenlet::test]
fn panic_in_the_body_is_a_typed_error() {
    #[greenlet]
    fn explode(why: String) -> u8 {
        panic!("{why}")
    }
    let reports = Rc::new(Cell::new(0));
    let r = reports.clone();
    hub::set_error_handler(move |_| r.set(r.get() + 1));
    let g = explode("boom".into());
    match g.get() {
        Err(GreenletError::Panicked(p)) => assert_eq!(p.message(), "boom"),
        other => panic!("expected a panic, got {other:?}"),
    }
    hub::reset_error_handler();
    assert_eq!(reports.get(), 1);
    assert_quiet();
}

struct Connection {
    peer: String,
    log: Log,
}

impl Connection {
    /// Spawned method: `conn.serve(n)` spawns, `self` moves into the greenlet.
    #[greenlet]
    fn serve(self, requests: u32) -> String {
        for i in 0..requests {
            push(&self.log, format!("{} #{i}", self.peer));
            sleep(Duration::ZERO);
        }
        self.peer
    }

    #[greenlet]
    fn open(peer: &'static str, log: Log) -> Self {
        Self {
            peer: peer.to_string(),
            log,
        }
    }
}

#[greenlet::test]
fn methods_taking_self_by_value_and_associated_functions() {
    let log = log();
    let a = Connection::open("a", log.clone()).into_result().unwrap();
    let b = Connection::open("b", log.clone()).into_result().unwrap();
    let ga = a.serve(2);
    let gb = b.serve(2);
    assert_eq!(ga.get().unwrap(), "a");
    assert_eq!(gb.get().unwrap(), "b");
    assert_eq!(*log.borrow(), ["a #0", "b #0", "a #1", "b #1"]);
    assert_quiet();
}
