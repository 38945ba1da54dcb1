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

/// The arithmetic of the CUDA engine's two matrix products (layer 1, and layer 2 for cosine).
/// Everything else (folding the query, the activation, the heads, the sums) is f32 on every path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CudaPrecision {
    /// f32 on the CUDA cores: SPEC §6's f32 tolerance, like the CPU engines. The default.
    F32,
    /// Candidates and folded weights rounded to bf16, products on tensor cores with f32
    /// accumulation (compute capability 8.0 or later): SPEC §6's reduced-precision tolerance.
    Bf16,
    /// As `Bf16`, in IEEE half precision (more mantissa, less range).
    F16,
}

/// cbindgen:ignore
impl CudaPrecision {
    pub const ALL: [CudaPrecision; 3] = [CudaPrecision::F32, CudaPrecision::Bf16, CudaPrecision::F16];

    pub fn name(self) -> &'static str {
        match self {
            CudaPrecision::F32 => "f32",
            CudaPrecision::Bf16 => "bf16",
            CudaPrecision::F16 => "f16",
        }
    }

    /// The precision named `name` (as [`CudaPrecision::name`] spells it).
    pub fn from_name(name: &str) -> Option<CudaPrecision> {
        CudaPrecision::ALL.into_iter().find(|p| p.name() == name)
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
    /// The arithmetic of the CUDA engine's products; `None` for the CPU engines.
    fn cuda_precision(&self) -> Option<CudaPrecision> {
        None
    }
    /// Fills `out[i]` for every candidate `i` of the batch. The batch has been validated against
    /// `adapter`, and `out.len()` is its total candidate count. The engine may use up to `width`
    /// threads inside the call (1: only the calling thread).
    fn forward(&mut self, adapter: &Adapter, batch: &Batch<'_>, out: &mut [PairRaw], width: usize) -> Result<()>;
}

/// What a session asks of the engines, beyond the engine itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EngineRequest {
    pub preference: EnginePreference,
    /// Forces the folded engine's instruction set (`None`: the best this CPU has).
    pub kernel: Option<CpuKernel>,
    /// Forces the CUDA engine's arithmetic (`None`: f32).
    pub precision: Option<CudaPrecision>,
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
        EnginePreference::Auto => match (kernel, precision) {
            (Some(kernel), Some(precision)) => {
                return Err(Error::invalid_argument(format!(
                    "cpu kernel {} and cuda precision {} were both forced; they belong to different engines",
                    kernel.name(),
                    precision.name()
                )))
            }
            (Some(_), None) => {
                (EngineKind::Folded, "auto: the folded CPU engine (a cpu kernel was forced)".to_string())
            }
            (None, _) => match cuda_usable() {
                Ok(()) => (EngineKind::Cuda, "auto: the cuda engine".to_string()),
                Err(why) => (EngineKind::Folded, format!("auto: the folded CPU engine (cuda: {})", why.message())),
            },
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
    if let (Some(precision), EngineKind::Reference | EngineKind::Folded, EnginePreference::Force(_)) =
        (precision, kind, preference)
    {
        return Err(Error::invalid_argument(format!(
            "cuda precision {} was forced, but the {} engine is not the cuda engine",
            precision.name(),
            kind.name()
        )));
    }
    match kind {
        EngineKind::Reference => {
            let engines = (0..threads).map(|_| Box::new(reference::ReferenceEngine::new(adapter)) as Box<dyn Engine>);
            Ok((engines.collect(), why_engine))
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
            let unused = match precision {
                Some(precision) => format!("; cuda precision {} does not apply", precision.name()),
                None => String::new(),
            };
            let reason = format!("{why_engine}; {} kernels, {why_kernel}{unused}", kernel.name());
            Ok((engines.collect(), reason))
        }
        EngineKind::Cuda => cuda_engines(adapter, precision, threads, why_engine),
    }
}

#[cfg(feature = "cuda")]
fn cuda_engines(
    adapter: &Adapter,
    precision: Option<CudaPrecision>,
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
    _precision: Option<CudaPrecision>,
    _threads: usize,
    _why_engine: String,
) -> Result<(Vec<Box<dyn Engine>>, String)> {
    Err(Error::new(ErrorKind::Unsupported, "the cuda engine is not compiled in (build with --features cuda)"))
}
