//! `rrra_session`: scratch memory and an engine over one model; rerank and resample calls.

use super::boundary::{
    check_disjoint, extent, free_handle, guard, guard_free, input_slice, null_pointer, optional_input, output_slice,
    read_struct, read_struct_since, rrra_status, values_extent, write_handle, Extent,
};
use super::corpus::rrra_corpus;
use super::model::{base_transform_from_code, rrra_model};
use super::values::input_values;
use crate::batch::{Batch, Candidates};
use crate::engine::{CpuKernel, EngineKind, EnginePreference, Precision};
use crate::error::{Error, Result};
use crate::scores::ScoreOptions;
use crate::session::{RerankOutputs, ResampleOutputs, ResampleRequest, Session, SessionOptions};
use crate::values::Values;
use std::ffi::{c_char, c_void, CString};

/// Scratch memory, an engine and a reference to its model. Use a session from one thread at
/// a time (it may move between threads); give each thread its own session over a shared model.
pub struct rrra_session {
    session: Session,
    engine_reason: CString,
}

/// Engines, for `rrra_session_options.engine` and `rrra_session_engine`.
#[repr(u32)]
pub enum rrra_engine {
    /// The best engine available (session options only).
    Auto = 0,
    /// The straightforward f32 CPU engine.
    Reference = 1,
    /// SPEC §8's folded layers on blocked f32 GEMMs (CPU).
    Folded = 2,
    /// SPEC §8's folded layers in CUDA kernels (NVIDIA GPU), in the session's precision. Forcing it fails
    /// with UNSUPPORTED, saying why, in a library built without the `cuda` feature or on a machine
    /// without the driver, libnvrtc or a device; AUTO picks it only where it runs.
    Cuda = 3,
}

/// Instruction sets of the folded CPU engine's kernels, for `rrra_session_options.cpu_kernel` and
/// `rrra_session_cpu_kernel`.
#[repr(u32)]
pub enum rrra_cpu_kernel {
    /// Options: the best this CPU has, detected at run time. Query: the engine has no CPU kernels.
    Auto = 0,
    /// Plain code vectorised for the build's baseline (SSE2 on x86-64, NEON on AArch64).
    Portable = 1,
    /// x86-64 AVX2 with FMA.
    Avx2 = 2,
    /// x86-64 AVX-512F.
    Avx512 = 3,
}

/// The arithmetic of a session, for `rrra_session_options.precision` and `rrra_session_precision`.
#[repr(u32)]
pub enum rrra_precision {
    /// f32 weights, candidates and sums: SPEC §6's f32 tolerance. The default.
    F32 = 0,
    /// IEEE half weights and candidates, SPEC §6's reduced-precision tolerance: the folded engine
    /// on a CPU with AVX512-FP16 (half-precision sums of 32 products widened into f32, twice the
    /// f32 arithmetic rate; UNSUPPORTED on other CPUs), or the CUDA engine's tensor cores. Inputs
    /// are stored as their `rrra_dtype` says; a value beyond ±65504 is an INVALID_ARGUMENT, an
    /// overflow inside the adapter a NUMERIC error.
    F16 = 1,
    /// bfloat16: the CUDA engine's tensor cores only (UNSUPPORTED on the CPU engines, whose
    /// AVX512-BF16 dot product measured at half the f32 FMA rate).
    Bf16 = 2,
}

/// Session settings. Set `struct_size = sizeof(rrra_session_options)`; the 16-byte struct of
/// version 0.1 (engine and threads only) is still accepted.
#[repr(C)]
#[derive(Clone, Copy, Default)]
pub struct rrra_session_options {
    pub struct_size: usize,
    /// An `rrra_engine` value; `RRRA_ENGINE_AUTO` picks the best available.
    pub engine: u32,
    /// Threads one call may use (0 means 1, the default; at most RRRA_MAX_THREADS): a batch's
    /// queries are split between them, or one list's work. The session starts `threads − 1`
    /// threads of its own and parks them between calls (after ~100 µs of spinning, in case
    /// another call follows); rrra_session_free stops them. In a child forked after that, the
    /// session's calls run on the calling thread alone.
    pub threads: u32,
    /// An `rrra_cpu_kernel` value: forces the folded engine's instruction set (tests and
    /// benchmarks); `RRRA_CPU_KERNEL_AUTO` picks the best this CPU has.
    pub cpu_kernel: u32,
    /// An `rrra_precision` value; `RRRA_PRECISION_F32` (0) is the default.
    pub precision: u32,
}

/// `sizeof(rrra_session_options)` in version 0.1, before `cpu_kernel` and `precision`.
const SESSION_OPTIONS_V0_1_SIZE: usize = 16;

fn cpu_kernel_code(kernel: Option<CpuKernel>) -> u32 {
    (match kernel {
        None => rrra_cpu_kernel::Auto,
        Some(CpuKernel::Portable) => rrra_cpu_kernel::Portable,
        Some(CpuKernel::Avx2) => rrra_cpu_kernel::Avx2,
        Some(CpuKernel::Avx512) => rrra_cpu_kernel::Avx512,
    }) as u32
}

/// The most threads `rrra_session_options.threads` may ask for.
pub const RRRA_MAX_THREADS: u32 = 1024;
const _: () = assert!(RRRA_MAX_THREADS as usize == crate::session::MAX_THREADS);

/// Override `lambda_rr` (`rrra_score_options.override_flags`).
pub const RRRA_OVERRIDE_LAMBDA_RR: u32 = 1;
/// Override `gamma_rs`.
pub const RRRA_OVERRIDE_GAMMA_RS: u32 = 2;
/// Override `base_transform`.
pub const RRRA_OVERRIDE_BASE_TRANSFORM: u32 = 4;
/// Override `base_mu`.
pub const RRRA_OVERRIDE_BASE_MU: u32 = 8;
/// Override `base_tau`.
pub const RRRA_OVERRIDE_BASE_TAU: u32 = 16;
const ALL_OVERRIDES: u32 = 31;

/// Per-call overrides of the model file's score settings (SPEC §2, §4). A field is used only
/// when its `RRRA_OVERRIDE_*` bit is set in `override_flags`. Set `struct_size`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rrra_score_options {
    pub struct_size: usize,
    pub override_flags: u32,
    /// An `rrra_base_transform` value.
    pub base_transform: u32,
    /// λ ≥ 0 in `log s_RR = log s_B + λ · log s_A`.
    pub lambda_rr: f64,
    /// γ ≥ 0 in `log s_RS = log s_B + γ · log(1 − s_FN)`.
    pub gamma_rs: f64,
    pub base_mu: f64,
    /// > 0.
    pub base_tau: f64,
}

/// A batch of queries and their candidate lists. Set `struct_size = sizeof(rrra_batch)`; the
/// struct of version 0.1, before the two dtype fields (both f32), is still accepted.
///
/// Candidates come either dense (`candidates` non-NULL, `corpus` NULL) or by id (`corpus` and
/// `candidate_ids` non-NULL, `candidates` NULL). "total" below is the sum of
/// `candidate_counts`; candidate lists of consecutive queries follow each other. Embedding
/// lengths and strides count values of their `rrra_dtype`, not bytes.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rrra_batch {
    pub struct_size: usize,
    /// Embedding width; must equal the model's `d`.
    pub dim: usize,
    pub n_queries: usize,
    /// `n_queries × dim` values of `queries_dtype`, row-major.
    pub queries: *const c_void,
    pub queries_len: usize,
    /// `n_queries` counts; 0 is allowed.
    pub candidate_counts: *const usize,
    /// Dense candidates: `total` rows of `dim` values of `candidates_dtype`, `candidate_stride`
    /// values apart.
    pub candidates: *const c_void,
    pub candidates_len: usize,
    pub candidate_stride: usize,
    /// By-id candidates: `total` row ids into `corpus`.
    pub corpus: *const rrra_corpus,
    pub candidate_ids: *const u64,
    pub candidate_ids_len: usize,
    /// NULL, or `total` retriever scores (NULL: `sim(q, c)` is the base score).
    pub base_scores: *const f32,
    pub base_scores_len: usize,
    /// An `rrra_dtype` value: how `queries` are stored; 0 (`RRRA_DTYPE_F32`) is the default.
    pub queries_dtype: u32,
    /// An `rrra_dtype` value: how dense `candidates` are stored (a corpus has its own).
    pub candidates_dtype: u32,
}

/// `sizeof(rrra_batch)` in version 0.1, before `queries_dtype` and `candidates_dtype`.
const BATCH_V0_1_SIZE: usize = std::mem::offset_of!(rrra_batch, queries_dtype);

impl Default for rrra_batch {
    fn default() -> Self {
        rrra_batch {
            struct_size: 0,
            dim: 0,
            n_queries: 0,
            queries: std::ptr::null(),
            queries_len: 0,
            candidate_counts: std::ptr::null(),
            candidates: std::ptr::null(),
            candidates_len: 0,
            candidate_stride: 0,
            corpus: std::ptr::null(),
            candidate_ids: std::ptr::null(),
            candidate_ids_len: 0,
            base_scores: std::ptr::null(),
            base_scores_len: 0,
            queries_dtype: 0,
            candidates_dtype: 0,
        }
    }
}

/// Caller buffers for `rrra_session_rerank`. A NULL pointer skips that output; a non-NULL
/// one needs exactly the stated length. Set `struct_size = sizeof(rrra_rerank_outputs)`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rrra_rerank_outputs {
    pub struct_size: usize,
    /// `total` values of log s_RR.
    pub log_s_rr: *mut f32,
    pub log_s_rr_len: usize,
    /// `total` values of s_A, in (0, 1).
    pub s_a: *mut f32,
    pub s_a_len: usize,
    /// `total` values of s_FN.
    pub s_fn: *mut f32,
    pub s_fn_len: usize,
    /// `4 × total` values: p_TP, p_FN, p_FP, p_TN per candidate.
    pub class_probs: *mut f32,
    pub class_probs_len: usize,
    /// `total` values: per query, the positions 0..k−1 of its list, best first (stable).
    pub order: *mut u32,
    pub order_len: usize,
}

/// What `rrra_session_resample` draws. Set `struct_size = sizeof(rrra_resample_request)`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rrra_resample_request {
    pub struct_size: usize,
    /// Negatives to draw per query.
    pub samples_per_query: usize,
    pub seed: u64,
    /// The sampler's query index of the batch's first query (SPEC §5).
    pub first_query_index: u64,
    /// NULL, or `total` bytes: nonzero marks a labelled positive, never drawn.
    pub positive_mask: *const u8,
    pub positive_mask_len: usize,
}

/// Caller buffers for `rrra_session_resample`; NULL skips an output, non-NULL needs exactly
/// the stated length. Set `struct_size = sizeof(rrra_resample_outputs)`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct rrra_resample_outputs {
    pub struct_size: usize,
    /// `total` values of log s_RS; the sampler draws from exactly these values.
    pub log_s_rs: *mut f32,
    pub log_s_rs_len: usize,
    /// `total` values of s_FN.
    pub s_fn: *mut f32,
    pub s_fn_len: usize,
    /// `n_queries × samples_per_query` positions within each query's list; slots past a
    /// query's count hold RRRA_NOT_DRAWN.
    pub samples: *mut u32,
    pub samples_len: usize,
    /// `n_queries` counts of negatives drawn.
    pub sample_counts: *mut u32,
    pub sample_counts_len: usize,
}

/// Creates a session over `model`. `options` may be NULL for the defaults.
///
/// Ownership: the session holds its own reference to the model; release it with
/// `rrra_session_free`. Errors: NULL_POINTER, INVALID_ARGUMENT (struct_size, unknown engine,
/// kernel or precision; f16 precision on the reference engine), UNSUPPORTED (a forced engine,
/// CPU kernel or precision is not available here; the message says why).
/// Thread-safety: any thread; the model may be shared by many sessions.
///
/// # Safety
/// `model` must be NULL or live; `options` NULL or a valid struct; `session_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rrra_session_new(
    model: *const rrra_model,
    options: *const rrra_session_options,
    session_out: *mut *mut rrra_session,
) -> rrra_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let model = unsafe { model.as_ref() }.ok_or_else(|| null_pointer("model"))?;
        if session_out.is_null() {
            return Err(null_pointer("session_out"));
        }
        let mut settings = SessionOptions::default();
        if !options.is_null() {
            // SAFETY: the caller's contract.
            let o = unsafe { read_struct_since(options, "options", &[SESSION_OPTIONS_V0_1_SIZE]) }?;
            settings.engine = match o.engine {
                0 => EnginePreference::Auto,
                1 => EnginePreference::Force(EngineKind::Reference),
                2 => EnginePreference::Force(EngineKind::Folded),
                3 => EnginePreference::Force(EngineKind::Cuda),
                other => {
                    return Err(Error::invalid_argument(format!(
                        "options->engine: unknown value {other} (expected an rrra_engine)"
                    )))
                }
            };
            settings.threads = (o.threads as usize).max(1);
            settings.precision = match o.precision {
                0 => Precision::F32,
                1 => Precision::F16,
                2 => Precision::Bf16,
                other => {
                    return Err(Error::invalid_argument(format!(
                        "options->precision: unknown value {other} (expected an rrra_precision)"
                    )))
                }
            };
            settings.cpu_kernel = match o.cpu_kernel {
                0 => None,
                code => {
                    Some(CpuKernel::ALL.into_iter().find(|&k| cpu_kernel_code(Some(k)) == code).ok_or_else(|| {
                        Error::invalid_argument(format!(
                            "options->cpu_kernel: unknown value {code} (expected an rrra_cpu_kernel)"
                        ))
                    })?)
                }
            };
        }
        let session = Session::new(model.adapter.clone(), settings)?;
        let engine_reason = CString::new(session.engine_reason().replace('\0', " ")).unwrap_or_default();
        // SAFETY: session_out checked non-NULL above.
        unsafe { write_handle(session_out, rrra_session { session, engine_reason }) };
        Ok(())
    })
}

/// Releases a session and its scratch memory. NULL is a no-op. Errors: none; leaves
/// `rrra_last_error()` as it was.
/// Thread-safety: no other call may be using the session.
///
/// # Safety
/// `session` must be NULL or live, not in use by another thread, never used again after.
#[no_mangle]
pub unsafe extern "C" fn rrra_session_free(session: *mut rrra_session) {
    guard_free(|| {
        // SAFETY: the caller's contract.
        unsafe { free_handle(session) };
    });
}

/// Which engine the session runs (`*engine_out`, an `rrra_engine` value) and why it was
/// chosen over the others (`*reason_out`, owned by the session, valid until it is freed).
/// Either out-pointer may be NULL. Errors: NULL_POINTER (session).
/// Thread-safety: any thread, concurrently with other read-only calls on the session.
///
/// # Safety
/// `session` must be NULL or live; the out-pointers NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rrra_session_engine(
    session: *const rrra_session,
    engine_out: *mut u32,
    reason_out: *mut *const c_char,
) -> rrra_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let s = unsafe { session.as_ref() }.ok_or_else(|| null_pointer("session"))?;
        let engine = match s.session.engine() {
            EngineKind::Reference => rrra_engine::Reference,
            EngineKind::Folded => rrra_engine::Folded,
            EngineKind::Cuda => rrra_engine::Cuda,
        } as u32;
        // SAFETY: each out-pointer is NULL or writable per the contract.
        unsafe {
            if let Some(out) = engine_out.as_mut() {
                *out = engine;
            }
            if let Some(out) = reason_out.as_mut() {
                *out = s.engine_reason.as_ptr();
            }
        }
        Ok(())
    })
}

/// The instruction set of the session's CPU kernels (`*kernel_out`, an `rrra_cpu_kernel` value;
/// `RRRA_CPU_KERNEL_AUTO` for an engine without CPU kernels). Why it was chosen is part of
/// `rrra_session_engine`'s reason. Errors: NULL_POINTER (session, kernel_out).
/// Thread-safety: any thread, concurrently with other read-only calls on the session.
///
/// # Safety
/// `session` must be NULL or live; `kernel_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rrra_session_cpu_kernel(session: *const rrra_session, kernel_out: *mut u32) -> rrra_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let s = unsafe { session.as_ref() }.ok_or_else(|| null_pointer("session"))?;
        // SAFETY: the caller's contract.
        let out = unsafe { kernel_out.as_mut() }.ok_or_else(|| null_pointer("kernel_out"))?;
        *out = cpu_kernel_code(s.session.cpu_kernel());
        Ok(())
    })
}

/// The session's arithmetic (`*precision_out`, an `rrra_precision` value).
/// Errors: NULL_POINTER (session, precision_out).
/// Thread-safety: any thread, concurrently with other read-only calls on the session.
///
/// # Safety
/// `session` must be NULL or live; `precision_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rrra_session_precision(session: *const rrra_session, precision_out: *mut u32) -> rrra_status {
    guard(|| {
        // SAFETY: the caller's contract.
        let s = unsafe { session.as_ref() }.ok_or_else(|| null_pointer("session"))?;
        // SAFETY: the caller's contract.
        let out = unsafe { precision_out.as_mut() }.ok_or_else(|| null_pointer("precision_out"))?;
        *out = match s.session.precision() {
            Precision::F32 => rrra_precision::F32,
            Precision::F16 => rrra_precision::F16,
            Precision::Bf16 => rrra_precision::Bf16,
        } as u32;
        Ok(())
    })
}

/// SAFETY contract of every `unsafe` block below: the pointers inside a caller struct point
/// to the lengths stated beside them, as the header documents.
unsafe fn score_options(options: *const rrra_score_options) -> Result<ScoreOptions> {
    if options.is_null() {
        return Ok(ScoreOptions::default());
    }
    // SAFETY: see above.
    let o = unsafe { read_struct(options, "options") }?;
    if o.override_flags & !ALL_OVERRIDES != 0 {
        return Err(Error::invalid_argument(format!(
            "options->override_flags: unknown bits 0x{:x}",
            o.override_flags & !ALL_OVERRIDES
        )));
    }
    let set = |bit: u32| o.override_flags & bit != 0;
    Ok(ScoreOptions {
        lambda_rr: set(RRRA_OVERRIDE_LAMBDA_RR).then_some(o.lambda_rr),
        gamma_rs: set(RRRA_OVERRIDE_GAMMA_RS).then_some(o.gamma_rs),
        base_transform: if set(RRRA_OVERRIDE_BASE_TRANSFORM) {
            Some(base_transform_from_code(o.base_transform)?)
        } else {
            None
        },
        base_mu: set(RRRA_OVERRIDE_BASE_MU).then_some(o.base_mu),
        base_tau: set(RRRA_OVERRIDE_BASE_TAU).then_some(o.base_tau),
    })
}

/// Converts a caller batch and runs `body` on it with the byte ranges of its inputs, for the
/// aliasing check.
unsafe fn with_batch<R>(
    batch: *const rrra_batch,
    body: impl FnOnce(&Batch<'_>, &[Option<Extent>; 5]) -> Result<R>,
) -> Result<R> {
    // SAFETY: see `score_options`.
    let b = unsafe { read_struct_since(batch, "batch", &[BATCH_V0_1_SIZE]) }?;
    let queries = unsafe {
        input_values(
            b.queries,
            b.queries_len,
            b.queries_dtype,
            "batch->queries",
            "batch->queries_len",
            "batch->queries_dtype",
        )
    }?;
    let counts =
        unsafe { input_slice(b.candidate_counts, b.n_queries, "batch->candidate_counts", "batch->n_queries") }?;
    let base =
        unsafe { optional_input(b.base_scores, b.base_scores_len, "batch->base_scores", "batch->base_scores_len") }?;
    let corpus_view;
    let mut corpus_extent = None;
    let (candidates, candidates_extent) = match (b.candidates.is_null(), b.corpus.is_null()) {
        (false, true) => {
            let data = unsafe {
                input_values(
                    b.candidates,
                    b.candidates_len,
                    b.candidates_dtype,
                    "batch->candidates",
                    "batch->candidates_len",
                    "batch->candidates_dtype",
                )
            }?;
            (Candidates::Dense { data, row_stride: b.candidate_stride }, values_extent("batch->candidates", data))
        }
        (true, false) => {
            // SAFETY: a live corpus per the contract; its rows are kept valid by the caller.
            corpus_view = unsafe { (*b.corpus).view() }?;
            corpus_extent = Some(values_extent("corpus rows", corpus_view.data()));
            let ids = unsafe {
                input_slice(b.candidate_ids, b.candidate_ids_len, "batch->candidate_ids", "batch->candidate_ids_len")
            }?;
            (Candidates::ById { corpus: &corpus_view, ids }, extent("batch->candidate_ids", ids))
        }
        (false, false) => {
            return Err(Error::invalid_argument(
                "batch: set either candidates (dense rows) or corpus + candidate_ids, not both",
            ))
        }
        (true, true) => {
            // Queries that all have k = 0 need no candidates at all.
            if counts.iter().any(|&k| k > 0) {
                return Err(null_pointer("batch->candidates (and batch->corpus)"));
            }
            (Candidates::Dense { data: Values::F32(&[]), row_stride: b.dim }, extent::<f32>("batch->candidates", &[]))
        }
    };
    let inputs = [
        Some(values_extent("batch->queries", queries)),
        Some(extent("batch->candidate_counts", counts)),
        base.map(|b| extent("batch->base_scores", b)),
        Some(candidates_extent),
        corpus_extent,
    ];
    let batch = Batch { dim: b.dim, queries, candidate_counts: counts, candidates, base_scores: base };
    body(&batch, &inputs)
}

/// Reranks every query of `batch` (SPEC §3–§4). `options` may be NULL (the model's settings).
///
/// Outputs are written only on success; on failure every output buffer is left as it was.
/// Errors: NULL_POINTER; INVALID_ARGUMENT (struct sizes, lengths, strides, ids out of range,
/// overlapping buffers, bad option values, a base score ≤ 0 under the identity transform);
/// DIMENSION_MISMATCH (batch->dim ≠ the model's d); NON_FINITE_INPUT (the message names the
/// query and position); NUMERIC. Thread-safety: one thread at a time per session.
///
/// # Safety
/// `session` NULL or live; the structs valid, their pointers covering the stated lengths.
#[no_mangle]
pub unsafe extern "C" fn rrra_session_rerank(
    session: *mut rrra_session,
    batch: *const rrra_batch,
    options: *const rrra_score_options,
    outputs: *const rrra_rerank_outputs,
) -> rrra_status {
    guard(|| {
        // SAFETY: the caller's contract, for every block below.
        let s = unsafe { session.as_mut() }.ok_or_else(|| null_pointer("session"))?;
        let options = unsafe { score_options(options) }?;
        let o = unsafe { read_struct(outputs, "outputs") }?;
        let mut out = RerankOutputs {
            log_s_rr: unsafe {
                output_slice(o.log_s_rr, o.log_s_rr_len, "outputs->log_s_rr", "outputs->log_s_rr_len")
            }?,
            s_a: unsafe { output_slice(o.s_a, o.s_a_len, "outputs->s_a", "outputs->s_a_len") }?,
            s_fn: unsafe { output_slice(o.s_fn, o.s_fn_len, "outputs->s_fn", "outputs->s_fn_len") }?,
            class_probs: unsafe {
                output_slice(o.class_probs, o.class_probs_len, "outputs->class_probs", "outputs->class_probs_len")
            }?,
            order: unsafe { output_slice(o.order, o.order_len, "outputs->order", "outputs->order_len") }?,
        };
        unsafe {
            with_batch(batch, |batch, inputs| {
                let outputs = [
                    out.log_s_rr.as_deref().map(|b| extent("outputs->log_s_rr", b)),
                    out.s_a.as_deref().map(|b| extent("outputs->s_a", b)),
                    out.s_fn.as_deref().map(|b| extent("outputs->s_fn", b)),
                    out.class_probs.as_deref().map(|b| extent("outputs->class_probs", b)),
                    out.order.as_deref().map(|b| extent("outputs->order", b)),
                ];
                check_disjoint(&outputs, inputs)?;
                s.session.rerank_into(batch, &options, &mut out)
            })
        }
    })
}

/// Computes log s_RS and draws `samples_per_query` negatives per query (SPEC §4–§5).
/// `options` may be NULL. Outputs are written only on success.
///
/// Errors: as `rrra_session_rerank`, plus INVALID_ARGUMENT for a positive_mask whose length
/// is not the total candidate count. Thread-safety: one thread at a time per session.
///
/// # Safety
/// As `rrra_session_rerank`.
#[no_mangle]
pub unsafe extern "C" fn rrra_session_resample(
    session: *mut rrra_session,
    batch: *const rrra_batch,
    options: *const rrra_score_options,
    request: *const rrra_resample_request,
    outputs: *const rrra_resample_outputs,
) -> rrra_status {
    guard(|| {
        // SAFETY: the caller's contract, for every block below.
        let s = unsafe { session.as_mut() }.ok_or_else(|| null_pointer("session"))?;
        let options = unsafe { score_options(options) }?;
        let r = unsafe { read_struct(request, "request") }?;
        let mask = unsafe {
            optional_input(r.positive_mask, r.positive_mask_len, "request->positive_mask", "request->positive_mask_len")
        }?;
        let request = ResampleRequest {
            samples_per_query: r.samples_per_query,
            seed: r.seed,
            first_query_index: r.first_query_index,
            positive_mask: mask,
        };
        let o = unsafe { read_struct(outputs, "outputs") }?;
        let mut out = ResampleOutputs {
            log_s_rs: unsafe {
                output_slice(o.log_s_rs, o.log_s_rs_len, "outputs->log_s_rs", "outputs->log_s_rs_len")
            }?,
            s_fn: unsafe { output_slice(o.s_fn, o.s_fn_len, "outputs->s_fn", "outputs->s_fn_len") }?,
            samples: unsafe { output_slice(o.samples, o.samples_len, "outputs->samples", "outputs->samples_len") }?,
            sample_counts: unsafe {
                output_slice(
                    o.sample_counts,
                    o.sample_counts_len,
                    "outputs->sample_counts",
                    "outputs->sample_counts_len",
                )
            }?,
        };
        unsafe {
            with_batch(batch, |batch, inputs| {
                let outputs = [
                    out.log_s_rs.as_deref().map(|b| extent("outputs->log_s_rs", b)),
                    out.s_fn.as_deref().map(|b| extent("outputs->s_fn", b)),
                    out.samples.as_deref().map(|b| extent("outputs->samples", b)),
                    out.sample_counts.as_deref().map(|b| extent("outputs->sample_counts", b)),
                ];
                check_disjoint(&outputs, inputs)?;
                check_disjoint(&outputs, &[mask.map(|m| extent("request->positive_mask", m))])?;
                s.session.resample_into(batch, &options, &request, &mut out)
            })
        }
    })
}
