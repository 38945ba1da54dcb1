//! `rrra bench`: time `Session::rerank_into` on a random adapter and random queries, one query
//! per call, the way a serving loop calls it (preallocated output buffers, no allocation per
//! call). `benches/onnx_baseline.py` runs it with `--json` next to ONNX Runtime.

use super::{failed, json_string, parse_engine, print, usage, Failure, Parsed};
use rrra::sampler::SplitMix64;
use rrra::{Adapter, AdapterConfig, AdapterWeights, Batch, RerankOutputs, ScoreOptions, Session, SessionOptions};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BENCH_USAGE: &str = "\
Usage: rrra bench --d D --h H --k K [--queries N] [--threads T] [--dtype f32]
                  [--engine auto|reference|folded] [--seed S] [--json]

Builds a random adapter (ReLU, dot similarity, default scores; weights and biases uniform in
±1/sqrt(fan_in)) and N random unit-norm queries with K dense random unit-norm candidates each,
warms up, then times Session::rerank_into one query per call, writing log s_RR and the order
into preallocated buffers. Prints the median, p10 and p90 milliseconds per query and the engine.

Options:
  --d D           embedding dimension
  --h H           adapter hidden width
  --k K           candidates per query
  --queries N     timed calls, each on its own query and candidates (default 20)
  --threads T     threads per call; only 1 exists today (default 1)
  --dtype f32     embedding dtype; only f32 exists today (default f32)
  --engine E      auto, reference or folded (default auto)
  --seed S        seed of the adapter, queries and candidates (default 1)
  --json          print one JSON object instead of text
";

pub const BENCH_OPTIONS: &[&str] = &["--d", "--h", "--k", "--queries", "--threads", "--dtype", "--engine", "--seed"];

/// The most f32 values of candidates the bench will allocate (4 GiB): larger runs are
/// refused up front rather than dying in the allocator.
const MAX_CANDIDATE_VALUES: usize = 1 << 30;

/// Warm-up: at least this many calls, and calls until this much time has passed (at most one
/// pass over the queries), so caches, page faults and the session's scratch have settled.
const WARMUP_CALLS: usize = 3;
const WARMUP_TIME: Duration = Duration::from_millis(200);

/// `rows` rows of `dim` uniform values, each scaled to unit L2 norm like a normalised embedding.
fn unit_rows(rng: &mut SplitMix64, rows: usize, dim: usize) -> Vec<f32> {
    let mut data: Vec<f32> = (0..rows * dim).map(|_| rng.next_symmetric(1.0)).collect();
    for row in data.chunks_exact_mut(dim) {
        let norm = row.iter().map(|x| x * x).sum::<f32>().sqrt().max(f32::MIN_POSITIVE);
        row.iter_mut().for_each(|x| *x /= norm);
    }
    data
}

/// The `p`-quantile of sorted samples, interpolating between neighbours.
fn quantile(sorted: &[f64], p: f64) -> f64 {
    let at = p * (sorted.len() - 1) as f64;
    let (lo, hi) = (at.floor() as usize, at.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (at - lo as f64)
}

/// A required positive integer option.
fn positive(args: &Parsed, name: &str) -> Result<usize, Failure> {
    match args.number::<usize>(name, "a positive integer")? {
        Some(0) => Err(usage(format!("{name}: expected a positive integer, got 0"))),
        Some(n) => Ok(n),
        None => Err(usage(format!("rrra bench needs {name}; run 'rrra help bench' for usage"))),
    }
}

pub fn bench(args: Parsed) -> Result<(), Failure> {
    if args.help {
        return print(BENCH_USAGE);
    }
    args.no_positional()?;
    let (d, h, k) = (positive(&args, "--d")?, positive(&args, "--h")?, positive(&args, "--k")?);
    let n = match args.number::<usize>("--queries", "a positive integer")? {
        Some(0) => return Err(usage("--queries: expected a positive integer, got 0")),
        Some(n) => n,
        None => 20,
    };
    // Options for work that does not exist yet are refused rather than silently ignored, so a
    // benchmark table can never claim a configuration it did not run.
    match args.number::<usize>("--threads", "a positive integer")? {
        None | Some(1) => {}
        Some(_) => return Err(usage("--threads: only 1 is supported until the threaded engine lands")),
    }
    match args.value("--dtype").map(|v| v.to_string_lossy()) {
        None => {}
        Some(v) if v == "f32" => {}
        Some(v) => {
            return Err(usage(format!(
                "--dtype: only f32 is supported until the reduced-precision engines land (got '{v}')"
            )))
        }
    }
    let engine = parse_engine(&args)?;
    let seed: u64 = args.number("--seed", "a non-negative integer")?.unwrap_or(1);
    let candidate_values =
        n.checked_mul(k).and_then(|t| t.checked_mul(d)).filter(|&v| v <= MAX_CANDIDATE_VALUES).ok_or_else(|| {
            usage(format!("--queries {n} × --k {k} × --d {d} candidate values exceed the bench's 4 GiB limit"))
        })?;
    // The adapter's three d × h matrices are bounded the same way.
    if d.checked_mul(h).filter(|&v| v <= MAX_CANDIDATE_VALUES / 4).is_none() {
        return Err(usage(format!("--d {d} × --h {h}: the adapter would exceed the bench's 4 GiB limit")));
    }

    let adapter = Arc::new(Adapter::new(AdapterWeights::random(d, h, seed), AdapterConfig::default())?);
    // Data from a stream of its own, so the adapter does not depend on the data's shape.
    let mut rng = SplitMix64::new(seed ^ 0xDA7A);
    let queries = unit_rows(&mut rng, n, d);
    let candidates = unit_rows(&mut rng, candidate_values / d, d);
    let mut session = Session::new(adapter, SessionOptions { engine })?;
    let (mut log_s_rr, mut order) = (vec![0.0f32; k], vec![0u32; k]);
    let counts = [k];
    let options = ScoreOptions::default();
    let mut call = |i: usize| -> Result<(), Failure> {
        let batch = Batch::dense(d, &queries[i * d..(i + 1) * d], &counts, &candidates[i * k * d..(i + 1) * k * d]);
        let mut out = RerankOutputs { log_s_rr: Some(&mut log_s_rr), order: Some(&mut order), ..Default::default() };
        session
            .rerank_into(black_box(&batch), &options, &mut out)
            .map_err(|e| failed(format!("rerank: {}", e.message())))?;
        black_box((&log_s_rr, &order));
        Ok(())
    };

    let started = Instant::now();
    let mut warmup_calls = 0;
    while warmup_calls < n && (warmup_calls < WARMUP_CALLS || started.elapsed() < WARMUP_TIME) {
        call(warmup_calls)?;
        warmup_calls += 1;
    }
    let mut ms: Vec<f64> = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        call(i)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    let (median, p10, p90) = (quantile(&ms, 0.5), quantile(&ms, 0.1), quantile(&ms, 0.9));
    let (min, max) = (ms[0], ms[n - 1]);
    let engine_name = session.engine().name();

    let text = if args.switches.contains(&"--json") {
        format!(
            "{{\"d\": {d}, \"h\": {h}, \"k\": {k}, \"queries\": {n}, \"threads\": 1, \"dtype\": \"f32\", \
             \"engine\": {}, \"engine_reason\": {}, \"seed\": {seed}, \"warmup_calls\": {warmup_calls}, \
             \"median_ms\": {median:.6}, \"p10_ms\": {p10:.6}, \"p90_ms\": {p90:.6}, \"min_ms\": {min:.6}, \
             \"max_ms\": {max:.6}, \"version\": {}}}\n",
            json_string(engine_name),
            json_string(session.engine_reason()),
            json_string(rrra::VERSION),
        )
    } else {
        format!(
            "d = {d}, h = {h}, k = {k}: {n} queries, 1 thread, f32, engine {engine_name} ({})\n\
             median {median:.3} ms/query (p10 {p10:.3}, p90 {p90:.3}, min {min:.3}, max {max:.3}), {warmup_calls} warm-up calls\n",
            session.engine_reason()
        )
    };
    print(&text)
}
