//! Stack overflow in one greenlet while others run: it ends with
//! `GreenletError::StackOverflow`, the others finish, the overflowed stack is
//! never reused, and the counters return to baseline.
//!
//! `generator` prints "coroutine has overflowed its stack" on stderr for
//! each overflow: that is expected.

mod reliability_common;

use std::hint::black_box;
use std::time::Duration;

use greenlet::{Builder, Greenlet, GreenletError, hub, sleep, spawn, with_timeout};
use reliability_common::{Baseline, Counter, Reports, in_child, ms, run_child, twice};

const SMALL: usize = 32 * 1024;

/// Recurses `n` levels with a 1 KiB local per frame; `black_box` keeps the
/// optimiser from turning it into a loop or dropping the array.
#[inline(never)]
fn deep(n: u64) -> u64 {
    let mut buf = [0u8; 1024];
    buf[(n % 1024) as usize] = n as u8;
    let buf = black_box(buf);
    if n == 0 {
        return u64::from(buf[0]);
    }
    deep(n - 1) + u64::from(black_box(buf)[(n % 7) as usize])
}

/// Plain greenlets that switch a lot while the overflow happens.
fn bystanders() -> Vec<Greenlet<u64>> {
    (1..=4u64)
        .map(|i| {
            spawn(move || {
                let mut acc = 0;
                for k in 0..5 {
                    sleep(if k % 2 == 0 { Duration::ZERO } else { ms(1) });
                    acc += deep(8) + i; // some stack use, far from the limit
                }
                acc
            })
        })
        .collect()
}

fn overflowing(name: &str, stack: Option<usize>) -> Greenlet<u64> {
    let mut b = Builder::new().name(name);
    if let Some(bytes) = stack {
        b = b.stack_size(bytes);
    }
    b.spawn(|| {
        sleep(Duration::ZERO); // overflow mid-flight, not at the first switch
        deep(10_000_000)
    })
    .expect("one stack")
}

#[test]
fn stack_overflow_in_one_greenlet_while_others_run() {
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        for (round, stack) in [Some(SMALL), Some(SMALL), None].into_iter().enumerate() {
            let others = bystanders();
            let bad = overflowing("overflower", stack);
            let errors = Counter::new();
            let e = errors.clone();
            bad.link_exception(move |err| {
                assert!(matches!(err, GreenletError::StackOverflow), "{err:?}");
                e.hit();
            });
            let b = bad.clone();
            let joiner = spawn(move || b.get());
            match bad.get() {
                Err(GreenletError::StackOverflow) => {}
                other => panic!("round {round}: expected StackOverflow, got {other:?}"),
            }
            assert!(bad.is_ready() && !bad.is_successful());
            assert!(matches!(
                joiner.get(),
                Ok(Err(GreenletError::StackOverflow))
            ));
            let expect: Vec<u64> = (1..=4).map(|i| 5 * (deep(8) + i)).collect();
            let got: Vec<u64> = others.iter().map(|g| g.get().expect("bystander")).collect();
            assert_eq!(got, expect, "round {round}");
            hub::join();
            assert_eq!(errors.get(), 1, "round {round}");
            // The overflowed stack was unmapped, not pooled.
            let s = hub::stats();
            assert_eq!(s.stacks_allocated, s.stacks_pooled, "round {round}: {s:?}");
        }
        assert_eq!(reports.count("greenlet"), 3, "{:?}", reports.all());
        assert_eq!(reports.containing("overflow"), 3, "{:?}", reports.all());

        // Same-size greenlets after the overflows run normally (fresh or
        // clean pooled stacks).
        let fine: Vec<_> = (0..4)
            .map(|_| {
                Builder::new()
                    .stack_size(SMALL)
                    .spawn(|| {
                        sleep(Duration::ZERO);
                        deep(4)
                    })
                    .expect("one stack")
            })
            .collect();
        for g in &fine {
            assert_eq!(g.get().expect("runs"), deep(4));
        }
        drop(reports);
        base.check();
    });
}

#[test]
fn stack_overflow_inside_a_timeout_scope_leaves_no_timer() {
    // The overflowed frames are not unwound, so a `Timeout` guard on them is
    // never dropped. The hub must not keep (or later fire) its timer.
    twice(|| {
        let base = Baseline::take();
        let reports = Reports::install();
        let bad = Builder::new()
            .stack_size(SMALL)
            .spawn(|| with_timeout(Duration::from_secs(3600), || deep(10_000_000)))
            .expect("one stack");
        assert!(matches!(bad.get(), Err(GreenletError::StackOverflow)));
        assert_eq!(reports.count("greenlet"), 1);
        drop(reports);
        // A leftover one-hour timer would make this wait an hour.
        assert!(
            hub::join_timeout(ms(200)),
            "the hub still has work after the overflow: {:?}",
            hub::stats()
        );
        base.check();
    });
}

#[test]
fn native_stack_panics_are_still_printed_after_an_overflow() {
    // An overflow leaves the greenlet's frames behind; the runtime must not
    // keep believing it runs on that greenlet's stack (its panic hook hides
    // greenlet panics, which the error handler reports instead).
    const MARK: &str = "native panic after overflow";
    if in_child() {
        let base = Baseline::take();
        let reports = Reports::install();
        for round in 0..2 {
            let bad = Builder::new()
                .stack_size(SMALL)
                .spawn(|| deep(10_000_000))
                .expect("one stack");
            assert!(matches!(bad.get(), Err(GreenletError::StackOverflow)));
            let caught = std::panic::catch_unwind(|| panic!("{MARK} #{round}"));
            assert!(caught.is_err());
        }
        assert_eq!(reports.count("greenlet"), 2);
        drop(reports);
        base.check();
        return;
    }
    let out = run_child("native_stack_panics_are_still_printed_after_an_overflow");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "child failed: {}\n{stderr}",
        out.status
    );
    assert_eq!(
        stderr.matches("coroutine has overflowed its stack").count(),
        2,
        "{stderr}"
    );
    for round in 0..2 {
        assert!(
            stderr.contains(&format!("{MARK} #{round}")),
            "the panic message on the native stack was swallowed:\n{stderr}"
        );
    }
}
