//! trybuild UI tests of the attribute macros: every mistake the macros
//! catch has a `tests/ui/*.rs` case with its committed `.stderr`, and
//! `tests/ui/pass/*.rs` are programs that must compile warning-free and run.
//!
//! Regenerate the `.stderr` files after a deliberate change to a message
//! with `TRYBUILD=overwrite cargo test --test macros_ui`, then review them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
