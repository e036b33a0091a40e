//! Error types: how a greenlet ended, and why an operation failed.

use std::any::Any;
use std::error::Error;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How a greenlet ended when it did not return a value, or why waiting for
/// its result failed.
///
/// `Killed`, `Panicked`, `Timeout` and `Spawn` are *outcomes* (what
/// [`Greenlet::exception`] reports). The others say why *waiting* for the
/// result failed ([`WaitError`] converts into them): `LoopExit` (nothing
/// could ever finish the wait), `JoinSelf` (a greenlet waited for itself),
/// `Timeout` again when the wait of [`Greenlet::get_timeout`](crate::Greenlet::get_timeout) elapsed (as in
/// gevent, where `get(timeout=…)` raises `Timeout`), and `ValueTaken` (the
/// value was moved out by [`Greenlet::take`](crate::Greenlet::take)).
///
/// A greenlet killed with plain [`KillError::GreenletExit`] counts as
/// *successful* ([`Greenlet::is_successful`]), exactly like gevent, but since
/// it has no value of type `T`, [`Greenlet::get`] returns
/// `Err(GreenletError::Killed(KillError::GreenletExit))` for it.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{spawn, GreenletError};
///
/// let g = spawn(|| -> u32 { panic!("boom") });
/// match g.get() {
///     Err(GreenletError::Panicked(p)) => assert_eq!(p.message(), "boom"),
///     other => panic!("unexpected {other:?}"),
/// }
/// # });
/// ```
///
/// [`Greenlet::exception`]: crate::Greenlet::exception
/// [`Greenlet::is_successful`]: crate::Greenlet::is_successful
/// [`Greenlet::get`]: crate::Greenlet::get
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum GreenletError {
    /// Killed by [`Greenlet::kill`](crate::Greenlet::kill) or
    /// [`kill_with`](crate::Greenlet::kill_with) (possibly before it started).
    Killed(KillError),
    /// The body panicked; the panic was caught at the greenlet's root.
    Panicked(PanicError),
    /// A [`Timeout`](crate::Timeout) started in the body expired and nothing
    /// in the body caught it.
    Timeout(Elapsed),
    /// Waiting for the result would block forever (see [`LoopExit`]).
    LoopExit(LoopExit),
    /// No stack could be mapped when the greenlet was first switched to
    /// (the process ran out of memory mappings); its body never ran.
    Spawn(SpawnError),
    /// A greenlet waited for its own result.
    JoinSelf,
    /// The value was already moved out by [`Greenlet::take`](crate::Greenlet::take)
    /// or [`Greenlet::into_result`](crate::Greenlet::into_result).
    ValueTaken,
}

impl From<WaitError> for GreenletError {
    fn from(e: WaitError) -> Self {
        match e {
            WaitError::LoopExit(e) => GreenletError::LoopExit(e),
            WaitError::JoinSelf => GreenletError::JoinSelf,
            WaitError::Elapsed(e) => GreenletError::Timeout(e),
        }
    }
}

/// A greenlet's failure as an `io::Error` (kind `Other`, or `TimedOut` for
/// timeouts), so bodies returning `io::Result` flatten with `?`
/// ([`Greenlet::take_flat`](crate::Greenlet::take_flat)).
impl From<GreenletError> for std::io::Error {
    fn from(e: GreenletError) -> Self {
        let kind = match e {
            GreenletError::Timeout(_) => std::io::ErrorKind::TimedOut,
            _ => std::io::ErrorKind::Other,
        };
        std::io::Error::new(kind, e)
    }
}

/// Why a blocking call ([`Greenlet::join`](crate::Greenlet::join),
/// [`kill`](crate::Greenlet::kill), [`wait`](crate::wait),
/// [`joinall`](crate::joinall), [`killall`](crate::killall), …) returned
/// without what it waited for. The same condition gives the same variant from
/// every call; [`GreenletError`] has the same three (`From` converts).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{spawn, sleep, WaitError};
/// use std::time::Duration;
///
/// let g = spawn(|| sleep(Duration::from_secs(60)));
/// assert!(matches!(g.join_timeout(Duration::from_millis(5)), Err(WaitError::Elapsed(_))));
/// let me = spawn(|| greenlet::getcurrent());
/// me.join().unwrap();
/// g.kill().unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum WaitError {
    /// Nothing can ever finish the wait: the native stack would block
    /// forever.
    LoopExit(LoopExit),
    /// A greenlet waited for itself.
    JoinSelf,
    /// The timeout of a `*_timeout` call passed first.
    Elapsed(Elapsed),
}

impl fmt::Display for WaitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WaitError::LoopExit(e) => write!(f, "{e}"),
            WaitError::JoinSelf => f.write_str("a greenlet cannot wait for itself"),
            WaitError::Elapsed(e) => write!(f, "{e}"),
        }
    }
}

/// Transparent: `source()` is the wrapped error's source.
impl Error for WaitError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            WaitError::LoopExit(e) => e.source(),
            WaitError::JoinSelf => None,
            WaitError::Elapsed(e) => e.source(),
        }
    }
}

/// [`Timeout::start`](crate::Timeout::start) on a timeout that is already
/// pending (gevent raises too: cancel it first).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// let t = greenlet::Timeout::start_new(std::time::Duration::from_secs(5));
/// assert!(t.start().is_err());
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlreadyPending;

impl fmt::Display for AlreadyPending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the timeout is already pending; cancel it before starting it again")
    }
}

impl Error for AlreadyPending {}

impl GreenletError {
    /// `true` for an outcome gevent counts as success: killed with plain
    /// [`KillError::GreenletExit`].
    pub fn is_greenlet_exit(&self) -> bool {
        matches!(self, GreenletError::Killed(KillError::GreenletExit))
    }

    /// The panic, if the body panicked.
    pub fn as_panic(&self) -> Option<&PanicError> {
        match self {
            GreenletError::Panicked(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Display for GreenletError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GreenletError::Killed(k) => write!(f, "killed: {k}"),
            GreenletError::Panicked(p) => match p.location() {
                Some(at) => write!(f, "panicked at {at}: {}", p.message()),
                None => write!(f, "panicked: {}", p.message()),
            },
            GreenletError::Timeout(e) => write!(f, "{e}"),
            GreenletError::LoopExit(e) => write!(f, "{e}"),
            GreenletError::Spawn(e) => write!(f, "{e}"),
            GreenletError::JoinSelf => f.write_str("a greenlet cannot wait for itself"),
            GreenletError::ValueTaken => f.write_str("the value was already moved out"),
        }
    }
}

/// `Display` already shows the wrapped error's text, so `source()` skips
/// it and returns *its* source: an error chain prints each cause once.
impl Error for GreenletError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            GreenletError::Killed(k) => k.source(),
            GreenletError::Timeout(e) => e.source(),
            GreenletError::LoopExit(e) => e.source(),
            GreenletError::Spawn(e) => e.source(),
            GreenletError::Panicked(_) | GreenletError::JoinSelf | GreenletError::ValueTaken => {
                None
            }
        }
    }
}

/// What a greenlet was killed with: gevent's `GreenletExit` or a user error.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{spawn, sleep, GreenletError, KillError};
/// use std::time::Duration;
///
/// let g = spawn(|| sleep(Duration::from_secs(10)));
/// g.kill().unwrap();
/// assert!(matches!(g.get(), Err(GreenletError::Killed(KillError::GreenletExit))));
/// assert!(g.is_successful()); // GreenletExit counts as success, like gevent
/// # });
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum KillError {
    /// The default kill: ends the greenlet silently and successfully.
    GreenletExit,
    /// A user-supplied error: the greenlet ends unsuccessfully and the error
    /// is reported through the hub's error handler.
    Error(Arc<dyn Error + Send + Sync>),
}

impl KillError {
    /// Wraps a user error.
    pub fn new<E: Error + Send + Sync + 'static>(error: E) -> Self {
        KillError::Error(Arc::new(error))
    }
}

impl fmt::Display for KillError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KillError::GreenletExit => f.write_str("GreenletExit"),
            KillError::Error(e) => write!(f, "{e}"),
        }
    }
}

/// Transparent: `Display` shows the user's error, `source()` its source.
impl Error for KillError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            KillError::GreenletExit => None,
            KillError::Error(e) => e.source(),
        }
    }
}

/// A panic caught at a greenlet's root.
///
/// Cloning shares the payload; [`PanicError::into_panic`] hands it out once
/// (later calls get the message as a `String` payload).
#[derive(Clone)]
pub struct PanicError(Arc<PanicData>);

struct PanicData {
    message: String,
    location: Option<String>,
    backtrace: Option<std::backtrace::Backtrace>,
    payload: Mutex<Option<Box<dyn Any + Send>>>,
}

impl PanicError {
    pub(crate) fn new(payload: Box<dyn Any + Send>) -> Self {
        let message = super::switch::panic_message(payload.as_ref());
        // What the panic hook saw, if it was this panic.
        let caught = super::switch::take_caught_panic().filter(|c| c.message == message);
        let (location, backtrace) = caught.map_or((None, None), |c| (c.location, c.backtrace));
        PanicError(Arc::new(PanicData {
            message,
            location,
            backtrace,
            payload: Mutex::new(Some(payload)),
        }))
    }

    /// The backtrace of the panic, captured when `RUST_BACKTRACE` (or
    /// `RUST_LIB_BACKTRACE`) asked for one.
    pub fn backtrace(&self) -> Option<&std::backtrace::Backtrace> {
        self.0.backtrace.as_ref()
    }

    /// The panic message (`"Box<dyn Any>"` for non-string payloads).
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Where it panicked (`file:line:column`), when the panic hook saw it.
    pub fn location(&self) -> Option<&str> {
        self.0.location.as_deref()
    }

    /// The original panic payload, e.g. to continue unwinding with
    /// `std::panic::resume_unwind(err.into_panic())`.
    pub fn into_panic(self) -> Box<dyn Any + Send> {
        let taken = self
            .0
            .payload
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        taken.unwrap_or_else(|| Box::new(self.0.message.clone()))
    }
}

impl fmt::Debug for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PanicError")
            .field("message", &self.0.message)
            .field("location", &self.0.location)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PanicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.message)
    }
}

impl Error for PanicError {}

/// A timeout expired: returned by [`with_timeout`](crate::with_timeout) and the
/// `*_timeout` forms, and the outcome of a greenlet ended by an uncaught
/// [`Timeout`](crate::Timeout).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{with_timeout, sleep};
/// use std::time::Duration;
///
/// let err = with_timeout(Duration::from_millis(5), || sleep(Duration::from_secs(5))).unwrap_err();
/// assert_eq!(err.duration(), Some(Duration::from_millis(5)));
/// # });
/// ```
#[derive(Clone)]
pub struct Elapsed {
    duration: Option<Duration>,
    error: Option<Arc<dyn Error + Send + Sync>>,
}

impl Elapsed {
    pub(crate) fn new(
        duration: Option<Duration>,
        error: Option<Arc<dyn Error + Send + Sync>>,
    ) -> Self {
        Elapsed { duration, error }
    }

    /// The timeout's duration (`None` when it had no deadline, as for
    /// `try_get` on an unfinished greenlet).
    pub fn duration(&self) -> Option<Duration> {
        self.duration
    }

    /// The error given to [`Timeout::with_error`](crate::Timeout::with_error),
    /// if any.
    pub fn error(&self) -> Option<&(dyn Error + Send + Sync + 'static)> {
        self.error.as_deref()
    }
}

impl fmt::Debug for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Elapsed")
            .field("duration", &self.duration)
            .field("error", &self.error.as_ref().map(|e| e.to_string()))
            .finish()
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The error given with `Timeout::with_error` is the `source()`, not
        // repeated here: an error chain prints each cause once.
        match self.duration {
            Some(d) => write!(f, "timed out after {d:?}"),
            None => f.write_str("not ready"),
        }
    }
}

impl Error for Elapsed {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.error.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// The native stack waited on something that nothing can ever complete.
///
/// gevent raises `LoopExit` when the main greenlet switches to the hub and the
/// loop has nothing left to run: no ready greenlet, no referenced timer, file
/// descriptor or callback, no live [`HubHandle`](crate::hub::HubHandle).
/// Waiting would hang forever, so the call returns this instead. The message
/// lists what each live greenlet is blocked in.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{spawn, sleep, GreenletError};
/// use std::time::Duration;
///
/// // `Duration::MAX` means "no deadline": nothing can ever end this sleep.
/// let g = spawn(|| -> u8 { sleep(Duration::MAX); 1 });
/// assert!(matches!(g.get(), Err(GreenletError::LoopExit(_))));
/// g.kill().unwrap();
/// # });
/// ```
#[derive(Debug, Clone)]
pub struct LoopExit(Box<LoopExitData>);

#[derive(Debug, Clone)]
struct LoopExitData {
    operation: &'static str,
    blocked: Vec<String>,
}

impl LoopExit {
    pub(crate) fn new(operation: &'static str, blocked: Vec<String>) -> LoopExit {
        LoopExit(Box::new(LoopExitData { operation, blocked }))
    }

    /// The blocking call that gave up, e.g. `"Greenlet::get"`.
    pub fn operation(&self) -> &str {
        self.0.operation
    }

    /// One line per live greenlet: its name and what it is blocked in.
    pub fn blocked(&self) -> &[String] {
        &self.0.blocked
    }
}

impl fmt::Display for LoopExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: this operation would block forever (LoopExit): the hub has nothing that could wake it",
            self.0.operation
        )?;
        if self.0.blocked.is_empty() {
            f.write_str("; no other greenlet is alive")
        } else {
            write!(f, "; blocked greenlets: {}", self.0.blocked.join(", "))
        }
    }
}

impl Error for LoopExit {}

/// Spawning failed: outside a hub scope, no stack could be allocated, or
/// the body does not fit its stack.
///
/// On Linux ≥ 6.13 greenlet stacks cost no kernel memory mapping each
/// (guard markers, see [`hub::uses_guard_markers`](crate::hub::uses_guard_markers)):
/// a stack can then only fail when the kernel refuses memory. On older
/// kernels each stack costs two mappings (the stack and its guard page), and
/// the process budget keeps 4096 mappings for everything else: with Linux's
/// default `vm.max_map_count` of 65530 about 30,700 greenlets can be started
/// and unfinished at once
/// ([`hub::max_live_stacks`](crate::hub::max_live_stacks)). Existing
/// greenlets are unaffected. [`SpawnError::kind`] tells the causes apart.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::{Builder, SpawnErrorKind};
///
/// // Outside a hub scope there is nothing to run a greenlet on.
/// let e = Builder::new().spawn(|| 1).unwrap_err();
/// assert_eq!(e.kind(), SpawnErrorKind::NoScope);
///
/// greenlet::run(|| match Builder::new().name("worker").spawn(|| 1 + 1) {
///     Ok(g) => assert_eq!(g.get().unwrap(), 2),
///     Err(e) => eprintln!("{e}"), // names the limit and the sysctl
/// });
/// ```
#[derive(Debug, Clone)]
pub struct SpawnError(Box<SpawnErrorData>);

/// Why spawning failed: see [`SpawnError::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnErrorKind {
    /// Not inside a hub scope ([`run`](crate::run), `#[greenlet::main]`).
    NoScope,
    /// The process-wide stack budget is used up, or mapping a stack failed.
    StackLimit,
    /// The body closure is larger than the stack it would run on.
    BodyTooLarge,
}

#[derive(Debug, Clone)]
struct SpawnErrorData {
    kind: SpawnErrorKind,
    live_stacks: usize,
    stack_size: usize,
    limit: usize,
    cause: String,
}

impl SpawnError {
    pub(crate) fn new(
        live_stacks: usize,
        stack_size: usize,
        limit: usize,
        cause: String,
    ) -> SpawnError {
        SpawnError(Box::new(SpawnErrorData {
            kind: SpawnErrorKind::StackLimit,
            live_stacks,
            stack_size,
            limit,
            cause,
        }))
    }

    /// No hub scope on this thread.
    pub(crate) fn no_scope() -> SpawnError {
        SpawnError(Box::new(SpawnErrorData {
            kind: SpawnErrorKind::NoScope,
            live_stacks: 0,
            stack_size: 0,
            limit: 0,
            cause: String::new(),
        }))
    }

    /// The hub scope is ending and keeps getting new greenlets.
    pub(crate) fn scope_ending() -> SpawnError {
        SpawnError(Box::new(SpawnErrorData {
            kind: SpawnErrorKind::NoScope,
            live_stacks: 0,
            stack_size: 0,
            limit: 1,
            cause: String::new(),
        }))
    }

    /// The body closure (`body_size` bytes) cannot fit a `stack_size` stack.
    pub(crate) fn body_too_large(body_size: usize, stack_size: usize) -> SpawnError {
        SpawnError(Box::new(SpawnErrorData {
            kind: SpawnErrorKind::BodyTooLarge,
            live_stacks: body_size,
            stack_size,
            limit: 0,
            cause: String::new(),
        }))
    }

    /// Why spawning failed.
    pub fn kind(&self) -> SpawnErrorKind {
        self.0.kind
    }

    /// Greenlets alive on this thread's hub when spawning failed.
    pub fn live_stacks(&self) -> usize {
        self.0.live_stacks
    }

    /// The process-wide stack budget ([`hub::max_live_stacks`](crate::hub::max_live_stacks)).
    pub fn limit(&self) -> usize {
        self.0.limit
    }
}

impl fmt::Display for SpawnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.kind {
            SpawnErrorKind::NoScope if self.0.limit == 1 => f.write_str(
                "the hub scope is ending and greenlets keep spawning new ones \
                 (a link or destructor that respawns): spawning is refused",
            ),
            SpawnErrorKind::NoScope => f.write_str(
                "no hub scope on this thread: greenlets live inside `greenlet::run(|| ...)` \
                 (or a `#[greenlet::main]` / `#[greenlet::test]` function)",
            ),
            SpawnErrorKind::BodyTooLarge => write!(
                f,
                "the greenlet's closure takes {} bytes and cannot fit its {} KiB stack: \
                 box the large captures or raise `Builder::stack_size`",
                self.0.live_stacks,
                self.0.stack_size / 1024
            ),
            SpawnErrorKind::StackLimit if self.0.limit >= usize::MAX / 4 => write!(
                f,
                "cannot allocate a {} KiB greenlet stack with {} greenlets alive on this thread: {}",
                self.0.stack_size / 1024,
                self.0.live_stacks,
                self.0.cause,
            ),
            SpawnErrorKind::StackLimit => write!(
                f,
                "cannot allocate a {} KiB greenlet stack with {} greenlets alive on this thread: {}; \
                 without stack guard markers (Linux < 6.13) each stack needs 2 memory mappings \
                 and the process may hold at most {} stacks (vm.max_map_count minus the \
                 process's mappings and 4096 of headroom, halved): raise it with \
                 `sysctl vm.max_map_count=N`, run Linux >= 6.13, or keep fewer greenlets alive",
                self.0.stack_size / 1024,
                self.0.live_stacks,
                self.0.cause,
                self.0.limit
            ),
        }
    }
}

impl Error for SpawnError {}

/// A duration given as seconds was not a number.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::duration_from_secs_f64;
/// use std::time::Duration;
///
/// assert!(duration_from_secs_f64(f64::NAN).is_err());
/// assert_eq!(duration_from_secs_f64(-1.0).unwrap(), Some(Duration::ZERO));
/// assert_eq!(duration_from_secs_f64(f64::INFINITY).unwrap(), None);
/// # });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidDuration;

impl fmt::Display for InvalidDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("duration in seconds is NaN")
    }
}

impl Error for InvalidDuration {}

/// Converts seconds to a timeout the gevent way: NaN is an error, negative
/// means zero ("now"), +∞ or anything beyond `Duration::MAX` means no
/// deadline (`None`).
///
/// # Errors
///
/// [`InvalidDuration`] for NaN.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::duration_from_secs_f64;
/// use std::time::Duration;
///
/// assert_eq!(duration_from_secs_f64(0.25).unwrap(), Some(Duration::from_millis(250)));
/// # });
/// ```
pub fn duration_from_secs_f64(seconds: f64) -> Result<Option<Duration>, InvalidDuration> {
    if seconds.is_nan() {
        return Err(InvalidDuration);
    }
    if seconds <= 0.0 {
        return Ok(Some(Duration::ZERO));
    }
    Ok(Duration::try_from_secs_f64(seconds).ok())
}
