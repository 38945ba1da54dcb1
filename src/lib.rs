//! rrra: the RRRA retriever adapter (arXiv 2508.11670) as an embeddable reranking library.
//!
//! Data flows one way: adapter file bytes → [`Adapter`] (immutable, share it in an `Arc`) →
//! [`Session`] (scratch memory and an engine, one thread at a time) → scores, orders and
//! samples in the caller's buffers. The math and the file format are in `SPEC.md` (§ numbers
//! in comments refer to it).
//!
//! ```
//! use rrra::{Adapter, AdapterConfig, AdapterWeights, Batch, ScoreOptions, Session, SessionOptions};
//! use std::sync::Arc;
//!
//! let (d, h) = (4, 3);
//! let weights = AdapterWeights {
//!     dim: d, hidden: h,
//!     fc1_weight: vec![0.1; h * 3 * d], fc1_bias: vec![0.0; h],
//!     fc2_weight: vec![0.01; d * h], fc2_bias: vec![0.0; d],
//!     classifier_weight: vec![0.2; 4 * h], classifier_bias: vec![0.0; 4],
//! };
//! let adapter = Arc::new(Adapter::new(weights, AdapterConfig::default())?);
//! let mut session = Session::new(adapter, SessionOptions::default())?;
//! let query = [1.0, 0.0, 0.0, 0.0];
//! let candidates = [0.9, 0.1, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0];
//! let out = session.rerank(&Batch::dense(d, &query, &[2], &candidates), &ScoreOptions::default())?;
//! assert_eq!(out.order, vec![0, 1]);
//! # Ok::<(), rrra::Error>(())
//! ```

mod batch;
#[cfg(feature = "pipeline")]
pub mod dataset;
#[cfg(feature = "encoder")]
pub mod encoder;
mod engine;
mod error;
pub mod eval;
pub mod ffi;
mod linalg;
mod model;
pub mod retrieval;
pub mod sampler;
mod scores;
mod session;
pub mod train;
mod values;
mod workers;

pub use batch::{Batch, Candidates, Corpus};
pub use engine::{CpuKernel, EngineKind, EnginePreference, Precision};

/// The CUDA kernels as NVRTC builds them (feature `cuda`): for checking, without a GPU, that
/// every kernel file compiles for an architecture and what each entry point costs in registers.
#[cfg(feature = "cuda")]
pub mod cuda {
    pub use crate::engine::cuda::{
        build_kernels_cached_in, compile_kernels, entry_points, kernel_files, nvrtc_version, CompiledKernels,
        KernelResources,
    };
}
pub use error::{Error, ErrorKind, Result};
pub use model::{Activation, Adapter, AdapterConfig, AdapterWeights, BaseTransform, Similarity, WeightDtype};
pub use scores::ScoreOptions;
pub use session::{
    RerankOutputs, Reranked, ResampleOutputs, ResampleRequest, Resampled, Session, SessionOptions, MAX_THREADS,
};
pub use values::Values;

/// The library version, from `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
