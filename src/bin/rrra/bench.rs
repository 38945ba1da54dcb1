//! `rrra bench`: time `Session::rerank_into` on a random adapter and random queries, one query
//! per call, the way a serving loop calls it (preallocated output buffers, no allocation per
//! call). `benches/onnx_baseline.py` runs it with `--json` next to ONNX Runtime.

use super::{failed, json_string, parse_engine, parse_precision, print, usage, Failure, Parsed};
use rrra::sampler::SplitMix64;
use rrra::{
    Adapter, AdapterConfig, AdapterWeights, Batch, CpuKernel, Precision, RerankOutputs, ScoreOptions, Session,
    SessionOptions, Similarity, Values,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub const BENCH_USAGE: &str = "\
Usage: rrra bench --d D --h H --k K [--queries N] [--batch B] [--threads T] [--dtype f32|f16|bf16]
                  [--inputs f32|f16|bf16] [--engine auto|reference|folded|cuda]
                  [--kernel auto|portable|avx2|avx512] [--similarity dot|cosine] [--seed S] [--json]

Builds a random adapter (ReLU, dot similarity unless asked otherwise, default scores; weights
and biases uniform in ±1/sqrt(fan_in)) and N random unit-norm queries with K dense random
unit-norm candidates each, warms up, then times Session::rerank_into one query per call,
writing log s_RR and the order into preallocated buffers. Prints the median, p10 and p90
milliseconds per query and the engine; for the folded engine also the floor: the folded math's
flops per query (2·k·d·h for dot similarity; twice that for cosine, whose layer 2 stays whole)
at the kernel's f32 FMA peak, measured in the same run, times the threads.

Options:
  --d D           embedding dimension
  --h H           adapter hidden width
  --k K           candidates per query
  --queries N     timed calls, each on its own query and candidates (default 20)
  --batch B       queries per call (default 1); times are per query
  --threads T     threads per call, splitting a call's queries or one list's work (default 1)
  --dtype T       the arithmetic (default f32): f16 rounds weights and candidates to half (the
                  folded engine on a CPU with AVX512-FP16, or the cuda engine); bf16 runs on
                  the cuda engine only. The inputs are as --inputs says
  --inputs T      how the queries and candidates are stored (default f32): f16 or bf16 halve
                  the bytes read; the library widens them to f32 exactly as it reads them
  --engine E      auto, reference, folded or cuda (default auto)
  --kernel K      the folded engine's instruction set: auto (the best this CPU has),
                  portable, avx2 or avx512 (default auto)
  --similarity S  the adapter's similarity, dot or cosine (default dot)
  --seed S        seed of the adapter, queries and candidates (default 1)
  --json          print one JSON object instead of text
";

pub const BENCH_OPTIONS: &[&str] = &[
    "--d",
    "--h",
    "--k",
    "--queries",
    "--batch",
    "--threads",
    "--dtype",
    "--inputs",
    "--engine",
    "--kernel",
    "--similarity",
    "--seed",
];

/// The most f32 values of candidates the bench will allocate (4 GiB): larger runs are
/// refused up front rather than dying in the allocator.
const MAX_CANDIDATE_VALUES: usize = 1 << 30;

/// Warm-up: at least this many calls, and calls until this much time has passed (at most one
/// pass over the queries), so caches, page faults and the session's scratch have settled.
const WARMUP_CALLS: usize = 3;
const WARMUP_TIME: Duration = Duration::from_millis(200);
/// How long the FMA peak is measured for the floor.
const PEAK_TIME: Duration = Duration::from_millis(300);

/// `rows` rows of `dim` uniform values, each scaled to unit L2 norm like a normalised embedding.
/// The bench's queries or candidates, stored as `--inputs` asks.
enum Stored {
    F32(Vec<f32>),
    F16(Vec<half::f16>),
    Bf16(Vec<half::bf16>),
}

impl Stored {
    fn new(inputs: Precision, values: Vec<f32>) -> Stored {
        match inputs {
            Precision::F32 => Stored::F32(values),
            Precision::F16 => Stored::F16(values.iter().map(|&x| half::f16::from_f32(x)).collect()),
            Precision::Bf16 => Stored::Bf16(values.iter().map(|&x| half::bf16::from_f32(x)).collect()),
        }
    }
    fn values(&self, range: std::ops::Range<usize>) -> Values<'_> {
        match self {
            Stored::F32(v) => v[range].into(),
            Stored::F16(v) => v[range].into(),
            Stored::Bf16(v) => v[range].into(),
        }
    }
}

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
    let threads = match args.number::<usize>("--threads", "a positive integer")? {
        Some(0) => return Err(usage("--threads: expected a positive integer, got 0")),
        Some(t) => t,
        None => 1,
    };
    let per_call = match args.number::<usize>("--batch", "a positive integer")? {
        Some(0) => return Err(usage("--batch: expected a positive integer, got 0")),
        Some(b) => b.min(n),
        None => 1,
    };
    // Options for work that does not exist yet are refused rather than silently ignored, so a
    // benchmark table can never claim a configuration it did not run.
    let precision = parse_precision(&args)?;
    let inputs = match args.value("--inputs").map(|v| v.to_string_lossy()) {
        None => Precision::F32,
        Some(v) => {
            Precision::from_name(&v).ok_or_else(|| usage(format!("--inputs: expected f32, f16 or bf16, got '{v}'")))?
        }
    };
    let engine = parse_engine(&args)?;
    let cpu_kernel = match args.value("--kernel").map(|v| v.to_string_lossy()) {
        None => None,
        Some(v) if v == "auto" => None,
        Some(v) => Some(
            CpuKernel::from_name(&v)
                .ok_or_else(|| usage(format!("--kernel: expected auto, portable, avx2 or avx512, got '{v}'")))?,
        ),
    };
    let similarity = match args.value("--similarity").map(|v| v.to_string_lossy()) {
        None => Similarity::Dot,
        Some(v) => {
            Similarity::from_name(&v).map_err(|_| usage(format!("--similarity: expected dot or cosine, got '{v}'")))?
        }
    };
    let seed: u64 = args.number("--seed", "a non-negative integer")?.unwrap_or(1);
    let candidate_values =
        n.checked_mul(k).and_then(|t| t.checked_mul(d)).filter(|&v| v <= MAX_CANDIDATE_VALUES).ok_or_else(|| {
            usage(format!("--queries {n} × --k {k} × --d {d} candidate values exceed the bench's 4 GiB limit"))
        })?;
    // The adapter's three d × h matrices are bounded the same way.
    if d.checked_mul(h).filter(|&v| v <= MAX_CANDIDATE_VALUES / 4).is_none() {
        return Err(usage(format!("--d {d} × --h {h}: the adapter would exceed the bench's 4 GiB limit")));
    }

    let config = AdapterConfig { similarity, ..AdapterConfig::default() };
    let adapter = Arc::new(Adapter::new(AdapterWeights::random(d, h, seed), config)?);
    // Data from a stream of its own, so the adapter does not depend on the data's shape.
    let mut rng = SplitMix64::new(seed ^ 0xDA7A);
    let queries = Stored::new(inputs, unit_rows(&mut rng, n, d));
    let candidates = Stored::new(inputs, unit_rows(&mut rng, candidate_values / d, d));
    let mut session = Session::new(adapter, SessionOptions { engine, threads, cpu_kernel, precision })?;
    let (mut log_s_rr, mut order) = (vec![0.0f32; per_call * k], vec![0u32; per_call * k]);
    let counts = vec![k; per_call];
    let options = ScoreOptions::default();
    // Call `c` reranks queries c·per_call.. (fewer in the last call); returns how many.
    let calls = n.div_ceil(per_call);
    let mut call = |c: usize| -> Result<usize, Failure> {
        let (first, end) = (c * per_call, ((c + 1) * per_call).min(n));
        let m = end - first;
        let batch = Batch::dense(
            d,
            queries.values(first * d..end * d),
            &counts[..m],
            candidates.values(first * k * d..end * k * d),
        );
        let mut out = RerankOutputs {
            log_s_rr: Some(&mut log_s_rr[..m * k]),
            order: Some(&mut order[..m * k]),
            ..Default::default()
        };
        session
            .rerank_into(black_box(&batch), &options, &mut out)
            .map_err(|e| failed(format!("rerank: {}", e.message())))?;
        black_box((&log_s_rr, &order));
        Ok(m)
    };

    let started = Instant::now();
    let mut warmup_calls = 0;
    while warmup_calls < calls && (warmup_calls < WARMUP_CALLS || started.elapsed() < WARMUP_TIME) {
        call(warmup_calls)?;
        warmup_calls += 1;
    }
    // Milliseconds per query: a call's time over the queries it reranked.
    let mut ms: Vec<f64> = Vec::with_capacity(calls);
    for c in 0..calls {
        let t = Instant::now();
        let m = call(c)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3 / m as f64);
    }
    ms.sort_by(f64::total_cmp);
    let (median, p10, p90) = (quantile(&ms, 0.5), quantile(&ms, 0.1), quantile(&ms, 0.9));
    let (min, max) = (ms[0], ms[calls - 1]);
    let engine_name = session.engine().name();
    let dtype = session.precision().name();
    // The folded engine's instruction set; the reference engine has none.
    let kernel_name = session.cpu_kernel().map_or("none", CpuKernel::name);
    // The arithmetic floor of the folded math (2·k·d·h flops per query) at the kernel's peak,
    // measured now, on every thread the session may use.
    let peak = session.cpu_kernel().and_then(|kernel| kernel.measure_peak_gflops(PEAK_TIME));
    let layers = if similarity == Similarity::Cosine { 2.0 } else { 1.0 };
    let floor_ms =
        peak.map(|gflops| layers * 2.0 * (k * d * h) as f64 / (gflops * 1e6 * threads.min(calls * per_call) as f64));
    let json_number = |x: Option<f64>| x.map_or("null".to_string(), |x| format!("{x:.6}"));

    let text = if args.switches.contains(&"--json") {
        format!(
            "{{\"d\": {d}, \"h\": {h}, \"k\": {k}, \"queries\": {n}, \"threads\": {threads}, \"batch\": {per_call}, \"dtype\": \"{dtype}\", \"inputs\": \"{}\", \"similarity\": \"{}\", \
             \"engine\": {}, \"kernel\": {}, \"engine_reason\": {}, \"seed\": {seed}, \"warmup_calls\": {warmup_calls}, \
             \"median_ms\": {median:.6}, \"p10_ms\": {p10:.6}, \"p90_ms\": {p90:.6}, \"min_ms\": {min:.6}, \
             \"max_ms\": {max:.6}, \"peak_gflops_per_thread\": {}, \"floor_ms\": {}, \"version\": {}}}\n",
            inputs.name(),
            similarity.name(),
            json_string(engine_name),
            json_string(kernel_name),
            json_string(session.engine_reason()),
            json_number(peak),
            json_number(floor_ms),
            json_string(rrra::VERSION),
        )
    } else {
        format!(
            "d = {d}, h = {h}, k = {k}: {n} queries, {per_call} per call, {threads} thread(s), {dtype}, {} inputs, {} similarity, engine {engine_name}, kernel {kernel_name} ({})\n\
             median {median:.3} ms/query (p10 {p10:.3}, p90 {p90:.3}, min {min:.3}, max {max:.3}), {warmup_calls} warm-up calls\n{}",
            inputs.name(),
            similarity.name(),
            session.engine_reason(),
            match (peak, floor_ms) {
                (Some(peak), Some(floor)) => format!(
                    "floor {floor:.3} ms/query ({}·k·d·h flops at the measured {peak:.1} GFLOP/s per thread), median ÷ floor {:.2}\n",
                    2.0 * layers,
                    median / floor
                ),
                _ => String::new(),
            }
        )
    };
    print(&text)
}
