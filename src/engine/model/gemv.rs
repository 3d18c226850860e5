//! Quantized matrix × few-rows products on the CPU: decode steps (one position per sequence, a handful of
//! sequences). Each weight row is read once per call and dotted with every activation row while it is in L1,
//! on the compact GGUF blocks, through candle's SIMD dot products and its persistent thread pool.
//!
//! Why not `QMatMul::forward` for these shapes: candle 0.11 tiles Q4_K weights into a 16-row layout with the
//! 6-bit scales unpacked to f32 (1.33× the bytes, allocated beside the original blocks) and streams that at
//! every decode step, and its generic path reads the whole weight once per activation row. Decode is bound
//! by reading the weights, so reading the compact blocks once per step is what pays.

use anyhow::Result;
use candle_core::quantized::k_quants::{BlockQ4K, BlockQ5K, BlockQ6K, GgmlType};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{DType, Tensor};

use super::simd::{self as level, Level};
pub(super) use legacy::{LegacyBlock, Q5_0, Q8_0};

/// `x @ wᵀ` for `x`: `[.., k]` f32 on the CPU; `None` when this path does not apply (device, dtype, shape),
/// so the caller falls back to candle. Meant for decode steps: products with many rows are faster on
/// kernels that reuse each unpacked weight block across rows (`gemm` for Q4_K and Q6_K). Each output is one
/// dot product, so a row gets the same numbers whatever else is in the batch.
pub(crate) fn forward(w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    forward_at(level::best(), w, x)
}

/// `forward` with the Q8_0/Q5_0 kernels at `level` (none: those types fall back to candle).
fn forward_at(level: Option<Level>, w: &QTensor, x: &Tensor) -> Result<Option<Tensor>> {
    if !x.device().is_cpu() || x.dtype() != DType::F32 {
        return Ok(None);
    }
    let dims = x.dims().to_vec();
    let Some(&k) = dims.last() else { return Ok(None) };
    let m = x.elem_count() / k.max(1);
    if m == 0 {
        return Ok(None);
    }
    let Ok((n, wk)) = w.shape().dims2() else { return Ok(None) };
    if wk != k {
        return Ok(None);
    }
    // Q4_K and Q6_K go to `gemm` (`layers::Weight`), single rows included; they come here only where its
    // row kernel does not apply (a width that is not a multiple of 256).
    if m > 1 && matches!(w.dtype(), GgmlDType::Q4K | GgmlDType::Q6K) {
        return Ok(None);
    }
    let out = match w.dtype() {
        GgmlDType::Q4K => run::<BlockQ4K>(None, w, x, m, n, k)?,
        GgmlDType::Q5K => run::<BlockQ5K>(None, w, x, m, n, k)?,
        GgmlDType::Q6K => run::<BlockQ6K>(None, w, x, m, n, k)?,
        GgmlDType::Q8_0 if level.is_some() => run::<Q8_0>(level, w, x, m, n, k)?,
        GgmlDType::Q5_0 if level.is_some() => run::<Q5_0>(level, w, x, m, n, k)?,
        _ => None,
    };
    let Some(out) = out else { return Ok(None) };
    let mut shape = dims;
    *shape.last_mut().expect("checked above") = n;
    Ok(Some(Tensor::from_vec(out, shape, x.device())?))
}

/// Whether decode steps on this weight type avoid a re-quantization at load: Q5_0 has a kernel here, so
/// its files keep their compact blocks (0.69 bytes a weight instead of Q8_0's 1.06).
pub(crate) fn keeps_compact(dtype: GgmlDType) -> bool {
    dtype == GgmlDType::Q5_0 && level::best().is_some()
}

/// A weight block type with dot products against its activation blocks. Four weight rows at a time give
/// four independent accumulator chains and load each activation block once for the four. `level`: the
/// SIMD level of this crate's kernels (`None` for candle's, which are chosen at compile time).
trait RowDot: Sized + Sync {
    const BLOCK: usize;
    type Act: Sync;
    fn quantize_act(x: &[f32]) -> Vec<Self::Act>;
    fn act_block() -> usize;
    fn dot(level: Option<Level>, k: usize, w: &[Self], a: &[Self::Act]) -> f32;
    fn dot4(level: Option<Level>, k: usize, w: [&[Self]; 4], a: &[Self::Act]) -> [f32; 4] {
        w.map(|w| Self::dot(level, k, w, a))
    }
    /// Four weight rows with two activation rows: a kernel that unpacks its weights does it once for both.
    fn dot4x2(level: Option<Level>, k: usize, w: [&[Self]; 4], a0: &[Self::Act], a1: &[Self::Act]) -> [[f32; 4]; 2] {
        [Self::dot4(level, k, w, a0), Self::dot4(level, k, w, a1)]
    }
}

/// candle's k-quant blocks: its AVX2 dot products against Q8_K activations.
macro_rules! candle_row_dot {
    ($($t:ty),*) => {$(
        impl RowDot for $t {
            const BLOCK: usize = <$t as GgmlType>::BLCK_SIZE;
            type Act = <$t as GgmlType>::VecDotType;
            fn quantize_act(x: &[f32]) -> Vec<Self::Act> {
                let mut q = vec![<Self::Act as GgmlType>::zeros(); x.len() / Self::act_block()];
                <Self::Act as GgmlType>::from_float(x, &mut q);
                q
            }
            fn act_block() -> usize {
                <Self::Act as GgmlType>::BLCK_SIZE
            }
            fn dot(_: Option<Level>, k: usize, w: &[Self], a: &[Self::Act]) -> f32 {
                <$t as GgmlType>::vec_dot(k, w, a)
            }
        }
    )*};
}
candle_row_dot!(BlockQ4K, BlockQ5K, BlockQ6K);

fn run<T: RowDot>(
    level: Option<Level>,
    w: &QTensor,
    x: &Tensor,
    m: usize,
    n: usize,
    k: usize,
) -> Result<Option<Vec<f32>>> {
    if !k.is_multiple_of(T::BLOCK) || !k.is_multiple_of(T::act_block()) {
        return Ok(None);
    }
    let data = w.data()?;
    let blocks = k / T::BLOCK;
    if data.len() != n * blocks * std::mem::size_of::<T>()
        || !(data.as_ptr() as usize).is_multiple_of(std::mem::align_of::<T>())
    {
        return Ok(None);
    }
    // SAFETY: candle stores CPU quantized tensors as a `Vec` of `#[repr(C)]` GGUF blocks, which `T` is or
    // mirrors; length and alignment are checked above, and the borrow of `data` outlives the slice.
    let w: &[T] = unsafe { std::slice::from_raw_parts(data.as_ptr() as *const T, n * blocks) };
    let x = x.flatten_all()?.to_vec1::<f32>()?;
    let xq: Vec<Vec<T::Act>> = x.chunks_exact(k).map(T::quantize_act).collect();
    let mut out = vec![0f32; m * n];
    let out_ptr = SendPtr(out.as_mut_ptr());
    let row = |col: usize| &w[col * blocks..(col + 1) * blocks];
    candle_core::utils::barrier_pool().execute_chunked(n.div_ceil(4), |groups| {
        let out = out_ptr;
        for g in groups {
            let c0 = g * 4;
            if c0 + 4 <= n {
                let ws = [row(c0), row(c0 + 1), row(c0 + 2), row(c0 + 3)];
                // SAFETY: columns c0..c0 + 4 of row r < m are in the m × n output and belong to this group
                // only, so no two threads write them; `out` outlives the pool call.
                let put = |r: usize, d: [f32; 4]| unsafe {
                    std::ptr::copy_nonoverlapping(d.as_ptr(), out.0.add(r * n + c0), 4)
                };
                let mut r = 0;
                while r + 2 <= m {
                    let [d0, d1] = T::dot4x2(level, k, ws, &xq[r], &xq[r + 1]);
                    put(r, d0);
                    put(r + 1, d1);
                    r += 2;
                }
                if r < m {
                    put(r, T::dot4(level, k, ws, &xq[r]));
                }
            } else {
                for col in c0..n {
                    for (r, a) in xq.iter().enumerate() {
                        // SAFETY: as for `put` above: (r, col) is in the output and this group's alone.
                        unsafe { *out.0.add(r * n + col) = T::dot(level, k, row(col), a) };
                    }
                }
            }
        }
    });
    Ok(Some(out))
}

/// An output buffer that pool tasks write disjoint parts of.
#[derive(Clone, Copy)]
pub(super) struct SendPtr(pub(super) *mut f32);
// SAFETY: a `SendPtr` is only created over an output buffer that outlives the pool call it is moved into,
// and every user writes a set of elements that no other task touches (each says so where it writes), so
// sharing the pointer between threads makes no data race.
unsafe impl Send for SendPtr {}
// SAFETY: as for `Send`: tasks only write disjoint elements through it.
unsafe impl Sync for SendPtr {}

/// Q8_0 and Q5_0 (32-value blocks, one f16 scale) against Q8_0 activations, at each SIMD level. candle 0.11
/// has no SIMD Q5_0 dot product, and its Q8_0 one runs one accumulator chain, a third of what the core can
/// do. `gemm` packs the same blocks into panels for prompt steps (`LegacyBlock`).
mod legacy {
    use half::f16;

    use super::super::simd::{Isa, Level};
    use super::RowDot;

    pub(super) const QK: usize = 32;

    /// GGUF `block_q8_0`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub(crate) struct Q8_0 {
        d: f16,
        qs: [i8; QK],
    }

    /// GGUF `block_q5_0`: low nibbles in `qs` (value j in byte j % 16, high half for j ≥ 16), fifth bits in `qh`.
    #[repr(C)]
    #[derive(Clone, Copy)]
    pub(crate) struct Q5_0 {
        d: f16,
        qh: [u8; 4],
        qs: [u8; QK / 2],
    }
    const _: () = assert!(std::mem::size_of::<Q8_0>() == 34 && std::mem::size_of::<Q5_0>() == 22);

    /// A 32-value block with one scale, as signed values (what `gemm`'s panels hold).
    pub(crate) trait LegacyBlock: Sync {
        fn values(&self) -> [i8; QK];
        fn scale(&self) -> f32;
    }

    impl LegacyBlock for Q8_0 {
        fn values(&self) -> [i8; QK] {
            self.qs
        }
        fn scale(&self) -> f32 {
            self.d.to_f32()
        }
    }

    impl LegacyBlock for Q5_0 {
        /// ggml's `dequantize_row_q5_0` without the scale: the nibble and the fifth bit, minus 16.
        fn values(&self) -> [i8; QK] {
            let bits = u32::from_le_bytes(self.qh);
            std::array::from_fn(|j| {
                let nibble = (self.qs[j % 16] >> (4 * (j / 16))) & 0x0F;
                let fifth = ((bits >> j) & 1) as u8;
                (nibble | (fifth << 4)) as i8 - 16
            })
        }
        fn scale(&self) -> f32 {
            self.d.to_f32()
        }
    }

    /// Round-to-nearest Q8_0, as ggml quantizes activations for these dot products.
    fn quantize_q8_0(x: &[f32]) -> Vec<Q8_0> {
        x.chunks_exact(QK)
            .map(|c| {
                let amax = c.iter().fold(0f32, |m, v| m.max(v.abs()));
                let d = amax / 127.0;
                let id = if d != 0.0 { 1.0 / d } else { 0.0 };
                let mut qs = [0i8; QK];
                for (q, v) in qs.iter_mut().zip(c) {
                    *q = (v * id).round() as i8;
                }
                Q8_0 { d: f16::from_f32(d), qs }
            })
            .collect()
    }

    macro_rules! legacy_row_dot {
        ($($t:ty),*) => {$(
            impl RowDot for $t {
                const BLOCK: usize = QK;
                type Act = Q8_0;
                fn quantize_act(x: &[f32]) -> Vec<Q8_0> {
                    quantize_q8_0(x)
                }
                fn act_block() -> usize {
                    QK
                }
                fn dot(level: Option<Level>, k: usize, w: &[Self], a: &[Q8_0]) -> f32 {
                    // One row: the four-row kernel with the row repeated (only at the tail of an odd n).
                    Self::dot4(level, k, [w, w, w, w], a)[0]
                }
                fn dot4(level: Option<Level>, k: usize, w: [&[Self]; 4], a: &[Q8_0]) -> [f32; 4] {
                    let [d] = dot4xr(level, k, w, [a]);
                    d
                }
                fn dot4x2(level: Option<Level>, k: usize, w: [&[Self]; 4], a0: &[Q8_0], a1: &[Q8_0]) -> [[f32; 4]; 2] {
                    dot4xr(level, k, w, [a0, a1])
                }
            }
        )*};
    }
    legacy_row_dot!(Q8_0, Q5_0);

    /// Four weight rows against `R` activation rows, each weight block unpacked once for all of them.
    fn dot4xr<T: x86::Values, const R: usize>(
        level: Option<Level>,
        k: usize,
        w: [&[T]; 4],
        a: [&[Q8_0]; R],
    ) -> [[f32; 4]; R] {
        let level = level.expect("gemv::forward takes these types only with a SIMD level");
        assert!(w.iter().all(|w| w.len() * QK >= k) && a.iter().all(|a| a.len() * QK >= k));
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a `Level` exists only for levels `simd::available()` found on this CPU, and each arm runs
        // the kernel of that level's features; the lengths are checked above. (Plain AVX-512 has no 256-bit
        // instruction these need beyond AVX2.)
        unsafe {
            match level.isa() {
                Isa::Avx2 | Isa::Avx512 => x86::dot4xr_avx2(k / QK, w, a),
                Isa::AvxVnni => x86::dot4xr_avxvnni(k / QK, w, a),
                Isa::Avx512Vnni => x86::dot4xr_avx512vnni(k / QK, w, a),
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        unreachable!("no SIMD level off x86_64: {level:?} {} {}", w.len(), a.len())
    }

    #[cfg(target_arch = "x86_64")]
    mod x86 {
        use std::arch::x86_64::*;

        use super::{Q5_0, Q8_0};

        /// How a block type gives its 32 values as signed bytes, and its scale.
        pub(super) trait Values {
            /// # Safety
            /// The CPU has AVX2.
            unsafe fn values(&self) -> __m256i;
            fn scale(&self) -> half::f16;
        }

        impl Values for Q8_0 {
            #[inline(always)]
            unsafe fn values(&self) -> __m256i {
                _mm256_loadu_si256(self.qs.as_ptr() as *const __m256i)
            }
            #[inline(always)]
            fn scale(&self) -> half::f16 {
                self.d
            }
        }

        impl Values for Q5_0 {
            /// The values minus 16 (ggml's `bytes_from_nibbles_32` and `bytes_from_bits_32`): a value whose
            /// fifth bit is clear gets 0xF0 or-ed in, i.e. minus 16.
            #[inline(always)]
            unsafe fn values(&self) -> __m256i {
                let lo = _mm_loadu_si128(self.qs.as_ptr() as *const __m128i);
                let nibbles = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(lo, 4), lo), _mm256_set1_epi8(0x0F));
                let bits = u32::from_le_bytes(self.qh) as i32;
                let spread = _mm256_shuffle_epi8(
                    _mm256_set1_epi32(bits),
                    _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202, 0x0101010101010101, 0),
                );
                let set = _mm256_cmpeq_epi8(
                    _mm256_or_si256(spread, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe)),
                    _mm256_set1_epi64x(-1),
                );
                _mm256_or_si256(nibbles, _mm256_andnot_si256(set, _mm256_set1_epi8(0xF0u8 as i8)))
            }
            #[inline(always)]
            fn scale(&self) -> half::f16 {
                self.d
            }
        }

        #[inline(always)]
        unsafe fn hsum(x: __m256) -> f32 {
            let s = _mm_add_ps(_mm256_extractf128_ps(x, 1), _mm256_castps256_ps128(x));
            let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
            _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
        }

        #[inline]
        fn prefetch<T>(p: *const T) {
            // SAFETY: a prefetch is a hint; it does not fault on any address.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p as *const i8) }
        }

        /// How the sign-folded products become 32-bit sums: `madd` with ones (AVX2) or one `vpdpbusd`.
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum Sum {
            MaddOnes,
            AvxVnni,
            Avx512Vnni,
        }

        /// Four weight rows against `R` activation rows (ggml's `mul_sum_i8_pairs_float` per pair): four
        /// independent accumulator chains per activation row, each activation block loaded once for the
        /// four weight rows and each weight block unpacked (and sign-folded) once for the `R` activations.
        ///
        /// # Safety
        /// The CPU has AVX2, FMA and F16C, and the features of `S` (AVX-VNNI, or AVX-512 VNNI and VL);
        /// every row of `w` and `a` holds `blocks` blocks.
        #[inline(always)]
        unsafe fn dot4xr<T: Values, const R: usize, const S: u8>(
            blocks: usize,
            w: [&[T]; 4],
            a: [&[Q8_0]; R],
        ) -> [[f32; 4]; R] {
            let sum = [Sum::MaddOnes, Sum::AvxVnni, Sum::Avx512Vnni][S as usize];
            let ones = _mm256_set1_epi16(1);
            let mut acc = [[_mm256_setzero_ps(); 4]; R];
            for b in 0..blocks {
                let ys = a.map(|a| a.get_unchecked(b));
                let by = ys.map(|y| _mm256_loadu_si256(y.qs.as_ptr() as *const __m256i));
                for r in 0..4 {
                    // Row r of the group after next (the four rows of a group are adjacent), far enough
                    // ahead for memory latency: a row is a short stream (1–5 KB) that the hardware
                    // prefetcher does not lock on to before it ends. (The next group's was too close.)
                    prefetch(w[r].as_ptr().wrapping_add(b + 8 * blocks));
                    let x = w[r].get_unchecked(b);
                    let v = x.values();
                    let ax = _mm256_sign_epi8(v, v);
                    let dx = x.scale().to_f32();
                    for i in 0..R {
                        let sy = _mm256_sign_epi8(by[i], v);
                        let p = match sum {
                            Sum::MaddOnes => _mm256_madd_epi16(_mm256_maddubs_epi16(ax, sy), ones),
                            Sum::AvxVnni => _mm256_dpbusd_avx_epi32(_mm256_setzero_si256(), ax, sy),
                            Sum::Avx512Vnni => _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sy),
                        };
                        acc[i][r] =
                            _mm256_fmadd_ps(_mm256_set1_ps(dx * ys[i].d.to_f32()), _mm256_cvtepi32_ps(p), acc[i][r]);
                    }
                }
            }
            acc.map(|row| row.map(|v| hsum(v)))
        }

        /// # Safety
        /// The CPU has AVX2, FMA and F16C; every row of `w` and `a` holds `blocks` blocks.
        #[target_feature(enable = "avx2,fma,f16c")]
        pub(super) unsafe fn dot4xr_avx2<T: Values, const R: usize>(
            blocks: usize,
            w: [&[T]; 4],
            a: [&[Q8_0]; R],
        ) -> [[f32; 4]; R] {
            dot4xr::<T, R, 0>(blocks, w, a)
        }

        /// # Safety
        /// The CPU has AVX2, FMA, F16C and AVX-VNNI; every row of `w` and `a` holds `blocks` blocks.
        #[target_feature(enable = "avx2,fma,f16c,avxvnni")]
        pub(super) unsafe fn dot4xr_avxvnni<T: Values, const R: usize>(
            blocks: usize,
            w: [&[T]; 4],
            a: [&[Q8_0]; R],
        ) -> [[f32; 4]; R] {
            dot4xr::<T, R, 1>(blocks, w, a)
        }

        /// # Safety
        /// The CPU has AVX2, FMA, F16C and AVX-512 F, VL and VNNI; every row of `w` and `a` holds `blocks`
        /// blocks.
        #[target_feature(enable = "avx2,fma,f16c,avx512f,avx512vl,avx512vnni")]
        pub(super) unsafe fn dot4xr_avx512vnni<T: Values, const R: usize>(
            blocks: usize,
            w: [&[T]; 4],
            a: [&[Q8_0]; R],
        ) -> [[f32; 4]; R] {
            dot4xr::<T, R, 2>(blocks, w, a)
        }
    }

    #[cfg(not(target_arch = "x86_64"))]
    mod x86 {
        pub(super) trait Values {}
        impl Values for super::Q8_0 {}
        impl Values for super::Q5_0 {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::quantized::QMatMul;
    use candle_core::{Device, Module};

    /// The decode path gives candle's result for every dtype it takes, one row and a batch, with the
    /// Q8_0/Q5_0 kernels of every SIMD level this CPU has, selected one by one.
    #[test]
    fn matches_candle_matmul() {
        let dev = Device::Cpu;
        let (n, k) = (50, 512); // n % 4 != 0: the tail columns too
        let wf = Tensor::randn(0f32, 1.0, (n, k), &dev).unwrap();
        for level in level::levels_for_test("gemv::matches_candle_matmul") {
            for dtype in [GgmlDType::Q4K, GgmlDType::Q5K, GgmlDType::Q6K, GgmlDType::Q8_0, GgmlDType::Q5_0] {
                let q = QTensor::quantize(&wf, dtype).unwrap();
                for m in [1, 3, 8] {
                    let x = Tensor::randn(0f32, 1.0, (m, 1, k), &dev).unwrap();
                    let Some(ours) = forward_at(Some(level), &q, &x).unwrap() else {
                        assert!(
                            m > 1 && matches!(dtype, GgmlDType::Q4K | GgmlDType::Q6K),
                            "{dtype:?} m={m}: path must apply"
                        );
                        continue;
                    };
                    let theirs =
                        QMatMul::from_qtensor(QTensor::quantize(&wf, dtype).unwrap()).unwrap().forward(&x).unwrap();
                    assert_eq!(ours.dims(), theirs.dims());
                    let diff = (ours - &theirs).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                    let scale = theirs.abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
                    assert!(diff <= 1e-3 * scale, "{level:?} {dtype:?} m={m}: differs by {diff} (scale {scale})");
                }
            }
        }
        let legacy = QTensor::quantize(&wf, GgmlDType::Q4_0).unwrap();
        assert!(
            forward(&legacy, &Tensor::zeros((1, k), DType::F32, &dev).unwrap()).unwrap().is_none(),
            "no fast dot: candle's path"
        );
    }
}
