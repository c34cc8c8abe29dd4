//! Host memory charged to runs: what the host allocates while a run's
//! guests and their host calls execute (wasi:http fields, requests, bodies,
//! stream buffers, resource tables, lifted strings) counts against that
//! run's budget until it is freed, wherever and whenever that happens.
//!
//! The process allocator wraps the system allocator and puts an 8-byte tag
//! before each block: the run that was current on the thread when the
//! block was made, or 0. A block freed later, on another thread or by
//! another task, is credited to the run that made it and to no other. Each
//! run gets a fresh id (ids are never reused) and one of `SLOTS` counters
//! while it lasts; a block whose run has ended is ignored when freed.
//! Written here rather than taken from `tracking-allocator`, whose wrapper
//! turns every `realloc` into allocate-copy-free and every `alloc_zeroed`
//! into touching each page, and whose group ids cannot be told from a
//! finished run's.
//!
//! The allocator only counts. The run's stores compare the count against
//! the budget on every entry to and exit from a host call (wasmtime's call
//! hook) and trap the guest once it is over, so one host call can overshoot
//! the budget by at most what it allocates itself, bounded by the guest's
//! own memory cap.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

#[global_allocator]
static ALLOCATOR: RunTaggingAllocator = RunTaggingAllocator;

/// Runs that can be accounted at once; far more than any pool admits.
const SLOTS: usize = 16 * 1024;
const TAG: usize = size_of::<u64>();

struct Slot {
    /// The run counting into this slot; 0 when free.
    owner: AtomicU64,
    /// Bytes the owner's blocks hold now (tags included).
    live: AtomicI64,
}

static SLOT_TABLE: [Slot; SLOTS] = [const {
    Slot {
        owner: AtomicU64::new(0),
        live: AtomicI64::new(0),
    }
}; SLOTS];

static NEXT_RUN: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// The run whose code this thread executes now; 0 for none. Constant
    /// initialisation and no destructor: safe to read inside the allocator.
    static CURRENT: Cell<u64> = const { Cell::new(0) };
}

fn slot_of(run: u64) -> Option<&'static Slot> {
    let slot = &SLOT_TABLE[(run % SLOTS as u64) as usize];
    (slot.owner.load(Ordering::Relaxed) == run).then_some(slot)
}

fn charge(run: u64, bytes: i64) {
    if run != 0
        && let Some(slot) = slot_of(run)
    {
        slot.live.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// The block as the system allocator sees it: the tag, padded to the
/// caller's alignment, then the caller's bytes.
fn wrapped(layout: Layout) -> Option<(Layout, usize)> {
    let offset = layout.align().max(TAG);
    let size = layout.size().checked_add(offset)?;
    Some((Layout::from_size_align(size, offset).ok()?, offset))
}

struct RunTaggingAllocator;

// SAFETY: every block is the system allocator's, `offset` bytes before the
// pointer handed out, with the tag in the 8 bytes just before the pointer;
// dealloc and realloc recompute the same wrapped layout from the caller's.
unsafe impl GlobalAlloc for RunTaggingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((outer, offset)) = wrapped(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: `outer` has a non-zero size (it holds the tag).
        unsafe { tag(System.alloc(outer), outer, offset) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let Some((outer, offset)) = wrapped(layout) else {
            return std::ptr::null_mut();
        };
        // SAFETY: as for `alloc`.
        unsafe { tag(System.alloc_zeroed(outer), outer, offset) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((outer, offset)) = wrapped(layout) else {
            return;
        };
        // SAFETY: `ptr` came from `alloc` with this layout (GlobalAlloc's
        // contract), so the tag and the system block are where we put them.
        unsafe {
            let run = ptr.sub(TAG).cast::<u64>().read_unaligned();
            System.dealloc(ptr.sub(offset), outer);
            charge(run, -(outer.size() as i64));
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let (Some((outer, offset)), Some(new_outer)) = (
            wrapped(layout),
            new_size.checked_add(layout.align().max(TAG)),
        ) else {
            return std::ptr::null_mut();
        };
        // The system allocator may only be asked for a valid layout.
        if Layout::from_size_align(new_outer, offset).is_err() {
            return std::ptr::null_mut();
        }
        // SAFETY: as for `dealloc`; the system allocator keeps the tag,
        // which sits inside the part of the block that is preserved.
        unsafe {
            let base = System.realloc(ptr.sub(offset), outer, new_outer);
            if base.is_null() {
                return base;
            }
            let moved = base.add(offset);
            let run = moved.sub(TAG).cast::<u64>().read_unaligned();
            charge(run, new_outer as i64 - outer.size() as i64);
            moved
        }
    }
}

/// Writes the current run's tag before a fresh system block and charges it.
///
/// # Safety
/// `base` is null or a block of `outer` with at least `offset` ≥ 8 bytes
/// before the caller's part.
unsafe fn tag(base: *mut u8, outer: Layout, offset: usize) -> *mut u8 {
    if base.is_null() {
        return base;
    }
    let run = CURRENT.with(Cell::get);
    // SAFETY: per the function's contract.
    unsafe {
        let ptr = base.add(offset);
        ptr.sub(TAG).cast::<u64>().write_unaligned(run);
        charge(run, outer.size() as i64);
        ptr
    }
}

/// The host memory one run holds now.
#[derive(Clone, Copy)]
pub struct HostMemoryMeter {
    slot: &'static Slot,
    run: u64,
}

impl HostMemoryMeter {
    /// Bytes the run's host allocations hold now.
    pub fn live_bytes(&self) -> usize {
        if self.slot.owner.load(Ordering::Relaxed) != self.run {
            return 0;
        }
        self.slot.live.load(Ordering::Relaxed).max(0) as usize
    }
}

impl HostMemoryMeter {
    /// `inner` with what it allocates, on whichever thread polls it,
    /// charged to this run: for work a run's host calls hand to tasks of
    /// their own (an HTTP request and its connection). What it allocates
    /// after the run has ended is charged to no one.
    pub fn charge<F>(self, inner: F) -> Charged<F> {
        Charged {
            inner: Box::pin(inner),
            run: self.run,
            _account: None,
        }
    }
}

impl std::fmt::Debug for HostMemoryMeter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HostMemoryMeter")
            .field("live_bytes", &self.live_bytes())
            .finish()
    }
}

/// One run's account: enter it while the run's code executes.
pub struct RunAllocations {
    meter: HostMemoryMeter,
}

impl RunAllocations {
    /// A fresh account at zero, or `None` when every slot is taken by a run
    /// in flight.
    pub fn start() -> Option<RunAllocations> {
        // Ids are handed out in sequence, so consecutive ids land on
        // consecutive slots: only runs in flight are skipped.
        for _ in 0..SLOTS {
            let run = NEXT_RUN.fetch_add(1, Ordering::Relaxed);
            let slot = &SLOT_TABLE[(run % SLOTS as u64) as usize];
            if run != 0
                && slot
                    .owner
                    .compare_exchange(0, run, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                slot.live.store(0, Ordering::Relaxed);
                return Some(RunAllocations {
                    meter: HostMemoryMeter { slot, run },
                });
            }
        }
        None
    }

    pub fn meter(&self) -> HostMemoryMeter {
        self.meter
    }

    /// Charges what this thread allocates to the run until the guard drops
    /// (runs are charged through `Charged`; the tests enter directly).
    #[cfg(test)]
    fn enter(&mut self) -> Entered {
        enter(self.meter.run)
    }
}

fn enter(run: u64) -> Entered {
    Entered {
        previous: CURRENT.with(|current| current.replace(run)),
    }
}

impl Drop for RunAllocations {
    fn drop(&mut self) {
        self.meter.slot.live.store(0, Ordering::Relaxed);
        self.meter.slot.owner.store(0, Ordering::Release);
    }
}

/// While alive, this thread's allocations are charged to a run.
pub struct Entered {
    previous: u64,
}

impl Drop for Entered {
    fn drop(&mut self) {
        CURRENT.with(|current| current.set(self.previous));
    }
}

/// A future whose every poll charges this thread's allocations to a run.
pub struct Charged<F> {
    inner: std::pin::Pin<Box<F>>,
    /// The run charged; 0 for none.
    run: u64,
    /// The run's account when this future owns it (it ends with the future).
    _account: Option<RunAllocations>,
}

impl<F> Charged<F> {
    /// A future owning the run's account; `None` leaves it uncharged.
    pub fn new(inner: F, allocations: Option<RunAllocations>) -> Self {
        Charged {
            inner: Box::pin(inner),
            run: allocations.as_ref().map_or(0, |a| a.meter.run),
            _account: allocations,
        }
    }
}

impl<F: Future> Future for Charged<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.get_mut();
        let _charged = (this.run != 0).then(|| enter(this.run));
        this.inner.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_run_is_charged_what_it_allocates_until_it_is_freed_anywhere() {
        let mut run = RunAllocations::start().expect("a free slot");
        let meter = run.meter();
        let before = meter.live_bytes();
        let block = {
            let _charged = run.enter();
            vec![7u8; 1 << 20]
        };
        assert!(meter.live_bytes() >= before + (1 << 20));
        // Freed on another thread, outside the run: still credited to it.
        std::thread::spawn(move || drop(block)).join().unwrap();
        assert!(meter.live_bytes() < 1 << 20, "{}", meter.live_bytes());
        // What is allocated outside the run is not charged.
        let other = vec![1u8; 1 << 20];
        assert!(meter.live_bytes() < 1 << 20);
        drop(other);
    }

    #[test]
    fn growing_a_block_charges_the_run_that_made_it() {
        let mut run = RunAllocations::start().expect("a free slot");
        let meter = run.meter();
        let mut block = {
            let _charged = run.enter();
            Vec::<u8>::with_capacity(1024)
        };
        // Grown outside the run: still the run's block.
        block.reserve_exact(4 << 20);
        assert!(meter.live_bytes() >= 4 << 20, "{}", meter.live_bytes());
        block.shrink_to(16);
        assert!(meter.live_bytes() < 1 << 20, "{}", meter.live_bytes());
        let zeroed = {
            let _charged = run.enter();
            vec![0u8; 8 << 20]
        };
        assert!(meter.live_bytes() >= 8 << 20);
        drop(zeroed);
        drop(block);
    }

    #[test]
    fn alignment_is_kept() {
        #[repr(align(64))]
        struct Wide([u8; 64]);
        let mut run = RunAllocations::start().expect("a free slot");
        let _charged = run.enter();
        let boxes: Vec<Box<Wide>> = (0..32).map(|_| Box::new(Wide([1; 64]))).collect();
        assert!(
            boxes
                .iter()
                .all(|b| (&**b as *const Wide as usize).is_multiple_of(64))
        );
        assert!(boxes.iter().all(|b| b.0[63] == 1));
    }

    #[test]
    fn a_block_outliving_its_run_is_not_credited_to_the_next() {
        let mut first = RunAllocations::start().expect("a free slot");
        let leftover = {
            let _charged = first.enter();
            vec![1u8; 1 << 20]
        };
        drop(first);
        let mut second = RunAllocations::start().expect("a free slot");
        let meter = second.meter();
        let held = {
            let _charged = second.enter();
            vec![2u8; 1 << 20]
        };
        drop(leftover);
        assert!(meter.live_bytes() >= 1 << 20, "{}", meter.live_bytes());
        drop(held);
    }
}
