//! `hub::dump()`: what every greenlet of the hub is doing and waiting on
//! (gevent's `print_run_info`), and the same dump on a signal for a hung
//! process (`kill -USR2 <pid>`).
//!
//! Run with `cargo run --release --example dump`.

use greenlet::hub::{self, WaitsOn};
use greenlet::{Builder, sleep};
use std::error::Error;
use std::os::unix::net::UnixStream;
use std::process::Command;
use std::time::Duration;

fn main() -> Result<(), Box<dyn Error>> {
    let signal_child = std::env::var_os("DUMP_CHILD").is_some();
    greenlet::run(|| -> Result<(), Box<dyn Error>> {
        if signal_child {
            hub::dump_on_signal(libc::SIGUSR2)?;
        }
        let (sock, _peer) = UnixStream::pair()?;
        let ticker = Builder::new()
            .name("ticker")
            .spawn(|| sleep(Duration::from_secs(30)))?;
        let reader = Builder::new()
            .name("reader")
            .spawn(move || greenlet::io::wait_read(&sock, None).map(drop))?;
        let t = ticker.clone();
        let waiter = Builder::new()
            .name("waiter")
            .spawn(move || t.join().map(drop))?;
        sleep(Duration::ZERO);

        if signal_child {
            // As `kill -USR2 <pid>` from a shell would: the hub prints its
            // dump on stderr at its next loop turn.
            greenlet::send_signal(std::process::id(), libc::SIGUSR2)?;
            sleep(Duration::from_millis(200));
        } else {
            let dump = hub::dump();
            println!("{dump}");
            let waits = |name: &str| {
                dump.greenlets
                    .iter()
                    .find(|g| g.name.as_deref() == Some(name))
                    .and_then(|g| g.waits_on.clone())
            };
            assert!(matches!(waits("ticker"), Some(WaitsOn::Timer { .. })));
            assert!(matches!(
                waits("reader"),
                Some(WaitsOn::Fd { readable: true, .. })
            ));
            assert!(matches!(waits("waiter"), Some(WaitsOn::Join { id: 1, .. })));
        }
        ticker.kill()?;
        reader.kill()?;
        waiter.join()?;
        Ok(())
    })?;
    if signal_child {
        return Ok(());
    }
    // The same dump, asked for from outside with a signal.
    let out = Command::new(std::env::current_exe()?)
        .env("DUMP_CHILD", "1")
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("after SIGUSR2 the child printed:\n{stderr}");
    assert!(out.status.success(), "the child failed: {}", out.status);
    assert!(
        stderr.contains("hub of thread \"main\"") && stderr.contains("waits in wait_read (fd "),
        "the signal printed the dump: {stderr}"
    );
    println!("dump: every wait target listed");
    Ok(())
}
