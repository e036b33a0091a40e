//! The waiter protocol (gevent's `rawlink`/`unlink`): anything that can
//! finish implements [`Waitable`], and [`wait`](crate::wait),
//! [`iwait`](crate::iwait), [`joinall`](crate::joinall) and
//! [`killall`](crate::killall) are written once on top of it.

use crate::Greenlet;
use crate::greenlet::state::LinkId;

/// Something that becomes ready once and can notify callbacks when it does.
///
/// Implemented by [`Greenlet`]; events, queues and sockets plug in the same
/// way. The contract, as in gevent:
///
/// * `rawlink(cb)` calls `cb` exactly once, on the hub (it must not block),
///   on a loop turn after the object became ready: also when it was already
///   ready at the time of the call.
/// * Callbacks fire in the order they were linked.
/// * `unlink(id)` removes a callback that has not fired; `true` if it did.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// use greenlet::{spawn, wait, Waitable};
///
/// let a = spawn(|| 1);
/// let b = spawn(|| 2);
/// let objects: [&dyn Waitable; 2] = [&a, &b];
/// let ready = wait(objects).unwrap();
/// assert_eq!(ready.len(), 2);
/// # });
/// ```
pub trait Waitable {
    /// `true` once the object is ready (it never becomes un-ready).
    fn is_ready(&self) -> bool;

    /// Calls `callback` on the hub once the object is ready.
    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId;

    /// Removes a callback that has not fired yet; `true` if it was there.
    fn unlink(&self, id: LinkId) -> bool;
}

impl<T, D> Waitable for Greenlet<T, D> {
    fn is_ready(&self) -> bool {
        Greenlet::is_ready(self)
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        Greenlet::rawlink(self, callback)
    }

    fn unlink(&self, id: LinkId) -> bool {
        Greenlet::unlink(self, id)
    }
}

impl<W: Waitable + ?Sized> Waitable for &W {
    fn is_ready(&self) -> bool {
        (**self).is_ready()
    }

    fn rawlink(&self, callback: Box<dyn FnOnce()>) -> LinkId {
        (**self).rawlink(callback)
    }

    fn unlink(&self, id: LinkId) -> bool {
        (**self).unlink(id)
    }
}
