//! Elementwise functions of the CPU way written so that their loops vectorize: the exponential of the
//! softmax of prompt steps (`prompt_attention`) and the MLP's SiLU gate. The library's `expf` is a call per
//! value, which kept the prompt steps' softmax and SiLU a visible share of their time.

use anyhow::Result;
use candle_core::{DType, Storage, Tensor};

/// `e^x`, within a few units in the last place, in operations that vectorize: `2^n · e^r` with
/// `n = round(x / ln 2)`, `r = x − n ln 2` (ln 2 in two parts, so `r` is exact) and `e^r` by Cephes'
/// `expf` polynomial. Below −87 it gives 0 (the result would be under f32's smallest normal number), above
/// 88 it gives `e^88` (callers only divide by it).
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let tiny = x < -87.0;
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = n.mul_add(-LN2_LO, n.mul_add(-LN2_HI, x));
    let p = 1.987_569_1e-4f32
        .mul_add(r, 1.398_199_9e-3)
        .mul_add(r, 8.333_452e-3)
        .mul_add(r, 4.166_579_6e-2)
        .mul_add(r, 1.666_666_5e-1)
        .mul_add(r, 0.5);
    let er = p.mul_add(r * r, r) + 1.0;
    // n is within −126..=127 here, so n + 127 is a normal exponent.
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    if tiny {
        0.0
    } else {
        er * scale
    }
}

/// Each score replaced by `e^(score − max)`; returns their sum. Eight independent lanes, so that the
/// loops vectorize (the exponential too: `exp`).
pub(crate) fn softmax_numerators(row: &mut [f32]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks.remainder().iter().copied().fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for l in 0..8 {
            lanes[l] = lanes[l].max(c[l]);
        }
    }
    let max = lanes.iter().copied().fold(tail, f32::max);
    let mut lanes = [0f32; 8];
    let mut chunks = row.chunks_exact_mut(8);
    for c in &mut chunks {
        for l in 0..8 {
            c[l] = exp(c[l] - max);
            lanes[l] += c[l];
        }
    }
    let mut tail = 0.0;
    for x in chunks.into_remainder() {
        *x = exp(*x - max);
        tail += *x;
    }
    lanes.iter().sum::<f32>() + tail
}

/// `silu(gate) · up` for f32 tensors of one shape on the CPU, in one pass; `None` for anything else (the
/// caller falls back to candle's operations).
pub(crate) fn silu_times(gate: &Tensor, up: &Tensor) -> Result<Option<Tensor>> {
    if !gate.device().is_cpu() || gate.dtype() != DType::F32 || up.dtype() != DType::F32 || gate.shape() != up.shape() {
        return Ok(None);
    }
    let (gs, gl) = gate.storage_and_layout();
    let (us, ul) = up.storage_and_layout();
    let (Storage::Cpu(gc), Storage::Cpu(uc)) = (&*gs, &*us) else { return Ok(None) };
    let (Some((g0, g1)), Some((u0, u1))) = (gl.contiguous_offsets(), ul.contiguous_offsets()) else {
        return Ok(None);
    };
    let (g, u) = (&gc.as_slice::<f32>()?[g0..g1], &uc.as_slice::<f32>()?[u0..u1]);
    let out: Vec<f32> = g.iter().zip(u).map(|(&g, &u)| g / (1.0 + exp(-g)) * u).collect();
    Ok(Some(Tensor::from_vec(out, gate.shape(), gate.device())?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_within_a_few_ulps_of_the_library() {
        let mut x = 88.0f32;
        while x > -100.0 {
            let (got, want) = (exp(x), x.exp());
            if x < -87.0 {
                assert_eq!(got, 0.0, "e^{x}");
            } else {
                assert!(((got - want) / want).abs() < 4.0 * f32::EPSILON, "e^{x}: {got} against {want}");
            }
            x -= 0.0137;
        }
        assert_eq!(exp(0.0), 1.0);
        assert_eq!(exp(200.0), exp(88.0));
    }

    #[test]
    fn softmax_numerators_follow_the_definition() {
        // Not a multiple of the eight lanes, the largest value in the tail.
        let mut row: Vec<f32> = (0..37).map(|i| ((i * 7919) % 23) as f32 * 0.7 - 9.0).collect();
        row[36] = 20.0;
        let want: Vec<f32> = row.iter().map(|x| (x - 20.0).exp()).collect();
        let sum = softmax_numerators(&mut row);
        for (got, want) in row.iter().zip(&want) {
            assert!((got - want).abs() <= 4.0 * f32::EPSILON * want, "{got} against {want}");
        }
        assert_eq!(row[36], 1.0);
        let exact: f32 = want.iter().sum();
        assert!((sum - exact).abs() <= 1e-6 * exact, "{sum} against {exact}");
    }

    #[test]
    fn silu_times_matches_candles_operations() {
        let dev = candle_core::Device::Cpu;
        let gate = (Tensor::randn(0f32, 1., (3, 5, 64), &dev).unwrap() * 12.0).unwrap();
        let up = Tensor::randn(0f32, 1., (3, 5, 64), &dev).unwrap();
        let got = silu_times(&gate, &up).unwrap().expect("f32 on the CPU");
        let want = (candle_nn::ops::silu(&gate).unwrap() * &up).unwrap();
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "max difference {diff}");
        // A view that is not contiguous is left to candle.
        assert!(silu_times(&gate.transpose(1, 2).unwrap(), &up.transpose(1, 2).unwrap()).unwrap().is_none());
    }
}
