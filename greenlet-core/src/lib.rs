//! The runtime behind the [`greenlet`](https://docs.rs/greenlet) crate:
//! gevent's green threads for Rust.
//!
//! Most users depend on `greenlet` (this crate plus the attribute macros) and
//! never name `greenlet_core` directly.
//!
//! # Tour
//!
//! * [`hub`]: the per-thread event loop (timers, I/O, callbacks), its
//!   counters ([`hub::stats`]), error handler and [`hub::HubHandle`].
//! * [`Greenlet`]: a green thread with a typed result; [`spawn`],
//!   [`spawn_later`], [`spawn_raw`], [`Builder`], [`Run`] for structs.
//! * [`sleep`], [`idle`], [`getcurrent`], [`kill`].
//! * Waiting: the [`Waitable`] protocol; [`wait`], [`iwait`], [`joinall`],
//!   [`killall`].
//! * Timeouts: [`Timeout`], [`with_timeout`], [`with_timeout_value`].
//! * Coordination (gevent's `event`, `lock`, `local`): [`event::Event`],
//!   [`event::AsyncResult`], [`lock::Semaphore`], [`lock::BoundedSemaphore`],
//!   [`lock::Lock`], [`lock::RLock`], [`greenlet_local!`]; all built on the
//!   public [`waiter`] protocol.
//! * File descriptors: [`io::wait_read`], [`io::wait_write`].
//! * Sockets: [`net`] (std's `TcpStream`, `TcpListener`, `UdpSocket`,
//!   `Unix*` types, whose blocking calls switch); servers: [`server`]
//!   (`StreamServer`, `DatagramServer`, `serve_multicore`).
//! * Processes and signals: [`fork`], [`reinit`], [`waitpid`],
//!   [`signal`] (handlers run in new greenlets), [`send_signal`].
//! * Errors: [`GreenletError`], [`KillError`], [`Elapsed`], [`LoopExit`],
//!   [`SpawnError`].
//!
//! # Model
//!
//! Each OS thread runs its greenlets on its own hub, inside a **hub scope**:
//! [`run`] (or `#[greenlet::main]` / `#[greenlet::test]`) runs a closure on
//! the thread's main greenlet (its native stack) and, when the closure
//! returns or unwinds, kills every greenlet left and waits until their
//! destructors ran, so no greenlet outlives the code that could lend it
//! borrows. Spawning outside a scope is an error ([`SpawnErrorKind::NoScope`]).
//! Greenlets never leave the thread that spawned them (their handles are
//! `!Send`). They are cooperative: one runs at a time, until it blocks in
//! something of this crate (`sleep`, `join`, `get`, `wait`, a timeout, a
//! socket). A call that blocks the OS thread (`std::thread::sleep`, blocking
//! std I/O) stalls every greenlet of that thread.
//!
//! The crate requires `panic = "unwind"`: kills and timeouts are delivered by
//! unwinding. They are queued per greenlet and raised one per switch, in
//! order; while a greenlet unwinds, throws aimed at it wait until its unwind
//! ends. A greenlet stack overflow aborts the process with the greenlet's
//! name, spawn site and stack size (its frames can never be unwound safely).
//!
//! # Errors
//!
//! Blocking calls return `Result`: [`WaitError`] says why a wait did not
//! complete (`LoopExit`, `JoinSelf`, `Elapsed`), [`GreenletError`] how a
//! greenlet ended (and converts from `WaitError`). Panics are kept for
//! programming errors no type can express, such as blocking inside a hub
//! callback, and name the API involved.
//!
//! # Environment
//!
//! * `GREENLET_PANIC_HOOK`: when set, panics inside greenlets also go to the
//!   process's panic hook (e.g. for `RUST_BACKTRACE` output); by default they
//!   are reported once, with their location, by the hub's error handler.
//! * `GREENLET_NOWAITPID`: when `1`/`true`, children forked with [`fork`] are
//!   not watched through `SIGCHLD` (gevent's `GEVENT_NOWAITPID`); [`waitpid`]
//!   polls instead.
#![warn(
    missing_docs,
    missing_debug_implementations,
    unreachable_pub,
    rust_2018_idioms
)]
// `unsafe` is allowed in exactly two modules: greenlet/switch.rs (the
// `generator` glue) and hub/reactor.rs (poller registration, raw syscalls).
#![deny(unsafe_code)]

#[cfg(panic = "abort")]
compile_error!(
    "greenlet needs `panic = \"unwind\"`: kills and timeouts are delivered by unwinding the greenlet's stack"
);

pub mod event;
mod greenlet;
pub mod hub;
pub mod local;
pub mod lock;
pub mod net;
pub mod pool;
pub mod process;
pub mod queue;
pub mod server;
mod signal;
mod timeout;
mod wait;
pub mod waiter;

pub use greenlet::error::{
    AlreadyPending, Elapsed, GreenletError, InvalidDuration, KillError, LoopExit, PanicError,
    SpawnError, SpawnErrorKind, WaitError, duration_from_secs_f64,
};
pub use greenlet::{
    AnyGreenlet, Builder, CloneValue, Greenlet, GreenletRef, KillOptions, Killable, LinkId, Run,
    WaitOptions, getcurrent, kill, spawn, spawn_later, spawn_raw,
};
pub use hub::{idle, run, sleep, sleep_secs, sleep_unref};

/// Waiting on file descriptors from greenlets.
pub mod io {
    pub use crate::hub::io::{wait_read, wait_readwrite, wait_write};
}
pub use process::{
    Fork, fork, reinit, send_signal, set_watch_children, try_waitpid, waitpid, waitpid_timeout,
    watch_children,
};
pub use signal::{SignalHandle, signal};
pub use timeout::{Timeout, with_timeout, with_timeout_value};
pub use wait::{
    IWait, iwait, iwait_with, joinall, joinall_with, killall, killall_with, wait, wait_with,
};
pub use waiter::Waitable;

pub mod threadpool;
pub use threadpool::spawn_blocking;

mod dns;
