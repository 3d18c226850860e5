//! Engine throughput on one GGUF file, for `scripts/bench-engine` (which runs it once per thread count).
//!
//! ```text
//! cargo run --release --example bench_engine -- --model FILE.gguf --threads 2 \
//!     [--prompt-tokens 512] [--gen 128] [--reps 2] [--batches 1,2,4,8] [--no-single] [--draft N]
//! ```
//!
//! Prints one JSON object on stdout (progress goes to stderr):
//! - `prompt`: prefill of a `--prompt-tokens` prompt (one row, one token generated): tokens/s.
//! - `decode`: one row generating up to `--gen` tokens from a short "write a long text" prompt:
//!   generated tokens / decode seconds (the decode clock starts after the prefill).
//! - `batches`: for each N, N different prompts in one `generate_ids` call: summed generated tokens /
//!   decode seconds.
//! - `rss`: `VmRSS` after loading and `VmHWM` (peak resident set) at the end, from /proc/self/status.
//!
//! Each figure is the mean over `--reps` runs, after one untimed warm-up call. Greedy decoding. Each run also
//! records the process CPU time it used (`cpu_seconds`): on a loaded machine, far less than the wall time.
//! Prompt-lookup drafts are off unless `--draft N` is given: the figures compare kernels with llama.cpp's
//! benchmarks, which do not draft.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use polysum::engine::generate::{Engine, Request, StopReason};
use polysum::engine::lookup::Lookup;
use polysum::engine::model::LoadOptions;
use serde_json::{json, Value};

/// Filler prose for the prefill measurement, repeated until the prompt has enough tokens.
const PROSE: &str = "The river town woke slowly that spring. Fishermen mended their nets on the stone quay while \
the baker, who had opened his shop before dawn for thirty years, argued with the mayor about the price of \
flour. Children ran between the market stalls, and an old woman sold honey from a wooden cart that her \
grandfather had built. Nobody noticed the stranger who arrived on the morning ferry with a leather case and a \
map of the hills. He asked the ferryman about the abandoned mill upstream, paid for a room above the tavern, \
and spent the afternoon writing letters by the window. By evening the whole town was talking about him. Some \
said he was a surveyor sent by the railway company, others that he had come to buy the vineyards on the \
southern slope, and the schoolteacher was sure he was a writer looking for a quiet place to finish a novel. \
The truth, as it turned out weeks later, was stranger than any of their guesses. The council met twice to \
discuss the matter, the newspaper printed a long article about the history of the mill, and the price of \
land near the river rose for the first time in a decade. ";

/// One topic per batch row, so that the rows of a batch are different prompts.
const TOPICS: &[&str] = &[
    "the history of the printing press and how it changed Europe",
    "how a city water supply system works, from the reservoir to the tap",
    "the life cycle of stars, from nebulae to white dwarfs and black holes",
    "the causes and consequences of the industrial revolution",
    "how bees build hives, find flowers and make honey",
    "the invention of the telephone and the growth of telephone networks",
    "the geography, climate and wildlife of the Amazon rainforest",
    "how bread is made, from growing wheat to baking the loaf",
];

struct Args {
    model: PathBuf,
    threads: usize,
    prompt_tokens: usize,
    gen: usize,
    reps: usize,
    batches: Vec<usize>,
    single: bool,
    draft: usize,
}

fn parse_args() -> Result<Args> {
    let mut args = Args {
        model: PathBuf::new(),
        threads: 2,
        prompt_tokens: 512,
        gen: 128,
        reps: 2,
        batches: vec![],
        single: true,
        draft: 0,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().with_context(|| format!("{a} needs a value"));
        match a.as_str() {
            "--model" => args.model = PathBuf::from(val()?),
            "--threads" => args.threads = val()?.parse()?,
            "--prompt-tokens" => args.prompt_tokens = val()?.parse()?,
            "--gen" => args.gen = val()?.parse()?,
            "--reps" => args.reps = val()?.parse::<usize>()?.max(1),
            "--batches" => {
                args.batches = val()?
                    .split(',')
                    .filter(|s| !s.trim().is_empty())
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "--no-single" => args.single = false,
            "--draft" => args.draft = val()?.parse()?,
            "-h" | "--help" => {
                eprintln!(
                    "usage: bench_engine --model FILE.gguf [--threads N] [--prompt-tokens N] [--gen N] [--reps \
                N] [--batches 1,2,4,8] [--no-single] [--draft N]"
                );
                std::process::exit(0);
            }
            other => bail!("unknown argument {other:?}"),
        }
    }
    if args.model.as_os_str().is_empty() {
        bail!("--model FILE.gguf is required");
    }
    if args.batches.iter().any(|&b| b == 0 || b > TOPICS.len()) {
        bail!("batch sizes must be between 1 and {}", TOPICS.len());
    }
    Ok(args)
}

/// A line of /proc/self/status, in KiB (0 where /proc is not there).
fn proc_status_kib(key: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// CPU time (user + system) this process has used so far, in seconds, from /proc/self/stat (0 without /proc).
/// Compared with the wall time of a phase, it shows how much of the machine the run actually got.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15 (clock ticks).
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Linux reports these in USER_HZ, which is 100 on every mainstream architecture.
    (ticks(11) + ticks(12)) / 100.0
}

fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len().max(1) as f64
}

fn stop_name(r: StopReason) -> &'static str {
    match r {
        StopReason::Eos => "eos",
        StopReason::StopString => "stop_string",
        StopReason::MaxTokens => "max_tokens",
    }
}

/// The "write a long text" prompt of one batch row, rendered with the model's chat template.
fn long_text_prompt(engine: &Engine, row: usize) -> Result<String> {
    let topic = TOPICS[row % TOPICS.len()];
    let user =
        format!("Write a long, detailed essay about {topic}. Write at least twelve paragraphs, and do not stop early.");
    engine.chat_prompt(None, &user, None)
}

/// N rows of greedy generation, `reps` times: (per-rep summary, mean summed tokens/s).
fn run_batch(engine: &Engine, rows: usize, gen: usize, reps: usize) -> Result<Value> {
    let prompts: Vec<String> = (0..rows).map(|r| long_text_prompt(engine, r)).collect::<Result<_>>()?;
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| engine.encode_prompt(p)).collect::<Result<_>>()?;
    let requests: Vec<Request> = prompts.iter().map(|p| Request::greedy(p.clone(), gen)).collect();
    let mut rates = Vec::new();
    let mut runs = Vec::new();
    for _ in 0..reps {
        let cpu0 = cpu_seconds();
        let (gens, stats) = engine.generate_ids(&ids, &requests, &mut |_, _| true)?;
        let cpu = cpu_seconds() - cpu0;
        let rate = stats.generated_tokens as f64 / stats.decode_seconds.max(1e-9);
        rates.push(rate);
        let per_row: Vec<usize> = gens.iter().map(|g| g.tokens.len()).collect();
        let stops: Vec<&str> = gens.iter().map(|g| stop_name(g.stop_reason)).collect();
        runs.push(json!({
            "generated_tokens": stats.generated_tokens,
            "decode_seconds": stats.decode_seconds,
            "prompt_tokens": stats.prompt_tokens,
            "prompt_seconds": stats.prompt_seconds,
            "tokens_per_row": per_row,
            "stop_reasons": stops,
            "tokens_per_second": rate,
            "cpu_seconds": cpu,
        }));
    }
    Ok(json!({
        "rows": rows,
        "max_new_tokens": gen,
        "prompt_tokens_per_row": ids.iter().map(|p| p.len()).collect::<Vec<_>>(),
        "tokens_per_second": mean(&rates),
        "runs": runs,
    }))
}

fn main() -> Result<()> {
    let args = parse_args()?;
    // Before any model work, and once per process.
    polysum::engine::device::set_cpu_threads(Some(args.threads));

    let t_load = Instant::now();
    let mut engine = Engine::load(&args.model, None, &LoadOptions::new(candle_core::Device::Cpu))
        .with_context(|| format!("loading {}", args.model.display()))?;
    engine.set_lookup(Lookup::with_max_draft(args.draft));
    let load_seconds = t_load.elapsed().as_secs_f64();
    let rss_after_load_kib = proc_status_kib("VmRSS");
    eprintln!("bench_engine: loaded {} in {load_seconds:.1}s ({} threads)", args.model.display(), args.threads);

    // Warm-up: first-call costs (thread pools, page faults on the mapped weights, allocator growth).
    {
        let p = long_text_prompt(&engine, 0)?;
        let ids = engine.encode_prompt(&p)?;
        engine.generate_ids(&[ids], &[Request::greedy(p, 4)], &mut |_, _| true)?;
    }

    let mut out = json!({
        "model": args.model.display().to_string(),
        "engine": "polysum",
        "threads": args.threads,
        "load_seconds": load_seconds,
        "reps": args.reps,
    });

    if args.single {
        // Prefill: exactly `prompt_tokens` tokens of prose, one token generated.
        let mut text = String::new();
        let mut ids = Vec::new();
        while ids.len() < args.prompt_tokens {
            text.push_str(PROSE);
            ids = engine.encode_prompt(&text)?;
        }
        ids.truncate(args.prompt_tokens);
        let mut rates = Vec::new();
        let mut secs = Vec::new();
        let mut cpu = Vec::new();
        for _ in 0..args.reps {
            let cpu0 = cpu_seconds();
            let (_, stats) =
                engine.generate_ids(&[ids.clone()], &[Request::greedy(text.clone(), 1)], &mut |_, _| true)?;
            cpu.push(cpu_seconds() - cpu0);
            rates.push(stats.prompt_tokens as f64 / stats.prompt_seconds.max(1e-9));
            secs.push(stats.prompt_seconds);
        }
        eprintln!("bench_engine: prompt {} tokens: {:.1} tok/s", ids.len(), mean(&rates));
        out["prompt"] =
            json!({ "tokens": ids.len(), "seconds": secs, "cpu_seconds": cpu, "tokens_per_second": mean(&rates) });

        let decode = run_batch(&engine, 1, args.gen, args.reps)?;
        eprintln!("bench_engine: decode: {:.1} tok/s", decode["tokens_per_second"].as_f64().unwrap_or(0.0));
        out["decode"] = decode;
    }

    let mut batches = Vec::new();
    for &b in &args.batches {
        let r = run_batch(&engine, b, args.gen, args.reps)?;
        eprintln!("bench_engine: batch {b}: {:.1} tok/s summed", r["tokens_per_second"].as_f64().unwrap_or(0.0));
        batches.push(r);
    }
    out["batches"] = Value::Array(batches);
    out["rss"] = json!({ "after_load_kib": rss_after_load_kib, "peak_kib": proc_status_kib("VmHWM") });
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}
