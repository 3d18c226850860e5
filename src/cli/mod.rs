//! Command-line arguments, in one place. Each subcommand's work lives in the library.

pub mod bounds;
pub mod config;
pub mod models;

use std::io::Write;
use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Parser, Subcommand};

use crate::engine::device::DeviceSpec;
use crate::engine::generate::{Engine, Request};
use crate::engine::model::LoadOptions;
use crate::engine::sampling::SamplingParams;

/// Exit codes shared by every subcommand.
pub mod exit {
    pub const OK: i32 = 0;
    pub const FATAL: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const SOME_FAILED: i32 = 3;
    pub const LOCKED: i32 = 4;
}

#[derive(Parser, Debug)]
#[command(
    name = "polysum",
    version,
    about = "English and Spanish summaries of news articles with a local language model"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Generate text from one prompt (a debugging aid for the engine); prints speed on stderr.
    Generate(GenerateArgs),
    /// Summarize every article under INPUT... into --out DIR, in English and Spanish (see docs/OUTPUT.md).
    Summarize(crate::summarize::SummarizeArgs),
    /// Translate whole articles under INPUT... into --to LANG, paragraph by paragraph, into --out DIR.
    Translate(crate::translate::TranslateArgs),
    /// The model registry and cache: list, pull, verify, path, rm.
    Models(crate::cli::models::ModelsArgs),
    /// Compare the English and Spanish summaries that `summarize` wrote (numbers, names, back-translation).
    Compare(crate::compare::CompareArgs),
    /// Combine the output folders of sharded runs (`summarize --shard K/N`) into one.
    Merge(crate::job::merge::MergeArgs),
}

/// How to load a model: shared by every subcommand that runs one.
#[derive(Args, Debug, Clone)]
pub struct ModelArgs {
    /// A registry name (see `polysum models list`), hf:ORG/REPO/FILE[@REVISION], or a path to a .gguf file.
    #[arg(long, short = 'm', env = "POLYSUM_MODEL", default_value = crate::DEFAULT_MODEL)]
    pub model: String,
    /// auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "auto")]
    pub device: DeviceSpec,
    /// CPU threads for the model's kernels (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Keep Q4_1/Q5_0/Q5_1 tensors as they are instead of re-quantizing them to Q8_0 (which has fast CPU kernels).
    #[arg(long)]
    pub no_requantize: bool,
}

impl ModelArgs {
    pub fn load_engine(&self) -> Result<Engine> {
        crate::engine::device::set_cpu_threads(self.threads);
        let device = self.device.open()?;
        let resolved = crate::registry::resolve_model(&self.model)?;
        let opts = LoadOptions { requantize: !self.no_requantize && device.is_cpu(), ..LoadOptions::new(device) };
        Engine::load(&resolved.gguf, resolved.tokenizer_json.as_deref(), &opts)
    }
}

#[derive(Args, Debug)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// The user message.
    #[arg(long)]
    pub prompt: String,
    #[arg(long)]
    pub system: Option<String>,
    /// Text that starts the assistant's answer.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Send the prompt as it is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Greedy decoding (same as --temperature 0).
    #[arg(long)]
    pub greedy: bool,
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f64,
    #[arg(long)]
    pub top_k: Option<usize>,
    #[arg(long, default_value_t = 0.9)]
    pub top_p: f64,
    #[arg(long, default_value_t = 1.1)]
    pub repetition_penalty: f32,
    #[arg(long, default_value_t = 299792458)]
    pub seed: u64,
    /// Stop when this text appears (repeatable).
    #[arg(long = "stop")]
    pub stop: Vec<String>,
}

pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { exit::USAGE } else { exit::OK };
            let _ = e.print();
            return code;
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            exit::FATAL
        }
    }
}

pub fn run(cli: Cli) -> Result<i32> {
    match cli.command {
        Command::Generate(args) => generate(args),
        Command::Summarize(args) => crate::summarize::main(args),
        Command::Translate(args) => crate::translate::main(args),
        Command::Models(args) => crate::cli::models::run(args),
        Command::Compare(args) => crate::compare::main(args),
        Command::Merge(args) => crate::job::merge::main(args),
    }
}

fn generate(args: GenerateArgs) -> Result<i32> {
    let engine = args.model.load_engine()?;
    let prompt = if args.raw {
        args.prompt.clone()
    } else {
        engine.chat_prompt(args.system.as_deref(), &args.prompt, args.prefix.as_deref())?
    };
    let sampling = if args.greedy || args.temperature <= 0.0 {
        SamplingParams::greedy()
    } else {
        SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: Some(args.top_p).filter(|p| *p < 1.0),
            repetition_penalty: args.repetition_penalty,
            repetition_window: 64,
            seed: args.seed,
        }
    };
    let request = Request { prompt, max_new_tokens: args.max_tokens, sampling, stop_strings: args.stop.clone() };
    let mut stdout = std::io::stdout();
    if let Some(prefix) = &args.prefix {
        print!("{prefix}");
    }
    let (gens, stats) = engine.generate_streaming(std::slice::from_ref(&request), &mut |_, piece| {
        let _ = write!(stdout, "{piece}");
        let _ = stdout.flush();
        true
    })?;
    println!();
    let g = &gens[0];
    eprintln!(
        "prompt: {} tokens, {:.1} tokens/s | decode: {} tokens, {:.1} tokens/s | stop: {:?}",
        stats.prompt_tokens,
        stats.prompt_tokens as f64 / stats.prompt_seconds.max(1e-9),
        g.tokens.len(),
        stats.generated_tokens as f64 / stats.decode_seconds.max(1e-9),
        g.stop_reason
    );
    Ok(exit::OK)
}

/// Paths given on the command line, for subcommands that read inputs.
pub type Inputs = Vec<PathBuf>;
