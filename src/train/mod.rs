//! The stage-2 trainer of SPEC §7: a frozen bi-encoder's embeddings and its top-K lists in,
//! an adapter file out.
//!
//! - Labels come from the retriever's confusion matrix at cut-off `r` (TP, FN, FP, TN).
//! - Loss: class-weighted cross-entropy + β · linear normalization + η · listwise rank loss on
//!   `sim(q, a) / τ_rank` ([`pass`] has the math and its gradient).
//! - AdamW on mini-batches of candidate lists. The gradient of a batch is summed over a fixed
//!   number of shards in a fixed order, so the result does not depend on the thread count:
//!   same data, same options, same seed → the same file.
//! - Every `1/evals_per_epoch` of an epoch the adapter is scored on the dev lists: the score
//!   transforms are fitted on training lists ([`calibrate`]), `λ` is tuned on dev, and the best
//!   checkpoint by dev R@1 + MRR@10 is kept (early stopping with `patience`).
//!
//! Only `dot` similarity is trained (the fast engines collapse layer 2 for it).

mod calibrate;
mod pass;

use crate::error::{Error, Result};
use crate::eval::metrics::{recall_at, reciprocal_rank_at};
use crate::model::{Activation, Adapter, AdapterConfig, AdapterWeights, BaseTransform, Similarity};
use crate::retrieval::{check_finite_rows, TopK};
use crate::sampler::SplitMix64;
use calibrate::Fusion;
use pass::{LossParts, LossWeights, Workspace};

pub use calibrate::{fit_logistic, LAMBDA_GRID};

/// Gradient shards per batch: fixed so that summation order, and so the result, does not depend
/// on how many threads compute them.
const GRAD_SHARDS: usize = 8;
/// Training lists the score transforms are fitted on at each evaluation.
const CALIBRATION_LISTS: usize = 2048;

/// Hyperparameters of [`train`]; the defaults are the ones `rrra train` documents.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainOptions {
    /// Adapter hidden width `h`.
    pub hidden: usize,
    pub activation: Activation,
    /// Upper bound on passes over the training lists (early stopping usually ends sooner).
    pub epochs: usize,
    /// Candidate lists per optimiser step.
    pub batch_lists: usize,
    pub learning_rate: f32,
    /// AdamW's decoupled weight decay, on the weight matrices (not the biases).
    pub weight_decay: f32,
    /// β: weight of the linear normalization loss.
    pub norm_weight: f32,
    /// η: weight of the listwise rank loss.
    pub rank_weight: f32,
    /// τ_rank.
    pub rank_temperature: f32,
    /// γ_imb: class weights are `(n_c / N)^(−γ_imb)`.
    pub class_weight_exponent: f32,
    /// `r`: the retriever's top-r count as positives when labelling (TP/FP vs FN/TN).
    pub label_cutoff: usize,
    /// Dev evaluations per epoch.
    pub evals_per_epoch: usize,
    /// Evaluations without improvement before stopping.
    pub patience: usize,
    pub seed: u64,
    pub threads: usize,
    /// Written into the file's `encoder` metadata.
    pub encoder: String,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            hidden: 128,
            activation: Activation::Relu,
            epochs: 8,
            batch_lists: 32,
            learning_rate: 2e-4,
            weight_decay: 0.01,
            norm_weight: 0.1,
            rank_weight: 1.0,
            rank_temperature: 0.05,
            class_weight_exponent: 0.3,
            label_cutoff: 1,
            evals_per_epoch: 4,
            patience: 4,
            seed: 0,
            threads: 1,
            encoder: String::new(),
        }
    }
}

impl TrainOptions {
    /// Every option that shapes the result, for the file's metadata (not `threads`, which
    /// does not: the same file comes out whatever the thread count).
    pub fn describe(&self) -> String {
        format!(
            "hidden {}, activation {}, epochs {}, batch_lists {}, learning_rate {}, weight_decay {}, norm_weight {}, \
             rank_weight {}, rank_temperature {}, class_weight_exponent {}, label_cutoff {}, evals_per_epoch {}, \
             patience {}, seed {}",
            self.hidden,
            self.activation.name(),
            self.epochs,
            self.batch_lists,
            self.learning_rate,
            self.weight_decay,
            self.norm_weight,
            self.rank_weight,
            self.rank_temperature,
            self.class_weight_exponent,
            self.label_cutoff,
            self.evals_per_epoch,
            self.patience,
            self.seed
        )
    }
}

/// Frozen embeddings: query rows and corpus rows, both `· × dim`.
#[derive(Clone, Copy, Debug)]
pub struct Embeddings<'a> {
    pub dim: usize,
    pub queries: &'a [f32],
    pub corpus: &'a [f32],
}

/// One query's candidates in the retriever's order, with judgments and SPEC §7 labels.
#[derive(Clone, Debug, PartialEq)]
pub struct CandidateList {
    /// Row of the query in [`Embeddings::queries`].
    pub query: u32,
    /// Corpus rows, the retriever's best first.
    pub docs: Vec<u32>,
    /// The retriever's scores of `docs`.
    pub base: Vec<f32>,
    pub relevant: Vec<bool>,
    /// Class per candidate: 0 TP, 1 FN, 2 FP, 3 TN.
    pub labels: Vec<u8>,
}

/// Candidate lists for `queries` from the retriever's `top` (rows indexed by query number),
/// labelled at cut-off `label_cutoff`. With `append_relevant`, judged-relevant documents the
/// retriever missed are appended (with their base scores) so training sees every positive, as
/// SPEC §7 says; evaluation lists leave them out.
pub fn candidate_lists(
    emb: &Embeddings<'_>,
    top: &TopK,
    queries: &[u32],
    relevant: &[Vec<u32>],
    label_cutoff: usize,
    append_relevant: bool,
) -> Vec<CandidateList> {
    let d = emb.dim;
    queries
        .iter()
        .map(|&q| {
            let rel = &relevant[q as usize];
            let mut docs = top.docs_of(q as usize).to_vec();
            let mut base = top.scores_of(q as usize).to_vec();
            if append_relevant {
                for &r in rel {
                    if !docs.contains(&r) {
                        docs.push(r);
                        let (qv, cv) = (&emb.queries[q as usize * d..][..d], &emb.corpus[r as usize * d..][..d]);
                        base.push(qv.iter().zip(cv).map(|(a, b)| a * b).sum());
                    }
                }
            }
            let is_rel: Vec<bool> = docs.iter().map(|x| rel.binary_search(x).is_ok()).collect();
            let labels = is_rel
                .iter()
                .enumerate()
                .map(|(i, &r)| match (r, i < label_cutoff) {
                    (true, true) => 0,
                    (true, false) => 1,
                    (false, true) => 2,
                    (false, false) => 3,
                })
                .collect();
            CandidateList { query: q, docs, base, relevant: is_rel, labels }
        })
        .collect()
}

/// One dev evaluation.
#[derive(Clone, Debug, PartialEq)]
pub struct Checkpoint {
    /// Epochs done, fractional.
    pub epoch: f64,
    /// Mean training loss parts since the previous checkpoint.
    pub train_cls: f64,
    pub train_norm: f64,
    pub train_rank: f64,
    /// Dev metrics of the base order and of the reranked order at the tuned λ.
    pub dev_base_r1: f64,
    pub dev_r1: f64,
    pub dev_mrr10: f64,
    pub lambda: f64,
}

/// What [`train`] returns: the best adapter and the history that chose it.
#[derive(Debug)]
pub struct Trained {
    pub adapter: Adapter,
    pub history: Vec<Checkpoint>,
    /// Index into `history` of the checkpoint kept.
    pub best: usize,
}

/// Trains an adapter on `train` lists with early stopping on `dev` lists (judgments for the dev
/// metrics come from `relevant`, indexed by query number, so documents the retriever missed
/// count as misses). `progress` sees each checkpoint as it is made.
pub fn train(
    emb: &Embeddings<'_>,
    train: &[CandidateList],
    dev: &[CandidateList],
    relevant: &[Vec<u32>],
    options: &TrainOptions,
    progress: &mut dyn FnMut(&Checkpoint),
) -> Result<Trained> {
    check(emb, train, dev, options)?;
    let d = emb.dim;
    let h = options.hidden;
    let loss = LossWeights {
        class: class_weights(train, options.class_weight_exponent),
        norm: options.norm_weight,
        rank: options.rank_weight,
        rank_temperature: options.rank_temperature,
    };
    let mut rng = SplitMix64::new(options.seed);
    let mut weights = initial_weights(d, h, &mut rng);
    let mut adam = AdamW::new(&weights);
    let mut calibration: Vec<usize> = (0..train.len()).collect();
    shuffle(&mut calibration, &mut rng);
    calibration.truncate(CALIBRATION_LISTS);

    let threads = options.threads.min(GRAD_SHARDS);
    let mut shards: Vec<(Workspace, AdapterWeights, Vec<f32>)> =
        (0..GRAD_SHARDS).map(|_| (Workspace::default(), zeros(d, h), Vec::new())).collect();
    let mut grad = zeros(d, h);

    let steps_per_epoch = train.len().div_ceil(options.batch_lists);
    let eval_every = steps_per_epoch.div_ceil(options.evals_per_epoch.max(1)).max(1);
    let mut history: Vec<Checkpoint> = Vec::new();
    let mut best: Option<(f64, usize, AdapterConfig, AdapterWeights)> = None;
    let mut since_best = 0;
    let mut running = (LossParts::default(), 0usize);
    let mut order: Vec<usize> = (0..train.len()).collect();
    let mut step = 0usize;
    'epochs: for _ in 0..options.epochs {
        shuffle(&mut order, &mut rng);
        for (b, batch) in order.chunks(options.batch_lists).enumerate() {
            let scale = 1.0 / batch.len() as f32;
            let per_shard = batch.len().div_ceil(GRAD_SHARDS);
            let results = run_shards(&mut shards, threads, |s, (ws, g, rows)| {
                zero(g);
                let mut parts = LossParts::default();
                for &i in batch.iter().skip(s * per_shard).take(per_shard) {
                    let list = &train[i];
                    let q = &emb.queries[list.query as usize * d..][..d];
                    gather(emb, &list.docs, rows);
                    ws.forward(&weights, options.activation, q, rows);
                    let p = ws.backward(
                        &weights,
                        options.activation,
                        &loss,
                        q,
                        rows,
                        &list.labels,
                        &list.relevant,
                        scale,
                        g,
                    );
                    parts.cls += p.cls;
                    parts.norm += p.norm;
                    parts.rank += p.rank;
                }
                parts
            });
            zero(&mut grad);
            for (p, (_, g, _)) in results.iter().zip(&shards) {
                add(&mut grad, g);
                running.0.cls += p.cls;
                running.0.norm += p.norm;
                running.0.rank += p.rank;
            }
            running.1 += batch.len();
            adam.step(&mut weights, &grad, options.learning_rate, options.weight_decay);
            step += 1;

            if (b + 1) % eval_every == 0 || b + 1 == steps_per_epoch {
                let (config, point) = evaluate(emb, train, &calibration, dev, relevant, &weights, options)?;
                let n = running.1.max(1) as f64;
                let checkpoint = Checkpoint {
                    epoch: step as f64 / steps_per_epoch as f64,
                    train_cls: running.0.cls / n,
                    train_norm: running.0.norm / n,
                    train_rank: running.0.rank / n,
                    ..point
                };
                running = (LossParts::default(), 0);
                progress(&checkpoint);
                let objective = checkpoint.dev_r1 + checkpoint.dev_mrr10;
                history.push(checkpoint);
                if best.as_ref().is_none_or(|(o, ..)| objective > *o) {
                    best = Some((objective, history.len() - 1, config, weights.clone()));
                    since_best = 0;
                } else {
                    since_best += 1;
                    if since_best >= options.patience {
                        break 'epochs;
                    }
                }
            }
        }
    }
    let (_, best, mut config, weights) = best.ok_or_else(|| Error::invalid_argument("train: no training step ran"))?;
    let c = &history[best];
    config.extra = vec![
        ("x-trainer".into(), format!("rrra {} stage 2 (SPEC §7)", crate::VERSION)),
        ("x-train-options".into(), options.describe()),
        (
            "x-checkpoint".into(),
            format!(
                "epoch {:.2}, dev R@1 {:.4} (base {:.4}), dev MRR@10 {:.4}",
                c.epoch, c.dev_r1, c.dev_base_r1, c.dev_mrr10
            ),
        ),
    ];
    Ok(Trained { adapter: Adapter::new(weights, config)?, history, best })
}

fn check(emb: &Embeddings<'_>, train: &[CandidateList], dev: &[CandidateList], o: &TrainOptions) -> Result<()> {
    let bad = |m: String| Err(Error::invalid_argument(m));
    if emb.dim == 0 || !emb.queries.len().is_multiple_of(emb.dim) || !emb.corpus.len().is_multiple_of(emb.dim) {
        return bad(format!(
            "embeddings: queries ({}) and corpus ({}) must be whole rows of dim {}",
            emb.queries.len(),
            emb.corpus.len(),
            emb.dim
        ));
    }
    if o.hidden == 0 || o.batch_lists == 0 || o.epochs == 0 || o.threads == 0 || o.threads > crate::MAX_THREADS {
        return bad(format!(
            "options: hidden, batch_lists, epochs and threads must be positive (threads ≤ {}), got {o:?}",
            crate::MAX_THREADS
        ));
    }
    if [o.rank_temperature, o.learning_rate].iter().any(|x| x.is_nan() || *x <= 0.0) {
        return bad(format!("options: rank_temperature and learning_rate must be > 0, got {o:?}"));
    }
    if !(o.class_weight_exponent >= 0.0 && o.class_weight_exponent.is_finite()) {
        return bad(format!("options: class_weight_exponent must be finite and ≥ 0, got {}", o.class_weight_exponent));
    }
    if train.is_empty() || dev.is_empty() {
        return bad(format!("train needs training and dev lists, got {} and {}", train.len(), dev.len()));
    }
    let (nq, nc) = (emb.queries.len() / emb.dim, emb.corpus.len() / emb.dim);
    for (name, lists) in [("train", train), ("dev", dev)] {
        for (i, l) in lists.iter().enumerate() {
            let k = l.docs.len();
            if l.query as usize >= nq || l.docs.iter().any(|&x| x as usize >= nc) {
                return bad(format!("{name} list {i}: query or document row out of range"));
            }
            if l.base.len() != k || l.relevant.len() != k || l.labels.len() != k || l.labels.iter().any(|&y| y > 3) {
                return bad(format!(
                    "{name} list {i}: docs, base, relevant and labels must have one entry per candidate"
                ));
            }
            if l.base.iter().any(|b| !b.is_finite()) {
                return bad(format!("{name} list {i}: non-finite base score"));
            }
        }
    }
    check_finite_rows("embeddings: queries", emb.queries, emb.dim)?;
    check_finite_rows("embeddings: corpus", emb.corpus, emb.dim)
}

/// Class weights `(n_c / N)^(−γ)`, scaled so the average weight per pair is 1; a class that
/// never occurs gets weight 0.
fn class_weights(lists: &[CandidateList], gamma: f32) -> [f32; 4] {
    let mut counts = [0f64; 4];
    for l in lists {
        for &y in &l.labels {
            counts[y as usize] += 1.0;
        }
    }
    let n: f64 = counts.iter().sum();
    let raw = counts.map(|c| if c > 0.0 { (c / n).powf(-gamma as f64) } else { 0.0 });
    let mean: f64 = raw.iter().zip(&counts).map(|(w, c)| w * c).sum::<f64>() / n;
    raw.map(|w| (w / mean) as f32)
}

/// fc1 and the classifier like PyTorch's `nn.Linear`; fc2 zero, so training starts from the
/// identity adapter (`a = c`, the base retriever's own order).
fn initial_weights(d: usize, h: usize, rng: &mut SplitMix64) -> AdapterWeights {
    let mut w = AdapterWeights::random(d, h, rng.next_u64());
    w.fc2_weight.fill(0.0);
    w.fc2_bias.fill(0.0);
    w
}

fn zeros(d: usize, h: usize) -> AdapterWeights {
    AdapterWeights {
        dim: d,
        hidden: h,
        fc1_weight: vec![0.0; h * 3 * d],
        fc1_bias: vec![0.0; h],
        fc2_weight: vec![0.0; d * h],
        fc2_bias: vec![0.0; d],
        classifier_weight: vec![0.0; 4 * h],
        classifier_bias: vec![0.0; 4],
    }
}

fn tensors_mut(w: &mut AdapterWeights) -> [&mut Vec<f32>; 6] {
    [
        &mut w.fc1_weight,
        &mut w.fc1_bias,
        &mut w.fc2_weight,
        &mut w.fc2_bias,
        &mut w.classifier_weight,
        &mut w.classifier_bias,
    ]
}

fn zero(w: &mut AdapterWeights) {
    for t in tensors_mut(w) {
        t.fill(0.0);
    }
}

fn add(into: &mut AdapterWeights, from: &AdapterWeights) {
    for (t, (_, _, f)) in tensors_mut(into).into_iter().zip(from.tensors()) {
        t.iter_mut().zip(f).for_each(|(a, b)| *a += b);
    }
}

fn gather(emb: &Embeddings<'_>, docs: &[u32], rows: &mut Vec<f32>) {
    let d = emb.dim;
    rows.clear();
    for &doc in docs {
        rows.extend_from_slice(&emb.corpus[doc as usize * d..][..d]);
    }
}

fn shuffle<T>(v: &mut [T], rng: &mut SplitMix64) {
    for i in (1..v.len()).rev() {
        let j = ((rng.next_u64() as u128 * (i as u128 + 1)) >> 64) as usize;
        v.swap(i, j);
    }
}

/// Runs `f(shard index, shard)` for every shard on `threads` threads (shard s on thread
/// s mod threads) and returns the results in shard order.
fn run_shards<S: Send, R: Send + Default>(
    shards: &mut [S],
    threads: usize,
    f: impl Fn(usize, &mut S) -> R + Sync,
) -> Vec<R> {
    if threads <= 1 {
        return shards.iter_mut().enumerate().map(|(s, x)| f(s, x)).collect();
    }
    let mut results: Vec<R> = (0..shards.len()).map(|_| R::default()).collect();
    let per = shards.len().div_ceil(threads);
    std::thread::scope(|scope| {
        for (c, (ss, rs)) in shards.chunks_mut(per).zip(results.chunks_mut(per)).enumerate() {
            let f = &f;
            scope.spawn(move || {
                for (i, (s, r)) in ss.iter_mut().zip(rs).enumerate() {
                    *r = f(c * per + i, s);
                }
            });
        }
    });
    results
}

/// Adam with decoupled weight decay (Loshchilov & Hutter), β = (0.9, 0.999), ε = 1e-8.
struct AdamW {
    m: AdapterWeights,
    v: AdapterWeights,
    t: i32,
}

impl AdamW {
    fn new(w: &AdapterWeights) -> Self {
        AdamW { m: zeros(w.dim, w.hidden), v: zeros(w.dim, w.hidden), t: 0 }
    }

    fn step(&mut self, w: &mut AdapterWeights, g: &AdapterWeights, lr: f32, decay: f32) {
        const B1: f32 = 0.9;
        const B2: f32 = 0.999;
        self.t += 1;
        let (c1, c2) = (1.0 - B1.powi(self.t), 1.0 - B2.powi(self.t));
        let grads = g.tensors();
        for (i, ((p, m), v)) in
            tensors_mut(w).into_iter().zip(tensors_mut(&mut self.m)).zip(tensors_mut(&mut self.v)).enumerate()
        {
            let is_matrix = i % 2 == 0; // tensors alternate weight, bias
            for (((p, m), v), g) in p.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(grads[i].2) {
                *m = B1 * *m + (1.0 - B1) * g;
                *v = B2 * *v + (1.0 - B2) * g * g;
                if is_matrix {
                    *p -= lr * decay * *p;
                }
                *p -= lr * (*m / c1) / ((*v / c2).sqrt() + 1e-8);
            }
        }
    }
}

/// Fits the score transforms on the calibration lists, tunes λ on dev and measures dev; returns
/// the configuration that goes into the file with that checkpoint.
fn evaluate(
    emb: &Embeddings<'_>,
    train: &[CandidateList],
    calibration: &[usize],
    dev: &[CandidateList],
    relevant: &[Vec<u32>],
    weights: &AdapterWeights,
    options: &TrainOptions,
) -> Result<(AdapterConfig, Checkpoint)> {
    let d = emb.dim;
    let mut ws = Workspace::default();
    let mut rows = Vec::new();
    let mut sims = |list: &CandidateList| -> Vec<f32> {
        gather(emb, &list.docs, &mut rows);
        ws.forward(weights, options.activation, &emb.queries[list.query as usize * d..][..d], &rows);
        ws.sim[..list.docs.len()].to_vec()
    };
    let (mut adapter_pairs, mut base_pairs) = (Vec::new(), Vec::new());
    for &i in calibration {
        let l = &train[i];
        for ((s, b), r) in sims(l).into_iter().zip(&l.base).zip(&l.relevant) {
            adapter_pairs.push((s as f64, *r));
            base_pairs.push((*b as f64, *r));
        }
    }
    let (adapter_mu, adapter_tau) = fit_logistic(&adapter_pairs);
    let (base_mu, base_tau) = fit_logistic(&base_pairs);
    let dev_sims: Vec<Vec<f32>> = dev.iter().map(&mut sims).collect();
    let mut config = AdapterConfig {
        activation: options.activation,
        similarity: Similarity::Dot,
        adapter_mu,
        adapter_tau,
        base_transform: BaseTransform::Sigmoid,
        base_mu,
        base_tau,
        lambda_rr: 0.0,
        encoder: options.encoder.clone(),
        ..AdapterConfig::default()
    };
    let measure = |lambda: f64| -> (f64, f64) {
        let fusion = Fusion { base_mu, base_tau, adapter_mu, adapter_tau, lambda };
        let (mut scores, mut order) = (Vec::new(), Vec::new());
        let (mut r1, mut mrr) = (0.0, 0.0);
        for (list, sim) in dev.iter().zip(&dev_sims) {
            fusion.order(&list.base, sim, &mut scores, &mut order);
            let ranked: Vec<u32> = order.iter().map(|&i| list.docs[i as usize]).collect();
            let rel = &relevant[list.query as usize];
            r1 += recall_at(&ranked, rel, 1);
            mrr += reciprocal_rank_at(&ranked, rel, 10);
        }
        (r1 / dev.len() as f64, mrr / dev.len() as f64)
    };
    let base = measure(0.0);
    let mut chosen = (f64::NEG_INFINITY, 0.0, base);
    for &lambda in LAMBDA_GRID {
        let m = measure(lambda);
        if m.0 + m.1 > chosen.0 + 1e-12 {
            chosen = (m.0 + m.1, lambda, m);
        }
    }
    config.lambda_rr = chosen.1;
    Ok((
        config,
        Checkpoint {
            epoch: 0.0,
            train_cls: 0.0,
            train_norm: 0.0,
            train_rank: 0.0,
            dev_base_r1: base.0,
            dev_r1: chosen.2 .0,
            dev_mrr10: chosen.2 .1,
            lambda: chosen.1,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Options the trainer cannot use are refused before any work, naming the option.
    #[test]
    fn bad_options_are_errors_that_name_them() {
        let (queries, corpus) = (vec![0.5f32; 2], vec![0.25f32; 4]);
        let emb = Embeddings { dim: 2, queries: &queries, corpus: &corpus };
        let list = CandidateList {
            query: 0,
            docs: vec![0, 1],
            base: vec![0.4, 0.3],
            relevant: vec![true, false],
            labels: vec![0, 3],
        };
        let lists = [list];
        let cases = [
            (TrainOptions { class_weight_exponent: -1.0, ..TrainOptions::default() }, "class_weight_exponent"),
            (TrainOptions { class_weight_exponent: f32::NAN, ..TrainOptions::default() }, "class_weight_exponent"),
            (TrainOptions { rank_temperature: 0.0, ..TrainOptions::default() }, "rank_temperature"),
            (TrainOptions { hidden: 0, ..TrainOptions::default() }, "hidden"),
        ];
        for (options, needle) in cases {
            let e = train(&emb, &lists, &lists, &[vec![0]], &options, &mut |_| {}).expect_err("refused");
            assert_eq!(e.kind(), crate::ErrorKind::InvalidArgument, "{e}");
            assert!(e.message().contains(needle), "{e}");
        }
    }
}
