//! The blocked-hub monitor: a greenlet that blocks its thread is reported
//! once, by name and spawn site; a busy greenlet that keeps switching, and
//! a hub that merely waits, are not. Reports are captured with a `log`
//! logger (the monitor warns through `log` when a logger takes warnings).

use std::sync::Mutex;
use std::time::{Duration, Instant};

use greenlet::hub;
use greenlet::{Builder, sleep, spawn};

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record<'_>) {
        if record.level() <= log::Level::Warn {
            LINES.lock().unwrap().push(record.args().to_string());
        }
    }
    fn flush(&self) {}
}

fn setup() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        log::set_logger(&Capture).unwrap();
        log::set_max_level(log::LevelFilter::Warn);
        hub::set_max_blocking_time(Some(Duration::from_millis(100)));
    });
}

/// Reports naming the hub of the thread called `thread`.
fn reports_for(thread: &str) -> Vec<String> {
    let tag = format!("hub of thread \"{thread}\"");
    LINES
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.contains(&tag))
        .cloned()
        .collect()
}

/// Runs `f` in a hub scope on a new thread named `name` and waits for it.
fn on_thread<R: Send + 'static>(name: &str, f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .name(name.to_owned())
        .spawn(move || greenlet::run(f))
        .unwrap()
        .join()
        .unwrap()
}

#[test]
fn a_thread_sleep_in_a_named_greenlet_is_reported_once_with_its_name_and_spawn_site() {
    setup();
    let site = on_thread("monitor-blocked", || {
        // A 5 ms ticker: the hub has work that the sleeper delays.
        let ticker = spawn(|| {
            for _ in 0..100 {
                sleep(Duration::from_millis(5))
            }
        });
        let blocker = Builder::new()
            .name("sleeper")
            .spawn(|| std::thread::sleep(Duration::from_millis(200)))
            .unwrap();
        // Its spawn site, as the dump shows it (before it runs).
        let g = hub::dump();
        let info = g
            .greenlets
            .iter()
            .find(|g| g.name.as_deref() == Some("sleeper"));
        let at = info.and_then(|i| i.spawned_at).expect("spawn site");
        blocker.join().unwrap();
        ticker.kill().unwrap();
        format!("hub_monitor.rs:{}", at.line())
    });
    let reports = reports_for("monitor-blocked");
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let r = &reports[0];
    assert!(r.contains("<Greenlet \"sleeper\""), "{r}");
    assert!(r.contains(&site), "{site}: {r}");
    assert!(r.contains("max_blocking_time 100ms"), "{r}");
    // "blocked for 2xx ms": the turn's length on the coarse clock.
    let took: f64 = r
        .split("blocked for ")
        .nth(1)
        .and_then(|s| s.split("ms").next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no duration in {r}"));
    assert!((150.0..2000.0).contains(&took), "{r}");
}

#[test]
fn busy_but_switching_greenlets_and_waiting_hubs_are_not_reported() {
    setup();
    on_thread("monitor-busy", || {
        // 300 ms of work in 1 ms slices, yielding between them.
        let busy = Builder::new()
            .name("busy")
            .spawn(|| {
                let end = Instant::now() + Duration::from_millis(300);
                while Instant::now() < end {
                    let slice = Instant::now() + Duration::from_millis(1);
                    while Instant::now() < slice {
                        std::hint::spin_loop();
                    }
                    sleep(Duration::ZERO);
                }
            })
            .unwrap();
        let ticker = spawn(|| {
            for _ in 0..10 {
                sleep(Duration::from_millis(5))
            }
        });
        busy.join().unwrap();
        ticker.join().unwrap();
        // Waiting is not blocking: 300 ms asleep in the hub.
        spawn(|| sleep(Duration::from_millis(300))).join().unwrap();
    });
    assert_eq!(reports_for("monitor-busy"), Vec::<String>::new());
}

#[test]
fn the_main_greenlet_blocking_between_waits_is_reported_as_such() {
    setup();
    on_thread("monitor-main", || {
        let ticker = spawn(|| {
            for _ in 0..100 {
                sleep(Duration::from_millis(5))
            }
        });
        sleep(Duration::ZERO);
        std::thread::sleep(Duration::from_millis(200));
        sleep(Duration::ZERO);
        ticker.kill().unwrap();
    });
    let reports = reports_for("monitor-main");
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert!(
        reports[0].contains("by the main greenlet"),
        "{}",
        reports[0]
    );
}

/// Run in a child process by the test below (does nothing otherwise).
#[test]
fn child_reads_the_threshold_from_the_environment() {
    let Ok(expected) = std::env::var("HUB_MONITOR_CHILD") else {
        return;
    };
    let got = hub::max_blocking_time();
    println!("child saw {got:?}");
    assert_eq!(format!("{got:?}"), expected);
}

#[test]
fn the_environment_variable_sets_or_disables_the_threshold() {
    for (value, expected) in [
        ("250ms", "Some(250ms)"),
        ("2s", "Some(2s)"),
        ("off", "None"),
    ] {
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "child_reads_the_threshold_from_the_environment",
                "--nocapture",
            ])
            .env(hub::MAX_BLOCKING_TIME_ENV, value)
            .env("HUB_MONITOR_CHILD", expected)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{value}: {stdout}");
        assert!(
            stdout.contains(&format!("child saw {expected}")),
            "{value}: {stdout}"
        );
    }
}
