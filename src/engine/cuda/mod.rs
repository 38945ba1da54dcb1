//! The CUDA engine: whether it can run here, the device it runs on, and its engines.
//!
//! Everything CUDA is reached through cudarc with dynamic loading, so a build with the `cuda`
//! feature still starts on a machine without the driver or NVRTC. cudarc panics when a library
//! it needs is missing, so [`probe`] checks each library with `is_culib_present` before any
//! other call, and catches the panic of a library too old to have a function cudarc looks up.
//!
//! Three tiers, as elsewhere: [`Device`] (context, kernels; one per process), the adapter's
//! weights on the device (one per session, shared by its threads' engines), and each engine's
//! stream and scratch ([`engine::CudaEngine`]).

mod compile;
mod engine;

pub use compile::{
    build_kernels_cached_in, compile_kernels, entry_points, kernel_files, nvrtc_version, CompiledKernels,
    KernelResources,
};

use super::{Engine, Precision};
use crate::error::{Error, ErrorKind, Result};
use crate::model::Adapter;
use compile::Target;
use cudarc::driver::{CudaContext, CudaFunction, DriverError};
use std::sync::{Arc, OnceLock};

/// Compute capability 7.5 (Turing) is the oldest that CUDA 13's NVRTC compiles for.
const MIN_ARCH: u32 = 75;
/// bf16/f16 `mma.sync` m16n8k16 needs compute capability 8.0 (Ampere).
const MIN_TENSOR_CORE_ARCH: u32 = 80;

pub(crate) fn unsupported(message: impl Into<String>) -> Error {
    Error::new(ErrorKind::Unsupported, message)
}

/// A CUDA driver failure as a library error, named as CUDA names it. Running out of device
/// memory, or losing the device, is the machine's limit (`Unsupported`); anything else (a launch
/// that faults, an invalid value) is a bug of this engine (`Internal`).
pub(crate) fn driver_error(what: &str, e: DriverError) -> Error {
    use cudarc::driver::sys::CUresult;
    let kind = match e.0 {
        CUresult::CUDA_ERROR_OUT_OF_MEMORY
        | CUresult::CUDA_ERROR_NO_DEVICE
        | CUresult::CUDA_ERROR_DEVICE_UNAVAILABLE
        | CUresult::CUDA_ERROR_DEVICE_NOT_LICENSED
        | CUresult::CUDA_ERROR_ECC_UNCORRECTABLE
        | CUresult::CUDA_ERROR_HARDWARE_STACK_ERROR
        | CUresult::CUDA_ERROR_SYSTEM_DRIVER_MISMATCH
        | CUresult::CUDA_ERROR_COMPAT_NOT_SUPPORTED_ON_DEVICE
        | CUresult::CUDA_ERROR_UNSUPPORTED_PTX_VERSION
        | CUresult::CUDA_ERROR_NO_BINARY_FOR_GPU => ErrorKind::Unsupported,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("cuda: {what} failed: {:?}", e.0))
}

/// The kernels of one kernel file, loaded into the device's context.
pub(crate) struct Kernels {
    pub fold_query: CudaFunction,
    /// Indexed by `engine::kernel_index` (f32, bf16, f16).
    pub score_pairs: [CudaFunction; 3],
    pub adapt_cosine: [CudaFunction; 3],
}

/// The GPU this process uses (ordinal 0: `CUDA_VISIBLE_DEVICES` picks another) and its kernels.
pub(crate) struct Device {
    pub context: Arc<CudaContext>,
    pub name: String,
    /// Compute capability as major·10 + minor.
    pub arch: u32,
    pub target: Target,
    pub nvrtc: (u32, u32),
    pub kernels: Kernels,
}

impl Device {
    /// One line for the engine reason.
    fn describe(&self) -> String {
        format!(
            "{} (compute capability {}.{}), kernels built by NVRTC {}.{} as {}",
            self.name,
            self.arch / 10,
            self.arch % 10,
            self.nvrtc.0,
            self.nvrtc.1,
            self.target.describe()
        )
    }
}

fn driver_present() -> bool {
    // SAFETY: only tries to dlopen the library under its usual names.
    unsafe { cudarc::driver::sys::is_culib_present() }
}

fn open_device() -> Result<Device> {
    let missing: Vec<&str> = [
        (!driver_present()).then_some("libcuda (the NVIDIA driver library)"),
        (!compile::nvrtc_present()).then_some("libnvrtc (NVRTC from CUDA 12 or 13)"),
    ]
    .into_iter()
    .flatten()
    .collect();
    if !missing.is_empty() {
        return Err(unsupported(format!("{} cannot be loaded", missing.join(" and "))));
    }
    let count = CudaContext::device_count().map_err(|e| driver_error("finding a device", e))?;
    if count < 1 {
        return Err(unsupported("the driver reports no CUDA device"));
    }
    let context = CudaContext::new(0).map_err(|e| driver_error("creating a context on device 0", e))?;
    let name = context.name().map_err(|e| driver_error("reading the device name", e))?;
    let (major, minor) = context.compute_capability().map_err(|e| driver_error("reading the compute capability", e))?;
    let arch = (major * 10 + minor) as u32;
    if arch < MIN_ARCH {
        return Err(unsupported(format!(
            "{name} has compute capability {major}.{minor}; the kernels need {}.{} or later",
            MIN_ARCH / 10,
            MIN_ARCH % 10
        )));
    }
    let nvrtc = compile::nvrtc_version()?;
    let supported = compile::supported_archs()?;
    let target = Target::for_device(arch, &supported)
        .ok_or_else(|| unsupported(format!("NVRTC {}.{} cannot compile for sm_{arch} ({name})", nvrtc.0, nvrtc.1)))?;
    let builds = compile::builds(target)?;
    let mut modules = Vec::with_capacity(builds.len());
    for build in builds.iter() {
        let image = match target {
            Target::Cubin(_) => cudarc::nvrtc::Ptx::from_binary(build.image.clone()),
            // The driver wants PTX as text; NVRTC's image ends with its NUL.
            Target::Ptx(_) => cudarc::nvrtc::Ptx::from_src(
                String::from_utf8_lossy(build.image.strip_suffix(&[0]).unwrap_or(&build.image)).into_owned(),
            ),
        };
        let module =
            context.load_module(image).map_err(|e| driver_error(&format!("loading kernels/{}", build.file), e))?;
        modules.push((build.file, module));
    }
    let function = |name: &str| -> Result<CudaFunction> {
        let file = entry_points().iter().find(|(_, entry)| *entry == name).map(|(file, _)| *file);
        let module = modules.iter().find(|(f, _)| Some(*f) == file).map(|(_, m)| m);
        let module =
            module.ok_or_else(|| Error::new(ErrorKind::Internal, format!("cuda: no kernel file has {name}")))?;
        module.load_function(name).map_err(|e| driver_error(&format!("finding kernel {name}"), e))
    };
    let per_precision = |family: &str| -> Result<[CudaFunction; 3]> {
        Ok([
            function(&format!("{family}_f32"))?,
            function(&format!("{family}_bf16"))?,
            function(&format!("{family}_f16"))?,
        ])
    };
    let kernels = Kernels {
        fold_query: function("fold_query_f32")?,
        score_pairs: per_precision("score_pairs")?,
        adapt_cosine: per_precision("adapt_cosine")?,
    };
    Ok(Device { context, name, arch, target, nvrtc, kernels })
}

/// The device, opened and its kernels built on the first call in this process; the outcome,
/// success or the reason for failure, is kept for every later session.
pub(crate) fn probe() -> Result<Arc<Device>> {
    static DEVICE: OnceLock<Result<Arc<Device>>> = OnceLock::new();
    DEVICE
        .get_or_init(|| {
            std::panic::catch_unwind(open_device).map(|device| device.map(Arc::new)).unwrap_or_else(|_| {
                Err(unsupported(
                    "the CUDA driver or NVRTC library lacks a function this build needs (older than CUDA 12?)",
                ))
            })
        })
        .clone()
}

/// `threads` CUDA engines over `adapter`, and a description of the device and arithmetic for
/// the engine reason.
pub(crate) fn engines(
    adapter: &Adapter,
    precision: Precision,
    threads: usize,
) -> Result<(Vec<Box<dyn Engine>>, String)> {
    let device = probe()?;
    if precision != Precision::F32 && device.arch < MIN_TENSOR_CORE_ARCH {
        return Err(unsupported(format!(
            "{} precision runs on tensor cores of compute capability {}.{} or later; {} has {}.{}",
            precision.name(),
            MIN_TENSOR_CORE_ARCH / 10,
            MIN_TENSOR_CORE_ARCH % 10,
            device.name,
            device.arch / 10,
            device.arch % 10
        )));
    }
    let engines = match precision {
        Precision::F32 => engine::engines::<f32>(&device, adapter, threads)?,
        Precision::Bf16 => engine::engines::<half::bf16>(&device, adapter, threads)?,
        Precision::F16 => engine::engines::<half::f16>(&device, adapter, threads)?,
    };
    let arithmetic = match precision {
        Precision::F32 => "f32 arithmetic on the CUDA cores",
        Precision::Bf16 => "bf16 products on tensor cores, f32 accumulation",
        Precision::F16 => "f16 products on tensor cores, f32 accumulation",
    };
    Ok((engines, format!("{}; {arithmetic}", device.describe())))
}
