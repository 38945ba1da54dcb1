//! `rrra_model`: a loaded adapter, immutable and shareable between threads.

use super::boundary::{
    free_handle, guard, guard_free, input_slice, null_pointer, read_struct, rrra_status, write_handle,
};
use crate::error::{Error, ErrorKind};
use crate::model::{Activation, Adapter, BaseTransform, Similarity};
use std::ffi::{c_char, CStr, CString};
use std::sync::Arc;

/// A validated adapter. Immutable: any number of threads may use one model at once.
pub struct rrra_model {
    pub(crate) adapter: Arc<Adapter>,
    encoder: CString,
}

impl rrra_model {
    fn new(adapter: Adapter) -> rrra_model {
        let encoder = CString::new(adapter.config().encoder.replace('\0', " ")).unwrap_or_default();
        rrra_model { adapter: Arc::new(adapter), encoder }
    }
}

/// Activation values of `rrra_model_info.activation`.
#[repr(u32)]
pub enum rrra_activation {
    Relu = 0,
    Gelu = 1,
    GeluTanh = 2,
    Silu = 3,
    Tanh = 4,
}

/// Similarity values of `rrra_model_info.similarity`.
#[repr(u32)]
pub enum rrra_similarity {
    Dot = 0,
    Cosine = 1,
}

/// Base-score transforms (SPEC §4), in `rrra_model_info` and `rrra_score_options`.
#[repr(u32)]
pub enum rrra_base_transform {
    Identity = 0,
    Sigmoid = 1,
    Softmax = 2,
}

/// What a model file declares. Set `struct_size = sizeof(rrra_model_info)` before the call.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rrra_model_info {
    pub struct_size: usize,
    /// Embedding dimension `d`.
    pub dim: usize,
    /// Hidden width `h`.
    pub hidden: usize,
    pub parameter_count: usize,
    /// An `rrra_activation` value.
    pub activation: u32,
    /// An `rrra_similarity` value.
    pub similarity: u32,
    /// An `rrra_base_transform` value.
    pub base_transform: u32,
    pub adapter_mu: f64,
    pub adapter_tau: f64,
    pub base_mu: f64,
    pub base_tau: f64,
    pub lambda_rr: f64,
    pub gamma_rs: f64,
    /// The bi-encoder the adapter was trained on (may be ""). Owned by the model; valid
    /// until `rrra_model_free`.
    pub encoder: *const c_char,
}

/// Loads and validates an adapter file.
///
/// `path`: NUL-terminated, UTF-8. On success `*model_out` receives a new model the caller
/// must release with `rrra_model_free`; on failure it is left untouched.
/// Errors: NULL_POINTER (path or model_out NULL), INVALID_ARGUMENT (path not UTF-8),
/// IO (cannot read the file), INVALID_MODEL (the file breaks SPEC §2; the message names the
/// tensor or key). Thread-safety: may be called from any thread.
///
/// # Safety
/// `path` must be NULL or a NUL-terminated string; `model_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rrra_model_load_file(path: *const c_char, model_out: *mut *mut rrra_model) -> rrra_status {
    guard(|| {
        if path.is_null() {
            return Err(null_pointer("path"));
        }
        if model_out.is_null() {
            return Err(null_pointer("model_out"));
        }
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let path =
            unsafe { CStr::from_ptr(path) }.to_str().map_err(|_| Error::invalid_argument("path is not valid UTF-8"))?;
        let adapter = Adapter::from_file(path)?;
        // SAFETY: model_out checked non-NULL above.
        unsafe { write_handle(model_out, rrra_model::new(adapter)) };
        Ok(())
    })
}

/// Loads and validates an adapter file held in memory; the bytes are copied, so the buffer
/// may be released after the call.
///
/// Ownership and errors as `rrra_model_load_file`, with NULL_POINTER for a NULL `bytes`
/// of nonzero `bytes_len`. Thread-safety: may be called from any thread.
///
/// # Safety
/// `bytes` must point to `bytes_len` readable bytes; `model_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rrra_model_load_bytes(
    bytes: *const u8,
    bytes_len: usize,
    model_out: *mut *mut rrra_model,
) -> rrra_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let bytes = unsafe { input_slice(bytes, bytes_len, "bytes", "bytes_len") }?;
        if model_out.is_null() {
            return Err(null_pointer("model_out"));
        }
        let adapter = Adapter::from_bytes(bytes)?;
        // SAFETY: model_out checked non-NULL above.
        unsafe { write_handle(model_out, rrra_model::new(adapter)) };
        Ok(())
    })
}

/// Releases a model. NULL is a no-op. Sessions created from the model keep their own
/// reference, so a model may be freed while its sessions live on. Errors: none; leaves
/// `rrra_last_error()` as it was.
/// Thread-safety: no other call may be using this handle at the same time.
///
/// # Safety
/// `model` must be NULL or a live model from this library, not used by any other thread
/// during this call and never used again after it.
#[no_mangle]
pub unsafe extern "C" fn rrra_model_free(model: *mut rrra_model) {
    guard_free(|| {
        // SAFETY: the caller's contract.
        unsafe { free_handle(model) };
    });
}

/// Fills `*info_out` with what the model declares; the caller sets `info_out->struct_size`.
///
/// Errors: NULL_POINTER, INVALID_ARGUMENT (struct_size is not sizeof(rrra_model_info) of
/// this version). Thread-safety: any thread, concurrently with other calls on the model.
///
/// # Safety
/// `model` must be NULL or a live model; `info_out` NULL or a writable `rrra_model_info`.
#[no_mangle]
pub unsafe extern "C" fn rrra_model_info_get(model: *const rrra_model, info_out: *mut rrra_model_info) -> rrra_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let model = unsafe { model.as_ref() }.ok_or_else(|| null_pointer("model"))?;
        // SAFETY: the caller's contract.
        unsafe { read_struct(info_out.cast_const(), "info_out") }?;
        let a = &model.adapter;
        let c = a.config();
        let info = rrra_model_info {
            struct_size: std::mem::size_of::<rrra_model_info>(),
            dim: a.dim(),
            hidden: a.hidden(),
            parameter_count: a.parameter_count(),
            activation: match c.activation {
                Activation::Relu => rrra_activation::Relu,
                Activation::Gelu => rrra_activation::Gelu,
                Activation::GeluTanh => rrra_activation::GeluTanh,
                Activation::Silu => rrra_activation::Silu,
                Activation::Tanh => rrra_activation::Tanh,
            } as u32,
            similarity: match c.similarity {
                Similarity::Dot => rrra_similarity::Dot,
                Similarity::Cosine => rrra_similarity::Cosine,
            } as u32,
            base_transform: base_transform_code(c.base_transform),
            adapter_mu: c.adapter_mu,
            adapter_tau: c.adapter_tau,
            base_mu: c.base_mu,
            base_tau: c.base_tau,
            lambda_rr: c.lambda_rr,
            gamma_rs: c.gamma_rs,
            encoder: model.encoder.as_ptr(),
        };
        // SAFETY: checked non-NULL and sized by read_struct.
        unsafe { *info_out = info };
        Ok(())
    })
}

pub(crate) fn base_transform_code(t: BaseTransform) -> u32 {
    (match t {
        BaseTransform::Identity => rrra_base_transform::Identity,
        BaseTransform::Sigmoid => rrra_base_transform::Sigmoid,
        BaseTransform::Softmax => rrra_base_transform::Softmax,
    }) as u32
}

pub(crate) fn base_transform_from_code(code: u32) -> crate::Result<BaseTransform> {
    match code {
        0 => Ok(BaseTransform::Identity),
        1 => Ok(BaseTransform::Sigmoid),
        2 => Ok(BaseTransform::Softmax),
        other => Err(Error::new(
            ErrorKind::InvalidArgument,
            format!("options->base_transform: unknown value {other} (expected an rrra_base_transform)"),
        )),
    }
}
