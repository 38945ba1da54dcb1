//! Backends that run the adapter's forward pass (SPEC §3) over a validated batch.
//!
//! An engine computes the raw per-pair quantities only; turning them into scores, orders and
//! samples is the same for every engine and lives in [`crate::scores`] and [`crate::sampler`].

/// cbindgen:ignore
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
mod f16;
mod folded;
mod reference;
pub(crate) mod simd;

pub use simd::CpuKernel;

use crate::batch::Batch;
use crate::error::{Error, ErrorKind, Result};
use crate::model::Adapter;
use crate::workers::Workers;

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
    /// SPEC §8's folded layers in CUDA kernels compiled at run time with NVRTC (NVIDIA GPU; a
    /// build with the `cuda` feature, the driver, libnvrtc and a device).
    Cuda,
}

impl EngineKind {
    pub fn name(self) -> &'static str {
        match self {
            EngineKind::Reference => "reference",
            EngineKind::Folded => "folded",
            EngineKind::Cuda => "cuda",
        }
    }
}

/// The arithmetic a session's engine computes in. f32 everywhere; the reduced precisions round
/// the weights and candidates of layer 1's product (and layer 2's for cosine) and keep every
/// sum of more than a few terms in f32, within SPEC §6's reduced-precision tolerance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Precision {
    /// f32 weights, candidates and sums: SPEC §6's f32 tolerance. The default.
    #[default]
    F32,
    /// IEEE half: the folded CPU engine on AVX512-FP16 (half-precision sums of 32 products,
    /// widened into f32), or the CUDA engine's tensor cores (f32 accumulation).
    F16,
    /// bfloat16: the CUDA engine's tensor cores only (more range, less mantissa than f16). The
    /// CPU engines have none: AVX512-BF16's dot product measured at half the f32 FMA rate.
    Bf16,
}

/// cbindgen:ignore
impl Precision {
    pub const ALL: [Precision; 3] = [Precision::F32, Precision::F16, Precision::Bf16];

    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    /// The precision named `name` (as [`Precision::name`] spells it).
    pub fn from_name(name: &str) -> Option<Precision> {
        Precision::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The values this precision holds, in the words of the errors below.
    pub(crate) fn range(self) -> &'static str {
        match self {
            Precision::F32 => "the f32 range",
            Precision::F16 => "±65504, the range of the session's f16 precision",
            Precision::Bf16 => "the range of the session's bf16 precision",
        }
    }
}

/// An adapter with a weight that the session's precision cannot hold.
pub(crate) fn weight_out_of_range(precision: Precision) -> Error {
    Error::new(
        ErrorKind::Unsupported,
        format!("{} precision: a weight of the adapter is beyond {}", precision.name(), precision.range()),
    )
}

/// A candidate with a value that the session's precision cannot hold (every engine says it
/// in these words). `position` counts within the query.
pub(crate) fn candidate_out_of_range(precision: Precision, query: usize, position: usize) -> Error {
    Error::invalid_argument(format!("query {query}, candidate {position}: a value is beyond {}", precision.range()))
}

/// A pre-activation of layer 1 that overflowed the precision: an error even where the
/// activation would hide it (ReLU of −∞ is 0, tanh of it −1), never a finite, wrong score.
pub(crate) fn hidden_layer_overflow(precision: Precision, query: usize) -> Error {
    Error::new(
        ErrorKind::Numeric,
        format!("query {query}: the adapter's hidden layer overflowed {}", precision.range()),
    )
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
    fn precision(&self) -> Precision {
        Precision::F32
    }
    /// Whether [`Engine::forward`] fails whenever a candidate value is NaN or ±Inf (it finds them
    /// as it reads the candidates anyway), so the session need not check them beforehand.
    fn checks_candidates(&self) -> bool {
        false
    }
    /// Fills `out[i]` for every candidate `i` of the batch. The batch has been validated against
    /// `adapter`, and `out.len()` is its total candidate count; its first query is query
    /// `first_query` of the caller's batch (errors name queries by that count). The engine may
    /// share the work with `workers`.
    fn forward(
        &mut self,
        adapter: &Adapter,
        batch: &Batch<'_>,
        first_query: usize,
        out: &mut [PairRaw],
        workers: &mut Workers,
    ) -> Result<()>;
}

/// What a session asks of the engines, beyond the engine itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EngineRequest {
    pub preference: EnginePreference,
    /// Forces the folded engine's instruction set (`None`: the best this CPU has).
    pub kernel: Option<CpuKernel>,
    pub precision: Precision,
    pub threads: usize,
}

/// Whether the CUDA engine can run here: `Err` says why not, in a few words that fit after
/// "cuda: " (built without the feature, a library missing, no device, ...).
#[cfg(feature = "cuda")]
fn cuda_usable() -> Result<(), Error> {
    cuda::probe().map(drop)
}

#[cfg(not(feature = "cuda"))]
fn cuda_usable() -> Result<(), Error> {
    Err(Error::new(ErrorKind::Unsupported, "not compiled in (build with --features cuda)"))
}

/// Picks the engine and says why, for [`crate::Session::engine_reason`]; one engine per
/// thread, sharing whatever they precompute from the adapter.
pub(crate) fn select(adapter: &Adapter, request: EngineRequest) -> Result<(Vec<Box<dyn Engine>>, String)> {
    let EngineRequest { preference, kernel, precision, threads } = request;
    let (kind, why_engine) = match preference {
        EnginePreference::Auto if kernel.is_some() => {
            (EngineKind::Folded, "auto: the folded CPU engine (a cpu kernel was forced)".to_string())
        }
        EnginePreference::Auto => match cuda_usable() {
            Ok(()) => (EngineKind::Cuda, "auto: the cuda engine".to_string()),
            Err(why) => (EngineKind::Folded, format!("auto: the folded CPU engine (cuda: {})", why.message())),
        },
        EnginePreference::Force(kind) => (kind, "forced by the caller".to_string()),
    };
    if let (Some(kernel), EngineKind::Reference | EngineKind::Cuda) = (kernel, kind) {
        return Err(Error::invalid_argument(format!(
            "cpu kernel {} was forced, but the {} engine has no CPU kernels",
            kernel.name(),
            kind.name()
        )));
    }
    match kind {
        EngineKind::Reference => {
            if precision != Precision::F32 {
                return Err(Error::invalid_argument(format!(
                    "{} precision was asked for, but the reference engine computes in f32 only",
                    precision.name()
                )));
            }
            let engines = (0..threads).map(|_| Box::new(reference::ReferenceEngine::new(adapter)) as Box<dyn Engine>);
            Ok((engines.collect(), why_engine))
        }
        EngineKind::Folded => {
            let (kernel, why_kernel) = match (kernel, precision) {
                (Some(kernel), _) => (kernel, "forced by the caller"),
                (None, Precision::F32) => (CpuKernel::best(), "the best this CPU has (detected at run time)"),
                (None, _) => (CpuKernel::Avx512, "the one with f16 arithmetic (AVX512-FP16)"),
            };
            let engines: Vec<Box<dyn Engine>> = match precision {
                Precision::F32 => folded::engines::<f32>(adapter, kernel, threads)?,
                Precision::F16 => folded::engines::<half::f16>(adapter, kernel, threads)?,
                Precision::Bf16 => {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!(
                            "bf16 precision: the CPU engines have none (AVX512-BF16's dot product measured at half \
                             the f32 FMA rate; f16 runs at twice it){}",
                            match preference {
                                EnginePreference::Auto =>
                                    format!("; the cuda engine, which has it, is not here ({})", why_engine),
                                EnginePreference::Force(_) => String::new(),
                            }
                        ),
                    ))
                }
            };
            let reason =
                format!("{why_engine}; {} kernels at {} precision, {why_kernel}", kernel.name(), precision.name());
            Ok((engines, reason))
        }
        EngineKind::Cuda => cuda_engines(adapter, precision, threads, why_engine),
    }
}

#[cfg(feature = "cuda")]
fn cuda_engines(
    adapter: &Adapter,
    precision: Precision,
    threads: usize,
    why_engine: String,
) -> Result<(Vec<Box<dyn Engine>>, String)> {
    let (engines, about) = cuda::engines(adapter, precision, threads)
        .map_err(|e| Error::new(e.kind(), format!("the cuda engine is unavailable: {}", e.message())))?;
    Ok((engines, format!("{why_engine}; {about}")))
}

#[cfg(not(feature = "cuda"))]
fn cuda_engines(
    _adapter: &Adapter,
    _precision: Precision,
    _threads: usize,
    _why_engine: String,
) -> Result<(Vec<Box<dyn Engine>>, String)> {
    Err(Error::new(ErrorKind::Unsupported, "the cuda engine is not compiled in (build with --features cuda)"))
}
