//! Parity of every engine against an independent float64 evaluation of SPEC §3–§5.
//!
//! The reference (`tests/common/mod.rs`) shares no code with the crate; only the public API
//! produces the engine's results. Tolerances are SPEC §6's for f32 inputs on the f32 path.
//! Sampler known answers come from `tests/sampler_kat.py` (pure Python, re-runnable).

mod common;

use common::{
    erf, random_weights, ref_sample, score_query, Mismatches, NonPositiveBase, RawWeights, RefModel, RefParams,
    RefScore, RefSplitMix, TestRng,
};
use rrra::sampler::{sample_negatives, SplitMix64, NOT_DRAWN};
use rrra::{
    Activation, Adapter, AdapterConfig, AdapterWeights, BaseTransform, Batch, Candidates, Corpus, CpuKernel,
    EngineKind, EnginePreference, ErrorKind, Precision, RerankOutputs, Reranked, ResampleOutputs, ResampleRequest,
    Resampled, ScoreOptions, Session, SessionOptions, Similarity, Values, WeightDtype,
};
use std::sync::Arc;

// SPEC §6, f32 inputs on the f32 path.
fn log_score_tol(reference: f64) -> f64 {
    1e-4 * reference.abs().max(1.0)
}
const PROB_TOL: f64 = 1e-5;

const ACTIVATIONS: [Activation; 5] =
    [Activation::Relu, Activation::Gelu, Activation::GeluTanh, Activation::Silu, Activation::Tanh];
const SIMILARITIES: [Similarity; 2] = [Similarity::Dot, Similarity::Cosine];
const TRANSFORMS: [BaseTransform; 3] = [BaseTransform::Identity, BaseTransform::Sigmoid, BaseTransform::Softmax];
/// One engine under test: the reference engine, or the folded engine on one instruction set.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Engine {
    kind: EngineKind,
    kernel: Option<CpuKernel>,
}

impl Engine {
    fn options(self, threads: usize) -> SessionOptions {
        SessionOptions {
            engine: EnginePreference::Force(self.kind),
            threads,
            cpu_kernel: self.kernel,
            ..Default::default()
        }
    }
}

/// Every engine is held to the same reference, the folded one on every instruction set this CPU
/// has, the CUDA engine (f32) where the build has it and a GPU is present; each session forces one.
fn engines() -> Vec<Engine> {
    let folded = CpuKernel::ALL.into_iter().filter(|k| k.is_available());
    let cuda = cuda_available().then_some(Engine { kind: EngineKind::Cuda, kernel: None });
    std::iter::once(Engine { kind: EngineKind::Reference, kernel: None })
        .chain(folded.map(|k| Engine { kind: EngineKind::Folded, kernel: Some(k) }))
        .chain(cuda)
        .collect()
}

/// Whether a CUDA session opens here (tests/cuda_engine.rs says why not, when not).
fn cuda_available() -> bool {
    static AVAILABLE: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *AVAILABLE.get_or_init(|| {
        let adapter = Adapter::new(AdapterWeights::random(4, 3, 1), AdapterConfig::default()).expect("valid adapter");
        let options = SessionOptions { engine: EnginePreference::Force(EngineKind::Cuda), ..Default::default() };
        Session::new(Arc::new(adapter), options).is_ok()
    })
}

// =============================================================================================
// Fixtures: a random adapter and its f64 twin.
// =============================================================================================

struct Fixture {
    adapter: Arc<Adapter>,
    model: RefModel,
}

impl Fixture {
    /// [`random_weights`] under `config`.
    fn random(rng: &mut TestRng, d: usize, h: usize, config: AdapterConfig, classifier_gain: f64) -> Fixture {
        Fixture::from_weights(random_weights(rng, d, h, classifier_gain), config)
    }

    fn from_weights(w: AdapterWeights, config: AdapterConfig) -> Fixture {
        Fixture::from_adapter(Adapter::new(w, config).expect("valid adapter"))
    }

    /// The reference twin is built from the f32 values the adapter holds.
    fn from_adapter(adapter: Adapter) -> Fixture {
        let (w, config) = (adapter.weights(), adapter.config());
        let model = RefModel::new(w.dim, w.hidden, &RawWeights::of(w), config.activation, config.similarity);
        Fixture { adapter: Arc::new(adapter), model }
    }

    fn session(&self, engine: Engine) -> Session {
        let session = Session::new(self.adapter.clone(), engine.options(1)).expect("session");
        assert_eq!((session.engine(), session.cpu_kernel()), (engine.kind, engine.kernel));
        session
    }

    fn describe(&self) -> String {
        let c = self.adapter.config();
        format!(
            "d={} h={} act={:?} sim={:?} base={:?} adapter_mu={} adapter_tau={} base_mu={} base_tau={} λ={} γ={}",
            self.model.d,
            self.model.h,
            c.activation,
            c.similarity,
            c.base_transform,
            c.adapter_mu,
            c.adapter_tau,
            c.base_mu,
            c.base_tau,
            c.lambda_rr,
            c.gamma_rs
        )
    }
}

/// A plausible score configuration for the given labels.
fn random_config(
    rng: &mut TestRng,
    activation: Activation,
    similarity: Similarity,
    base: BaseTransform,
) -> AdapterConfig {
    let (adapter_mu, adapter_tau) = match similarity {
        Similarity::Dot => (rng.uniform(-0.5, 0.5), rng.pick(&[1.0, 0.5, 2.0])),
        Similarity::Cosine => (rng.uniform(0.0, 0.5), rng.pick(&[0.1, 0.25, 1.0])),
    };
    AdapterConfig {
        activation,
        similarity,
        adapter_mu,
        adapter_tau,
        base_transform: base,
        base_mu: rng.uniform(-0.5, 0.5),
        base_tau: rng.pick(&[1.0, 0.5, 0.1]),
        lambda_rr: rng.pick(&[1.0, 0.5, 2.0, 0.0]),
        gamma_rs: rng.pick(&[1.0, 0.0, 3.0]),
        ..AdapterConfig::default()
    }
}

// =============================================================================================
// Cases: the logical input, and the memory layouts that present it to the library.
// =============================================================================================

/// How embeddings are drawn.
#[derive(Clone, Copy, Debug)]
enum Embeddings {
    /// N(0, 1/d) per component: norms near 1.
    Normalised,
    /// N(0, scale²) per component.
    Scaled(f64),
    /// Positive components, so every `q·c` and cosine is clearly > 0 (identity transform on sim).
    Positive,
}

/// What the caller passes as base scores.
#[derive(Clone, Copy, Debug, PartialEq)]
enum BaseScores {
    Absent,
    /// Strictly positive (identity transform).
    Positive,
    /// Retriever-like logits, N(0, 2²).
    Logits,
}

/// One batch, independent of memory layout: candidate `i` is pool row `ids[i]`.
struct Case {
    d: usize,
    queries: Vec<f32>,
    counts: Vec<usize>,
    pool: Vec<f32>,
    ids: Vec<u64>,
    base: Option<Vec<f32>>,
}

fn random_rows(rng: &mut TestRng, rows: usize, d: usize, embeddings: Embeddings) -> Vec<f32> {
    let unit = 1.0 / (d as f64).sqrt();
    match embeddings {
        Embeddings::Normalised => rng.normal_vec(rows * d, unit),
        Embeddings::Scaled(scale) => rng.normal_vec(rows * d, scale),
        Embeddings::Positive => (0..rows * d).map(|_| ((rng.normal().abs() + 0.1) * unit) as f32).collect(),
    }
}

impl Case {
    /// Candidates come from a pool about half the batch's size, so ids repeat and arrive out of
    /// order. Base scores belong to pool rows, so a repeated row within one query is an exact tie.
    fn random(rng: &mut TestRng, d: usize, counts: &[usize], embeddings: Embeddings, base: BaseScores) -> Case {
        let total: usize = counts.iter().sum();
        let pool_rows = total / 2 + 1;
        let pool = random_rows(rng, pool_rows, d, embeddings);
        let queries = random_rows(rng, counts.len(), d, embeddings);
        let ids: Vec<u64> = (0..total).map(|_| rng.below(pool_rows) as u64).collect();
        let row_base: Vec<f32> = (0..pool_rows)
            .map(|_| match base {
                BaseScores::Positive => rng.uniform(0.02, 1.0) as f32,
                _ => (2.0 * rng.normal()) as f32,
            })
            .collect();
        let base = (base != BaseScores::Absent).then(|| ids.iter().map(|&id| row_base[id as usize]).collect());
        Case { d, queries, counts: counts.to_vec(), pool, ids, base }
    }

    fn total(&self) -> usize {
        self.ids.len()
    }
    fn query(&self, q: usize) -> &[f32] {
        &self.queries[q * self.d..(q + 1) * self.d]
    }
    fn candidate(&self, i: usize) -> &[f32] {
        let row = self.ids[i] as usize;
        &self.pool[row * self.d..(row + 1) * self.d]
    }
    /// Batch-wide index ranges of each query's list.
    fn ranges(&self) -> Vec<std::ops::Range<usize>> {
        let mut start = 0;
        self.counts
            .iter()
            .map(|&k| {
                start += k;
                start - k..start
            })
            .collect()
    }
    /// Queries `from..to` as a case of their own.
    fn slice(&self, from: usize, to: usize) -> Case {
        let ranges = self.ranges();
        let span = ranges[from].start..ranges[to - 1].end;
        Case {
            d: self.d,
            queries: self.queries[from * self.d..to * self.d].to_vec(),
            counts: self.counts[from..to].to_vec(),
            pool: self.pool.clone(),
            ids: self.ids[span.clone()].to_vec(),
            base: self.base.as_ref().map(|b| b[span].to_vec()),
        }
    }
    fn describe(&self) -> String {
        format!("counts={:?} base_scores={}", self.counts, if self.base.is_some() { "given" } else { "absent" })
    }
}

#[derive(Clone, Copy, Debug)]
enum Layout {
    /// Consecutive rows, `pad` extra NaN values after each row (stride = d + pad).
    Dense { pad: usize },
    /// Row ids into a shuffled corpus with NaN padding and NaN rows that no id names.
    ById { pad: usize, shuffle_seed: u64 },
}

const LAYOUTS: [Layout; 3] =
    [Layout::Dense { pad: 0 }, Layout::Dense { pad: 3 }, Layout::ById { pad: 2, shuffle_seed: 17 }];

/// Rows scattered into a NaN-filled matrix of stride `d + pad`, exactly as long as the rows need.
fn strided(rows: &[&[f32]], d: usize, pad: usize) -> Vec<f32> {
    let stride = d + pad;
    let len = if rows.is_empty() { 0 } else { (rows.len() - 1) * stride + d };
    let mut data = vec![f32::NAN; len];
    for (r, row) in rows.iter().enumerate() {
        data[r * stride..r * stride + d].copy_from_slice(row);
    }
    data
}

/// Presents `case` to the library in `layout` and runs `f` on the batch.
fn with_batch<R>(case: &Case, layout: Layout, f: impl FnOnce(&Batch<'_>) -> R) -> R {
    with_stored_batch(case, layout, Stored::F32, Stored::F32, f)
}

/// How a test stores embeddings for the library: f32, or converted to f16 or bf16 (round to
/// nearest; a value the type represents exactly stays the same).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Stored {
    F32,
    F16,
    Bf16,
}

/// Embedding values stored as a [`Stored`] type, lent to the library as [`Values`].
enum StoredValues {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    Bf16(Vec<half::bf16>),
}

impl Stored {
    fn store(self, v: &[f32]) -> StoredValues {
        match self {
            Stored::F32 => StoredValues::F32(v.to_vec()),
            Stored::F16 => StoredValues::F16(v.iter().map(|&x| half::f16::from_f32(x)).collect()),
            Stored::Bf16 => StoredValues::Bf16(v.iter().map(|&x| half::bf16::from_f32(x)).collect()),
        }
    }
    /// `v` rounded to this type and back.
    fn round(self, v: &[f32]) -> Vec<f32> {
        match self.store(v) {
            StoredValues::F32(v) => v,
            StoredValues::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            StoredValues::Bf16(v) => v.iter().map(|x| x.to_f32()).collect(),
        }
    }
}

impl StoredValues {
    fn values(&self) -> Values<'_> {
        match self {
            StoredValues::F32(v) => v.into(),
            StoredValues::F16(v) => v.into(),
            StoredValues::Bf16(v) => v.into(),
        }
    }
}

/// [`with_batch`] with the queries stored as `queries` and the candidates (dense rows or the
/// corpus) as `candidates`.
fn with_stored_batch<R>(
    case: &Case,
    layout: Layout,
    queries: Stored,
    candidates: Stored,
    f: impl FnOnce(&Batch<'_>) -> R,
) -> R {
    let d = case.d;
    let queries = queries.store(&case.queries);
    let batch = |candidates| Batch {
        dim: d,
        queries: queries.values(),
        candidate_counts: &case.counts,
        candidates,
        base_scores: case.base.as_deref(),
    };
    match layout {
        Layout::Dense { pad } => {
            let rows: Vec<&[f32]> = (0..case.total()).map(|i| case.candidate(i)).collect();
            let data = candidates.store(&strided(&rows, d, pad));
            f(&batch(Candidates::Dense { data: data.values(), row_stride: d + pad }))
        }
        Layout::ById { pad, shuffle_seed } => {
            // Corpus row slots: every pool row once, plus as many all-NaN rows, shuffled.
            let pool_rows = case.pool.len() / d;
            let nan_row = vec![f32::NAN; d];
            let mut slots: Vec<Option<usize>> = (0..pool_rows).map(Some).chain((0..pool_rows).map(|_| None)).collect();
            TestRng::new(shuffle_seed).shuffle(&mut slots);
            let mut where_is = vec![0u64; pool_rows];
            let rows: Vec<&[f32]> = slots
                .iter()
                .enumerate()
                .map(|(slot, p)| match *p {
                    Some(p) => {
                        where_is[p] = slot as u64;
                        &case.pool[p * d..(p + 1) * d]
                    }
                    None => &nan_row[..],
                })
                .collect();
            let data = candidates.store(&strided(&rows, d, pad));
            let corpus = Corpus::new(data.values(), rows.len(), d, d + pad).expect("corpus");
            let ids: Vec<u64> = case.ids.iter().map(|&id| where_is[id as usize]).collect();
            f(&batch(Candidates::ById { corpus: &corpus, ids: &ids }))
        }
    }
}

/// The f64 reference for a whole case, or the (query, position) the identity transform refuses.
fn reference(fix: &Fixture, case: &Case, params: &RefParams) -> Result<Vec<RefScore>, NonPositiveBase> {
    let mut out = Vec::with_capacity(case.total());
    for (q, range) in case.ranges().into_iter().enumerate() {
        let pairs: Vec<_> = range.clone().map(|i| fix.model.pair(case.query(q), case.candidate(i))).collect();
        let base = case.base.as_ref().map(|b| &b[range]);
        out.extend(score_query(params, &pairs, base, q)?);
    }
    Ok(out)
}

// =============================================================================================
// Checking the engine's outputs against the reference.
// =============================================================================================

fn check_rerank(m: &mut Mismatches, case: &Case, refs: &[RefScore], got: &Reranked) {
    for (q, range) in case.ranges().into_iter().enumerate() {
        for i in range.clone() {
            let (p, r) = (i - range.start, &refs[i]);
            m.close("log s_RR", q, p, got.log_s_rr[i].into(), r.log_s_rr, log_score_tol(r.log_s_rr));
            m.close("s_A", q, p, got.s_a[i].into(), r.s_a, PROB_TOL);
            m.close("s_FN", q, p, got.s_fn[i].into(), r.probs[1], PROB_TOL);
            for class in 0..4 {
                let what = ["p_TP", "p_FN", "p_FP", "p_TN"][class];
                m.close(what, q, p, got.class_probs[4 * i + class].into(), r.probs[class], PROB_TOL);
            }
        }
        let want: Vec<f64> = refs[range.clone()].iter().map(|r| r.log_s_rr).collect();
        check_order(m, q, &want, &got.log_s_rr[range.clone()], &got.order[range]);
    }
}

/// `order` must be a permutation that sorts the engine's own scores descending, ranks a
/// candidate above another only where the reference agrees or the two reference scores are
/// within their combined tolerance, and keeps input order among exactly tied references.
fn check_order(m: &mut Mismatches, q: usize, want: &[f64], got: &[f32], order: &[u32]) {
    let k = want.len();
    let mut seen = vec![false; k];
    for &o in order {
        if o as usize >= k || seen[o as usize] {
            m.push(format!("order: query {q}: {order:?} is not a permutation of 0..{k}"));
            return;
        }
        seen[o as usize] = true;
    }
    for (rank, pair) in order.windows(2).enumerate() {
        let (a, b) = (pair[0] as usize, pair[1] as usize);
        if got[a] < got[b] {
            m.push(format!(
                "order: query {q}, rank {rank}: position {a} (log s_RR {}) ranked above position {b} ({})",
                got[a], got[b]
            ));
        }
    }
    for i in 0..k {
        for j in i + 1..k {
            let (a, b) = (order[i] as usize, order[j] as usize);
            let (wa, wb) = (want[a], want[b]);
            if wb - wa > log_score_tol(wa) + log_score_tol(wb) {
                m.push(format!(
                    "order: query {q}: position {a} (ref {wa:.9e}) at rank {i} above position {b} (ref {wb:.9e}) at rank {j}"
                ));
            }
            if wa == wb && a > b {
                m.push(format!("order: query {q}: exact tie at positions {b} and {a} not kept in input order"));
            }
        }
    }
}

fn check_resample(m: &mut Mismatches, case: &Case, refs: &[RefScore], request: &ResampleRequest<'_>, got: &Resampled) {
    let n = request.samples_per_query;
    for (q, range) in case.ranges().into_iter().enumerate() {
        for i in range.clone() {
            let (p, r) = (i - range.start, &refs[i]);
            m.close("log s_RS", q, p, got.log_s_rs[i].into(), r.log_s_rs, log_score_tol(r.log_s_rs));
            m.close("s_FN (resample)", q, p, got.s_fn[i].into(), r.probs[1], PROB_TOL);
        }
        // The sampler must draw exactly what SPEC §5 draws from the engine's own f32 log s_RS.
        let mask = request.positive_mask.map(|mk| &mk[range.clone()]);
        let query_index = request.first_query_index.wrapping_add(q as u64);
        let want = padded(ref_sample(&got.log_s_rs[range], mask, request.seed, query_index, n), n);
        let drawn = &got.samples[q * n..(q + 1) * n];
        let count = want.iter().filter(|&&x| x != NOT_DRAWN).count();
        if drawn != want.as_slice() || got.sample_counts[q] as usize != count {
            m.push(format!(
                "samples: query {q}: got {drawn:?} (count {}), want {want:?} (count {count})",
                got.sample_counts[q]
            ));
        }
    }
}

fn padded(mut drawn: Vec<u32>, n: usize) -> Vec<u32> {
    drawn.resize(n, NOT_DRAWN);
    drawn
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Bitwise equality of two runs of the same input.
fn same_rerank(a: &Reranked, b: &Reranked) -> bool {
    bits(&a.log_s_rr) == bits(&b.log_s_rr)
        && bits(&a.s_a) == bits(&b.s_a)
        && bits(&a.s_fn) == bits(&b.s_fn)
        && bits(&a.class_probs) == bits(&b.class_probs)
        && a.order == b.order
}

fn same_resample(a: &Resampled, b: &Resampled) -> bool {
    bits(&a.log_s_rs) == bits(&b.log_s_rs)
        && bits(&a.s_fn) == bits(&b.s_fn)
        && a.samples == b.samples
        && a.sample_counts == b.sample_counts
}

/// A resampling request with a random mask (any nonzero byte marks a positive).
struct RequestSpec {
    n: usize,
    seed: u64,
    first_query_index: u64,
    mask: Option<Vec<u8>>,
}

impl RequestSpec {
    fn random(rng: &mut TestRng, total: usize) -> RequestSpec {
        let with_mask = rng.below(3) != 0;
        RequestSpec {
            n: rng.pick(&[0, 1, 2, 5, 150]),
            seed: rng.next_u64(),
            first_query_index: rng.pick(&[0, 1, 1000, u64::MAX - 1]),
            mask: with_mask
                .then(|| (0..total).map(|_| if rng.below(5) == 0 { rng.pick(&[1, 2, 255]) } else { 0 }).collect()),
        }
    }
    fn request(&self) -> ResampleRequest<'_> {
        ResampleRequest {
            samples_per_query: self.n,
            seed: self.seed,
            first_query_index: self.first_query_index,
            positive_mask: self.mask.as_deref(),
        }
    }
}

/// Runs `case` through rerank and resample on every engine in every layout and checks each
/// result against the reference; one engine's layouts must agree bitwise. Returns each engine's
/// results in the first layout (none where the reference expects an error).
fn check_case(
    fix: &Fixture,
    case: &Case,
    options: &ScoreOptions,
    layouts: &[Layout],
    rng: &mut TestRng,
    label: &str,
) -> Vec<(Reranked, Resampled)> {
    let mut results = Vec::new();
    for engine in engines() {
        let mut session = fix.session(engine);
        results.extend(check_with_session(&mut session, fix, case, options, layouts, rng, label));
    }
    results
}

/// [`check_case`] for one session, with a random resampling request.
fn check_with_session(
    session: &mut Session,
    fix: &Fixture,
    case: &Case,
    options: &ScoreOptions,
    layouts: &[Layout],
    rng: &mut TestRng,
    label: &str,
) -> Option<(Reranked, Resampled)> {
    let refs = reference(fix, case, &RefParams::resolve(fix.adapter.config(), options));
    let spec = RequestSpec::random(rng, case.total());
    let request = spec.request();
    let mut first: Option<(Reranked, Resampled)> = None;
    for &layout in layouts {
        let context = format!(
            "{label}: engine {:?} | {} | options {options:?} | {} | layout {layout:?} | resample n={} seed={:#x} first_query_index={} mask={}",
            session.engine(),
            fix.describe(),
            case.describe(),
            spec.n,
            spec.seed,
            spec.first_query_index,
            spec.mask.is_some()
        );
        let (rr, rs) = with_batch(case, layout, |batch| {
            (session.rerank(batch, options), session.resample(batch, options, &request))
        });
        let refs = match &refs {
            Ok(refs) => refs,
            Err(NonPositiveBase { query, position }) => {
                let fragment = format!("query {query}, position {position}");
                for (what, result) in [("rerank", rr.err()), ("resample", rs.err())] {
                    let e = result
                        .unwrap_or_else(|| panic!("{context}: {what} succeeded, want an identity-transform error"));
                    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{context}: {what}: {e}");
                    assert!(e.message().contains(&fragment), "{context}: {what}: '{e}' does not name {fragment}");
                }
                continue;
            }
        };
        let rr = rr.unwrap_or_else(|e| panic!("{context}: rerank failed: {e}"));
        let rs = rs.unwrap_or_else(|e| panic!("{context}: resample failed: {e}"));
        let mut m = Mismatches::new(context.clone());
        check_rerank(&mut m, case, refs, &rr);
        check_resample(&mut m, case, refs, &request, &rs);
        if bits(&rr.s_fn) != bits(&rs.s_fn) {
            m.push("s_FN differs between rerank and resample".to_string());
        }
        match &first {
            Some((rr0, rs0)) => {
                if !same_rerank(rr0, &rr) || !same_resample(rs0, &rs) {
                    m.push(format!("results differ bitwise from layout {:?}", layouts[0]));
                }
            }
            None => first = Some((rr, rs)),
        }
        m.finish();
    }
    first
}

/// `n` ragged lists with sizes from `sizes`, at least one of them empty.
fn random_counts(rng: &mut TestRng, n: usize, sizes: &[usize]) -> Vec<usize> {
    let mut counts: Vec<usize> = (0..n).map(|_| rng.pick(sizes)).collect();
    counts[rng.below(n)] = 0;
    counts
}

/// Base scores suitable for `transform`, or absent (then `sim(q, c)` is the base score, which
/// the identity transform can only take when it is positive).
fn scores_and_embeddings(transform: BaseTransform, given: bool) -> (BaseScores, Embeddings) {
    match (transform, given) {
        (BaseTransform::Identity, true) => (BaseScores::Positive, Embeddings::Normalised),
        (BaseTransform::Identity, false) => (BaseScores::Absent, Embeddings::Positive),
        (_, true) => (BaseScores::Logits, Embeddings::Normalised),
        (_, false) => (BaseScores::Absent, Embeddings::Normalised),
    }
}

// =============================================================================================
// Forward pass and scores.
// =============================================================================================

#[test]
fn reference_erf_matches_python_math_erf() {
    // Values printed by CPython's math.erf.
    let table = [
        (0.0, 0.0),
        (1e-5, 1.1283791670579e-05),
        (0.01, 0.011283415555849616),
        (0.1, 0.1124629160182849),
        (0.5, 0.5204998778130465),
        (1.0, 0.8427007929497149),
        (-1.0, -0.8427007929497149),
        (1.5, 0.9661051464753108),
        (2.0, 0.9953222650189527),
        (2.9, 0.9999589021219005),
        (3.0, 0.9999779095030014),
        (3.5, 0.9999992569016276),
        (-4.0, -0.9999999845827421),
        (5.0, 0.9999999999984626),
        (6.0, 1.0),
        (0.7, 0.6778011938374184),
        (-2.2, -0.9981371537020182),
        (2.5, 0.999593047982555),
        (2.99, 0.9999764743969194),
        (3.01, 0.9999792610363629),
        (3.2, 0.9999939742388483),
        (4.5, 0.9999999998033839),
        (-0.3, -0.3286267594591274),
        (1.2345, 0.9191623964135658),
    ];
    for (x, want) in table {
        let got = erf(x);
        // A few ulp (math.erf is itself good to about 1 ulp): far below what f32 parity needs.
        assert!((got - want).abs() <= 4.0 * f64::EPSILON * want.abs(), "erf({x}) = {got:e}, want {want:e}");
    }
}

#[test]
fn every_activation_similarity_and_transform_on_small_shapes() {
    let mut rng = TestRng::new(1);
    let (ds, hs) = ([1, 7, 64], [1, 5, 128]);
    let mut combo = 0;
    for activation in ACTIVATIONS {
        for similarity in SIMILARITIES {
            for transform in TRANSFORMS {
                let (d, h) = (ds[combo % 3], hs[(combo / 3) % 3]);
                combo += 1;
                let config = random_config(&mut rng, activation, similarity, transform);
                let fix = Fixture::random(&mut rng, d, h, config, 1.0);
                for given in [true, false] {
                    let (base, embeddings) = scores_and_embeddings(transform, given);
                    let counts = random_counts(&mut rng, 4, &[0, 1, 3, 100]);
                    let case = Case::random(&mut rng, d, &counts, embeddings, base);
                    check_case(&fix, &case, &ScoreOptions::default(), &LAYOUTS, &mut rng, "small");
                }
            }
        }
    }
}

/// SPEC §6 for reduced precision: log s_RR within 2e-2 relative, s_FN within 2e-3, and the
/// top 10 in the reference's order wherever neighbouring reference scores differ by more than
/// 1e-2.
fn check_reduced_precision(m: &mut Mismatches, case: &Case, refs: &[RefScore], got: &Reranked) {
    for (q, range) in case.ranges().into_iter().enumerate() {
        for i in range.clone() {
            let (p, r) = (i - range.start, &refs[i]);
            m.close("log s_RR", q, p, got.log_s_rr[i].into(), r.log_s_rr, 2e-2 * r.log_s_rr.abs().max(1.0));
            m.close("s_FN", q, p, got.s_fn[i].into(), r.probs[1], 2e-3);
        }
        let want: Vec<f64> = refs[range.clone()].iter().map(|r| r.log_s_rr).collect();
        let mut by_reference: Vec<usize> = (0..want.len()).collect();
        by_reference.sort_by(|&a, &b| want[b].total_cmp(&want[a]).then(a.cmp(&b)));
        let apart = |a: usize, b: usize| (want[a] - want[b]).abs() > 1e-2;
        for rank in 0..want.len().min(10) {
            let r = by_reference[rank];
            let clear = (rank == 0 || apart(by_reference[rank - 1], r))
                && (rank + 1 == want.len() || apart(r, by_reference[rank + 1]));
            let engine = got.order[range.start + rank] as usize;
            if clear && engine != r {
                m.push(format!("order: query {q}, rank {rank}: position {engine}, the reference has {r}"));
            }
        }
    }
}

#[test]
fn f16_precision_meets_the_reduced_precision_contract() {
    let options = |threads| SessionOptions { threads, precision: Precision::F16, ..Default::default() };
    let mut rng = TestRng::new(31);
    let probe = Fixture::random(&mut rng, 3, 2, AdapterConfig::default(), 1.0);
    match Session::new(probe.adapter.clone(), options(1)) {
        Err(e) if e.kind() == ErrorKind::Unsupported => {
            println!("skipped: {e}");
            return;
        }
        other => assert_eq!(other.expect("f16 session").precision(), Precision::F16),
    }
    // d not a multiple of the vector width, h below, at and across the f16 tile's 64 columns;
    // lists of 0, 1 and past a block (and, on 2 threads, split between them).
    let setups = [
        (1, 5, Activation::Relu, Similarity::Dot),
        (7, 64, Activation::Gelu, Similarity::Cosine),
        (67, 70, Activation::Silu, Similarity::Dot),
        (384, 128, Activation::Relu, Similarity::Dot),
        (385, 96, Activation::Tanh, Similarity::Cosine),
    ];
    for (d, h, activation, similarity) in setups {
        let config = random_config(&mut rng, activation, similarity, BaseTransform::Sigmoid);
        let fix = Fixture::random(&mut rng, d, h, config, 1.0);
        let case = Case::random(&mut rng, d, &[0, 1, 3, 100, 600], Embeddings::Normalised, BaseScores::Absent);
        let refs = reference(&fix, &case, &RefParams::resolve(fix.adapter.config(), &ScoreOptions::default()))
            .expect("reference");
        for threads in [1, 2] {
            let mut session = Session::new(fix.adapter.clone(), options(threads)).expect("f16 session");
            let got = with_batch(&case, Layout::Dense { pad: 3 }, |b| session.rerank(b, &ScoreOptions::default()))
                .unwrap_or_else(|e| panic!("{}: {e}", fix.describe()));
            let mut m = Mismatches::new(format!("f16, {threads} thread(s) | {} | {}", fix.describe(), case.describe()));
            check_reduced_precision(&mut m, &case, &refs, &got);
            m.finish();
        }
    }

    // The reference engine has no f16 arithmetic.
    let reference = SessionOptions { engine: EnginePreference::Force(EngineKind::Reference), ..options(1) };
    let e = Session::new(probe.adapter.clone(), reference).err().expect("an f16 reference session is refused");
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
}

#[test]
fn values_beyond_f16_are_errors_that_say_so_on_every_engine() {
    // Never a silently wrong order: the same errors from every engine with f16 arithmetic.
    let mut rng = TestRng::new(34);
    let fix = Fixture::random(&mut rng, 8, 70, AdapterConfig::default(), 1.0);
    let mut tested = 0;
    for engine in engines() {
        let options = SessionOptions { precision: Precision::F16, ..engine.options(1) };
        let Ok(mut session) = Session::new(fix.adapter.clone(), options) else { continue };
        tested += 1;
        let mut rerank =
            |q: &[f32], k: usize, c: &[f32]| session.rerank(&Batch::dense(8, q, &[k], c), &ScoreOptions::default());
        // Candidates are packed four rows at a time where they can be: the error still names the row.
        for (k, bad, column) in [(3, 2, 5), (14, 6, 5), (14, 9, 0), (14, 13, 7)] {
            let mut c = vec![0.1f32; k * 8];
            c[bad * 8 + column] = -1e5;
            let e = rerank(&[0.1; 8], k, &c).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{engine:?}: {e}");
            assert!(e.message().contains(&format!("candidate {bad}:")) && e.message().contains("f16"), "{e}");
        }
        // A query that folds into weights beyond f16.
        let e = rerank(&[1e6; 8], 3, &[0.1; 24]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Numeric, "{engine:?}: {e}");
        assert!(e.message().contains("query 0") && e.message().contains("f16"), "{engine:?}: {e}");
        // In range one by one, but their products overflow layer 1's sums where those are in
        // half precision (the folded engine's; the CUDA engine's tensor cores sum in f32).
        match rerank(&[2e5; 8], 3, &[100.0; 24]) {
            Err(e) => {
                assert_eq!(e.kind(), ErrorKind::Numeric, "{engine:?}: {e}");
                assert!(e.message().contains("hidden layer overflowed") && e.message().contains("f16"), "{e}");
            }
            Ok(_) => assert_eq!(engine.kind, EngineKind::Cuda, "{engine:?}: half sums overflowed silently"),
        }
    }
    // Cosine keeps layer 2's weights in f16 on every engine: one beyond it refuses the session.
    let mut weights = fix.adapter.weights().clone();
    weights.fc2_weight[5] = 7e4;
    let config = AdapterConfig { similarity: Similarity::Cosine, ..AdapterConfig::default() };
    let cosine = Arc::new(Adapter::new(weights, config).expect("valid adapter"));
    for engine in engines() {
        let options = SessionOptions { precision: Precision::F16, ..engine.options(1) };
        if Session::new(fix.adapter.clone(), options).is_ok() {
            let e = Session::new(cosine.clone(), options).err().expect("refused");
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{engine:?}: {e}");
            assert!(e.message().contains("weight") && e.message().contains("65504"), "{engine:?}: {e}");
        }
    }
    if tested == 0 {
        println!("skipped: no engine here has f16 arithmetic (AVX512-FP16 or a CUDA GPU)");
    }
}

// =============================================================================================
// Embeddings stored as f16 or bf16 (SPEC §1).
// =============================================================================================

impl Case {
    /// This case with its queries and candidates rounded to the types they will be stored as.
    fn rounded(&self, queries: Stored, candidates: Stored) -> Case {
        Case {
            queries: queries.round(&self.queries),
            pool: candidates.round(&self.pool),
            ids: self.ids.clone(),
            counts: self.counts.clone(),
            base: self.base.clone(),
            d: self.d,
        }
    }
}

/// (queries, candidates) storage pairs: each narrow type alone, together, and mixed with f32.
const STORED_PAIRS: [(Stored, Stored); 6] = [
    (Stored::F16, Stored::F16),
    (Stored::Bf16, Stored::Bf16),
    (Stored::F32, Stored::F16),
    (Stored::F32, Stored::Bf16),
    (Stored::Bf16, Stored::F32),
    (Stored::F16, Stored::Bf16),
];

#[test]
fn f16_and_bf16_embeddings_score_as_their_f32_values_on_every_engine() {
    // Widening is exact, so a batch stored narrow must give the bits the same values give as
    // f32, on every engine, precision, thread count and layout; the reference checks the values.
    let mut rng = TestRng::new(36);
    // Lists of 0, 1, a few, and past a block (600, 530).
    let setups = [
        (1, 3, Activation::Relu, &[5usize, 0, 1][..]),
        (7, 16, Activation::Gelu, &[13, 0, 600]),
        (67, 70, Activation::Tanh, &[20, 1, 0]),
        (130, 20, Activation::Relu, &[530, 2]),
    ];
    let request = ResampleRequest { samples_per_query: 3, seed: 7, first_query_index: 0, positive_mask: None };
    for (d, h, activation, counts) in setups {
        for similarity in SIMILARITIES {
            let config = random_config(&mut rng, activation, similarity, BaseTransform::Sigmoid);
            let fix = Fixture::random(&mut rng, d, h, config, 1.0);
            let case = Case::random(&mut rng, d, counts, Embeddings::Normalised, BaseScores::Logits);
            for (queries, candidates) in STORED_PAIRS {
                let case = case.rounded(queries, candidates);
                let options = ScoreOptions::default();
                let refs =
                    reference(&fix, &case, &RefParams::resolve(fix.adapter.config(), &options)).expect("reference");
                // Every layout for the narrow types alone; the mixed pairs in one.
                let layouts = if queries == candidates { &LAYOUTS[..] } else { &LAYOUTS[1..2] };
                for engine in engines() {
                    for (precision, threads) in [(Precision::F32, 1), (Precision::F16, 2)] {
                        let session_options = SessionOptions { precision, ..engine.options(threads) };
                        let mut session = match Session::new(fix.adapter.clone(), session_options) {
                            Ok(session) => session,
                            Err(e) if precision == Precision::F16 => {
                                assert!(matches!(e.kind(), ErrorKind::Unsupported | ErrorKind::InvalidArgument), "{e}");
                                continue;
                            }
                            Err(e) => panic!("{engine:?}: {e}"),
                        };
                        for &layout in layouts {
                            let what = format!(
                                "{engine:?} {precision:?} {threads} threads | {} | {} | {layout:?} | queries {queries:?}, candidates {candidates:?}",
                                fix.describe(),
                                case.describe()
                            );
                            let run = |session: &mut Session, b: &Batch<'_>| {
                                let rr = session.rerank(b, &options).unwrap_or_else(|e| panic!("{what}: {e}"));
                                let rs =
                                    session.resample(b, &options, &request).unwrap_or_else(|e| panic!("{what}: {e}"));
                                (rr, rs)
                            };
                            let (want_rr, want_rs) = with_batch(&case, layout, |b| run(&mut session, b));
                            let (rr, rs) =
                                with_stored_batch(&case, layout, queries, candidates, |b| run(&mut session, b));
                            assert!(
                                same_rerank(&want_rr, &rr) && same_resample(&want_rs, &rs),
                                "{what}: differs from f32"
                            );
                            let mut m = Mismatches::new(what);
                            if precision == Precision::F32 {
                                check_rerank(&mut m, &case, &refs, &rr);
                            } else {
                                check_reduced_precision(&mut m, &case, &refs, &rr);
                            }
                            m.finish();
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn non_finite_f16_and_bf16_values_are_named_like_f32_ones() {
    // Where a narrow value is ±Inf or NaN, the error names the same query, position and column
    // as for f32, on every engine; a bf16 value beyond f16's range is refused by f16 arithmetic.
    let mut rng = TestRng::new(37);
    let (d, counts) = (19, [2usize, 0, 600]);
    let fix = Fixture::random(&mut rng, d, 24, AdapterConfig::default(), 1.0);
    let total: usize = counts.iter().sum();
    let q = rng.uniform_vec(counts.len() * d, 0.5);
    let c = rng.uniform_vec(total * d, 0.5);
    for stored in [Stored::F16, Stored::Bf16] {
        for (in_queries, at, bad) in
            [(false, 3 * d + 4, f32::INFINITY), (false, 599 * d, f32::NAN), (true, 2 * d + 18, f32::NEG_INFINITY)]
        {
            let (mut q, mut c) = (q.clone(), c.clone());
            if in_queries {
                q[at] = bad
            } else {
                c[at] = bad
            }
            let expected = if in_queries {
                format!("queries: query {}, column {} is {bad}", at / d, at % d)
            } else {
                let (row, column) = (at / d, at % d);
                let (query, position) = if row < 2 { (0, row) } else { (2, row - 2) };
                format!("candidates: query {query}, position {position}, column {column} is {bad}")
            };
            let (qs, cs) = (stored.store(&q), stored.store(&c));
            let batch = Batch::dense(d, qs.values(), &counts, cs.values());
            let runs = [(Precision::F32, 1), (Precision::F16, 2)];
            expect_non_finite_named(&fix, &batch, &runs, &expected, &format!("{stored:?}"));
        }
    }
    // 1e5 is a bf16 (rounded) but beyond f16: f16 arithmetic names the candidate.
    let mut c = c;
    c[5 * d + 1] = 1e5;
    let cs = Stored::Bf16.store(&c);
    let batch = Batch::dense(d, &q, &counts, cs.values());
    for engine in engines() {
        let options = SessionOptions { precision: Precision::F16, ..engine.options(1) };
        let Ok(mut session) = Session::new(fix.adapter.clone(), options) else { continue };
        let e = session.rerank(&batch, &ScoreOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{engine:?}: {e}");
        assert!(e.message().contains("query 2") && e.message().contains("candidate 3:"), "{engine:?}: {e}");
    }
}

#[test]
fn threaded_sessions_bit_identical_to_one_thread_on_random_shapes() {
    // Random widths around the tiles' panels and blocks, lists around the thresholds where a
    // list is shared (one block; 64 candidates per thread), both similarities and f32/f16:
    // every thread count gives one thread's bits.
    let mut rng = TestRng::new(33);
    let precisions: Vec<Precision> = [Precision::F32, Precision::F16]
        .into_iter()
        .filter(|&p| {
            let probe = Fixture::random(&mut TestRng::new(1), 2, 2, AdapterConfig::default(), 1.0);
            Session::new(probe.adapter, SessionOptions { precision: p, ..Default::default() }).is_ok()
        })
        .collect();
    for round in 0..24 {
        let (d, h) = (1 + rng.below(90), 1 + rng.below(300));
        let similarity = rng.pick(&SIMILARITIES);
        let activation = rng.pick(&ACTIVATIONS);
        let config = random_config(&mut rng, activation, similarity, BaseTransform::Softmax);
        let fix = Fixture::random(&mut rng, d, h, config, 1.0);
        let lists = 1 + rng.below(4);
        let counts: Vec<usize> =
            (0..lists).map(|_| rng.pick(&[0, 1, 2, 15, 63, 64, 100, 129, 257, 513, 900])).collect();
        let case = Case::random(&mut rng, d, &counts, Embeddings::Normalised, BaseScores::Logits);
        for &precision in &precisions {
            let options = |threads| SessionOptions { threads, precision, ..Default::default() };
            let run = |threads| {
                let mut session = Session::new(fix.adapter.clone(), options(threads)).unwrap();
                with_batch(&case, Layout::Dense { pad: 1 }, |b| session.rerank(b, &ScoreOptions::default()))
            };
            let one = run(1).unwrap_or_else(|e| panic!("round {round}: {e}"));
            for threads in [2, 3, 5] {
                let many = run(threads).unwrap_or_else(|e| panic!("round {round}: {e}"));
                assert!(
                    same_rerank(&many, &one),
                    "round {round}: d {d}, h {h}, {similarity:?}, {precision:?}, lists {counts:?}, {threads} threads"
                );
            }
        }
    }
}

#[test]
fn threaded_errors_name_the_query_of_the_whole_batch() {
    // On several threads each thread sees a share of the batch; errors still count queries and
    // positions in the caller's batch, and the earliest bad candidate is the one named.
    let mut rng = TestRng::new(32);
    let d = 64;
    let fix = Fixture::random(&mut rng, d, 40, AdapterConfig::default(), 1.0);
    let counts = [600, 0, 500, 700];
    let total: usize = counts.iter().sum();
    let q = vec![0.1f32; counts.len() * d];
    for engine in engines() {
        let mut session = Session::new(fix.adapter.clone(), engine.options(2)).unwrap();
        let mut c = vec![0.1f32; total * d];
        c[(1100 + 6) * d + 5] = f32::NAN;
        c[(1100 + 9) * d] = f32::INFINITY;
        let e = session.rerank(&Batch::dense(d, &q, &counts, &c), &ScoreOptions::default()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::NonFiniteInput, "{engine:?}: {e}");
        assert!(e.message().contains("query 3, position 6, column 5 is NaN"), "{engine:?}: {e}");
        c[(600 + 499) * d + 63] = f32::NEG_INFINITY;
        let e = session.rerank(&Batch::dense(d, &q, &counts, &c), &ScoreOptions::default()).unwrap_err();
        assert!(e.message().contains("query 2, position 499, column 63 is -inf"), "{engine:?}: {e}");
    }
    let f16 = SessionOptions { threads: 2, precision: Precision::F16, ..Default::default() };
    match Session::new(fix.adapter.clone(), f16) {
        Err(e) if e.kind() == ErrorKind::Unsupported => println!("f16 part skipped: {e}"),
        session => {
            let mut c = vec![0.1f32; total * d];
            c[(1100 + 6) * d + 5] = 1e5;
            let e = session.unwrap().rerank(&Batch::dense(d, &q, &counts, &c), &ScoreOptions::default()).unwrap_err();
            assert!(e.message().contains("query 3, candidate 6:") && e.message().contains("f16"), "{e}");
        }
    }
}

/// Reranking `batch` fails with a NonFiniteInput error containing `expected` on every engine,
/// at each (precision, threads) of `runs` the engine has.
fn expect_non_finite_named(fix: &Fixture, batch: &Batch<'_>, runs: &[(Precision, usize)], expected: &str, label: &str) {
    for engine in engines() {
        for &(precision, threads) in runs {
            let options = SessionOptions { precision, ..engine.options(threads) };
            let Ok(mut session) = Session::new(fix.adapter.clone(), options) else { continue };
            let e = session.rerank(batch, &ScoreOptions::default()).unwrap_err();
            let what = format!("{label}: {engine:?}, {threads} threads, {precision:?}");
            assert_eq!(e.kind(), ErrorKind::NonFiniteInput, "{what}: {e}");
            assert!(e.message().contains(expected), "{what}: expected {expected:?}, got {e}");
        }
    }
}

#[test]
fn the_first_non_finite_input_is_named_on_every_engine_and_thread_count() {
    // The folded engine checks candidates as it packs them and the session then looks for the
    // batch's first bad input; every engine must name the one a scan in batch order finds first,
    // candidates before their base scores, whatever the thread count or precision.
    let mut rng = TestRng::new(33);
    let precisions = [Precision::F32, Precision::F16];
    for round in 0..40 {
        let (d, h) = (1 + rng.below(70), 1 + rng.below(80));
        let fix = Fixture::random(&mut rng, d, h, AdapterConfig::default(), 1.0);
        let counts: Vec<usize> = (0..1 + rng.below(4)).map(|_| [0, 1, 7, 300, 700][rng.below(5)]).collect();
        let total: usize = counts.iter().sum();
        if total == 0 {
            continue;
        }
        let q = rng.uniform_vec(counts.len() * d, 0.5);
        let mut c = rng.uniform_vec(total * d, 0.5);
        let mut base = rng.uniform_vec(total, 1.0);
        for _ in 0..1 + rng.below(3) {
            let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY][rng.below(3)];
            match rng.below(4) {
                0 => base[rng.below(total)] = bad,
                _ => c[rng.below(total * d)] = bad,
            }
        }
        // The first bad value in batch order, found independently of the library.
        let (mut query, mut start) = (0, 0);
        let expected = (0..total)
            .find_map(|i| {
                while i >= start + counts[query] {
                    start += counts[query];
                    query += 1;
                }
                let at = format!("query {query}, position {}", i - start);
                let column = c[i * d..(i + 1) * d].iter().position(|x| !x.is_finite());
                column
                    .map(|col| format!("candidates: {at}, column {col} is {}", c[i * d + col]))
                    .or_else(|| (!base[i].is_finite()).then(|| format!("base_scores: {at} is {}", base[i])))
            })
            .expect("a bad value was placed");
        let batch = Batch::dense(d, &q, &counts, &c).with_base_scores(&base);
        let runs: Vec<_> = [1, 2].into_iter().flat_map(|t| precisions.map(|p| (p, t))).collect();
        expect_non_finite_named(&fix, &batch, &runs, &expected, &format!("round {round}, lists {counts:?}"));
    }
}

#[test]
fn large_shapes_on_a_subset_of_configurations() {
    let mut rng = TestRng::new(2);
    let setups = [
        (128, Activation::Gelu, Similarity::Cosine, BaseTransform::Softmax, false),
        (128, Activation::Relu, Similarity::Dot, BaseTransform::Sigmoid, true),
        (5, Activation::Silu, Similarity::Dot, BaseTransform::Identity, true),
        (1, Activation::GeluTanh, Similarity::Cosine, BaseTransform::Identity, false),
        (128, Activation::Tanh, Similarity::Dot, BaseTransform::Softmax, true),
    ];
    for (h, activation, similarity, transform, given) in setups {
        let config = random_config(&mut rng, activation, similarity, transform);
        let fix = Fixture::random(&mut rng, 384, h, config, 1.0);
        let (base, embeddings) = scores_and_embeddings(transform, given);
        let case = Case::random(&mut rng, 384, &[100, 0, 3, 1, 100], embeddings, base);
        let layouts = [Layout::Dense { pad: 5 }, Layout::ById { pad: 0, shuffle_seed: 3 }];
        check_case(&fix, &case, &ScoreOptions::default(), &layouts, &mut rng, "large");
    }
}

#[test]
fn lists_longer_than_an_engine_block() {
    // The folded engine works in blocks of 256 candidates; straddle the boundary.
    let mut rng = TestRng::new(15);
    for (i, similarity) in SIMILARITIES.into_iter().enumerate() {
        let config = random_config(&mut rng, ACTIVATIONS[i + 1], similarity, BaseTransform::Softmax);
        let fix = Fixture::random(&mut rng, 7, 5, config, 1.0);
        let case = Case::random(&mut rng, 7, &[300, 0, 257, 1, 256], Embeddings::Normalised, BaseScores::Absent);
        check_case(&fix, &case, &ScoreOptions::default(), &LAYOUTS, &mut rng, "long lists");
    }
}

#[test]
fn unnormalised_embeddings_and_extreme_classifiers() {
    let mut rng = TestRng::new(3);
    for (i, (scale, gain)) in [(3.0, 1.0), (0.05, 1.0), (1.0, 25.0), (10.0, 8.0)].into_iter().enumerate() {
        for similarity in SIMILARITIES {
            let activation = ACTIVATIONS[i % ACTIVATIONS.len()];
            let transform = TRANSFORMS[(i + 1) % TRANSFORMS.len()];
            let config = random_config(&mut rng, activation, similarity, transform);
            let fix = Fixture::random(&mut rng, 7, 5, config, gain);
            let base = if transform == BaseTransform::Identity { BaseScores::Positive } else { BaseScores::Logits };
            for base in [base, BaseScores::Absent] {
                if transform == BaseTransform::Identity && base == BaseScores::Absent {
                    continue; // random-sign sims: covered by the error tests
                }
                let case = Case::random(&mut rng, 7, &[3, 0, 100, 1], Embeddings::Scaled(scale / 7f64.sqrt()), base);
                check_case(
                    &fix,
                    &case,
                    &ScoreOptions::default(),
                    &LAYOUTS,
                    &mut rng,
                    &format!("scale {scale}, gain {gain}"),
                );
            }
        }
    }
}

#[test]
fn zero_and_tiny_vectors_under_the_cosine_norm_rule() {
    let mut rng = TestRng::new(4);
    for activation in ACTIVATIONS {
        let config = random_config(&mut rng, activation, Similarity::Cosine, BaseTransform::Sigmoid);
        let fix = Fixture::random(&mut rng, 7, 5, config, 1.0);
        let mut case = Case::random(&mut rng, 7, &[4, 3, 0, 5], Embeddings::Normalised, BaseScores::Absent);
        let d = case.d;
        case.queries[d..2 * d].fill(0.0); // query 1: ‖q‖ = 0
        case.pool[..d].fill(0.0); // pool row 0: ‖c‖ = 0
        case.pool[d..2 * d].iter_mut().for_each(|x| *x *= 1e-14); // pool row 1: ‖c‖ ≈ 1e-14
        case.ids[0] = 0;
        case.ids[1] = 1;
        case.ids[5] = 0;
        check_case(&fix, &case, &ScoreOptions::default(), &LAYOUTS, &mut rng, "cosine norm rule");
    }
}

/// `Some(value)` half of the time.
fn sometimes<T>(rng: &mut TestRng, value: T) -> Option<T> {
    (rng.below(2) == 0).then_some(value)
}

fn random_overrides(rng: &mut TestRng) -> ScoreOptions {
    let lambda = rng.pick(&[0.0, 0.3, 1.0, 4.0]);
    let gamma = rng.pick(&[0.0, 0.5, 2.0]);
    let transform = rng.pick(&TRANSFORMS);
    let mu = rng.uniform(-1.0, 1.0);
    let tau = rng.pick(&[0.2, 1.0, 3.0]);
    ScoreOptions {
        lambda_rr: sometimes(rng, lambda),
        gamma_rs: sometimes(rng, gamma),
        base_transform: sometimes(rng, transform),
        base_mu: sometimes(rng, mu),
        base_tau: sometimes(rng, tau),
    }
}

#[test]
fn per_call_overrides() {
    let mut rng = TestRng::new(5);
    for round in 0..24 {
        let activation = ACTIVATIONS[round % ACTIVATIONS.len()];
        let similarity = SIMILARITIES[round % 2];
        let file_transform = TRANSFORMS[round % 3];
        let config = random_config(&mut rng, activation, similarity, file_transform);
        let fix = Fixture::random(&mut rng, 7, 5, config.clone(), 1.0);
        let options = random_overrides(&mut rng);
        let transform = options.base_transform.unwrap_or(file_transform);
        let (base, embeddings) = scores_and_embeddings(transform, rng.below(2) == 0);
        let counts = random_counts(&mut rng, 3, &[0, 1, 3, 9]);
        let case = Case::random(&mut rng, 7, &counts, embeddings, base);
        let got = check_case(&fix, &case, &options, &LAYOUTS[..2], &mut rng, "overrides");

        // The same values written into the file instead must give bitwise the same results.
        let baked = AdapterConfig {
            lambda_rr: options.lambda_rr.unwrap_or(config.lambda_rr),
            gamma_rs: options.gamma_rs.unwrap_or(config.gamma_rs),
            base_transform: transform,
            base_mu: options.base_mu.unwrap_or(config.base_mu),
            base_tau: options.base_tau.unwrap_or(config.base_tau),
            ..config
        };
        let baked_fix = Fixture::from_weights(fix.adapter.weights().clone(), baked);
        let again = check_case(&baked_fix, &case, &ScoreOptions::default(), &LAYOUTS[..1], &mut rng, "baked");
        assert_eq!(got.len(), again.len(), "round {round}: overrides {options:?}");
        for (engine, ((rr, _), (rr_baked, _))) in engines().iter().zip(got.iter().zip(&again)) {
            assert!(
                same_rerank(rr, rr_baked),
                "round {round}, engine {engine:?}: overrides {options:?} differ from the same values in the file"
            );
        }
    }
}

#[test]
fn adapter_file_round_trip_scores_identically() {
    let mut rng = TestRng::new(6);
    let config = random_config(&mut rng, Activation::Gelu, Similarity::Cosine, BaseTransform::Softmax);
    let fix = Fixture::random(&mut rng, 7, 5, config, 1.0);
    let loaded = Adapter::from_bytes(&fix.adapter.to_bytes(WeightDtype::F32).unwrap()).unwrap();
    let case = Case::random(&mut rng, 7, &[3, 0, 5], Embeddings::Normalised, BaseScores::Absent);
    let loaded = Fixture::from_adapter(loaded);
    for engine in engines() {
        let run = |fix: &Fixture| {
            with_batch(&case, LAYOUTS[0], |b| fix.session(engine).rerank(b, &ScoreOptions::default())).unwrap()
        };
        assert!(same_rerank(&run(&fix), &run(&loaded)), "engine {engine:?}");
    }
}

// =============================================================================================
// Caller buffers: guard values around them, and untouched buffers on error.
// =============================================================================================

const GUARD: usize = 7;
const RERANK_BUFFERS: [&str; 5] = ["log_s_rr", "s_a", "s_fn", "class_probs", "order"];
const RESAMPLE_BUFFERS: [&str; 4] = ["log_s_rs", "rs_s_fn", "samples", "sample_counts"];
const F32_SENTINEL: f32 = -7777.125;
const U32_SENTINEL: u32 = 0xDEAD_BEEF;

/// Every output buffer of both calls, with `GUARD` sentinels on each side of the window passed
/// to the library.
struct Buffers {
    f32s: Vec<(&'static str, Vec<f32>)>,
    u32s: Vec<(&'static str, Vec<u32>)>,
}

fn window<T>(v: &mut [T]) -> &mut [T] {
    let end = v.len() - GUARD;
    &mut v[GUARD..end]
}

impl Buffers {
    /// Correctly sized windows, except `wrong` (name, length change).
    fn new(total: usize, queries: usize, n: usize, wrong: Option<(&str, isize)>) -> Buffers {
        let size = |name: &str, want: usize| {
            let delta = wrong.filter(|(w, _)| *w == name).map_or(0, |(_, delta)| delta);
            (want as isize + delta) as usize + 2 * GUARD
        };
        let f32s = [
            ("log_s_rr", total),
            ("s_a", total),
            ("s_fn", total),
            ("class_probs", 4 * total),
            ("log_s_rs", total),
            ("rs_s_fn", total),
        ]
        .map(|(name, want)| (name, vec![F32_SENTINEL; size(name, want)]))
        .into();
        let u32s = [("order", total), ("samples", queries * n), ("sample_counts", queries)]
            .map(|(name, want)| (name, vec![U32_SENTINEL; size(name, want)]))
            .into();
        Buffers { f32s, u32s }
    }

    fn rerank(&mut self, session: &mut Session, batch: &Batch<'_>, options: &ScoreOptions) -> rrra::Result<()> {
        let [rr, sa, sfn, probs, ..] = &mut self.f32s[..] else { unreachable!() };
        let mut out = RerankOutputs {
            log_s_rr: Some(window(&mut rr.1)),
            s_a: Some(window(&mut sa.1)),
            s_fn: Some(window(&mut sfn.1)),
            class_probs: Some(window(&mut probs.1)),
            order: Some(window(&mut self.u32s[0].1)),
        };
        session.rerank_into(batch, options, &mut out)
    }

    fn resample(
        &mut self,
        session: &mut Session,
        batch: &Batch<'_>,
        options: &ScoreOptions,
        request: &ResampleRequest<'_>,
    ) -> rrra::Result<()> {
        let [.., rs, rs_fn] = &mut self.f32s[..] else { unreachable!() };
        let [_, samples, counts] = &mut self.u32s[..] else { unreachable!() };
        let mut out = ResampleOutputs {
            log_s_rs: Some(window(&mut rs.1)),
            s_fn: Some(window(&mut rs_fn.1)),
            samples: Some(window(&mut samples.1)),
            sample_counts: Some(window(&mut counts.1)),
        };
        session.resample_into(batch, options, request, &mut out)
    }

    fn assert_guards_intact(&self, context: &str) {
        let guards = |len: usize| (0..GUARD).chain(len - GUARD..len);
        for (name, v) in &self.f32s {
            assert!(
                guards(v.len()).all(|i| v[i].to_bits() == F32_SENTINEL.to_bits()),
                "{context}: {name}: guard overwritten"
            );
        }
        for (name, v) in &self.u32s {
            assert!(guards(v.len()).all(|i| v[i] == U32_SENTINEL), "{context}: {name}: guard overwritten");
        }
    }

    /// The named buffers (all of them for `None`) hold nothing but sentinels.
    fn assert_untouched(&self, names: Option<&[&str]>, context: &str) {
        let chosen = |name: &str| names.is_none_or(|names| names.contains(&name));
        for (name, v) in self.f32s.iter().filter(|(n, _)| chosen(n)) {
            assert!(v.iter().all(|x| x.to_bits() == F32_SENTINEL.to_bits()), "{context}: {name} was written on error");
        }
        for (name, v) in self.u32s.iter().filter(|(n, _)| chosen(n)) {
            assert!(v.iter().all(|&x| x == U32_SENTINEL), "{context}: {name} was written on error");
        }
    }

    fn f32_window(&self, name: &str) -> &[f32] {
        let v = &self.f32s.iter().find(|(n, _)| *n == name).unwrap().1;
        &v[GUARD..v.len() - GUARD]
    }
    fn u32_window(&self, name: &str) -> &[u32] {
        let v = &self.u32s.iter().find(|(n, _)| *n == name).unwrap().1;
        &v[GUARD..v.len() - GUARD]
    }
}

#[test]
fn outputs_fill_exactly_their_windows() {
    let mut rng = TestRng::new(7);
    let config = random_config(&mut rng, Activation::Silu, Similarity::Dot, BaseTransform::Softmax);
    let fix = Fixture::random(&mut rng, 7, 5, config, 1.0);
    for counts in [vec![3, 0, 100, 1], vec![0, 0], vec![], vec![1], vec![300, 0, 2]] {
        let case = Case::random(&mut rng, 7, &counts, Embeddings::Normalised, BaseScores::Logits);
        let spec = RequestSpec { n: 4, seed: 99, first_query_index: 3, mask: Some(vec![0; case.total()]) };
        let (request, options) = (spec.request(), ScoreOptions::default());
        for (engine, layout) in engines().into_iter().flat_map(|e| LAYOUTS.map(|l| (e, l))) {
            let mut session = fix.session(engine);
            let context = format!("engine {engine:?}, counts {counts:?}, layout {layout:?}");
            let mut buffers = Buffers::new(case.total(), counts.len(), spec.n, None);
            let (want_rr, want_rs) = with_batch(&case, layout, |batch| {
                buffers.rerank(&mut session, batch, &options).unwrap();
                buffers.resample(&mut session, batch, &options, &request).unwrap();
                (session.rerank(batch, &options).unwrap(), session.resample(batch, &options, &request).unwrap())
            });
            buffers.assert_guards_intact(&context);
            let got_rr = Reranked {
                log_s_rr: buffers.f32_window("log_s_rr").to_vec(),
                s_a: buffers.f32_window("s_a").to_vec(),
                s_fn: buffers.f32_window("s_fn").to_vec(),
                class_probs: buffers.f32_window("class_probs").to_vec(),
                order: buffers.u32_window("order").to_vec(),
            };
            let got_rs = Resampled {
                log_s_rs: buffers.f32_window("log_s_rs").to_vec(),
                s_fn: buffers.f32_window("rs_s_fn").to_vec(),
                samples: buffers.u32_window("samples").to_vec(),
                sample_counts: buffers.u32_window("sample_counts").to_vec(),
            };
            assert!(same_rerank(&got_rr, &want_rr), "{context}: rerank_into differs from rerank");
            assert!(same_resample(&got_rs, &want_rs), "{context}: resample_into differs from resample");
        }
    }
}

#[test]
fn partial_outputs_match_full_outputs() {
    let mut rng = TestRng::new(8);
    let config = random_config(&mut rng, Activation::Tanh, Similarity::Cosine, BaseTransform::Sigmoid);
    let fix = Fixture::random(&mut rng, 7, 5, config, 1.0);
    let case = Case::random(&mut rng, 7, &[3, 0, 9], Embeddings::Normalised, BaseScores::Absent);
    let options = ScoreOptions::default();
    for engine in engines() {
        let mut session = fix.session(engine);
        with_batch(&case, LAYOUTS[0], |batch| {
            let full = session.rerank(batch, &options).unwrap();
            let mut order = vec![U32_SENTINEL; case.total()];
            let mut s_fn = vec![F32_SENTINEL; case.total()];
            let mut out = RerankOutputs { order: Some(&mut order), s_fn: Some(&mut s_fn), ..Default::default() };
            session.rerank_into(batch, &options, &mut out).unwrap();
            assert_eq!(order, full.order);
            assert_eq!(bits(&s_fn), bits(&full.s_fn));
            session.rerank_into(batch, &options, &mut RerankOutputs::default()).unwrap();
        });
    }
}

/// One session per engine, kept across many failing calls (a failure must not spoil a session).
struct ErrorProbe<'a> {
    fix: &'a Fixture,
    spec: RequestSpec,
    sessions: Vec<Session>,
}

impl ErrorProbe<'_> {
    /// Runs both calls on sentinel buffers on every engine and checks that each call fails as
    /// described and writes nothing; with `wrong` (a buffer name and a length change) only the
    /// call owning that buffer may fail.
    fn expect(
        &mut self,
        case: &Case,
        layout: Layout,
        options: &ScoreOptions,
        wrong: Option<(&str, isize)>,
        kind: ErrorKind,
        fragments: &[&str],
    ) {
        let request = self.spec.request();
        for session in &mut self.sessions {
            let context = format!(
                "engine {:?} | {} | {} | layout {layout:?} | options {options:?} | wrong buffer {wrong:?}",
                session.engine(),
                self.fix.describe(),
                case.describe()
            );
            let mut buffers = Buffers::new(case.total(), case.counts.len(), self.spec.n, wrong);
            let results = with_batch(case, layout, |batch| {
                [buffers.rerank(session, batch, options), buffers.resample(session, batch, options, &request)]
            });
            let failing: [&[&str]; 2] = [&RERANK_BUFFERS, &RESAMPLE_BUFFERS];
            let applies = |call: usize| wrong.is_none_or(|(name, _)| failing[call].contains(&name));
            for (call, result) in results.into_iter().enumerate() {
                let what = ["rerank_into", "resample_into"][call];
                if !applies(call) {
                    result.unwrap_or_else(|e| panic!("{context}: {what} should succeed: {e}"));
                    continue;
                }
                let e = result.err().unwrap_or_else(|| panic!("{context}: {what} succeeded, want {kind:?}"));
                assert_eq!(e.kind(), kind, "{context}: {what}: {e}");
                for fragment in fragments {
                    assert!(e.message().contains(fragment), "{context}: {what}: '{e}' does not contain '{fragment}'");
                }
            }
            // Every failing call wrote nothing; a succeeding one stayed inside its windows.
            buffers.assert_guards_intact(&context);
            for call in (0..2).filter(|&call| applies(call)) {
                buffers.assert_untouched(Some(failing[call]), &context);
            }
        }
    }

    /// [`ErrorProbe::expect`] in every layout.
    fn expect_all(&mut self, case: &Case, options: &ScoreOptions, kind: ErrorKind, fragments: &[&str]) {
        for layout in LAYOUTS {
            self.expect(case, layout, options, None, kind, fragments);
        }
    }

    /// `call`, made on sentinel buffers sized for `case`, must fail with `kind` naming
    /// `fragment`, on every engine.
    fn expect_raw(
        &mut self,
        what: &str,
        case: &Case,
        call: impl Fn(&mut Session, &mut Buffers) -> rrra::Result<()>,
        kind: ErrorKind,
        fragment: &str,
    ) {
        for session in &mut self.sessions {
            let context = format!("{what}, engine {:?}", session.engine());
            let mut buffers = Buffers::new(case.total(), case.counts.len(), self.spec.n, None);
            let e = call(session, &mut buffers).expect_err(&context);
            assert!(e.kind() == kind && e.message().contains(fragment), "{context}: got {:?}: {e}", e.kind());
            buffers.assert_untouched(None, &context);
        }
    }
}

#[test]
fn errors_name_the_culprit_and_leave_buffers_untouched() {
    let mut rng = TestRng::new(9);
    let config = random_config(&mut rng, Activation::Gelu, Similarity::Dot, BaseTransform::Sigmoid);
    let fix = Fixture::random(&mut rng, 7, 5, config, 1.0);
    let counts = [3, 0, 4, 2];
    let clean = Case::random(&mut rng, 7, &counts, Embeddings::Normalised, BaseScores::Logits);
    let spec = RequestSpec { n: 3, seed: 5, first_query_index: 0, mask: None };
    let sessions = engines().into_iter().map(|engine| fix.session(engine)).collect();
    let mut probe = ErrorProbe { fix: &fix, spec, sessions };
    let defaults = ScoreOptions::default();

    // A NaN in a candidate: query 2, position 1 is batch candidate 3 + 0 + 1 = 4. Give it a
    // pool row of its own so no other candidate shares the NaN.
    let mut nan_candidate = Case { pool: [clean.pool.clone(), vec![0.5; 7]].concat(), ..clean.slice(0, 4) };
    nan_candidate.ids[4] = (nan_candidate.pool.len() / 7 - 1) as u64;
    let row = nan_candidate.ids[4] as usize * 7;
    for bad in [f32::NAN, f32::NEG_INFINITY] {
        nan_candidate.pool[row + 2] = bad;
        probe.expect_all(&nan_candidate, &defaults, ErrorKind::NonFiniteInput, &["candidates", "query 2, position 1"]);
    }

    let mut nan_query = clean.slice(0, 4);
    nan_query.queries[3 * 7 + 6] = f32::INFINITY;
    probe.expect_all(&nan_query, &defaults, ErrorKind::NonFiniteInput, &["queries", "query 3"]);

    let mut nan_base = clean.slice(0, 4);
    nan_base.base.as_mut().unwrap()[8] = f32::NAN; // query 3, position 1
    probe.expect_all(&nan_base, &defaults, ErrorKind::NonFiniteInput, &["base_scores", "query 3, position 1"]);

    // Identity transform: a non-positive given score, and a non-positive sim(q, c).
    let identity = ScoreOptions { base_transform: Some(BaseTransform::Identity), ..defaults };
    let mut non_positive = clean.slice(0, 4);
    for bad in [0.0, -0.25] {
        let mut base = vec![0.5; clean.total()];
        base[5] = bad; // query 2, position 2
        non_positive.base = Some(base);
        probe.expect_all(&non_positive, &identity, ErrorKind::InvalidArgument, &["base_scores", "query 2, position 2"]);
    }
    let mut negative_sim = Case::random(&mut rng, 7, &counts, Embeddings::Positive, BaseScores::Absent);
    let negated: Vec<f32> = negative_sim.query(2).iter().map(|x| -x).collect();
    negative_sim.queries[2 * 7..3 * 7].copy_from_slice(&negated); // every sim(q2, c) < 0
    probe.expect_all(&negative_sim, &identity, ErrorKind::InvalidArgument, &["sim(q, c)", "query 2, position 0"]);

    // Invalid per-call options.
    for (options, name) in [
        (ScoreOptions { lambda_rr: Some(-1.0), ..defaults }, "lambda_rr"),
        (ScoreOptions { gamma_rs: Some(f64::NAN), ..defaults }, "gamma_rs"),
        (ScoreOptions { base_tau: Some(0.0), ..defaults }, "base_tau"),
        (ScoreOptions { base_mu: Some(f64::INFINITY), ..defaults }, "base_mu"),
    ] {
        probe.expect_all(&clean, &options, ErrorKind::InvalidArgument, &[name]);
    }

    // Wrong buffer lengths, one at a time, both too short and too long.
    for name in RERANK_BUFFERS.into_iter().chain(RESAMPLE_BUFFERS) {
        let shown = if name == "rs_s_fn" { "s_fn" } else { name };
        for delta in [-1, 1] {
            probe.expect(&clean, LAYOUTS[0], &defaults, Some((name, delta)), ErrorKind::InvalidArgument, &[shown]);
        }
    }

    // Mask, id and dimension problems.
    let bad_mask = RequestSpec { mask: Some(vec![0; clean.total() - 1]), ..probe.spec };
    let resample_bad_mask = |session: &mut Session, buffers: &mut Buffers| {
        with_batch(&clean, LAYOUTS[2], |b| buffers.resample(session, b, &defaults, &bad_mask.request()))
    };
    probe.expect_raw("mask length", &clean, resample_bad_mask, ErrorKind::InvalidArgument, "positive_mask");

    let corpus_rows = clean.pool.len() / 7;
    let corpus = Corpus::new(&clean.pool, corpus_rows, 7, 7).unwrap();
    let mut ids = clean.ids.clone();
    ids[7] = corpus_rows as u64; // query 3, position 0
    let by_id = Batch {
        candidates: Candidates::ById { corpus: &corpus, ids: &ids },
        ..Batch::dense(7, &clean.queries, &clean.counts, &[] as &[f32])
    };
    let rerank_by_id = |session: &mut Session, buffers: &mut Buffers| buffers.rerank(session, &by_id, &defaults);
    probe.expect_raw("id out of range", &clean, rerank_by_id, ErrorKind::InvalidArgument, "query 3, position 0");

    let six_wide = vec![0.5f32; 6 * clean.total()];
    let wrong_dim = Batch::dense(6, &clean.queries[..6 * counts.len()], &clean.counts, &six_wide);
    let rerank_wrong_dim =
        |session: &mut Session, buffers: &mut Buffers| buffers.rerank(session, &wrong_dim, &defaults);
    probe.expect_raw("dimension mismatch", &clean, rerank_wrong_dim, ErrorKind::DimensionMismatch, "dim");

    // After all those failures the same sessions still give the right answers.
    for session in &mut probe.sessions {
        check_with_session(session, &fix, &clean, &defaults, &LAYOUTS, &mut rng, "after errors");
    }
}

// =============================================================================================
// Sampler (SPEC §5).
// =============================================================================================

struct SamplerKat {
    name: &'static str,
    seed: u64,
    query_index: u64,
    log_s_rs: &'static [f32],
    mask: Option<&'static [u8]>,
    expected: &'static [u32],
    count: usize,
}

// ---- Output of `python3 tests/sampler_kat.py`, values unedited (rustfmt wraps long lines). ----
const SPLITMIX_SEED: u64 = 1234567;
const SPLITMIX_OUTPUTS: [u64; 5] =
    [0x599ED017FB08FC85, 0x2C73F08458540FA5, 0x883EBCE5A3F27C77, 0x3FBEF740E9177B3F, 0xE3B8346708CB5ECD];
const SPLITMIX_SEED0_OUTPUTS: [u64; 3] = [0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4, 0x06C45D188009454F];
/// Bit patterns of the first three uniforms of the stream for (seed 1234567, query 3).
const QUERY3_UNIFORM_BITS: [u64; 3] = [0x3FE17DD1AE1571F2, 0x3FED5DAE6B84DCEE, 0x3FCCB013768DFC02];

const SAMPLER_KATS: &[SamplerKat] = &[
    SamplerKat {
        name: "basic",
        seed: 0x000000000012D687,
        query_index: 0x0000000000000000,
        log_s_rs: &[-0.5, -1.25, -3.0, -0.125, -2.0, -0.75, -5.5, -1.0],
        mask: None,
        expected: &[0, 1, 5],
        count: 3,
    },
    SamplerKat {
        name: "ties_masked",
        seed: 0x000000000000002A,
        query_index: 0x0000000000000007,
        log_s_rs: &[-1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0, -1.0],
        mask: Some(&[0, 1, 0, 0, 1, 0, 0, 0, 0, 1]),
        expected: &[8, 0, 3, 2],
        count: 4,
    },
    SamplerKat {
        name: "underflow_and_positive",
        seed: 0xDEADBEEFCAFEF00D,
        query_index: 0x0000010000000003,
        log_s_rs: &[-1000.0, 0.5, -2.25, -1000.0, 2.0, -0.375, -1000.0],
        mask: Some(&[0, 0, 1, 0, 0, 0, 0]),
        expected: &[4, 1, 5, 0, 3, 6, NOT_DRAWN, NOT_DRAWN, NOT_DRAWN],
        count: 6,
    },
    SamplerKat {
        name: "empty",
        seed: 0x0000000000000000,
        query_index: 0x0000000000000000,
        log_s_rs: &[],
        mask: None,
        expected: &[NOT_DRAWN, NOT_DRAWN],
        count: 0,
    },
    SamplerKat {
        name: "all_underflow",
        seed: 0x0000000000000063,
        query_index: 0x0000000000000001,
        log_s_rs: &[-1000.0, -1000.0, -1000.0, -1000.0, -1000.0],
        mask: Some(&[0, 0, 1, 0, 0]),
        expected: &[0, 1, 3],
        count: 3,
    },
    SamplerKat {
        name: "query_index_max",
        seed: 0x00000000000007E8,
        query_index: 0xFFFFFFFFFFFFFFFF,
        log_s_rs: &[-0.25, -4.0, -0.625, -1.5, -0.125, -8.0],
        mask: None,
        expected: &[4, 0, 2, 3],
        count: 4,
    },
    SamplerKat {
        name: "zero_n",
        seed: 0x0000000000000005,
        query_index: 0x0000000000000005,
        log_s_rs: &[-1.0, -2.0, -3.0],
        mask: None,
        expected: &[],
        count: 0,
    },
    SamplerKat {
        name: "twenty",
        seed: 0x0123456789ABCDEF,
        query_index: 0x000000000000001F,
        log_s_rs: &[
            -0.0, -4.625, -4.125, -3.625, -3.125, -2.625, -2.125, -1.625, -1.125, -0.625, -0.125, -4.75, -4.25, -3.75,
            -3.25, -2.75, -2.25, -1.75, -1.25, -0.75,
        ],
        mask: Some(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0]),
        expected: &[19, 9, 5, 18, 0, 8],
        count: 6,
    },
    SamplerKat {
        name: "u_is_one",
        seed: 0xAF55F34F046B4DBE,
        query_index: 0x0000000000000000,
        log_s_rs: &[-5.0, -1.0, -0.5],
        mask: None,
        expected: &[0, 2, 1],
        count: 3,
    },
];

const SAMPLER_EDGE_KATS: &[SamplerKat] = &[
    SamplerKat {
        name: "u_is_one_weight_underflows",
        seed: 0xAF55F34F046B4DBE,
        query_index: 0x0000000000000000,
        log_s_rs: &[-1000.0, -1000.0, -1.0],
        mask: None,
        expected: &[2, 0, 1],
        count: 3,
    },
    SamplerKat {
        name: "u_is_one_weight_underflows_q5",
        seed: 0x842E50AE809FD9D5,
        query_index: 0x0000000000000005,
        log_s_rs: &[-1000.0, -0.5, -1000.0],
        mask: None,
        expected: &[1, 0, 2],
        count: 3,
    },
];
// ---- End of generated output. ----

#[test]
fn splitmix64_known_answers() {
    let mut lib = SplitMix64::new(SPLITMIX_SEED);
    let mut mine = RefSplitMix(SPLITMIX_SEED);
    for want in SPLITMIX_OUTPUTS {
        assert_eq!(lib.next_u64(), want);
        assert_eq!(mine.next_u64(), want);
    }
    let mut lib = SplitMix64::new(0);
    for want in SPLITMIX_SEED0_OUTPUTS {
        assert_eq!(lib.next_u64(), want);
    }
    let mut lib = SplitMix64::for_query(SPLITMIX_SEED, 3);
    let mut mine = RefSplitMix::for_query(SPLITMIX_SEED, 3);
    for want in QUERY3_UNIFORM_BITS {
        assert_eq!(lib.next_open01().to_bits(), want);
        assert_eq!(mine.next_open01().to_bits(), want);
    }
}

/// Checks the known answers against the test's own sampler and, with `library`, the crate's.
fn check_kats(kats: &[SamplerKat], library: bool) {
    for kat in kats {
        let n = kat.expected.len();
        let mine = padded(ref_sample(kat.log_s_rs, kat.mask, kat.seed, kat.query_index, n), n);
        assert_eq!(mine.as_slice(), kat.expected, "test reference, KAT '{}'", kat.name);
        if library {
            let mut out = vec![U32_SENTINEL; n];
            let count = sample_negatives(kat.log_s_rs, kat.mask, kat.seed, kat.query_index, &mut out).unwrap();
            assert_eq!((out.as_slice(), count), (kat.expected, kat.count), "library, KAT '{}'", kat.name);
        }
    }
}

#[test]
fn sampler_known_answers() {
    check_kats(SAMPLER_KATS, true);
    check_kats(SAMPLER_EDGE_KATS, true);
}

/// log s_RS vectors that stress the key order: ordinary values, heavy ties, underflowing weights
/// (key −∞), huge weights and exactly representable values.
fn random_log_weights(rng: &mut TestRng, k: usize) -> Vec<f32> {
    let style = rng.below(4);
    (0..k)
        .map(|_| match (style, rng.below(10)) {
            (0, _) => (rng.normal() * 2.0 - 3.0) as f32,
            (1, _) => -(rng.below(4) as f32) / 8.0,
            (2, 0..=3) => -1000.0,
            (2, 4) => -700.0,
            (2, _) => -(rng.below(40) as f32) / 8.0,
            (_, 0) => rng.uniform(0.0, 30.0) as f32,
            (_, 1) => -88.0,
            _ => rng.uniform(-20.0, 0.0) as f32,
        })
        .collect()
}

#[test]
fn sampler_matches_independent_implementation() {
    let mut rng = TestRng::new(10);
    for trial in 0..600 {
        let k = rng.pick(&[0, 1, 2, 3, 17, 100, 400]);
        let log_s_rs = random_log_weights(&mut rng, k);
        let mask: Option<Vec<u8>> = match rng.below(4) {
            0 => None,
            1 => Some(vec![1; k]),
            _ => Some((0..k).map(|_| if rng.below(3) == 0 { rng.pick(&[1, 7, 255]) } else { 0 }).collect()),
        };
        let n = rng.pick(&[0, 1, 5, k / 2, k, k + 3]);
        let (seed, any_index) = (rng.next_u64(), rng.next_u64());
        let query_index = rng.pick(&[0, 1, any_index, u64::MAX]);
        let mut out = vec![U32_SENTINEL; n];
        let count = sample_negatives(&log_s_rs, mask.as_deref(), seed, query_index, &mut out).unwrap();
        let want = ref_sample(&log_s_rs, mask.as_deref(), seed, query_index, n);
        assert_eq!(
            (count, out),
            (want.len(), padded(want, n)),
            "trial {trial}: k={k} n={n} seed={seed:#x} query_index={query_index} mask={mask:?} log_s_rs={log_s_rs:?}"
        );
    }
}

#[test]
fn sampler_rejects_bad_input_without_writing() {
    let mut out = [U32_SENTINEL; 3];
    let e = sample_negatives(&[-1.0, f32::NAN, -2.0], None, 1, 0, &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NonFiniteInput, "{e}");
    assert!(e.message().contains("position 1"), "{e}");
    let e = sample_negatives(&[-1.0, -2.0], Some(&[0]), 1, 0, &mut out).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{e}");
    assert!(e.message().contains("positive_mask"), "{e}");
    assert_eq!(out, [U32_SENTINEL; 3]);
}

#[test]
fn resampling_a_split_batch_draws_the_same_negatives() {
    let mut rng = TestRng::new(11);
    let config = random_config(&mut rng, Activation::Relu, Similarity::Dot, BaseTransform::Softmax);
    let fix = Fixture::random(&mut rng, 7, 5, config, 1.0);
    let case = Case::random(&mut rng, 7, &[5, 0, 9, 3, 12], Embeddings::Normalised, BaseScores::Logits);
    let mask: Vec<u8> = (0..case.total()).map(|i| (i % 4 == 1) as u8).collect();
    let options = ScoreOptions::default();
    let run = |session: &mut Session, case: &Case, first_query_index: u64, mask: &[u8]| {
        let request = ResampleRequest { samples_per_query: 4, seed: 77, first_query_index, positive_mask: Some(mask) };
        with_batch(case, LAYOUTS[0], |b| session.resample(b, &options, &request)).unwrap()
    };
    let split_at = case.ranges()[2].start;
    for engine in engines() {
        let mut session = fix.session(engine);
        let whole = run(&mut session, &case, 40, &mask);
        let head = run(&mut session, &case.slice(0, 2), 40, &mask[..split_at]);
        let tail = run(&mut session, &case.slice(2, 5), 42, &mask[split_at..]);
        assert_eq!(whole.samples, [head.samples, tail.samples].concat(), "engine {engine:?}");
        assert_eq!(whole.sample_counts, [head.sample_counts, tail.sample_counts].concat(), "engine {engine:?}");
        assert_eq!(bits(&whole.log_s_rs), bits(&[head.log_s_rs, tail.log_s_rs].concat()), "engine {engine:?}");
    }
}

// =============================================================================================
// Threads.
// =============================================================================================

#[test]
fn one_adapter_four_threads_bit_identical() {
    let mut rng = TestRng::new(12);
    let config = random_config(&mut rng, Activation::Gelu, Similarity::Cosine, BaseTransform::Softmax);
    let fix = Fixture::random(&mut rng, 64, 128, config, 1.0);
    let cases: Vec<Case> = (0..3)
        .map(|_| {
            let counts = random_counts(&mut rng, 4, &[0, 1, 3, 40]);
            Case::random(&mut rng, 64, &counts, Embeddings::Normalised, BaseScores::Logits)
        })
        .collect();
    let specs: Vec<RequestSpec> = cases.iter().map(|c| RequestSpec::random(&mut rng, c.total())).collect();
    let options = ScoreOptions { lambda_rr: Some(0.7), ..ScoreOptions::default() };
    let run_all = |session: &mut Session, rounds: usize| -> Vec<(Reranked, Resampled)> {
        (0..rounds * cases.len())
            .map(|i| {
                let (case, spec) = (&cases[i % cases.len()], &specs[i % cases.len()]);
                with_batch(case, LAYOUTS[i % LAYOUTS.len()], |b| {
                    (session.rerank(b, &options).unwrap(), session.resample(b, &options, &spec.request()).unwrap())
                })
            })
            .collect()
    };
    // Thread t runs engine t % 2 (so both engines run concurrently) in its own session.
    let engines = engines();
    let engine_of = |t: usize| engines[t % engines.len()];
    let single: Vec<_> = engines.iter().map(|&engine| run_all(&mut fix.session(engine), 2)).collect();
    let threaded: Vec<Vec<(Reranked, Resampled)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let options = engine_of(t).options(1);
                let adapter = Arc::clone(&fix.adapter);
                scope.spawn(move || run_all(&mut Session::new(adapter, options).unwrap(), 2))
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("thread panicked")).collect()
    });
    for (t, results) in threaded.iter().enumerate() {
        let want = &single[t % engines.len()];
        for (i, ((rr, rs), (rr0, rs0))) in results.iter().zip(want).enumerate() {
            assert!(
                same_rerank(rr, rr0) && same_resample(rs, rs0),
                "thread {t} (engine {:?}), call {i}: differs from the single-threaded run",
                engine_of(t)
            );
        }
    }
}

#[test]
fn threaded_sessions_bit_identical_to_one_thread() {
    // A session with several threads splits each batch's queries between them, and shares a
    // list between them; neither may change a single bit, whatever the layout, with empty lists
    // at the split points.
    let mut rng = TestRng::new(21);
    let config = random_config(&mut rng, Activation::Silu, Similarity::Dot, BaseTransform::Softmax);
    let fix = Fixture::random(&mut rng, 7, 5, config.clone(), 1.0);
    // Several lists: split between threads by query. One long list: split within the query.
    let many = Case::random(&mut rng, 7, &[3, 0, 40, 1, 0, 17, 300, 2, 0], Embeddings::Normalised, BaseScores::Absent);
    let one = Case::random(&mut rng, 7, &[0, 700, 0], Embeddings::Normalised, BaseScores::Logits);
    // One short list over many hidden panels: split by panel group, on the folded engine.
    let wide = Fixture::random(&mut rng, 33, 150, config, 1.0);
    let short = Case::random(&mut rng, 33, &[0, 100, 0], Embeddings::Normalised, BaseScores::Logits);
    let barely = Case::random(&mut rng, 33, &[16], Embeddings::Normalised, BaseScores::Absent);
    let several = Case::random(&mut rng, 33, &[20, 0, 64, 5], Embeddings::Normalised, BaseScores::Absent);
    let cases = [(&fix, &many), (&fix, &one), (&wide, &short), (&wide, &barely), (&wide, &several)];
    let options = ScoreOptions::default();
    for (engine, &(fix, case)) in engines().into_iter().flat_map(|e| cases.iter().map(move |c| (e, c))) {
        let spec = RequestSpec::random(&mut rng, case.total());
        for layout in LAYOUTS {
            let run = |session: &mut Session| {
                with_batch(case, layout, |b| {
                    (session.rerank(b, &options).unwrap(), session.resample(b, &options, &spec.request()).unwrap())
                })
            };
            let (rr0, rs0) = run(&mut fix.session(engine));
            for threads in [2, 3, 9, 16] {
                let settings = engine.options(threads);
                let mut session = Session::new(fix.adapter.clone(), settings).unwrap();
                assert_eq!(session.threads(), threads);
                let (rr, rs) = run(&mut session);
                assert!(
                    same_rerank(&rr, &rr0) && same_resample(&rs, &rs0),
                    "{engine:?}, {layout:?}, {threads} threads, {}: differs from one thread",
                    case.describe()
                );
            }
        }
    }
    for threads in [0, rrra::MAX_THREADS + 1, usize::MAX] {
        let bad = SessionOptions { threads, ..Default::default() };
        let err = Session::new(fix.adapter.clone(), bad).err().expect("refused");
        assert!(err.kind() == ErrorKind::InvalidArgument && err.message().contains("threads"), "{err}");
    }
}

// =============================================================================================
// Regressions: extreme inputs that once gave a wrong answer instead of an error.
// =============================================================================================

#[test]
fn library_cosine_of_large_finite_vectors() {
    let mut rng = TestRng::new(13);
    let config = random_config(&mut rng, Activation::Tanh, Similarity::Cosine, BaseTransform::Sigmoid);
    let fix = Fixture::random(&mut rng, 4, 3, config, 1.0);
    let mut case = Case::random(&mut rng, 4, &[3], Embeddings::Normalised, BaseScores::Absent);
    // ‖q‖ ≈ 2.3e19: q·q ≈ 5e38 overflows f32, every other intermediate stays in range (tanh bounds
    // the hidden layer), and the cosines themselves are ordinary numbers in [−1, 1].
    case.queries = vec![2e19, 1e19, -5e18, 2e18];
    let params = RefParams::resolve(fix.adapter.config(), &ScoreOptions::default());
    let refs = reference(&fix, &case, &params).unwrap();
    for engine in engines() {
        match with_batch(&case, LAYOUTS[0], |b| fix.session(engine).rerank(b, &ScoreOptions::default())) {
            Err(e) => assert_eq!(e.kind(), ErrorKind::Numeric, "engine {engine:?}: {e}"),
            Ok(got) => {
                let mut m = Mismatches::new(format!("huge query norm, engine {engine:?}: {}", fix.describe()));
                check_rerank(&mut m, &case, &refs, &got);
                m.finish();
            }
        }
    }
}

#[test]
fn library_rerank_score_overflowing_f32() {
    let mut rng = TestRng::new(14);
    let config = random_config(&mut rng, Activation::Relu, Similarity::Dot, BaseTransform::Sigmoid);
    let fix = Fixture::random(&mut rng, 4, 3, config, 1.0);
    let mut case = Case::random(&mut rng, 4, &[2], Embeddings::Normalised, BaseScores::Logits);
    case.base = Some(vec![-3e38, 0.5]); // finite; log s_B ≈ −3e39 at base_tau = 0.1
    let options = ScoreOptions { base_tau: Some(0.1), ..ScoreOptions::default() };
    let request = ResampleRequest { samples_per_query: 1, ..ResampleRequest::default() };
    for engine in engines() {
        let (rr, rs) = with_batch(&case, LAYOUTS[0], |b| {
            let mut session = fix.session(engine);
            (session.rerank(b, &options), session.resample(b, &options, &request))
        });
        assert_eq!(rr.is_ok(), rs.is_ok(), "engine {engine:?}: rerank {rr:?} and resample {rs:?} disagree");
        if let Ok(rr) = rr {
            assert!(rr.log_s_rr.iter().all(|x| x.is_finite()), "finite input gave log s_RR {:?}", rr.log_s_rr);
        }
    }
}

#[test]
fn a_hidden_layer_overflow_is_an_error_even_where_the_activation_hides_it() {
    // W_c = −1e30 and inputs of 1e10: every pre-activation is −∞ in f32, which ReLU and tanh
    // would turn into 0 and −1 and so into finite, wrong scores.
    let (d, h) = (4, 3);
    let weights = AdapterWeights {
        dim: d,
        hidden: h,
        fc1_weight: (0..h * 3 * d).map(|i| if i % (3 * d) >= 2 * d { -1e30 } else { 0.0 }).collect(),
        fc1_bias: vec![0.0; h],
        fc2_weight: vec![0.01; d * h],
        fc2_bias: vec![0.0; d],
        classifier_weight: vec![0.1; 4 * h],
        classifier_bias: vec![0.0; 4],
    };
    let (q, c) = (vec![1e10f32; 2 * d], vec![1e10f32; 2 * d]);
    for activation in [Activation::Relu, Activation::Tanh] {
        for similarity in SIMILARITIES {
            let config = AdapterConfig { activation, similarity, ..AdapterConfig::default() };
            let adapter = Arc::new(Adapter::new(weights.clone(), config).expect("valid adapter"));
            for engine in engines() {
                let mut session = Session::new(adapter.clone(), engine.options(1)).expect("session");
                let what = format!("{engine:?}, {activation:?}, {similarity:?}");
                let Err(e) = session.rerank(&Batch::dense(d, &q, &[0, 2], &c), &ScoreOptions::default()) else {
                    panic!("{what}: scored without an error")
                };
                assert_eq!(e.kind(), ErrorKind::Numeric, "{what}: {e}");
                assert!(e.message().contains("query 1") && e.message().contains("f32"), "{what}: {e}");
            }
        }
    }
}
