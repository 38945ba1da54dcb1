//! The SPEC §5 sampler on its own, for callers that computed `log s_RS` elsewhere.

use super::boundary::{
    check_disjoint, extent, guard, input_slice, null_pointer, optional_input, output_slice, rrra_status,
};
use crate::sampler::{sample_negatives, NOT_DRAWN};

/// Fills the sample slots past a query's count.
pub const RRRA_NOT_DRAWN: u32 = u32::MAX;
const _: () = assert!(RRRA_NOT_DRAWN == NOT_DRAWN);

/// Draws up to `samples_len` of one query's candidates without replacement, with probability
/// ∝ exp(log_s_rs) (SPEC §5). Writes the drawn positions, best key first, to `samples`, the
/// remaining slots set to UINT32_MAX, and the number drawn to `*count_out`.
///
/// `positive_mask` (may be NULL): `positive_mask_len` = `k` bytes, nonzero = labelled positive,
/// never drawn. A pure function of its arguments: every binding returns the same draws.
/// Errors: NULL_POINTER, INVALID_ARGUMENT (mask length ≠ k, overlapping buffers),
/// NON_FINITE_INPUT (a log_s_rs value is NaN or ±Inf). Thread-safety: any thread.
///
/// # Safety
/// Each pointer must be NULL or point to its stated number of elements.
#[no_mangle]
pub unsafe extern "C" fn rrra_sample_negatives(
    log_s_rs: *const f32,
    k: usize,
    positive_mask: *const u8,
    positive_mask_len: usize,
    seed: u64,
    query_index: u64,
    samples: *mut u32,
    samples_len: usize,
    count_out: *mut usize,
) -> rrra_status {
    guard(|| {
        // SAFETY (all three): the caller's contract.
        let scores = unsafe { input_slice(log_s_rs, k, "log_s_rs", "k") }?;
        let mask = unsafe { optional_input(positive_mask, positive_mask_len, "positive_mask", "positive_mask_len") }?;
        // NULL with samples_len 0 asks for nothing: the count is then 0.
        let out = unsafe { output_slice(samples, samples_len, "samples", "samples_len") }?.unwrap_or_default();
        if count_out.is_null() {
            return Err(null_pointer("count_out"));
        }
        let count_extent = ("count_out", count_out as usize, std::mem::size_of::<usize>());
        check_disjoint(
            &[Some(extent("samples", out)), Some(count_extent)],
            &[Some(extent("log_s_rs", scores)), mask.map(|m| extent("positive_mask", m))],
        )?;
        // The sampler checks all of its input before it writes `out`.
        let count = sample_negatives(scores, mask, seed, query_index, out)?;
        // SAFETY: checked non-NULL above.
        unsafe { *count_out = count };
        Ok(())
    })
}
