//! What `rrra eval` and `rrra demo` measure on the test split (reranking) and on the training
//! split (resampling), through the library's public API only: a [`Session`] reranks and
//! resamples exactly as a caller's would.

use super::pipeline::Inputs;
use super::Failure;
use rrra::dataset::Split;
use rrra::eval::classes::{argmax4, separation, Confusion, Separation};
use rrra::eval::metrics::{mean_recall_curve, FirstResults, RankingMetrics};
use rrra::eval::negatives;
use rrra::eval::stats::{bootstrap_mean, paired_randomization_test, sign_test, Interval};
use rrra::sampler::NOT_DRAWN;
use rrra::train::CandidateList;
use rrra::{Adapter, Corpus, RerankOutputs, ResampleRequest, ScoreOptions, Session, SessionOptions};
use std::sync::Arc;
use std::time::Instant;

const BOOTSTRAP_RESAMPLES: usize = 2000;
const PERMUTATIONS: usize = 20_000;
const STATS_SEED: u64 = 20_250_815;

/// One metric, base retriever against reranked, with uncertainty.
pub struct MetricRow {
    pub name: &'static str,
    pub base: Interval,
    pub reranked: Interval,
    /// Two-sided p of the paired randomization test (mean difference).
    pub p_randomization: f64,
    /// Two-sided p of the exact sign test over queries that differ.
    pub p_sign: f64,
}

/// One negative-sampling strategy over the training queries' top-K.
pub struct SamplerRow {
    pub name: &'static str,
    /// Drawn negatives that are listed near-duplicates of the query's positive, any reason.
    pub near_duplicate_rate: f64,
    /// … whose reason includes `same_source` (siblings from one source package).
    pub same_source_rate: f64,
    /// Mean retriever score of the drawn negatives (hardness).
    pub mean_base_score: f64,
    pub drawn: usize,
}

pub struct Evaluation {
    pub test_queries: usize,
    pub metrics: Vec<MetricRow>,
    pub recall_curve_base: Vec<f64>,
    pub recall_curve_reranked: Vec<f64>,
    /// What stands at rank 1 of the test queries, base and reranked.
    pub first_base: FirstResults,
    pub first_reranked: FirstResults,
    pub confusion: Confusion,
    /// How well s_FN ranks the FN pairs above the rest, whatever the argmax says.
    pub fn_separation: Option<Separation>,
    /// s_A of test pairs by their SPEC §7 class (TP, FN, FP, TN).
    pub s_a_by_class: [Vec<f32>; 4],
    /// Median and 90th percentile microseconds per query of one `rerank_into` call.
    pub latency_us: (f64, f64),
    pub k: usize,
    pub samplers: Vec<SamplerRow>,
    pub negatives_per_query: usize,
    pub engine: String,
}

fn session(adapter: &Arc<Adapter>) -> Result<Session, Failure> {
    Ok(Session::new(adapter.clone(), SessionOptions::default())?)
}

pub fn evaluate(inputs: &Inputs, adapter: &Arc<Adapter>, negatives_per_query: usize) -> Result<Evaluation, Failure> {
    let corpus = inputs.corpus_view()?;
    let mut session = session(adapter)?;
    let engine = format!("{:?}", session.engine()).to_lowercase();
    let options = ScoreOptions::default();

    // Reranking: the retriever's top-K of each test query, reordered; one call per query.
    let test = inputs.lists(Split::Test, 1, false);
    let mut reranked_docs: Vec<Vec<u32>> = Vec::with_capacity(test.len());
    let mut times = Vec::with_capacity(test.len());
    let mut order = vec![0u32; inputs.top.k];
    let mut ids = Vec::new();
    for list in &test {
        ids.clear();
        ids.extend(list.docs.iter().map(|&d| d as u64));
        let k = list.docs.len();
        let count = [k];
        let b = inputs.batch(&corpus, list, &ids, &count);
        let started = Instant::now();
        session.rerank_into(&b, &options, &mut RerankOutputs { order: Some(&mut order[..k]), ..Default::default() })?;
        times.push(started.elapsed().as_secs_f64() * 1e6);
        reranked_docs.push(order[..k].iter().map(|&i| list.docs[i as usize]).collect());
    }
    let relevant = |l: &CandidateList| inputs.data.relevant[l.query as usize].as_slice();
    let base_runs: Vec<(&[u32], &[u32])> = test.iter().map(|l| (l.docs.as_slice(), relevant(l))).collect();
    let rr_runs: Vec<(&[u32], &[u32])> =
        test.iter().zip(&reranked_docs).map(|(l, r)| (r.as_slice(), relevant(l))).collect();
    let base = RankingMetrics::compute(&base_runs);
    let rr = RankingMetrics::compute(&rr_runs);
    let (mut first_base, mut first_reranked) = (FirstResults::default(), FirstResults::default());
    for ((list, &(b, rel)), &(r, _)) in test.iter().zip(&base_runs).zip(&rr_runs) {
        let dups = &inputs.data.near_duplicates[list.query as usize];
        let near_duplicate = |doc: u32| dups.binary_search_by_key(&doc, |d| d.doc).is_ok();
        first_base.add(b, rel, near_duplicate);
        first_reranked.add(r, rel, near_duplicate);
    }
    let mut metrics = Vec::new();
    for ((name, b), (_, r)) in base.named().into_iter().zip(rr.named()) {
        metrics.push(MetricRow {
            name,
            base: bootstrap_mean(b, BOOTSTRAP_RESAMPLES, STATS_SEED),
            reranked: bootstrap_mean(r, BOOTSTRAP_RESAMPLES, STATS_SEED),
            p_randomization: paired_randomization_test(b, r, PERMUTATIONS, STATS_SEED).map_err(super::failed)?,
            p_sign: sign_test(b, r).map_err(super::failed)?,
        });
    }
    times.sort_by(f64::total_cmp);
    let percentile = |p: f64| times.get(((times.len() as f64 - 1.0) * p).round() as usize).copied().unwrap_or(0.0);

    // Classification: the labelled lists of SPEC §7 (judged-relevant documents the retriever
    // missed appended, so the FN class is what it says).
    let mut confusion = Confusion::default();
    let mut s_a_by_class: [Vec<f32>; 4] = Default::default();
    let (mut s_fn, mut is_fn) = (Vec::new(), Vec::new());
    for list in inputs.lists(Split::Test, 1, true) {
        let ids: Vec<u64> = list.docs.iter().map(|&d| d as u64).collect();
        let count = [list.docs.len()];
        let out = session.rerank(&inputs.batch(&corpus, &list, &ids, &count), &options)?;
        for (i, &label) in list.labels.iter().enumerate() {
            let p: [f32; 4] = out.class_probs[i * 4..i * 4 + 4].try_into().expect("four classes per pair");
            confusion.add(label as usize, argmax4(&p));
            s_a_by_class[label as usize].push(out.s_a[i]);
            s_fn.push(out.s_fn[i] as f64);
            is_fn.push(label == 1);
        }
    }

    let samplers = compare_samplers(inputs, &mut session, &corpus, negatives_per_query)?;
    Ok(Evaluation {
        test_queries: test.len(),
        metrics,
        recall_curve_base: mean_recall_curve(&base_runs, inputs.top.k),
        recall_curve_reranked: mean_recall_curve(&rr_runs, inputs.top.k),
        first_base,
        first_reranked,
        confusion,
        fn_separation: separation(&s_fn, &is_fn),
        s_a_by_class,
        latency_us: (percentile(0.5), percentile(0.9)),
        k: inputs.top.k,
        samplers,
        negatives_per_query,
        engine,
    })
}

/// Draws `n` negatives per training query from its top-K by four strategies and measures how
/// many are known near-duplicates of the positive (lower is better at equal hardness).
fn compare_samplers(
    inputs: &Inputs,
    session: &mut Session,
    corpus: &Corpus<'_>,
    n: usize,
) -> Result<Vec<SamplerRow>, Failure> {
    const NAMES: [&str; 4] = ["top-n by base score", "uniform from top-K", "SimANS", "RRRA resampling"];
    let lists = inputs.lists(Split::Train, 1, false);
    // [strategy] → (near-duplicate, same source, base score sum, drawn)
    let mut tally = [(0usize, 0usize, 0f64, 0usize); 4];
    let mut drawn = Vec::new();
    let mut ids = Vec::new();
    for (qi, list) in lists.iter().enumerate() {
        let mask: Vec<u8> = list.relevant.iter().map(|&r| r as u8).collect();
        let Some(positive_score) =
            list.base.iter().zip(&list.relevant).filter(|(_, &r)| r).map(|(s, _)| *s).reduce(f32::max)
        else {
            continue; // the retriever missed every positive: no reference point for SimANS
        };
        ids.clear();
        ids.extend(list.docs.iter().map(|&d| d as u64));
        let count = [list.docs.len()];
        let request =
            ResampleRequest { samples_per_query: n, seed: 7, first_query_index: qi as u64, positive_mask: Some(&mask) };
        let rs = session.resample(&inputs.batch(corpus, list, &ids, &count), &ScoreOptions::default(), &request)?;
        let dups = &inputs.data.near_duplicates[list.query as usize];
        for (s, t) in tally.iter_mut().enumerate() {
            match s {
                0 => negatives::top_n(&list.base, &mask, n, &mut drawn),
                1 => negatives::uniform(&list.base, &mask, n, 7, qi as u64, &mut drawn),
                2 => negatives::simans(
                    &list.base,
                    &mask,
                    positive_score,
                    n,
                    negatives::SIMANS_A,
                    negatives::SIMANS_B,
                    7,
                    qi as u64,
                    &mut drawn,
                ),
                _ => {
                    drawn.clear();
                    drawn.extend(rs.samples.iter().copied().filter(|&x| x != NOT_DRAWN));
                    Ok(())
                }
            }
            .map_err(super::failed)?;
            for &pos in &drawn {
                let doc = list.docs[pos as usize];
                if let Ok(i) = dups.binary_search_by_key(&doc, |d| d.doc) {
                    t.0 += 1;
                    t.1 += dups[i].reason.contains("same_source") as usize;
                }
                t.2 += list.base[pos as usize] as f64;
                t.3 += 1;
            }
        }
    }
    Ok(NAMES
        .iter()
        .zip(tally)
        .map(|(name, (dup, src, score, count))| {
            let c = count.max(1) as f64;
            SamplerRow {
                name,
                near_duplicate_rate: dup as f64 / c,
                same_source_rate: src as f64 / c,
                mean_base_score: score / c,
                drawn: count,
            }
        })
        .collect())
}
