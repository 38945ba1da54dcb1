//! `rrra_corpus`: a caller-owned embedding matrix registered once, so candidates can be
//! passed as row ids instead of copied rows.

use super::boundary::{free_handle, guard, guard_free, input_slice, null_pointer, rrra_status, write_handle};
use crate::batch::Corpus;
use crate::error::Result;

/// A borrowed view of the caller's corpus matrix. The library never copies or frees the rows.
/// Immutable: any number of threads and sessions may use one corpus at once.
pub struct rrra_corpus {
    data: *const f32,
    data_len: usize,
    rows: usize,
    dim: usize,
    row_stride: usize,
}

impl rrra_corpus {
    /// The caller's rows as a byte range, for the aliasing check.
    pub(crate) fn extent(&self) -> super::boundary::Extent {
        ("corpus rows", self.data as usize, self.data_len * std::mem::size_of::<f32>())
    }

    /// The view for one call.
    ///
    /// # Safety
    /// The memory registered with `rrra_corpus_new` must still be valid (the caller's contract).
    pub(crate) unsafe fn view(&self) -> Result<Corpus<'_>> {
        // SAFETY: checked at registration; kept valid by the caller's contract.
        let data = unsafe { input_slice(self.data, self.data_len, "corpus", "data_len") }?;
        Corpus::new(data, self.rows, self.dim, self.row_stride)
    }
}

/// Registers `rows` embeddings of `dim` floats, row `i` at `data[i * row_stride]`;
/// `data_len` is the number of floats `data` holds (at least `(rows − 1) · row_stride + dim`).
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
    guard(|| {
        if corpus_out.is_null() {
            return Err(null_pointer("corpus_out"));
        }
        // SAFETY: the caller's contract.
        let slice = unsafe { input_slice(data, data_len, "data", "data_len") }?;
        Corpus::new(slice, rows, dim, row_stride)?;
        // SAFETY: corpus_out checked non-NULL above.
        unsafe { write_handle(corpus_out, rrra_corpus { data, data_len, rows, dim, row_stride }) };
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
