//! Per-greenlet storage behind `greenlet_local!`, and greenlet identities.
//!
//! # Design
//!
//! The hub keeps `locals: Vec<Option<Box<Locals>>>` indexed by slot (beside
//! the slots, not in them: the switch path touches slots), each `None` until
//! the greenlet in that slot first touches a greenlet-local. [`Locals`] is a
//! short vector of `(key id, Rc<dyn Any>)`: a greenlet touches few keys, and
//! a linear scan over a handful of entries beats hashing. Values are `Rc`s
//! so that the key's `with` can clone one out under the hub borrow and call
//! the user's closure after the borrow ends (the closure may switch, or
//! touch the hub).
//!
//! Who drops the values:
//!
//! * a [`Greenlet`](crate::Greenlet) or `spawn_raw` greenlet drops its own,
//!   on its own stack, when its body has returned or unwound (killed too),
//!   before it is marked dead: [`drop_current_locals`]. Values set while
//!   those run are dropped in a further round (bounded);
//! * whatever is left then goes with the slot when it is freed
//!   ([`drop_leftover_locals`], on the loop, panics reported);
//! * the main greenlet's are dropped when its hub scope's closure has ended,
//!   before the other greenlets are killed ([`drop_main_locals`]).
//!
//! Cost: nothing on the switch path (the vector is only read by these
//! functions and when a slot is freed); one pointer per slot that ever ran a
//! greenlet using one; a `with` is one hub borrow, a scan of the greenlet's
//! few keys and an `Rc` clone.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;

use super::{ErrorReport, LOOP, MAIN, local, report, with_hub};
use crate::greenlet::error::{GreenletError, PanicError};

/// The greenlet-local values of one greenlet: `(key id, value)`.
pub(crate) type Locals = Vec<(usize, Rc<dyn Any>)>;

/// Why the running code has no greenlet-local storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LocalAccess {
    /// Not inside a hub scope on this thread.
    NoScope,
    /// Inside a hub callback (link, timer, post): no greenlet runs.
    InCallback,
}

/// Identifies a greenlet for its whole life, never confused with a later
/// greenlet that reuses its slot (the generation changes when a slot is
/// freed) or with one of another hub, earlier or later (the hub's epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct GreenletId {
    epoch: u64,
    slot: u32,
    generation: u32,
}

/// The identity of the code running now: a greenlet, the main greenlet, or
/// hub callbacks (`slot == LOOP`). `None` outside a hub scope.
pub(crate) fn current_greenlet_id() -> Option<GreenletId> {
    if !local::in_scope() {
        return None;
    }
    Some(with_hub(|h| {
        let slot = h.current;
        let generation = if slot == LOOP {
            0
        } else {
            h.slots[slot as usize].generation
        };
        GreenletId {
            epoch: h.epoch,
            slot,
            generation,
        }
    }))
}

/// The running greenlet's value for `key`, if it has one.
pub(crate) fn local_get(key: usize) -> Result<Option<Rc<dyn Any>>, LocalAccess> {
    if !local::in_scope() {
        return Err(LocalAccess::NoScope);
    }
    with_hub(|h| {
        let slot = h.current;
        if slot == LOOP {
            return Err(LocalAccess::InCallback);
        }
        let found = h
            .locals
            .get(slot as usize)
            .and_then(Option::as_deref)
            .and_then(|l| l.iter().find(|(k, _)| *k == key))
            .map(|(_, v)| Rc::clone(v));
        Ok(found)
    })
}

/// Stores `value` for `key` in the running greenlet unless it has one
/// already (an initialiser that touched its own key); returns the stored
/// one. The value not kept is dropped by the caller, outside the borrow.
pub(crate) fn local_insert(key: usize, value: Rc<dyn Any>) -> Result<Rc<dyn Any>, LocalAccess> {
    if !local::in_scope() {
        return Err(LocalAccess::NoScope);
    }
    with_hub(|h| {
        let slot = h.current;
        if slot == LOOP {
            return Err(LocalAccess::InCallback);
        }
        let index = slot as usize;
        if h.locals.len() <= index {
            h.locals.resize_with(index + 1, || None);
        }
        let locals = h.locals[index].get_or_insert_with(Box::default);
        if let Some((_, v)) = locals.iter().find(|(k, _)| *k == key) {
            return Ok(Rc::clone(v));
        }
        locals.push((key, Rc::clone(&value)));
        Ok(value)
    })
}

/// Rounds of dropping before leftovers are left to the slot's release.
const DROP_ROUNDS: usize = 8;

/// Drops the running greenlet's locals on its own stack (its body is over).
/// Returns the first unwind payload a value's `Drop` raised (a panic, or a
/// kill delivered while a `Drop` blocked); the remaining values are still
/// dropped.
pub(crate) fn drop_current_locals() -> Option<Box<dyn Any + Send>> {
    let mut first = None;
    for _ in 0..DROP_ROUNDS {
        let taken = with_hub(|h| {
            let slot = h.current;
            if slot == LOOP {
                return None;
            }
            h.locals.get_mut(slot as usize).and_then(Option::take)
        });
        let Some(mut values) = taken else { break };
        // One by one, in insertion order, each under its own catch: a
        // panicking `Drop` does not keep the others alive.
        for (_, value) in values.drain(..) {
            let dropped = catch_unwind(AssertUnwindSafe(move || drop(value)));
            if let (Err(payload), None) = (dropped, &first) {
                first = Some(payload);
            }
        }
    }
    first
}

/// Drops the main greenlet's locals: its hub scope's closure has ended.
/// Panics are reported.
pub(crate) fn drop_main_locals() {
    for _ in 0..DROP_ROUNDS {
        let taken = with_hub(|h| h.locals.get_mut(MAIN as usize).and_then(Option::take));
        let Some(values) = taken else { break };
        drop_reporting(*values, "the main greenlet's locals");
    }
}

/// Drops what a freed slot still held (on the loop; panics reported).
pub(super) fn drop_leftover_locals(locals: Option<Box<Locals>>, slot: u32) {
    if let Some(values) = locals {
        drop_reporting(*values, &format!("greenlet-locals of slot #{slot}"));
    }
}

fn drop_reporting(values: Locals, what: &str) {
    for (_, value) in values {
        if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(value))) {
            let error = GreenletError::Panicked(PanicError::new(payload));
            report(&ErrorReport {
                context: "greenlet-local destructor",
                greenlet: what.to_owned(),
                error: &error,
            });
        }
    }
}
