//! Raw flags → typed options, before anything runs: flags win over `polysum.toml`, which wins over the
//! defaults, and every value is checked here, so the library only ever sees valid settings. Every error is a
//! `UsageError` (exit 2).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::args::{JobArgs, ModelArgs, SummarizeArgs, TranslateArgs};
use super::config::Config;
use crate::backend::openai::OpenAiConfig;
use crate::backend::{Backend, LocalModel};
use crate::engine::device::DeviceSpec;
use crate::error::UsageError;
use crate::job::input;
use crate::job::output::Formats;
use crate::job::progress::LogFormat;
use crate::job::runner::RunOptions;
use crate::job::shard::ShardSpec;
use crate::summarize::pipeline::{Settings, SummaryStrategy};
use crate::summarize::prompt::Length;
use crate::summarize::Summarize;
use crate::text::lang::{self, Lang};
use crate::translate::Translate;

/// How a batch run reports: log format and verbosity.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Logging {
    pub(crate) format: LogFormat,
    pub(crate) quiet: bool,
}

/// A batch run, resolved: what to read and write, which model, and how to report.
pub(crate) struct Job<T> {
    pub(crate) run: RunOptions,
    pub(crate) task: T,
    pub(crate) backend: Backend,
    pub(crate) logging: Logging,
}

fn usage(msg: impl std::fmt::Display) -> anyhow::Error {
    UsageError::wrap(msg)
}

/// The model flags (over the config file's, for the batch commands) as a backend choice.
pub(crate) fn backend(args: &ModelArgs, config: &Config) -> Result<Backend> {
    let device: DeviceSpec =
        args.device.clone().or(config.device.clone()).unwrap_or_else(|| "auto".into()).parse().map_err(usage)?;
    let spec = args.model.clone().or(config.model.clone()).unwrap_or_else(|| crate::DEFAULT_MODEL.to_string());
    let local = LocalModel {
        spec,
        device,
        threads: args.threads.or(config.threads),
        requantize: !(args.no_requantize || config.no_requantize.unwrap_or(false)),
    };
    match args.backend.as_deref().unwrap_or("local") {
        "local" => {
            if args.endpoint.is_some() || args.remote_model.is_some() {
                return Err(usage("--endpoint and --remote-model need --backend openai"));
            }
            #[cfg(feature = "fake-model")]
            {
                use crate::backend::fake::FakeGenerator;
                if std::env::var_os(FakeGenerator::ENABLE_ENV).is_some() {
                    if let Some(fake) = FakeGenerator::parse(&local.spec).map_err(usage)? {
                        return Ok(Backend::Fake(fake));
                    }
                }
            }
            Ok(Backend::Local(local))
        }
        "openai" => Ok(Backend::OpenAi(openai(args)?)),
        other => Err(usage(format!("--backend {other:?}: use local or openai"))),
    }
}

fn openai(args: &ModelArgs) -> Result<OpenAiConfig> {
    let Some(endpoint) = args.endpoint.clone() else {
        return Err(usage("--backend openai needs --endpoint URL (e.g. http://127.0.0.1:8000)"));
    };
    let Some(model) = args.remote_model.clone() else {
        return Err(usage("--backend openai needs --remote-model NAME (the model the server serves)"));
    };
    let mut cfg = OpenAiConfig::new(endpoint, model).api_key_from_env(args.api_key_env.as_deref()).map_err(usage)?;
    if let Some(n) = args.max_inflight {
        if n == 0 {
            return Err(usage("--max-inflight must be at least 1"));
        }
        cfg.max_inflight = n;
    }
    if let Some(t) = args.timeout {
        if !(t > 0.0 && t.is_finite()) {
            return Err(usage("--timeout must be a positive number of seconds"));
        }
        cfg.timeout = Duration::from_secs_f64(t);
    }
    if let Some(r) = args.retries {
        cfg.max_retries = r;
    }
    if let Some(c) = args.remote_context {
        cfg.context_length = c;
    }
    Ok(cfg)
}

/// What the batch commands share, resolved: run options, backend, logging.
fn job_common(
    job: &JobArgs,
    config: &Config,
    inputs: Vec<PathBuf>,
    out: PathBuf,
) -> Result<(RunOptions, Backend, Logging)> {
    for i in &inputs {
        if !i.exists() {
            return Err(usage(format!("input {} does not exist", i.display())));
        }
    }
    let formats = Formats::parse(&job.format.clone().or(config.format.clone()).unwrap_or_else(|| "json,md".into()))
        .map_err(usage)?;
    let format: LogFormat =
        job.log_format.clone().or(config.log_format.clone()).unwrap_or_else(|| "text".into()).parse().map_err(usage)?;
    let backend = backend(&job.model, config)?;
    // A remote server batches across requests itself: keep enough articles going to fill --max-inflight.
    let remote_jobs = match &backend {
        Backend::OpenAi(cfg) => Some(cfg.max_inflight.div_ceil(2).max(1)),
        _ => None,
    };
    let jobs = job.jobs.or(config.jobs).or(remote_jobs);
    if jobs == Some(0) {
        return Err(usage("--jobs must be at least 1"));
    }
    let run = RunOptions {
        inputs,
        out,
        formats,
        force: job.force || config.force.unwrap_or(false),
        jobs,
        max_bytes: job.max_bytes.or(config.max_bytes).unwrap_or(input::DEFAULT_MAX_BYTES),
        shard: None,
    };
    let logging = Logging { format, quiet: job.quiet || config.quiet.unwrap_or(false) };
    Ok((run, backend, logging))
}

fn max_context(job: &JobArgs, config: &Config) -> Result<Option<usize>> {
    let max_context = job.max_context.or(config.max_context);
    if max_context.is_some_and(|c| c < 256) {
        return Err(usage("--max-context is at least 256 tokens"));
    }
    Ok(max_context)
}

/// `polysum summarize`: flags over `polysum.toml` over the defaults.
pub(crate) fn summarize(args: &SummarizeArgs) -> Result<Job<Summarize>> {
    let job = &args.job;
    let config = Config::find(job.config.as_deref()).map_err(usage)?.unwrap_or_default();
    let inputs = if job.inputs.is_empty() { config.inputs.clone() } else { job.inputs.clone() };
    if inputs.is_empty() {
        return Err(usage("no inputs: give files or folders to summarize (or `inputs` in polysum.toml)"));
    }
    let out = job
        .out
        .clone()
        .or(config.out.clone())
        .ok_or_else(|| usage("--out DIR is required (or `out` in polysum.toml)"))?;
    let langs = lang::parse_langs(&args.langs.clone().or(config.langs.clone()).unwrap_or_else(|| "en,es".into()))
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
    let strategy = match &args.strategy {
        Some(s) => s.parse::<SummaryStrategy>().map_err(usage)?,
        None => config.strategy.unwrap_or_default(),
    };
    let (mut run, backend, logging) = job_common(job, &config, inputs, out)?;
    run.shard = args.shard.as_deref().map(ShardSpec::parse).transpose().map_err(usage)?;
    let settings = Settings {
        length,
        max_input_tokens: args.max_input_tokens.or(config.max_input_tokens),
        max_context: max_context(job, &config)?,
        strategy,
        check_language: !args.skip_language_check,
    };
    Ok(Job { run, task: Summarize { langs, settings }, backend, logging })
}

/// `polysum translate`: the flags alone for inputs and output (never `polysum.toml`'s, which name the
/// summarize job's folders: translations written there would replace the summaries' files); the file's
/// model and run settings apply.
pub(crate) fn translate(args: &TranslateArgs) -> Result<Job<Translate>> {
    let one = |value: &str, flag: &str| -> Result<Lang> {
        match lang::parse_langs(value).map_err(usage)?.as_slice() {
            [l] => Ok(*l),
            _ => Err(usage(format!("{flag} takes one language"))),
        }
    };
    let to = one(&args.to, "--to")?;
    let from = match args.from.as_str() {
        "auto" => None,
        other => Some(one(other, "--from")?),
    };
    let job = &args.job;
    if job.inputs.is_empty() {
        return Err(usage("no inputs: give files or folders to translate"));
    }
    let Some(out) = job.out.clone() else { return Err(usage("--out DIR is required")) };
    let config = Config::find(job.config.as_deref()).map_err(usage)?.unwrap_or_default();
    let (run, backend, logging) = job_common(job, &config, job.inputs.clone(), out)?;
    let task = Translate { to, from, max_context: job.max_context };
    Ok(Job { run, task, backend, logging })
}
