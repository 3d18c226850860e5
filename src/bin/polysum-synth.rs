//! Synthetic models for benchmarking and checking a device that cannot receive the real weights
//! (`polysum::engine::synth`), and the measurements `scripts/bench-gpu` takes with them.
//!
//! ```text
//! polysum-synth header --model REAL.gguf --out MODEL.header      metadata + tensor infos, no weights
//! polysum-synth write --header MODEL.header --seed 1 --out SYNTH.gguf
//! polysum-synth export-transformers --model SYNTH.gguf --out DIR  the same weights for transformers (qwen2)
//! polysum-synth check --model SYNTH.gguf [--device auto]         CPU and device give the same greedy tokens
//! polysum-synth bench --model SYNTH.gguf [--device auto]         prompt and batched decode tokens/s
//! ```
//!
//! `check` and `bench` print one JSON object on stdout. Without a GPU, `check` compares the CPU's way of
//! batching with the GPU's way forced on the CPU (`BatchPaths::Gpu`), and `bench` measures the CPU.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use polysum::engine::device::DeviceSpec;
use polysum::engine::generate::{Engine, Request};
use polysum::engine::model::{BatchPaths, LoadOptions};
use polysum::engine::synth;
use rand::{Rng, SeedableRng};
use serde_json::json;

#[derive(Parser)]
#[command(about = "Synthetic models (a real model's header, weights from a seed), checked and benchmarked")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Copy a GGUF file's header (metadata and tensor infos, no tensor data).
    Header {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a GGUF file from a header, with weights drawn from a seed.
    Write {
        #[arg(long)]
        header: PathBuf,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        #[arg(long)]
        out: PathBuf,
    },
    /// Write a qwen2 GGUF file's weights as a transformers checkpoint (config.json, model.safetensors).
    ExportTransformers {
        #[arg(long)]
        model: PathBuf,
        #[arg(long)]
        out: PathBuf,
    },
    /// Greedy tokens of a few chat prompts, batched, on the CPU and on the device: they must agree, or part
    /// only where the two candidates were tied within rounding: a gap between their CPU logits under
    /// --tolerance standard deviations of those logits. The top of 150k random logits stands about four
    /// deviations above the mean, so a wrong mask, position or kernel parts the runs on a token far below it.
    Check {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "auto")]
        device: DeviceSpec,
        #[arg(long, default_value_t = 32)]
        tokens: usize,
        #[arg(long, default_value_t = 0.2)]
        tolerance: f32,
    },
    /// Prompt tokens/s (one row) and decode tokens/s at each batch size, on random token ids.
    Bench {
        #[arg(long)]
        model: PathBuf,
        #[arg(long, default_value = "auto")]
        device: DeviceSpec,
        #[arg(long, default_value_t = 512)]
        prompt_tokens: usize,
        /// Prompt length of each row of the decode measurements.
        #[arg(long, default_value_t = 64)]
        decode_prompt_tokens: usize,
        #[arg(long, default_value_t = 128)]
        gen: usize,
        #[arg(long, value_delimiter = ',', default_value = "1,8,32")]
        batches: Vec<usize>,
    },
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Command::Header { model, out } => {
            let bytes = synth::write_header(&model, &out)?;
            eprintln!("{}: {bytes} bytes of header", out.display());
        }
        Command::Write { header, seed, out } => {
            let t = std::time::Instant::now();
            synth::write_model(&header, seed, &out)?;
            eprintln!("{}: written in {:.1} s", out.display(), t.elapsed().as_secs_f64());
        }
        Command::ExportTransformers { model, out } => synth::export_transformers(&model, &out)?,
        Command::Check { model, device, tokens, tolerance } => check(&model, device, tokens, tolerance)?,
        Command::Bench { model, device, prompt_tokens, decode_prompt_tokens, gen, batches } => {
            bench(&model, device, prompt_tokens, decode_prompt_tokens, gen, &batches)?
        }
    }
    Ok(())
}

/// The engine on `spec`'s device; on the CPU with the GPU's way of batching forced when `gpu_paths`.
fn load(model: &Path, spec: DeviceSpec, gpu_paths: bool) -> Result<Engine> {
    let device = spec.open()?;
    let paths = if gpu_paths { BatchPaths::Gpu } else { BatchPaths::ByDevice };
    let opts = LoadOptions { paths, ..LoadOptions::new(device) };
    Engine::load(model, None, &opts).with_context(|| format!("loading {}", model.display()))
}

fn device_name(e: &Engine) -> String {
    match e.device() {
        candle_core::Device::Cpu => "cpu".into(),
        other => format!("{other:?}").to_lowercase(),
    }
}

const CHECK_PROMPTS: &[&str] = &[
    "Summarize in one sentence: the city council approved a new budget for public transport on Monday.",
    "Resume en una frase: el ayuntamiento aprobó el lunes un nuevo presupuesto para el transporte público.",
    "Write a short poem about the sea.",
    "List three fruits.",
];

fn check(model: &Path, spec: DeviceSpec, tokens: usize, tolerance: f32) -> Result<()> {
    let cpu = load(model, DeviceSpec::Cpu, false)?;
    let dev = load(model, spec, true)?;
    let requests: Vec<Request> = CHECK_PROMPTS
        .iter()
        .map(|p| Ok(Request::greedy(cpu.chat_prompt(None, p, None)?, tokens)))
        .collect::<Result<_>>()?;
    let on_cpu = cpu.generate(&requests)?;
    let on_dev = dev.generate(&requests)?;
    let mut rows = Vec::new();
    let mut failed = false;
    for ((req, a), b) in requests.iter().zip(&on_cpu).zip(&on_dev) {
        let same = a.tokens.iter().zip(&b.tokens).take_while(|(x, y)| x == y).count();
        let verdict = if a.tokens == b.tokens {
            json!({"agree": same})
        } else if same < a.tokens.len() && same < b.tokens.len() {
            // Where the runs part, the CPU's logits must hold the two candidates within rounding.
            let mut ids = cpu.encode_prompt(&req.prompt)?;
            ids.extend_from_slice(&a.tokens[..same]);
            let logits = cpu.logits_all(&ids)?.get(ids.len() - 1)?;
            let std = logits.var(0)?.sqrt()?.to_scalar::<f32>()?;
            let logits: Vec<f32> = logits.to_vec1()?;
            let gap = (logits[a.tokens[same] as usize] - logits[b.tokens[same] as usize]).abs() / std;
            failed |= gap >= tolerance;
            json!({"agree": same, "part_at": same, "gap_in_std": gap, "tie": gap < tolerance})
        } else {
            failed = true;
            json!({"agree": same, "error": "one run stopped early", "cpu": a.tokens.len(), "device": b.tokens.len()})
        };
        rows.push(verdict);
    }
    let out = json!({
        "cpu": device_name(&cpu),
        "device": device_name(&dev),
        "device_paths": if dev.gpu_paths() { "gpu" } else { "cpu" },
        "tokens_per_row": tokens,
        "rows": rows,
        "ok": !failed,
    });
    println!("{out}");
    if failed {
        bail!("the CPU and the device disagree beyond rounding ties");
    }
    Ok(())
}

fn bench(
    model: &Path,
    spec: DeviceSpec,
    prompt_tokens: usize,
    decode_prompt_tokens: usize,
    gen: usize,
    batches: &[usize],
) -> Result<()> {
    let e = load(model, spec, false)?;
    // Random ids below the special tokens, the same ones in every run.
    let vocab = (e.tokenizer().vocab_size() as u32).saturating_sub(1024).max(256);
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut ids = |n: usize| -> Vec<u32> { (0..n).map(|_| rng.random_range(0..vocab)).collect() };

    // Prompt: one row, one token out; a warm-up call first (kernels load, buffers grow).
    let prompt = ids(prompt_tokens);
    let one = Request::greedy("", 1);
    e.generate_ids(std::slice::from_ref(&prompt), std::slice::from_ref(&one), &mut |_, _| true)?;
    let (_, stats) = e.generate_ids(&[prompt], &[one], &mut |_, _| true)?;
    let prompt_tps = stats.prompt_tokens as f64 / stats.prompt_seconds;
    eprintln!("prompt: {prompt_tps:.1} tok/s");

    let mut decode = serde_json::Map::new();
    for &b in batches {
        let prompts: Vec<Vec<u32>> = (0..b).map(|_| ids(decode_prompt_tokens)).collect();
        let requests = vec![Request::greedy("", gen); b];
        if b == batches[0] {
            let warm = vec![Request::greedy("", 4); b];
            e.generate_ids(&prompts, &warm, &mut |_, _| true)?;
        }
        let (_, stats) = e.generate_ids(&prompts, &requests, &mut |_, _| true)?;
        let tps = stats.generated_tokens as f64 / stats.decode_seconds;
        eprintln!("decode at batch {b}: {tps:.1} tok/s ({} tokens)", stats.generated_tokens);
        decode.insert(b.to_string(), json!({"tokens_per_s": tps, "generated": stats.generated_tokens}));
    }
    let out = json!({
        "device": device_name(&e),
        "prompt_tokens": prompt_tokens,
        "prompt_tokens_per_s": prompt_tps,
        "gen": gen,
        "decode": decode,
    });
    println!("{out}");
    Ok(())
}
