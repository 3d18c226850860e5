//! Synthetic models: a real model's architecture, tensor shapes, quantization types and tokenizer and
//! chat-template metadata, with pseudo-random weights drawn from a seed.
//!
//! Such a file runs exactly the kernels the real model runs, at its speed, so a GPU machine that cannot
//! receive the real weights can still be benchmarked and checked: it receives only the header (metadata
//! and tensor infos, a few MB) and writes the weights itself. Greedy tokens from random weights are
//! meaningless text, but the same on every device, up to rounding ties.
//!
//! The header is the first `tensor_data_offset` bytes of the real GGUF file, byte for byte, so the
//! synthetic file has the same layout as the real one: header, then each tensor at its recorded offset.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use anyhow::{bail, ensure, Context, Result};
use candle_core::quantized::gguf_file::{Content, TensorInfo};
use candle_core::quantized::QTensor;
use candle_core::{DType, Device, Tensor};
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

/// Copy the header of the GGUF file `model` (metadata and tensor infos, no tensor data) to `out`.
/// Returns the header's size in bytes.
pub fn write_header(model: &Path, out: &Path) -> Result<u64> {
    let mut file = File::open(model).with_context(|| format!("opening {}", model.display()))?;
    let content = Content::read(&mut BufReader::new(&mut file))
        .with_context(|| format!("{} is not a readable GGUF file", model.display()))?;
    let mut header = vec![0u8; content.tensor_data_offset as usize];
    File::open(model)?.read_exact(&mut header)?;
    std::fs::write(out, &header).with_context(|| format!("writing {}", out.display()))?;
    Ok(header.len() as u64)
}

/// Read a header written by `write_header` (or a whole GGUF file: only its header is read).
fn read_header(header: &Path) -> Result<(Content, Vec<u8>)> {
    let bytes = std::fs::read(header).with_context(|| format!("reading {}", header.display()))?;
    let content = Content::read(&mut std::io::Cursor::new(&bytes))
        .with_context(|| format!("{} is not a GGUF header", header.display()))?;
    ensure!(
        bytes.len() as u64 >= content.tensor_data_offset,
        "{}: the header is cut short ({} of {} bytes)",
        header.display(),
        bytes.len(),
        content.tensor_data_offset
    );
    let head = bytes[..content.tensor_data_offset as usize].to_vec();
    Ok((content, head))
}

/// Write a GGUF file with the header's metadata and tensors, each tensor filled with values drawn from
/// `seed` and quantized to its recorded type. The same header and seed give the same file.
pub fn write_model(header: &Path, seed: u64, out: &Path) -> Result<()> {
    let (content, head) = read_header(header)?;
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut end = content.tensor_data_offset;
    for info in content.tensor_infos.values() {
        end = end.max(content.tensor_data_offset + info.offset + data_len(info)?);
    }
    file.set_len(end)?;
    file.write_all_at(&head, 0)?;
    let mut tensors: Vec<(&String, &TensorInfo)> = content.tensor_infos.iter().collect();
    tensors.sort_by_key(|(_, info)| info.offset);
    tensors.par_iter().try_for_each(|(name, info)| -> Result<()> {
        let data = synthetic_tensor(name, info, seed)?;
        ensure!(data.len() as u64 == data_len(info)?, "{name}: quantized to {} bytes", data.len());
        file.write_all_at(&data, content.tensor_data_offset + info.offset)?;
        Ok(())
    })?;
    file.sync_all()?;
    Ok(())
}

/// Bytes of a tensor's data in the file.
fn data_len(info: &TensorInfo) -> Result<u64> {
    let (n, block) = (info.shape.elem_count(), info.ggml_dtype.block_size());
    ensure!(n % block == 0, "{n} values are not whole blocks of {block}");
    Ok((n / block * info.ggml_dtype.type_size()) as u64)
}

/// One tensor's values: norm weights near 1, biases small, matrices with a standard deviation of
/// 1/sqrt(inputs) so that activations keep their scale through the layers (no overflow, no collapse).
fn synthetic_tensor(name: &str, info: &TensorInfo, seed: u64) -> Result<Vec<u8>> {
    let dims = info.shape.dims();
    let inputs = *dims.last().unwrap_or(&1);
    let (mean, std) = match dims.len() {
        1 if name.ends_with("norm.weight") => (1.0, 0.05),
        1 => (0.0, 0.02),
        _ => (0.0, 1.0 / (inputs as f32).sqrt()),
    };
    // Each tensor its own stream, so the values do not depend on the order tensors are written in.
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ fnv1a(name.as_bytes()));
    let values: Vec<f32> =
        (0..info.shape.elem_count()).map(|_| mean + std * rng.sample::<f32, _>(rand_distr::StandardNormal)).collect();
    let t = Tensor::from_vec(values, info.shape.clone(), &Device::Cpu)?;
    Ok(QTensor::quantize(&t, info.ggml_dtype)?.data()?.into_owned())
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Write `model` (a qwen2 GGUF file) as a Hugging Face transformers checkpoint in `dir`: `config.json` and
/// `model.safetensors` with every weight dequantized to bf16, so that transformers runs the same weights.
/// Tokenizer files are not written: a benchmark feeds token ids.
pub fn export_transformers(model: &Path, dir: &Path) -> Result<()> {
    let mut reader = BufReader::new(File::open(model).with_context(|| format!("opening {}", model.display()))?);
    let content = Content::read(&mut reader)?;
    let arch = content.metadata.get("general.architecture").context("no general.architecture")?.to_string()?;
    if arch != "qwen2" {
        bail!("exporting to transformers is written for qwen2 models, not {arch}");
    }
    let meta = |k: &str| -> Result<u64> {
        let v = content.metadata.get(&format!("qwen2.{k}")).with_context(|| format!("no qwen2.{k}"))?;
        Ok(v.to_u32().map(u64::from).or_else(|_| v.to_u64())?)
    };
    let metaf = |k: &str, default: f64| -> f64 {
        content.metadata.get(&format!("qwen2.{k}")).and_then(|v| v.to_f32().ok()).map_or(default, f64::from)
    };
    let vocab = content.tensor_infos.get("token_embd.weight").context("no token_embd.weight")?.shape.dims()[0];
    let tied = !content.tensor_infos.contains_key("output.weight");
    let config = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "hidden_size": meta("embedding_length")?,
        "intermediate_size": meta("feed_forward_length")?,
        "num_hidden_layers": meta("block_count")?,
        "num_attention_heads": meta("attention.head_count")?,
        "num_key_value_heads": meta("attention.head_count_kv")?,
        "max_position_embeddings": meta("context_length")?,
        "rms_norm_eps": metaf("attention.layer_norm_rms_epsilon", 1e-6),
        "rope_theta": metaf("rope.freq_base", 10_000.0),
        "vocab_size": vocab,
        "tie_word_embeddings": tied,
        "use_sliding_window": false,
        "torch_dtype": "bfloat16",
    });
    std::fs::create_dir_all(dir)?;
    std::fs::File::create(dir.join("config.json"))?.write_all(serde_json::to_string_pretty(&config)?.as_bytes())?;
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let Some(hf) = transformers_name(name) else { bail!("{name}: no transformers name for this tensor") };
        let t = content.tensor(&mut reader, name, &Device::Cpu)?.dequantize(&Device::Cpu)?;
        tensors.insert(hf, t.to_dtype(DType::BF16)?);
    }
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors"))?;
    Ok(())
}

/// A qwen2 GGUF tensor's name in transformers' `Qwen2ForCausalLM`.
fn transformers_name(gguf: &str) -> Option<String> {
    let fixed = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(f) = fixed {
        return Some(f.to_string());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let (part, kind) = rest.rsplit_once('.')?;
    let module = match part {
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{module}.{kind}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gguf_names_map_to_transformers_names() {
        assert_eq!(transformers_name("blk.3.attn_q.bias").unwrap(), "model.layers.3.self_attn.q_proj.bias");
        assert_eq!(transformers_name("blk.27.ffn_down.weight").unwrap(), "model.layers.27.mlp.down_proj.weight");
        assert_eq!(transformers_name("token_embd.weight").unwrap(), "model.embed_tokens.weight");
        assert!(transformers_name("blk.0.unknown.weight").is_none());
    }

    #[test]
    fn tensors_depend_on_seed_and_name_only() {
        let info = TensorInfo { ggml_dtype: candle_core::quantized::GgmlDType::Q8_0, shape: (4, 64).into(), offset: 0 };
        let a = synthetic_tensor("blk.0.attn_q.weight", &info, 7).unwrap();
        assert_eq!(a, synthetic_tensor("blk.0.attn_q.weight", &info, 7).unwrap());
        assert_ne!(a, synthetic_tensor("blk.0.attn_q.weight", &info, 8).unwrap());
        assert_ne!(a, synthetic_tensor("blk.0.attn_k.weight", &info, 7).unwrap());
        assert_eq!(a.len() as u64, data_len(&info).unwrap());
    }
}
