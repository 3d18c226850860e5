//! Models: GGUF loading and one file per architecture. STUB, being written.
use std::path::Path;
use anyhow::Result;
use candle_core::{Device, Tensor};
use candle_core::quantized::gguf_file;
use crate::kv_cache::KvCache;

#[derive(Debug, Clone)]
pub struct LoadOptions { pub device: Device, pub requantize: bool }
impl LoadOptions { pub fn new(device: Device) -> Self { Self { requantize: device.is_cpu(), device } } }

#[derive(Debug, Clone)]
pub struct ModelConfig { pub arch: String, pub n_layer: usize, pub context_length: usize, pub vocab_size: usize }

pub struct Model { config: ModelConfig, device: Device }
pub struct Loaded { pub model: Model, pub metadata: gguf_file::Content }

pub fn load(_path: &Path, _opts: &LoadOptions) -> Result<Loaded> { todo!() }

impl Model {
    pub fn config(&self) -> &ModelConfig { &self.config }
    pub fn device(&self) -> &Device { &self.device }
    /// Append each row's tokens (rows may differ in length) and return the last position's logits, [rows, vocab].
    pub fn forward(&self, _rows: &[Vec<u32>], _cache: &mut KvCache) -> Result<Tensor> { todo!() }
    /// One decode step: a token per row, `None` for rows that are finished. Returns [rows, vocab].
    pub fn decode_step(&self, _next: &[Option<u32>], _cache: &mut KvCache) -> Result<Tensor> { todo!() }
    /// Logits at every position of one sequence, [seq, vocab].
    pub fn forward_all(&self, _ids: &[u32], _cache: &mut KvCache) -> Result<Tensor> { todo!() }
}
