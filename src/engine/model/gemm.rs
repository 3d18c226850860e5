//! Quantized matrix × matrix products on the CPU for Q4_K and Q6_K weights (batched decode and prompt
//! steps), read straight from the compact GGUF blocks.
//!
//! Why not candle's `QMatMul` for these: on x86 candle 0.11 builds, at the first multi-row product, a tiled
//! copy of every Q4_K/Q6_K weight (scales unpacked to f32, 1.33–1.5× the bytes) and keeps it beside the
//! original blocks for the life of the model: the 1.5B model's peak RSS was 2.39 GB against llama.cpp's
//! 1.84, and 1.33 GB without that copy. Here nothing is stored twice; weights are unpacked per call into
//! small buffers:
//!
//! - up to `MAX_ROWS` rows (batched decode, bound by reading the weights): a weight row is unpacked once
//!   per call into bytes 0..63 and one 16-bit scale per 16 values, the same for both types, and the inner
//!   loop is `maddubs(weights, activations)` then `madd` with the scales, a row at a time;
//! - more rows (prompt steps, bound by the multiplies): each work item packs 16 weight rows into two
//!   interleaved panels once and runs up to `PANEL_TILE` activation rows past them, one `maddubs` against
//!   4 broadcast activation values serving 8 weight rows, and a whole scale group summed in 16 bits before
//!   its one `madd` (about half the multiplies of the row kernel).
//!
//! Each output is computed from its own weight row and activation row only, in a fixed order for each
//! kernel, so a sequence's numbers do not depend on what else is in the batch.

use anyhow::Result;
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};
use half::f16;

use super::gemv::SendPtr;

const QK_K: usize = 256;
/// Products with up to this many rows take the row kernel, longer ones the panels. Batched decode (a few
/// rows) is bound by reading the weights, which the row kernel reads once per call without the panels'
/// packing work (batch 4 gives 2.4× batch 1's summed tokens/s on the 1.5B model); a prompt step has
/// enough rows to pay for packing.
pub const MAX_ROWS: usize = 16;
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

/// One weight block ready for the inner loop: value i is `d · scale[i / 16] · q[i] + corr[i / 16]`-style,
/// exactly: `Σ w·x = d·dx·Σ scale·q·qx + dx·Σ_j corr[j]·Σ_{16 values of group j} qx`.
#[repr(C, align(64))]
struct Unpacked {
    q: [u8; QK_K],
    /// The scale of each group of 16 values, repeated 8 times: lane l of 32-value chunk c is
    /// `scale[2c + l / 8]`, which is what `madd` needs after `maddubs` summed pairs of values.
    scales: [[i16; 16]; QK_K / 32],
    corr: [f32; 16],
    d: f32,
}

impl Unpacked {
    const ZERO: Unpacked = Unpacked { q: [0; QK_K], scales: [[0; 16]; QK_K / 32], corr: [0.0; 16], d: 0.0 };
}

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
    /// How many 4-value `maddubs` results can be summed in 16 bits before the `madd` with the scales
    /// (a pair of products is at most 2·15·128 for Q4_K, 2·63·128 for Q6_K).
    const MADD_CHUNKS: usize;
    fn unpack(&self, out: &mut Unpacked);
}

impl KBlock for BlockQ4K {
    const GROUP: usize = 32;
    const MADD_CHUNKS: usize = 8;
    fn unpack(&self, out: &mut Unpacked) {
        let d = self.d.to_f32();
        let dmin = self.dmin.to_f32();
        for chunk in 0..4 {
            let qs = &self.qs[chunk * 32..chunk * 32 + 32];
            for j in 0..32 {
                out.q[chunk * 64 + j] = qs[j] & 0x0F;
                out.q[chunk * 64 + 32 + j] = qs[j] >> 4;
            }
        }
        for sub in 0..8 {
            let (sc, mn) = scale_min_k4(sub, &self.scales);
            out.scales[sub] = [sc as i16; 16];
            out.corr[2 * sub] = -dmin * mn as f32;
            out.corr[2 * sub + 1] = -dmin * mn as f32;
        }
        out.d = d;
    }
}

/// ggml's `get_scale_min_k4`: the 6-bit scale and min of sub-block `j` of a Q4_K/Q5_K block.
fn scale_min_k4(j: usize, s: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (s[j] & 63, s[j + 4] & 63)
    } else {
        ((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4), (s[j + 4] >> 4) | ((s[j] >> 6) << 4))
    }
}

impl KBlock for BlockQ6K {
    const GROUP: usize = 16;
    const MADD_CHUNKS: usize = 2;
    fn unpack(&self, out: &mut Unpacked) {
        let d = self.d.to_f32();
        // ggml's `dequantize_row_q6_K`: two halves of 128 values, each from 64 low-nibble bytes and 32 bytes
        // of high bit pairs; values are stored + 32, which `corr` takes back.
        for half in 0..2 {
            let ql = &self.ql[half * 64..half * 64 + 64];
            let qh = &self.qh[half * 32..half * 32 + 32];
            let q = &mut out.q[half * 128..half * 128 + 128];
            for l in 0..32 {
                q[l] = (ql[l] & 0x0F) | ((qh[l] & 3) << 4);
                q[l + 32] = (ql[l + 32] & 0x0F) | (((qh[l] >> 2) & 3) << 4);
                q[l + 64] = (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4);
                q[l + 96] = (ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4);
            }
        }
        for c in 0..8 {
            let (a, b) = (self.scales[2 * c] as i16, self.scales[2 * c + 1] as i16);
            out.scales[c] = [a, a, a, a, a, a, a, a, b, b, b, b, b, b, b, b];
        }
        for (corr, &s) in out.corr.iter_mut().zip(&self.scales) {
            *corr = -32.0 * d * s as f32;
        }
        out.d = d;
    }
}

/// ggml's `quantize_row_q8_K` (scale from the value of largest magnitude, −128 at that value, clamped to
/// 127), with the group sums scaled for `Unpacked::corr`.
fn quantize_row(x: &[f32], out: &mut [ActBlock]) {
    for (xb, y) in x.chunks_exact(QK_K).zip(out) {
        let max = xb.iter().copied().fold(0f32, |m, v| if v.abs() > m.abs() { v } else { m });
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

/// `x @ wᵀ` for `x`: `[.., k]` f32 on the CPU, `w` Q4_K or Q6_K; `None` when this path does not apply.
pub fn forward(w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    let Some(level) = simd::level() else { return Ok(None) };
    let types = matches!(w.dtype(), GgmlDType::Q4K | GgmlDType::Q6K);
    if !types || !x.device().is_cpu() || x.dtype() != DType::F32 {
        return Ok(None);
    }
    let dims = x.dims().to_vec();
    let Some(&k) = dims.last() else { return Ok(None) };
    let Ok((n, wk)) = w.shape().dims2() else { return Ok(None) };
    if wk != k || k % QK_K != 0 || x.elem_count() == 0 {
        return Ok(None);
    }
    let m = x.elem_count() / k;
    let x = x.flatten_all()?.to_vec1::<f32>()?;
    let out = match w.dtype() {
        GgmlDType::Q4K => run::<BlockQ4K>(level, &w.data()?, &x, m, n, k),
        GgmlDType::Q6K => run::<BlockQ6K>(level, &w.data()?, &x, m, n, k),
        _ => None,
    };
    let Some(out) = out else { return Ok(None) };
    let mut shape = dims;
    *shape.last_mut().expect("checked above") = n;
    Ok(Some(Tensor::from_vec(out, shape, &candle_core::Device::Cpu)?))
}

fn run<T: KBlock>(level: simd::Level, data: &[u8], x: &[f32], m: usize, n: usize, k: usize) -> Option<Vec<f32>> {
    let blocks = k / QK_K;
    if data.len() != n * blocks * std::mem::size_of::<T>() || data.as_ptr() as usize % std::mem::align_of::<T>() != 0 {
        return None;
    }
    // SAFETY: candle stores CPU quantized tensors as a `Vec` of `#[repr(C)]` GGUF blocks, which `T` mirrors;
    // length and alignment are checked above, and `data` outlives the slice.
    let w: &[T] = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const T, n * blocks) };

    let mut act: Vec<ActBlock> = Vec::with_capacity(m * blocks);
    // SAFETY: `ActBlock` is plain numbers; every block is written by `quantize_row` below.
    unsafe { act.set_len(m * blocks) };
    for (xr, ar) in x.chunks_exact(k).zip(act.chunks_exact_mut(blocks)) {
        quantize_row(xr, ar);
    }

    let mut out = vec![0f32; m * n];
    if m > MAX_ROWS {
        run_panels(w, &act, &mut out, m, n, blocks);
        return Some(out);
    }
    let out_ptr = SendPtr(out.as_mut_ptr());
    let groups = n.div_ceil(COL_GROUP);
    candle_core::utils::barrier_pool().execute_chunked(groups, |items| {
        let out = out_ptr;
        let mut row: Vec<Unpacked> = Vec::with_capacity(blocks);
        // SAFETY: plain numbers, each block written by `unpack` before it is read.
        unsafe { row.set_len(blocks) };
        for group in items {
            for col in group * COL_GROUP..((group + 1) * COL_GROUP).min(n) {
                for (b, u) in w[col * blocks..(col + 1) * blocks].iter().zip(row.iter_mut()) {
                    b.unpack(u);
                }
                let a = |r: usize| &act[r * blocks..(r + 1) * blocks];
                // SAFETY (writes): each (row, col) belongs to exactly one item; `out` outlives the pool call.
                let put = |r: usize, v: f32| unsafe { *out.0.add(r * n + col) = v };
                let mut r = 0;
                while r + 4 <= m {
                    let d = simd::dot(level, &row, [a(r), a(r + 1), a(r + 2), a(r + 3)]);
                    for (i, v) in d.into_iter().enumerate() {
                        put(r + i, v);
                    }
                    r += 4;
                }
                for r in r..m {
                    put(r, simd::dot(level, &row, [a(r)])[0]);
                }
            }
        }
    });
    Some(out)
}

/// Weight rows in one panel: one 256-bit register holds 4 consecutive values of each.
const PANEL: usize = 8;
/// Activation rows per panel work item: the item's panels (16 weight rows, up to 217 KB for the widest
/// input) are built once and stay in L2 while these rows stream past them.
const PANEL_TILE: usize = 256;

/// One 256-value block of `PANEL` weight rows, laid out for broadcast activations: `q[c]` holds values
/// 4c..4c+4 of every row (row j at bytes 4j..4j+4), so one `maddubs` against 4 activation values
/// broadcast serves 8 rows, and the 16-bit results of a whole scale group can be summed before one `madd`
/// with the group's scales (`scales[g]`: each row's scale twice, the pair `madd` multiplies).
#[repr(C, align(32))]
struct PanelBlock {
    q: [[u8; 32]; QK_K / 4],
    scales: [[i16; 16]; 16],
    corr: [[f32; PANEL]; 16],
    d: [f32; PANEL],
}

impl PanelBlock {
    const ZERO: PanelBlock =
        PanelBlock { q: [[0; 32]; QK_K / 4], scales: [[0; 16]; 16], corr: [[0.0; PANEL]; 16], d: [0.0; PANEL] };

    /// Row `j` of the panel from an unpacked block, its groups `T::GROUP` values wide.
    fn set_row<T: KBlock>(&mut self, j: usize, u: &Unpacked) {
        for (c, q) in self.q.iter_mut().enumerate() {
            q[4 * j..4 * j + 4].copy_from_slice(&u.q[4 * c..4 * c + 4]);
        }
        let per16 = T::GROUP / 16;
        for g in 0..QK_K / T::GROUP {
            let i = g * per16;
            let sc = u.scales[i / 2][8 * (i % 2)];
            self.scales[g][2 * j] = sc;
            self.scales[g][2 * j + 1] = sc;
            // Q4_K's two halves of a 32-value group share one min, so either half's correction serves.
            self.corr[g][j] = u.corr[i];
        }
        self.d[j] = u.d;
    }
}

/// Prompt steps: each work item packs 16 weight rows into two panels once, then runs its tile of
/// activation rows three at a time against them. The integer sums are the row kernel's exactly; only the
/// order of the f32 additions differs.
fn run_panels<T: KBlock>(w: &[T], act: &[ActBlock], out: &mut [f32], m: usize, n: usize, blocks: usize) {
    let out_ptr = SendPtr(out.as_mut_ptr());
    let groups = n.div_ceil(2 * PANEL);
    let tiles = m.div_ceil(PANEL_TILE);
    candle_core::utils::barrier_pool().execute_chunked(tiles * groups, |items| {
        let out = out_ptr;
        let mut panels: Vec<PanelBlock> = (0..2 * blocks).map(|_| PanelBlock::ZERO).collect();
        let mut u = Box::new(Unpacked::ZERO);
        let mut packed = usize::MAX;
        for item in items {
            // Group-major items: consecutive items of a worker reuse the panels it packed.
            let (group, tile) = (item / tiles, item % tiles);
            if group != packed {
                for j in 0..2 * PANEL {
                    let col = group * 2 * PANEL + j;
                    let (half, lane) = (j / PANEL, j % PANEL);
                    for b in 0..blocks {
                        let p = &mut panels[half * blocks + b];
                        if col < n {
                            w[col * blocks + b].unpack(&mut u);
                        } else {
                            // Rows past n: zeros, whose outputs are dropped below.
                            *u = Unpacked::ZERO;
                        }
                        p.set_row::<T>(lane, &u);
                    }
                }
                packed = group;
            }
            let (p0, p1) = panels.split_at(blocks);
            let a = |r: usize| &act[r * blocks..(r + 1) * blocks];
            let cols = group * 2 * PANEL..((group + 1) * 2 * PANEL).min(n);
            // SAFETY (writes): each (row, col) belongs to exactly one item; `out` outlives the pool call.
            let put = |r: usize, v: &[[f32; PANEL]; 2]| {
                for col in cols.clone() {
                    let j = col - cols.start;
                    unsafe { *out.0.add(r * n + col) = v[j / PANEL][j % PANEL] };
                }
            };
            let rows = tile * PANEL_TILE..((tile + 1) * PANEL_TILE).min(m);
            let mut r = rows.start;
            while r + 3 <= rows.end {
                let v = simd::panel::<T, 3>([p0, p1], [a(r), a(r + 1), a(r + 2)]);
                for (i, v) in v.iter().enumerate() {
                    put(r + i, v);
                }
                r += 3;
            }
            for r in r..rows.end {
                put(r, &simd::panel::<T, 1>([p0, p1], [a(r)])[0]);
            }
        }
    });
}

mod simd {
    use super::{ActBlock, KBlock, PanelBlock, Unpacked};

    #[derive(Clone, Copy, Debug, PartialEq)]
    pub enum Level {
        Avx2,
        Avx512,
    }

    /// The widest level this CPU has.
    pub fn level() -> Option<Level> {
        available().last().copied()
    }

    /// Every level this CPU can run, narrowest first (the tests run each).
    pub fn available() -> &'static [Level] {
        static LEVELS: std::sync::OnceLock<Vec<Level>> = std::sync::OnceLock::new();
        LEVELS.get_or_init(|| {
            let mut levels = Vec::new();
            #[cfg(target_arch = "x86_64")]
            {
                if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                    levels.push(Level::Avx2);
                    if is_x86_feature_detected!("avx512bw") && is_x86_feature_detected!("avx512f") {
                        levels.push(Level::Avx512);
                    }
                }
            }
            levels
        })
    }

    /// One unpacked weight row against `R` activation rows.
    #[inline]
    pub fn dot<const R: usize>(level: Level, w: &[Unpacked], a: [&[ActBlock]; R]) -> [f32; R] {
        assert!(a.iter().all(|a| a.len() == w.len()));
        // SAFETY: `level` came from `available()`, which checked the CPU features; lengths checked above.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match level {
                Level::Avx2 => x86::dot_avx2(w, a),
                Level::Avx512 => x86::dot_avx512(w, a),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (level, w, a);
            unreachable!("level() is None off x86_64")
        }
    }

    /// `R` activation rows against two panels (16 weight rows). AVX2 only: every CPU `level()` accepts has it.
    #[inline]
    pub fn panel<T: KBlock, const R: usize>(p: [&[PanelBlock]; 2], a: [&[ActBlock]; R]) -> [[[f32; 8]; 2]; R] {
        assert!(a.iter().all(|a| a.len() == p[0].len()) && p[1].len() == p[0].len());
        assert!(level().is_some(), "no SIMD level on this CPU");
        // SAFETY: `level()` found AVX2 and FMA; lengths checked above.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            match (T::GROUP, T::MADD_CHUNKS) {
                (32, 8) => x86::panel_avx2::<8, 8, R>(p, a),
                (16, 2) => x86::panel_avx2::<4, 2, R>(p, a),
                other => unreachable!("no panel kernel for (group, madd chunks) {other:?}"),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            let _ = (p, a);
            unreachable!("level() is None off x86_64")
        }
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        use super::{ActBlock, PanelBlock, Unpacked};

        /// `G`: 4-value chunks per scale group; `M`: chunks whose 16-bit sums are added before each `madd`.
        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn panel_avx2<const G: usize, const M: usize, const R: usize>(
            p: [&[PanelBlock]; 2],
            a: [&[ActBlock]; R],
        ) -> [[[f32; 8]; 2]; R] {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            for b in 0..p[0].len() {
                let w = [p[0].get_unchecked(b), p[1].get_unchecked(b)];
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [[_mm256_setzero_si256(); 2]; R];
                for g in 0..64 / G {
                    let sc = w.map(|w| _mm256_load_si256(w.scales[g].as_ptr() as *const __m256i));
                    for h in 0..G / M {
                        let mut s16 = [[_mm256_setzero_si256(); 2]; R];
                        for c in 0..M {
                            let chunk = g * G + h * M + c;
                            let wq = w.map(|w| _mm256_load_si256(w.q[chunk].as_ptr() as *const __m256i));
                            for r in 0..R {
                                let x = _mm256_set1_epi32(
                                    (ys[r].qs.as_ptr().add(4 * chunk) as *const i32).read_unaligned(),
                                );
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
                    let y = ys[r];
                    let dy = _mm256_set1_ps(y.d);
                    for q in 0..2 {
                        let dd = _mm256_mul_ps(_mm256_load_ps(w[q].d.as_ptr()), dy);
                        let mut v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r][q]), dd, acc[r][q]);
                        for g in 0..64 / G {
                            let s = if G == 8 { y.sums32[g] } else { y.sums[g] };
                            v = _mm256_fmadd_ps(_mm256_load_ps(w[q].corr[g].as_ptr()), _mm256_set1_ps(s), v);
                        }
                        acc[r][q] = v;
                    }
                }
            }
            let mut out = [[[0f32; 8]; 2]; R];
            for r in 0..R {
                for q in 0..2 {
                    _mm256_storeu_ps(out[r][q].as_mut_ptr(), acc[r][q]);
                }
            }
            out
        }

        #[target_feature(enable = "avx2,fma")]
        pub unsafe fn dot_avx2<const R: usize>(w: &[Unpacked], a: [&[ActBlock]; R]) -> [f32; R] {
            let mut acc = [_mm256_setzero_ps(); R];
            for (b, wb) in w.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [_mm256_setzero_si256(); R];
                for c in 0..8 {
                    let wq = _mm256_load_si256(wb.q.as_ptr().add(32 * c) as *const __m256i);
                    let sc = _mm256_load_si256(wb.scales[c].as_ptr() as *const __m256i);
                    for r in 0..R {
                        let yq = _mm256_load_si256(ys[r].qs.as_ptr().add(32 * c) as *const __m256i);
                        isum[r] = _mm256_add_epi32(isum[r], _mm256_madd_epi16(_mm256_maddubs_epi16(wq, yq), sc));
                    }
                }
                let c0 = _mm256_load_ps(wb.corr.as_ptr());
                let c1 = _mm256_load_ps(wb.corr.as_ptr().add(8));
                for r in 0..R {
                    let y = ys[r];
                    acc[r] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[r]), _mm256_set1_ps(wb.d * y.d), acc[r]);
                    acc[r] = _mm256_fmadd_ps(c0, _mm256_load_ps(y.sums.as_ptr()), acc[r]);
                    acc[r] = _mm256_fmadd_ps(c1, _mm256_load_ps(y.sums.as_ptr().add(8)), acc[r]);
                }
            }
            acc.map(|v| {
                let s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
                let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
                _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
            })
        }

        /// The same sums 64 values at a time: two 32-value chunks' scales are adjacent in `Unpacked`.
        #[target_feature(enable = "avx512f,avx512bw")]
        pub unsafe fn dot_avx512<const R: usize>(w: &[Unpacked], a: [&[ActBlock]; R]) -> [f32; R] {
            let mut acc = [_mm512_setzero_ps(); R];
            for (b, wb) in w.iter().enumerate() {
                let ys = a.map(|a| a.get_unchecked(b));
                let mut isum = [_mm512_setzero_si512(); R];
                for c in 0..4 {
                    let wq = _mm512_load_si512(wb.q.as_ptr().add(64 * c) as *const _);
                    let sc = _mm512_load_si512(wb.scales[2 * c].as_ptr() as *const _);
                    for r in 0..R {
                        let yq = _mm512_load_si512(ys[r].qs.as_ptr().add(64 * c) as *const _);
                        isum[r] = _mm512_add_epi32(isum[r], _mm512_madd_epi16(_mm512_maddubs_epi16(wq, yq), sc));
                    }
                }
                let corr = _mm512_load_ps(wb.corr.as_ptr());
                for r in 0..R {
                    let y = ys[r];
                    acc[r] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum[r]), _mm512_set1_ps(wb.d * y.d), acc[r]);
                    acc[r] = _mm512_fmadd_ps(corr, _mm512_load_ps(y.sums.as_ptr()), acc[r]);
                }
            }
            acc.map(|v| _mm512_reduce_add_ps(v))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn product(level: simd::Level, q: &QTensor, x: &Tensor) -> Vec<f32> {
        let (m, k) = x.dims2().unwrap();
        let n = q.shape().dims2().unwrap().0;
        let data = q.data().unwrap();
        let x = x.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        match q.dtype() {
            GgmlDType::Q4K => run::<BlockQ4K>(level, &data, &x, m, n, k),
            GgmlDType::Q6K => run::<BlockQ6K>(level, &data, &x, m, n, k),
            _ => None,
        }
        .expect("path applies")
    }

    /// Against the f32 product with the dequantized weight (only the activations' 8-bit rounding
    /// differs), at every SIMD level this CPU has.
    #[test]
    fn matches_the_dequantized_product() {
        let dev = Device::Cpu;
        let (n, k) = (37, 768); // n not a multiple of the column group, k three blocks
        let wf = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        for &level in simd::available() {
            for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
                let q = QTensor::quantize(&wf, dtype).unwrap();
                let wd = q.dequantize(&dev).unwrap();
                for m in [1, 2, 5, 131] {
                    let x = Tensor::randn(0f32, 1.0, (m, k), &dev).unwrap();
                    let ours = Tensor::from_vec(product(level, &q, &x), (m, n), &dev).unwrap();
                    let exact = x.matmul(&wd.t().unwrap()).unwrap();
                    let diff = (&ours - &exact).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                    let scale = exact.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                    assert!(diff <= 2e-2 * scale, "{level:?} {dtype:?} m={m}: differs by {diff} (scale {scale})");
                }
            }
        }
    }

    /// A row's outputs do not depend on the other rows of the product (tails, tiles, batch size), on either
    /// kernel: the row kernel (up to `MAX_ROWS` rows) and the panels (longer products).
    #[test]
    fn a_row_is_the_same_alone_and_in_a_batch() {
        let dev = Device::Cpu;
        let (n, k) = (20, 512);
        let wf = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        for &level in simd::available() {
            for dtype in [GgmlDType::Q4K, GgmlDType::Q6K] {
                let q = QTensor::quantize(&wf, dtype).unwrap();
                let x = Tensor::randn(0f32, 1.0, (PANEL_TILE + 7, k), &dev).unwrap();
                let few = product(level, &q, &x.narrow(0, 0, MAX_ROWS).unwrap());
                for r in [0, 3, MAX_ROWS - 1] {
                    let alone = product(level, &q, &x.narrow(0, r, 1).unwrap());
                    assert_eq!(alone, few[r * n..(r + 1) * n], "{level:?} {dtype:?} row {r} of {MAX_ROWS}");
                }
                let all = product(level, &q, &x);
                for r in [0, 4, PANEL_TILE - 1, PANEL_TILE + 6] {
                    let start = r.min(PANEL_TILE + 7 - (MAX_ROWS + 1));
                    let window = product(level, &q, &x.narrow(0, start, MAX_ROWS + 1).unwrap());
                    let i = r - start;
                    assert_eq!(window[i * n..(i + 1) * n], all[r * n..(r + 1) * n], "{level:?} {dtype:?} row {r}");
                }
            }
        }
    }
}
