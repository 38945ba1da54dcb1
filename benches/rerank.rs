//! Reranking cost of the engines, per query, over the shapes issue 3 targets.
//!
//!     cargo bench --bench rerank [-- --quick]
//!
//! Baselines measured in the same run: the reference engine (÷ ref), and scoring the same
//! candidates by plain `q·c`, the retriever's own work (÷ q·c: how many dot-product
//! rescorings one rerank costs). The folded engine runs once per CPU kernel this machine has.
//! GFLOP/s counts the literal SPEC §3 math, 2·k·(4d·h + 4h) flops per query, for every engine,
//! so the folded engine's rate is "effective". "÷ floor": time over the folded math's
//! arithmetic floor, 2·k·d·h flops at the kernel's f32 FMA peak, measured at the start. Where
//! the CPU has AVX512-FP16, the folded engine at f16 precision too (against the same f32 floor).

use rrra::sampler::SplitMix64;
use rrra::{
    Adapter, AdapterConfig, AdapterWeights, Batch, CpuKernel, EngineKind, EnginePreference, Precision, RerankOutputs,
    ScoreOptions, Session, SessionOptions,
};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Median wall time of `run` over `reps` repetitions after one warm-up.
fn median(reps: usize, mut run: impl FnMut()) -> Duration {
    run();
    let mut times: Vec<Duration> = (0..reps)
        .map(|_| {
            let t = Instant::now();
            run();
            t.elapsed()
        })
        .collect();
    times.sort();
    times[reps / 2]
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let shapes: &[(usize, usize, usize)] = if quick {
        &[(384, 384, 100)]
    } else {
        &[(384, 384, 100), (384, 384, 1000), (768, 768, 100), (768, 768, 1000)]
    };
    let kernels: Vec<(CpuKernel, f64)> = CpuKernel::ALL
        .into_iter()
        .filter_map(|kernel| Some((kernel, kernel.measure_peak_gflops(Duration::from_millis(300))?)))
        .collect();
    for (kernel, peak) in &kernels {
        println!("f32 FMA peak, {} kernel: {peak:.1} GFLOP/s (one thread)", kernel.name());
    }
    println!(
        "{:>5} {:>5} {:>6} {:>21} {:>12} {:>10} {:>10} {:>9} {:>9}",
        "d", "h", "k", "engine", "ms/query", "÷ q·c", "÷ ref", "GFLOP/s", "÷ floor"
    );
    for &(d, h, k) in shapes {
        let weights = AdapterWeights::random(d, h, 1);
        let mut rng = SplitMix64::new(2);
        let adapter = Arc::new(Adapter::new(weights, AdapterConfig::default()).expect("valid adapter"));
        let query: Vec<f32> = (0..d).map(|_| rng.next_symmetric(0.05)).collect();
        let candidates: Vec<f32> = (0..k * d).map(|_| rng.next_symmetric(0.05)).collect();
        let counts = [k];
        let batch = Batch::dense(d, &query, &counts, &candidates);
        let (mut scores, mut order) = (vec![0.0f32; k], vec![0u32; k]);
        let reps = if d * h * k > 100_000_000 { 5 } else { 21 };

        let dots = median(reps, || {
            for (i, row) in candidates.chunks_exact(d).enumerate() {
                scores[i] = row.iter().zip(&query).map(|(a, b)| a * b).sum();
            }
            black_box(&scores);
        });
        // The literal SPEC §3 flop count, so rates compare across engines.
        let flops = 2.0 * k as f64 * (3.0 * (d * h) as f64 + (d * h) as f64 + 4.0 * h as f64);
        let mut reference = None;
        // The reference engine, the folded one on every kernel, and at f16 precision where the
        // CPU has it (on the AVX-512 kernel; its floor stays the f32 one).
        let engines = std::iter::once((EngineKind::Reference, None, Precision::F32))
            .chain(kernels.iter().map(|&(kernel, peak)| (EngineKind::Folded, Some((kernel, peak)), Precision::F32)))
            .chain(
                kernels
                    .iter()
                    .filter(|(kernel, _)| *kernel == CpuKernel::Avx512)
                    .map(|&(kernel, peak)| (EngineKind::Folded, Some((kernel, peak)), Precision::F16)),
            );
        for (engine, kernel, precision) in engines {
            let options = SessionOptions {
                engine: EnginePreference::Force(engine),
                cpu_kernel: kernel.map(|(kernel, _)| kernel),
                precision,
                ..Default::default()
            };
            let Ok(mut session) = Session::new(adapter.clone(), options) else { continue };
            let time = median(reps, || {
                let mut out =
                    RerankOutputs { log_s_rr: Some(&mut scores), order: Some(&mut order), ..Default::default() };
                session.rerank_into(black_box(&batch), &ScoreOptions::default(), &mut out).expect("rerank");
            });
            let reference_time = *reference.get_or_insert(time);
            let name = match kernel {
                Some((kernel, _)) if precision == Precision::F16 => format!("{}/{} f16", engine.name(), kernel.name()),
                Some((kernel, _)) => format!("{}/{}", engine.name(), kernel.name()),
                None => engine.name().to_string(),
            };
            let floor = match kernel {
                Some((_, peak)) => format!("{:.2}", time.as_secs_f64() / (2.0 * (k * d * h) as f64 / (peak * 1e9))),
                None => "—".to_string(),
            };
            println!(
                "{d:>5} {h:>5} {k:>6} {name:>21} {:>12.3} {:>10.1} {:>10.2} {:>9.2} {floor:>9}",
                time.as_secs_f64() * 1e3,
                time.as_secs_f64() / dots.as_secs_f64(),
                time.as_secs_f64() / reference_time.as_secs_f64(),
                flops / time.as_secs_f64() / 1e9
            );
        }
    }
}
