//! A session's worker threads: started with the session and parked between calls, so that a
//! call on several threads starts none (starting one costs about 50 µs, as much as scoring a
//! short list) and allocates nothing.
//!
//! A call hands out numbered shares of one job: share 0 runs on the calling thread, share `i`
//! on worker `i − 1`, and the call returns when every share has finished. A worker that has
//! just finished spins for [`SPIN`] before it parks, because the next job (the next phase of
//! the same query, the next query of a batch) usually follows at once and waking a parked
//! thread costs tens of microseconds.
//!
//! A process forked from the one that started the workers has none of them (only the forking
//! thread survives a fork): there every share runs on the calling thread, and dropping the
//! workers joins nothing. Python training pipelines fork their data-loader processes.

use crate::error::{Error, ErrorKind, Result};
use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long a thread waits for work (or the caller for the workers) by spinning before it
/// parks: long enough to bridge the gap between two phases or two calls in a loop, short
/// enough that an idle session gives its cores back to the application at once.
const SPIN: Duration = Duration::from_micros(100);

type Job = dyn Fn(usize) + Sync;

/// A job of [`Workers::split`]: `(share, its state, its part of the output)`.
type SplitJob<'a, S, T, X> = dyn Fn(usize, &mut S, &mut [T]) -> std::result::Result<(), X> + Sync + 'a;

/// The current job, lifetime erased. Only dereferenced between its publication and the end of
/// the [`Workers::run`] call that published it, which outlives that span.
#[derive(Clone, Copy)]
struct JobRef(*const Job);

// SAFETY: the pointee is `Sync`, and `Workers::run` keeps it alive until every share is done.
unsafe impl Send for JobRef {}

/// What the calling thread tells the workers, under [`Shared::slot`].
struct Slot {
    /// Bumped by every job; a worker takes each generation at most once.
    generation: u64,
    job: Option<JobRef>,
    shares: usize,
    /// Workers waiting on [`Shared::wake`].
    parked: usize,
    stop: bool,
}

struct Shared {
    slot: Mutex<Slot>,
    /// [`Slot::generation`], readable without the lock by spinning workers.
    generation: AtomicU64,
    wake: Condvar,
    /// Shares of the current job still running on workers.
    pending: AtomicUsize,
    done_lock: Mutex<()>,
    done: Condvar,
    /// The first panic of a worker's share, re-raised on the calling thread.
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

/// Locks a mutex that a panicking share may have poisoned: shares run outside every lock, so
/// the data behind it is consistent.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spins until `ready` or [`SPIN`] has passed; whether it became ready.
fn spin_until(ready: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    loop {
        for _ in 0..64 {
            if ready() {
                return true;
            }
            std::hint::spin_loop();
        }
        if start.elapsed() > SPIN {
            return ready();
        }
        // With more threads than cores, let the thread with work to do have this core.
        std::thread::yield_now();
    }
}

impl Shared {
    fn worker(&self, index: usize) {
        let mut seen = 0;
        loop {
            spin_until(|| self.generation.load(Ordering::Acquire) != seen);
            let mut slot = lock(&self.slot);
            while slot.generation == seen && !slot.stop {
                slot.parked += 1;
                slot = self.wake.wait(slot).unwrap_or_else(PoisonError::into_inner);
                slot.parked -= 1;
            }
            if slot.stop {
                return;
            }
            // Generation and job are read together, so a job is never taken twice.
            seen = slot.generation;
            let (job, share) = (slot.job, index + 1);
            let mine = share < slot.shares;
            drop(slot);
            if let (true, Some(JobRef(job))) = (mine, job) {
                // SAFETY: `run` published this job and waits for this share before returning.
                let job = unsafe { &*job };
                if let Err(payload) = catch_unwind(AssertUnwindSafe(|| job(share))) {
                    lock(&self.panic).get_or_insert(payload);
                }
                if self.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
                    let _guard = lock(&self.done_lock);
                    self.done.notify_one();
                }
            }
        }
    }

    /// Waits until every worker share of the current job has finished.
    fn wait_for_workers(&self) {
        if !spin_until(|| self.pending.load(Ordering::Acquire) == 0) {
            let mut guard = lock(&self.done_lock);
            while self.pending.load(Ordering::Acquire) != 0 {
                guard = self.done.wait(guard).unwrap_or_else(PoisonError::into_inner);
            }
        }
    }
}

/// Waits for the workers when dropped, so that a panic in the caller's own share cannot end
/// the job's lifetime while a worker still runs it.
struct WaitOnDrop<'a>(&'a Shared);

impl Drop for WaitOnDrop<'_> {
    fn drop(&mut self) {
        self.0.wait_for_workers();
    }
}

/// `width − 1` parked threads plus the calling thread.
pub(crate) struct Workers {
    shared: Option<Arc<Shared>>,
    threads: Vec<JoinHandle<()>>,
    /// The process that started the threads.
    process: u32,
}

impl Workers {
    /// Only the calling thread: every share runs on it, in order.
    pub(crate) fn inline() -> Workers {
        Workers { shared: None, threads: Vec::new(), process: std::process::id() }
    }

    /// Starts `width − 1` threads. Errors: Internal when the system refuses a thread.
    pub(crate) fn new(width: usize) -> Result<Workers> {
        if width <= 1 {
            return Ok(Workers::inline());
        }
        let shared = Arc::new(Shared {
            slot: Mutex::new(Slot { generation: 0, job: None, shares: 0, parked: 0, stop: false }),
            generation: AtomicU64::new(0),
            wake: Condvar::new(),
            pending: AtomicUsize::new(0),
            done_lock: Mutex::new(()),
            done: Condvar::new(),
            panic: Mutex::new(None),
        });
        let mut workers = Workers {
            shared: Some(shared.clone()),
            threads: Vec::with_capacity(width - 1),
            process: std::process::id(),
        };
        for index in 0..width - 1 {
            let shared = shared.clone();
            let thread = std::thread::Builder::new()
                .name(format!("rrra-worker-{index}"))
                .spawn(move || shared.worker(index))
                .map_err(|e| Error::new(ErrorKind::Internal, format!("starting worker thread {index}: {e}")))?;
            workers.threads.push(thread);
        }
        Ok(workers)
    }

    /// Threads a job can run on, the calling thread included.
    pub(crate) fn width(&self) -> usize {
        self.threads.len() + 1
    }

    /// Runs `job(share)` for every share in `0..shares` (at most [`Workers::width`]), share 0
    /// on the calling thread, and returns when all have finished. A panic in any share is
    /// re-raised here after every share has stopped.
    pub(crate) fn run(&mut self, shares: usize, job: &(dyn Fn(usize) + Sync)) {
        assert!(shares <= self.width(), "{shares} shares for {} threads", self.width());
        let shared = match &self.shared {
            Some(shared) if shares > 1 && self.process == std::process::id() => shared,
            _ => return (0..shares).for_each(job),
        };
        // SAFETY: only the lifetime is erased; `WaitOnDrop` keeps this call (and so `job`) alive
        // until every worker share has finished with it, whether share 0 returns or unwinds.
        let erased: *const Job = unsafe { std::mem::transmute::<&(dyn Fn(usize) + Sync), &'static Job>(job) };
        {
            let mut slot = lock(&shared.slot);
            slot.generation += 1;
            slot.job = Some(JobRef(erased));
            slot.shares = shares;
            shared.pending.store(shares - 1, Ordering::Release);
            shared.generation.store(slot.generation, Ordering::Release);
            if slot.parked > 0 {
                shared.wake.notify_all();
            }
        }
        let wait = WaitOnDrop(shared);
        job(0);
        drop(wait);
        if let Some(payload) = lock(&shared.panic).take() {
            resume_unwind(payload);
        }
    }

    /// [`Workers::run`] for a job that can fail: returns the error of the lowest failing share.
    pub(crate) fn try_run<X: Send>(
        &mut self,
        shares: usize,
        job: &(dyn Fn(usize) -> std::result::Result<(), X> + Sync),
    ) -> std::result::Result<(), X> {
        let first_error: Mutex<Option<(usize, X)>> = Mutex::new(None);
        self.run(shares, &|share| {
            if let Err(e) = job(share) {
                let mut first = lock(&first_error);
                if first.as_ref().is_none_or(|(s, _)| share < *s) {
                    *first = Some((share, e));
                }
            }
        });
        first_error.into_inner().unwrap_or_else(PoisonError::into_inner).map_or(Ok(()), |(_, e)| Err(e))
    }

    /// Runs `job(share, &mut state[share])` for every share in `0..state.len()`. Returns the
    /// error of the lowest failing share.
    pub(crate) fn for_each<S: Send, X: Send>(
        &mut self,
        state: &mut [S],
        job: &(dyn Fn(usize, &mut S) -> std::result::Result<(), X> + Sync),
    ) -> std::result::Result<(), X> {
        let (shares, state) = (state.len(), Parts(state.as_mut_ptr()));
        // SAFETY: `run` calls each share exactly once, so share `i` is the only holder of
        // `state[i]`, which is in bounds and outlives `run`.
        self.try_run(shares, &|share| job(share, unsafe { &mut *state.at(share) }))
    }

    /// Runs `job(share, &mut state[share], part)` for every share, where the parts cut `out` at
    /// `ends` (share `i` gets `out[ends[i − 1]..ends[i]]`, share 0 from the start) and there are
    /// `ends.len()` shares. Returns the error of the lowest failing share.
    pub(crate) fn split<S: Send, T: Send, X: Send>(
        &mut self,
        state: &mut [S],
        out: &mut [T],
        ends: &[usize],
        job: &SplitJob<'_, S, T, X>,
    ) -> std::result::Result<(), X> {
        assert!(state.len() >= ends.len(), "{} states for {} shares", state.len(), ends.len());
        assert!(
            ends.iter().try_fold(0, |start, &end| (start <= end).then_some(end)).is_some_and(|last| last <= out.len()),
            "ends {ends:?} do not cut {} values into consecutive parts",
            out.len()
        );
        let (state, out) = (Parts(state.as_mut_ptr()), Parts(out.as_mut_ptr()));
        self.try_run(ends.len(), &|share| {
            let range = part(ends, share);
            // SAFETY: `run` calls each share exactly once, so share `i` is the only holder of
            // `state[i]` and of its part of `out`; the parts are disjoint and in bounds (checked
            // above), and both slices outlive `run`.
            let (state, part) =
                unsafe { (&mut *state.at(share), std::slice::from_raw_parts_mut(out.at(range.start), range.len())) };
            job(share, state, part)
        })
    }
}

/// The part of share `s` among consecutive parts that end at `ends` (the first starts at 0),
/// as [`Workers::split`] cuts its output.
pub(crate) fn part(ends: &[usize], s: usize) -> std::ops::Range<usize> {
    let start = if s == 0 { 0 } else { ends[s - 1] };
    start..ends[s]
}

/// A base pointer that the shares of [`Workers::split`] offset to their own disjoint parts.
struct Parts<T>(*mut T);

impl<T> Parts<T> {
    fn at(&self, offset: usize) -> *mut T {
        self.0.wrapping_add(offset)
    }
}

// SAFETY: shares only reach disjoint elements through it (see `Workers::split`), and `T: Send`
// lets each element be used from the share's thread.
unsafe impl<T: Send> Sync for Parts<T> {}

impl Drop for Workers {
    fn drop(&mut self) {
        if self.process != std::process::id() {
            // A forked child: the threads are the parent's, and their state may be mid-job.
            std::mem::forget(std::mem::take(&mut self.threads));
            return;
        }
        if let Some(shared) = &self.shared {
            let mut slot = lock(&shared.slot);
            slot.stop = true;
            slot.generation += 1;
            shared.generation.store(slot.generation, Ordering::Release);
            shared.wake.notify_all();
        }
        for thread in self.threads.drain(..) {
            // A worker catches its shares' panics, so joining cannot fail but by a bug.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    #[test]
    fn every_share_runs_once_per_job() {
        for width in [1, 2, 3, 5] {
            let mut workers = Workers::new(width).unwrap();
            assert_eq!(workers.width(), width);
            let runs: Vec<AtomicUsize> = (0..width).map(|_| AtomicUsize::new(0)).collect();
            for round in 0..200 {
                let shares = round % (width + 1);
                workers.run(shares, &|share| {
                    runs[share].fetch_add(1, Ordering::Relaxed);
                });
            }
            for (share, runs) in runs.iter().enumerate() {
                let expected = (0..200).filter(|round| share < round % (width + 1)).count();
                assert_eq!(runs.load(Ordering::Relaxed), expected, "width {width}, share {share}");
            }
        }
    }

    #[test]
    fn parked_workers_wake_for_the_next_job() {
        let mut workers = Workers::new(3).unwrap();
        let sum = AtomicUsize::new(0);
        for _ in 0..3 {
            std::thread::sleep(SPIN * 20);
            workers.run(3, &|share| {
                sum.fetch_add(share + 1, Ordering::Relaxed);
            });
        }
        assert_eq!(sum.load(Ordering::Relaxed), 3 * 6);
    }

    #[test]
    fn split_hands_each_share_its_part_and_state() {
        let mut workers = Workers::new(4).unwrap();
        let mut out = vec![0usize; 10];
        let mut state = vec![0usize; 4];
        let ends = [3, 3, 7, 10];
        let result: std::result::Result<(), ()> = workers.split(&mut state, &mut out, &ends, &|share, state, part| {
            *state = part.len();
            part.fill(share);
            Ok(())
        });
        assert_eq!(result, Ok(()));
        assert_eq!(out, [0, 0, 0, 2, 2, 2, 2, 3, 3, 3]);
        assert_eq!(state, [3, 0, 4, 3]);
    }

    #[test]
    fn split_returns_the_lowest_failing_share() {
        let mut workers = Workers::new(3).unwrap();
        let result = workers.split(&mut [(); 3], &mut [0u8; 6], &[2, 4, 6], &|share, _, _| {
            if share == 0 {
                Ok(())
            } else {
                Err(share)
            }
        });
        assert_eq!(result, Err(1));
    }

    #[test]
    fn a_panicking_share_panics_the_caller_and_the_workers_carry_on() {
        let mut workers = Workers::new(2).unwrap();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            workers.run(2, &|share| assert!(share != 1, "share 1 fails"));
        }));
        assert!(caught.is_err());
        let sum = AtomicUsize::new(0);
        workers.run(2, &|share| {
            sum.fetch_add(share + 1, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 3);
    }

    #[test]
    #[should_panic(expected = "do not cut")]
    fn split_refuses_ends_past_the_output() {
        let _ = Workers::inline().split(&mut [(); 2], &mut [0u8; 3], &[2, 4], &|_, _, _| Ok::<(), ()>(()));
    }
}
