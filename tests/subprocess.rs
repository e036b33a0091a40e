//! `greenlet::process::Command`: pipes read and written cooperatively,
//! `communicate` with large data both ways, `wait_timeout` and `kill`, exit
//! codes and signals, spawn errors, and the hub running other greenlets
//! while a child runs.

mod common;

use std::cell::Cell;
use std::io::{ErrorKind, Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::Stdio;
use std::rc::Rc;
use std::time::{Duration, Instant};

use common::{TICK, TICK_UPPER, assert_band, timed};
use greenlet::process::Command;
use greenlet::{sleep, spawn, with_timeout};

fn piped(program: &str, args: &[&str]) -> greenlet::process::Child {
    Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn")
}

#[greenlet::test]
fn echo_and_cat_round_trip() {
    let out = Command::new("echo")
        .args(["hello", "world"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, b"hello world\n");
    assert!(out.stderr.is_empty());

    // Line by line through cat: each write comes back before the next.
    let mut cat = piped("cat", &[]);
    let mut stdin = cat.stdin.take().unwrap();
    let mut stdout = cat.stdout.take().unwrap();
    for i in 0..20 {
        let line = format!("line {i}\n");
        stdin.write_all(line.as_bytes()).unwrap();
        let mut buf = vec![0; line.len()];
        stdout.read_exact(&mut buf).unwrap();
        assert_eq!(buf, line.as_bytes());
    }
    drop(stdin); // EOF
    let mut rest = Vec::new();
    stdout.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    assert_eq!(cat.wait().unwrap().code(), Some(0));
}

#[greenlet::test]
fn communicate_one_megabyte_both_ways() {
    let input: Vec<u8> = (0..1 << 20).map(|i: u32| (i % 251) as u8).collect();
    // cat echoes all of stdin to stdout while a second copy goes to stderr:
    // the child fills both output pipes long before it has read its input.
    let mut child = piped("sh", &["-c", "tee /dev/stderr"]);
    let (out, elapsed) = timed(|| child.communicate(Some(&input), Some(Duration::from_secs(20))));
    let out = out.unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout.len(), input.len());
    assert!(out.stdout == input, "stdout is the input");
    assert!(out.stderr == input, "stderr is the input");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");

    // Output only, no input: stdin is closed at once.
    let mut child = piped("sh", &["-c", "cat; head -c 1048576 /dev/zero"]);
    let out = child.communicate(None, None).unwrap();
    assert_eq!(out.stdout.len(), 1 << 20);
    assert!(out.stdout.iter().all(|&b| b == 0));
}

#[greenlet::test]
fn communicate_with_a_child_that_ignores_its_input() {
    let big = vec![b'x'; 1 << 20];
    let mut child = piped("sh", &["-c", "exec 0<&-; echo early"]);
    let out = child
        .communicate(Some(&big), Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(out.stdout, b"early\n");
    assert!(out.status.success());
}

#[greenlet::test]
fn communicate_times_out() {
    let mut child = piped("sleep", &["5"]);
    let (r, elapsed) = timed(|| child.communicate(None, Some(TICK)));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::TimedOut);
    assert_band("communicate(timeout=50ms)", elapsed, TICK, TICK_UPPER);
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    // The child closes its output at once but does not exit: the same
    // deadline covers the wait for its exit.
    let mut child = piped("sh", &["-c", "exec >&- 2>&-; sleep 5"]);
    let (r, elapsed) = timed(|| child.communicate(Some(b"ignored"), Some(TICK)));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::TimedOut);
    assert_band(
        "communicate(timeout=50ms), output closed",
        elapsed,
        TICK,
        TICK_UPPER,
    );
    child.kill().unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
}

#[greenlet::test]
fn wait_timeout_then_kill() {
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    assert!(child.try_wait().unwrap().is_none());
    let (r, elapsed) = timed(|| child.wait_timeout(TICK));
    assert_eq!(r.unwrap_err().kind(), ErrorKind::TimedOut);
    assert_band("wait_timeout(50ms)", elapsed, TICK, TICK_UPPER);
    assert!(child.try_wait().unwrap().is_none(), "still running");
    let (status, elapsed) = timed(|| {
        child.kill().unwrap();
        child.wait().unwrap()
    });
    assert_eq!(status.signal(), Some(libc::SIGKILL));
    assert!(!status.success());
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
    // Reaped: status kept, kill is a no-op.
    assert_eq!(child.try_wait().unwrap(), Some(status));
    assert_eq!(child.wait().unwrap(), status);
    child.kill().unwrap();
    // SIGTERM through send_signal.
    let mut child = Command::new("sleep").arg("5").spawn().unwrap();
    child.send_signal(libc::SIGTERM).unwrap();
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
}

#[greenlet::test]
fn exit_status_codes() {
    for code in [0, 1, 2, 42, 255] {
        let status = Command::new("sh")
            .args(["-c", &format!("exit {code}")])
            .status()
            .unwrap();
        assert_eq!(status.code(), Some(code));
        assert_eq!(status.success(), code == 0);
    }
    let out = Command::new("sh")
        .args(["-c", "echo to-err >&2; exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(out.stderr, b"to-err\n");
    assert!(out.stdout.is_empty());
    // output() gives the child /dev/null as stdin unless told otherwise.
    let out = Command::new("cat").output().unwrap();
    assert!(out.status.success() && out.stdout.is_empty());
}

#[greenlet::test]
fn spawning_a_missing_program_is_an_error() {
    let e = Command::new("/definitely/not/a/program")
        .spawn()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = Command::new("no-such-program-greenlet-test")
        .output()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = Command::new("/").status().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied, "{e}");
}

#[greenlet::test]
fn other_greenlets_run_while_a_child_runs() {
    let ticks = Rc::new(Cell::new(0u32));
    let t = Rc::clone(&ticks);
    let ticker = spawn(move || {
        loop {
            sleep(Duration::from_millis(5));
            t.set(t.get() + 1);
        }
    });
    let started = Instant::now();
    // Waiting, and reading a pipe the child writes only at its end.
    let out = Command::new("sh")
        .args(["-c", "sleep 0.1; echo done"])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    assert_eq!(out.stdout, b"done\n");
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(
        ticks.get() >= 10,
        "ticked {} times in {elapsed:?}",
        ticks.get()
    );
    let before = ticks.get();
    let status = Command::new("sleep").arg("0.1").status().unwrap();
    assert!(status.success());
    assert!(
        ticks.get() - before >= 10,
        "ticked {} times",
        ticks.get() - before
    );
    ticker.kill().unwrap();
}

#[greenlet::test]
fn a_reader_killed_or_timed_out_mid_read_leaves_the_pipe_usable() {
    let mut child = piped("cat", &[]);
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = [0u8; 4];
    let r = with_timeout(Duration::from_millis(10), || stdout.read(&mut buf));
    assert!(r.is_err(), "nothing to read yet");
    child.stdin.as_mut().unwrap().write_all(b"abcd").unwrap();
    stdout.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"abcd");
    let reader = spawn(move || {
        let mut buf = Vec::new();
        stdout.read_to_end(&mut buf).map(|_| buf)
    });
    sleep(Duration::from_millis(5));
    reader.kill().unwrap();
    assert!(reader.is_dead());
    child.kill().unwrap();
    assert!(!child.wait().unwrap().success());
}
