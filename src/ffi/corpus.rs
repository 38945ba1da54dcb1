//! `rrra_corpus`: a caller-owned embedding matrix registered once, so candidates can be
//! passed as row ids instead of copied rows.

use super::boundary::{free_handle, guard, guard_free, null_pointer, rrra_status, write_handle};
use super::values::{input_values, rrra_dtype};
use crate::batch::Corpus;
use crate::error::Result;
use std::ffi::c_void;

/// A borrowed view of the caller's corpus matrix. The library never copies or frees the rows.
/// Immutable: any number of threads and sessions may use one corpus at once.
pub struct rrra_corpus {
    data: *const c_void,
    data_len: usize,
    /// An `rrra_dtype` code, checked at registration.
    dtype: u32,
    rows: usize,
    dim: usize,
    row_stride: usize,
}

impl rrra_corpus {
    /// The view for one call.
    ///
    /// # Safety
    /// The memory registered with `rrra_corpus_new` must still be valid (the caller's contract).
    pub(crate) unsafe fn view(&self) -> Result<Corpus<'_>> {
        // SAFETY: checked at registration; kept valid by the caller's contract.
        let data = unsafe { input_values(self.data, self.data_len, self.dtype, "corpus", "data_len", "dtype") }?;
        Corpus::new(data, self.rows, self.dim, self.row_stride)
    }
}

/// Registers `rows` embeddings of `dim` floats, row `i` at `data[i * row_stride]`;
/// `data_len` is the number of floats `data` holds (at least `(rows − 1) · row_stride + dim`).
/// `rrra_corpus_new_typed` with `RRRA_DTYPE_F32`.
///
/// Ownership: `data` stays the caller's. It must stay valid and unchanged until
/// `rrra_corpus_free(*corpus_out)` returns; the library does not copy it. On failure
/// `*corpus_out` is untouched. Errors: NULL_POINTER, INVALID_ARGUMENT (dim = 0, stride < dim,
/// buffer too short). Thread-safety: any thread.
///
/// # Safety
/// `data` must point to `data_len` floats; `corpus_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rrra_corpus_new(
    data: *const f32,
    data_len: usize,
    rows: usize,
    dim: usize,
    row_stride: usize,
    corpus_out: *mut *mut rrra_corpus,
) -> rrra_status {
    // SAFETY: the caller's contract, the same.
    unsafe { rrra_corpus_new_typed(rrra_dtype::F32 as u32, data.cast(), data_len, rows, dim, row_stride, corpus_out) }
}

/// As `rrra_corpus_new`, for rows stored as `dtype` (an `rrra_dtype` value): `data` holds
/// `data_len` values of that type, and `row_stride` counts values, not bytes. An f16 or bf16
/// corpus takes half the memory; it scores as the same values widened to f32 would.
/// Errors: as `rrra_corpus_new`, and INVALID_ARGUMENT for an unknown dtype or data not aligned
/// to its type.
///
/// # Safety
/// `data` must point to `data_len` values of `dtype`; `corpus_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn rrra_corpus_new_typed(
    dtype: u32,
    data: *const c_void,
    data_len: usize,
    rows: usize,
    dim: usize,
    row_stride: usize,
    corpus_out: *mut *mut rrra_corpus,
) -> rrra_status {
    guard(|| {
        if corpus_out.is_null() {
            return Err(null_pointer("corpus_out"));
        }
        // SAFETY: the caller's contract.
        let values = unsafe { input_values(data, data_len, dtype, "data", "data_len", "dtype") }?;
        Corpus::new(values, rows, dim, row_stride)?;
        // SAFETY: corpus_out checked non-NULL above.
        unsafe { write_handle(corpus_out, rrra_corpus { data, data_len, dtype, rows, dim, row_stride }) };
        Ok(())
    })
}

/// Releases a corpus handle (not the caller's rows). NULL is a no-op. Errors: none; leaves
/// `rrra_last_error()` as it was.
/// Thread-safety: no call may be using the corpus, on any thread.
///
/// # Safety
/// `corpus` must be NULL or a live corpus not in use by any call, never used again after.
#[no_mangle]
pub unsafe extern "C" fn rrra_corpus_free(corpus: *mut rrra_corpus) {
    guard_free(|| {
        // SAFETY: the caller's contract.
        unsafe { free_handle(corpus) };
    });
}
