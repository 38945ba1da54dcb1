//! The README's first command: writes a small adapter file, loads it back, reranks one query's
//! candidate list and draws hard negatives from it, printing what it does.
//!
//!     cargo run --release --example quickstart [-- OUT.safetensors]
//!
//! The adapter's weights are random, so the order it prints demonstrates the mechanics, not
//! relevance; a trained adapter comes from the trainer.

use rrra::sampler::SplitMix64;
use rrra::{Adapter, AdapterConfig, AdapterWeights, Batch, ResampleRequest, ScoreOptions, Session, SessionOptions};
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path =
        std::env::args().nth(1).map_or_else(|| std::env::temp_dir().join("rrra-quickstart.safetensors"), Into::into);
    let (d, h, k) = (16, 32, 8);
    let mut rng = SplitMix64::new(42);
    let mut values = |n: usize| -> Vec<f32> { (0..n).map(|_| rng.next_symmetric(0.25)).collect() };

    // 1. An adapter file, as a trainer would write it (random weights here).
    let weights = AdapterWeights::random(d, h, 7);
    let config = AdapterConfig { lambda_rr: 1.0, encoder: "quickstart (random weights)".into(), ..Default::default() };
    Adapter::new(weights, config)?.save(&path)?;
    println!("wrote {} ", path.display());

    // 2. Load it and open a session (one per thread; the adapter is shared).
    let adapter = Arc::new(Adapter::from_file(&path)?);
    println!("adapter: d = {}, h = {}, {} parameters", adapter.dim(), adapter.hidden(), adapter.parameter_count());
    let mut session = Session::new(adapter, SessionOptions::default())?;
    println!("engine: {} ({})", session.engine().name(), session.engine_reason());

    // 3. One query, its top-k candidates and the retriever's scores, best first.
    let query = values(d);
    let candidates = values(k * d);
    let base: Vec<f32> = (0..k).map(|i| 2.0 - 0.2 * i as f32).collect();
    let counts = [k];
    let batch = Batch::dense(d, &query, &counts, &candidates).with_base_scores(&base);

    let out = session.rerank(&batch, &ScoreOptions::default())?;
    println!("\n pos  base   s_A    s_FN   log s_RR");
    for (i, b) in base.iter().enumerate() {
        println!("{i:>4}  {b:.2}  {:.3}  {:.3}  {:>8.4}", out.s_a[i], out.s_fn[i], out.log_s_rr[i]);
    }
    println!("reranked order (input positions, best first): {:?}", out.order);

    // 4. Hard negatives for training: position 0 is the labelled positive and is never drawn.
    let mut mask = vec![0u8; k];
    mask[0] = 1;
    let request = ResampleRequest { samples_per_query: 3, seed: 7, first_query_index: 0, positive_mask: Some(&mask) };
    let drawn = session.resample(&batch, &ScoreOptions::default(), &request)?;
    println!("3 negatives drawn by s_RS (seed 7): {:?}", &drawn.samples[..drawn.sample_counts[0] as usize]);
    Ok(())
}
