//! The CUDA engine: how a session chooses it and says why (runs everywhere), and, on a machine
//! with a GPU and a build with `--features cuda`, parity of every precision against the float64
//! reference of SPEC §3–§4 within SPEC §6, bit-identical results across layouts and threads,
//! batches that cross the engine's chunk limits, and guard values around every output buffer.
//! Without a GPU the GPU tests print why they skipped and pass. (`tests/parity.rs` also runs its
//! whole suite on the CUDA engine's f32 path where one is present.)

#[allow(dead_code)]
mod common;

use common::{random_weights, score_query, Mismatches, RawWeights, RefModel, RefParams, RefScore, TestRng};
use rrra::{
    Activation, Adapter, AdapterConfig, AdapterWeights, BaseTransform, Batch, Candidates, Corpus, CpuKernel,
    EngineKind, EnginePreference, ErrorKind, Precision, RerankOutputs, ResampleOutputs, ResampleRequest, ScoreOptions,
    Session, SessionOptions, Similarity,
};
use std::sync::Arc;

fn small_adapter() -> Arc<Adapter> {
    Arc::new(Adapter::new(AdapterWeights::random(8, 6, 1), AdapterConfig::default()).expect("valid adapter"))
}

fn options(engine: EnginePreference, precision: Precision) -> SessionOptions {
    SessionOptions { engine, precision, ..Default::default() }
}

fn open(adapter: &Arc<Adapter>, options: SessionOptions) -> rrra::Result<Session> {
    Session::new(adapter.clone(), options)
}

/// A CUDA session with `precision`, or `None` after printing why there is none here.
fn cuda_session(adapter: &Arc<Adapter>, precision: Precision) -> Option<Session> {
    match open(adapter, options(EnginePreference::Force(EngineKind::Cuda), precision)) {
        Ok(session) => Some(session),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.message());
            println!("skipped ({}): {}", precision.name(), e.message());
            None
        }
    }
}

// =============================================================================================
// Choosing the engine: no GPU needed.
// =============================================================================================

#[test]
fn forcing_cuda_works_or_says_what_is_missing() {
    let adapter = small_adapter();
    match open(&adapter, options(EnginePreference::Force(EngineKind::Cuda), Precision::F32)) {
        Ok(session) => {
            assert_eq!(session.engine(), EngineKind::Cuda);
            assert_eq!(session.precision(), Precision::F32);
            assert_eq!(session.cpu_kernel(), None);
            println!("cuda engine: {}", session.engine_reason());
        }
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.message());
            let named =
                ["not compiled in", "libcuda", "libnvrtc", "no CUDA device", "compute capability", "NVRTC", "cuda:"];
            assert!(named.iter().any(|n| e.message().contains(n)), "{}", e.message());
            if !cfg!(feature = "cuda") {
                assert_eq!(e.message(), "the cuda engine is not compiled in (build with --features cuda)");
            }
            println!("no cuda engine here: {}", e.message());
        }
    }
}

#[test]
fn auto_chooses_cuda_only_where_it_runs_and_says_why_not() {
    let adapter = small_adapter();
    let cuda_runs = open(&adapter, options(EnginePreference::Force(EngineKind::Cuda), Precision::F32)).is_ok();
    let auto = open(&adapter, SessionOptions::default()).expect("auto always opens");
    println!("auto: {:?}: {}", auto.engine(), auto.engine_reason());
    if cuda_runs {
        assert_eq!(auto.engine(), EngineKind::Cuda);
        assert!(auto.engine_reason().starts_with("auto: the cuda engine"), "{}", auto.engine_reason());
    } else {
        assert_eq!(auto.engine(), EngineKind::Folded);
        assert!(auto.engine_reason().starts_with("auto: the folded CPU engine (cuda: "), "{}", auto.engine_reason());
        if !cfg!(feature = "cuda") {
            assert!(auto.engine_reason().contains("(cuda: not compiled in"), "{}", auto.engine_reason());
        }
    }
    // A forced CPU kernel means the CPU engine, whatever the machine has.
    let cpu = open(&adapter, SessionOptions { cpu_kernel: Some(CpuKernel::Portable), ..Default::default() }).unwrap();
    assert_eq!((cpu.engine(), cpu.cpu_kernel()), (EngineKind::Folded, Some(CpuKernel::Portable)));
    // bf16 with Auto: the cuda engine where it runs; elsewhere an error, since the CPU engines
    // have no bf16 arithmetic, that says so and why cuda was not chosen.
    match open(&adapter, options(EnginePreference::Auto, Precision::Bf16)) {
        Ok(s) => assert_eq!((s.engine(), s.precision()), (EngineKind::Cuda, Precision::Bf16)),
        Err(e) => {
            assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.message());
            assert!(cuda_runs || e.message().contains("the cuda engine, which has it, is not here"), "{}", e.message());
        }
    }
}

#[test]
fn options_of_one_engine_are_refused_for_another() {
    let adapter = small_adapter();
    let cases = [
        (
            SessionOptions {
                engine: EnginePreference::Force(EngineKind::Cuda),
                cpu_kernel: Some(CpuKernel::Portable),
                ..Default::default()
            },
            "the cuda engine has no CPU kernels",
        ),
        (
            options(EnginePreference::Force(EngineKind::Reference), Precision::F16),
            "the reference engine computes in f32 only",
        ),
    ];
    for (options, needle) in cases {
        let e = open(&adapter, options).err().unwrap_or_else(|| panic!("{options:?} opened"));
        assert_eq!(e.kind(), ErrorKind::InvalidArgument, "{}", e.message());
        assert!(e.message().contains(needle), "{options:?}: {}", e.message());
    }
    // The CPU engines have no bf16 arithmetic, and say why.
    let e = open(&adapter, options(EnginePreference::Force(EngineKind::Folded), Precision::Bf16)).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Unsupported, "{}", e.message());
    assert!(e.message().contains("half the f32 FMA rate"), "{}", e.message());
}

#[test]
fn precision_names_round_trip() {
    for p in Precision::ALL {
        assert_eq!(Precision::from_name(p.name()), Some(p));
    }
    assert_eq!(Precision::from_name("fp8"), None);
}

// =============================================================================================
// On a GPU.
// =============================================================================================

/// SPEC §6: (log s_RR relative tolerance, s_FN absolute tolerance) for a precision.
fn tolerances(precision: Precision) -> (f64, f64) {
    match precision {
        Precision::F32 => (1e-4, 1e-5),
        Precision::Bf16 | Precision::F16 => (2e-2, 2e-3),
    }
}

struct Fixture {
    adapter: Arc<Adapter>,
    model: RefModel,
}

impl Fixture {
    /// [`random_weights`] under a plausible configuration.
    fn random(rng: &mut TestRng, d: usize, h: usize, activation: Activation, similarity: Similarity) -> Fixture {
        let weights = random_weights(rng, d, h, 1.0);
        let config = AdapterConfig {
            activation,
            similarity,
            adapter_mu: 0.1,
            adapter_tau: if similarity == Similarity::Cosine { 0.25 } else { 0.5 },
            base_transform: BaseTransform::Sigmoid,
            lambda_rr: 1.0,
            gamma_rs: 1.0,
            ..AdapterConfig::default()
        };
        let adapter = Adapter::new(weights, config).expect("valid adapter");
        let model = RefModel::new(d, h, &RawWeights::of(adapter.weights()), activation, similarity);
        Fixture { adapter: Arc::new(adapter), model }
    }

    /// The float64 reference of every candidate of the batch.
    fn reference(&self, d: usize, queries: &[f32], counts: &[usize], candidates: &[f32]) -> Vec<RefScore> {
        let params = RefParams::resolve(self.adapter.config(), &ScoreOptions::default());
        let mut out = Vec::new();
        let mut start = 0;
        for (qi, &k) in counts.iter().enumerate() {
            let q = &queries[qi * d..(qi + 1) * d];
            let pairs: Vec<_> =
                (start..start + k).map(|i| self.model.pair(q, &candidates[i * d..(i + 1) * d])).collect();
            out.extend(score_query(&params, &pairs, None, qi).expect("sigmoid never refuses"));
            start += k;
        }
        out
    }
}

/// Unit-norm-ish embeddings with candidates correlated with their query, like a retriever's.
fn batch_data(rng: &mut TestRng, d: usize, counts: &[usize]) -> (Vec<f32>, Vec<f32>) {
    let unit = 1.0 / (d as f64).sqrt();
    let queries = rng.normal_vec(counts.len() * d, unit);
    let mut candidates = Vec::new();
    for (qi, &k) in counts.iter().enumerate() {
        for _ in 0..k {
            let noise = rng.normal_vec(d, unit);
            candidates.extend(noise.iter().zip(&queries[qi * d..(qi + 1) * d]).map(|(n, q)| 0.5 * q + n));
        }
    }
    (queries, candidates)
}

/// SPEC §6 for one batch: log s_RR, s_FN and (reduced precision) the top-10 order.
fn check_against_reference(
    m: &mut Mismatches,
    precision: Precision,
    counts: &[usize],
    refs: &[RefScore],
    got: &rrra::Reranked,
) {
    let (log_tol, fn_tol) = tolerances(precision);
    let mut start = 0;
    for (q, &k) in counts.iter().enumerate() {
        for i in 0..k {
            let (r, at) = (&refs[start + i], start + i);
            m.close("log_s_rr", q, i, got.log_s_rr[at] as f64, r.log_s_rr, log_tol * r.log_s_rr.abs().max(1.0));
            m.close("s_fn", q, i, got.s_fn[at] as f64, r.probs[1], fn_tol);
        }
        if precision != Precision::F32 {
            // The top-10 order equals the reference's wherever neighbouring reference scores
            // differ by more than 1e-2.
            let mut order: Vec<usize> = (0..k).collect();
            order.sort_by(|&a, &b| refs[start + b].log_s_rr.total_cmp(&refs[start + a].log_s_rr));
            let got_order = &got.order[start..start + k];
            for pos in 0..k.min(10) {
                let well_separated = |p: usize| {
                    let here = refs[start + order[p]].log_s_rr;
                    (p == 0 || refs[start + order[p - 1]].log_s_rr - here > 1e-2)
                        && (p + 1 >= k || here - refs[start + order[p + 1]].log_s_rr > 1e-2)
                };
                if well_separated(pos) && got_order[pos] as usize != order[pos] {
                    m.push(format!(
                        "query {q}: position {pos} of the order is {}, want {}",
                        got_order[pos], order[pos]
                    ));
                }
            }
        }
        start += k;
    }
}

const ACTIVATIONS: [Activation; 5] =
    [Activation::Relu, Activation::Gelu, Activation::GeluTanh, Activation::Silu, Activation::Tanh];

#[test]
fn every_precision_meets_spec_6_against_float64() {
    // Shapes around the tile sizes (64 and 128 rows, 32/16 columns of K, 64 of N) and the
    // d = h = 768 of the timings.
    let shapes: [(usize, usize, &[usize]); 4] =
        [(7, 5, &[0, 1, 3]), (100, 70, &[1, 63, 64, 65, 0, 129]), (384, 200, &[128, 257]), (768, 768, &[100, 300])];
    for precision in Precision::ALL {
        let Some(_) = cuda_session(&small_adapter(), precision) else { continue };
        let mut rng = TestRng::new(0xC0DA ^ precision as u64);
        for (d, h, counts) in shapes {
            for (a, activation) in ACTIVATIONS.into_iter().enumerate() {
                let similarity = if a % 2 == 0 { Similarity::Dot } else { Similarity::Cosine };
                for similarity in [similarity, Similarity::Dot] {
                    let fix = Fixture::random(&mut rng, d, h, activation, similarity);
                    let (queries, candidates) = batch_data(&mut rng, d, counts);
                    let refs = fix.reference(d, &queries, counts, &candidates);
                    let context = format!("{} d={d} h={h} {activation:?} {similarity:?}", precision.name());
                    let mut session = cuda_session(&fix.adapter, precision).expect("opened before");
                    let got = session
                        .rerank(&Batch::dense(d, &queries, counts, &candidates), &ScoreOptions::default())
                        .unwrap_or_else(|e| panic!("{context}: {}", e.message()));
                    let mut m = Mismatches::new(context);
                    check_against_reference(&mut m, precision, counts, &refs, &got);
                    m.finish();
                }
            }
        }
    }
}

#[test]
fn agrees_with_the_reference_engine() {
    for precision in Precision::ALL {
        let Some(_) = cuda_session(&small_adapter(), precision) else { continue };
        let mut rng = TestRng::new(77);
        for similarity in [Similarity::Dot, Similarity::Cosine] {
            let fix = Fixture::random(&mut rng, 96, 80, Activation::Gelu, similarity);
            let counts = [40, 0, 130, 7];
            let (queries, candidates) = batch_data(&mut rng, 96, &counts);
            let batch = Batch::dense(96, &queries, &counts, &candidates);
            let reference = open(&fix.adapter, options(EnginePreference::Force(EngineKind::Reference), Precision::F32))
                .unwrap()
                .rerank(&batch, &ScoreOptions::default())
                .unwrap();
            let got = cuda_session(&fix.adapter, precision).unwrap().rerank(&batch, &ScoreOptions::default()).unwrap();
            let (log_tol, fn_tol) = tolerances(precision);
            let mut m = Mismatches::new(format!("{} {similarity:?} vs the reference engine", precision.name()));
            for i in 0..got.log_s_rr.len() {
                let want = reference.log_s_rr[i] as f64;
                // Two f32 engines: twice SPEC §6's distance from the truth at most.
                let tol = 2.0 * log_tol * want.abs().max(1.0);
                m.close("log_s_rr", 0, i, got.log_s_rr[i] as f64, want, tol);
                m.close("s_fn", 0, i, got.s_fn[i] as f64, reference.s_fn[i] as f64, 2.0 * fn_tol);
            }
            m.finish();
        }
    }
}

/// Same results, to the bit, from dense rows and from corpus ids, with 1 and 3 threads: each
/// pair's arithmetic must not depend on its neighbours, the chunking or the thread.
#[test]
fn results_do_not_depend_on_layout_or_threads() {
    for precision in Precision::ALL {
        let Some(_) = cuda_session(&small_adapter(), precision) else { continue };
        let mut rng = TestRng::new(5);
        for similarity in [Similarity::Dot, Similarity::Cosine] {
            let d = 40;
            let fix = Fixture::random(&mut rng, d, 33, Activation::Silu, similarity);
            let counts = [65, 3, 0, 200, 1];
            let total: usize = counts.iter().sum();
            let pool_rows = 90;
            let pool = rng.normal_vec(pool_rows * d, 0.2);
            let ids: Vec<u64> = (0..total).map(|_| rng.below(pool_rows) as u64).collect();
            let dense: Vec<f32> =
                ids.iter().flat_map(|&id| pool[id as usize * d..(id as usize + 1) * d].iter().copied()).collect();
            let queries = rng.normal_vec(counts.len() * d, 0.2);
            let corpus = Corpus::new(&pool, pool_rows, d, d).unwrap();
            let by_id = Batch {
                dim: d,
                queries: (&queries).into(),
                candidate_counts: &counts,
                candidates: Candidates::ById { corpus: &corpus, ids: &ids },
                base_scores: None,
            };
            let dense_batch = Batch::dense(d, &queries, &counts, &dense);
            let mut one = cuda_session(&fix.adapter, precision).unwrap();
            let three_options =
                SessionOptions { threads: 3, ..options(EnginePreference::Force(EngineKind::Cuda), precision) };
            let mut three = open(&fix.adapter, three_options).unwrap();
            let a = one.rerank(&dense_batch, &ScoreOptions::default()).unwrap();
            let b = one.rerank(&by_id, &ScoreOptions::default()).unwrap();
            let c = three.rerank(&by_id, &ScoreOptions::default()).unwrap();
            let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&a.log_s_rr), bits(&b.log_s_rr), "{} {similarity:?}: dense vs by id", precision.name());
            assert_eq!(bits(&b.log_s_rr), bits(&c.log_s_rr), "{} {similarity:?}: 1 vs 3 threads", precision.name());
            assert_eq!(bits(&a.class_probs), bits(&c.class_probs), "{} {similarity:?}", precision.name());
        }
    }
}

/// One list longer than a chunk (65536 candidates), and more queries than one launch's grid
/// holds (65535), against the float64 reference.
#[test]
fn batches_larger_than_a_chunk() {
    let Some(_) = cuda_session(&small_adapter(), Precision::F32) else { return };
    let mut rng = TestRng::new(99);
    let d = 16;
    let fix = Fixture::random(&mut rng, d, 12, Activation::Relu, Similarity::Dot);
    for counts in [vec![70_000], vec![1; 70_000], vec![3, 65_534, 0, 2]] {
        let (queries, candidates) = batch_data(&mut rng, d, &counts);
        let refs = fix.reference(d, &queries, &counts, &candidates);
        let got = cuda_session(&fix.adapter, Precision::F32)
            .unwrap()
            .rerank(&Batch::dense(d, &queries, &counts, &candidates), &ScoreOptions::default())
            .unwrap();
        let mut m = Mismatches::new(format!("{} queries, {} candidates", counts.len(), candidates.len() / d));
        check_against_reference(&mut m, Precision::F32, &counts, &refs, &got);
        m.finish();
    }
}

/// Outputs are written exactly where they belong: guard values before and after every caller
/// buffer survive a call, and a failed call (non-finite input) writes nothing at all.
#[test]
fn outputs_stay_inside_their_buffers() {
    const GUARD: usize = 16;
    const SENTINEL: f32 = -12345.5;
    for precision in Precision::ALL {
        let Some(_) = cuda_session(&small_adapter(), precision) else { continue };
        let mut rng = TestRng::new(8);
        let d = 24;
        let fix = Fixture::random(&mut rng, d, 20, Activation::Tanh, Similarity::Cosine);
        let counts = [5, 0, 70];
        let total: usize = counts.iter().sum();
        let (queries, mut candidates) = batch_data(&mut rng, d, &counts);
        let mut session = cuda_session(&fix.adapter, precision).unwrap();
        let guarded = |n: usize| vec![SENTINEL; n + 2 * GUARD];
        let (mut log_s_rr, mut s_a, mut s_fn, mut probs) =
            (guarded(total), guarded(total), guarded(total), guarded(4 * total));
        let mut order = vec![u32::MAX; total + 2 * GUARD];
        let (mut log_s_rs, mut s_fn2) = (guarded(total), guarded(total));
        let (mut samples, mut sample_counts) = (vec![u32::MAX; 3 * 2 + 2 * GUARD], vec![u32::MAX; 3 + 2 * GUARD]);
        let mut after_success: Vec<Vec<u32>> = Vec::new();
        for poison in [false, true] {
            if poison {
                candidates[3 * d + 1] = f32::NAN;
            }
            let batch = Batch::dense(d, &queries, &counts, &candidates);
            let mut out = RerankOutputs {
                log_s_rr: Some(&mut log_s_rr[GUARD..GUARD + total]),
                s_a: Some(&mut s_a[GUARD..GUARD + total]),
                s_fn: Some(&mut s_fn[GUARD..GUARD + total]),
                class_probs: Some(&mut probs[GUARD..GUARD + 4 * total]),
                order: Some(&mut order[GUARD..GUARD + total]),
            };
            let reranked = session.rerank_into(&batch, &ScoreOptions::default(), &mut out);
            let request = ResampleRequest { samples_per_query: 2, seed: 3, ..Default::default() };
            let mut out = ResampleOutputs {
                log_s_rs: Some(&mut log_s_rs[GUARD..GUARD + total]),
                s_fn: Some(&mut s_fn2[GUARD..GUARD + total]),
                samples: Some(&mut samples[GUARD..GUARD + 6]),
                sample_counts: Some(&mut sample_counts[GUARD..GUARD + 3]),
            };
            let resampled = session.resample_into(&batch, &ScoreOptions::default(), &request, &mut out);
            assert_eq!(reranked.is_err(), poison, "{}", precision.name());
            assert_eq!(resampled.is_err(), poison, "{}", precision.name());
            if poison {
                assert_eq!(reranked.unwrap_err().kind(), ErrorKind::NonFiniteInput);
            }
            for (name, buffer) in [
                ("log_s_rr", &log_s_rr),
                ("s_a", &s_a),
                ("s_fn", &s_fn),
                ("class_probs", &probs),
                ("log_s_rs", &log_s_rs),
                ("resample s_fn", &s_fn2),
            ] {
                let n = buffer.len() - 2 * GUARD;
                assert!(buffer[..GUARD].iter().chain(&buffer[GUARD + n..]).all(|&x| x == SENTINEL), "{name}");
                assert!(buffer[GUARD..GUARD + n].iter().all(|&x| x != SENTINEL && x.is_finite()), "{name}: written");
            }
            for (name, buffer) in [("order", &order), ("samples", &samples), ("sample_counts", &sample_counts)] {
                let n = buffer.len() - 2 * GUARD;
                assert!(buffer[..GUARD].iter().chain(&buffer[GUARD + n..]).all(|&x| x == u32::MAX), "{name}");
            }
            // Every buffer, as bits: the failed call must leave them exactly as the good one did.
            let floats = [&log_s_rr, &s_a, &s_fn, &probs, &log_s_rs, &s_fn2];
            let now: Vec<Vec<u32>> = floats
                .iter()
                .map(|b| b.iter().map(|x| x.to_bits()).collect())
                .chain([order.clone(), samples.clone(), sample_counts.clone()])
                .collect();
            if poison {
                assert!(now == after_success, "{}: a failed call wrote to an output", precision.name());
            } else {
                after_success = now;
            }
        }
    }
}
