//! Stack region, stack pool and the process-wide stack budget.
//!
//! # Region
//!
//! Greenlet stacks are slots carved out of large reservations (`mmap` of
//! `PROT_NONE`, `MAP_NORESERVE`, 1 TiB of address space each, committed
//! `PROT_READ | PROT_WRITE` in chunks of 256 slots as they are needed), not
//! one mapping each. A slot is the stack (the requested size rounded up to
//! a page) with one guard page below it. Each stack size is its own *class*
//! (its own reservations and free lists): `Builder::stack_size` values are
//! rare and few, and one class per size keeps every slot exactly the size
//! asked for.
//!
//! The guard page is, on Linux ≥ 6.13, a guard marker
//! (`MADV_GUARD_INSTALL`, installed once, when the slot is carved: one
//! `process_madvise` per batch of 64 fresh slots, which also faults in each
//! stack's top page; one `madvise` per slot where the kernel refuses that):
//! it lives in the page tables, adds no mapping, survives
//! `MADV_DONTNEED`, and any access to it raises SIGSEGV like an `mprotect`
//! guard, which `generator`'s overflow handler reports. A whole reservation
//! is then two mappings, however many greenlets it holds. On older kernels
//! (probed once) the guard is an `mprotect(PROT_NONE)` page installed when
//! the slot is handed out and removed when it comes back: two mappings per
//! live stack, within [`max_live_stacks`].
//!
//! Free slots live in per-hub (per-thread) lists: *dirty* ones (released,
//! pages possibly resident; reused first) and *clean* ones (no resident
//! page). When the loop is about to wait, dirty slots are
//! `madvise(MADV_DONTNEED)`ed (adjacent ones in one call) and become clean;
//! clean slots beyond a few hundred go back to the process-wide list, as do
//! all of them at thread exit. A `fork` child keeps the region (the parent's
//! address space), and the region lock is taken around `fork` so the child
//! never inherits it held. A stack that overflowed is never reused: the
//! overflow aborts the process.
//!
//! # Pool
//!
//! A finished greenlet keeps its stack (the generator on it, ~40 ns to
//! reload): stacks of the hub's default size go to `pool` (bounded by the
//! pool limit); others go to `spare`, which goes back to the region only
//! when the loop is about to wait, never on the wake-up path.
//!
//! # Budget
//!
//! Only with `mprotect` guards (kernels < 6.13) does a stack cost kernel
//! mappings (two), and the kernel caps mappings per process
//! (`vm.max_map_count`, 65530 by default). When the cap is hit, *every*
//! `mmap` of the process fails, including the allocator's: the process would
//! abort on its next large allocation. So the runtime keeps its own budget
//! below the cap: [`max_live_stacks`] stack units per process.
//!
//! A unit covers one started greenlet (which will need a stack at its first
//! switch) or one idle pooled stack. Spawning takes a unit; when none is left,
//! idle stacks are released to make room, and only then does spawning fail
//! with [`SpawnError`]. Hubs borrow units from the process-wide counter in
//! chunks, so the atomic is touched once per [`CHUNK`] spawns, not per spawn.
//! With guard markers the budget is effectively unlimited (memory is the
//! limit).

use std::cell::{RefCell, UnsafeCell};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use super::Hub;
use crate::SpawnError;
use crate::greenlet::switch::{MIN_STACK_SIZE, Stack};

/// Units a hub borrows from (or returns to) the process-wide budget at once.
const CHUNK: usize = 64;
/// Memory mappings left for the rest of the process.
const MAP_HEADROOM: usize = 4096;

/// Units borrowed by all hubs of the process.
static BUDGET_USED: AtomicUsize = AtomicUsize::new(0);

/// How many greenlet stacks (live greenlets plus idle pooled stacks) this
/// process may hold at once.
///
/// - With guard markers ([`uses_guard_markers`], Linux ≥ 6.13) stacks cost
///   no kernel mapping each: `usize::MAX / 4`, i.e. no budget; memory is the
///   limit (an idle greenlet keeps about one 4 KiB page resident).
/// - With `mprotect` guards (older kernels) each live stack costs two
///   mappings: `(vm.max_map_count - maps - 4096) / 2`, where `maps` is the
///   number of mappings the process had when this was first asked, and 4096
///   mappings are left for everything else (65530 and ~100 maps → ~30,660).
///   Spawning past it fails with a [`SpawnError`] that names the sysctl.
///
/// Read once per process. Unlimited where `/proc` does not exist.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// # greenlet::run(|| {
/// assert!(greenlet::hub::max_live_stacks() > 1000);
/// # });
/// ```
pub fn max_live_stacks() -> usize {
    static LIMIT: OnceLock<usize> = OnceLock::new();
    *LIMIT.get_or_init(|| {
        if guards() == Guards::Markers {
            return usize::MAX / 4;
        }
        let maps = std::fs::read_to_string("/proc/self/maps").map_or(0, |m| m.lines().count());
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map_or(usize::MAX / 4, |max| {
                max.saturating_sub(maps + MAP_HEADROOM) / 2
            })
    })
}

/// Borrows up to `want` units; returns how many were granted.
fn borrow_units(want: usize) -> usize {
    let limit = max_live_stacks();
    let mut current = BUDGET_USED.load(Ordering::Relaxed);
    loop {
        let grant = want.min(limit.saturating_sub(current));
        if grant == 0 {
            return 0;
        }
        match BUDGET_USED.compare_exchange_weak(
            current,
            current + grant,
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => return grant,
            Err(actual) => current = actual,
        }
    }
}

fn return_units(n: usize) {
    if n > 0 {
        BUDGET_USED.fetch_sub(n, Ordering::AcqRel);
    }
}

/// The hub's stacks: pooled, spare, and the units it holds.
pub(super) struct Stacks {
    /// Idle stacks of the default size, reused first.
    pub(super) pool: Vec<Stack>,
    /// Idle stacks beyond the pool limit or of another size; unmapped when
    /// the loop next waits.
    pub(super) spare: Vec<Stack>,
    /// Stacks mapped by this hub (in use and idle).
    pub(super) allocated: usize,
    /// Budget units borrowed from the process-wide counter.
    held: usize,
}

impl Stacks {
    pub(super) const fn new() -> Stacks {
        Stacks {
            pool: Vec::new(),
            spare: Vec::new(),
            allocated: 0,
            held: 0,
        }
    }

    pub(super) fn idle(&self) -> usize {
        self.pool.len() + self.spare.len()
    }
}

impl Hub {
    /// Units in use: live greenlets plus idle stacks.
    fn used_units(&self) -> usize {
        self.live + self.stacks.idle()
    }

    /// Takes a unit for a greenlet about to be started (before `live += 1`).
    pub(super) fn reserve_unit(&mut self, stack_size: Option<usize>) -> Result<(), SpawnError> {
        if self.used_units() < self.stacks.held {
            return Ok(());
        }
        self.stacks.held += borrow_units(CHUNK);
        if self.used_units() < self.stacks.held {
            return Ok(());
        }
        // Out of budget: unmap idle stacks to make room.
        let freed = self.stacks.idle();
        if freed > 0 {
            self.stacks.allocated -= freed;
            self.stacks.pool.clear();
            self.stacks.spare.clear();
        }
        if self.used_units() < self.stacks.held {
            return Ok(());
        }
        Err(SpawnError::new(
            self.live,
            stack_size.unwrap_or(self.config.stack_size),
            max_live_stacks(),
            "the process-wide greenlet stack budget is used up".to_owned(),
        ))
    }

    /// Gives surplus units back to the process-wide budget.
    pub(super) fn unit_released(&mut self) {
        let used = self.used_units();
        if self.stacks.held > used + 2 * CHUNK {
            let surplus = self.stacks.held - used - CHUNK;
            self.stacks.held -= surplus;
            return_units(surplus);
        }
    }

    /// Returns every unit (hub teardown).
    pub(super) fn return_all_units(&mut self) {
        return_units(std::mem::take(&mut self.stacks.held));
    }

    /// A stack for a greenlet's first switch: pooled if possible, else a
    /// slot of the region (covered by the greenlet's unit).
    pub(super) fn take_stack(&mut self, size: Option<usize>) -> Result<Stack, SpawnError> {
        let size = size.unwrap_or(self.config.stack_size);
        if size == self.config.stack_size
            && let Some(stack) = self.stacks.pool.pop()
        {
            return Ok(stack);
        }
        if let Some(i) = self.stacks.spare.iter().rposition(|s| s.size() == size) {
            return Ok(self.stacks.spare.swap_remove(i));
        }
        match region_stack(size) {
            Ok(stack) => {
                self.stacks.allocated += 1;
                Ok(stack)
            }
            Err(cause) => Err(SpawnError::new(
                self.stacks.allocated,
                size,
                max_live_stacks(),
                cause,
            )),
        }
    }

    /// A finished greenlet's stack, back for reuse.
    pub(super) fn release_stack(&mut self, stack: Stack) {
        debug_assert!(stack.is_idle());
        if stack.size() == self.config.stack_size
            && self.stacks.pool.len() < self.config.stack_cache_limit
        {
            self.stacks.pool.push(stack);
        } else {
            self.stacks.spare.push(stack);
        }
    }

    /// Gives spare stacks back to the region and drops the resident pages
    /// of released slots; called when the loop is about to wait.
    pub(super) fn trim_stacks(&mut self) {
        if !self.stacks.spare.is_empty() {
            self.stacks.allocated -= self.stacks.spare.len();
            self.stacks.spare.clear();
            self.unit_released();
        }
        trim_region();
    }

    /// Moves pooled stacks beyond `keep` (or of the wrong size) to `spare`.
    pub(super) fn reshape_pool(&mut self) {
        let size = self.config.stack_size;
        let limit = self.config.stack_cache_limit;
        let mut i = 0;
        while i < self.stacks.pool.len() {
            if self.stacks.pool[i].size() != size || i >= limit {
                let s = self.stacks.pool.swap_remove(i);
                self.stacks.spare.push(s);
            } else {
                i += 1;
            }
        }
    }
}

// ================================================================= region

/// `MADV_GUARD_INSTALL` (Linux 6.13, `include/uapi/asm-generic/mman-common.h`):
/// the `libc` crate (0.2.191) does not define it yet.
const MADV_GUARD_INSTALL: libc::c_int = 102;
/// Slots a hub takes from the process-wide free list (or carves) at once.
const REFILL: usize = 64;
/// Clean slots a hub keeps when it trims; the rest go back to the process.
const KEEP_CLEAN: usize = 4 * REFILL;
/// Slots made readable and writable at once when a reservation grows.
const COMMIT_SLOTS: usize = 256;
/// Address space one reservation asks for (halved while `mmap` refuses).
const RESERVE_BYTES: usize = 1 << 40;

/// How the page below each stack is made to fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Guards {
    /// `MADV_GUARD_INSTALL` guard markers (Linux ≥ 6.13): in the page
    /// tables, no mapping of their own, installed once per slot.
    Markers,
    /// `mprotect(PROT_NONE)` per live stack: splits the region's mapping,
    /// two mappings per stack, within [`max_live_stacks`].
    Mprotect,
}

/// The page size, read once.
fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    *PAGE.get_or_init(|| {
        // SAFETY: `sysconf` has no preconditions.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(page).unwrap_or(4096)
    })
}

/// The guard kind of this process, probed once: a scratch mapping gets a
/// guard marker or not. `GREENLET_STACK_GUARDS=mprotect` forces the
/// fallback (tests of the budget path on a new kernel).
fn guards() -> Guards {
    static GUARDS: OnceLock<Guards> = OnceLock::new();
    *GUARDS.get_or_init(|| {
        register_atfork();
        let forced = std::env::var_os("GREENLET_STACK_GUARDS").is_some_and(|v| v == "mprotect");
        if forced {
            return Guards::Mprotect;
        }
        let page = page_size();
        // SAFETY: a fresh private anonymous mapping, given back right away;
        // `madvise` only touches that mapping.
        let supported = unsafe {
            let p = libc::mmap(
                std::ptr::null_mut(),
                2 * page,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            );
            if p == libc::MAP_FAILED {
                false
            } else {
                let ok = libc::madvise(p, page, MADV_GUARD_INSTALL) == 0;
                libc::munmap(p, 2 * page);
                ok
            }
        };
        if supported {
            Guards::Markers
        } else {
            Guards::Mprotect
        }
    })
}

/// `true` when greenlet stacks are guarded with guard markers
/// (`MADV_GUARD_INSTALL`, Linux ≥ 6.13): then stacks cost no memory
/// mapping each, and the number of live greenlets is bounded by memory only.
/// `false` on older kernels (or with `GREENLET_STACK_GUARDS=mprotect` in the
/// environment): each live stack costs two mappings and
/// [`max_live_stacks`] is the budget. Probed once per process.
///
/// # Examples
///
/// ```
/// # use greenlet_core as greenlet;
/// use greenlet::hub;
///
/// if hub::uses_guard_markers() {
///     assert!(hub::max_live_stacks() >= 1_000_000);
/// }
/// ```
pub fn uses_guard_markers() -> bool {
    guards() == Guards::Markers
}

/// A lock that is only held for a few instructions (free-list pushes, a
/// reservation bump), usable from a `fork` handler: `pthread_atfork` takes it
/// around `fork`, so the child never inherits it held.
struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reached through `lock`, which gives one thread at a
// time exclusive access (acquire/release on `locked`).
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    const fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: AtomicBool::new(false),
            value: UnsafeCell::new(value),
        }
    }

    fn acquire(&self) {
        while self
            .locked
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            std::thread::yield_now();
        }
    }

    fn release(&self) {
        self.locked.store(false, Ordering::Release);
    }

    fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        self.acquire();
        struct Unlock<'a, T>(&'a SpinLock<T>);
        impl<T> Drop for Unlock<'_, T> {
            fn drop(&mut self) {
                self.0.release();
            }
        }
        let _unlock = Unlock(self);
        // SAFETY: the lock is held until `_unlock` drops, after `f`.
        f(unsafe { &mut *self.value.get() })
    }
}

/// Slots of one stack size, process-wide.
struct Class {
    /// Usable stack bytes (a whole number of pages).
    stack_len: usize,
    /// Released slots without resident pages (their guard in place), as
    /// stack bottoms.
    free: Vec<usize>,
    /// The current reservation: `[base, end)`, readable and writable up to
    /// `committed`, carved up to `next`.
    base: usize,
    end: usize,
    committed: usize,
    next: usize,
}

impl Class {
    fn slot_len(&self) -> usize {
        self.stack_len + page_size()
    }
}

/// Every class of the process; a class's index is the cookie of its
/// stacks' release callback, so classes are never removed.
static REGION: SpinLock<Vec<Class>> = SpinLock::new(Vec::new());

/// Takes the region lock around `fork` (registered once), so a child never
/// starts with it held by a thread that does not exist there.
fn register_atfork() {
    extern "C" fn prepare() {
        REGION.acquire();
    }
    extern "C" fn parent() {
        REGION.release();
    }
    extern "C" fn child() {
        REGION.release();
        FORKS.fetch_add(1, Ordering::Release);
    }
    // SAFETY: the handlers are plain functions that only touch atomics.
    unsafe {
        libc::pthread_atfork(Some(prepare), Some(parent), Some(child));
    }
}

/// How many `fork`s this process descends through (counted in the child
/// by the handler above).
static FORKS: AtomicU64 = AtomicU64::new(0);

/// How many times this process is a forked child of the process (or of an
/// ancestor) that first used greenlet's stacks or thread channels: a value
/// made before a fork sees a different count in the child. Values that a
/// thread of the parent may have locked at fork time (thread channels)
/// compare it before locking. One atomic load once registered.
/// Before `fork`: runs this module's one-time initialisations in the
/// parent (see `hub::before_fork`).
pub(super) fn before_fork() {
    let _ = guards();
    let _ = page_size();
    let _ = max_live_stacks();
}

pub(crate) fn fork_count() -> u64 {
    guards(); // registers the fork handlers once
    FORKS.load(Ordering::Acquire)
}

/// Reserves address space for `class` (`PROT_NONE`, `MAP_NORESERVE`, no
/// memory committed): 1 TiB, halved while the kernel refuses, at least one
/// commit chunk.
fn new_reservation(class: &mut Class) -> Result<(), String> {
    let slot = class.slot_len();
    let min = slot * COMMIT_SLOTS;
    let mut len = (RESERVE_BYTES / slot).max(COMMIT_SLOTS) * slot;
    loop {
        // SAFETY: a fresh anonymous mapping at an address the kernel picks;
        // nothing else refers to it.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if p != libc::MAP_FAILED {
            class.base = p.expose_provenance();
            class.end = class.base + len;
            class.committed = class.base;
            class.next = class.base;
            return Ok(());
        }
        if len / 2 < min {
            return Err(format!(
                "reserving address space for greenlet stacks failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        len = (len / 2 / slot) * slot;
    }
}

/// Carves up to `n` fresh slots of `class` (their stack bottoms into `out`),
/// committing another chunk or reserving more address space as needed.
fn carve(class: &mut Class, n: usize, out: &mut Vec<usize>) -> Result<(), String> {
    let slot = class.slot_len();
    if class.next + slot > class.end {
        new_reservation(class)?;
    }
    if class.next + slot > class.committed {
        let len = (slot * COMMIT_SLOTS).min(class.end - class.committed);
        // SAFETY: `[committed, committed + len)` lies in this class's
        // reservation and holds no slot yet.
        let rc = unsafe {
            libc::mprotect(
                std::ptr::with_exposed_provenance_mut::<libc::c_void>(class.committed),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
            )
        };
        if rc != 0 {
            return Err(format!(
                "committing memory for greenlet stacks failed: {}",
                std::io::Error::last_os_error()
            ));
        }
        class.committed += len;
    }
    let fit = (class.committed - class.next) / slot;
    for _ in 0..n.min(fit) {
        let bottom = class.next + page_size();
        register_with_valgrind(bottom, class.stack_len);
        out.push(bottom);
        class.next += slot;
    }
    Ok(())
}

/// Tells Valgrind (when the process runs under it) that `[bottom, bottom +
/// len)` is a stack. Greenlets switch directly from one stack to another
/// (`switch::transfer`), and neighbouring slots are closer than memcheck's
/// `--max-stackframe`: without the registration it takes such a switch for
/// a huge frame pushed or popped and marks the other greenlet's live frames
/// undefined (thousands of false "uninitialised value" reports). With it,
/// moving the stack pointer into another registered stack is a stack switch
/// whatever the distance. Slots are carved once and never move, so each is
/// registered once and never deregistered. Outside Valgrind this is a few
/// no-op instructions, once per carved slot.
#[inline]
fn register_with_valgrind(bottom: usize, len: usize) {
    // `VG_USERREQ__STACK_REGISTER` (valgrind.h): start and end (inclusive).
    const STACK_REGISTER: usize = 0x1501;
    #[cfg(target_arch = "x86_64")]
    {
        let request: [usize; 6] = [STACK_REGISTER, bottom, bottom + len - 1, 0, 0, 0];
        // SAFETY: Valgrind's client-request "magic sequence" for amd64
        // (valgrind.h, `VALGRIND_DO_CLIENT_REQUEST_EXPR`): four rotations of
        // `rdi` by 128 bits in total (it ends unchanged), then `xchg rbx,
        // rbx`, a no-op. Natively nothing changes but the flags and `rdx`
        // (declared); under Valgrind the request reads the six words at
        // `rax`, which point into `request`, alive for the whole statement,
        // and writes the result to `rdx`.
        unsafe {
            std::arch::asm!(
                "rol rdi, 3",
                "rol rdi, 13",
                "rol rdi, 61",
                "rol rdi, 51",
                "xchg rbx, rbx",
                in("rax") request.as_ptr(),
                inout("rdx") 0usize => _,
                out("rdi") _,
                options(nostack, readonly),
            );
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (STACK_REGISTER, bottom, len);
}

/// One stack size's slots held by this thread's hub.
struct LocalClass {
    /// Index in [`REGION`].
    index: usize,
    stack_len: usize,
    /// Released slots whose pages may be resident (reused first, they are
    /// warm); `madvise(MADV_DONTNEED)`ed by [`trim_region`].
    dirty: Vec<usize>,
    /// Slots without resident pages, guard in place.
    clean: Vec<usize>,
}

/// This thread's slots (the hub's free lists). At thread exit they go back to
/// the process-wide lists.
struct LocalSlots(Vec<LocalClass>);

impl Drop for LocalSlots {
    fn drop(&mut self) {
        for class in &mut self.0 {
            discard(&mut class.dirty, class.stack_len, guards());
            class.clean.append(&mut class.dirty);
            give_back(class.index, &mut class.clean);
        }
    }
}

thread_local! {
    static LOCAL: RefCell<LocalSlots> = const { RefCell::new(LocalSlots(Vec::new())) };
}

/// `madvise(MADV_DONTNEED)` over the stacks of `slots` (sorted, adjacent
/// slots merged into one call; the guard markers between them stay).
fn discard(slots: &mut [usize], stack_len: usize, kind: Guards) {
    if slots.is_empty() {
        return;
    }
    slots.sort_unstable();
    let slot = stack_len + page_size();
    let mut i = 0;
    while i < slots.len() {
        let start = slots[i];
        let mut last = start;
        i += 1;
        // Merge only over guard markers: an `mprotect`ed guard is a mapping
        // of its own, which `MADV_DONTNEED` would also cover, harmlessly,
        // but keep the calls per stack there for clarity.
        while kind == Guards::Markers && i < slots.len() && slots[i] == last + slot {
            last = slots[i];
            i += 1;
        }
        // SAFETY: `[start, last + stack_len)` covers released slots of one
        // reservation: no stack frame and no reference uses them.
        unsafe {
            libc::madvise(
                std::ptr::with_exposed_provenance_mut(start),
                last + stack_len - start,
                libc::MADV_DONTNEED,
            );
        }
    }
}

/// Returns clean `slots` of class `index` to the process-wide list (fresh
/// ones keep their tag: their guard marker is installed when handed out).
fn give_back(index: usize, slots: &mut Vec<usize>) {
    if !slots.is_empty() {
        REGION.with(|classes| classes[index].free.append(slots));
    }
}

/// A slot for a stack of `stack_len` bytes (page multiple): its bottom and
/// its class index. Guarded (marker installed, or `mprotect`ed now).
fn alloc_slot(stack_len: usize) -> Result<(usize, usize), String> {
    let kind = guards();
    let taken = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return Err("the stack region is busy on this thread".to_owned());
        };
        let pos = match local.0.iter().position(|c| c.stack_len == stack_len) {
            Some(pos) => pos,
            None => {
                let index = REGION.with(|classes| {
                    classes
                        .iter()
                        .position(|c| c.stack_len == stack_len)
                        .unwrap_or_else(|| {
                            classes.push(Class {
                                stack_len,
                                free: Vec::new(),
                                base: 0,
                                end: 0,
                                committed: 0,
                                next: 0,
                            });
                            classes.len() - 1
                        })
                });
                local.0.push(LocalClass {
                    index,
                    stack_len,
                    dirty: Vec::new(),
                    clean: Vec::new(),
                });
                local.0.len() - 1
            }
        };
        let class = &mut local.0[pos];
        if let Some(bottom) = class.dirty.pop().or_else(|| class.clean.pop()) {
            return Ok::<_, String>((bottom, class.index));
        }
        // Refill from the process-wide list, else carve fresh slots.
        let mut fresh = Vec::new();
        REGION.with(|classes| {
            let shared = &mut classes[class.index];
            let take = shared.free.len().saturating_sub(REFILL);
            class.clean.extend(shared.free.drain(take..));
            if class.clean.is_empty() {
                carve(shared, REFILL, &mut fresh)
            } else {
                Ok(())
            }
        })?;
        match class.clean.pop() {
            Some(bottom) => Ok((bottom, class.index)),
            None => {
                if fresh.is_empty() {
                    return Err("the stack region could not grow".to_owned());
                }
                // Fresh slots: their guards (and the top page each stack
                // touches first) in one system call per batch; where that
                // fails, each guard is installed when its slot comes up
                // (tagged with the low bit until then).
                let guarded = kind == Guards::Markers && prepare_fresh(&fresh, class.stack_len);
                let tag = usize::from(!guarded);
                let bottom = fresh.remove(0);
                class.clean.extend(fresh.iter().rev().map(|b| b | tag));
                Ok((bottom | tag, class.index))
            }
        }
    });
    let (tagged, index) =
        taken.map_err(|_| "this thread is exiting: its stack region is gone".to_owned())??;
    // Fresh slots are tagged with the low bit until their guard exists.
    let (bottom, fresh) = (tagged & !1, tagged & 1 == 1);
    let guard = std::ptr::with_exposed_provenance_mut::<libc::c_void>(bottom - page_size());
    let rc = match (kind, fresh) {
        // SAFETY: the page below the slot's stack belongs to the slot; a
        // guard marker in it is what the slot layout asks for.
        (Guards::Markers, true) => unsafe { libc::madvise(guard, page_size(), MADV_GUARD_INSTALL) },
        (Guards::Markers, false) => 0,
        // SAFETY: as above; the guard is removed again when the slot is
        // released (`release_slot`), so the mapping count follows live stacks.
        (Guards::Mprotect, _) => unsafe { libc::mprotect(guard, page_size(), libc::PROT_NONE) },
    };
    if rc != 0 {
        let error = std::io::Error::last_os_error();
        let tagged = if kind == Guards::Markers {
            bottom | 1
        } else {
            bottom
        };
        let _ = LOCAL.try_with(|local| {
            if let Some(c) = local.borrow_mut().0.iter_mut().find(|c| c.index == index) {
                c.clean.push(tagged);
            }
        });
        return Err(format!("installing a stack guard page failed: {error}"));
    }
    Ok((bottom, index))
}

/// `process_madvise(2)` on this process: `advice` over `len` bytes at each
/// of `addrs`, in one system call per 512 ranges. `false` if the kernel
/// refused any of it (older kernels only accept a few advices there).
fn advise_batch(addrs: &[usize], len: usize, advice: libc::c_int) -> bool {
    /// `(pid << 32) | pidfd` of this process, opened once (again in a `fork`
    /// child, whose pid differs).
    static PIDFD: AtomicU64 = AtomicU64::new(u64::MAX);
    // SAFETY: `getpid` has no preconditions.
    let pid = unsafe { libc::getpid() };
    let cached = PIDFD.load(Ordering::Acquire);
    let fd = if cached != u64::MAX && (cached >> 32) as i32 == pid {
        (cached & 0xffff_ffff) as libc::c_int
    } else {
        // SAFETY: `pidfd_open(2)` with our own pid and no flags.
        let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        let Ok(fd) = libc::c_int::try_from(fd) else {
            return false;
        };
        if fd < 0 {
            return false;
        }
        let packed = (u64::from(pid.cast_unsigned()) << 32) | u64::from(fd.cast_unsigned());
        match PIDFD.compare_exchange(cached, packed, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => {
                if cached != u64::MAX {
                    // The parent's pidfd, inherited over `fork`: ours now.
                    // SAFETY: an fd this process owns and no longer uses.
                    unsafe { libc::close((cached & 0xffff_ffff) as libc::c_int) };
                }
                fd
            }
            Err(_) => {
                // Another thread opened one first: use that.
                // SAFETY: the fd opened just above, used by nobody.
                unsafe { libc::close(fd) };
                return advise_batch(addrs, len, advice);
            }
        }
    };
    for chunk in addrs.chunks(512) {
        let iov: Vec<libc::iovec> = chunk
            .iter()
            .map(|&a| libc::iovec {
                iov_base: std::ptr::with_exposed_provenance_mut(a),
                iov_len: len,
            })
            .collect();
        // SAFETY: `process_madvise(2)` on this process's own pidfd over
        // ranges of slots that are ours and unused (fresh, not handed out).
        let done = unsafe {
            libc::syscall(
                libc::SYS_process_madvise,
                fd,
                iov.as_ptr(),
                iov.len(),
                advice,
                0,
            )
        };
        if usize::try_from(done).ok() != Some(len * chunk.len()) {
            return false;
        }
    }
    true
}

/// Installs the guard markers of freshly carved slots (stack bottoms
/// `fresh`) and faults in the top page of each stack (where the generator's
/// control block goes), in one system call each. `false` if the guards are
/// not all in place (they are then installed one by one).
fn prepare_fresh(fresh: &[usize], stack_len: usize) -> bool {
    let page = page_size();
    let guards: Vec<usize> = fresh.iter().map(|b| b - page).collect();
    if !advise_batch(&guards, page, MADV_GUARD_INSTALL) {
        return false;
    }
    // Best effort: a refused populate only means the first touch faults.
    let tops: Vec<usize> = fresh.iter().map(|b| b + stack_len - page).collect();
    advise_batch(&tops, page, libc::MADV_POPULATE_WRITE);
    true
}

/// The release callback of region stacks (`generator` calls it when the
/// stack's generator is dropped): the slot goes to this thread's dirty list,
/// or, at thread exit, cleaned to the process-wide list.
fn release_slot(bottom: *mut u8, len: usize, index: usize) {
    let bottom = bottom.addr();
    if guards() == Guards::Mprotect {
        // SAFETY: the guard page of this (now unused) slot, `PROT_NONE`d by
        // `alloc_slot`; making it writable again lets the kernel merge the
        // mapping back.
        unsafe {
            libc::mprotect(
                std::ptr::with_exposed_provenance_mut(bottom - page_size()),
                page_size(),
                libc::PROT_READ | libc::PROT_WRITE,
            );
        }
    }
    let kept = LOCAL
        .try_with(|local| {
            let Ok(mut local) = local.try_borrow_mut() else {
                return false;
            };
            match local.0.iter_mut().find(|c| c.index == index) {
                Some(class) => {
                    class.dirty.push(bottom);
                    true
                }
                None => false,
            }
        })
        .unwrap_or(false);
    if !kept {
        let mut one = [bottom];
        discard(&mut one, len, Guards::Mprotect);
        REGION.with(|classes| classes[index].free.push(bottom));
    }
}

/// Drops the resident pages of this thread's released slots (guards stay)
/// and hands clean slots beyond [`KEEP_CLEAN`] back to the process.
fn trim_region() {
    let kind = guards();
    let _ = LOCAL.try_with(|local| {
        let Ok(mut local) = local.try_borrow_mut() else {
            return;
        };
        for class in &mut local.0 {
            if !class.dirty.is_empty() {
                discard(&mut class.dirty, class.stack_len, kind);
                class.clean.append(&mut class.dirty);
            }
            if class.clean.len() > KEEP_CLEAN {
                // Fresh slots keep their tag (no guard yet) in the shared
                // list too: whoever takes them installs it.
                let mut back = class.clean.split_off(KEEP_CLEAN);
                give_back(class.index, &mut back);
            }
        }
    });
}

/// A new idle stack of `size` bytes in the region.
fn region_stack(size: usize) -> Result<Stack, String> {
    let page = page_size();
    let stack_len = size.max(MIN_STACK_SIZE).div_ceil(page) * page;
    let (bottom, index) = alloc_slot(stack_len)?;
    let bottom = std::ptr::NonNull::new(std::ptr::with_exposed_provenance_mut::<u8>(bottom))
        .ok_or_else(|| "the region handed out a null slot".to_owned())?;
    // SAFETY: `alloc_slot` handed out a slot: `stack_len` bytes (a page
    // multiple, ≥ 16 KiB) of committed, readable and writable memory used by
    // nothing else, with a guard page right below; `release_slot` does not
    // panic and takes the slot back exactly once, when the generator's last
    // stack handle goes.
    let memory = unsafe { generator::StackMemory::new(bottom, stack_len, release_slot, index) };
    Ok(Stack::in_memory(memory, size))
}
