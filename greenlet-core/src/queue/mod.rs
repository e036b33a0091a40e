//! Queues between greenlets (gevent's `gevent.queue`), and a channel
//! between OS threads and greenlets.
//!
//! * [`Queue`]: FIFO, optionally bounded (`maxsize`), with blocking and
//!   non-blocking `put`/`get`, `peek`, [`shutdown`](Queue::shutdown) (Python
//!   3.13's semantics) and the task counter of gevent's `JoinableQueue`
//!   ([`task_done`](Queue::task_done), [`join`](Queue::join)).
//!   [`LifoQueue`] and [`PriorityQueue`] are the same type with another
//!   [`Order`]; [`JoinableQueue`] is another name for it.
//! * [`Channel`]: a rendezvous (capacity 0): `put` blocks until a getter
//!   takes the item.
//! * [`thread_channel`]: a `Send` channel whose ends work from plain OS
//!   threads and from greenlets alike.
//!
//! Every blocking operation is built on [`WaitQueue`]
//! hand-off: a `put` with getters waiting hands the item to the first getter;
//! a getter killed after the hand-off gives the item to the next getter or
//! back to the front of the queue; a putter blocked on a full queue is handed
//! a reserved slot, so nobody barges in front of it. A greenlet killed or
//! timed out while blocked therefore never takes an item, a slot or a
//! wake-up meant for another, and a `put` that fails leaves the queue as it
//! was.
//!
//! The greenlet-side types are `!Send` and cheap to clone (a clone is
//! another handle to the same queue), like gevent's objects.
//!
//! # Examples
//!
//! ```
//! # use greenlet_core as greenlet;
//! # greenlet::run(|| {
//! use greenlet::queue::Queue;
//!
//! let q = Queue::new();
//! let worker = {
//!     let q = q.clone();
//!     greenlet::spawn(move || q.iter().sum::<u32>())
//! };
//! for i in 1..=4 {
//!     q.put(i).unwrap();
//! }
//! q.shutdown(); // the worker's iteration ends once the queue is drained
//! assert_eq!(worker.get().unwrap(), 10);
//! # });
//! ```

mod channel;
mod thread;

use std::cell::{Cell, RefCell};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::fmt;
use std::marker::PhantomData;
use std::rc::Rc;
use std::time::{Duration, Instant};

use crate::greenlet::error::WaitError;
use crate::hub;
use crate::waiter::{LinkId, Links, WaitQueue, Waitable};

pub use channel::Channel;
pub use thread::{
    RecvError, RecvTimeoutError, SendError, ThreadIter, ThreadReceiver, ThreadSender, TryRecvError,
    thread_channel,
};

// ================================================================= errors

/// Why a blocking [`Queue::put`] or [`Channel::put`] failed; the item comes
/// back in every case.
#[derive(Clone)]
pub enum PutError<T> {
    /// The queue was [shut down](Queue::shutdown) (before the call, or
    /// while it waited for room).
    ShutDown(T),
    /// The wait ended: the timeout passed ([`WaitError::Elapsed`]) or, on
    /// the native stack, nothing could ever make room
    /// ([`WaitError::LoopExit`]).
    Wait(T, WaitError),
}

impl<T> PutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            PutError::ShutDown(t) | PutError::Wait(t, _) => t,
        }
    }
}

impl<T> fmt::Debug for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::ShutDown(_) => f.write_str("ShutDown(..)"),
            PutError::Wait(_, e) => f.debug_tuple("Wait").field(&"..").field(e).finish(),
        }
    }
}

impl<T> fmt::Display for PutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutError::ShutDown(_) => f.write_str("put on a shut-down queue"),
            PutError::Wait(_, e) => write!(f, "put: {e}"),
        }
    }
}

impl<T> std::error::Error for PutError<T> {}

/// Why a blocking `get` or `peek` failed.
#[derive(Debug, Clone)]
pub enum GetError {
    /// The queue was [shut down](Queue::shutdown) and is empty.
    ShutDown,
    /// The wait ended: the timeout passed ([`WaitError::Elapsed`]) or, on
    /// the native stack, nothing could ever put an item
    /// ([`WaitError::LoopExit`]).
    Wait(WaitError),
}

impl GetError {
    /// `true` for [`GetError::Wait`] with [`WaitError::Elapsed`].
    pub fn is_elapsed(&self) -> bool {
        matches!(self, GetError::Wait(WaitError::Elapsed(_)))
    }
}

impl fmt::Display for GetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GetError::ShutDown => f.write_str("get on a shut-down, empty queue"),
            GetError::Wait(e) => write!(f, "get: {e}"),
        }
    }
}

impl std::error::Error for GetError {}

/// Why [`Queue::put_nowait`] / [`Channel::put_nowait`] failed; the item
/// comes back.
#[derive(Clone, PartialEq, Eq)]
pub enum TryPutError<T> {
    /// No room (for a [`Channel`]: no getter waiting).
    Full(T),
    /// The queue was shut down.
    ShutDown(T),
}

impl<T> TryPutError<T> {
    /// The item that was not put.
    pub fn into_inner(self) -> T {
        match self {
            TryPutError::Full(t) | TryPutError::ShutDown(t) => t,
        }
    }
}

impl<T> fmt::Debug for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("Full(..)"),
            TryPutError::ShutDown(_) => f.write_str("ShutDown(..)"),
        }
    }
}

impl<T> fmt::Display for TryPutError<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryPutError::Full(_) => f.write_str("the queue is full"),
            TryPutError::ShutDown(_) => f.write_str("the queue is shut down"),
        }
    }
}

impl<T> std::error::Error for TryPutError<T> {}

/// Why [`Queue::get_nowait`] / [`Channel::get_nowait`] failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TryGetError {
    /// No item (for a [`Channel`]: no putter waiting).
    Empty,
    /// The queue was shut down and is empty.
    ShutDown,
}

impl fmt::Display for TryGetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TryGetError::Empty => f.write_str("the queue is empty"),
            TryGetError::ShutDown => f.write_str("the queue is shut down and empty"),
        }
    }
}

impl std::error::Error for TryGetError {}

/// [`Queue::task_done`] was called more times than items were put
/// (Python's `ValueError: task_done() called too many times`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskDoneError;

impl fmt::Display for TaskDoneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("task_done() called too many times")
    }
}

impl std::error::Error for TaskDoneError {}

// ================================================================= orders

/// The order in which a [`Queue`] hands out its items: [`Fifo`], [`Lifo`],
/// [`Priority`], or your own.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::queue::{LifoQueue, PriorityQueue};
/// let lifo = LifoQueue::new();
/// let prio = PriorityQueue::new();
/// for i in [2, 3, 1] {
///     lifo.put_nowait(i).unwrap();
///     prio.put_nowait(i).unwrap();
/// }
/// assert_eq!(lifo.get_nowait(), Ok(1));
/// assert_eq!(prio.get_nowait(), Ok(1));
/// assert_eq!(prio.get_nowait(), Ok(2));
/// # });
/// ```
pub trait Order<T> {
    /// Where the items sit.
    type Store: Default;
    /// Stores a new item.
    fn push(store: &mut Self::Store, item: T);
    /// Stores an item given back by a getter that could not take it (it
    /// should come out next).
    fn push_front(store: &mut Self::Store, item: T);
    /// Takes the next item.
    fn pop(store: &mut Self::Store) -> Option<T>;
    /// The next item, left in place.
    fn peek(store: &Self::Store) -> Option<&T>;
    /// Items stored.
    fn len(store: &Self::Store) -> usize;
}

/// First in, first out (gevent's `Queue`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fifo;

/// Last in, first out (gevent's `LifoQueue`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lifo;

/// Lowest item first (gevent's `PriorityQueue`, Python's `heapq`); equal
/// items come out in no specified order.
#[derive(Debug, Clone, Copy, Default)]
pub struct Priority;

impl<T> Order<T> for Fifo {
    type Store = VecDeque<T>;
    fn push(store: &mut VecDeque<T>, item: T) {
        store.push_back(item);
    }
    fn push_front(store: &mut VecDeque<T>, item: T) {
        store.push_front(item);
    }
    fn pop(store: &mut VecDeque<T>) -> Option<T> {
        store.pop_front()
    }
    fn peek(store: &VecDeque<T>) -> Option<&T> {
        store.front()
    }
    fn len(store: &VecDeque<T>) -> usize {
        store.len()
    }
}

impl<T> Order<T> for Lifo {
    type Store = Vec<T>;
    fn push(store: &mut Vec<T>, item: T) {
        store.push(item);
    }
    fn push_front(store: &mut Vec<T>, item: T) {
        store.push(item);
    }
    fn pop(store: &mut Vec<T>) -> Option<T> {
        store.pop()
    }
    fn peek(store: &Vec<T>) -> Option<&T> {
        store.last()
    }
    fn len(store: &Vec<T>) -> usize {
        store.len()
    }
}

impl<T: Ord> Order<T> for Priority {
    type Store = BinaryHeap<Reverse<T>>;
    fn push(store: &mut Self::Store, item: T) {
        store.push(Reverse(item));
    }
    fn push_front(store: &mut Self::Store, item: T) {
        store.push(Reverse(item));
    }
    fn pop(store: &mut Self::Store) -> Option<T> {
        store.pop().map(|r| r.0)
    }
    fn peek(store: &Self::Store) -> Option<&T> {
        store.peek().map(|r| &r.0)
    }
    fn len(store: &Self::Store) -> usize {
        store.len()
    }
}

// ================================================================== Queue

/// What a blocked getter is handed.
enum Got<T> {
    Item(T),
    ShutDown,
}

/// What a putter blocked on a full queue is handed.
#[derive(Clone, Copy)]
enum Space {
    /// A reserved slot.
    Granted,
    ShutDown,
}

struct Inner<T, O: Order<T>> {
    items: RefCell<O::Store>,
    maxsize: Option<usize>,
    /// Slots handed to woken putters that have not put yet.
    reserved: Cell<usize>,
    getters: WaitQueue<Got<T>>,
    putters: WaitQueue<Space>,
    peekers: WaitQueue<()>,
    joiners: WaitQueue<()>,
    unfinished: Cell<usize>,
    shutdown: Cell<bool>,
    links: Links,
}

/// A queue of items between greenlets (gevent's `gevent.queue.Queue`),
/// unbounded or bounded, in FIFO order by default.
///
/// `O` picks the order: [`Fifo`], [`Lifo`] ([`LifoQueue`]) or [`Priority`]
/// ([`PriorityQueue`]). Every queue also counts unfinished tasks, as
/// Python's `queue.Queue` and gevent's `JoinableQueue` do:
/// [`task_done`](Queue::task_done) and [`join`](Queue::join).
///
/// A `Queue` is a handle: clones share the queue. It implements
/// [`Waitable`]: it is ready when a `get` would not block (an item is
/// stored, or the queue is shut down), so [`wait`](crate::wait) and
/// [`iwait`](crate::iwait) mix queues with greenlets.
///
/// Guarantees (all under kill and timeout): items come out exactly once, in
/// the queue's order; blocked getters are served first come, first served,
/// and so are blocked putters; a getter or putter that leaves (killed,
/// timed out) takes nothing with it. A bounded queue may briefly hold more
/// than `maxsize` items when a killed getter gives its item back.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::queue::Queue;
/// use std::time::Duration;
///
/// let q = Queue::bounded(1);
/// q.put("a").unwrap();
/// assert!(q.full());
/// assert!(q.put_timeout("b", Duration::from_millis(5)).is_err());
/// assert_eq!(q.get().unwrap(), "a");
/// assert!(q.get_timeout(Duration::from_millis(5)).unwrap_err().is_elapsed());
/// # });
/// ```
pub struct Queue<T, O: Order<T> = Fifo> {
    inner: Rc<Inner<T, O>>,
    _not_send: PhantomData<*const ()>,
}

/// A last-in, first-out queue (gevent's `LifoQueue`): a [`Queue`] in [`Lifo`] order, with
/// every `Queue` method (through `Deref`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// let q = greenlet::queue::LifoQueue::new();
/// q.put_nowait(2).unwrap();
/// q.put_nowait(1).unwrap();
/// q.put_nowait(3).unwrap();
/// assert_eq!(q.get_nowait(), Ok(3));
/// ```
pub struct LifoQueue<T>(Queue<T, Lifo>);

impl<T> LifoQueue<T> {
    /// An unbounded queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert!(greenlet::queue::LifoQueue::<u8>::new().is_empty());
    /// ```
    pub fn new() -> Self {
        LifoQueue(Queue::with_order(None))
    }

    /// A queue holding at most `maxsize` items (`0`: unbounded).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::LifoQueue::bounded(1);
    /// q.put_nowait(1).unwrap();
    /// assert!(q.full());
    /// ```
    pub fn bounded(maxsize: usize) -> Self {
        LifoQueue(Queue::with_order(Some(maxsize)))
    }

    /// gevent's `LifoQueue(maxsize)`: `None` (or `Some(0)`) is unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::LifoQueue::<u8>::with_maxsize(Some(2));
    /// assert_eq!(q.maxsize(), Some(2));
    /// ```
    pub fn with_maxsize(maxsize: Option<usize>) -> Self {
        LifoQueue(Queue::with_order(maxsize))
    }

    /// The underlying [`Queue`] handle.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q: greenlet::queue::Queue<u8, _> = greenlet::queue::LifoQueue::new().into_queue();
    /// assert!(q.is_empty());
    /// ```
    pub fn into_queue(self) -> Queue<T, Lifo> {
        self.0
    }
}

impl<T> Default for LifoQueue<T> {
    fn default() -> Self {
        LifoQueue::new()
    }
}

impl<T> Clone for LifoQueue<T> {
    fn clone(&self) -> Self {
        LifoQueue(self.0.clone())
    }
}

impl<T> fmt::Debug for LifoQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("LifoQueue").field(&self.0).finish()
    }
}

impl<T> std::ops::Deref for LifoQueue<T> {
    type Target = Queue<T, Lifo>;
    fn deref(&self) -> &Queue<T, Lifo> {
        &self.0
    }
}

impl<T> Waitable for LifoQueue<T> {
    fn is_ready(&self) -> bool {
        self.0.is_ready()
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        self.0.rawlink(callback)
    }

    fn unlink(&self, id: LinkId) -> bool {
        self.0.unlink(id)
    }
}

/// A queue that hands out its lowest item first (gevent's `PriorityQueue`): a [`Queue`] in [`Priority`] order, with
/// every `Queue` method (through `Deref`).
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// let q = greenlet::queue::PriorityQueue::new();
/// q.put_nowait(2).unwrap();
/// q.put_nowait(1).unwrap();
/// q.put_nowait(3).unwrap();
/// assert_eq!(q.get_nowait(), Ok(1));
/// ```
pub struct PriorityQueue<T: Ord>(Queue<T, Priority>);

impl<T: Ord> PriorityQueue<T> {
    /// An unbounded queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert!(greenlet::queue::PriorityQueue::<u8>::new().is_empty());
    /// ```
    pub fn new() -> Self {
        PriorityQueue(Queue::with_order(None))
    }

    /// A queue holding at most `maxsize` items (`0`: unbounded).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::PriorityQueue::bounded(1);
    /// q.put_nowait(1).unwrap();
    /// assert!(q.full());
    /// ```
    pub fn bounded(maxsize: usize) -> Self {
        PriorityQueue(Queue::with_order(Some(maxsize)))
    }

    /// gevent's `PriorityQueue(maxsize)`: `None` (or `Some(0)`) is unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::PriorityQueue::<u8>::with_maxsize(Some(2));
    /// assert_eq!(q.maxsize(), Some(2));
    /// ```
    pub fn with_maxsize(maxsize: Option<usize>) -> Self {
        PriorityQueue(Queue::with_order(maxsize))
    }

    /// The underlying [`Queue`] handle.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q: greenlet::queue::Queue<u8, _> = greenlet::queue::PriorityQueue::new().into_queue();
    /// assert!(q.is_empty());
    /// ```
    pub fn into_queue(self) -> Queue<T, Priority> {
        self.0
    }
}

impl<T: Ord> Default for PriorityQueue<T> {
    fn default() -> Self {
        PriorityQueue::new()
    }
}

impl<T: Ord> Clone for PriorityQueue<T> {
    fn clone(&self) -> Self {
        PriorityQueue(self.0.clone())
    }
}

impl<T: Ord> fmt::Debug for PriorityQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PriorityQueue").field(&self.0).finish()
    }
}

impl<T: Ord> std::ops::Deref for PriorityQueue<T> {
    type Target = Queue<T, Priority>;
    fn deref(&self) -> &Queue<T, Priority> {
        &self.0
    }
}

impl<T: Ord> Waitable for PriorityQueue<T> {
    fn is_ready(&self) -> bool {
        self.0.is_ready()
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        self.0.rawlink(callback)
    }

    fn unlink(&self, id: LinkId) -> bool {
        self.0.unlink(id)
    }
}

/// gevent's `JoinableQueue`: every [`Queue`] counts unfinished tasks, so
/// this is another name for it.
pub type JoinableQueue<T> = Queue<T, Fifo>;

impl<T, O: Order<T>> Clone for Queue<T, O> {
    fn clone(&self) -> Self {
        Queue {
            inner: Rc::clone(&self.inner),
            _not_send: PhantomData,
        }
    }
}

impl<T, O: Order<T>> fmt::Debug for Queue<T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue")
            .field("len", &self.len())
            .field("maxsize", &self.inner.maxsize)
            .field("getters", &self.inner.getters.len())
            .field("putters", &self.inner.putters.len())
            .field("unfinished_tasks", &self.inner.unfinished.get())
            .field("shutdown", &self.inner.shutdown.get())
            .finish()
    }
}

impl<T, O: Order<T>> Default for Queue<T, O> {
    fn default() -> Self {
        Queue::with_order(None)
    }
}

impl<T> Queue<T, Fifo> {
    /// An unbounded FIFO queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::Queue::<u8>::new();
    /// assert!(q.is_empty() && !q.full());
    /// ```
    pub fn new() -> Self {
        Queue::with_order(None)
    }

    /// A FIFO queue holding at most `maxsize` items; `put` blocks while it is
    /// full. `0` means unbounded, as in Python's `queue.Queue` (a queue of
    /// capacity 0 is a [`Channel`]).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::Queue::bounded(2);
    /// q.put_nowait(1).unwrap();
    /// q.put_nowait(2).unwrap();
    /// assert!(q.put_nowait(3).is_err());
    /// ```
    pub fn bounded(maxsize: usize) -> Self {
        Queue::with_order(Some(maxsize))
    }

    /// gevent's `Queue(maxsize)`: `None` (or `Some(0)`) is unbounded.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::Queue::<u8>::with_maxsize(Some(3));
    /// assert_eq!(q.maxsize(), Some(3));
    /// ```
    pub fn with_maxsize(maxsize: Option<usize>) -> Self {
        Queue::with_order(maxsize)
    }
}

impl<T, O: Order<T>> Queue<T, O> {
    /// A queue in a custom [`Order`], holding at most `maxsize` items
    /// (`None` or `Some(0)`: unbounded). The built-in orders have
    /// `new`/`bounded`/`with_maxsize` constructors.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::queue::{Lifo, Queue};
    /// let q = Queue::<u8, Lifo>::with_order(Some(2));
    /// assert_eq!(q.maxsize(), Some(2));
    /// ```
    pub fn with_order(maxsize: Option<usize>) -> Self {
        Queue {
            inner: Rc::new(Inner {
                items: RefCell::new(O::Store::default()),
                maxsize: maxsize.filter(|&m| m > 0),
                reserved: Cell::new(0),
                getters: WaitQueue::new(),
                putters: WaitQueue::new(),
                peekers: WaitQueue::new(),
                joiners: WaitQueue::new(),
                unfinished: Cell::new(0),
                shutdown: Cell::new(false),
                links: Links::new(),
            }),
            _not_send: PhantomData,
        }
    }

    /// The bound, if any.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert_eq!(greenlet::queue::Queue::<u8>::new().maxsize(), None);
    /// ```
    pub fn maxsize(&self) -> Option<usize> {
        self.inner.maxsize
    }

    /// Items in the queue (gevent's `qsize`); items handed straight to a
    /// waiting getter never count.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::Queue::new();
    /// q.put(1).unwrap();
    /// assert_eq!(q.qsize(), 1);
    /// # });
    /// ```
    pub fn qsize(&self) -> usize {
        O::len(&self.inner.items.borrow())
    }

    /// Same as [`qsize`](Queue::qsize).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert_eq!(greenlet::queue::Queue::<u8>::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.qsize()
    }

    /// `true` when no item is stored (gevent's `empty`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert!(greenlet::queue::Queue::<u8>::new().empty());
    /// ```
    pub fn empty(&self) -> bool {
        self.qsize() == 0
    }

    /// Same as [`empty`](Queue::empty).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert!(greenlet::queue::Queue::<u8>::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.empty()
    }

    /// `true` when a `put` would block: the stored items plus the slots
    /// reserved for woken putters reach `maxsize`. Never for an unbounded
    /// queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::Queue::bounded(1);
    /// q.put_nowait(()).unwrap();
    /// assert!(q.full());
    /// ```
    pub fn full(&self) -> bool {
        self.inner
            .maxsize
            .is_some_and(|m| self.qsize() + self.inner.reserved.get() >= m)
    }

    /// Greenlets blocked in `get` minus those blocked in `put` (gevent's
    /// `getters`/`putters` counts): how many gets are waiting for items.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::Queue::<u8>::new();
    /// let g = { let q = q.clone(); greenlet::spawn(move || q.get()) };
    /// greenlet::sleep(std::time::Duration::ZERO);
    /// assert_eq!(q.getters(), 1);
    /// q.put(1).unwrap();
    /// assert_eq!(g.get().unwrap().unwrap(), 1);
    /// # });
    /// ```
    pub fn getters(&self) -> usize {
        self.inner.getters.len()
    }

    /// Greenlets blocked in `put` on a full queue.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// assert_eq!(greenlet::queue::Queue::<u8>::bounded(1).putters(), 0);
    /// ```
    pub fn putters(&self) -> usize {
        self.inner.putters.len()
    }

    // ----------------------------------------------------------- put

    /// Puts `item`, waiting while the queue is full.
    ///
    /// If greenlets wait in `get`, the first one is handed the item
    /// directly. Counts one unfinished task.
    ///
    /// # Errors
    ///
    /// [`PutError::ShutDown`] if the queue is (or gets) shut down;
    /// [`PutError::Wait`] with [`WaitError::LoopExit`] on the native stack
    /// when nothing could ever make room. The item comes back, and the queue
    /// is unchanged.
    ///
    /// # Switches
    ///
    /// Only while the queue is full. A kill or [`Timeout`](crate::Timeout)
    /// there unwinds out of `put` with the queue unchanged.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::Queue::new();
    /// q.put("item").unwrap();
    /// assert_eq!(q.get_nowait(), Ok("item"));
    /// # });
    /// ```
    #[track_caller]
    pub fn put(&self, item: T) -> Result<(), PutError<T>> {
        self.put_until(item, None, None)
    }

    /// [`put`](Queue::put), waiting at most `timeout` for room.
    ///
    /// # Errors
    ///
    /// As [`put`](Queue::put), and [`PutError::Wait`] with
    /// [`WaitError::Elapsed`] when `timeout` passes first.
    ///
    /// # Switches
    ///
    /// As [`put`](Queue::put).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::queue::{PutError, Queue};
    /// let q = Queue::bounded(1);
    /// q.put(1).unwrap();
    /// let err = q.put_timeout(2, std::time::Duration::from_millis(5)).unwrap_err();
    /// assert!(matches!(err, PutError::Wait(2, _)));
    /// assert_eq!(q.len(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn put_timeout(&self, item: T, timeout: Duration) -> Result<(), PutError<T>> {
        self.put_until(item, hub::deadline_after(timeout), Some(timeout))
    }

    /// Puts `item` if there is room now (gevent's `put_nowait`).
    ///
    /// # Errors
    ///
    /// [`TryPutError::Full`] when full, [`TryPutError::ShutDown`] after
    /// [`shutdown`](Queue::shutdown); the item comes back.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::queue::{Queue, TryPutError};
    /// let q = Queue::bounded(1);
    /// q.put_nowait(1).unwrap();
    /// assert_eq!(q.put_nowait(2), Err(TryPutError::Full(2)));
    /// ```
    #[inline(always)]
    pub fn put_nowait(&self, item: T) -> Result<(), TryPutError<T>> {
        let inner = &*self.inner;
        if inner.shutdown.get() {
            return Err(TryPutError::ShutDown(item));
        }
        if self.full() {
            return Err(TryPutError::Full(item));
        }
        inner.unfinished.set(inner.unfinished.get() + 1);
        inner.deliver(item, false);
        Ok(())
    }

    #[inline(always)]
    #[track_caller]
    fn put_until(
        &self,
        item: T,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), PutError<T>> {
        let item = match self.put_nowait(item) {
            Ok(()) => return Ok(()),
            Err(TryPutError::ShutDown(item)) => return Err(PutError::ShutDown(item)),
            Err(TryPutError::Full(item)) => item,
        };
        let inner = &*self.inner;
        let space = inner
            .putters
            .wait_deadline(deadline, timeout, "Queue::put", |s| inner.return_space(s));
        match space {
            Ok(Space::Granted) => {
                inner.reserved.set(inner.reserved.get() - 1);
                if inner.shutdown.get() {
                    return Err(PutError::ShutDown(item));
                }
                inner.unfinished.set(inner.unfinished.get() + 1);
                inner.deliver(item, false);
                // Handed straight to a getter, the slot is still free.
                inner.release_space();
                Ok(())
            }
            Ok(Space::ShutDown) => Err(PutError::ShutDown(item)),
            Err(e) => Err(PutError::Wait(item, e)),
        }
    }

    // ----------------------------------------------------------- get

    /// Takes the next item, waiting until there is one.
    ///
    /// After [`shutdown`](Queue::shutdown), returns the remaining items,
    /// then fails.
    ///
    /// # Errors
    ///
    /// [`GetError::ShutDown`] when the queue is shut down and empty;
    /// [`GetError::Wait`] with [`WaitError::LoopExit`] on the native stack
    /// when nothing could ever put an item.
    ///
    /// # Switches
    ///
    /// Only while the queue is empty. A getter killed or timed out after an
    /// item was handed to it gives the item to the next getter, or back to
    /// the front of the queue.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::Queue::new();
    /// let p = { let q = q.clone(); greenlet::spawn(move || q.put(5).unwrap()) };
    /// assert_eq!(q.get().unwrap(), 5); // waits for p
    /// # p.join().unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn get(&self) -> Result<T, GetError> {
        self.get_until(None, None)
    }

    /// [`get`](Queue::get), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get), and [`GetError::Wait`] with
    /// [`WaitError::Elapsed`] when `timeout` passes first.
    ///
    /// # Switches
    ///
    /// As [`get`](Queue::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::Queue::<u8>::new();
    /// let err = q.get_timeout(std::time::Duration::from_millis(5)).unwrap_err();
    /// assert!(err.is_elapsed());
    /// # });
    /// ```
    #[track_caller]
    pub fn get_timeout(&self, timeout: Duration) -> Result<T, GetError> {
        self.get_until(hub::deadline_after(timeout), Some(timeout))
    }

    /// Takes the next item if there is one (gevent's `get_nowait`).
    ///
    /// # Errors
    ///
    /// [`TryGetError::Empty`], or [`TryGetError::ShutDown`] when shut down
    /// and empty.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// use greenlet::queue::{Queue, TryGetError};
    /// let q = Queue::<u8>::new();
    /// assert_eq!(q.get_nowait(), Err(TryGetError::Empty));
    /// ```
    pub fn get_nowait(&self) -> Result<T, TryGetError> {
        let inner = &*self.inner;
        let item = O::pop(&mut inner.items.borrow_mut());
        match item {
            Some(item) => {
                inner.release_space();
                Ok(item)
            }
            None if inner.shutdown.get() => Err(TryGetError::ShutDown),
            None => Err(TryGetError::Empty),
        }
    }

    #[inline]
    #[track_caller]
    fn get_until(
        &self,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<T, GetError> {
        match self.get_nowait() {
            Ok(item) => return Ok(item),
            Err(TryGetError::ShutDown) => return Err(GetError::ShutDown),
            Err(TryGetError::Empty) => {}
        }
        let inner = &*self.inner;
        let got = inner
            .getters
            .wait_deadline(deadline, timeout, "Queue::get", |got| {
                if let Got::Item(item) = got {
                    inner.deliver(item, true);
                }
            });
        match got {
            Ok(Got::Item(item)) => Ok(item),
            Ok(Got::ShutDown) => Err(GetError::ShutDown),
            Err(e) => Err(GetError::Wait(e)),
        }
    }

    // ---------------------------------------------------------- peek

    /// A copy of the next item, left in the queue; waits until an item is
    /// stored (an item handed straight to a waiting getter is never stored).
    ///
    /// # Errors
    ///
    /// As [`get`](Queue::get).
    ///
    /// # Switches
    ///
    /// Only while the queue is empty.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::Queue::new();
    /// q.put(String::from("x")).unwrap();
    /// assert_eq!(q.peek().unwrap(), "x");
    /// assert_eq!(q.len(), 1);
    /// # });
    /// ```
    #[track_caller]
    pub fn peek(&self) -> Result<T, GetError>
    where
        T: Clone,
    {
        self.peek_until(None, None)
    }

    /// [`peek`](Queue::peek), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`get_timeout`](Queue::get_timeout).
    ///
    /// # Switches
    ///
    /// As [`peek`](Queue::peek).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::Queue::<u8>::new();
    /// assert!(q.peek_timeout(std::time::Duration::from_millis(5)).unwrap_err().is_elapsed());
    /// # });
    /// ```
    #[track_caller]
    pub fn peek_timeout(&self, timeout: Duration) -> Result<T, GetError>
    where
        T: Clone,
    {
        self.peek_until(hub::deadline_after(timeout), Some(timeout))
    }

    /// A copy of the next item if there is one (gevent's `peek_nowait`).
    ///
    /// # Errors
    ///
    /// As [`get_nowait`](Queue::get_nowait).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::Queue::new();
    /// q.put_nowait(3).unwrap();
    /// assert_eq!(q.peek_nowait(), Ok(3));
    /// ```
    pub fn peek_nowait(&self) -> Result<T, TryGetError>
    where
        T: Clone,
    {
        let inner = &*self.inner;
        if let Some(item) = O::peek(&inner.items.borrow()) {
            return Ok(item.clone());
        }
        if inner.shutdown.get() {
            Err(TryGetError::ShutDown)
        } else {
            Err(TryGetError::Empty)
        }
    }

    #[track_caller]
    fn peek_until(
        &self,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<T, GetError>
    where
        T: Clone,
    {
        loop {
            match self.peek_nowait() {
                Ok(item) => return Ok(item),
                Err(TryGetError::ShutDown) => return Err(GetError::ShutDown),
                Err(TryGetError::Empty) => {}
            }
            // Woken (with `()`, nothing to give back) whenever an item is
            // stored or the queue shuts down; then look again.
            self.inner
                .peekers
                .wait_deadline(deadline, timeout, "Queue::peek", |()| ())
                .map_err(GetError::Wait)?;
        }
    }

    // ------------------------------------------------------ shutdown

    /// Shuts the queue down (Python 3.13's `Queue.shutdown()`): from now on
    /// puts fail with `ShutDown` (blocked putters are woken with their
    /// item), gets return the remaining items and then fail with
    /// `ShutDown` (blocked getters, which only wait on an empty queue, are
    /// woken with the error), and iteration ends once the queue is drained.
    /// Idempotent. The unfinished-task count is unchanged.
    ///
    /// Does not switch.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::queue::{GetError, Queue, TryPutError};
    /// let q = Queue::new();
    /// q.put(1).unwrap();
    /// q.shutdown();
    /// assert_eq!(q.put_nowait(2), Err(TryPutError::ShutDown(2)));
    /// assert_eq!(q.get().unwrap(), 1);
    /// assert!(matches!(q.get(), Err(GetError::ShutDown)));
    /// # });
    /// ```
    pub fn shutdown(&self) {
        let inner = &*self.inner;
        if inner.shutdown.replace(true) {
            return;
        }
        if !inner.getters.is_empty() {
            inner.getters.notify_all(|| Got::ShutDown);
        }
        if !inner.putters.is_empty() {
            inner.putters.notify_all(|| Space::ShutDown);
        }
        if !inner.peekers.is_empty() {
            inner.peekers.notify_all(|| ());
        }
        if !inner.links.is_empty() {
            inner.links.fire();
        }
    }

    /// Shuts the queue down and discards the items it holds (Python 3.13's
    /// and gevent's `shutdown(immediate=True)`): as
    /// [`shutdown`](Queue::shutdown), and every stored item is dropped and
    /// marked done, so gets fail with `ShutDown` at once and
    /// [`join`](Queue::join) returns when no other task is unfinished.
    /// Also drains a queue already shut down.
    ///
    /// Does not switch (greenlets woken in `join` run later).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// use greenlet::queue::{GetError, Queue};
    /// let q = Queue::new();
    /// q.put(1).unwrap();
    /// q.put(2).unwrap();
    /// q.shutdown_immediate();
    /// assert!(matches!(q.get(), Err(GetError::ShutDown)));
    /// assert_eq!(q.unfinished_tasks(), 0);
    /// q.join().unwrap();
    /// # });
    /// ```
    pub fn shutdown_immediate(&self) {
        self.shutdown();
        let inner = &*self.inner;
        let drained: Vec<T> = {
            let mut items = inner.items.borrow_mut();
            std::iter::from_fn(|| O::pop(&mut items)).collect()
        };
        let unfinished = inner.unfinished.get();
        inner
            .unfinished
            .set(unfinished.saturating_sub(drained.len()));
        if unfinished > 0 && unfinished <= drained.len() && !inner.joiners.is_empty() {
            inner.joiners.notify_all(|| ());
        }
        // The items' destructors run with no borrow held.
        drop(drained);
    }

    /// `true` after [`shutdown`](Queue::shutdown).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::Queue::<u8>::new();
    /// q.shutdown();
    /// assert!(q.is_shutdown());
    /// ```
    pub fn is_shutdown(&self) -> bool {
        self.inner.shutdown.get()
    }

    // ---------------------------------------------------- task count

    /// Items put and not yet marked done with
    /// [`task_done`](Queue::task_done) (gevent's `unfinished_tasks`).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// let q = greenlet::queue::JoinableQueue::new();
    /// q.put_nowait(1).unwrap();
    /// assert_eq!(q.unfinished_tasks(), 1);
    /// ```
    pub fn unfinished_tasks(&self) -> usize {
        self.inner.unfinished.get()
    }

    /// Marks one item taken from the queue as processed; when none is left
    /// unfinished, wakes every greenlet in [`join`](Queue::join).
    ///
    /// Does not switch.
    ///
    /// # Errors
    ///
    /// [`TaskDoneError`] when called more times than items were put; the
    /// count stays 0.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::JoinableQueue::new();
    /// q.put(1).unwrap();
    /// q.get().unwrap();
    /// q.task_done().unwrap();
    /// assert!(q.task_done().is_err());
    /// # });
    /// ```
    pub fn task_done(&self) -> Result<(), TaskDoneError> {
        let inner = &*self.inner;
        let n = inner.unfinished.get();
        if n == 0 {
            return Err(TaskDoneError);
        }
        inner.unfinished.set(n - 1);
        if n == 1 && !inner.joiners.is_empty() {
            inner.joiners.notify_all(|| ());
        }
        Ok(())
    }

    /// Waits until every item put has been marked done with
    /// [`task_done`](Queue::task_done) (gevent's `JoinableQueue.join`).
    /// Returns at once when nothing is unfinished.
    ///
    /// # Errors
    ///
    /// [`WaitError::LoopExit`] on the native stack when nothing could ever
    /// finish the tasks.
    ///
    /// # Switches
    ///
    /// While tasks are unfinished.
    ///
    /// # Panics
    ///
    /// Inside a hub callback when it has to wait.
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::JoinableQueue::new();
    /// let worker = {
    ///     let q = q.clone();
    ///     greenlet::spawn(move || while let Ok(_item) = q.get() { q.task_done().unwrap(); })
    /// };
    /// for i in 0..3 { q.put(i).unwrap(); }
    /// q.join().unwrap();
    /// assert_eq!(q.unfinished_tasks(), 0);
    /// worker.kill().unwrap();
    /// # });
    /// ```
    #[track_caller]
    pub fn join(&self) -> Result<(), WaitError> {
        self.join_until(None, None)
    }

    /// [`join`](Queue::join), waiting at most `timeout`.
    ///
    /// # Errors
    ///
    /// As [`join`](Queue::join), and [`WaitError::Elapsed`] when `timeout`
    /// passes first.
    ///
    /// # Switches
    ///
    /// As [`join`](Queue::join).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::JoinableQueue::new();
    /// q.put(1).unwrap();
    /// assert!(q.join_timeout(std::time::Duration::from_millis(5)).is_err());
    /// # });
    /// ```
    #[track_caller]
    pub fn join_timeout(&self, timeout: Duration) -> Result<(), WaitError> {
        self.join_until(hub::deadline_after(timeout), Some(timeout))
    }

    #[track_caller]
    fn join_until(
        &self,
        deadline: Option<Instant>,
        timeout: Option<Duration>,
    ) -> Result<(), WaitError> {
        if self.inner.unfinished.get() == 0 {
            return Ok(());
        }
        self.inner
            .joiners
            .wait_deadline(deadline, timeout, "Queue::join", |()| ())
    }

    // ----------------------------------------------------- iteration

    /// An iterator that [`get`](Queue::get)s items until the queue is shut
    /// down and drained (gevent's `for item in queue`). It also ends if the
    /// wait fails ([`LoopExit`](crate::LoopExit) on the native stack).
    ///
    /// # Switches
    ///
    /// Each `next` as [`get`](Queue::get).
    ///
    /// # Examples
    ///
    /// ```
    /// # use greenlet_core as greenlet;
    /// # greenlet::run(|| {
    /// let q = greenlet::queue::Queue::new();
    /// for i in 0..3 { q.put(i).unwrap(); }
    /// q.shutdown();
    /// assert_eq!(q.iter().collect::<Vec<_>>(), [0, 1, 2]);
    /// # });
    /// ```
    pub fn iter(&self) -> Iter<'_, T, O> {
        Iter { queue: self }
    }
}

impl<T, O: Order<T>> Inner<T, O> {
    /// Hands `item` to the first getter, or stores it (at the front when
    /// it is given back).
    #[inline(always)]
    fn deliver(&self, item: T, front: bool) {
        let item = match self.getters.notify_one(Got::Item(item)) {
            Ok(()) => return,
            Err(Got::Item(item)) => item,
            Err(Got::ShutDown) => return,
        };
        {
            let mut items = self.items.borrow_mut();
            if front {
                O::push_front(&mut items, item);
            } else {
                O::push(&mut items, item);
            }
        }
        if !self.peekers.is_empty() {
            self.peekers.notify_all(|| ());
        }
        if !self.links.is_empty() {
            self.links.fire();
        }
    }

    /// Room may have come free (an item left the store, or a reserved
    /// slot was used without storing or given back): hand a slot to the
    /// first blocked putter.
    fn release_space(&self) {
        let Some(maxsize) = self.maxsize else { return };
        if !self.shutdown.get()
            && O::len(&self.items.borrow()) + self.reserved.get() < maxsize
            && self.putters.notify_one(Space::Granted).is_ok()
        {
            self.reserved.set(self.reserved.get() + 1);
        }
    }

    /// A putter handed a slot left without using it: pass the slot on.
    fn return_space(&self, space: Space) {
        if let Space::Granted = space {
            self.reserved.set(self.reserved.get() - 1);
            self.release_space();
        }
    }
}

impl<T, O: Order<T>> Waitable for Queue<T, O> {
    /// `true` when a `get` would not block: an item is stored or the queue
    /// is shut down. (Unlike a greenlet, a queue becomes un-ready again
    /// when its items are taken.)
    fn is_ready(&self) -> bool {
        !self.empty() || self.is_shutdown()
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        let id = self.inner.links.add(callback);
        if self.is_ready() {
            self.inner.links.fire();
        }
        id
    }

    fn unlink(&self, id: LinkId) -> bool {
        self.inner.links.remove(id)
    }
}

/// The iterator of [`Queue::iter`].
pub struct Iter<'a, T, O: Order<T> = Fifo> {
    queue: &'a Queue<T, O>,
}

impl<T, O: Order<T>> fmt::Debug for Iter<'_, T, O> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Iter").field(self.queue).finish()
    }
}

impl<T, O: Order<T>> Iterator for Iter<'_, T, O> {
    type Item = T;

    fn next(&mut self) -> Option<T> {
        self.queue.get().ok()
    }
}

impl<'a, T, O: Order<T>> IntoIterator for &'a Queue<T, O> {
    type Item = T;
    type IntoIter = Iter<'a, T, O>;

    fn into_iter(self) -> Iter<'a, T, O> {
        self.iter()
    }
}
