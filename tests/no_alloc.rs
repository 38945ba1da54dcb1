//! Steady-state calls allocate nothing: a session's scratch grows to the largest batch seen and
//! is then reused (issue 3: "no heap allocation per call in steady state"), and its worker
//! threads are started once, with it. A counting global allocator counts every thread's
//! allocations around repeated calls. The file is its own program (`harness = false`): under
//! libtest, other tests, or the harness's own "running for over 60 seconds" notice, would
//! allocate meanwhile.

use rrra::{
    Adapter, AdapterConfig, AdapterWeights, Batch, Candidates, Corpus, CpuKernel, EngineKind, EnginePreference,
    Precision, RerankOutputs, ResampleOutputs, ResampleRequest, ScoreOptions, Session, SessionOptions, Similarity,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

struct CountingAllocator;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

fn count() {
    ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
    ALLOCATIONS.load(Ordering::SeqCst)
}

/// Runs repeated rerank and resample calls (dense and by-id, f32 and f16/bf16 rows, both similarities; several lists,
/// one short list, one long list) on `engine` with `threads` threads and returns how many
/// allocations the steady-state calls made, on any thread.
fn steady_state_allocations(
    engine: EngineKind,
    cpu_kernel: Option<CpuKernel>,
    precision: Precision,
    threads: usize,
) -> Option<usize> {
    // h spans several panels of every kernel, so that a short list is shared between threads.
    let (d, h) = (24, 70);
    // The 700-candidate list is longer than a block of the folded engine at this d.
    let lists: [&[usize]; 3] = [&[5, 0, 300, 1, 700], &[100], &[700]];
    let most = 1006;
    let mut rng = rrra::sampler::SplitMix64::new(5);
    let mut values = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.next_symmetric(0.3)).collect() };
    let (queries, rows, base) = (values(5 * d), values(most * d), values(most));
    let corpus = Corpus::new(&rows, most, d, d).unwrap();
    // The same rows stored as f16 and bf16, which the engines widen as they read them.
    let half_queries: Vec<half::f16> = queries.iter().map(|&x| half::f16::from_f32(x)).collect();
    let half_rows: Vec<half::f16> = rows.iter().map(|&x| half::f16::from_f32(x)).collect();
    let brain_rows: Vec<half::bf16> = rows.iter().map(|&x| half::bf16::from_f32(x)).collect();
    let brain_corpus = Corpus::new(&brain_rows, most, d, d).unwrap();
    let ids: Vec<u64> = (0..most as u64).rev().collect();
    let mask: Vec<u8> = (0..most).map(|i| (i % 7 == 0) as u8).collect();
    let (mut log_s_rr, mut s_a, mut s_fn, mut probs, mut order) =
        (vec![0.0; most], vec![0.0; most], vec![0.0; most], vec![0.0; 4 * most], vec![0u32; most]);
    let (mut log_s_rs, mut samples, mut sample_counts) = (vec![0.0; most], vec![0u32; 5 * 3], vec![0u32; 5]);
    let mut allocated = 0;

    for similarity in [Similarity::Dot, Similarity::Cosine] {
        let config = AdapterConfig { similarity, ..AdapterConfig::default() };
        let adapter = Arc::new(Adapter::new(AdapterWeights::random(d, h, 9), config).unwrap());
        let options = SessionOptions { engine: EnginePreference::Force(engine), threads, cpu_kernel, precision };
        // A precision this CPU lacks: nothing to measure.
        let mut session = Session::new(adapter.clone(), options).ok()?;
        let batches: Vec<Batch<'_>> = lists
            .iter()
            .flat_map(|&counts| {
                let (n, total) = (counts.len(), counts.iter().sum::<usize>());
                [
                    Batch::dense(d, &queries[..n * d], counts, &rows[..total * d]).with_base_scores(&base[..total]),
                    Batch {
                        dim: d,
                        queries: queries[..n * d].into(),
                        candidate_counts: counts,
                        candidates: Candidates::ById { corpus: &corpus, ids: &ids[..total] },
                        base_scores: None,
                    },
                    Batch::dense(d, &half_queries[..n * d], counts, &half_rows[..total * d]),
                    Batch {
                        dim: d,
                        queries: half_queries[..n * d].into(),
                        candidate_counts: counts,
                        candidates: Candidates::ById { corpus: &brain_corpus, ids: &ids[..total] },
                        base_scores: None,
                    },
                ]
            })
            .collect();
        let mut run = |session: &mut Session| {
            for batch in &batches {
                let (n, total) = (batch.candidate_counts.len(), batch.candidate_counts.iter().sum::<usize>());
                let mut out = RerankOutputs {
                    log_s_rr: Some(&mut log_s_rr[..total]),
                    s_a: Some(&mut s_a[..total]),
                    s_fn: Some(&mut s_fn[..total]),
                    class_probs: Some(&mut probs[..4 * total]),
                    order: Some(&mut order[..total]),
                };
                session.rerank_into(batch, &ScoreOptions::default(), &mut out).unwrap();
                let request = ResampleRequest {
                    samples_per_query: 3,
                    seed: 1,
                    first_query_index: 0,
                    positive_mask: Some(&mask[..total]),
                };
                let mut out = ResampleOutputs {
                    log_s_rs: Some(&mut log_s_rs[..total]),
                    s_fn: Some(&mut s_fn[..total]),
                    samples: Some(&mut samples[..n * 3]),
                    sample_counts: Some(&mut sample_counts[..n]),
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
    Some(allocated)
}

fn main() {
    for threads in [1, 2] {
        let reference = steady_state_allocations(EngineKind::Reference, None, Precision::F32, threads);
        assert_eq!(reference, Some(0), "reference engine, {threads} threads");
        for kernel in CpuKernel::ALL.into_iter().filter(|k| k.is_available()) {
            let folded = steady_state_allocations(EngineKind::Folded, Some(kernel), Precision::F32, threads);
            assert_eq!(folded, Some(0), "{kernel:?}, {threads} threads");
        }
        match steady_state_allocations(EngineKind::Folded, None, Precision::F16, threads) {
            Some(n) => assert_eq!(n, 0, "f16 precision, {threads} threads"),
            None => println!("f16 precision: not available on this CPU"),
        }
    }
    println!("no_alloc: steady-state calls allocated nothing");
}
