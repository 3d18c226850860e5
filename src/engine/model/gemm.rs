//! Quantized matrix × matrix products on the CPU (decode and prompt steps), read straight from the compact
//! GGUF blocks: Q4_K and Q6_K at every row count, Q8_0 and Q5_0 (and what the loader re-quantizes to Q8_0)
//! on prompt steps.
//!
//! Why not candle's `QMatMul` for these: on x86 candle 0.11 builds, at the first multi-row product, a tiled
//! copy of every Q4_K/Q6_K weight (scales unpacked to f32, 1.33–1.5× the bytes) and keeps it beside the
//! original blocks for the life of the model, and it has no integer kernel for the legacy types, whose
//! prompt steps otherwise dequantize each weight to f32 per call. Here nothing is stored twice; weights
//! are unpacked per call into small buffers:
//!
//! - up to `MAX_ROWS` rows of Q4_K/Q6_K (decode, alone or batched, and drafted steps; bound by reading the
//!   weights): each weight row is read in place, its values split from their nibbles (and Q6_K's high bits)
//!   in registers and its scales spread by a shuffle, and dotted with up to four activation rows at a time:
//!   `maddubs(weights, activations)` then `madd` with the scales (unpacking each row into a buffer first was
//!   slower: docs/BENCHMARKS.md);
//! - more rows (prompt steps, bound by the multiplies): each work item packs 16 weight rows into one
//!   interleaved panel once (eight rows at a time by vector transposes, each row's next block fetched
//!   ahead: at a few dozen rows the packing, which reads every weight, is a large share) and runs up to
//!   `PANEL_TILE` activation rows past it: one multiply against 4 broadcast activation values serves 8
//!   weight rows (AVX2) or 16 (AVX-512), and with VNNI `vpdpbusd` sums the 4 products in 32 bits in one
//!   instruction.
//!
//! Every kernel exists for each level of `simd::Isa`, chosen at run time. Each output is computed from its
//! own weight row and activation row only, in a fixed order for each kernel and level, so a sequence's
//! numbers do not depend on what else is in the batch.

use anyhow::Result;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};
use half::f16;

use super::gemv::{LegacyBlock, SendPtr, Q5_0, Q8_0};
use super::simd::{self as level, Isa, Level};

const QK_K: usize = 256;
/// Products with up to this many rows take the row kernel, longer ones the panels. Batched decode (a few
/// rows) is bound by reading the weights, which the row kernel reads once per call without the panels'
/// packing work; a prompt step has enough rows to pay for packing.
pub(crate) const MAX_ROWS: usize = 16;
/// Weight rows per work item of the row kernel.
const COL_GROUP: usize = 16;

/// GGUF `block_q4_K`: 8 sub-blocks of 32 values, each with a 6-bit scale and min.
#[repr(C)]
struct BlockQ4K {
    d: f16,
    dmin: f16,
    scales: [u8; 12],
    qs: [u8; QK_K / 2],
}

/// GGUF `block_q6_K`: 16 sub-blocks of 16 values, each with an 8-bit scale.
#[repr(C)]
struct BlockQ6K {
    ql: [u8; QK_K / 2],
    qh: [u8; QK_K / 4],
    scales: [i8; QK_K / 16],
    d: f16,
}
const _: () = assert!(std::mem::size_of::<BlockQ4K>() == 144 && std::mem::size_of::<BlockQ6K>() == 210);

/// One activation block: ggml's `block_q8_K` with its group sums already scaled (`d · Σ qs` per 16).
#[repr(C, align(64))]
struct ActBlock {
    qs: [i8; QK_K],
    sums: [f32; 16],
    /// The same per group of 32 (Q4_K's scale groups in the panel kernel).
    sums32: [f32; 8],
    d: f32,
}

trait KBlock: Sized + Sync {
    /// Values per scale group as the panel kernel sees them (Q4_K 32, Q6_K 16).
    const GROUP: usize;
    /// Row `j` of `panel` from this block: its values in the panel's layout (`pack_values`), and its scales,
    /// mins and `d` as the panel kernel reads them (`pack_scales`, groups `GROUP` values wide).
    fn pack(&self, panel: &mut PanelBlock, j: usize) {
        self.pack_values(panel, j);
        self.pack_scales(panel, j);
    }
    /// Row `j`'s values in the panel's layout.
    fn pack_values(&self, panel: &mut PanelBlock, j: usize);
    /// Rows `j0..j0 + 8`'s values from eight blocks at once, as `pack_values` row by row (vector code: the
    /// layout is a transpose of each row's words, which the scalar code does a word at a time).
    fn pack_values8(level: Level, rows: [&Self; 8], panel: &mut PanelBlock, j0: usize);
    /// Row `j`'s scales, mins (or offsets) and `d`.
    fn pack_scales(&self, panel: &mut PanelBlock, j: usize);
    /// One weight row of blocks, read in place, against `R` activation rows (the row kernel).
    fn dot_row<const R: usize>(level: Level, w: &[Self], a: [&[ActBlock]; R]) -> [f32; R];
}

impl KBlock for BlockQ4K {
    const GROUP: usize = 32;
    fn dot_row<const R: usize>(level: Level, w: &[Self], a: [&[ActBlock]; R]) -> [f32; R] {
        kernels::dot_q4k(level, w, a)
    }
    fn pack_values(&self, panel: &mut PanelBlock, j: usize) {
        // Per 64 values, 32 bytes: the low nibbles are the first 32 values, the high nibbles the next 32;
        // four bytes at a time as one word.
        let q = panel.words_mut();
        for (chunk, bytes) in self.qs.chunks_exact(32).enumerate() {
            for (i, b) in bytes.chunks_exact(4).enumerate() {
                let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                q[16 * chunk + i][j] = w & 0x0F0F_0F0F;
                q[16 * chunk + 8 + i][j] = (w >> 4) & 0x0F0F_0F0F;
            }
        }
    }
    fn pack_values8(level: Level, rows: [&Self; 8], panel: &mut PanelBlock, j0: usize) {
        kernels::pack_q4k_values8(level, rows, panel.words_mut(), j0);
    }
    fn pack_scales(&self, panel: &mut PanelBlock, j: usize) {
        let words = q4k_scales_mins(&self.scales);
        let bytes: [u8; 16] = std::array::from_fn(|i| words[i / 4].to_le_bytes()[i % 4]);
        let (d, dmin) = (self.d.to_f32(), self.dmin.to_f32());
        for g in 0..QK_K / Self::GROUP {
            panel.set_group(j, g, bytes[g] as i16, -dmin * bytes[8 + g] as f32);
        }
        panel.d[j] = d;
    }
}

/// The eight 6-bit scales (bytes 0..8) and mins (bytes 8..16) of a Q4_K block in four words, as ggml's
/// Q4_K dot product unpacks them: the same values as `scale_min_k4`, without a branch per sub-block.
fn q4k_scales_mins(s: &[u8; 12]) -> [u32; 4] {
    const KMASK1: u32 = 0x3f3f_3f3f;
    const KMASK2: u32 = 0x0f0f_0f0f;
    const KMASK3: u32 = 0x0303_0303;
    let word = |i: usize| u32::from_le_bytes([s[4 * i], s[4 * i + 1], s[4 * i + 2], s[4 * i + 3]]);
    let (u0, u1, u2) = (word(0), word(1), word(2));
    [
        u0 & KMASK1,
        (u2 & KMASK2) | (((u0 >> 6) & KMASK3) << 4),
        u1 & KMASK1,
        ((u2 >> 4) & KMASK2) | (((u1 >> 6) & KMASK3) << 4),
    ]
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block (the reference
/// `q4k_scales_mins` is tested against).
#[cfg(test)]
fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

impl KBlock for BlockQ6K {
    const GROUP: usize = 16;
    fn dot_row<const R: usize>(level: Level, w: &[Self], a: [&[ActBlock]; R]) -> [f32; R] {
        kernels::dot_q6k(level, w, a)
    }
    fn pack_values(&self, panel: &mut PanelBlock, j: usize) {
        // ggml's `dequantize_row_q6_K`: two halves of 128 values, each from 64 low-nibble bytes and 32 bytes
        // of high bit pairs, four values at a time as one word; values are stored + 32, which the group
        // correction takes back.
        let word = |b: &[u8]| u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let q = panel.words_mut();
        for (half, (ql, qh)) in self.ql.chunks_exact(64).zip(self.qh.chunks_exact(32)).enumerate() {
            for (i, (lo, hi)) in ql[..32].chunks_exact(4).zip(qh.chunks_exact(4)).enumerate() {
                let (a, b, h) = (word(lo), word(&ql[32 + 4 * i..]), word(hi));
                let c = 32 * half + i;
                q[c][j] = (a & 0x0F0F_0F0F) | (h & 0x0303_0303) << 4;
                q[c + 8][j] = (b & 0x0F0F_0F0F) | (h >> 2 & 0x0303_0303) << 4;
                q[c + 16][j] = (a >> 4 & 0x0F0F_0F0F) | (h >> 4 & 0x0303_0303) << 4;
                q[c + 24][j] = (b >> 4 & 0x0F0F_0F0F) | (h >> 6 & 0x0303_0303) << 4;
            }
        }
    }
    fn pack_values8(level: Level, rows: [&Self; 8], panel: &mut PanelBlock, j0: usize) {
        kernels::pack_q6k_values8(level, rows, panel.words_mut(), j0);
    }
    fn pack_scales(&self, panel: &mut PanelBlock, j: usize) {
        let d = self.d.to_f32();
        for (g, &sc) in self.scales.iter().enumerate() {
            panel.set_group(j, g, sc as i16, -32.0 * d * sc as f32);
        }
        panel.d[j] = d;
    }
}

/// ggml's `quantize_row_q8_K` (scale from the value of largest magnitude, −128 at that value, clamped to
/// 127), with the group sums scaled for the panels' group corrections (`PanelBlock::corr`).
fn quantize_row(x: &[f32], out: &mut [ActBlock]) {
    for (xb, y) in x.chunks_exact(QK_K).zip(out) {
        // The value of largest magnitude, the first one if several: found by its magnitude, which eight
        // independent lanes compute (vector code; a running "largest so far" is one long dependency chain).
        let mut lanes = [0f32; 8];
        for c in xb.chunks_exact(8) {
            for (l, v) in lanes.iter_mut().zip(c) {
                *l = l.max(v.abs());
            }
        }
        let amax = lanes.iter().fold(0f32, |m, &l| m.max(l));
        let max = xb.iter().copied().find(|v| v.abs() == amax).unwrap_or(0.0);
        if max == 0.0 {
            y.qs = [0; QK_K];
            y.sums = [0.0; 16];
            y.sums32 = [0.0; 8];
            y.d = 0.0;
            continue;
        }
        let iscale = -128.0 / max;
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            *q = ((iscale * v).round() as i32).min(127) as i8;
        }
        y.d = 1.0 / iscale;
        let mut isums = [0i32; 16];
        for (s, g) in isums.iter_mut().zip(y.qs.chunks_exact(16)) {
            *s = g.iter().map(|&q| q as i32).sum();
        }
        for (s, &i) in y.sums.iter_mut().zip(&isums) {
            *s = y.d * i as f32;
        }
        for (s, i) in y.sums32.iter_mut().zip(isums.chunks_exact(2)) {
            *s = y.d * (i[0] + i[1]) as f32;
        }
    }
}

impl ActBlock {
    const ZERO: ActBlock = ActBlock { qs: [0; QK_K], sums: [0.0; 16], sums32: [0.0; 8], d: 0.0 };
}

/// One activation block for the Q8_0/Q5_0 panels: ggml's `block_q8_0` with an f32 scale.
#[repr(C, align(32))]
struct ActQ8 {
    qs: [i8; QK8],
    d: f32,
}

impl ActQ8 {
    const ZERO: ActQ8 = ActQ8 { qs: [0; QK8], d: 0.0 };
}

/// Values per Q8_0/Q5_0 block.
const QK8: usize = 32;

/// Each row of `x` (`k` values) quantized into its `blocks` blocks of `out`, the rows spread over the
/// kernels' threads: done on one thread, it would leave the others waiting for a sizeable share of a
/// prompt step.
fn quantize_rows<B: Send>(x: &[f32], k: usize, out: &mut [B], blocks: usize, quantize: fn(&[f32], &mut [B])) {
    // One uncontended lock per row: each row is written by the one task that takes it.
    let rows: Vec<std::sync::Mutex<&mut [B]>> = out.chunks_exact_mut(blocks).map(std::sync::Mutex::new).collect();
    candle_core::utils::barrier_pool().execute_chunked(rows.len(), |range| {
        for r in range {
            let mut row = rows[r].lock().expect("a row's lock is never poisoned");
            quantize(&x[r * k..(r + 1) * k], &mut row);
        }
    });
}

/// ggml's `quantize_row_q8_0`: a scale from the largest magnitude, values rounded to −127..=127.
fn quantize_row_q8(x: &[f32], out: &mut [ActQ8]) {
    for (xb, y) in x.chunks_exact(QK8).zip(out) {
        let amax = xb.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        for (q, &v) in y.qs.iter_mut().zip(xb) {
            *q = (v * id).round() as i8;
        }
        y.d = d;
    }
}

/// `x @ wᵀ` for `x`: `[.., k]` f32 on the CPU, with `w` Q4_K or Q6_K, or Q8_0 or Q5_0 when `x` has more than
/// `MAX_ROWS` rows (below that, `gemv` has the faster kernel for those); `None` when this path does not
/// apply (CPU without AVX2, device, dtype or shape), so the caller falls back.
pub(crate) fn forward(w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    let Some(level) = level::best() else { return Ok(None) };
    if !x.device().is_cpu() || x.dtype() != DType::F32 || x.elem_count() == 0 {
        return Ok(None);
    }
    let dims = x.dims().to_vec();
    let Some(&k) = dims.last() else { return Ok(None) };
    let Ok((n, wk)) = w.shape().dims2() else { return Ok(None) };
    let m = x.elem_count() / k.max(1);
    let applies = match w.dtype() {
        GgmlDType::Q4K | GgmlDType::Q6K => k.is_multiple_of(QK_K),
        GgmlDType::Q8_0 | GgmlDType::Q5_0 => m > MAX_ROWS && k.is_multiple_of(QK8),
        _ => false,
    };
    if !applies || wk != k || k == 0 {
        return Ok(None);
    }
    let x = x.flatten_all()?.to_vec1::<f32>()?;
    let out = product(level, w.dtype(), &w.data()?, &x, m, n, k);
    let Some(out) = out else { return Ok(None) };
    let mut shape = dims;
    *shape.last_mut().expect("checked above") = n;
    Ok(Some(Tensor::from_vec(out, shape, &candle_core::Device::Cpu)?))
}

/// `x @ wᵀ` with `x` `m × k` and `w` `n` rows of `dtype` blocks, at `level`; `None` for another dtype or
/// when `data` does not hold `n` rows of whole blocks.
fn product(level: Level, dtype: GgmlDType, data: &[u8], x: &[f32], m: usize, n: usize, k: usize) -> Option<Vec<f32>> {
    match dtype {
        GgmlDType::Q4K => run_k::<BlockQ4K>(level, data, x, m, n, k),
        GgmlDType::Q6K => run_k::<BlockQ6K>(level, data, x, m, n, k),
        GgmlDType::Q8_0 => run_legacy::<Q8_0>(level, data, x, m, n, k),
        GgmlDType::Q5_0 => run_legacy::<Q5_0>(level, data, x, m, n, k),
        _ => None,
    }
}

/// `data` as `count` blocks of `T`, or `None` when its length or alignment do not fit.
fn as_blocks<T: WeightBlock>(data: &[u8], count: usize) -> Option<&[T]> {
    if data.len() != count * std::mem::size_of::<T>()
        || !(data.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        return None;
    }
    // SAFETY: `T: WeightBlock` is a `#[repr(C)]` GGUF block of plain numbers, valid for any bytes, as candle
    // stores CPU quantized tensors; length and alignment are checked above, and the slice borrows `data`.
    Some(unsafe { std::slice::from_raw_parts(data.as_ptr() as *const T, count) })
}

/// GGUF block types read in place from candle's bytes.
///
/// # Safety
/// Implementors are `#[repr(C)]` structs of integers and `f16`s, without padding, for which every bit
/// pattern is a valid value.
unsafe trait WeightBlock: Sized + Sync {}
// SAFETY: `#[repr(C)]`, integer and f16 fields only, sizes asserted above (no padding).
unsafe impl WeightBlock for BlockQ4K {}
// SAFETY: as for `BlockQ4K`.
unsafe impl WeightBlock for BlockQ6K {}
// SAFETY: `gemv`'s `#[repr(C)]` mirrors of ggml's blocks: an f16 and byte arrays, sizes asserted there.
unsafe impl WeightBlock for Q8_0 {}
// SAFETY: as for `Q8_0`.
unsafe impl WeightBlock for Q5_0 {}

fn run_k<T: KBlock + WeightBlock>(
    level: Level,
    data: &[u8],
    x: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Option<Vec<f32>> {
    let blocks = k / QK_K;
    let w: &[T] = as_blocks(data, n * blocks)?;
    let mut act: Vec<ActBlock> = (0..m * blocks).map(|_| ActBlock::ZERO).collect();
    quantize_rows(x, k, &mut act, blocks, quantize_row);
    let a = |r: usize| &act[r * blocks..(r + 1) * blocks];

    let mut out = vec![0f32; m * n];
    if m > MAX_ROWS {
        run_panels(
            m,
            n,
            &mut out,
            || (0..blocks).map(|_| PanelBlock::ZERO).collect(),
            |group, panels: &mut [PanelBlock]| {
                // Block by block, so that each block's panel stays in L1 while its rows are written; eight
                // rows at a time where the weight has all eight.
                let block = |col: usize, b: usize| w.get(col * blocks + b).filter(|_| col < n);
                for (b, p) in panels.iter_mut().enumerate() {
                    for j0 in (0..PANEL).step_by(8) {
                        let col0 = group * PANEL + j0;
                        let rows: [Option<&T>; 8] = std::array::from_fn(|j| block(col0 + j, b));
                        if rows.iter().all(Option::is_some) {
                            let rows = rows.map(|row| row.expect("checked above"));
                            T::pack_values8(level, rows, p, j0);
                            for (j, row) in rows.iter().enumerate() {
                                row.pack_scales(p, j0 + j);
                            }
                            continue;
                        }
                        for j in j0..j0 + 8 {
                            match block(group * PANEL + j, b) {
                                Some(row) => row.pack(p, j),
                                None => p.clear_row(j),
                            }
                        }
                    }
                }
            },
            |p, r, three| {
                if three {
                    kernels::panel_k::<T, 3>(level, p, [a(r), a(r + 1), a(r + 2)])
                } else {
                    let [v] = kernels::panel_k::<T, 1>(level, p, [a(r)]);
                    [v, [0.0; PANEL], [0.0; PANEL]]
                }
            },
        );
        return Some(out);
    }
    let out_ptr = SendPtr(out.as_mut_ptr());
    let groups = n.div_ceil(COL_GROUP);
    candle_core::utils::barrier_pool().execute_chunked(groups, |items| {
        let out = out_ptr;
        for group in items {
            for col in group * COL_GROUP..((group + 1) * COL_GROUP).min(n) {
                let wrow = &w[col * blocks..(col + 1) * blocks];
                // SAFETY: (row, col) is in the m × n output, and each belongs to exactly one item, so no
                // two threads write it; `out` outlives the pool call.
                let put = |r: usize, v: f32| unsafe { *out.0.add(r * n + col) = v };
                // Four rows at a time, the rest together: the weight row is unpacked once per group.
                let mut r = 0;
                while r < m {
                    r += match m - r {
                        1 => dot_rows::<T, 1>(level, wrow, &a, r, put),
                        2 => dot_rows::<T, 2>(level, wrow, &a, r, put),
                        3 => dot_rows::<T, 3>(level, wrow, &a, r, put),
                        _ => dot_rows::<T, 4>(level, wrow, &a, r, put),
                    };
                }
            }
        }
    });
    Some(out)
}

/// Activation rows `r..r + R` against one weight row, each output given to `put`; returns `R`. Each row's
/// sum does not depend on `R` (the kernels keep one accumulator per row).
#[inline(always)]
fn dot_rows<'a, T: KBlock, const R: usize>(
    level: Level,
    wrow: &[T],
    a: &impl Fn(usize) -> &'a [ActBlock],
    r: usize,
    put: impl Fn(usize, f32),
) -> usize {
    let d = T::dot_row(level, wrow, std::array::from_fn::<_, R, _>(|i| a(r + i)));
    for (i, v) in d.into_iter().enumerate() {
        put(r + i, v);
    }
    R
}

/// Q8_0/Q5_0 prompt steps: the weight blocks' signed values packed 16 rows to a panel, activations in
/// Q8_0 as ggml quantizes them for these types.
fn run_legacy<T: LegacyBlock + WeightBlock>(
    level: Level,
    data: &[u8],
    x: &[f32],
    m: usize,
    n: usize,
    k: usize,
) -> Option<Vec<f32>> {
    let blocks = k / QK8;
    let w: &[T] = as_blocks(data, n * blocks)?;
    let mut act: Vec<ActQ8> = (0..m * blocks).map(|_| ActQ8::ZERO).collect();
    quantize_rows(x, k, &mut act, blocks, quantize_row_q8);
    let a = |r: usize| &act[r * blocks..(r + 1) * blocks];
    let mut out = vec![0f32; m * n];
    run_panels(
        m,
        n,
        &mut out,
        || (0..blocks).map(|_| LegacyPanel::ZERO).collect(),
        |group, panels: &mut [LegacyPanel]| {
            for j in 0..PANEL {
                let col = group * PANEL + j;
                for (b, p) in panels.iter_mut().enumerate() {
                    let (v, d) = match w.get(col * blocks + b).filter(|_| col < n) {
                        Some(block) => (block.values(), block.scale()),
                        None => ([0; QK8], 0.0),
                    };
                    for (c, q) in p.q.iter_mut().enumerate() {
                        q[4 * j..4 * j + 4].copy_from_slice(&v[4 * c..4 * c + 4]);
                    }
                    p.d[j] = d;
                    p.sum128[j] = 128 * v.iter().map(|&v| v as i32).sum::<i32>();
                }
            }
        },
        |p, r, three| {
            if three {
                kernels::panel_legacy::<3>(level, p, [a(r), a(r + 1), a(r + 2)])
            } else {
                let [v] = kernels::panel_legacy::<1>(level, p, [a(r)]);
                [v, [0.0; PANEL], [0.0; PANEL]]
            }
        },
    );
    Some(out)
}

/// Weight rows in one panel: one 512-bit register (or two 256-bit ones) holds 4 consecutive values of each.
const PANEL: usize = 16;
/// Activation rows per panel work item: the item's panel (16 weight rows, under 256 KB for the widest
/// input) is built once and stays in L2 while these rows stream past it.
const PANEL_TILE: usize = 256;

/// The panel kernels' work split: items are (16 weight rows, up to `PANEL_TILE` activation rows), group
/// major, so consecutive items of a worker reuse the panels it packed (`pack(group, panels)`); `kernel(p,
/// r, three)` gives the 16 outputs of activation row r (and of r + 1 and r + 2 when `three`).
fn run_panels<P>(
    m: usize,
    n: usize,
    out: &mut [f32],
    new: impl Fn() -> Vec<P> + Sync,
    pack: impl Fn(usize, &mut [P]) + Sync,
    kernel: impl Fn(&[P], usize, bool) -> [[f32; PANEL]; 3] + Sync,
) {
    assert_eq!(out.len(), m * n);
    let out_ptr = SendPtr(out.as_mut_ptr());
    let groups = n.div_ceil(PANEL);
    let tiles = m.div_ceil(PANEL_TILE);
    candle_core::utils::barrier_pool().execute_chunked(tiles * groups, |items| {
        let out = out_ptr;
        let mut panels = new();
        let mut packed = usize::MAX;
        for item in items {
            let (group, tile) = (item / tiles, item % tiles);
            if group != packed {
                pack(group, &mut panels);
                packed = group;
            }
            let cols = group * PANEL..((group + 1) * PANEL).min(n);
            let rows = tile * PANEL_TILE..((tile + 1) * PANEL_TILE).min(m);
            let mut r = rows.start;
            while r < rows.end {
                let three = r + 3 <= rows.end;
                let v = kernel(&panels, r, three);
                let count = if three { 3 } else { 1 };
                for (i, v) in v.iter().take(count).enumerate() {
                    for col in cols.clone() {
                        // SAFETY: (r + i, col) is in the m × n output (asserted), and each belongs to
                        // exactly one item, so no two threads write it; `out` outlives the pool call.
                        unsafe { *out.0.add((r + i) * n + col) = v[col - cols.start] };
                    }
                }
                r += count;
            }
        }
    });
}

/// One 256-value block of `PANEL` Q4_K/Q6_K weight rows, laid out for broadcast activations: `q[c]` holds
/// values 4c..4c+4 of every row (row j at bytes 4j..4j+4, so rows 0..8 fill the first 256-bit half), so
/// one multiply against 4 activation values broadcast serves every row of a register. Both types come out
/// as `Σ w·x = d·dx·Σ_g scale_g·Σ q·qx + dx·Σ_g corr_g·Σ_{values of group g} qx`, the group correction
/// standing for Q4_K's min and Q6_K's offset of 32.
#[repr(C, align(64))]
struct PanelBlock {
    q: [[u8; 4 * PANEL]; QK_K / 4],
    /// Each row's scale of group g twice (the pair `madd` multiplies after `maddubs`).
    scales: [[i16; 2 * PANEL]; 16],
    /// The same once per row as 32 bits (the VNNI kernels scale 32-bit sums).
    scales32: [[i32; PANEL]; 16],
    corr: [[f32; PANEL]; 16],
    d: [f32; PANEL],
}

impl PanelBlock {
    const ZERO: PanelBlock = PanelBlock {
        q: [[0; 4 * PANEL]; QK_K / 4],
        scales: [[0; 2 * PANEL]; 16],
        scales32: [[0; PANEL]; 16],
        corr: [[0.0; PANEL]; 16],
        d: [0.0; PANEL],
    };

    /// Row `j`'s scale and correction (min, or Q6_K's offset) of group `g`.
    fn set_group(&mut self, j: usize, g: usize, scale: i16, corr: f32) {
        self.scales[g][2 * j] = scale;
        self.scales[g][2 * j + 1] = scale;
        self.scales32[g][j] = scale as i32;
        self.corr[g][j] = corr;
    }

    /// The values as words: `words_mut()[c][j]` is row `j`'s values `4c..4c + 4`, first in the low byte.
    fn words_mut(&mut self) -> &mut [[u32; PANEL]; QK_K / 4] {
        // SAFETY: `q` is `QK_K / 4` arrays of `4 * PANEL` bytes, the size of the word array, at the start of a
        // 64-byte-aligned struct, so aligned for u32; every bit pattern is a valid u8 and u32, and the
        // borrow of `self` keeps the bytes from being reached another way meanwhile.
        unsafe { &mut *(self.q.as_mut_ptr() as *mut [[u32; PANEL]; QK_K / 4]) }
    }

    /// Row `j` as zeros: a row past the weight's last, whose outputs are dropped.
    fn clear_row(&mut self, j: usize) {
        for q in self.words_mut() {
            q[j] = 0;
        }
        for g in 0..self.corr.len() {
            self.set_group(j, g, 0, 0.0);
        }
        self.d[j] = 0.0;
    }
}

/// One 32-value block of `PANEL` Q8_0/Q5_0 weight rows, laid out as `PanelBlock::q`, values signed.
#[repr(C, align(64))]
struct LegacyPanel {
    q: [[i8; 4 * PANEL]; QK8 / 4],
    d: [f32; PANEL],
    /// 128 × the sum of each row's values: the VNNI kernels multiply activations + 128 (unsigned bytes).
    sum128: [i32; PANEL],
}

impl LegacyPanel {
    const ZERO: LegacyPanel = LegacyPanel { q: [[0; 4 * PANEL]; QK8 / 4], d: [0.0; PANEL], sum128: [0; PANEL] };
}

/// The safe entry points of the SIMD kernels: each takes a `Level`, which only exists for levels this CPU
/// has, and checks the slice lengths the kernels index without bounds checks.
mod kernels {
    use super::{ActBlock, ActQ8, BlockQ4K, BlockQ6K, Isa, KBlock, LegacyPanel, Level, PanelBlock, PANEL, QK_K};

    /// A safe entry point for one K-quant weight row, read in place, against `R` activation rows: checks
    /// the lengths and picks the level's kernel.
    macro_rules! row_dot {
        ($(#[$doc:meta])* $name:ident, $block:ty: $avx2:ident, $avxvnni:ident, $avx512:ident, $avx512vnni:ident) => {
            $(#[$doc])*
            #[inline]
            pub(super) fn $name<const R: usize>(level: Level, w: &[$block], a: [&[ActBlock]; R]) -> [f32; R] {
                assert!(a.iter().all(|a| a.len() == w.len()));
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `level` exists only for levels `simd::available()` found on this CPU, and each arm
                // runs the kernel of that level's features; the lengths the kernels rely on are checked above.
                unsafe {
                    match level.isa() {
                        Isa::Avx2 => x86::$avx2(w, a),
                        Isa::AvxVnni => x86::$avxvnni(w, a),
                        Isa::Avx512 => x86::$avx512(w, a),
                        Isa::Avx512Vnni => x86::$avx512vnni(w, a),
                    }
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("no SIMD level off x86_64: {level:?} {} {}", w.len(), a.len())
            }
        };
    }

    row_dot!(
        /// One Q4_K weight row, read in place, against `R` activation rows.
        dot_q4k, BlockQ4K: q4k_avx2, q4k_avxvnni, q4k_avx512, q4k_avx512vnni
    );
    row_dot!(
        /// One Q6_K weight row, read in place, against `R` activation rows.
        dot_q6k, BlockQ6K: q6k_avx2, q6k_avxvnni, q6k_avx512, q6k_avx512vnni
    );

    /// The safe entry to an x86 eight-row packing of one block type (`KBlock::pack_values8`).
    macro_rules! pack_values8 {
        ($(#[$doc:meta])* $name:ident, $block:ty) => {
            $(#[$doc])*
            pub(super) fn $name(_level: Level, rows: [&$block; 8], q: &mut [[u32; PANEL]; QK_K / 4], j0: usize) {
                assert!(j0 + 8 <= PANEL);
                #[cfg(target_arch = "x86_64")]
                // SAFETY: a `Level` exists only on a CPU with AVX2, which every level includes (`simd`), and
                // `j0 + 8` words fit in each panel row (asserted).
                unsafe {
                    x86::$name(rows, q, j0)
                }
                #[cfg(not(target_arch = "x86_64"))]
                unreachable!("no SIMD level off x86_64: {_level:?} {} {}", rows.len(), q.len())
            }
        };
    }
    pack_values8!(
        /// `KBlock::pack_values8` of Q4_K: eight rows' values into a panel's words.
        pack_q4k_values8, BlockQ4K
    );
    pack_values8!(
        /// `KBlock::pack_values8` of Q6_K: eight rows' values into a panel's words.
        pack_q6k_values8, BlockQ6K
    );

    /// `R` activation rows against a Q4_K/Q6_K panel (16 weight rows).
    #[inline]
    pub(super) fn panel_k<T: KBlock, const R: usize>(
        level: Level,
        p: &[PanelBlock],
        a: [&[ActBlock]; R],
    ) -> [[f32; PANEL]; R] {
        assert!(a.iter().all(|a| a.len() == p.len()));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `row_dot!`: the level's features are present, the lengths checked above.
        unsafe {
            // Without VNNI, the second number is how many 4-value `maddubs` results are summed in 16 bits
            // before the `madd` with the scales: a pair of products is at most 2·15·128 for Q4_K (8 fit),
            // 2·63·128 for Q6_K (2 fit).
            match (T::GROUP, level.isa()) {
                (32, Isa::Avx2) => x86::panel_avx2::<8, 8, R>(p, a),
                (16, Isa::Avx2) => x86::panel_avx2::<4, 2, R>(p, a),
                (32, Isa::AvxVnni) => x86::panel_avxvnni::<8, R>(p, a),
                (16, Isa::AvxVnni) => x86::panel_avxvnni::<4, R>(p, a),
                (32, Isa::Avx512) => x86::panel_avx512::<8, 8, R>(p, a),
                (16, Isa::Avx512) => x86::panel_avx512::<4, 2, R>(p, a),
                (32, Isa::Avx512Vnni) => x86::panel_avx512vnni::<8, R>(p, a),
                (16, Isa::Avx512Vnni) => x86::panel_avx512vnni::<4, R>(p, a),
                (group, _) => unreachable!("no panel kernel for groups of {group}"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no SIMD level off x86_64: {level:?} {} {}", p.len(), a.len())
    }

    /// `R` activation rows against a Q8_0/Q5_0 panel (16 weight rows).
    #[inline]
    pub(super) fn panel_legacy<const R: usize>(level: Level, p: &[LegacyPanel], a: [&[ActQ8]; R]) -> [[f32; PANEL]; R] {
        assert!(a.iter().all(|a| a.len() == p.len()));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: as in `row_dot!`: the level's features are present, the lengths checked above.
        unsafe {
            match level.isa() {
                Isa::Avx2 => x86::legacy_avx2(p, a),
                Isa::AvxVnni => x86::legacy_avxvnni(p, a),
                Isa::Avx512 => x86::legacy_avx512(p, a),
                Isa::Avx512Vnni => x86::legacy_avx512vnni(p, a),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no SIMD level off x86_64: {level:?} {} {}", p.len(), a.len())
    }

    /// The kernels. Each level's entry point is a `#[target_feature]` function around an `#[inline(always)]`
    /// body shared by the levels of one register width (`VNNI` picks the fused instructions), so the body
    /// is compiled once per level with that level's instructions.
    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        use super::super::{
            q4k_scales_mins, ActBlock, ActQ8, BlockQ4K, BlockQ6K, LegacyPanel, PanelBlock, PANEL, QK_K,
        };

        /// Fetch the cache lines of one `T` at `p` (a hint: it never faults, wherever `p` points).
        #[inline(always)]
        fn prefetch_lines<T>(p: *const T) {
            for line in 0..std::mem::size_of::<T>().div_ceil(64) {
                // SAFETY: a prefetch is a hint; it does not fault on any address.
                unsafe { _mm_prefetch::<_MM_HINT_T0>((p as *const i8).wrapping_add(64 * line)) };
            }
        }

        /// How far ahead in each weight row the packing fetches: it reads eight rows side by side, a block
        /// of each at a time, which the hardware prefetchers follow poorly (short prompt steps then waited
        /// on memory); the next block of each row, fetched while this one is transposed, served best.
        const PREFETCH_BLOCKS: usize = 1;

        /// An 8 × 8 transpose of 32-bit words: word `i` of `r[j]` becomes word `j` of the result's `i`.
        #[inline(always)]
        unsafe fn transpose8(r: [__m256i; 8]) -> [__m256i; 8] {
            let lo32 = |a, b| _mm256_unpacklo_epi32(a, b);
            let hi32 = |a, b| _mm256_unpackhi_epi32(a, b);
            let (t0, t1, t2, t3) = (lo32(r[0], r[1]), hi32(r[0], r[1]), lo32(r[2], r[3]), hi32(r[2], r[3]));
            let (t4, t5, t6, t7) = (lo32(r[4], r[5]), hi32(r[4], r[5]), lo32(r[6], r[7]), hi32(r[6], r[7]));
            let lo64 = |a, b| _mm256_unpacklo_epi64(a, b);
            let hi64 = |a, b| _mm256_unpackhi_epi64(a, b);
            let u = [lo64(t0, t2), hi64(t0, t2), lo64(t1, t3), hi64(t1, t3)];
            let v = [lo64(t4, t6), hi64(t4, t6), lo64(t5, t7), hi64(t5, t7)];
            std::array::from_fn(|i| {
                if i < 4 {
                    _mm256_permute2x128_si256(u[i], v[i], 0x20)
                } else {
                    _mm256_permute2x128_si256(u[i - 4], v[i - 4], 0x31)
                }
            })
        }

        /// Eight words, one per row, into panel row `c` at rows `j0..j0 + 8`.
        #[inline(always)]
        unsafe fn store8(q: &mut [[u32; PANEL]; QK_K / 4], c: usize, j0: usize, v: __m256i) {
            _mm256_storeu_si256(q[c].as_mut_ptr().add(j0) as *mut __m256i, v)
        }

        /// `BlockQ4K::pack_values` of eight rows: each row's 32-byte chunk is eight words of low nibbles
        /// (panel rows `16·chunk + i`) and eight of high nibbles (`16·chunk + 8 + i`), transposed.
        ///
        /// # Safety
        /// The CPU has AVX2; `j0 + 8 ≤ PANEL`.
        #[target_feature(enable = "avx2")]
        pub(in super::super) unsafe fn pack_q4k_values8(
            rows: [&BlockQ4K; 8],
            q: &mut [[u32; PANEL]; QK_K / 4],
            j0: usize,
        ) {
            for b in rows {
                prefetch_lines((b as *const BlockQ4K).wrapping_add(PREFETCH_BLOCKS));
            }
            let nibbles = _mm256_set1_epi8(0x0F);
            for chunk in 0..4 {
                let w = rows.map(|b| _mm256_loadu_si256(b.qs.as_ptr().add(32 * chunk) as *const __m256i));
                let lo = transpose8(w.map(|v| _mm256_and_si256(v, nibbles)));
                let hi = transpose8(w.map(|v| _mm256_and_si256(_mm256_srli_epi32(v, 4), nibbles)));
                for i in 0..8 {
                    store8(q, 16 * chunk + i, j0, lo[i]);
                    store8(q, 16 * chunk + 8 + i, j0, hi[i]);
                }
            }
        }

        /// `BlockQ6K::pack_values` of eight rows: per half, the words of `ql`'s two 32-byte runs and of
        /// `qh` give four panel rows each (`32·half + 8·m + i`), transposed.
        ///
        /// # Safety
        /// The CPU has AVX2; `j0 + 8 ≤ PANEL`.
        #[target_feature(enable = "avx2")]
        pub(in super::super) unsafe fn pack_q6k_values8(
            rows: [&BlockQ6K; 8],
            q: &mut [[u32; PANEL]; QK_K / 4],
            j0: usize,
        ) {
            for b in rows {
                prefetch_lines((b as *const BlockQ6K).wrapping_add(PREFETCH_BLOCKS));
            }
            let nibbles = _mm256_set1_epi8(0x0F);
            let pairs = _mm256_set1_epi8(0x03);
            let load = |p: *const u8| _mm256_loadu_si256(p as *const __m256i);
            for half in 0..2 {
                let a = rows.map(|b| load(b.ql.as_ptr().add(64 * half)));
                let b = rows.map(|b| load(b.ql.as_ptr().add(64 * half + 32)));
                let h = rows.map(|b| load(b.qh.as_ptr().add(32 * half)));
                // Low 4 bits from `ql`, bits 4 and 5 from a pair of `qh`'s bits.
                let value = |lo: __m256i, h: __m256i, shift: i32| {
                    let high = _mm256_and_si256(_mm256_srl_epi32(h, _mm_cvtsi32_si128(shift)), pairs);
                    _mm256_or_si256(_mm256_and_si256(lo, nibbles), _mm256_slli_epi32(high, 4))
                };
                let parts = [
                    std::array::from_fn(|j| value(a[j], h[j], 0)),
                    std::array::from_fn(|j| value(b[j], h[j], 2)),
                    std::array::from_fn(|j| value(_mm256_srli_epi32(a[j], 4), h[j], 4)),
                    std::array::from_fn(|j| value(_mm256_srli_epi32(b[j], 4), h[j], 6)),
                ];
                for (m, part) in parts.into_iter().enumerate() {
                    for (i, v) in transpose8(part).into_iter().enumerate() {
                        store8(q, 32 * half + 8 * m + i, j0, v);
                    }
                }
            }
        }

        /// Four activation bytes (values 4c..4c+4 of a block) in every 32-bit lane.
        #[inline(always)]
        unsafe fn bcast256(qs: &[i8], c: usize) -> __m256i {
            _mm256_set1_epi32((qs.as_ptr().add(4 * c) as *const i32).read_unaligned())
        }

        #[inline(always)]
        unsafe fn bcast512(qs: &[i8], c: usize) -> __m512i {
            _mm512_set1_epi32((qs.as_ptr().add(4 * c) as *const i32).read_unaligned())
        }

        /// Four activation bytes with each one's sign bit flipped (the bytes as `x + 128`, unsigned), flipped
        /// in the scalar before the broadcast. The same bits as a vector XOR after it, which a build for an
        /// AVX-512 CPU (`-C target-cpu=native`) spent many minutes on in LLVM's instruction selection.
        #[inline(always)]
        unsafe fn flipped(qs: &[i8], c: usize) -> i32 {
            ((qs.as_ptr().add(4 * c) as *const u32).read_unaligned() ^ 0x8080_8080) as i32
        }

        #[inline(always)]
        unsafe fn bcast256_flipped(qs: &[i8], c: usize) -> __m256i {
            _mm256_set1_epi32(flipped(qs, c))
        }

        #[inline(always)]
        unsafe fn bcast512_flipped(qs: &[i8], c: usize) -> __m512i {
            _mm512_set1_epi32(flipped(qs, c))
        }

        /// `acc` plus, in each 32-bit lane, the sum of the products of its two word pairs: `vpdpwssd` itself.
        /// The intrinsic would do, but LLVM tuning for a generic x86-64 CPU (the portable build) splits it
        /// into `vpmaddwd` and `vpaddd`, one more instruction per product on the CPUs where the fused one is
        /// as fast as either; assembly keeps it whole.
        ///
        /// # Safety
        /// The CPU has AVX-512 F and AVX-512 VNNI.
        #[target_feature(enable = "avx512f,avx512vnni")]
        #[inline]
        unsafe fn dpwssd512(acc: __m512i, a: __m512i, b: __m512i) -> __m512i {
            let mut acc = acc;
            // SAFETY: one register-only instruction of a feature the caller guarantees; no memory, stack or
            // flags are touched.
            std::arch::asm!(
                "vpdpwssd {acc}, {a}, {b}",
                acc = inout(zmm_reg) acc,
                a = in(zmm_reg) a,
                b = in(zmm_reg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
            acc
        }

        /// `dpwssd512` on 256-bit registers, VEX-encoded (AVX-VNNI).
        ///
        /// # Safety
        /// The CPU has AVX2 and AVX-VNNI.
        #[target_feature(enable = "avx2,avxvnni")]
        #[inline]
        unsafe fn dpwssd256(acc: __m256i, a: __m256i, b: __m256i) -> __m256i {
            let mut acc = acc;
            // SAFETY: as in `dpwssd512`.
            std::arch::asm!(
                "{{vex}} vpdpwssd {acc}, {a}, {b}",
                acc = inout(ymm_reg) acc,
                a = in(ymm_reg) a,
                b = in(ymm_reg) b,
                options(pure, nomem, nostack, preserves_flags)
            );
            acc
        }

        /// `acc + Σ` over each lane's pairs of `w · y` (unsigned by signed bytes) times the lane's word
        /// scales in `s`: one `maddubs`, then `madd` (or the fused `vpdpwssd` with `VNNI`).
        ///
        /// # Safety
        /// The CPU has AVX2 (and AVX-VNNI when `VNNI`).
        #[inline(always)]
        unsafe fn scaled_dot256<const VNNI: bool>(acc: __m256i, w: __m256i, y: __m256i, s: __m256i) -> __m256i {
            let p = _mm256_maddubs_epi16(w, y);
            if VNNI {
                dpwssd256(acc, p, s)
            } else {
                _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
            }
        }

        /// `scaled_dot256` on 512-bit registers.
        ///
        /// # Safety
        /// The CPU has AVX-512 BW (and AVX-512 VNNI when `VNNI`).
        #[inline(always)]
        unsafe fn scaled_dot512<const VNNI: bool>(acc: __m512i, w: __m512i, y: __m512i, s: __m512i) -> __m512i {
            let p = _mm512_maddubs_epi16(w, y);
            if VNNI {
                dpwssd512(acc, p, s)
            } else {
                _mm512_add_epi32(acc, _mm512_madd_epi16(p, s))
            }
        }

        /// The sum of the eight lanes.
        ///
        /// # Safety
        /// The CPU has AVX.
        #[inline(always)]
        unsafe fn hsum256(v: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }

        /// How far ahead in the weights the row kernels fetch: a work item reads its weight rows one after
        /// another, each a short stream (1–5 KB) that the hardware prefetchers do not lock on to before it
        /// ends, so without this a decode step waited on memory (as `gemv`'s kernels found too).
        const ROW_PREFETCH_BYTES: usize = 4096;

        /// Fetch the lines of the block `ROW_PREFETCH_BYTES` past `block` (the following rows' blocks when
        /// the row ends; past the weight's end the prefetch is a no-op, as prefetches never fault).
        #[inline(always)]
        fn prefetch_ahead<T>(block: &T) {
            prefetch_lines((block as *const T as *const u8).wrapping_add(ROW_PREFETCH_BYTES) as *const T);
        }

        // ------------------------------------------------------------ Q4_K rows in place (batched decode)
        //
        // Per 64 values: 32 bytes whose low nibbles are the first 32 values (sub-block 2c) and high nibbles
        // the next 32 (2c + 1), so split they line up with the activations' bytes in order; `maddubs` sums
        // pairs, which `madd` weighs by the sub-block's scale. The mins come in through the activations'
        // sums per 32 values.

        /// # Safety
        /// The CPU has AVX2 and FMA (and AVX-VNNI when `VNNI`); every `a[r]` is as long as `w`.
        #[inline(always)]
        unsafe fn q4k256<const R: usize, const VNNI: bool>(w: &[BlockQ4K], a: [&[ActBlock]; R]) -> [f32; R] {
            let mut acc = [_mm256_setzero_ps(); R];
            let m4 = _mm256_set1_epi8(0x0F);
            for (b, wb) in w.iter().enumerate() {
                prefetch_ahead(wb);
                let ys = a.map(|a| a.get_unchecked(b));
                let u = q4k_scales_mins(&wb.scales);
                let sc = (u64::from(u[1]) << 32 | u64::from(u[0])).to_le_bytes();
                let mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_set_epi32(0, 0, u[3] as i32, u[2] as i32)));
                let mut isum = [_mm256_setzero_si256(); R];
                for c in 0..4 {
                    let raw = _mm256_loadu_si256(wb.qs.as_ptr().add(32 * c) as *const __m256i);
                    let wq = [_mm256_and_si256(raw, m4), _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4)];
                    for (h, wq) in wq.iter().enumerate() {
                        let s = _mm256_set1_epi16(sc[2 * c + h] as i16);
                        for r in 0..R {
                            let yq = _mm256_load_si256(ys[r].qs.as_ptr().add(64 * c + 32 * h) as *const __m256i);
                            isum[r] = scaled_dot256::<VNNI>(isum[r], *wq, yq, s);
                        }
                    }
                }
                let mins = _mm256_mul_ps(mins, _mm256_set1_ps(-wb.dmin.to_f32()));
                let d = wb.d.to_f32();
                for r in 0..R {
                    let y = ys[r];
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_set1_ps(d * y.d), acc[r]);
                    acc[r] = _mm256_fmadd_ps(mins, _mm256_load_ps(y.sums32.as_ptr()), acc[r]);
                }
            }
            acc.map(|v| hsum256(v))
        }

        /// The same 64 values at a time: the two nibbles of 32 bytes in the two halves of one register, and
        /// each half's scale picked from the eight by a word permute.
        ///
        /// # Safety
        /// The CPU has AVX-512 F and BW, AVX2 and FMA (and AVX-512 VNNI when `VNNI`); every `a[r]` is as long as
        /// `w`.
        #[inline(always)]
        unsafe fn q4k512<const R: usize, const VNNI: bool>(w: &[BlockQ4K], a: [&[ActBlock]; R]) -> [f32; R] {
            let mut acc = [_mm512_setzero_ps(); R];
            let mut acc_min = [_mm256_setzero_ps(); R];
            let m4 = _mm512_set1_epi8(0x0F);
            // Words 0..16 (the low half) shift by 0, words 16..32 by 4: low nibbles below, high above.
            let shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
            let pick = |c: i16| _mm512_inserti64x4(_mm512_set1_epi16(2 * c), _mm256_set1_epi16(2 * c + 1), 1);
            let picks = [pick(0), pick(1), pick(2), pick(3)];
            for (b, wb) in w.iter().enumerate() {
                prefetch_ahead(wb);
                let ys = a.map(|a| a.get_unchecked(b));
                let u = q4k_scales_mins(&wb.scales);
                let words = _mm_set_epi32(u[3] as i32, u[2] as i32, u[1] as i32, u[0] as i32);
                let scales = _mm512_castsi128_si512(_mm_cvtepu8_epi16(words));
                let mins = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(words, 8)));
                let mut isum = [_mm512_setzero_si512(); R];
                for (c, pick) in picks.iter().enumerate() {
                    let raw = _mm512_broadcast_i64x4(_mm256_loadu_si256(wb.qs.as_ptr().add(32 * c) as *const __m256i));
                    let wq = _mm512_and_si512(_mm512_srlv_epi16(raw, shift), m4);
                    let s = _mm512_permutexvar_epi16(*pick, scales);
                    for r in 0..R {
                        let yq = _mm512_load_si512(ys[r].qs.as_ptr().add(64 * c) as *const _);
                        isum[r] = scaled_dot512::<VNNI>(isum[r], wq, yq, s);
                    }
                }
                let mins = _mm256_mul_ps(mins, _mm256_set1_ps(-wb.dmin.to_f32()));
                let d = wb.d.to_f32();
                for r in 0..R {
                    let y = ys[r];
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_set1_ps(d * y.d), acc[r]);
                    acc_min[r] = _mm256_fmadd_ps(mins, _mm256_load_ps(y.sums32.as_ptr()), acc_min[r]);
                }
            }
            let mut out = [0f32; R];
            for r in 0..R {
                out[r] = _mm512_reduce_add_ps(acc[r]) + hsum256(acc_min[r]);
            }
            out
        }

        /// The four levels' entry points of one in-place row kernel.
        macro_rules! row_entry_points {
            (
                $block:ty, $body256:ident, $body512:ident:
                $avx2:ident, $avxvnni:ident, $avx512:ident, $avx512vnni:ident
            ) => {
                /// # Safety
                /// The CPU has AVX2 and FMA; every `a[r]` is as long as `w`.
                #[target_feature(enable = "avx2,fma")]
                pub(in super::super) unsafe fn $avx2<const R: usize>(w: &[$block], a: [&[ActBlock]; R]) -> [f32; R] {
                    $body256::<R, false>(w, a)
                }

                /// # Safety
                /// The CPU has AVX2, FMA and AVX-VNNI; every `a[r]` is as long as `w`.
                #[target_feature(enable = "avx2,fma,avxvnni")]
                pub(in super::super) unsafe fn $avxvnni<const R: usize>(w: &[$block], a: [&[ActBlock]; R]) -> [f32; R] {
                    $body256::<R, true>(w, a)
                }

                /// # Safety
                /// The CPU has AVX-512 F, BW and VL, AVX2 and FMA; every `a[r]` is as long as `w`.
                #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
                pub(in super::super) unsafe fn $avx512<const R: usize>(w: &[$block], a: [&[ActBlock]; R]) -> [f32; R] {
                    $body512::<R, false>(w, a)
                }

                /// # Safety
                /// The CPU has AVX-512 F, BW, VL and VNNI, AVX2 and FMA; every `a[r]` is as long as `w`.
                #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
                pub(in super::super) unsafe fn $avx512vnni<const R: usize>(
                    w: &[$block],
                    a: [&[ActBlock]; R],
                ) -> [f32; R] {
                    $body512::<R, true>(w, a)
                }
            };
        }

        row_entry_points!(BlockQ4K, q4k256, q4k512: q4k_avx2, q4k_avxvnni, q4k_avx512, q4k_avx512vnni);

        // ------------------------------------------------------------ Q6_K rows in place (batched decode)
        //
        // Per 128 values: 64 bytes of low nibbles and 32 bytes of high bit pairs (ggml's layout: value
        // l + 32i takes nibble i / 2 of byte l + 32 (i mod 2) of the low half and bits 2i..2i+2 of byte l of
        // the high bits); values are stored + 32, which the scaled activation sums per 16 take back.

        /// Byte shuffle that spreads scales 2c and 2c + 1 over 8 bytes each.
        ///
        /// # Safety
        /// None beyond SSE2, which every x86-64 CPU has.
        #[inline(always)]
        unsafe fn q6k_pick(c: usize) -> __m128i {
            let spread = |v: usize| (v as i64) * 0x0101_0101_0101_0101;
            _mm_set_epi64x(spread(2 * c + 1), spread(2 * c))
        }

        /// # Safety
        /// The CPU has AVX2 and FMA (and AVX-VNNI when `VNNI`); every `a[r]` is as long as `w`.
        #[inline(always)]
        unsafe fn q6k256<const R: usize, const VNNI: bool>(w: &[BlockQ6K], a: [&[ActBlock]; R]) -> [f32; R] {
            let mut acc = [_mm256_setzero_ps(); R];
            let m4 = _mm256_set1_epi8(0x0F);
            let bits = [0x03, 0x0C, 0x30, 0xC0u8].map(|b| _mm256_set1_epi8(b as i8));
            let picks: [__m128i; 8] = std::array::from_fn(|c| q6k_pick(c));
            for (b, wb) in w.iter().enumerate() {
                prefetch_ahead(wb);
                let ys = a.map(|a| a.get_unchecked(b));
                let scales = _mm_loadu_si128(wb.scales.as_ptr() as *const __m128i);
                let mut isum = [_mm256_setzero_si256(); R];
                for half in 0..2 {
                    let ql0 = _mm256_loadu_si256(wb.ql.as_ptr().add(64 * half) as *const __m256i);
                    let ql1 = _mm256_loadu_si256(wb.ql.as_ptr().add(64 * half + 32) as *const __m256i);
                    let qh = _mm256_loadu_si256(wb.qh.as_ptr().add(32 * half) as *const __m256i);
                    let q = [
                        _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_slli_epi16(_mm256_and_si256(qh, bits[0]), 4)),
                        _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_slli_epi16(_mm256_and_si256(qh, bits[1]), 2)),
                        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, bits[2])),
                        _mm256_or_si256(
                            _mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                            _mm256_srli_epi16(_mm256_and_si256(qh, bits[3]), 2),
                        ),
                    ];
                    for (j, wq) in q.iter().enumerate() {
                        let c = 4 * half + j;
                        let s = _mm256_cvtepi8_epi16(_mm_shuffle_epi8(scales, picks[c]));
                        for r in 0..R {
                            let yq = _mm256_load_si256(ys[r].qs.as_ptr().add(32 * c) as *const __m256i);
                            isum[r] = scaled_dot256::<VNNI>(isum[r], *wq, yq, s);
                        }
                    }
                }
                let d = wb.d.to_f32();
                let minus32d = _mm256_set1_ps(-32.0 * d);
                let corr = [scales, _mm_srli_si128(scales, 8)]
                    .map(|s| _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(s)), minus32d));
                for r in 0..R {
                    let y = ys[r];
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_set1_ps(d * y.d), acc[r]);
                    acc[r] = _mm256_fmadd_ps(corr[0], _mm256_load_ps(y.sums.as_ptr()), acc[r]);
                    acc[r] = _mm256_fmadd_ps(corr[1], _mm256_load_ps(y.sums.as_ptr().add(8)), acc[r]);
                }
            }
            acc.map(|v| hsum256(v))
        }

        /// The same 64 values at a time: the 64 low-nibble bytes of a half in one register give values
        /// 0..64 (low nibbles) and 64..128 (high), the high bit pairs broadcast to both register halves and
        /// masked and shifted per half.
        ///
        /// # Safety
        /// The CPU has AVX-512 F and BW and AVX2 (and AVX-512 VNNI when `VNNI`); every `a[r]` is as long as `w`.
        #[inline(always)]
        unsafe fn q6k512<const R: usize, const VNNI: bool>(w: &[BlockQ6K], a: [&[ActBlock]; R]) -> [f32; R] {
            let mut acc = [_mm512_setzero_ps(); R];
            let m4 = _mm512_set1_epi8(0x0F);
            let halves = |lo: __m256i, hi: __m256i| _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
            let low_mask = halves(_mm256_set1_epi8(0x03), _mm256_set1_epi8(0x0C));
            let low_shift = halves(_mm256_set1_epi16(4), _mm256_set1_epi16(2));
            let high_mask = halves(_mm256_set1_epi8(0x30), _mm256_set1_epi8(0xC0u8 as i8));
            let high_shift = halves(_mm256_setzero_si256(), _mm256_set1_epi16(2));
            // Words 8k..8k + 8 of 64 values take scale 4p + k.
            let picks: [__m512i; 4] = std::array::from_fn(|p| {
                let k = |k: i16| _mm_set1_epi16(4 * p as i16 + k);
                _mm512_inserti64x4(
                    _mm512_castsi256_si512(_mm256_set_m128i(k(1), k(0))),
                    _mm256_set_m128i(k(3), k(2)),
                    1,
                )
            });
            for (b, wb) in w.iter().enumerate() {
                prefetch_ahead(wb);
                let ys = a.map(|a| a.get_unchecked(b));
                let raw = _mm_loadu_si128(wb.scales.as_ptr() as *const __m128i);
                let scales = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(raw));
                let mut isum = [_mm512_setzero_si512(); R];
                for half in 0..2 {
                    let ql = _mm512_loadu_si512(wb.ql.as_ptr().add(64 * half) as *const _);
                    let qh =
                        _mm512_broadcast_i64x4(_mm256_loadu_si256(wb.qh.as_ptr().add(32 * half) as *const __m256i));
                    let q = [
                        _mm512_or_si512(
                            _mm512_and_si512(ql, m4),
                            _mm512_sllv_epi16(_mm512_and_si512(qh, low_mask), low_shift),
                        ),
                        _mm512_or_si512(
                            _mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                            _mm512_srlv_epi16(_mm512_and_si512(qh, high_mask), high_shift),
                        ),
                    ];
                    for (j, wq) in q.iter().enumerate() {
                        let p = 2 * half + j;
                        let s = _mm512_permutexvar_epi16(picks[p], scales);
                        for r in 0..R {
                            let yq = _mm512_load_si512(ys[r].qs.as_ptr().add(64 * p) as *const _);
                            isum[r] = scaled_dot512::<VNNI>(isum[r], *wq, yq, s);
                        }
                    }
                }
                let d = wb.d.to_f32();
                let corr = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(raw)), _mm512_set1_ps(-32.0 * d));
                for r in 0..R {
                    let y = ys[r];
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_set1_ps(d * y.d), acc[r]);
                    acc[r] = _mm512_fmadd_ps(corr, _mm512_load_ps(y.sums.as_ptr()), acc[r]);
                }
            }
            acc.map(|v| _mm512_reduce_add_ps(v))
        }

        row_entry_points!(BlockQ6K, q6k256, q6k512: q6k_avx2, q6k_avxvnni, q6k_avx512, q6k_avx512vnni);

        // ------------------------------------------------------------ Q4_K/Q6_K panels (prompt steps)

        /// The float part of one block of a K-quant panel: `acc += isum · d · dy + Σ_g corr_g · sums_g`.
        #[inline(always)]
        unsafe fn k_block_end256<const G: usize>(
            p: &PanelBlock,
            y: &ActBlock,
            isum: [__m256i; 2],
            acc: &mut [__m256; 2],
        ) {
            let dy = _mm256_set1_ps(y.d);
            for q in 0..2 {
                let dd = _mm256_mul_ps(_mm256_load_ps(p.d.as_ptr().add(8 * q)), dy);
                let mut v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[q]), dd, acc[q]);
                for g in 0..64 / G {
                    let s = if G == 8 { y.sums32[g] } else { y.sums[g] };
                    v = _mm256_fmadd_ps(_mm256_load_ps(p.corr[g].as_ptr().add(8 * q)), _mm256_set1_ps(s), v);
                }
                acc[q] = v;
            }
        }

        #[inline(always)]
        unsafe fn k_block_end512<const G: usize>(p: &PanelBlock, y: &ActBlock, isum: __m512i, acc: &mut __m512) {
            let dd = _mm512_mul_ps(_mm512_load_ps(p.d.as_ptr()), _mm512_set1_ps(y.d));
            let mut v = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), dd, *acc);
            for g in 0..64 / G {
                let s = if G == 8 { y.sums32[g] } else { y.sums[g] };
                v = _mm512_fmadd_ps(_mm512_load_ps(p.corr[g].as_ptr()), _mm512_set1_ps(s), v);
            }
            *acc = v;
        }

        fn store<const R: usize, V>(acc: [V; R], put: impl Fn(&mut [f32; PANEL], V)) -> [[f32; PANEL]; R] {
            let mut out = [[0f32; PANEL]; R];
            for (o, v) in out.iter_mut().zip(acc) {
                put(o, v);
            }
            out
        }

        /// `G`: 4-value chunks per scale group; `M`: chunks whose 16-bit `maddubs` sums are added before
        /// each `madd` (as many as cannot overflow 16 bits).
        ///
        /// # Safety
        /// The CPU has AVX2 and FMA; every `a[r]` is as long as `p`.
        #[target_feature(enable = "avx2,fma")]
        pub(in super::super) unsafe fn panel_avx2<const G: usize, const M: usize, const R: usize>(
            p: &[PanelBlock],
            a: [&[ActBlock]; R],
        ) -> [[f32; PANEL]; R] {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for (b, w) in p.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [[_mm256_setzero_si256(); 2]; R];
                for g in 0..64 / G {
                    let sc = [0, 1].map(|q| _mm256_load_si256(w.scales[g].as_ptr().add(16 * q) as *const __m256i));
                    for h in 0..G / M {
                        let mut s16 = [[_mm256_setzero_si256(); 2]; R];
                        for c in 0..M {
                            let chunk = g * G + h * M + c;
                            let wq =
                                [0, 1].map(|q| _mm256_load_si256(w.q[chunk].as_ptr().add(32 * q) as *const __m256i));
                            for r in 0..R {
                                let x = bcast256(&ys[r].qs, chunk);
                                for q in 0..2 {
                                    s16[r][q] = _mm256_add_epi16(s16[r][q], _mm256_maddubs_epi16(wq[q], x));
                                }
                            }
                        }
                        for r in 0..R {
                            for q in 0..2 {
                                isum[r][q] = _mm256_add_epi32(isum[r][q], _mm256_madd_epi16(s16[r][q], sc[q]));
                            }
                        }
                    }
                }
                for r in 0..R {
                    k_block_end256::<G>(w, ys[r], isum[r], &mut acc[r]);
                }
            }
            store(acc, |o, v| {
                _mm256_storeu_ps(o.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(8), v[1]);
            })
        }

        /// `vpdpbusd` sums each 4 products in 32 bits at once; a group's sum is then scaled with one 32-bit
        /// multiply. `G`: 4-value chunks per scale group.
        ///
        /// # Safety
        /// The CPU has AVX2, FMA and AVX-VNNI; every `a[r]` is as long as `p`.
        #[target_feature(enable = "avx2,fma,avxvnni")]
        pub(in super::super) unsafe fn panel_avxvnni<const G: usize, const R: usize>(
            p: &[PanelBlock],
            a: [&[ActBlock]; R],
        ) -> [[f32; PANEL]; R] {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for (b, w) in p.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [[_mm256_setzero_si256(); 2]; R];
                for g in 0..64 / G {
                    let sc = [0, 1].map(|q| _mm256_load_si256(w.scales32[g].as_ptr().add(8 * q) as *const __m256i));
                    let mut s32 = [[_mm256_setzero_si256(); 2]; R];
                    for chunk in g * G..(g + 1) * G {
                        let wq = [0, 1].map(|q| _mm256_load_si256(w.q[chunk].as_ptr().add(32 * q) as *const __m256i));
                        for r in 0..R {
                            let x = bcast256(&ys[r].qs, chunk);
                            for q in 0..2 {
                                s32[r][q] = _mm256_dpbusd_avx_epi32(s32[r][q], wq[q], x);
                            }
                        }
                    }
                    for r in 0..R {
                        for q in 0..2 {
                            isum[r][q] = _mm256_add_epi32(isum[r][q], _mm256_mullo_epi32(s32[r][q], sc[q]));
                        }
                    }
                }
                for r in 0..R {
                    k_block_end256::<G>(w, ys[r], isum[r], &mut acc[r]);
                }
            }
            store(acc, |o, v| {
                _mm256_storeu_ps(o.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(8), v[1]);
            })
        }

        /// `panel_avx2` with all 16 rows in one register.
        ///
        /// # Safety
        /// The CPU has AVX-512 F, BW and VL, AVX2 and FMA; every `a[r]` is as long as `p`.
        #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
        pub(in super::super) unsafe fn panel_avx512<const G: usize, const M: usize, const R: usize>(
            p: &[PanelBlock],
            a: [&[ActBlock]; R],
        ) -> [[f32; PANEL]; R] {
            let mut acc = [_mm512_setzero_ps(); R];
            for (b, w) in p.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [_mm512_setzero_si512(); R];
                for g in 0..64 / G {
                    let sc = _mm512_load_si512(w.scales[g].as_ptr() as *const _);
                    for h in 0..G / M {
                        let mut s16 = [_mm512_setzero_si512(); R];
                        for c in 0..M {
                            let chunk = g * G + h * M + c;
                            let wq = _mm512_load_si512(w.q[chunk].as_ptr() as *const _);
                            for r in 0..R {
                                s16[r] = _mm512_add_epi16(s16[r], _mm512_maddubs_epi16(wq, bcast512(&ys[r].qs, chunk)));
                            }
                        }
                        for r in 0..R {
                            isum[r] = _mm512_add_epi32(isum[r], _mm512_madd_epi16(s16[r], sc));
                        }
                    }
                }
                for r in 0..R {
                    k_block_end512::<G>(w, ys[r], isum[r], &mut acc[r]);
                }
            }
            store(acc, |o, v| _mm512_storeu_ps(o.as_mut_ptr(), v))
        }

        /// `panel_avxvnni` with all 16 rows in one register.
        ///
        /// # Safety
        /// The CPU has AVX-512 F, BW, VL and VNNI, AVX2 and FMA; every `a[r]` is as long as `p`.
        #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub(in super::super) unsafe fn panel_avx512vnni<const G: usize, const R: usize>(
            p: &[PanelBlock],
            a: [&[ActBlock]; R],
        ) -> [[f32; PANEL]; R] {
            let mut acc = [_mm512_setzero_ps(); R];
            for (b, w) in p.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [_mm512_setzero_si512(); R];
                for g in 0..64 / G {
                    let sc = _mm512_load_si512(w.scales32[g].as_ptr() as *const _);
                    let mut s32 = [_mm512_setzero_si512(); R];
                    for chunk in g * G..(g + 1) * G {
                        let wq = _mm512_load_si512(w.q[chunk].as_ptr() as *const _);
                        for r in 0..R {
                            s32[r] = _mm512_dpbusd_epi32(s32[r], wq, bcast512(&ys[r].qs, chunk));
                        }
                    }
                    for r in 0..R {
                        isum[r] = _mm512_add_epi32(isum[r], _mm512_mullo_epi32(s32[r], sc));
                    }
                }
                for r in 0..R {
                    k_block_end512::<G>(w, ys[r], isum[r], &mut acc[r]);
                }
            }
            store(acc, |o, v| _mm512_storeu_ps(o.as_mut_ptr(), v))
        }

        // ------------------------------------------------------------ Q8_0/Q5_0 panels (prompt steps)

        /// Without VNNI: `maddubs(|w|, x · sign(w))` (ggml's `mul_sum_i8_pairs`; activations are within
        /// ±127, so the pair sums fit 16 bits), `madd` with ones.
        ///
        /// # Safety
        /// The CPU has AVX2 and FMA; every `a[r]` is as long as `p`.
        #[target_feature(enable = "avx2,fma")]
        pub(in super::super) unsafe fn legacy_avx2<const R: usize>(
            p: &[LegacyPanel],
            a: [&[ActQ8]; R],
        ) -> [[f32; PANEL]; R] {
            let ones = _mm256_set1_epi16(1);
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for (b, w) in p.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [[_mm256_setzero_si256(); 2]; R];
                for c in 0..8 {
                    let wq = [0, 1].map(|q| _mm256_load_si256(w.q[c].as_ptr().add(32 * q) as *const __m256i));
                    let aw = wq.map(|v| _mm256_sign_epi8(v, v));
                    for r in 0..R {
                        let x = bcast256(&ys[r].qs, c);
                        for q in 0..2 {
                            let prod = _mm256_maddubs_epi16(aw[q], _mm256_sign_epi8(x, wq[q]));
                            isum[r][q] = _mm256_add_epi32(isum[r][q], _mm256_madd_epi16(prod, ones));
                        }
                    }
                }
                for r in 0..R {
                    let dy = _mm256_set1_ps(ys[r].d);
                    for q in 0..2 {
                        let dd = _mm256_mul_ps(_mm256_load_ps(w.d.as_ptr().add(8 * q)), dy);
                        acc[r][q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][q]), dd, acc[r][q]);
                    }
                }
            }
            store(acc, |o, v| {
                _mm256_storeu_ps(o.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(8), v[1]);
            })
        }

        /// With VNNI: `vpdpbusd(x + 128, w)` needs no sign juggling; `sum128` takes the 128 · Σw back.
        ///
        /// # Safety
        /// The CPU has AVX2, FMA and AVX-VNNI; every `a[r]` is as long as `p`.
        #[target_feature(enable = "avx2,fma,avxvnni")]
        pub(in super::super) unsafe fn legacy_avxvnni<const R: usize>(
            p: &[LegacyPanel],
            a: [&[ActQ8]; R],
        ) -> [[f32; PANEL]; R] {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for (b, w) in p.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [[_mm256_setzero_si256(); 2]; R];
                for c in 0..8 {
                    let wq = [0, 1].map(|q| _mm256_load_si256(w.q[c].as_ptr().add(32 * q) as *const __m256i));
                    for r in 0..R {
                        let x = bcast256_flipped(&ys[r].qs, c);
                        for q in 0..2 {
                            isum[r][q] = _mm256_dpbusd_avx_epi32(isum[r][q], x, wq[q]);
                        }
                    }
                }
                for r in 0..R {
                    let dy = _mm256_set1_ps(ys[r].d);
                    for q in 0..2 {
                        let s = _mm256_sub_epi32(
                            isum[r][q],
                            _mm256_load_si256(w.sum128.as_ptr().add(8 * q) as *const __m256i),
                        );
                        let dd = _mm256_mul_ps(_mm256_load_ps(w.d.as_ptr().add(8 * q)), dy);
                        acc[r][q] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s), dd, acc[r][q]);
                    }
                }
            }
            store(acc, |o, v| {
                _mm256_storeu_ps(o.as_mut_ptr(), v[0]);
                _mm256_storeu_ps(o.as_mut_ptr().add(8), v[1]);
            })
        }

        /// `legacy_avx2` on 16 rows at once; AVX-512 has no `sign_epi8`, so x is negated under the mask
        /// of negative weights.
        ///
        /// # Safety
        /// The CPU has AVX-512 F, BW and VL, AVX2 and FMA; every `a[r]` is as long as `p`.
        #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl")]
        pub(in super::super) unsafe fn legacy_avx512<const R: usize>(
            p: &[LegacyPanel],
            a: [&[ActQ8]; R],
        ) -> [[f32; PANEL]; R] {
            let ones = _mm512_set1_epi16(1);
            let zero = _mm512_setzero_si512();
            let mut acc = [_mm512_setzero_ps(); R];
            for (b, w) in p.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [_mm512_setzero_si512(); R];
                for c in 0..8 {
                    let wq = _mm512_load_si512(w.q[c].as_ptr() as *const _);
                    let aw = _mm512_abs_epi8(wq);
                    let neg = _mm512_movepi8_mask(wq);
                    for r in 0..R {
                        let x = bcast512(&ys[r].qs, c);
                        let xs = _mm512_mask_sub_epi8(x, neg, zero, x);
                        isum[r] = _mm512_add_epi32(isum[r], _mm512_madd_epi16(_mm512_maddubs_epi16(aw, xs), ones));
                    }
                }
                let d = _mm512_load_ps(w.d.as_ptr());
                for r in 0..R {
                    let dd = _mm512_mul_ps(d, _mm512_set1_ps(ys[r].d));
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), dd, acc[r]);
                }
            }
            store(acc, |o, v| _mm512_storeu_ps(o.as_mut_ptr(), v))
        }

        /// `legacy_avxvnni` on 16 rows at once.
        ///
        /// # Safety
        /// The CPU has AVX-512 F, BW, VL and VNNI, AVX2 and FMA; every `a[r]` is as long as `p`.
        #[target_feature(enable = "avx2,fma,avx512f,avx512bw,avx512vl,avx512vnni")]
        pub(in super::super) unsafe fn legacy_avx512vnni<const R: usize>(
            p: &[LegacyPanel],
            a: [&[ActQ8]; R],
        ) -> [[f32; PANEL]; R] {
            let mut acc = [_mm512_setzero_ps(); R];
            for (b, w) in p.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [_mm512_setzero_si512(); R];
                for c in 0..8 {
                    let wq = _mm512_load_si512(w.q[c].as_ptr() as *const _);
                    for r in 0..R {
                        isum[r] = _mm512_dpbusd_epi32(isum[r], bcast512_flipped(&ys[r].qs, c), wq);
                    }
                }
                let d = _mm512_load_ps(w.d.as_ptr());
                let sum128 = _mm512_load_si512(w.sum128.as_ptr() as *const _);
                for r in 0..R {
                    let dd = _mm512_mul_ps(d, _mm512_set1_ps(ys[r].d));
                    let s = _mm512_sub_epi32(isum[r], sum128);
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), dd, acc[r]);
                }
            }
            store(acc, |o, v| _mm512_storeu_ps(o.as_mut_ptr(), v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    const TYPES: [GgmlDType; 4] = [GgmlDType::Q4K, GgmlDType::Q6K, GgmlDType::Q8_0, GgmlDType::Q5_0];

    fn product_at(level: Level, q: &QTensor, x: &Tensor) -> Vec<f32> {
        let (m, k) = x.dims2().unwrap();
        let n = q.shape().dims2().unwrap().0;
        let x = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        product(level, q.dtype(), &q.data().unwrap(), &x, m, n, k).expect("path applies")
    }

    /// Inputs as wide as a multiple of both block sizes, and for the 32-value types one that is not a
    /// multiple of 256 (qwen2.5-0.5B's 896).
    fn width(dtype: GgmlDType) -> usize {
        if matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K) {
            768
        } else {
            800
        }
    }

    /// Against the f32 product with the dequantized weight (only the activations' 8-bit rounding
    /// differs), at every SIMD level this CPU has, selected one by one, on both kernels (row kernel up to
    /// `MAX_ROWS` rows, panels above).
    #[test]
    fn matches_the_dequantized_product() {
        let dev = Device::Cpu;
        for level in level::levels_for_test("gemm::matches_the_dequantized_product") {
            for dtype in TYPES {
                let (n, k) = (37, width(dtype)); // n not a multiple of the column group or the panel
                let wf = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
                let q = QTensor::quantize(&wf, dtype).unwrap();
                let wd = q.dequantize(&dev).unwrap();
                for m in [1, 2, 5, MAX_ROWS + 1, 131] {
                    let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
                    let ours = Tensor::from_vec(product_at(level, &q, &x), (m, n), &dev).unwrap();
                    let exact = x.matmul(&wd.t().unwrap()).unwrap();
                    let diff = (&ours - &exact).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                    let scale = exact.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                    assert!(diff <= 2e-2 * scale, "{level:?} {dtype:?} m={m}: differs by {diff} (scale {scale})");
                }
            }
        }
    }

    /// Eight rows packed at once give the panel words of packing them one at a time.
    #[test]
    fn eight_rows_pack_as_one_at_a_time() {
        fn check<T: KBlock + WeightBlock>(level: Level, dtype: GgmlDType) {
            let wf = Tensor::randn(0f32, 1.0, (8, 2 * QK_K), &Device::Cpu).unwrap();
            let q = QTensor::quantize(&wf, dtype).unwrap();
            let data = q.data().unwrap();
            let w: &[T] = as_blocks(&data, 16).expect("8 rows of 2 blocks");
            for b in 0..2 {
                for j0 in [0, 8] {
                    let (mut one, mut eight) = (PanelBlock::ZERO, PanelBlock::ZERO);
                    for j in 0..8 {
                        w[2 * j + b].pack_values(&mut one, j0 + j);
                    }
                    T::pack_values8(level, std::array::from_fn(|j| &w[2 * j + b]), &mut eight, j0);
                    assert_eq!(one.q, eight.q, "{dtype:?} block {b} rows {j0}..");
                }
            }
        }
        for level in level::levels_for_test("gemm::eight_rows_pack_as_one_at_a_time") {
            check::<BlockQ4K>(level, GgmlDType::Q4K);
            check::<BlockQ6K>(level, GgmlDType::Q6K);
        }
    }

    /// The eight scales and mins unpacked at once are `scale_min_k4`'s, on pseudo-random blocks.
    #[test]
    fn q4k_scales_unpack_alike() {
        for seed in 0u32..4096 {
            let s: [u8; 12] =
                std::array::from_fn(|i| (seed.wrapping_mul(2654435761).rotate_left(i as u32 * 5) >> 3) as u8);
            let words = q4k_scales_mins(&s);
            let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
            for j in 0..8 {
                assert_eq!((bytes[j], bytes[8 + j]), scale_min_k4(j, &s), "sub-block {j} of {s:?}");
            }
        }
    }

    /// Every level computes the same integer sums, so their products agree to float rounding, on the row
    /// kernels and on the panels.
    #[test]
    fn levels_agree() {
        let dev = Device::Cpu;
        let levels = level::levels_for_test("gemm::levels_agree");
        for dtype in TYPES {
            let (n, k) = (21, width(dtype));
            let wf = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
            let q = QTensor::quantize(&wf, dtype).unwrap();
            let rows: &[usize] = if matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K) { &[1, 3, 40] } else { &[40] };
            for &m in rows {
                let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
                let base = product_at(levels[0], &q, &x);
                for &level in &levels[1..] {
                    for (i, (a, b)) in product_at(level, &q, &x).iter().zip(&base).enumerate() {
                        let close = (a - b).abs() <= 1e-4 * (1.0 + b.abs());
                        assert!(close, "{level:?} {dtype:?} m={m} output {i}: {a} vs {b}");
                    }
                }
            }
        }
    }

    /// A row's outputs do not depend on the other rows of the product (tails, tiles, batch size), on either
    /// kernel: the row kernel (up to `MAX_ROWS` rows) and the panels (longer products).
    #[test]
    fn a_row_is_the_same_alone_and_in_a_batch() {
        let dev = Device::Cpu;
        for level in level::levels_for_test("gemm::a_row_is_the_same_alone_and_in_a_batch") {
            for dtype in TYPES {
                let (n, k) = (20, width(dtype));
                let wf = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
                let q = QTensor::quantize(&wf, dtype).unwrap();
                let x = Tensor::randn(0f32, 1.0, (PANEL_TILE + 7, k), &dev).unwrap();
                let alone: Vec<Vec<f32>> =
                    (0..MAX_ROWS).map(|r| product_at(level, &q, &x.narrow(0, r, 1).unwrap())).collect();
                // Row counts whose tail is one, two or three rows past the groups of four.
                for m in [2, 3, 6, 7, MAX_ROWS] {
                    let few = product_at(level, &q, &x.narrow(0, 0, m).unwrap());
                    for (r, alone) in alone.iter().enumerate().take(m) {
                        assert_eq!(*alone, few[r * n..(r + 1) * n], "{level:?} {dtype:?} row {r} of {m}");
                    }
                }
                let all = product_at(level, &q, &x);
                for r in [0, 4, PANEL_TILE - 1, PANEL_TILE + 6] {
                    let start = r.min(PANEL_TILE + 7 - (MAX_ROWS + 1));
                    let window = product_at(level, &q, &x.narrow(0, start, MAX_ROWS + 1).unwrap());
                    let i = r - start;
                    assert_eq!(window[i * n..(i + 1) * n], all[r * n..(r + 1) * n], "{level:?} {dtype:?} row {r}");
                }
            }
        }
    }
}
