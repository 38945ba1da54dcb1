//! The CUDA engine of one session thread: a stream, host staging and device scratch that grow to
//! the largest chunk seen and are then reused, and the three launches of kernels/rerank.cu per
//! chunk of the batch.
//!
//! A batch is cut into chunks of at most [`MAX_CHUNK_PAIRS`] candidates (fewer when rows are
//! wide), so device memory stays bounded whatever the batch. Per chunk: the chunk's queries and
//! candidate rows go to the device as f32 (dense rows in one copy straight from the caller's
//! matrix, stride and all; by-id candidates once per distinct row, which the kernels gather by
//! index), `fold_query` computes each query's v_q, u_q, q·b₂ and ‖q‖, `score_pairs` runs layer 1
//! and the heads in tiles of one query's candidates, `adapt_cosine` (cosine only) runs layer 2,
//! and the pair values come back.

use super::{driver_error, Device};
use crate::batch::{Batch, Candidates};
use crate::engine::{
    candidate_out_of_range, hidden_layer_overflow, weight_out_of_range, Engine, EngineKind, PairRaw, Precision,
};
use crate::error::{Error, ErrorKind, Result};
use crate::model::{Activation, Adapter, Similarity};
use crate::values::Values;
use crate::workers::Workers;
use cudarc::driver::{CudaSlice, CudaStream, DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits};
use std::collections::HashMap;
use std::sync::Arc;

/// Values per pair in the kernels' output (`PAIR_VALUES` in kernels/common.cuh).
const PAIR_VALUES: usize = 6;
/// Words per tile descriptor (`TILE_WORDS` in kernels/common.cuh).
const TILE_WORDS: usize = 3;
/// Threads per block of every kernel (`THREADS` in kernels/rerank.cu).
const THREADS: u32 = 256;
/// Hidden units per block of `fold_query` (its warps).
const FOLD_UNITS_PER_BLOCK: usize = THREADS as usize / 32;
/// Hidden rows are stored with a stride rounded up to this (the kernels' N step for layer 1, K
/// step for layer 2), zero past h.
const HIDDEN_ALIGN: usize = 64;
/// The most candidates per chunk, and the most bytes of rows and hidden activations per chunk.
const MAX_CHUNK_PAIRS: usize = 1 << 16;
const MAX_CHUNK_BYTES: usize = 512 << 20;
/// `fold_query` runs one grid row per query (grid.y ≤ 65535).
const MAX_CHUNK_QUERIES: usize = 65535;
/// Guard values before and after the pair output on the device, checked after every chunk: a
/// kernel writing out of its bounds is reported instead of corrupting a neighbour silently.
const GUARD: usize = 64;
const GUARD_VALUE: f32 = -3.0e38;

/// The storage type of the products' operands (and of cosine's hidden activations).
pub(crate) trait Element: DeviceRepr + ValidAsZeroBits + Copy + Default + Send + Sync + 'static {
    const PRECISION: Precision;
    /// Rows per block of this precision's kernels (`BM` of its tile in kernels/rerank.cu).
    const TILE_ROWS: usize;
    /// `x` rounded to nearest even, as the kernels round; `None` where a finite `x` becomes
    /// infinite (beyond ±65504 for f16).
    fn from_f32(x: f32) -> Option<Self>;
}

impl Element for f32 {
    const PRECISION: Precision = Precision::F32;
    const TILE_ROWS: usize = 64;
    fn from_f32(x: f32) -> Option<Self> {
        Some(x)
    }
}

impl Element for half::bf16 {
    const PRECISION: Precision = Precision::Bf16;
    const TILE_ROWS: usize = 128;
    fn from_f32(x: f32) -> Option<Self> {
        Some(half::bf16::from_f32(x)).filter(|y| y.is_finite() || !x.is_finite())
    }
}

impl Element for half::f16 {
    const PRECISION: Precision = Precision::F16;
    const TILE_ROWS: usize = 128;
    fn from_f32(x: f32) -> Option<Self> {
        Some(half::f16::from_f32(x)).filter(|y| y.is_finite() || !x.is_finite())
    }
}

/// Index of a precision's kernel in [`super::Kernels`]'s arrays.
fn kernel_index(precision: Precision) -> usize {
    match precision {
        Precision::F32 => 0,
        Precision::Bf16 => 1,
        Precision::F16 => 2,
    }
}

/// The kernels' activation codes (`Activation` in kernels/common.cuh).
fn activation_code(activation: Activation) -> i32 {
    match activation {
        Activation::Relu => 0,
        Activation::Gelu => 1,
        Activation::GeluTanh => 2,
        Activation::Silu => 3,
        Activation::Tanh => 4,
    }
}

fn as_i32(name: &str, value: usize) -> Result<i32> {
    i32::try_from(value)
        .map_err(|_| Error::new(ErrorKind::Unsupported, format!("cuda: {name} = {value} exceeds the kernels' range")))
}

/// The adapter on the device, as the kernels read it; shared by a session's engines.
struct Weights<T> {
    dim: usize,
    hidden: usize,
    ld_hidden: usize,
    activation: i32,
    similarity: Similarity,
    /// `[h × d]` each: `W_c − W_a`, `W_b`, `W_a + W_c` (SPEC §8).
    w_diff: CudaSlice<f32>,
    w_prod: CudaSlice<f32>,
    w_sum: CudaSlice<f32>,
    fc1_bias: CudaSlice<f32>,
    fc2_bias: CudaSlice<f32>,
    /// `[4 × h]` and `[4]`.
    classifier: CudaSlice<f32>,
    classifier_bias: CudaSlice<f32>,
    /// Dot: `fc2.weightᵀ`, `[h × d]`, for `u_q`.
    fc2_transposed: Option<CudaSlice<f32>>,
    /// Cosine: `fc2.weight` in `T`, `[d × ld_hidden]`, zero past h.
    fc2: Option<CudaSlice<T>>,
}

impl<T: Element> Weights<T> {
    fn upload(stream: &Arc<CudaStream>, adapter: &Adapter) -> Result<Self> {
        let (d, h) = (adapter.dim(), adapter.hidden());
        let w = adapter.weights();
        let config = adapter.config();
        let ld_hidden = h.div_ceil(HIDDEN_ALIGN) * HIDDEN_ALIGN;
        // fc1.weight row j is [W_a | W_b | W_c] row j.
        let fc1 = |part: usize, j: usize, t: usize| w.fc1_weight[j * 3 * d + part * d + t];
        let folded = |f: &dyn Fn(usize, usize) -> f32| -> Vec<f32> {
            (0..h).flat_map(|j| (0..d).map(move |t| (j, t))).map(|(j, t)| f(j, t)).collect()
        };
        let up = |what: &str, data: &[f32]| {
            stream.clone_htod(data).map_err(|e| driver_error(&format!("uploading the adapter's {what}"), e))
        };
        let dot = config.similarity == Similarity::Dot;
        let fc2_transposed = if dot { Some(up("fc2.weight", &folded(&|j, t| w.fc2_weight[t * h + j]))?) } else { None };
        let fc2 = if dot {
            None
        } else {
            let mut padded = vec![T::default(); d * ld_hidden];
            for (row, src) in padded.chunks_exact_mut(ld_hidden).zip(w.fc2_weight.chunks_exact(h)) {
                for (dst, &x) in row.iter_mut().zip(src) {
                    *dst = T::from_f32(x).ok_or_else(|| weight_out_of_range(T::PRECISION))?;
                }
            }
            Some(stream.clone_htod(&padded).map_err(|e| driver_error("uploading the adapter's fc2.weight", e))?)
        };
        let weights = Weights {
            dim: d,
            hidden: h,
            ld_hidden,
            activation: activation_code(config.activation),
            similarity: config.similarity,
            w_diff: up("fc1.weight", &folded(&|j, t| fc1(2, j, t) - fc1(0, j, t)))?,
            w_prod: up("fc1.weight", &folded(&|j, t| fc1(1, j, t)))?,
            w_sum: up("fc1.weight", &folded(&|j, t| fc1(0, j, t) + fc1(2, j, t)))?,
            fc1_bias: up("fc1.bias", &w.fc1_bias)?,
            fc2_bias: up("fc2.bias", &w.fc2_bias)?,
            classifier: up("classifier.weight", &w.classifier_weight)?,
            classifier_bias: up("classifier.bias", &w.classifier_bias)?,
            fc2_transposed,
            fc2,
        };
        // Every engine's stream reads these: they must be complete before any launch.
        stream.synchronize().map_err(|e| driver_error("uploading the adapter", e))?;
        Ok(weights)
    }

    /// Candidates per chunk for rows `row_stride` values apart: as many as fit
    /// [`MAX_CHUNK_BYTES`] of rows (and, for cosine, hidden activations), at least one tile, at
    /// most [`MAX_CHUNK_PAIRS`].
    fn chunk_pairs(&self, row_stride: usize) -> usize {
        let hidden = if self.similarity == Similarity::Cosine { self.ld_hidden * std::mem::size_of::<T>() } else { 0 };
        let per_pair = row_stride.max(self.dim) * 4 + hidden + PAIR_VALUES * 4;
        (MAX_CHUNK_BYTES / per_pair).clamp(T::TILE_ROWS, MAX_CHUNK_PAIRS)
    }
}

/// `threads` engines over one upload of the adapter's weights.
pub(crate) fn engines<T: Element>(
    device: &Arc<Device>,
    adapter: &Adapter,
    threads: usize,
) -> Result<Vec<Box<dyn Engine>>> {
    let setup = device.context.new_stream().map_err(|e| driver_error("creating a stream", e))?;
    let weights = Arc::new(Weights::<T>::upload(&setup, adapter)?);
    (0..threads)
        .map(|_| {
            let stream = device.context.new_stream().map_err(|e| driver_error("creating a stream", e))?;
            Ok(Box::new(CudaEngine {
                device: device.clone(),
                weights: weights.clone(),
                stream,
                host: HostStaging::default(),
                dev: DeviceScratch::default(),
                segments: Vec::new(),
            }) as Box<dyn Engine>)
        })
        .collect()
}

/// Candidates `first..first + len` (batch-wide) of batch query `query`.
#[derive(Clone, Copy, Debug)]
struct Segment {
    query: usize,
    first: usize,
    len: usize,
}

/// What one chunk sends and receives, on the host; reused from chunk to chunk.
#[derive(Default)]
struct HostStaging {
    queries: Vec<f32>,
    /// By-id candidates: each distinct row once, `d` values apart.
    rows: Vec<f32>,
    /// By-id candidates: the staged row of each pair.
    row_ids: Vec<u32>,
    staged_row_of: HashMap<u64, u32>,
    tiles: Vec<u32>,
    pairs: Vec<f32>,
}

/// Device buffers, grown to the largest chunk seen.
struct DeviceScratch<T> {
    queries: Option<CudaSlice<f32>>,
    rows: Option<CudaSlice<f32>>,
    row_ids: Option<CudaSlice<u32>>,
    tiles: Option<CudaSlice<u32>>,
    v_q: Option<CudaSlice<f32>>,
    u_q: Option<CudaSlice<f32>>,
    q_scalars: Option<CudaSlice<f32>>,
    /// `GUARD`, then `PAIR_VALUES` per pair, then `GUARD`.
    pairs: Option<CudaSlice<f32>>,
    hidden: Option<CudaSlice<T>>,
}

impl<T> Default for DeviceScratch<T> {
    fn default() -> Self {
        DeviceScratch {
            queries: None,
            rows: None,
            row_ids: None,
            tiles: None,
            v_q: None,
            u_q: None,
            q_scalars: None,
            pairs: None,
            hidden: None,
        }
    }
}

/// `slot`, grown (contents discarded) to hold at least `len` values.
fn ensure<'a, T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    slot: &'a mut Option<CudaSlice<T>>,
    len: usize,
    what: &str,
) -> Result<&'a mut CudaSlice<T>> {
    let len = len.max(1);
    if slot.as_ref().is_none_or(|s| s.len() < len) {
        // Free the old buffer before asking for the larger one.
        *slot = None;
        let grown = len.checked_next_power_of_two().unwrap_or(len);
        *slot = Some(stream.alloc_zeros::<T>(grown).map_err(|e| driver_error(&format!("allocating {what}"), e))?);
    }
    Ok(slot.as_mut().expect("allocated above"))
}

/// Copies `data` to the start of `slot` (grown as needed).
fn upload<T: DeviceRepr + ValidAsZeroBits>(
    stream: &Arc<CudaStream>,
    slot: &mut Option<CudaSlice<T>>,
    data: &[T],
    what: &str,
) -> Result<()> {
    let dst = ensure(stream, slot, data.len(), what)?;
    if !data.is_empty() {
        stream
            .memcpy_htod(data, &mut dst.slice_mut(..data.len()))
            .map_err(|e| driver_error(&format!("copying {what} to the device"), e))?;
    }
    Ok(())
}

pub(crate) struct CudaEngine<T> {
    device: Arc<Device>,
    weights: Arc<Weights<T>>,
    stream: Arc<CudaStream>,
    host: HostStaging,
    dev: DeviceScratch<T>,
    segments: Vec<Segment>,
}

impl<T: Element> CudaEngine<T> {
    /// Stages the chunk's queries and tiles on the host, and its candidate rows on the host
    /// (by id) or straight on the device (dense); returns the rows' stride and whether pairs
    /// name their rows by index.
    fn stage(&mut self, batch: &Batch<'_>, chunk_first: usize, pairs: usize) -> Result<(usize, bool)> {
        let d = self.weights.dim;
        let host = &mut self.host;
        host.queries.clear();
        host.tiles.clear();
        let mut local_query = 0u32;
        for (i, s) in self.segments.iter().enumerate() {
            if i == 0 || self.segments[i - 1].query != s.query {
                if i > 0 {
                    local_query += 1;
                }
                batch.query(s.query).extend_f32(&mut host.queries);
            }
            for start in (0..s.len).step_by(T::TILE_ROWS) {
                let rows = T::TILE_ROWS.min(s.len - start);
                host.tiles.extend([local_query, (s.first - chunk_first + start) as u32, rows as u32]);
            }
        }
        match batch.candidates {
            Candidates::Dense { data, row_stride } => {
                // The chunk's rows as the caller laid them out, in one copy (widened to f32 on
                // the host first where they are f16 or bf16).
                let span = data.slice(chunk_first * row_stride..(chunk_first + pairs - 1) * row_stride + d);
                let span = match span {
                    Values::F32(span) => span,
                    narrow => {
                        host.rows.clear();
                        narrow.extend_f32(&mut host.rows);
                        &host.rows
                    }
                };
                upload(&self.stream, &mut self.dev.rows, span, "candidate rows")?;
                Ok((row_stride, false))
            }
            Candidates::ById { ids, .. } => {
                // Each distinct row once; the kernels gather pairs' rows by index.
                host.rows.clear();
                host.row_ids.clear();
                host.staged_row_of.clear();
                for (p, &id) in ids.iter().enumerate().skip(chunk_first).take(pairs) {
                    let next = host.staged_row_of.len() as u32;
                    let row = *host.staged_row_of.entry(id).or_insert_with(|| {
                        batch.candidate(p).extend_f32(&mut host.rows);
                        next
                    });
                    host.row_ids.push(row);
                }
                upload(&self.stream, &mut self.dev.rows, &host.rows, "candidate rows")?;
                upload(&self.stream, &mut self.dev.row_ids, &host.row_ids, "candidate row ids")?;
                Ok((d, true))
            }
        }
    }

    /// Runs the staged chunk of `out.len()` pairs, candidate rows `row_stride` values apart, and
    /// writes their results into `out`.
    fn run_chunk(&mut self, row_stride: usize, by_id: bool, out: &mut [PairRaw]) -> Result<()> {
        let w = &*self.weights;
        let stream = &self.stream;
        let host = &mut self.host;
        let dev = &mut self.dev;
        let kernels = &self.device.kernels;
        let n = out.len();
        let n_queries = host.queries.len() / w.dim;
        let n_tiles = host.tiles.len() / TILE_WORDS;
        let dot = w.similarity == Similarity::Dot;

        upload(stream, &mut dev.queries, &host.queries, "queries")?;
        upload(stream, &mut dev.tiles, &host.tiles, "tiles")?;
        ensure(stream, &mut dev.v_q, n_queries * w.hidden, "v_q")?;
        if dot {
            ensure(stream, &mut dev.u_q, n_queries * w.hidden, "u_q")?;
        } else {
            ensure(stream, &mut dev.hidden, n * w.ld_hidden, "hidden activations")?;
        }
        ensure(stream, &mut dev.q_scalars, 2 * n_queries, "query scalars")?;
        let pair_values = n * PAIR_VALUES;
        let pairs = ensure(stream, &mut dev.pairs, pair_values + 2 * GUARD, "pair results")?;
        let guard = [GUARD_VALUE; GUARD];
        stream
            .memcpy_htod(&guard, &mut pairs.slice_mut(..GUARD))
            .and_then(|()| {
                stream.memcpy_htod(&guard, &mut pairs.slice_mut(GUARD + pair_values..pair_values + 2 * GUARD))
            })
            .map_err(|e| driver_error("writing guard values", e))?;

        let (d, h) = (as_i32("d", w.dim)?, as_i32("h", w.hidden)?);
        let (ld_rows, ld_hidden) = (as_i32("row stride", row_stride)?, as_i32("hidden stride", w.ld_hidden)?);
        let (activation, similarity) = (w.activation, if dot { 0i32 } else { 1i32 });
        let null = 0u64;
        let (queries, rows, tiles) = (dev.queries.as_ref(), dev.rows.as_ref(), dev.tiles.as_ref());
        let (queries, rows, tiles) = (queries.expect("uploaded"), rows.expect("uploaded"), tiles.expect("uploaded"));
        let (v_q, q_scalars) = (dev.v_q.as_ref().expect("allocated"), dev.q_scalars.as_ref().expect("allocated"));
        let row_ids = dev.row_ids.as_ref().filter(|_| by_id);
        let blocks = |grid: (u32, u32)| LaunchConfig {
            grid_dim: (grid.0, grid.1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        };

        // v_q, u_q, q·b₂, ‖q‖ per query.
        let mut launch = stream.launch_builder(&kernels.fold_query);
        launch.arg(queries).arg(&d).arg(&h).arg(&w.w_sum).arg(&w.fc1_bias);
        match &w.fc2_transposed {
            Some(t) => launch.arg(t),
            None => launch.arg(&null),
        };
        launch.arg(&w.fc2_bias).arg(v_q);
        match dev.u_q.as_ref().filter(|_| dot) {
            Some(u) => launch.arg(u),
            None => launch.arg(&null),
        };
        launch.arg(q_scalars);
        let fold_grid = ((w.hidden.div_ceil(FOLD_UNITS_PER_BLOCK) + 1) as u32, n_queries as u32);
        // SAFETY: the arguments match fold_query_f32's parameters in kernels/rerank.cu, and
        // every buffer holds what the grid reads and writes (sized above).
        unsafe { launch.launch(blocks(fold_grid)) }.map_err(|e| driver_error("launching fold_query_f32", e))?;

        // Layer 1 and the heads, a block per tile.
        let pairs = dev.pairs.as_mut().expect("allocated");
        let mut pair_view = pairs.slice_mut(GUARD..GUARD + pair_values);
        let k = kernel_index(T::PRECISION);
        let mut launch = stream.launch_builder(&kernels.score_pairs[k]);
        launch.arg(rows).arg(&ld_rows);
        match row_ids {
            Some(ids) => launch.arg(ids),
            None => launch.arg(&null),
        };
        launch.arg(tiles).arg(queries).arg(&d).arg(&h).arg(&w.w_diff).arg(&w.w_prod).arg(v_q);
        match dev.u_q.as_ref().filter(|_| dot) {
            Some(u) => launch.arg(u),
            None => launch.arg(&null),
        };
        launch.arg(q_scalars).arg(&w.classifier).arg(&w.classifier_bias).arg(&activation).arg(&similarity);
        launch.arg(&mut pair_view);
        match dev.hidden.as_ref().filter(|_| !dot) {
            Some(hidden) => launch.arg(hidden),
            None => launch.arg(&null),
        };
        launch.arg(&ld_hidden);
        // SAFETY: as above, for score_pairs_<T>; the tiles hold at most T::TILE_ROWS rows each.
        unsafe { launch.launch(blocks((n_tiles as u32, 1))) }.map_err(|e| driver_error("launching score_pairs", e))?;

        if !dot {
            let (hidden, fc2) = (dev.hidden.as_ref().expect("allocated"), w.fc2.as_ref().expect("cosine weights"));
            let mut launch = stream.launch_builder(&kernels.adapt_cosine[k]);
            launch.arg(rows).arg(&ld_rows);
            match row_ids {
                Some(ids) => launch.arg(ids),
                None => launch.arg(&null),
            };
            launch.arg(tiles).arg(queries).arg(&d).arg(&h).arg(hidden).arg(&ld_hidden).arg(fc2).arg(&w.fc2_bias);
            launch.arg(q_scalars).arg(&mut pair_view);
            // SAFETY: as above, for adapt_cosine_<T>.
            unsafe { launch.launch(blocks((n_tiles as u32, 1))) }
                .map_err(|e| driver_error("launching adapt_cosine", e))?;
        }

        host.pairs.clear();
        host.pairs.resize(pair_values + 2 * GUARD, 0.0);
        stream
            .memcpy_dtoh(&pairs.slice(..pair_values + 2 * GUARD), &mut host.pairs[..])
            .map_err(|e| driver_error("copying results from the device", e))?;
        stream.synchronize().map_err(|e| driver_error("running the kernels", e))?;
        self.device.context.check_err().map_err(|e| driver_error("running the kernels", e))?;
        let (before, rest) = host.pairs.split_at(GUARD);
        let (values, after) = rest.split_at(pair_values);
        if before.iter().chain(after).any(|&g| g.to_bits() != GUARD_VALUE.to_bits()) {
            return Err(Error::new(ErrorKind::Internal, "cuda: a kernel wrote outside its output buffer"));
        }
        for (o, v) in out.iter_mut().zip(values.chunks_exact(PAIR_VALUES)) {
            *o = PairRaw { sim_adapted: v[0], sim_candidate: v[1], logits: [v[2], v[3], v[4], v[5]] };
        }
        Ok(())
    }

    /// Stages and runs the chunk of the segments gathered so far.
    fn flush(&mut self, batch: &Batch<'_>, out: &mut [PairRaw]) -> Result<()> {
        let (Some(first), Some(last)) = (self.segments.first(), self.segments.last()) else { return Ok(()) };
        let (start, end) = (first.first, last.first + last.len);
        let (row_stride, by_id) = self.stage(batch, start, end - start)?;
        self.run_chunk(row_stride, by_id, &mut out[start..end])?;
        self.segments.clear();
        Ok(())
    }
}

impl<T: Element> Engine for CudaEngine<T> {
    fn kind(&self) -> EngineKind {
        EngineKind::Cuda
    }

    fn precision(&self) -> Precision {
        T::PRECISION
    }

    /// The device does the work; the workers are not used.
    fn forward(
        &mut self,
        _: &Adapter,
        batch: &Batch<'_>,
        first_query: usize,
        out: &mut [PairRaw],
        _: &mut Workers,
    ) -> Result<()> {
        self.run_batch(batch, out)?;
        // The kernels make every logit of a pair whose hidden layer overflowed NaN (`activate`
        // in kernels/common.cuh); name its query, and the candidate where one is beyond `T`'s range. Other
        // non-finite values are left to the session's check.
        match out.iter().position(|pair| pair.logits.iter().all(|l| l.is_nan())) {
            None => Ok(()),
            Some(i) => {
                let (query, position) = batch.locate(i);
                let start = i - position;
                let mut row = Vec::new();
                let beyond = (start..start + batch.candidate_counts[query]).position(|p| {
                    row.clear();
                    batch.candidate(p).extend_f32(&mut row);
                    row.iter().any(|&x| T::from_f32(x).is_none())
                });
                Err(match beyond {
                    Some(position) => candidate_out_of_range(T::PRECISION, first_query + query, position),
                    None => hidden_layer_overflow(T::PRECISION, first_query + query),
                })
            }
        }
    }
}

impl<T: Element> CudaEngine<T> {
    /// Every chunk of the batch through the kernels, its pair values into `out`.
    fn run_batch(&mut self, batch: &Batch<'_>, out: &mut [PairRaw]) -> Result<()> {
        let row_stride = match batch.candidates {
            Candidates::Dense { row_stride, .. } => row_stride,
            Candidates::ById { .. } => self.weights.dim,
        };
        let max_pairs = self.weights.chunk_pairs(row_stride);
        self.segments.clear();
        let (mut pairs, mut queries, mut start) = (0, 0, 0);
        for (query, &k) in batch.candidate_counts.iter().enumerate() {
            let mut done = 0;
            while done < k {
                if queries == MAX_CHUNK_QUERIES || pairs == max_pairs {
                    self.flush(batch, out)?;
                    (pairs, queries) = (0, 0);
                }
                let len = (k - done).min(max_pairs - pairs);
                self.segments.push(Segment { query, first: start + done, len });
                (pairs, queries, done) = (pairs + len, queries + 1, done + len);
            }
            start += k;
        }
        self.flush(batch, out)
    }
}
