//! Models: one decoder-only transformer built from shared layers, configured per architecture.
//!
//! Why not candle-transformers' `quantized_*` models: in 0.11.1 they cannot batch sequences of different
//! lengths (no padding mask; multi-row prefill fails), copy K/V per query head, expand the embedding table
//! to f32, and gemma3 uses SiLU instead of GELU with a 131k-row rotary table per layer. Here every
//! architecture shares `layers`; an architecture file only reads its hyperparameters into an `ArchSpec`.
//!
//! To add an architecture: write `src/model/<arch>.rs` with a `spec(&Gguf) -> Result<ArchSpec>` and add a
//! line to `ARCHITECTURES`.

mod decode_attention;
mod gemm;
mod gemma3;
pub(crate) mod gemv;
mod layers;
mod llama;
pub(crate) mod loader;
mod prompt_attention;
mod qwen2;
mod simd;
mod vector_math;

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, ensure, Result};
use candle_core::quantized::{gguf_file, QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};

use crate::engine::kv_cache::KvCache;
use layers::{step_mask, Attention, Block, Linear, Mlp, RmsNorm, Rope, StepInputs, Visibility, Weight};
pub(crate) use layers::{Activation, RopeStyle};
use loader::Gguf;

/// Reads one architecture's hyperparameters from its GGUF file.
type SpecFn = fn(&Gguf) -> Result<ArchSpec>;

/// The GGUF `general.architecture` values polysum runs, and how to read each one's hyperparameters.
const ARCHITECTURES: &[(&str, SpecFn)] = &[("llama", llama::spec), ("qwen2", qwen2::spec), ("gemma3", gemma3::spec)];

pub(crate) fn supported_architectures() -> Vec<&'static str> {
    ARCHITECTURES.iter().map(|(name, _)| *name).collect()
}

/// The most positions of a drafted step (`Model::draft_step`) that take the decode kernels; a longer step
/// would take the prompt kernels, which sum in another order.
pub(crate) const MAX_DRAFT_POSITIONS: usize = gemm::MAX_ROWS;

/// Prompts longer than this are computed in several steps, which bounds the attention scores' memory.
const PREFILL_CHUNK: usize = 512;

/// Which of the engine's two ways of running a batch it takes.
///
/// The CPU way computes each row's prompt on its own and decodes with attention over each row's own slots
/// (`decode_attention`), so a row gives the same numbers alone or batched. The GPU way computes all rows
/// in one padded step (a shared prompt prefix computed once and broadcast to every row), decodes with
/// masked attention, and batches many more rows: what a GPU's kernels want.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchPaths {
    /// The CPU way on the CPU, the GPU way on any other device.
    #[default]
    ByDevice,
    /// The GPU way on every device, the CPU included: how the tests run the GPU branches without a GPU.
    Gpu,
}

/// How to load a model.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub device: Device,
    /// Re-quantize Q4_1/Q5_0/Q5_1 weights to Q8_0 (fast CPU kernels). On by default on CPU.
    pub requantize: bool,
    pub paths: BatchPaths,
}

impl LoadOptions {
    /// The defaults for `device`: re-quantize on the CPU only, batch the device's way.
    pub fn new(device: Device) -> Self {
        Self { requantize: device.is_cpu(), device, paths: BatchPaths::ByDevice }
    }
}

/// Everything that differs between architectures. Optional weights (biases, q/k norms, Gemma's post
/// norms) need no flag: they are used when the file has them.
#[derive(Debug, Clone)]
pub(crate) struct ArchSpec {
    pub(crate) n_layer: usize,
    pub(crate) n_head: usize,
    pub(crate) n_kv_head: usize,
    pub(crate) head_dim: usize,
    pub(crate) hidden: usize,
    pub(crate) context_length: usize,
    pub(crate) rms_eps: f32,
    pub(crate) rope_style: RopeStyle,
    pub(crate) rope_base: f32,
    /// Linear rope scaling: positions are multiplied by this.
    pub(crate) rope_scale: f32,
    pub(crate) activation: Activation,
    /// Multiplies the token embeddings (Gemma: sqrt(hidden)).
    pub(crate) embed_scale: Option<f32>,
    /// Sliding-window attention: the window, which layers use it, and their rotary base.
    pub(crate) sliding_window: Option<usize>,
    pub(crate) local_layers: Vec<bool>,
    pub(crate) rope_base_local: Option<f32>,
}

impl ArchSpec {
    /// The hyperparameters every llama-like GGUF stores under `<arch>.`; architecture files adjust the rest.
    pub(crate) fn common(g: &Gguf, arch: &str, rope_style: RopeStyle, activation: Activation) -> Result<Self> {
        let key = |k: &str| format!("{arch}.{k}");
        let n_head = g.u32(&key("attention.head_count"))? as usize;
        let hidden = g.u32(&key("embedding_length"))? as usize;
        let n_layer = g.u32(&key("block_count"))? as usize;
        let rope_scale = match g.str(&key("rope.scaling.type")) {
            Ok("linear") => 1.0 / g.f32_opt(&key("rope.scaling.factor")).unwrap_or(1.0),
            _ => 1.0,
        };
        Ok(Self {
            n_layer,
            n_head,
            n_kv_head: g.u32_or(&key("attention.head_count_kv"), n_head as u32) as usize,
            head_dim: g.u32_or(&key("attention.key_length"), (hidden / n_head) as u32) as usize,
            hidden,
            context_length: g.u32_or(&key("context_length"), 4096) as usize,
            rms_eps: g.f32_opt(&key("attention.layer_norm_rms_epsilon")).unwrap_or(1e-6),
            rope_style,
            rope_base: g.f32_opt(&key("rope.freq_base")).unwrap_or(10_000.0),
            rope_scale,
            activation,
            embed_scale: None,
            sliding_window: None,
            local_layers: vec![false; n_layer],
            rope_base_local: None,
        })
    }
}

/// The token-embedding table, kept quantized: rows are dequantized as they are looked up.
enum Embedding {
    Quantized(Arc<QTensor>),
    /// For tables whose row width is not a multiple of the quant block (lookup needs whole blocks).
    Dense(Tensor),
}

impl Embedding {
    fn forward(&self, ids: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Self::Quantized(q) => q.embedding(ids)?,
            Self::Dense(t) => t.index_select(ids, 0)?,
        })
    }
}

pub(crate) struct Model {
    spec: ArchSpec,
    config: ModelConfig,
    device: Device,
    /// The GPU way of batching (`BatchPaths`), on a GPU or when forced.
    gpu_paths: bool,
    embedding: Embedding,
    blocks: Vec<Block>,
    norm: RmsNorm,
    lm_head: Weight,
    rope_global: Rope,
    rope_local: Option<Rope>,
}

/// What callers outside the model need to know about it.
#[derive(Debug, Clone)]
pub(crate) struct ModelConfig {
    pub(crate) n_layer: usize,
    pub(crate) context_length: usize,
}

/// A GGUF file whose header is read and whose weights are not yet: what the tokenizer and chat template
/// are built from, before the weights take their memory.
pub(crate) struct Opened {
    gguf: Gguf,
    spec: ArchSpec,
    opts: LoadOptions,
}

/// Arrays in the metadata at least this long are the vocabulary (tokens, types, scores, merges): read once
/// to build the tokenizer, then dropped.
const VOCABULARY_ARRAY_MIN_LEN: usize = 1024;

impl Opened {
    pub(crate) fn metadata(&self) -> &gguf_file::Content {
        &self.gguf.content
    }

    /// Read the weights. The vocabulary arrays go first (the tokenizer holds what it needs), and the memory
    /// they and the tokenizer's construction freed goes back to the system, so that the weights do not
    /// come on top of it at the peak.
    pub(crate) fn load(mut self) -> Result<Model> {
        self.gguf
            .content
            .metadata
            .retain(|_, v| !matches!(v, gguf_file::Value::Array(a) if a.len() >= VOCABULARY_ARRAY_MIN_LEN));
        crate::release_freed_memory();
        let gpu_paths = self.opts.paths == BatchPaths::Gpu || !self.opts.device.is_cpu();
        let model = Model::from_gguf(&self.gguf, self.spec, gpu_paths)?;
        crate::keep_freed_memory();
        Ok(model)
    }
}

/// Open a GGUF file: its header read and its architecture checked, its weights left for [`Opened::load`].
pub(crate) fn open(path: &Path, opts: &LoadOptions) -> Result<Opened> {
    crate::tune_allocator();
    let gguf = Gguf::open(path, &opts.device, opts.requantize)?;
    let arch = gguf.arch()?;
    let Some((_, spec_fn)) = ARCHITECTURES.iter().find(|(name, _)| *name == arch) else {
        bail!(
            "{}: architecture {arch:?} is not supported (supported: {}); pick another model with --model",
            path.display(),
            supported_architectures().join(", ")
        );
    };
    let spec = spec_fn(&gguf)?;
    Ok(Opened { gguf, spec, opts: opts.clone() })
}

impl Model {
    fn from_gguf(g: &Gguf, spec: ArchSpec, gpu_paths: bool) -> Result<Self> {
        let device = g.device().clone();
        let eps = spec.rms_eps;
        let norm = |name: &str| -> Result<RmsNorm> { Ok(RmsNorm::new(g.f32_tensor(name)?, eps)) };
        let opt_norm =
            |name: &str| -> Result<Option<RmsNorm>> { Ok(g.opt_f32_tensor(name)?.map(|w| RmsNorm::new(w, eps))) };
        let qmm = |name: &str| -> Result<Weight> { Ok(Weight(QMatMul::from_qtensor(g.qtensor(name)?)?)) };
        let linear = |p: &str| -> Result<Linear> {
            Ok(Linear { weight: qmm(&format!("{p}.weight"))?, bias: g.opt_f32_tensor(&format!("{p}.bias"))? })
        };

        let embd = Arc::new(g.qtensor("token_embd.weight")?);
        let (_, width) = embd.shape().dims2()?;
        let embedding = if width % embd.dtype().block_size() == 0 {
            Embedding::Quantized(embd.clone())
        } else {
            Embedding::Dense(embd.dequantize(&device)?)
        };
        // Tied output weights share the embedding's memory.
        let lm_head =
            if g.has_tensor("output.weight") { qmm("output.weight")? } else { Weight(QMatMul::from_arc(embd)?) };

        let mut blocks = Vec::with_capacity(spec.n_layer);
        for i in 0..spec.n_layer {
            let p = format!("blk.{i}");
            let attn = Attention {
                q: linear(&format!("{p}.attn_q"))?,
                k: linear(&format!("{p}.attn_k"))?,
                v: linear(&format!("{p}.attn_v"))?,
                o: linear(&format!("{p}.attn_output"))?,
                q_norm: opt_norm(&format!("{p}.attn_q_norm.weight"))?,
                k_norm: opt_norm(&format!("{p}.attn_k_norm.weight"))?,
                n_head: spec.n_head,
                n_kv_head: spec.n_kv_head,
                head_dim: spec.head_dim,
                scale: 1.0 / (spec.head_dim as f64).sqrt(),
                local: spec.local_layers[i],
            };
            let mlp = Mlp {
                gate: qmm(&format!("{p}.ffn_gate.weight"))?,
                up: qmm(&format!("{p}.ffn_up.weight"))?,
                down: qmm(&format!("{p}.ffn_down.weight"))?,
                activation: spec.activation,
            };
            blocks.push(Block {
                attn_norm: norm(&format!("{p}.attn_norm.weight"))?,
                attn,
                post_attn_norm: opt_norm(&format!("{p}.post_attention_norm.weight"))?,
                ffn_norm: norm(&format!("{p}.ffn_norm.weight"))?,
                mlp,
                post_ffn_norm: opt_norm(&format!("{p}.post_ffw_norm.weight"))?,
            });
        }
        let rope_global =
            Rope::new(spec.head_dim, spec.rope_base, spec.rope_scale, spec.context_length, spec.rope_style, &device)?;
        let rope_local = match spec.rope_base_local {
            Some(base) => Some(Rope::new(spec.head_dim, base, 1.0, spec.context_length, spec.rope_style, &device)?),
            None => None,
        };
        let config = ModelConfig { n_layer: spec.n_layer, context_length: spec.context_length };
        Ok(Self {
            norm: norm("output_norm.weight")?,
            spec,
            config,
            device,
            gpu_paths,
            embedding,
            blocks,
            lm_head,
            rope_global,
            rope_local,
        })
    }

    pub(crate) fn config(&self) -> &ModelConfig {
        &self.config
    }

    pub(crate) fn device(&self) -> &Device {
        &self.device
    }

    /// Whether batches run the GPU way (see `BatchPaths`).
    pub(crate) fn gpu_paths(&self) -> bool {
        self.gpu_paths
    }

    /// Whether `draft_step` computes each position as a decode step does: on the CPU way, with the SIMD
    /// kernels (without them a drafted step's rows would take candle's batched kernels).
    pub(crate) fn drafts_exactly(&self) -> bool {
        !self.gpu_paths && simd::best().is_some()
    }

    /// One step of every row: `rows[i]` holds row i's new tokens (rows may differ in length; an empty row
    /// gets padding only). Returns hidden states `[rows, t, hidden]`, left-padded like the cache.
    /// `per_position`: on the CPU way, each position computed as a decode step at that position would
    /// compute it (decode kernels and attention), as a drafted step needs; else only when `t` is 1.
    fn step(&self, rows: &[&[u32]], cache: &mut KvCache, per_position: bool) -> Result<Tensor> {
        let lens: Vec<usize> = rows.iter().map(|r| r.len()).collect();
        let t = lens.iter().copied().max().unwrap_or(0);
        let slots = cache.push_step(&lens)?;
        let mut tokens = Vec::with_capacity(rows.len() * t);
        let mut positions = Vec::with_capacity(rows.len() * t);
        for (row, slot) in rows.iter().zip(&slots) {
            let pad = t - row.len();
            tokens.extend(std::iter::repeat_n(0u32, pad).chain(row.iter().copied()));
            positions.extend(slot.iter().map(|p| p.unwrap_or(0)));
        }
        let ids = Tensor::new(tokens.as_slice(), &self.device)?;
        let positions = Tensor::new(positions.as_slice(), &self.device)?;
        let mut x = self.embedding.forward(&ids)?.to_dtype(DType::F32)?.reshape((rows.len(), t, self.spec.hidden))?;
        if let Some(s) = self.spec.embed_scale {
            x = (x * s as f64)?;
        }
        let window = self.spec.sliding_window;
        let decode_slots = ((t == 1 || per_position) && !self.gpu_paths)
            .then(|| decode_attention::visible_slots(cache.positions(), t, None))
            .flatten();
        let positions_as_rows = decode_slots.is_some() && t > 1;
        let visibility = match decode_slots {
            Some(global) => Visibility::Slots {
                global,
                local: window.and_then(|w| decode_attention::visible_slots(cache.positions(), t, Some(w))),
            },
            None => {
                let runs = |window| {
                    (!self.gpu_paths).then(|| prompt_attention::visible_runs(cache.positions(), t, window)).flatten()
                };
                match (runs(None), window.map(|w| runs(Some(w)))) {
                    (Some(global), None) => Visibility::Runs { global, local: None },
                    (Some(global), Some(Some(local))) => Visibility::Runs { global, local: Some(local) },
                    _ => Visibility::Masks {
                        global: step_mask(cache.positions(), t, None, &self.device)?,
                        local: window.map(|w| step_mask(cache.positions(), t, Some(w), &self.device)).transpose()?,
                    },
                }
            }
        };
        let inputs = StepInputs {
            positions: &positions,
            rope_global: &self.rope_global,
            rope_local: self.rope_local.as_ref(),
            visibility,
            positions_as_rows,
        };
        for (i, block) in self.blocks.iter().enumerate() {
            x = block.forward(&x, i, &inputs, cache)?;
        }
        Ok(x)
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        self.lm_head.forward(&self.norm.forward(hidden)?)
    }

    /// Append each row's tokens (rows may differ in length) and return the logits after each row's last
    /// token, `[rows, vocab]`. Long inputs are computed in chunks.
    pub(crate) fn forward(&self, rows: &[Vec<u32>], cache: &mut KvCache) -> Result<Tensor> {
        ensure!(rows.len() == cache.rows(), "{} rows for a cache of {}", rows.len(), cache.rows());
        let longest = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        ensure!(longest > 0, "nothing to compute");
        // Chunks are aligned on the end of each row, so every row has a token in the last chunk.
        let chunks = longest.div_ceil(PREFILL_CHUNK);
        let mut hidden = None;
        for c in 0..chunks {
            let from_end_hi = longest - c * PREFILL_CHUNK;
            let from_end_lo = from_end_hi.saturating_sub(PREFILL_CHUNK);
            let pieces: Vec<&[u32]> = rows
                .iter()
                .map(|r| {
                    let lo = r.len().saturating_sub(from_end_hi);
                    let hi = r.len().saturating_sub(from_end_lo);
                    &r[lo..hi]
                })
                .collect();
            // A row with no tokens in an early chunk gets padding slots only.
            hidden = Some(self.step(&pieces, cache, false)?);
        }
        let hidden = hidden.expect("at least one chunk");
        let t = hidden.dim(1)?;
        let logits = self.logits(&hidden.narrow(1, t - 1, 1)?)?;
        Ok(logits.squeeze(1)?.to_dtype(DType::F32)?)
    }

    /// One decode step: one token per row. Returns `[rows, vocab]`.
    pub(crate) fn decode_step(&self, tokens: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        let rows: Vec<&[u32]> = tokens.iter().map(std::slice::from_ref).collect();
        let hidden = self.step(&rows, cache, false)?;
        Ok(self.logits(&hidden)?.squeeze(1)?.to_dtype(DType::F32)?)
    }

    /// A drafted step of a single row: `ids` appended, the logits after each of them, `[ids.len(), vocab]`,
    /// each position computed as a one-token decode step at that position would compute it (on the CPU
    /// way: the same kernels and the same attention sums; the GPU way computes them as a prompt).
    pub(crate) fn draft_step(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        ensure!(cache.rows() == 1, "a drafted step takes a single-row cache");
        ensure!(!ids.is_empty(), "nothing to compute");
        ensure!(ids.len() <= MAX_DRAFT_POSITIONS, "a drafted step of {} positions", ids.len());
        let hidden = self.step(&[ids], cache, true)?;
        // The output head too as decode rows: `[t, 1, hidden]`.
        let hidden = hidden.reshape((ids.len(), 1, self.spec.hidden))?;
        Ok(self.logits(&hidden)?.squeeze(1)?.to_dtype(DType::F32)?)
    }

    /// Logits at every position of one sequence, `[seq, vocab]` (for perplexity).
    pub(crate) fn forward_all(&self, ids: &[u32], cache: &mut KvCache) -> Result<Tensor> {
        ensure!(cache.rows() == 1, "forward_all takes a single-row cache");
        let mut out = Vec::new();
        for chunk in ids.chunks(PREFILL_CHUNK) {
            let hidden = self.step(&[chunk], cache, false)?;
            out.push(self.logits(&hidden)?.squeeze(0)?);
        }
        Ok(Tensor::cat(&out, 0)?.to_dtype(DType::F32)?)
    }
}
