//! Child processes with cooperative pipes (gevent's `gevent.subprocess`):
//! [`Command`], [`Child`], [`ChildStdin`], [`ChildStdout`], [`ChildStderr`].
//!
//! # Design
//!
//! * **Spawning** is `std::process::Command::spawn` (the `exec` failure of a
//!   missing program comes back as its error). Our side of each piped
//!   stream is switched to non-blocking mode and wrapped: reads and writes
//!   that would block wait with [`io::wait_read`](crate::io::wait_read) /
//!   [`wait_write`](crate::io::wait_write) instead, so only the calling
//!   greenlet blocks.
//! * **Waiting** goes through this crate's [`waitpid`](crate::waitpid):
//!   the hub's SIGCHLD watcher reaps the child, with no thread and no
//!   polling. The exit status is cached in the [`Child`]; `std`'s own
//!   `Child` is dropped after spawning (it would not see our reaping).
//! * **communicate** writes the input in one helper greenlet, reads stderr
//!   in another and stdout in the caller, so a child that fills one pipe
//!   while we write the other never deadlocks.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{ExitStatus, Output, Stdio};
use std::time::Duration;

use crate::Greenlet;

/// Our end of a pipe, in non-blocking mode.
fn nonblocking(fd: OwnedFd) -> io::Result<File> {
    // `UnixStream::set_nonblocking` is `ioctl(FIONBIO)`, which the kernel
    // applies to any descriptor, pipes included; the stream is only a
    // carrier here (it is never read or written as a socket). This keeps
    // the module free of `unsafe`.
    let carrier = UnixStream::from(fd);
    carrier.set_nonblocking(true)?;
    Ok(File::from(OwnedFd::from(carrier)))
}

fn read_coop(file: &File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match (&*file).read(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => crate::io::wait_read(file, None)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

fn write_coop(file: &File, buf: &[u8]) -> io::Result<usize> {
    loop {
        match (&*file).write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => crate::io::wait_write(file, None)?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

macro_rules! pipe_type {
    ($name:ident, $std:ty, $what:literal) => {
        #[doc = concat!("The child's ", $what, " (the parent's end of the pipe), read or written cooperatively: ")]
        #[doc = "an operation that would block waits on the hub instead, blocking only the calling greenlet."]
        #[doc = ""]
        #[doc = "Using it outside a hub scope, or in a hub callback, panics when it would block."]
        pub struct $name {
            file: File,
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($name))
                    .field("fd", &self.file.as_raw_fd())
                    .finish()
            }
        }

        impl $name {
            fn from_std(std: $std) -> io::Result<$name> {
                Ok($name {
                    file: nonblocking(OwnedFd::from(std))?,
                })
            }
        }

        impl AsFd for $name {
            fn as_fd(&self) -> BorrowedFd<'_> {
                self.file.as_fd()
            }
        }

        impl AsRawFd for $name {
            fn as_raw_fd(&self) -> RawFd {
                self.file.as_raw_fd()
            }
        }

        impl From<$name> for OwnedFd {
            /// The descriptor, still in non-blocking mode.
            fn from(pipe: $name) -> OwnedFd {
                OwnedFd::from(pipe.file)
            }
        }
    };
}

pipe_type!(ChildStdin, std::process::ChildStdin, "standard input");
pipe_type!(ChildStdout, std::process::ChildStdout, "standard output");
pipe_type!(ChildStderr, std::process::ChildStderr, "standard error");

impl Write for ChildStdin {
    /// # Switches
    ///
    /// While the pipe is full.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_coop(&self.file, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Read for ChildStdout {
    /// # Switches
    ///
    /// While the pipe is empty and open.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_coop(&self.file, buf)
    }
}

impl Read for ChildStderr {
    /// # Switches
    ///
    /// While the pipe is empty and open.
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        read_coop(&self.file, buf)
    }
}

/// A process builder shaped like [`std::process::Command`] whose children
/// are waited for and talked to cooperatively (gevent's `subprocess.Popen`
/// arguments; tokio's `process::Command`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::process::Command;
///
/// greenlet::run(|| {
///     let out = Command::new("echo").arg("hello").output().unwrap();
///     assert!(out.status.success());
///     assert_eq!(out.stdout, b"hello\n");
/// });
/// ```
pub struct Command {
    std: std::process::Command,
    stdin_set: bool,
}

impl fmt::Debug for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.std.fmt(f)
    }
}

impl From<std::process::Command> for Command {
    /// Wraps a configured `std` command (its stdio settings are kept).
    fn from(std: std::process::Command) -> Command {
        Command {
            std,
            stdin_set: true,
        }
    }
}

impl Command {
    /// A command running `program` (std's [`Command::new`](std::process::Command::new)).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let cmd = greenlet::process::Command::new("ls");
    /// assert_eq!(cmd.as_std().get_program(), "ls");
    /// ```
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            std: std::process::Command::new(program),
            stdin_set: false,
        }
    }

    /// Adds an argument.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let mut cmd = greenlet::process::Command::new("ls");
    /// cmd.arg("-l");
    /// assert_eq!(cmd.as_std().get_args().count(), 1);
    /// ```
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.std.arg(arg);
        self
    }

    /// Adds arguments.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let mut cmd = greenlet::process::Command::new("ls");
    /// cmd.args(["-l", "-a"]);
    /// assert_eq!(cmd.as_std().get_args().count(), 2);
    /// ```
    pub fn args<I, S>(&mut self, args: I) -> &mut Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.std.args(args);
        self
    }

    /// Sets an environment variable for the child.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let out = greenlet::process::Command::new("sh")
    ///         .args(["-c", "echo $GREETING"])
    ///         .env("GREETING", "hi")
    ///         .output()
    ///         .unwrap();
    ///     assert_eq!(out.stdout, b"hi\n");
    /// });
    /// ```
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.std.env(key, value);
        self
    }

    /// Removes an environment variable for the child.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let mut cmd = greenlet::process::Command::new("env");
    /// cmd.env_remove("HOME");
    /// ```
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.std.env_remove(key);
        self
    }

    /// Clears the child's environment.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let mut cmd = greenlet::process::Command::new("/usr/bin/env");
    /// cmd.env_clear();
    /// ```
    pub fn env_clear(&mut self) -> &mut Command {
        self.std.env_clear();
        self
    }

    /// Sets the child's working directory.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let out = greenlet::process::Command::new("pwd").current_dir("/").output().unwrap();
    ///     assert_eq!(out.stdout, b"/\n");
    /// });
    /// ```
    pub fn current_dir(&mut self, dir: impl AsRef<Path>) -> &mut Command {
        self.std.current_dir(dir);
        self
    }

    /// The child's standard input ([`Stdio::piped`] gives
    /// [`Child::stdin`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::process::Stdio;
    /// let mut cmd = greenlet::process::Command::new("cat");
    /// cmd.stdin(Stdio::piped());
    /// ```
    pub fn stdin(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdin(cfg);
        self.stdin_set = true;
        self
    }

    /// The child's standard output ([`Stdio::piped`] gives
    /// [`Child::stdout`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::process::Stdio;
    /// let mut cmd = greenlet::process::Command::new("echo");
    /// cmd.stdout(Stdio::null());
    /// ```
    pub fn stdout(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stdout(cfg);
        self
    }

    /// The child's standard error ([`Stdio::piped`] gives
    /// [`Child::stderr`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::process::Stdio;
    /// let mut cmd = greenlet::process::Command::new("ls");
    /// cmd.stderr(Stdio::piped());
    /// ```
    pub fn stderr(&mut self, cfg: impl Into<Stdio>) -> &mut Command {
        self.std.stderr(cfg);
        self
    }

    /// The wrapped `std` command, for settings not mirrored here.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let cmd = greenlet::process::Command::new("true");
    /// assert_eq!(cmd.as_std().get_program(), "true");
    /// ```
    pub fn as_std(&self) -> &std::process::Command {
        &self.std
    }

    /// The wrapped `std` command, mutably (e.g. for
    /// `std::os::unix::process::CommandExt`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::os::unix::process::CommandExt;
    /// let mut cmd = greenlet::process::Command::new("true");
    /// cmd.as_std_mut().arg0("renamed");
    /// ```
    pub fn as_std_mut(&mut self) -> &mut std::process::Command {
        &mut self.std
    }

    /// Starts the child. Piped streams are in [`Child::stdin`],
    /// [`Child::stdout`] and [`Child::stderr`].
    ///
    /// # Errors
    ///
    /// `std`'s spawn error: `ErrorKind::NotFound` for a missing program,
    /// `PermissionDenied`, out of descriptors or processes.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::process::Command;
    /// use std::io::ErrorKind;
    /// greenlet::run(|| {
    ///     let mut child = Command::new("true").spawn().unwrap();
    ///     assert!(child.wait().unwrap().success());
    ///     let e = Command::new("/no/such/program").spawn().unwrap_err();
    ///     assert_eq!(e.kind(), ErrorKind::NotFound);
    /// });
    /// ```
    pub fn spawn(&mut self) -> io::Result<Child> {
        let mut std = self.std.spawn()?;
        let pid = std.id();
        // Already started: if a pipe cannot be wrapped, the child still
        // has to be returned to be waited for; such failures are only
        // possible with a broken descriptor table, so report the first.
        let stdin = std.stdin.take().map(ChildStdin::from_std).transpose();
        let stdout = std.stdout.take().map(ChildStdout::from_std).transpose();
        let stderr = std.stderr.take().map(ChildStderr::from_std).transpose();
        match (stdin, stdout, stderr) {
            (Ok(stdin), Ok(stdout), Ok(stderr)) => Ok(Child {
                stdin,
                stdout,
                stderr,
                pid,
                status: None,
            }),
            (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                let _ = crate::send_signal(pid, libc::SIGKILL);
                let _ = crate::waitpid(pid);
                Err(e)
            }
        }
    }

    /// Runs the child to its end, collecting its output: stdout and stderr
    /// are piped (whatever they were set to) and stdin is `/dev/null`
    /// unless set (std's and tokio's `output`).
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn), or an I/O error on the pipes.
    ///
    /// # Switches
    ///
    /// Until the child has exited and closed its output.
    ///
    /// # Panics
    ///
    /// Outside a hub scope, or inside a hub callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let out = greenlet::process::Command::new("sh")
    ///         .args(["-c", "echo out; echo err >&2; exit 3"])
    ///         .output()
    ///         .unwrap();
    ///     assert_eq!(out.status.code(), Some(3));
    ///     assert_eq!((&out.stdout[..], &out.stderr[..]), (&b"out\n"[..], &b"err\n"[..]));
    /// });
    /// ```
    #[track_caller]
    pub fn output(&mut self) -> io::Result<Output> {
        self.std.stdout(Stdio::piped()).stderr(Stdio::piped());
        if !self.stdin_set {
            self.std.stdin(Stdio::null());
        }
        self.spawn()?.wait_with_output()
    }

    /// Runs the child to its end with inherited stdio and returns its exit
    /// status.
    ///
    /// # Errors
    ///
    /// As [`spawn`](Command::spawn) and [`Child::wait`].
    ///
    /// # Switches
    ///
    /// Until the child has exited.
    ///
    /// # Panics
    ///
    /// Outside a hub scope, or inside a hub callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let status = greenlet::process::Command::new("false").status().unwrap();
    ///     assert_eq!(status.code(), Some(1));
    /// });
    /// ```
    #[track_caller]
    pub fn status(&mut self) -> io::Result<ExitStatus> {
        self.spawn()?.wait()
    }
}

/// A running (or exited) child process started by [`Command::spawn`]
/// (gevent's `Popen`, std's `Child`).
///
/// Dropping it neither kills nor reaps the child (as `std`): call
/// [`wait`](Child::wait) (or [`kill`](Child::kill) then `wait`) so it does
/// not stay a zombie.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::process::Command;
/// use std::io::{Read, Write};
/// use std::process::Stdio;
///
/// greenlet::run(|| {
///     let mut child = Command::new("cat")
///         .stdin(Stdio::piped())
///         .stdout(Stdio::piped())
///         .spawn()
///         .unwrap();
///     child.stdin.take().unwrap().write_all(b"ping").unwrap(); // dropped: EOF
///     let mut echoed = String::new();
///     child.stdout.as_mut().unwrap().read_to_string(&mut echoed).unwrap();
///     assert_eq!(echoed, "ping");
///     assert!(child.wait().unwrap().success());
/// });
/// ```
#[derive(Debug)]
pub struct Child {
    /// The child's stdin, if piped.
    pub stdin: Option<ChildStdin>,
    /// The child's stdout, if piped.
    pub stdout: Option<ChildStdout>,
    /// The child's stderr, if piped.
    pub stderr: Option<ChildStderr>,
    pid: u32,
    status: Option<ExitStatus>,
}

impl Child {
    /// The child's process id (gevent's `pid`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let mut child = greenlet::process::Command::new("true").spawn().unwrap();
    ///     assert!(child.id() > 0);
    ///     child.wait().unwrap();
    /// });
    /// ```
    pub fn id(&self) -> u32 {
        self.pid
    }

    /// Closes stdin (so a child reading it sees EOF) and waits for the
    /// child to exit, blocking only the calling greenlet (std's `wait`,
    /// gevent's `Popen.wait`). The status is kept: later calls return it
    /// at once.
    ///
    /// # Errors
    ///
    /// As [`waitpid`](crate::waitpid) (`ECHILD` if something else reaped
    /// the child).
    ///
    /// # Switches
    ///
    /// Until the child has exited. A kill or [`Timeout`](crate::Timeout)
    /// ends the wait by unwinding; the child keeps running.
    ///
    /// # Panics
    ///
    /// Outside a hub scope, or inside a hub callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let mut child = greenlet::process::Command::new("sh").args(["-c", "exit 4"]).spawn().unwrap();
    ///     assert_eq!(child.wait().unwrap().code(), Some(4));
    ///     assert_eq!(child.wait().unwrap().code(), Some(4));
    /// });
    /// ```
    #[track_caller]
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = crate::waitpid(self.pid)?;
        self.status = Some(status);
        Ok(status)
    }

    /// [`wait`](Child::wait) giving up after `timeout` (gevent's
    /// `Popen.wait(timeout)`).
    ///
    /// # Errors
    ///
    /// `ErrorKind::TimedOut` if the child still runs (wait again, or
    /// [`kill`](Child::kill) it); otherwise as [`wait`](Child::wait).
    ///
    /// # Switches
    ///
    /// As [`wait`](Child::wait).
    ///
    /// # Panics
    ///
    /// Outside a hub scope, or inside a hub callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::io::ErrorKind;
    /// use std::time::Duration;
    /// greenlet::run(|| {
    ///     let mut child = greenlet::process::Command::new("sleep").arg("5").spawn().unwrap();
    ///     let e = child.wait_timeout(Duration::from_millis(10)).unwrap_err();
    ///     assert_eq!(e.kind(), ErrorKind::TimedOut);
    ///     child.kill().unwrap();
    ///     assert!(!child.wait().unwrap().success());
    /// });
    /// ```
    #[track_caller]
    pub fn wait_timeout(&mut self, timeout: Duration) -> io::Result<ExitStatus> {
        drop(self.stdin.take());
        if let Some(status) = self.status {
            return Ok(status);
        }
        let status = crate::waitpid_timeout(self.pid, timeout)?;
        self.status = Some(status);
        Ok(status)
    }

    /// The exit status if the child has exited, `None` if it still runs
    /// (std's `try_wait`, gevent's `Popen.poll`). Never blocks.
    ///
    /// # Errors
    ///
    /// As [`wait`](Child::wait).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// greenlet::run(|| {
    ///     let mut child = greenlet::process::Command::new("sleep").arg("5").spawn().unwrap();
    ///     assert!(child.try_wait().unwrap().is_none());
    ///     child.kill().unwrap();
    ///     child.wait().unwrap();
    ///     assert!(child.try_wait().unwrap().is_some());
    /// });
    /// ```
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        if let Some(status) = self.status {
            return Ok(Some(status));
        }
        let status = crate::try_waitpid(self.pid)?;
        self.status = status;
        Ok(status)
    }

    /// Sends `signum` to the child, unless it was already reaped (then
    /// nothing is sent: its pid may belong to another process by now).
    ///
    /// # Errors
    ///
    /// As [`send_signal`](crate::send_signal).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::os::unix::process::ExitStatusExt;
    /// greenlet::run(|| {
    ///     let mut child = greenlet::process::Command::new("sleep").arg("5").spawn().unwrap();
    ///     child.send_signal(libc::SIGTERM).unwrap();
    ///     assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
    /// });
    /// ```
    pub fn send_signal(&mut self, signum: i32) -> io::Result<()> {
        // An exited but unreaped child is a zombie: its pid is still ours.
        if self.try_wait()?.is_some() {
            return Ok(());
        }
        crate::send_signal(self.pid, signum)
    }

    /// Kills the child with `SIGKILL` (std's `kill`, gevent's
    /// `Popen.kill`). `Ok` if it had exited already. It does not wait:
    /// call [`wait`](Child::wait) next.
    ///
    /// # Errors
    ///
    /// As [`send_signal`](Child::send_signal).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::os::unix::process::ExitStatusExt;
    /// greenlet::run(|| {
    ///     let mut child = greenlet::process::Command::new("sleep").arg("5").spawn().unwrap();
    ///     child.kill().unwrap();
    ///     assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
    ///     child.kill().unwrap(); // exited: nothing to do
    /// });
    /// ```
    pub fn kill(&mut self) -> io::Result<()> {
        self.send_signal(libc::SIGKILL)
    }

    /// Writes `input` to stdin (then closes it) while reading stdout and
    /// stderr to their end, then waits for the child (gevent's
    /// `Popen.communicate(input, timeout)`). The three streams are served
    /// concurrently, so a child that writes a lot before reading all its
    /// input never deadlocks. Streams that are not piped are skipped; a
    /// child that exits without reading all of `input` is not an error.
    ///
    /// # Errors
    ///
    /// `ErrorKind::TimedOut` if `timeout` passes first (one deadline for
    /// the whole exchange and the wait for the exit): the pipes are then
    /// closed and the output read so far is lost; the child keeps running
    /// (kill and wait for it). Otherwise an I/O error on a pipe, or as
    /// [`wait`](Child::wait).
    ///
    /// # Switches
    ///
    /// Until the child has closed its output and exited.
    ///
    /// # Panics
    ///
    /// Outside a hub scope, or inside a hub callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::process::Command;
    /// use std::process::Stdio;
    /// greenlet::run(|| {
    ///     let mut child = Command::new("tr")
    ///         .args(["a-z", "A-Z"])
    ///         .stdin(Stdio::piped())
    ///         .stdout(Stdio::piped())
    ///         .spawn()
    ///         .unwrap();
    ///     let out = child.communicate(Some(b"shout"), None).unwrap();
    ///     assert_eq!(out.stdout, b"SHOUT");
    ///     assert!(out.status.success());
    /// });
    /// ```
    #[track_caller]
    pub fn communicate(
        &mut self,
        input: Option<&[u8]>,
        timeout: Option<Duration>,
    ) -> io::Result<Output> {
        let stdin = self.stdin.take();
        let stdout = self.stdout.take();
        let stderr = self.stderr.take();
        let input = input.map(<[u8]>::to_vec);
        let run = move || -> io::Result<Output> {
            let (stdout, stderr) = exchange(stdin, input, stdout, stderr)?;
            Ok(Output {
                status: self.wait()?,
                stdout,
                stderr,
            })
        };
        match timeout {
            None => run(),
            // One deadline for the exchange and the wait.
            Some(t) => crate::with_timeout(t, run).map_err(|e| {
                io::Error::new(io::ErrorKind::TimedOut, format!("communicate: {e}"))
            })?,
        }
    }

    /// [`communicate`](Child::communicate) with no input and no timeout,
    /// consuming the child (std's `wait_with_output`).
    ///
    /// # Errors
    ///
    /// As [`communicate`](Child::communicate).
    ///
    /// # Switches
    ///
    /// Until the child has closed its output and exited.
    ///
    /// # Panics
    ///
    /// Outside a hub scope, or inside a hub callback.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use std::process::Stdio;
    /// greenlet::run(|| {
    ///     let child = greenlet::process::Command::new("echo")
    ///         .arg("x")
    ///         .stdout(Stdio::piped())
    ///         .spawn()
    ///         .unwrap();
    ///     assert_eq!(child.wait_with_output().unwrap().stdout, b"x\n");
    /// });
    /// ```
    #[track_caller]
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        self.communicate(None, None)
    }
}

/// Kills its helper greenlets if the exchange ends early (an error, a kill
/// or a timeout of the caller), so none outlives it holding a pipe.
struct Helpers(Vec<Greenlet<io::Result<Vec<u8>>>>);

impl Drop for Helpers {
    fn drop(&mut self) {
        for g in &self.0 {
            g.kill_nowait();
        }
    }
}

fn spawn_helper(
    f: impl FnOnce() -> io::Result<Vec<u8>> + 'static,
) -> io::Result<Greenlet<io::Result<Vec<u8>>>> {
    crate::Builder::new()
        .name("communicate")
        .spawn(f)
        .map_err(io::Error::other)
}

/// The body of `communicate`: returns (stdout, stderr).
fn exchange(
    stdin: Option<ChildStdin>,
    input: Option<Vec<u8>>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
) -> io::Result<(Vec<u8>, Vec<u8>)> {
    let mut helpers = Helpers(Vec::new());
    let writer = match (stdin, input) {
        (Some(mut stdin), Some(input)) if !input.is_empty() => {
            helpers.0.push(spawn_helper(move || {
                match stdin.write_all(&input) {
                    // The child exited (or closed stdin) without reading it all.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {}
                    other => other?,
                }
                Ok(Vec::new())
            })?);
            true
        }
        // No input: close stdin now, so the child sees EOF.
        _ => false,
    };
    let err_reader = match stderr {
        Some(mut stderr) => {
            helpers.0.push(spawn_helper(move || {
                let mut buf = Vec::new();
                stderr.read_to_end(&mut buf)?;
                Ok(buf)
            })?);
            true
        }
        None => false,
    };
    let mut out = Vec::new();
    if let Some(mut stdout) = stdout {
        stdout.read_to_end(&mut out)?;
    }
    let mut err = Vec::new();
    for (i, g) in helpers.0.iter().enumerate() {
        let data = g.take().map_err(io::Error::from)??;
        if err_reader && i == usize::from(writer) {
            err = data;
        }
    }
    Ok((out, err))
}
