//! Backends that run the adapter's forward pass (SPEC §3) over a validated batch.
//!
//! An engine computes the raw per-pair quantities only; turning them into scores, orders and
//! samples is the same for every engine and lives in [`crate::scores`] and [`crate::sampler`].

mod folded;
mod reference;

use crate::batch::Batch;
use crate::error::Result;
use crate::model::Adapter;

/// The raw result of the forward pass for one (query, candidate) pair.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct PairRaw {
    /// `sim(q, a)`, `a = c + Δc`.
    pub sim_adapted: f32,
    /// `sim(q, c)`, the default base score.
    pub sim_candidate: f32,
    /// Classifier logits in class order TP, FN, FP, TN.
    pub logits: [f32; 4],
}

/// Which engine a session runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EngineKind {
    /// The straightforward f32 CPU engine that every faster engine is tested against.
    Reference,
    /// SPEC §8's folded layers on blocked f32 GEMMs (CPU).
    Folded,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Reference => "reference",
            EngineKind::Folded => "folded",
        }
    }
}

/// What the caller asks for when creating a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum EnginePreference {
    /// The best engine this machine has.
    #[default]
    Auto,
    /// Exactly this engine, or an error saying why it is unavailable.
    Force(EngineKind),
}

pub(crate) trait Engine: Send {
    fn kind(&self) -> EngineKind;
    /// Fills `out[i]` for every candidate `i` of the batch. The batch has been validated against
    /// `adapter`, and `out.len()` is its total candidate count. The engine may use up to `width`
    /// threads inside the call (1: only the calling thread).
    fn forward(&mut self, adapter: &Adapter, batch: &Batch<'_>, out: &mut [PairRaw], width: usize) -> Result<()>;
}

/// Picks the engine and says why, for [`crate::Session::engine_reason`]; one engine per
/// thread, sharing whatever they precompute from the adapter.
pub(crate) fn select(
    adapter: &Adapter,
    preference: EnginePreference,
    threads: usize,
) -> Result<(Vec<Box<dyn Engine>>, String)> {
    let (kind, reason) = match preference {
        EnginePreference::Auto => (
            EngineKind::Folded,
            "auto: the folded CPU engine, the fastest in this build (no GPU engine is compiled in)",
        ),
        EnginePreference::Force(kind) => (kind, "forced by the caller"),
    };
    let engines: Vec<Box<dyn Engine>> = match kind {
        EngineKind::Reference => {
            (0..threads).map(|_| Box::new(reference::ReferenceEngine::new(adapter)) as Box<dyn Engine>).collect()
        }
        EngineKind::Folded => {
            let weights = folded::FoldedWeights::new(adapter);
            (0..threads).map(|_| Box::new(folded::FoldedEngine::new(weights.clone())) as Box<dyn Engine>).collect()
        }
    };
    Ok((engines, reason.to_string()))
}
