//! `polysum summarize INPUT... --out DIR`: English and Spanish (or other) summaries of every article,
//! incrementally, in parallel, cron-safe.
//!
//! inputs (`input`) → articles → prompts (`prompt`) → generation (`generator`, `pipeline`) → cleaned and
//! checked summaries (`guard`, `lang`) → files (`output`) and state (`state`), under a lock (`lock`),
//! driven by `runner` with `progress` reporting.

pub mod guard;
pub mod mapreduce;
pub mod pipeline;
pub mod prompt;
pub mod remote;

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Result;
use clap::Args;

use crate::backend::generator::{FakeGenerator, Generator};
use crate::cli::config::Config;
use crate::cli::{exit, ModelArgs};
use crate::engine::device::DeviceSpec;
use crate::job::output::Formats;
use crate::job::progress::{LogFormat, Reporter};
use crate::job::runner::{self, ModelSource, RunOptions};
use crate::job::{input, lock};
use crate::text::lang;
use prompt::Length;

/// The flags every batch command shares (`summarize`, `translate`): inputs, output, model, run control.
#[derive(Args, Debug, Clone, Default)]
pub struct JobArgs {
    /// Files and folders to read (folders recursively): .txt, .md, .html/.htm, .json, .jsonl.
    pub inputs: Vec<PathBuf>,
    /// Output folder: mirrors the input tree, plus index.jsonl and the state in .polysum/.
    #[arg(long, short = 'o')]
    pub out: Option<PathBuf>,
    /// Settings file (default: ./polysum.toml when it exists, or $POLYSUM_CONFIG). Flags override it.
    #[arg(long, env = "POLYSUM_CONFIG")]
    pub config: Option<PathBuf>,
    /// A registry name, hf:ORG/REPO/FILE[@REVISION], or a path to a .gguf file [default: qwen2.5-coder-1.5b].
    #[arg(long, short = 'm', env = "POLYSUM_MODEL")]
    pub model: Option<String>,
    /// auto, cpu, cuda, cuda:N or metal [default: auto].
    #[arg(long)]
    pub device: Option<String>,
    /// CPU threads for the model's kernels [default: all cores].
    #[arg(long, value_parser = crate::cli::bounds::threads)]
    pub threads: Option<usize>,
    /// Keep Q4_1/Q5_0/Q5_1 tensors as they are instead of re-quantizing them to Q8_0.
    #[arg(long)]
    pub no_requantize: bool,
    /// Files per article: json, md or json,md [default: json,md].
    #[arg(long)]
    pub format: Option<String>,
    /// Articles in flight at once; their generation steps run as one batch [default: 1 on a CPU, 16 on a GPU].
    #[arg(long, short = 'j', value_parser = crate::cli::bounds::jobs)]
    pub jobs: Option<usize>,
    /// Redo every article, even those already done.
    #[arg(long)]
    pub force: bool,
    /// Print only errors and the final line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
    /// text or json (one JSON object per line) [default: text].
    #[arg(long)]
    pub log_format: Option<String>,
    /// Lower the context the prompts may use (tokens) below the model's [default: the model's, at most 8192].
    #[arg(long, value_parser = crate::cli::bounds::context)]
    pub max_context: Option<usize>,
    /// Reject input files larger than this many bytes [default: 8 MiB].
    #[arg(long)]
    pub max_bytes: Option<u64>,
}

#[derive(Args, Debug, Clone, Default)]
pub struct SummarizeArgs {
    #[command(flatten)]
    pub job: JobArgs,
    /// Summary languages, comma-separated [default: en,es]. Supported: en, es, fr, de, it, pt, ca, nl.
    #[arg(long)]
    pub langs: Option<String>,
    /// Summary length in sentences [default: 3].
    #[arg(long, conflicts_with = "max_words")]
    pub sentences: Option<usize>,
    /// Summary length in words (instead of --sentences).
    #[arg(long)]
    pub max_words: Option<usize>,
    /// Cut articles to this many tokens (flag `truncated_input`). Without it nothing is cut: an article
    /// longer than the context is summarized in chunks (map-reduce).
    #[arg(long)]
    pub max_input_tokens: Option<usize>,
    /// translate: a summary in the article's language, translated into the other languages; direct: every
    /// summary from the article [default: translate].
    #[arg(long, value_enum)]
    pub strategy: Option<pipeline::SummaryStrategy>,
    #[command(flatten)]
    pub scale: remote::ScaleArgs,
}

/// Everything a run needs, after flags, config file and defaults are merged.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub run: RunOptions,
    pub model: ModelArgs,
    pub quiet: bool,
    pub log_format: LogFormat,
    /// `--backend openai`: the server to generate with instead of `model`.
    pub remote: Option<crate::backend::openai::OpenAiConfig>,
}

/// A problem with what the user asked for (exit code 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

fn usage(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::Error::new(UsageError(format!("{e:#}")))
}

/// Merge flags over the config file over the defaults, and validate.
pub fn resolve(args: &SummarizeArgs) -> Result<Resolved> {
    let job = &args.job;
    let config = Config::find(job.config.as_deref()).map_err(usage)?.unwrap_or_default();
    let inputs = if job.inputs.is_empty() { config.inputs.clone() } else { job.inputs.clone() };
    if inputs.is_empty() {
        return Err(usage("no inputs: give files or folders to summarize (or `inputs` in polysum.toml)"));
    }
    for i in &inputs {
        if !i.exists() {
            return Err(usage(format!("input {} does not exist", i.display())));
        }
    }
    let out = job
        .out
        .clone()
        .or(config.out.clone())
        .ok_or_else(|| usage("--out DIR is required (or `out` in polysum.toml)"))?;
    let langs = lang::parse_langs(&args.langs.clone().or(config.langs.clone()).unwrap_or_else(|| "en,es".into()))
        .map_err(usage)?;
    let formats = Formats::parse(&job.format.clone().or(config.format.clone()).unwrap_or_else(|| "json,md".into()))
        .map_err(usage)?;
    let length = match (args.sentences, args.max_words) {
        (Some(n), _) => Length::Sentences(n),
        (None, Some(w)) => Length::MaxWords(w),
        (None, None) => match (config.sentences, config.max_words) {
            (Some(_), Some(_)) => return Err(usage("polysum.toml sets both `sentences` and `max_words`: keep one")),
            (Some(n), None) => Length::Sentences(n),
            (None, Some(w)) => Length::MaxWords(w),
            (None, None) => Length::Sentences(3),
        },
    };
    match length {
        Length::Sentences(0) | Length::MaxWords(0) => return Err(usage("the summary length must be at least 1")),
        Length::Sentences(n) if n > 20 => return Err(usage("--sentences is at most 20")),
        Length::MaxWords(w) if w > 500 => return Err(usage("--max-words is at most 500")),
        _ => {}
    }
    let log_format: LogFormat =
        job.log_format.clone().or(config.log_format.clone()).unwrap_or_else(|| "text".into()).parse().map_err(usage)?;
    let device: DeviceSpec =
        job.device.clone().or(config.device.clone()).unwrap_or_else(|| "auto".into()).parse().map_err(usage)?;
    let scale = config.scale_under(&args.scale).map_err(usage)?;
    let remote = scale.remote().map_err(usage)?;
    let shard = scale.shard().map_err(usage)?;
    // A remote server batches across requests itself: keep enough articles going to fill --max-inflight.
    let jobs = job.jobs.or(config.jobs).or(remote.as_ref().map(|r| r.max_inflight.div_ceil(2).max(1)));
    let jobs = jobs.map(crate::cli::bounds::check_jobs).transpose().map_err(usage)?;
    // The articles in flight share one engine thread and its batch (`crate::engine::scheduler`), so the kernels
    // keep every core whatever --jobs is.
    let threads = job.threads.or(config.threads);
    let model = ModelArgs {
        model: job.model.clone().or(config.model.clone()).unwrap_or_else(|| crate::DEFAULT_MODEL.to_string()),
        device,
        threads,
        no_requantize: job.no_requantize || config.no_requantize.unwrap_or(false),
    };
    let max_context = job.max_context.or(config.max_context);
    if max_context.is_some_and(|c| c < 256) {
        return Err(usage("--max-context is at least 256 tokens"));
    }
    let settings = pipeline::Settings {
        length,
        max_input_tokens: args.max_input_tokens.or(config.max_input_tokens),
        max_context,
        strategy: args.strategy.or(config.strategy).unwrap_or_default(),
    };
    Ok(Resolved {
        run: RunOptions {
            inputs,
            out,
            langs,
            task: runner::Task::Summarize(settings),
            formats,
            force: job.force || config.force.unwrap_or(false),
            jobs,
            max_bytes: job.max_bytes.or(config.max_bytes).unwrap_or(input::DEFAULT_MAX_BYTES),
            shard,
        },
        model,
        quiet: job.quiet || config.quiet.unwrap_or(false),
        log_format,
        remote,
    })
}

/// The model's id without loading it (the GGUF file's stem, as `Engine::name` gives it), and its loader.
fn model_source(
    args: &ModelArgs,
    remote: Option<&crate::backend::openai::OpenAiConfig>,
) -> Result<ModelSource<'static>> {
    if let Some(cfg) = remote {
        let cfg = cfg.clone();
        return Ok(ModelSource {
            model_id: remote::remote_model_id(&cfg),
            load: Box::new(move || {
                Ok(Box::new(crate::backend::openai::OpenAiClient::connect(cfg)?) as Box<dyn Generator>)
            }),
        });
    }
    // The scripted stand-in model exists for the test suite's runs of the binary; a user's `--model fake`
    // must never silently get it.
    let fake =
        if std::env::var_os(FakeGenerator::ENABLE_ENV).is_some() { FakeGenerator::parse(&args.model)? } else { None };
    if let Some(fake) = fake {
        return Ok(ModelSource {
            model_id: fake.model_id(),
            load: Box::new(move || Ok(Box::new(fake) as Box<dyn Generator>)),
        });
    }
    let resolved = crate::registry::resolve_model(&args.model)?;
    let model_id =
        resolved.gguf.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| args.model.clone());
    let args = args.clone();
    Ok(ModelSource {
        model_id,
        load: Box::new(move || {
            let engine = args.load_engine()?;
            let rows = if engine.device().is_cpu() {
                crate::engine::scheduler::CPU_ROWS
            } else {
                crate::engine::scheduler::GPU_ROWS
            };
            Ok(Box::new(crate::engine::scheduler::Scheduler::new(engine, rows)?) as Box<dyn Generator>)
        }),
    })
}

/// The `summarize` subcommand; returns the exit code.
pub fn main(args: SummarizeArgs) -> Result<i32> {
    run_command(&args, |_| {})
}

/// Resolve `args`, let `customize` change the run (the translate command sets its task), and run it.
pub fn run_command(args: &SummarizeArgs, customize: impl FnOnce(&mut RunOptions)) -> Result<i32> {
    let mut resolved = match resolve(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(exit::USAGE);
        }
    };
    customize(&mut resolved.run);
    let reporter = Reporter::new(resolved.log_format, resolved.quiet, std::io::stderr().is_terminal());
    let model = match model_source(&resolved.model, resolved.remote.as_ref()) {
        Ok(m) => m,
        Err(e) => {
            reporter.error(&format!("{e:#}"));
            return Ok(exit::FATAL);
        }
    };
    match runner::run(&resolved.run, model, &reporter) {
        Ok(report) => {
            let code = if report.failed > 0 { exit::SOME_FAILED } else { exit::OK };
            reporter.finish(&report, code);
            Ok(code)
        }
        Err(e) => {
            if e.downcast_ref::<UsageError>().is_some() {
                reporter.error(&format!("{e:#}"));
                return Ok(exit::USAGE);
            }
            if let Some(lock) = e.downcast_ref::<lock::LockError>() {
                if matches!(lock, lock::LockError::Held { .. }) {
                    reporter.error(&lock.to_string());
                    return Ok(exit::LOCKED);
                }
            }
            reporter.error(&format!("{e:#}"));
            Ok(exit::FATAL)
        }
    }
}
