//! The transformer layers every supported architecture is built from: RMS norm, rotary embeddings,
//! grouped-query attention over the batch KV cache, and the gated MLP. Architecture files only choose
//! among the options here (see `super::ArchSpec`).

use anyhow::Result;
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{DType, Device, Module, Tensor};

/// How rotary embeddings pair up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RopeStyle {
    /// Adjacent pairs (GGUF llama files, whose q/k weights llama.cpp permuted at conversion).
    Interleaved,
    /// First half with second half (GPT-NeoX; qwen2, gemma3).
    Neox,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Activation {
    Silu,
    /// GELU, tanh approximation (`gelu_pytorch_tanh`), as Gemma uses.
    GeluTanh,
}

pub(crate) struct RmsNorm {
    weight: Tensor,
    eps: f32,
}

impl RmsNorm {
    pub(crate) fn new(weight: Tensor, eps: f32) -> Self {
        Self { weight, eps }
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(candle_nn::ops::rms_norm(&x.contiguous()?, &self.weight, self.eps)?)
    }
}

/// cos/sin tables for one rotary base, shared by every layer that uses it.
pub(crate) struct Rope {
    cos: Tensor,
    sin: Tensor,
    style: RopeStyle,
}

impl Rope {
    pub(crate) fn new(
        head_dim: usize,
        base: f32,
        scale: f32,
        max_pos: usize,
        style: RopeStyle,
        device: &Device,
    ) -> Result<Self> {
        let inv_freq: Vec<f32> =
            (0..head_dim).step_by(2).map(|i| 1f32 / base.powf(i as f32 / head_dim as f32)).collect();
        let inv_freq = Tensor::new(inv_freq.as_slice(), device)?.unsqueeze(0)?;
        let pos = (Tensor::arange(0u32, max_pos as u32, device)?.to_dtype(DType::F32)? * scale as f64)?.unsqueeze(1)?;
        let angles = pos.broadcast_mul(&inv_freq)?;
        Ok(Self { cos: angles.cos()?, sin: angles.sin()?, style })
    }

    /// `x`: `[rows, heads, t, head_dim]`; `positions`: `[rows * t]` sequence positions.
    pub(crate) fn apply(&self, x: &Tensor, positions: &Tensor) -> Result<Tensor> {
        let (rows, _, t, _) = x.dims4()?;
        let half = self.cos.dim(1)?;
        let cos = self.cos.index_select(positions, 0)?.reshape((rows, t, half))?;
        let sin = self.sin.index_select(positions, 0)?.reshape((rows, t, half))?;
        let x = x.contiguous()?;
        Ok(match self.style {
            RopeStyle::Interleaved => candle_nn::rotary_emb::rope_i(&x, &cos, &sin)?,
            RopeStyle::Neox => candle_nn::rotary_emb::rope(&x, &cos, &sin)?,
        })
    }
}

/// A quantized weight matrix. Products with several rows go to `gemm` and one-position steps to `gemv` where
/// those have a kernel for the type; Q4_K and Q6_K go to `gemm` even for one row, whose row kernel then
/// gives a sequence the same numbers alone, batched, or in a drafted step. Otherwise, when inputs hold
/// several positions per sequence (prompt processing) on the CPU and the type has no fast dot kernel, the
/// weight is dequantized for the call and multiplied with the f32 GEMM, whose cache blocking beats candle's
/// per-row quantized dot products once many rows share the dequantization; decode steps (one position per
/// sequence) stay quantized. The choice depends on the step, not on the batch, so a sequence computes the
/// same numbers alone or batched.
pub(crate) struct Weight(pub QMatMul);

impl Weight {
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let dims = x.dims().to_vec();
        let k = *dims.last().unwrap_or(&0);
        let rows = x.elem_count() / k.max(1);
        let positions = if dims.len() >= 2 { dims[dims.len() - 2] } else { 1 };
        if let QMatMul::QTensor(q) = &self.0 {
            if rows > 1 || matches!(q.dtype(), GgmlDType::Q4K | GgmlDType::Q6K) {
                if let Some(y) = super::gemm::forward(q, x)? {
                    return Ok(y);
                }
            }
            if positions == 1 {
                if let Some(y) = super::gemv::forward(q, x)? {
                    return Ok(y);
                }
            }
            if positions > 1 && x.device().is_cpu() && !has_fast_kernel(q.dtype()) {
                let w = q.dequantize(x.device())?;
                let n = w.dim(0)?;
                let y = x.reshape((rows, k))?.matmul(&w.t()?)?;
                let mut out = dims;
                *out.last_mut().unwrap() = n;
                return Ok(y.reshape(out)?);
            }
        }
        Ok(self.0.forward(x)?)
    }
}

/// K-quants have AVX2 dot products against 8-bit activations that are cheaper than dequantizing the
/// weight to f32 for the GEMM (figures in docs/BENCHMARKS.md); candle's legacy block types do not.
fn has_fast_kernel(dtype: candle_core::quantized::GgmlDType) -> bool {
    use candle_core::quantized::GgmlDType::*;
    matches!(dtype, Q2K | Q3K | Q4K | Q5K | Q6K)
}

/// A projection with an optional bias (qwen2 has biases on q, k and v).
pub(crate) struct Linear {
    pub(crate) weight: Weight,
    pub(crate) bias: Option<Tensor>,
}

impl Linear {
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let y = self.weight.forward(x)?;
        Ok(match &self.bias {
            Some(b) => y.broadcast_add(b)?,
            None => y,
        })
    }
}

pub(crate) struct Attention {
    pub(crate) q: Linear,
    pub(crate) k: Linear,
    pub(crate) v: Linear,
    pub(crate) o: Linear,
    /// Per-head RMS norms of queries and keys (gemma3, qwen3).
    pub(crate) q_norm: Option<RmsNorm>,
    pub(crate) k_norm: Option<RmsNorm>,
    pub(crate) n_head: usize,
    pub(crate) n_kv_head: usize,
    pub(crate) head_dim: usize,
    pub(crate) scale: f64,
    /// A sliding-window layer: it uses the local rotary table and the windowed mask.
    pub(crate) local: bool,
}

/// Inputs of one forward step that every layer shares.
pub(crate) struct StepInputs<'a> {
    pub(crate) positions: &'a Tensor,
    pub(crate) rope_global: &'a Rope,
    pub(crate) rope_local: Option<&'a Rope>,
    pub(crate) visibility: Visibility,
    /// Every position through the weights as a decode row of its own (`[rows * t, 1, k]`), so that a
    /// drafted step runs the decode kernels and gives each position the numbers of a decode step.
    pub(crate) positions_as_rows: bool,
}

impl StepInputs<'_> {
    /// `f` (a weight product) over `x` `[rows, t, k]`, its positions as rows when `positions_as_rows`.
    fn project(&self, x: &Tensor, f: impl FnOnce(&Tensor) -> Result<Tensor>) -> Result<Tensor> {
        if !self.positions_as_rows {
            return f(x);
        }
        let (rows, t, k) = x.dims3()?;
        let y = f(&x.reshape((rows * t, 1, k))?)?;
        let n = y.dim(2)?;
        Ok(y.reshape((rows, t, n))?)
    }
}

/// Which cache slots each query sees (`local`: on sliding-window layers), in one of two forms.
pub(crate) enum Visibility {
    /// Additive masks `[rows, 1, 1, t, slots]` (prompt steps, and every step off the CPU).
    Masks { global: Tensor, local: Option<Tensor> },
    /// Decode and drafted steps on the CPU: each query's visible slots (`decode_attention::visible_slots`).
    Slots { global: Vec<Vec<u32>>, local: Option<Vec<Vec<u32>>> },
    /// Prompt steps on the CPU: each query's run of slots (`prompt_attention::visible_runs`).
    Runs { global: Vec<std::ops::Range<u32>>, local: Option<Vec<std::ops::Range<u32>>> },
}

impl Attention {
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        layer: usize,
        step: &StepInputs,
        cache: &mut crate::engine::kv_cache::KvCache,
    ) -> Result<Tensor> {
        let (rows, t, _) = x.dims3()?;
        let shape = |y: Tensor, heads: usize| -> Result<Tensor> { Ok(y.reshape((rows, t, heads, self.head_dim))?) };
        let mut q = shape(step.project(x, |x| self.q.forward(x))?, self.n_head)?;
        let mut k = shape(step.project(x, |x| self.k.forward(x))?, self.n_kv_head)?;
        let v = shape(step.project(x, |x| self.v.forward(x))?, self.n_kv_head)?;
        if let Some(n) = &self.q_norm {
            q = n.forward(&q)?;
        }
        if let Some(n) = &self.k_norm {
            k = n.forward(&k)?;
        }
        let rope = step.rope_local.filter(|_| self.local).unwrap_or(step.rope_global);
        let q = rope.apply(&q.transpose(1, 2)?, step.positions)?;
        let k = rope.apply(&k.transpose(1, 2)?, step.positions)?;
        let v = v.transpose(1, 2)?.contiguous()?;
        let (k, v) = cache.append(layer, &k, &v)?;
        let mask = match &step.visibility {
            Visibility::Slots { global, local } => {
                let seen = local.as_ref().filter(|_| self.local).unwrap_or(global);
                let y = super::decode_attention::forward(&q, &k, &v, seen, self.scale as f32)?;
                return step.project(&y, |y| self.o.forward(y));
            }
            Visibility::Runs { global, local } => {
                let runs = local.as_ref().filter(|_| self.local).unwrap_or(global);
                let y = super::prompt_attention::forward(&q, &k, &v, runs, self.scale as f32)?;
                return step.project(&y, |y| self.o.forward(y));
            }
            Visibility::Masks { global, local } => local.as_ref().filter(|_| self.local).unwrap_or(global),
        };
        let slots = k.dim(2)?;

        // Grouped-query attention without copying K/V per query head: the query heads that share a KV
        // head are stacked along the query axis.
        let rep = self.n_head / self.n_kv_head;
        let q = (q.reshape((rows, self.n_kv_head, rep * t, self.head_dim))? * self.scale)?;
        let scores = q.matmul(&k.t()?)?; // [rows, kv_heads, rep*t, slots]
        let scores = scores.reshape((rows, self.n_kv_head, rep, t, slots))?.broadcast_add(mask)?;
        let probs = candle_nn::ops::softmax_last_dim(&scores.reshape((rows, self.n_kv_head, rep * t, slots))?)?;
        let y = probs.matmul(&v)?; // [rows, kv_heads, rep*t, head_dim]
        let y = y.reshape((rows, self.n_head, t, self.head_dim))?.transpose(1, 2)?.reshape((
            rows,
            t,
            self.n_head * self.head_dim,
        ))?;
        self.o.forward(&y)
    }
}

pub(crate) struct Mlp {
    pub(crate) gate: Weight,
    pub(crate) up: Weight,
    pub(crate) down: Weight,
    pub(crate) activation: Activation,
}

impl Mlp {
    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        let (gate, up) = (self.gate.forward(x)?, self.up.forward(x)?);
        let hidden = match self.activation {
            // One vectorized pass on the CPU (`vector_math`), candle's operations elsewhere.
            Activation::Silu => match super::vector_math::silu_times(&gate, &up)? {
                Some(h) => h,
                None => (candle_nn::ops::silu(&gate)? * up)?,
            },
            Activation::GeluTanh => (gate.gelu()? * up)?,
        };
        self.down.forward(&hidden)
    }
}

/// One transformer block. Gemma's "sandwich" norms after attention and MLP are optional.
pub(crate) struct Block {
    pub(crate) attn_norm: RmsNorm,
    pub(crate) attn: Attention,
    pub(crate) post_attn_norm: Option<RmsNorm>,
    pub(crate) ffn_norm: RmsNorm,
    pub(crate) mlp: Mlp,
    pub(crate) post_ffn_norm: Option<RmsNorm>,
}

impl Block {
    pub(crate) fn forward(
        &self,
        x: &Tensor,
        layer: usize,
        step: &StepInputs,
        cache: &mut crate::engine::kv_cache::KvCache,
    ) -> Result<Tensor> {
        let mut h = self.attn.forward(&self.attn_norm.forward(x)?, layer, step, cache)?;
        if let Some(n) = &self.post_attn_norm {
            h = n.forward(&h)?;
        }
        let x = (x + h)?;
        let mut h = step.project(&self.ffn_norm.forward(&x)?, |x| self.mlp.forward(x))?;
        if let Some(n) = &self.post_ffn_norm {
            h = n.forward(&h)?;
        }
        Ok((x + h)?)
    }
}

/// The additive attention mask of one step: `[rows, 1, 1, t, slots]`, 0 where a query may look.
///
/// A query sees the real tokens of its own row at or before its position (within `window` positions for
/// sliding-window layers). A padding query sees only its own slot, so no softmax row is empty.
pub(crate) fn step_mask(
    positions: &[Vec<Option<u32>>],
    t: usize,
    window: Option<usize>,
    device: &Device,
) -> Result<Tensor> {
    // A large finite negative instead of -inf: exp() still gives exactly 0, and no NaN can appear.
    const MASKED: f32 = -1e9;
    let rows = positions.len();
    let slots = positions.first().map_or(0, |p| p.len());
    let first_new = slots - t;
    let mut m = vec![MASKED; rows * t * slots];
    for (r, pos) in positions.iter().enumerate() {
        for qi in 0..t {
            let qslot = first_new + qi;
            let base = (r * t + qi) * slots;
            match pos[qslot] {
                None => m[base + qslot] = 0.0,
                Some(qp) => {
                    for (s, kp) in pos[..=qslot].iter().enumerate() {
                        if let Some(kp) = kp {
                            if *kp <= qp && window.is_none_or(|w| ((qp - kp) as usize) < w) {
                                m[base + s] = 0.0;
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(Tensor::from_vec(m, (rows, 1, 1, t, slots), device)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_is_causal_and_hides_padding() {
        let positions = vec![vec![Some(0), Some(1), Some(2)], vec![None, Some(0), Some(1)]];
        let m = step_mask(&positions, 3, None, &Device::Cpu).unwrap();
        let m: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        let ok = |r: usize, q: usize, s: usize| m[(r * 3 + q) * 3 + s] == 0.0;
        assert!(ok(0, 2, 0) && ok(0, 2, 2) && !ok(0, 0, 1));
        assert!(!ok(1, 1, 0), "padding key hidden");
        assert!(ok(1, 0, 0) && !ok(1, 0, 1), "padding query sees only itself");
        assert!(ok(1, 2, 1) && ok(1, 2, 2));
    }

    #[test]
    fn sliding_window_limits_lookback() {
        let positions = vec![(0..6).map(Some).collect::<Vec<_>>()];
        let m = step_mask(&positions, 1, Some(3), &Device::Cpu).unwrap();
        let m: Vec<f32> = m.flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(m.iter().map(|v| *v == 0.0).collect::<Vec<_>>(), vec![false, false, false, true, true, true]);
    }

    #[test]
    fn neox_rope_at_position_zero_is_identity() {
        let rope = Rope::new(4, 10000.0, 1.0, 8, RopeStyle::Neox, &Device::Cpu).unwrap();
        let x = Tensor::arange(0f32, 8., &Device::Cpu).unwrap().reshape((1, 1, 2, 4)).unwrap();
        let pos = Tensor::new(&[0u32, 0], &Device::Cpu).unwrap();
        let y = rope.apply(&x, &pos).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            x.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }
}
