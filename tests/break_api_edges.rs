//! Regression tests from an adversarial review (each was a bug, now fixed): small API-edge findings (wrong or unclear errors).

use std::time::Duration;

use greenlet::{Builder, Timeout, sleep};

/// `Builder::stack_size(0)` is refused with a nonsensical message
/// ("the greenlet's closure takes 0 bytes and cannot fit its 0 KiB stack"):
/// a zero stack size is an invalid argument, and `set_default_stack_size`
/// rounds up to 16 KiB instead. (`hub::start` compares
/// `body_size + BODY_HEADROOM` with the raw requested size.)
#[test]
fn stack_size_zero_error_is_meaningful() {
    greenlet::run(|| {
        // Rounded up to the smallest stack, like `set_default_stack_size`.
        let g = Builder::new()
            .stack_size(0)
            .spawn(|| 5)
            .expect("the minimum stack");
        assert_eq!(g.get().unwrap(), 5);
    });
}

/// `Builder::stack_size(usize::MAX)` is accepted and silently clamped
/// (`u32::try_from(b).unwrap_or(u32::MAX)` in `hub::start`): a request the
/// runtime cannot honour should be an error, not a 4 GiB mapping.
#[test]
fn huge_stack_size_is_refused() {
    greenlet::run(|| {
        assert!(Builder::new().stack_size(usize::MAX).spawn(|| 5).is_err());
    });
}

/// Outside any scope `spawn` is refused, but `sleep`, `Timeout`, `join` etc.
/// run an implicit hub (only `hub::start` checks `IN_SCOPE`). A Timeout
/// that fires there escapes as an opaque panic payload (`hub::Unwind`,
/// "Box<dyn Any>") instead of an error naming `greenlet::run`. The same
/// implicit hub is what lets a greenlet spawned during scope teardown be
/// started outside any scope (see break_reset_drop.rs, UAF).
#[test]
fn timeout_outside_scope_is_a_clear_error() {
    let r = std::panic::catch_unwind(|| {
        let _t = Timeout::start_new(Duration::from_millis(5));
        sleep(Duration::from_millis(50));
    });
    let p = r.expect_err("an error naming greenlet::run was expected");
    let m = p
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
    assert!(
        m.as_deref().is_some_and(|m| m.contains("greenlet::run")),
        "opaque payload: {m:?}"
    );
}
