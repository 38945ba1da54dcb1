//! A session: one adapter, one engine, and the scratch memory that makes repeated calls
//! allocation-free. Use a session from one thread at a time; share the adapter instead.

use crate::batch::Batch;
use crate::engine::{self, CpuKernel, Engine, EngineKind, EnginePreference, EngineRequest, PairRaw, Precision};
use crate::error::{Error, Result};
use crate::model::Adapter;
use crate::sampler;
use crate::scores::{self, ScoreOptions, ScoreParams};
use crate::workers::{self, Workers};
use std::sync::Arc;

/// More threads than any machine this runs on has cores; a larger count is a caller bug
/// (an uninitialised field, say), refused rather than allocated for.
pub const MAX_THREADS: usize = 1024;

/// How a session is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionOptions {
    pub engine: EnginePreference,
    /// Threads a call may use (at least 1). A batch's queries are split between them, and so
    /// is one list's work: a long list's candidates, or a short list's hidden units (two
    /// threads at most). Results are bit-identical whatever the count.
    /// The default is 1: search engines run their own thread pools, and a library that starts
    /// threads behind their back oversubscribes the machine. The session starts `threads − 1`
    /// threads of its own and keeps them parked between calls; after a call they spin for
    /// about 100 µs before parking, in case another call follows. In a child forked after
    /// that, calls run on the calling thread alone.
    pub threads: usize,
    /// The instruction set of the folded engine's kernels; `None` (the default) picks the best
    /// this CPU has. Forcing one the CPU lacks is an [`crate::ErrorKind::Unsupported`] error.
    pub cpu_kernel: Option<CpuKernel>,
    /// The arithmetic: [`Precision::F32`] (the default), or a reduced precision within SPEC §6's
    /// reduced-precision tolerance: f16 on the folded engine (a CPU with AVX512-FP16) or the
    /// CUDA engine, bf16 on the CUDA engine only. A precision the chosen engine lacks is an
    /// [`crate::ErrorKind::Unsupported`] error (the reference engine: InvalidArgument).
    pub precision: Precision,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions { engine: EnginePreference::Auto, threads: 1, cpu_kernel: None, precision: Precision::F32 }
    }
}

/// Caller buffers for [`Session::rerank_into`]; `None` skips that output.
/// Per-candidate buffers hold exactly the batch's total candidate count (4 × for `class_probs`).
#[derive(Debug, Default)]
pub struct RerankOutputs<'a> {
    /// `log s_RR` (SPEC §4).
    pub log_s_rr: Option<&'a mut [f32]>,
    /// `s_A`, the adapter relevance in (0, 1).
    pub s_a: Option<&'a mut [f32]>,
    /// `s_FN`, the false-negative probability.
    pub s_fn: Option<&'a mut [f32]>,
    /// `(p_TP, p_FN, p_FP, p_TN)` per candidate.
    pub class_probs: Option<&'a mut [f32]>,
    /// Per query, the positions `0..k` of its list in reranked order (best first).
    pub order: Option<&'a mut [u32]>,
}

/// Owned results of [`Session::rerank`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reranked {
    pub log_s_rr: Vec<f32>,
    pub s_a: Vec<f32>,
    pub s_fn: Vec<f32>,
    pub class_probs: Vec<f32>,
    pub order: Vec<u32>,
}

/// What to draw in [`Session::resample_into`].
#[derive(Clone, Copy, Debug, Default)]
pub struct ResampleRequest<'a> {
    /// Negatives to draw per query.
    pub samples_per_query: usize,
    pub seed: u64,
    /// The sampler's query index of the batch's first query (SPEC §5), so that a data set split
    /// into batches draws what it would draw in one call.
    pub first_query_index: u64,
    /// Nonzero marks a labelled positive, never drawn; one entry per candidate.
    pub positive_mask: Option<&'a [u8]>,
}

/// Caller buffers for [`Session::resample_into`]; `None` skips that output.
#[derive(Debug, Default)]
pub struct ResampleOutputs<'a> {
    /// `log s_RS` per candidate (SPEC §4); the sampler draws from exactly these f32 values.
    pub log_s_rs: Option<&'a mut [f32]>,
    pub s_fn: Option<&'a mut [f32]>,
    /// `samples_per_query` slots per query: drawn positions first, then [`sampler::NOT_DRAWN`].
    pub samples: Option<&'a mut [u32]>,
    /// Negatives actually drawn per query.
    pub sample_counts: Option<&'a mut [u32]>,
}

/// Owned results of [`Session::resample`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Resampled {
    pub log_s_rs: Vec<f32>,
    pub s_fn: Vec<f32>,
    pub samples: Vec<u32>,
    pub sample_counts: Vec<u32>,
}

/// Scratch that grows to the largest batch seen and is then reused.
#[derive(Default)]
struct Scratch {
    raw: Vec<PairRaw>,
    log_base: Vec<f64>,
    score: Vec<f64>,
    score_f32: Vec<f32>,
    order: Vec<u32>,
    keys: Vec<(f64, u32)>,
    samples: Vec<u32>,
    counts: Vec<u32>,
    /// Where each thread's share of a batch ends, in queries and in candidates.
    query_ends: Vec<usize>,
    candidate_ends: Vec<usize>,
}

pub struct Session {
    adapter: Arc<Adapter>,
    /// One engine per thread.
    engines: Vec<Box<dyn Engine>>,
    workers: Workers,
    engine_reason: String,
    scratch: Scratch,
}

fn check_len(name: &str, buffer: &Option<&mut [impl Sized]>, want: usize) -> Result<()> {
    match buffer {
        Some(b) if b.len() != want => {
            Err(Error::invalid_argument(format!("{name}: expected a buffer of {want} values, got {}", b.len())))
        }
        _ => Ok(()),
    }
}

/// Runs the engines over the batch: with several lists to score, its queries are split into
/// one contiguous share per engine with about equal candidate counts; a single list is left to
/// the first engine, which may share it with the workers.
fn run_engines(
    engines: &mut [Box<dyn Engine>],
    workers: &mut Workers,
    scratch: &mut Scratch,
    adapter: &Adapter,
    batch: &Batch<'_>,
) -> Result<()> {
    let out = &mut scratch.raw;
    let total = out.len();
    let busy = engines.len().min(batch.candidate_counts.iter().filter(|&&k| k > 0).count());
    if busy <= 1 {
        return engines[0].forward(adapter, batch, 0, out, workers);
    }
    let (query_ends, candidate_ends) = (&mut scratch.query_ends, &mut scratch.candidate_ends);
    query_ends.clear();
    candidate_ends.clear();
    let (mut query, mut candidate) = (0, 0);
    for share in 0..busy {
        // This share ends at the first query boundary past its fraction of the candidates.
        let target = total * (share + 1) / busy;
        while query < batch.query_count() && (candidate < target || share + 1 == busy) {
            candidate += batch.candidate_counts[query];
            query += 1;
        }
        query_ends.push(query);
        candidate_ends.push(candidate);
    }
    let (query_ends, candidate_ends) = (&*query_ends, &*candidate_ends);
    workers.split(engines, out, candidate_ends, &|share, engine, part| {
        let queries = workers::part(query_ends, share);
        let sub = batch.slice(queries.clone(), workers::part(candidate_ends, share));
        engine.forward(adapter, &sub, queries.start, part, &mut Workers::inline())
    })
}

/// Fewest candidate values worth checking on a thread of their own.
const MIN_VALUES_PER_CHECK: usize = 1 << 16;

/// Checks the batch's `total` candidates and base scores for NaN and ±Inf, split between the
/// workers: this is the first pass over the candidates, and often the first time they are
/// read from memory, so one thread alone would wait on memory for all of them.
fn check_candidates(workers: &mut Workers, batch: &Batch<'_>, total: usize) -> Result<()> {
    let shares = workers.width().min(total.saturating_mul(batch.dim) / MIN_VALUES_PER_CHECK).max(1);
    workers.try_run(shares, &|s| batch.check_finite_candidates(total * s / shares..total * (s + 1) / shares))
}

/// Checks the inputs for NaN and ±Inf before the engines run: only the base scores when the
/// engines check the candidates as they read them (which saves a pass over the candidates, on
/// one thread about 5 % of a long list's time), else the candidates too.
fn check_before_engines(engine: &dyn Engine, workers: &mut Workers, batch: &Batch<'_>, total: usize) -> Result<()> {
    if engine.checks_candidates() && batch.base_scores_finite() {
        return Ok(());
    }
    check_candidates(workers, batch, total)
}

/// A numeric failure at batch-wide candidate `i`, located for the caller.
fn numeric_error(batch: &Batch<'_>, i: usize, what: &str) -> Error {
    let (query, position) = batch.locate(i);
    Error::new(crate::ErrorKind::Numeric, format!("{what} at query {query}, position {position}"))
}

fn copy_out<T: Copy>(dst: &mut Option<&mut [T]>, src: &[T]) {
    if let Some(dst) = dst {
        dst.copy_from_slice(src);
    }
}

impl Session {
    pub fn new(adapter: Arc<Adapter>, options: SessionOptions) -> Result<Session> {
        if !(1..=MAX_THREADS).contains(&options.threads) {
            return Err(Error::invalid_argument(format!(
                "threads: expected 1 to {MAX_THREADS}, got {}",
                options.threads
            )));
        }
        let request = EngineRequest {
            preference: options.engine,
            kernel: options.cpu_kernel,
            precision: options.precision,
            threads: options.threads,
        };
        let (engines, engine_reason) = engine::select(&adapter, request)?;
        let workers = Workers::new(options.threads)?;
        Ok(Session { adapter, engines, workers, engine_reason, scratch: Scratch::default() })
    }

    pub fn adapter(&self) -> &Arc<Adapter> {
        &self.adapter
    }
    pub fn engine(&self) -> EngineKind {
        self.engines[0].kind()
    }
    /// The instruction set of the engine's kernels (`None` for the reference engine).
    pub fn cpu_kernel(&self) -> Option<CpuKernel> {
        self.engines[0].cpu_kernel()
    }
    /// The arithmetic the engine computes in.
    pub fn precision(&self) -> Precision {
        self.engines[0].precision()
    }
    /// Threads a call may use.
    pub fn threads(&self) -> usize {
        self.engines.len()
    }
    /// Why this engine was chosen, and why the others were not.
    pub fn engine_reason(&self) -> &str {
        &self.engine_reason
    }

    /// Runs the engine over a validated batch of `total` candidates and computes `log s_B`
    /// per candidate into scratch.
    fn forward(&mut self, batch: &Batch<'_>, params: &ScoreParams, total: usize) -> Result<()> {
        let s = &mut self.scratch;
        s.raw.clear();
        s.raw.resize(total, PairRaw::default());
        if let Err(failure) = run_engines(&mut self.engines, &mut self.workers, s, &self.adapter, batch) {
            // An engine that checks candidates as it reads them stops at the first bad one of its
            // share; the whole check names the batch's first bad input, as it would have up front.
            if self.engines[0].checks_candidates() {
                check_candidates(&mut self.workers, batch, total)?;
            }
            return Err(failure);
        }
        if let Some(i) = s.raw.iter().position(|r| {
            !(r.sim_adapted.is_finite() && r.sim_candidate.is_finite() && r.logits.iter().all(|l| l.is_finite()))
        }) {
            return Err(numeric_error(batch, i, "the forward pass overflowed f32 (inputs or weights too large)"));
        }
        s.log_base.clear();
        s.log_base.resize(total, 0.0);
        let mut start = 0;
        for (query, &k) in batch.candidate_counts.iter().enumerate() {
            let range = start..start + k;
            scores::log_base_scores(
                params,
                batch.base_scores.map(|b| &b[range.clone()]),
                &s.raw[range.clone()],
                query,
                &mut s.log_base[range],
            )?;
            start += k;
        }
        Ok(())
    }

    /// Reranks every query of the batch (SPEC §3–§4) into the caller's buffers.
    /// On error nothing is written.
    pub fn rerank_into(
        &mut self,
        batch: &Batch<'_>,
        options: &ScoreOptions,
        out: &mut RerankOutputs<'_>,
    ) -> Result<()> {
        let params = ScoreParams::resolve(self.adapter.config(), options)?;
        let total = batch.validate(self.adapter.dim())?;
        check_before_engines(&*self.engines[0], &mut self.workers, batch, total)?;
        check_len("log_s_rr", &out.log_s_rr, total)?;
        check_len("s_a", &out.s_a, total)?;
        check_len("s_fn", &out.s_fn, total)?;
        check_len("class_probs", &out.class_probs, 4 * total)?;
        check_len("order", &out.order, total)?;
        self.forward(batch, &params, total)?;

        let s = &mut self.scratch;
        s.score.clear();
        s.score.extend(
            s.raw
                .iter()
                .zip(&s.log_base)
                .map(|(raw, log_b)| log_b + params.lambda_rr * scores::log_adapter_score(&params, raw)),
        );
        // Checked as the f32 the caller receives: a finite f64 may still overflow f32.
        if let Some(i) = s.score.iter().position(|&x| !(x as f32).is_finite()) {
            return Err(numeric_error(batch, i, "log s_RR is not finite"));
        }
        s.order.clear();
        s.order.resize(total, 0);
        let mut start = 0;
        for &k in batch.candidate_counts {
            scores::stable_order(&s.score[start..start + k], &mut s.order[start..start + k]);
            start += k;
        }

        // Success is certain from here on: write the caller's buffers.
        copy_out(&mut out.order, &s.order);
        if let Some(dst) = &mut out.log_s_rr {
            for (d, v) in dst.iter_mut().zip(&s.score) {
                *d = *v as f32;
            }
        }
        for (i, raw) in s.raw.iter().enumerate() {
            if let Some(dst) = &mut out.s_a {
                dst[i] = scores::log_adapter_score(&params, raw).exp() as f32;
            }
            if out.s_fn.is_some() || out.class_probs.is_some() {
                let (p, _) = scores::classify(raw.logits);
                if let Some(dst) = &mut out.s_fn {
                    dst[i] = p[1] as f32;
                }
                if let Some(dst) = &mut out.class_probs {
                    for (d, v) in dst[4 * i..4 * i + 4].iter_mut().zip(p) {
                        *d = v as f32;
                    }
                }
            }
        }
        Ok(())
    }

    /// [`Session::rerank_into`] with every output, into fresh vectors.
    pub fn rerank(&mut self, batch: &Batch<'_>, options: &ScoreOptions) -> Result<Reranked> {
        let total = batch.total_candidates()?;
        let mut r = Reranked {
            log_s_rr: vec![0.0; total],
            s_a: vec![0.0; total],
            s_fn: vec![0.0; total],
            class_probs: vec![0.0; 4 * total],
            order: vec![0; total],
        };
        self.rerank_into(
            batch,
            options,
            &mut RerankOutputs {
                log_s_rr: Some(&mut r.log_s_rr),
                s_a: Some(&mut r.s_a),
                s_fn: Some(&mut r.s_fn),
                class_probs: Some(&mut r.class_probs),
                order: Some(&mut r.order),
            },
        )?;
        Ok(r)
    }

    /// Computes `log s_RS` and draws negatives for every query of the batch (SPEC §4–§5).
    /// On error nothing is written.
    pub fn resample_into(
        &mut self,
        batch: &Batch<'_>,
        options: &ScoreOptions,
        request: &ResampleRequest<'_>,
        out: &mut ResampleOutputs<'_>,
    ) -> Result<()> {
        let params = ScoreParams::resolve(self.adapter.config(), options)?;
        let total = batch.validate(self.adapter.dim())?;
        check_before_engines(&*self.engines[0], &mut self.workers, batch, total)?;
        let n_queries = batch.query_count();
        let n = request.samples_per_query;
        if n > u32::MAX as usize {
            return Err(Error::invalid_argument(format!("samples_per_query: {n} exceeds 2^32 - 1")));
        }
        let slots = n_queries.checked_mul(n).ok_or_else(|| {
            Error::invalid_argument(format!("samples_per_query: {n_queries} queries × {n} overflows"))
        })?;
        if let Some(mask) = request.positive_mask {
            if mask.len() != total {
                return Err(Error::invalid_argument(format!(
                    "positive_mask: expected {total} entries (the sum of candidate_counts), got {}",
                    mask.len()
                )));
            }
        }
        check_len("log_s_rs", &out.log_s_rs, total)?;
        check_len("s_fn", &out.s_fn, total)?;
        check_len("samples", &out.samples, slots)?;
        check_len("sample_counts", &out.sample_counts, n_queries)?;
        self.forward(batch, &params, total)?;

        let s = &mut self.scratch;
        s.score_f32.clear();
        for (raw, log_b) in s.raw.iter().zip(&s.log_base) {
            let (_, log_not_fn) = scores::classify(raw.logits);
            // γ = 0 must give exactly log s_B even where log(1 − s_FN) = −∞.
            let penalty = if params.gamma_rs == 0.0 { 0.0 } else { params.gamma_rs * log_not_fn };
            s.score_f32.push((log_b + penalty) as f32);
        }
        if let Some(i) = s.score_f32.iter().position(|x| !x.is_finite()) {
            return Err(numeric_error(batch, i, "log s_RS is not finite"));
        }
        // Scratch keeps min(n, k) slots per query: a query cannot yield more draws than it has
        // candidates, so a huge `samples_per_query` costs nothing until it is written out.
        s.samples.clear();
        s.counts.clear();
        let mut start = 0;
        for (q, &k) in batch.candidate_counts.iter().enumerate() {
            let slots_here = n.min(k);
            let first = s.samples.len();
            s.samples.resize(first + slots_here, sampler::NOT_DRAWN);
            let drawn = sampler::sample_with_scratch(
                &s.score_f32[start..start + k],
                request.positive_mask.map(|m| &m[start..start + k]),
                request.seed,
                request.first_query_index.wrapping_add(q as u64),
                &mut s.samples[first..],
                &mut s.keys,
            )?;
            s.counts.push(drawn as u32);
            start += k;
        }

        // Success is certain from here on: write the caller's buffers.
        copy_out(&mut out.log_s_rs, &s.score_f32);
        if let Some(dst) = &mut out.samples {
            let mut first = 0;
            for (q, &k) in batch.candidate_counts.iter().enumerate() {
                let here = n.min(k);
                dst[q * n..q * n + here].copy_from_slice(&s.samples[first..first + here]);
                dst[q * n + here..(q + 1) * n].fill(sampler::NOT_DRAWN);
                first += here;
            }
        }
        copy_out(&mut out.sample_counts, &s.counts);
        if let Some(dst) = &mut out.s_fn {
            for (d, raw) in dst.iter_mut().zip(&s.raw) {
                *d = scores::classify(raw.logits).0[1] as f32;
            }
        }
        Ok(())
    }

    /// [`Session::resample_into`] with every output, into fresh vectors.
    pub fn resample(
        &mut self,
        batch: &Batch<'_>,
        options: &ScoreOptions,
        request: &ResampleRequest<'_>,
    ) -> Result<Resampled> {
        let total = batch.total_candidates()?;
        let n_queries = batch.query_count();
        let n = request.samples_per_query;
        // The caller asked for n slots per query; refuse, rather than abort, if that cannot fit.
        let mut samples = Vec::new();
        n_queries
            .checked_mul(n)
            .filter(|&slots| slots <= isize::MAX as usize / 4)
            .and_then(|slots| samples.try_reserve_exact(slots).ok().map(|_| samples.resize(slots, 0)))
            .ok_or_else(|| {
                Error::invalid_argument(format!(
                    "samples_per_query: {n_queries} queries × {n} slots do not fit in memory"
                ))
            })?;
        let mut r = Resampled {
            log_s_rs: vec![0.0; total],
            s_fn: vec![0.0; total],
            samples,
            sample_counts: vec![0; n_queries],
        };
        self.resample_into(
            batch,
            options,
            request,
            &mut ResampleOutputs {
                log_s_rs: Some(&mut r.log_s_rs),
                s_fn: Some(&mut r.s_fn),
                samples: Some(&mut r.samples),
                sample_counts: Some(&mut r.sample_counts),
            },
        )?;
        Ok(r)
    }
}
