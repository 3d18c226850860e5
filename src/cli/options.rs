//! Raw flags → typed options, before anything runs: flags win over `polysum.toml`, which wins over the
//! defaults, and every value is checked here, so the library only ever sees valid settings. Every error is a
//! `UsageError` (exit 2).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use super::args::{JobArgs, ModelArgs, SummarizeArgs, TranslateArgs};
use super::bounds;
use super::config::Config;
use crate::backend::openai::{Dialect, OpenAiConfig};
use crate::backend::{Backend, LocalModel};
use crate::engine::device::DeviceSpec;
use crate::engine::lookup::Lookup;
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
    let threads = args.threads.or(config.threads).map(bounds::check_threads).transpose().map_err(usage)?;
    let draft = args.draft.or(config.draft).map(bounds::check_draft).transpose().map_err(usage)?;
    let local = LocalModel {
        spec,
        device,
        threads,
        requantize: !(args.no_requantize || config.no_requantize.unwrap_or(false)),
        lookup: draft.map_or_else(Lookup::default, Lookup::with_max_draft),
    };
    // Checked whatever the backend: a bad value in the file is an error the day it is written, not the
    // day someone switches to the server.
    let limits = server_limits(args, config)?;
    match args.backend.as_deref().or(config.backend.as_deref()).unwrap_or("local") {
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
        "openai" => Ok(Backend::OpenAi(openai(args, config, &limits)?)),
        other => Err(usage(format!("--backend {other:?}: use local or openai"))),
    }
}

/// The server's numeric settings, flags over `polysum.toml`, each bounded as its flag is.
struct ServerLimits {
    max_inflight: Option<usize>,
    timeout: Option<Duration>,
    retries: Option<u32>,
    context: Option<usize>,
    dialect: Dialect,
}

fn server_limits(args: &ModelArgs, config: &Config) -> Result<ServerLimits> {
    Ok(ServerLimits {
        max_inflight: args
            .max_inflight
            .or(config.max_inflight)
            .map(bounds::check_max_inflight)
            .transpose()
            .map_err(usage)?,
        timeout: args.timeout.or(config.timeout).map(bounds::check_timeout).transpose().map_err(usage)?,
        retries: args.retries.or(config.retries).map(bounds::check_retries).transpose().map_err(usage)?,
        context: args.remote_context.or(config.remote_context).map(bounds::check_context).transpose().map_err(usage)?,
        dialect: match &args.remote_dialect {
            Some(d) => d.parse().map_err(usage)?,
            None => config.remote_dialect.unwrap_or_default(),
        },
    })
}

/// The server settings: flags over `polysum.toml`.
fn openai(args: &ModelArgs, config: &Config, limits: &ServerLimits) -> Result<OpenAiConfig> {
    let Some(endpoint) = args.endpoint.clone().or(config.endpoint.clone()) else {
        return Err(usage("--backend openai needs --endpoint URL (e.g. http://127.0.0.1:8000)"));
    };
    let Some(model) = args.remote_model.clone().or(config.remote_model.clone()) else {
        return Err(usage("--backend openai needs --remote-model NAME (the model the server serves)"));
    };
    let key_env = args.api_key_env.as_deref().or(config.api_key_env.as_deref());
    let mut cfg = OpenAiConfig::new(endpoint, model).api_key_from_env(key_env).map_err(usage)?;
    cfg.max_inflight = limits.max_inflight.unwrap_or(cfg.max_inflight);
    cfg.timeout = limits.timeout.unwrap_or(cfg.timeout);
    cfg.max_retries = limits.retries.unwrap_or(cfg.max_retries);
    cfg.context_length = limits.context.unwrap_or(cfg.context_length);
    cfg.dialect = limits.dialect;
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
    let jobs = job.jobs.or(config.jobs).or(remote_jobs).map(bounds::check_jobs).transpose().map_err(usage)?;
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

/// `--candidates` over `candidates` in the file over one.
fn candidates(flag: Option<usize>, config: &Config) -> Result<usize> {
    match flag {
        Some(n) => Ok(n),
        None => config.candidates.map(bounds::check_candidates).transpose().map_err(usage).map(|n| n.unwrap_or(1)),
    }
}

fn max_context(job: &JobArgs, config: &Config) -> Result<Option<usize>> {
    job.max_context.or(config.max_context).map(bounds::check_context).transpose().map_err(usage)
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
    let verify = match &args.verify {
        Some(v) => v.parse::<crate::verify::Mode>().map_err(usage)?,
        None => config.verify.unwrap_or_default(),
    };
    let grounding = match &args.grounding {
        Some(g) => g.parse::<crate::summarize::ground::Grounding>().map_err(usage)?,
        None => config.grounding.unwrap_or_default(),
    };
    let candidates = candidates(args.candidates, &config)?;
    let (mut run, backend, logging) = job_common(job, &config, inputs, out)?;
    run.shard = args.shard.as_deref().or(config.shard.as_deref()).map(ShardSpec::parse).transpose().map_err(usage)?;
    let settings = Settings {
        length,
        max_input_tokens: args.max_input_tokens.or(config.max_input_tokens),
        max_context: max_context(job, &config)?,
        strategy,
        check_language: !args.skip_language_check,
        verify,
        grounding,
        candidates,
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
    let verify = match &args.verify {
        Some(v) => v.parse::<crate::verify::Mode>().map_err(usage)?,
        None => config.verify.unwrap_or_default(),
    };
    let candidates = candidates(args.candidates, &config)?;
    let task = Translate { to, from, max_context: job.max_context, verify, candidates };
    Ok(Job { run, task, backend, logging })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn config(text: &str) -> Config {
        Config::parse(text, Path::new(".")).unwrap()
    }

    #[test]
    fn the_files_server_settings_apply_under_the_flags() {
        let c = config(
            "backend = \"openai\"\nendpoint = \"http://h\"\nremote_model = \"r\"\nmax_inflight = 4\ntimeout = 7.5\n\
             retries = 1\nremote_context = 2048\nremote_dialect = \"vllm\"\n",
        );
        let Backend::OpenAi(cfg) = backend(&ModelArgs::default(), &c).unwrap() else { panic!("not the server") };
        assert_eq!((cfg.endpoint.as_str(), cfg.model.as_str(), cfg.max_inflight), ("http://h", "r", 4));
        assert_eq!((cfg.timeout, cfg.max_retries, cfg.context_length), (Duration::from_millis(7500), 1, 2048));
        assert_eq!(cfg.dialect, Dialect::Vllm);
        let flags = ModelArgs {
            remote_model: Some("flag".into()),
            max_inflight: Some(2),
            remote_dialect: Some("llama.cpp".into()),
            ..ModelArgs::default()
        };
        let Backend::OpenAi(cfg) = backend(&flags, &c).unwrap() else { panic!("not the server") };
        assert_eq!((cfg.model.as_str(), cfg.max_inflight, cfg.dialect), ("flag", 2, Dialect::LlamaCpp), "flags win");
        let unknown = ModelArgs { remote_dialect: Some("ollama".into()), ..ModelArgs::default() };
        let err = backend(&unknown, &c).unwrap_err();
        assert!(err.downcast_ref::<UsageError>().is_some() && format!("{err}").contains("ollama"), "{err:#}");
        let local = ModelArgs { backend: Some("local".into()), ..ModelArgs::default() };
        assert!(matches!(backend(&local, &c).unwrap(), Backend::Local(_)), "flags win");
        let local_unknown = ModelArgs { remote_dialect: Some("ollama".into()), ..local };
        assert!(backend(&local_unknown, &c).is_err(), "a bad --remote-dialect is an error whatever the backend");
    }

    #[test]
    fn the_files_values_are_bounded_like_the_flags() {
        let base = "backend = \"openai\"\nendpoint = \"http://h\"\nremote_model = \"r\"\n";
        for bad in
            ["timeout = 1e20", "max_inflight = 0", "retries = 1000", "remote_context = 10", "threads = 0", "draft = 16"]
        {
            let err = backend(&ModelArgs::default(), &config(&format!("{base}{bad}\n"))).unwrap_err();
            assert!(err.downcast_ref::<UsageError>().is_some(), "{bad}: {err:#}");
        }
    }

    #[test]
    fn the_files_shard_and_jobs_apply() {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = tmp.path().join("polysum.toml");
        std::fs::write(
            &cfg,
            format!("inputs = [\"{0}\"]\nout = \"{0}/out\"\nshard = \"1/2\"\njobs = 3\n", tmp.path().display()),
        )
        .unwrap();
        let args = SummarizeArgs {
            job: JobArgs { config: Some(cfg.clone()), ..JobArgs::default() },
            ..SummarizeArgs::default()
        };
        let job = summarize(&args).unwrap();
        assert_eq!((job.run.shard.map(|s| s.to_string()), job.run.jobs), (Some("1/2".into()), Some(3)));
        std::fs::write(&cfg, format!("inputs = [\"{}\"]\nout = \"o\"\njobs = 100000\n", tmp.path().display())).unwrap();
        assert!(summarize(&args).err().unwrap().downcast_ref::<UsageError>().is_some());
    }
}
