//! Backends that run the adapter's forward pass (SPEC §3) over a validated batch.
//!
//! An engine computes the raw per-pair quantities only; turning them into scores, orders and
//! samples is the same for every engine and lives in [`crate::scores`] and [`crate::sampler`].

/// cbindgen:ignore
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
mod folded;
mod reference;
mod simd;

pub use simd::CpuKernel;

use crate::batch::Batch;
use crate::error::{Error, ErrorKind, Result};
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
    /// SPEC §8's folded layers on packed weights and a SIMD tile per instruction set (CPU).
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
    /// The instruction set of a CPU engine's kernels; `None` for an engine without a choice.
    fn cpu_kernel(&self) -> Option<CpuKernel> {
        None
    }
    /// Fills `out[i]` for every candidate `i` of the batch. The batch has been validated against
    /// `adapter`, and `out.len()` is its total candidate count. The engine may use up to `width`
    /// threads inside the call (1: only the calling thread).
    fn forward(&mut self, adapter: &Adapter, batch: &Batch<'_>, out: &mut [PairRaw], width: usize) -> Result<()>;
}

/// Picks the engine and says why, for [`crate::Session::engine_reason`]; one engine per
/// thread, sharing whatever they precompute from the adapter. `kernel` forces the folded engine's
/// instruction set (`None`: the best this CPU has).
pub(crate) fn select(
    adapter: &Adapter,
    preference: EnginePreference,
    kernel: Option<CpuKernel>,
    threads: usize,
) -> Result<(Vec<Box<dyn Engine>>, String)> {
    let (kind, why_engine) = match preference {
        EnginePreference::Auto => (
            EngineKind::Folded,
            "auto: the folded CPU engine, the fastest in this build (no GPU engine is compiled in)",
        ),
        EnginePreference::Force(kind) => (kind, "forced by the caller"),
    };
    match kind {
        EngineKind::Reference => {
            if let Some(kernel) = kernel {
                return Err(Error::invalid_argument(format!(
                    "cpu kernel {} was forced, but the reference engine has no CPU kernels",
                    kernel.name()
                )));
            }
            let engines = (0..threads).map(|_| Box::new(reference::ReferenceEngine::new(adapter)) as Box<dyn Engine>);
            Ok((engines.collect(), why_engine.to_string()))
        }
        EngineKind::Folded => {
            let (kernel, why_kernel) = match kernel {
                Some(kernel) => (kernel, "forced by the caller"),
                None => (CpuKernel::best(), "the best this CPU has (detected at run time)"),
            };
            let weights = folded::FoldedWeights::new(adapter, kernel).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unsupported,
                    format!("cpu kernel {}: this CPU does not have its instruction set", kernel.name()),
                )
            })?;
            let engines = (0..threads).map(|_| Box::new(folded::FoldedEngine::new(weights.clone())) as Box<dyn Engine>);
            let reason = format!("{why_engine}; {} kernels, {why_kernel}", kernel.name());
            Ok((engines.collect(), reason))
        }
    }
}
