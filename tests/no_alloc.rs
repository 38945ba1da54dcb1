//! Steady-state calls allocate nothing: a session's scratch grows to the largest batch seen and
//! is then reused (issue 3: "no heap allocation per call in steady state"). A counting global
//! allocator counts this thread's allocations around repeated single-threaded calls.

use rrra::{
    Adapter, AdapterConfig, AdapterWeights, Batch, Candidates, Corpus, CpuKernel, EngineKind, EnginePreference,
    RerankOutputs, ResampleOutputs, ResampleRequest, ScoreOptions, Session, SessionOptions, Similarity,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

struct CountingAllocator;

thread_local! {
    // Const-initialised, so reading it inside the allocator never allocates.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; counting has no effect on it.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

fn allocations() -> usize {
    ALLOCATIONS.with(Cell::get)
}

/// Runs repeated single-threaded rerank and resample calls (dense and by-id, both similarities)
/// on `engine` and returns how many allocations the steady-state calls made.
fn steady_state_allocations(engine: EngineKind, cpu_kernel: Option<CpuKernel>) -> usize {
    let (d, h) = (24, 16);
    // The 700-candidate list is longer than a block of the folded engine at this d.
    let counts = [5, 0, 300, 1, 700];
    let total: usize = counts.iter().sum();
    let mut rng = rrra::sampler::SplitMix64::new(5);
    let mut values = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.next_symmetric(0.3)).collect() };
    let (queries, rows, base) = (values(counts.len() * d), values(total * d), values(total));
    let corpus = Corpus::new(&rows, total, d, d).unwrap();
    let ids: Vec<u64> = (0..total as u64).rev().collect();
    let mask: Vec<u8> = (0..total).map(|i| (i % 7 == 0) as u8).collect();
    let (mut log_s_rr, mut s_a, mut s_fn, mut probs, mut order) =
        (vec![0.0; total], vec![0.0; total], vec![0.0; total], vec![0.0; 4 * total], vec![0u32; total]);
    let (mut log_s_rs, mut samples, mut sample_counts) =
        (vec![0.0; total], vec![0u32; counts.len() * 3], vec![0u32; counts.len()]);
    let mut allocated = 0;

    for similarity in [Similarity::Dot, Similarity::Cosine] {
        let config = AdapterConfig { similarity, ..AdapterConfig::default() };
        let adapter = Arc::new(Adapter::new(AdapterWeights::random(d, h, 9), config).unwrap());
        {
            let options = SessionOptions {
                engine: EnginePreference::Force(engine),
                threads: 1,
                cpu_kernel,
                cuda_precision: None,
            };
            let mut session = Session::new(adapter.clone(), options).unwrap();
            let batches = [
                Batch::dense(d, &queries, &counts, &rows).with_base_scores(&base),
                Batch {
                    dim: d,
                    queries: &queries,
                    candidate_counts: &counts,
                    candidates: Candidates::ById { corpus: &corpus, ids: &ids },
                    base_scores: None,
                },
            ];
            let request =
                ResampleRequest { samples_per_query: 3, seed: 1, first_query_index: 0, positive_mask: Some(&mask) };
            let mut run = |session: &mut Session| {
                for batch in &batches {
                    let mut out = RerankOutputs {
                        log_s_rr: Some(&mut log_s_rr),
                        s_a: Some(&mut s_a),
                        s_fn: Some(&mut s_fn),
                        class_probs: Some(&mut probs),
                        order: Some(&mut order),
                    };
                    session.rerank_into(batch, &ScoreOptions::default(), &mut out).unwrap();
                    let mut out = ResampleOutputs {
                        log_s_rs: Some(&mut log_s_rs),
                        s_fn: Some(&mut s_fn),
                        samples: Some(&mut samples),
                        sample_counts: Some(&mut sample_counts),
                    };
                    session.resample_into(batch, &ScoreOptions::default(), &request, &mut out).unwrap();
                }
            };
            run(&mut session); // first calls size the scratch
            let before = allocations();
            for _ in 0..3 {
                run(&mut session);
            }
            allocated += allocations() - before;
        }
    }
    allocated
}

#[test]
fn reference_engine_calls_do_not_allocate() {
    assert_eq!(steady_state_allocations(EngineKind::Reference, None), 0);
}

#[test]
fn folded_engine_calls_do_not_allocate_on_any_kernel() {
    for kernel in CpuKernel::ALL.into_iter().filter(|k| k.is_available()) {
        assert_eq!(steady_state_allocations(EngineKind::Folded, Some(kernel)), 0, "{kernel:?}");
    }
}
