//! The CUDA engine's kernels (`kernels/`), built at run time by NVRTC through cudarc with dynamic
//! loading, so a build with the `cuda` feature needs no CUDA installation. The engine that runs
//! them comes next; today the build itself is checked (tests/cuda_kernels.rs).

// The target choice and the architecture list serve the engine, which comes next.
#[allow(dead_code)]
mod compile;

pub use compile::{compile_kernels, entry_points, kernel_files, nvrtc_version, CompiledKernels, KernelResources};

use crate::error::{Error, ErrorKind};

pub(crate) fn unsupported(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unsupported, message)
}
