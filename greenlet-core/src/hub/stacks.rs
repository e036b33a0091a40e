//! Stack pool and the process-wide stack budget.
//!
//! # Pool
//!
//! Mapping a stack costs an `mmap` + `mprotect` (guard page) + page faults,
//! about 7 µs here, and unmapping about 5 µs; reloading a finished stack
//! costs ~40 ns. Finished stacks of the hub's default size go to `pool`
//! (bounded by the pool limit); others go to `spare`, which is unmapped only
//! when the loop is about to wait, never on the wake-up path.
//!
//! # Budget
//!
//! Every stack needs two kernel memory mappings (stack + guard page) and the
//! kernel caps mappings per process (`vm.max_map_count`, 65530 by default).
//! When the cap is hit, *every* `mmap` of the process fails, including the
//! allocator's: the process would abort on its next large allocation. So the
//! runtime keeps its own budget below the cap: [`max_live_stacks`] stack
//! units per process, `(max_map_count - 4096) / 2`, leaving 4096 mappings
//! for everything else.
//!
//! A unit covers one started greenlet (which will need a stack at its first
//! switch) or one idle pooled stack. Spawning takes a unit; when none is left,
//! idle stacks are unmapped to make room, and only then does spawning fail
//! with [`SpawnError`]. Hubs borrow units from the process-wide counter in
//! chunks, so the atomic is touched once per [`CHUNK`] spawns, not per spawn.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::Hub;
use crate::SpawnError;
use crate::greenlet::switch::Stack;

/// Units a hub borrows from (or returns to) the process-wide budget at once.
const CHUNK: usize = 64;
/// Memory mappings left for the rest of the process.
const MAP_HEADROOM: usize = 4096;

/// Units borrowed by all hubs of the process.
static BUDGET_USED: AtomicUsize = AtomicUsize::new(0);

/// How many greenlet stacks (live greenlets plus idle pooled stacks) this
/// process may hold at once: `(vm.max_map_count - 4096) / 2`, read once from
/// `/proc/sys/vm/max_map_count` (65530 → 30,717). Unlimited where that file
/// does not exist.
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
        std::fs::read_to_string("/proc/sys/vm/max_map_count")
            .ok()
            .and_then(|s| s.trim().parse::<usize>().ok())
            .map_or(usize::MAX / 4, |maps| maps.saturating_sub(MAP_HEADROOM) / 2)
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
    /// fresh mapping (covered by the greenlet's unit).
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
        match Stack::new(size) {
            Ok(stack) => {
                self.stacks.allocated += 1;
                Ok(stack)
            }
            Err(e) => Err(SpawnError::new(
                self.stacks.allocated,
                size,
                max_live_stacks(),
                e.message,
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

    /// Unmaps spare stacks; called when the loop is about to wait.
    pub(super) fn trim_stacks(&mut self) {
        if !self.stacks.spare.is_empty() {
            self.stacks.allocated -= self.stacks.spare.len();
            self.stacks.spare.clear();
            self.unit_released();
        }
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
