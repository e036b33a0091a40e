//! Killing a greenlet unwinds its stack, so its cleanup runs: destructors,
//! guards, whatever a `finally` would do in gevent.
//!
//! Run with `cargo run --example kill`.

use greenlet::{GreenletError, KillError, greenlet, hub, sleep};
use std::error::Error;
use std::fmt;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// How many connections were opened and closed (checked at the end).
static OPENED: AtomicU32 = AtomicU32::new(0);
static CLOSED: AtomicU32 = AtomicU32::new(0);

/// A resource whose destructor must run (a socket, a lock file, a transaction).
struct Connection {
    peer: &'static str,
    requests: u32,
}

impl Connection {
    fn open(peer: &'static str) -> Connection {
        OPENED.fetch_add(1, Ordering::Relaxed);
        println!("  [{peer}] connection opened");
        Connection { peer, requests: 0 }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Runs when the greenlet finishes, panics, or is killed.
        CLOSED.fetch_add(1, Ordering::Relaxed);
        println!(
            "  [{}] connection closed after {} requests (cleanup ran)",
            self.peer, self.requests
        );
    }
}

#[greenlet]
fn serve(peer: &'static str) {
    let mut conn = Connection::open(peer);
    loop {
        sleep(Duration::from_millis(10)); // a kill is delivered here
        conn.requests += 1;
    }
}

/// A reason to kill with (gevent's `kill(exception=Shutdown)`).
#[derive(Debug)]
struct Shutdown;

impl fmt::Display for Shutdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("server shutting down")
    }
}

impl Error for Shutdown {}

#[greenlet::main]
fn main() -> Result<(), Box<dyn Error>> {
    // 1. The default kill (GreenletExit): silent and counted as successful.
    println!("kill():");
    let db = serve("db");
    sleep(Duration::from_millis(35));
    db.kill()?; // waits until the greenlet is dead, so the cleanup already ran
    println!("  {db}; successful: {}", db.is_successful());
    assert!(db.is_successful(), "a GreenletExit kill counts as success");
    assert_eq!(
        CLOSED.load(Ordering::Relaxed),
        1,
        "kill() returned before the cleanup ran"
    );

    // 2. Kill with an error: unsuccessful, reported, visible to links.
    println!("kill_with(Shutdown):");
    hub::set_error_handler(|report| println!("  reported: {report}"));
    let cache = serve("cache");
    cache.link_exception(|g| {
        if let Some(e) = g.exception() {
            println!("  link_exception saw: {e}");
        }
    });
    sleep(Duration::from_millis(15));
    cache.kill_with(Shutdown)?;
    sleep(Duration::ZERO); // links run on the next loop turn
    match cache.exception() {
        Some(GreenletError::Killed(KillError::Error(e))) => println!("  exception: {e}"),
        other => panic!("`cache` should have died of the Shutdown kill, got {other:?}"),
    }

    // 3. Killed before it ever ran: the body (and its Connection) never exist.
    println!("kill before start:");
    let never = serve("never");
    never.kill()?;
    println!("  {never} (no connection was opened)");
    hub::reset_error_handler();
    let (opened, closed) = (
        OPENED.load(Ordering::Relaxed),
        CLOSED.load(Ordering::Relaxed),
    );
    assert!(
        opened == 2 && closed == 2,
        "wrong cleanup count: {opened} connections opened, {closed} closed (want 2 and 2)"
    );
    println!("every opened connection was closed");
    Ok(())
}
