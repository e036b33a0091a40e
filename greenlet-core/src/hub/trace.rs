//! `tracing` events for greenlet life cycles, behind the `tracing` cargo
//! feature: spawn, finish, kill and error, each with the greenlet's hub id
//! (the [`GreenletInfo::id`](super::GreenletInfo::id) of [`dump`](super::dump))
//! and name. Target `"greenlet"`, level `TRACE` for spawn/finish, `DEBUG` for
//! kill, `ERROR` for errors (the same ones the hub's error handler reports).
//!
//! Without the feature every function here is an empty `#[inline(always)]`
//! one: no code, no data, no cost.

use super::Hub;
use crate::greenlet::error::{GreenletError, KillError};

#[cfg(feature = "tracing")]
fn who(h: &Hub, slot: u32) -> (u64, String, String) {
    let id = h.meta.get(slot as usize).map_or(0, |m| m.id);
    match h.slots.get(slot as usize).and_then(|s| s.core()) {
        Some(core) => {
            let header = core.header();
            let at = header.spawned_at;
            (
                id,
                header.name().unwrap_or("").to_owned(),
                format!("{}:{}", at.file(), at.line()),
            )
        }
        None => (id, String::new(), String::new()),
    }
}

/// A greenlet was spawned into `slot`.
#[cfg(feature = "tracing")]
pub(super) fn spawned(h: &Hub, slot: u32) {
    if tracing::enabled!(target: "greenlet", tracing::Level::TRACE) {
        let (id, name, at) = who(h, slot);
        tracing::trace!(target: "greenlet", id, name, spawned_at = at, "spawn");
    }
}

/// The greenlet in `slot` finished (`error`: an outcome decided by the hub).
#[cfg(feature = "tracing")]
pub(super) fn finished(h: &Hub, slot: u32, error: Option<&GreenletError>) {
    if tracing::enabled!(target: "greenlet", tracing::Level::TRACE) {
        let (id, name, _) = who(h, slot);
        match error {
            Some(e) => tracing::trace!(target: "greenlet", id, name, error = %e, "finish"),
            None => tracing::trace!(target: "greenlet", id, name, "finish"),
        }
    }
}

/// A kill was aimed at the greenlet in `slot`.
#[cfg(feature = "tracing")]
pub(super) fn killed(h: &Hub, slot: u32, error: &KillError) {
    if tracing::enabled!(target: "greenlet", tracing::Level::DEBUG) {
        let (id, name, _) = who(h, slot);
        tracing::debug!(target: "greenlet", id, name, error = %error, "kill");
    }
}

/// The hub reports an error (a greenlet failed, a callback panicked).
#[cfg(feature = "tracing")]
pub(super) fn error(report: &super::ErrorReport<'_>) {
    tracing::error!(
        target: "greenlet",
        context = report.context,
        greenlet = %report.greenlet,
        error = %report.error,
        "error"
    );
}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(super) fn spawned(_: &Hub, _: u32) {}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(super) fn finished(_: &Hub, _: u32, _: Option<&GreenletError>) {}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(super) fn killed(_: &Hub, _: u32, _: &KillError) {}

#[cfg(not(feature = "tracing"))]
#[inline(always)]
pub(super) fn error(_: &super::ErrorReport<'_>) {}
