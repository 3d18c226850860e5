//! Every flag of every subcommand, as clap parses them: raw values, not yet merged with `polysum.toml` or
//! checked. `options` turns them into the typed options the library takes.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub(crate) use super::models::ModelsArgs;

#[derive(Parser, Debug)]
#[command(
    name = "polysum",
    version,
    about = "English and Spanish summaries of news articles with a local language model"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Generate text from one prompt (a debugging aid for the engine); prints speed on stderr.
    Generate(GenerateArgs),
    /// Summarize every article under INPUT... into --out DIR, in English and Spanish (see docs/OUTPUT.md).
    Summarize(SummarizeArgs),
    /// Translate whole articles under INPUT... into --to LANG, paragraph by paragraph, into --out DIR.
    Translate(TranslateArgs),
    /// The model registry and cache: list, pull, verify, path, rm.
    Models(ModelsArgs),
    /// Compare the English and Spanish summaries that `summarize` wrote (numbers, names, back-translation).
    Compare(CompareArgs),
    /// Check claims against an article: each claim's evidence sentences, hard checks (numbers, dates, names,
    /// negation, actor) and the model's judgment.
    Check(CheckArgs),
    /// Combine the output folders of sharded runs (`summarize --shard K/N`) into one.
    Merge(MergeArgs),
}

/// Which model generates, and how: shared by every subcommand that runs one. Unset values come from
/// `polysum.toml` (for the batch commands), then the defaults.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct ModelArgs {
    /// A registry name (see `polysum models list`), hf:ORG/REPO/FILE[@REVISION], or a path to a .gguf file
    /// [default: qwen2.5-coder-1.5b].
    #[arg(long, short = 'm', env = "POLYSUM_MODEL")]
    pub(crate) model: Option<String>,
    /// auto, cpu, cuda, cuda:N or metal [default: auto].
    #[arg(long)]
    pub(crate) device: Option<String>,
    /// CPU threads for the model's kernels [default: all cores].
    #[arg(long, value_parser = super::bounds::threads)]
    pub(crate) threads: Option<usize>,
    /// Keep Q4_1/Q5_0/Q5_1 tensors as they are instead of re-quantizing them to Q8_0 (which has fast CPU kernels).
    #[arg(long)]
    pub(crate) no_requantize: bool,
    /// Tokens drafted per decode step from the prompt (prompt-lookup speculative decoding of a greedy
    /// sequence decoding alone; the model keeps those it would have picked), 0 to turn it off [default: 8].
    #[arg(long, value_parser = super::bounds::draft)]
    pub(crate) draft: Option<usize>,
    /// local (the built-in engine) or openai (a server speaking the OpenAI chat-completions protocol:
    /// vLLM, llama.cpp's server, TGI, Ollama) [default: local].
    #[arg(long)]
    pub(crate) backend: Option<String>,
    /// With --backend openai: the server's URL, with or without /v1 (e.g. http://vllm:8000).
    #[arg(long)]
    pub(crate) endpoint: Option<String>,
    /// With --backend openai: the environment variable holding the API key (sent as a bearer token).
    #[arg(long)]
    pub(crate) api_key_env: Option<String>,
    /// With --backend openai: the model name the server serves.
    #[arg(long)]
    pub(crate) remote_model: Option<String>,
    /// With --backend openai: requests open at once, over all articles [default: 8].
    #[arg(long, value_parser = super::bounds::max_inflight)]
    pub(crate) max_inflight: Option<usize>,
    /// With --backend openai: seconds one request may take before it is retried [default: 300].
    #[arg(long, value_parser = super::bounds::timeout)]
    pub(crate) timeout: Option<f64>,
    /// With --backend openai: retries of a request on 429, 5xx, timeouts and connection errors [default: 5].
    #[arg(long, value_parser = super::bounds::retries)]
    pub(crate) retries: Option<u32>,
    /// With --backend openai: the remote model's context length in tokens [default: 8192].
    #[arg(long, value_parser = super::bounds::context)]
    pub(crate) remote_context: Option<usize>,
    /// With --backend openai: the server's own sampling fields, for the repetition penalty and top-k the
    /// protocol lacks: openai (none sent), llama.cpp, vllm [default: openai].
    #[arg(long)]
    pub(crate) remote_dialect: Option<String>,
}

/// The flags every batch command shares (`summarize`, `translate`): inputs, output, model, run control.
#[derive(Args, Debug, Clone, Default)]
pub(crate) struct JobArgs {
    /// Files and folders to read (folders recursively): .txt, .md, .html/.htm, .json, .jsonl.
    pub(crate) inputs: Vec<PathBuf>,
    /// Output folder: mirrors the input tree, plus index.jsonl and the state in .polysum/.
    #[arg(long, short = 'o')]
    pub(crate) out: Option<PathBuf>,
    /// Settings file (default: ./polysum.toml when it exists, or $POLYSUM_CONFIG). Flags override it.
    #[arg(long, env = "POLYSUM_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// Files per article: json, md or json,md [default: json,md].
    #[arg(long)]
    pub(crate) format: Option<String>,
    /// Articles in flight at once; their generation steps run as one batch [default: 1 on a CPU, 16 on a GPU].
    #[arg(long, short = 'j', value_parser = super::bounds::jobs)]
    pub(crate) jobs: Option<usize>,
    /// Redo every article, even those already done.
    #[arg(long)]
    pub(crate) force: bool,
    /// Print only errors and the final line.
    #[arg(long, short = 'q')]
    pub(crate) quiet: bool,
    /// text or json (one JSON object per line) [default: text].
    #[arg(long)]
    pub(crate) log_format: Option<String>,
    /// Lower the context the prompts may use (tokens) below the model's [default: the model's, at most 8192].
    #[arg(long, value_parser = super::bounds::context)]
    pub(crate) max_context: Option<usize>,
    /// Reject input files larger than this many bytes [default: 8 MiB].
    #[arg(long)]
    pub(crate) max_bytes: Option<u64>,
}

#[derive(Args, Debug, Clone, Default)]
pub(crate) struct SummarizeArgs {
    #[command(flatten)]
    pub(crate) job: JobArgs,
    /// Summary languages, comma-separated [default: en,es]. Supported: en, es, fr, de, it, pt, ca, nl.
    #[arg(long)]
    pub(crate) langs: Option<String>,
    /// Summary length in sentences [default: 3].
    #[arg(long, conflicts_with = "max_words")]
    pub(crate) sentences: Option<usize>,
    /// Summary length in words (instead of --sentences).
    #[arg(long)]
    pub(crate) max_words: Option<usize>,
    /// Cut articles to this many tokens (flag `truncated_input`). Without it nothing is cut: an article
    /// longer than the context is summarized in chunks (map-reduce).
    #[arg(long)]
    pub(crate) max_input_tokens: Option<usize>,
    /// translate: a summary in the article's language, translated into the other languages; direct: every
    /// summary from the article [default: translate].
    #[arg(long)]
    pub(crate) strategy: Option<String>,
    /// Check each summary sentence against the article: off, flag (record each sentence's support and
    /// evidence), or fix (also rewrite, drop or replace what the article does not support) [default: fix].
    #[arg(long)]
    pub(crate) verify: Option<String>,
    /// Translations generated for each summary translated from another language's (--strategy translate,
    /// and direct's translation fallback), the one most in agreement with the others chosen after the
    /// source's names and numbers and the dictionary [default: 1].
    #[arg(long, value_parser = super::bounds::candidates)]
    pub(crate) candidates: Option<usize>,
    /// What of the article the model is shown: article (all of it) or key-sentences (the lead and the
    /// sentences most shared with the rest, in order: grounded generation) [default: article].
    #[arg(long)]
    pub(crate) grounding: Option<String>,
    /// Accept summaries in any language (scripts/bench-gpu: a synthetic model writes no language).
    #[arg(long, hide = true)]
    pub(crate) skip_language_check: bool,
    /// Summarize only shard K of N (K from 0): the articles whose content hash falls in it. N runs with
    /// K = 0..N-1, each with its own --out, cover every article once; `polysum merge` combines them.
    #[arg(long)]
    pub(crate) shard: Option<String>,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct TranslateArgs {
    /// The language to translate into: en, es, fr, de, it, pt, ca or nl.
    #[arg(long)]
    pub(crate) to: String,
    /// The articles' language, or auto to detect it per article.
    #[arg(long, default_value = "auto")]
    pub(crate) from: String,
    /// Check each translated sentence and the title against the source: off, flag, or fix (also translate
    /// again from its source sentences what fails) [default: fix].
    #[arg(long)]
    pub(crate) verify: Option<String>,
    /// Translations generated per piece of the article, the one most in agreement with the others chosen
    /// after the source's names and numbers and the dictionary [default: 1].
    #[arg(long, value_parser = super::bounds::candidates)]
    pub(crate) candidates: Option<usize>,
    /// Inputs, output folder (`<relpath>.json` and `<relpath>.<lang>.md` per article), model, run control.
    #[command(flatten)]
    pub(crate) job: JobArgs,
}

#[derive(Args, Debug)]
pub(crate) struct CompareArgs {
    /// The output folder of `polysum summarize` (with index.jsonl).
    pub(crate) dir: PathBuf,
    /// Write a self-contained HTML report to this file.
    #[arg(long)]
    pub(crate) html: Option<PathBuf>,
    /// Write the results as JSON to this file.
    #[arg(long)]
    pub(crate) json: Option<PathBuf>,
    /// Exit with status 3 when some article or story gets the verdict "check".
    #[arg(long)]
    pub(crate) fail_on_inconsistent: bool,
    /// Skip the back-translation (no model is loaded).
    #[arg(long)]
    pub(crate) no_backtranslate: bool,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Args, Debug)]
pub(crate) struct CheckArgs {
    /// The article, as UTF-8 text; evidence indices count its sentences, paragraph by paragraph.
    pub(crate) article: PathBuf,
    /// The claims to check, one sentence a line (blank lines skipped).
    pub(crate) claims: PathBuf,
    /// The claims' language [default: detected from the claims].
    #[arg(long)]
    pub(crate) lang: Option<String>,
    /// The article's language [default: detected].
    #[arg(long)]
    pub(crate) source_lang: Option<String>,
    /// One JSON object per claim and line: text, verdict, score, evidence, failed_checks.
    #[arg(long)]
    pub(crate) json: bool,
    /// How the model is asked: stated ("is it true according to the text? yes, no or not stated"),
    /// supported ("is it fully supported? yes or no") or atomic (the claim split by the model into simple
    /// facts, each asked as stated; the weakest decides) [default: stated].
    #[arg(long)]
    pub(crate) question: Option<String>,
    /// The model's "yes" probability below which a claim is unsupported [default: the summaries'].
    #[arg(long)]
    pub(crate) threshold: Option<f64>,
    /// How claims in another language than the article's are checked: back-translate (translated into
    /// the article's language by the model first), direct (across the languages), or both (the model
    /// judges the back-translation and the claim as written; the mean decides) [default: both, as
    /// summaries are].
    #[arg(long)]
    pub(crate) cross_language: Option<String>,
    /// What the model reads for each question: evidence (the claim's best-matching sentences) or article
    /// (the whole article when it is short enough, else the evidence) [default: evidence, as summaries].
    #[arg(long)]
    pub(crate) context: Option<String>,
    #[command(flatten)]
    pub(crate) model: ModelArgs,
}

#[derive(Args, Debug, Clone)]
pub(crate) struct MergeArgs {
    /// Output folders of `polysum summarize --shard K/N` runs.
    #[arg(required = true)]
    pub(crate) dirs: Vec<PathBuf>,
    /// The folder to combine them into.
    #[arg(long, short = 'o')]
    pub(crate) out: PathBuf,
}

#[derive(Args, Debug)]
pub(crate) struct GenerateArgs {
    #[command(flatten)]
    pub(crate) model: ModelArgs,
    /// The user message.
    #[arg(long)]
    pub(crate) prompt: String,
    #[arg(long)]
    pub(crate) system: Option<String>,
    /// Text that starts the assistant's answer.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// Send the prompt as it is, without the chat template.
    #[arg(long)]
    pub(crate) raw: bool,
    #[arg(long, default_value_t = 128)]
    pub(crate) max_tokens: usize,
    /// Greedy decoding (same as --temperature 0).
    #[arg(long)]
    pub(crate) greedy: bool,
    #[arg(long, default_value_t = 0.7)]
    pub(crate) temperature: f64,
    #[arg(long)]
    pub(crate) top_k: Option<usize>,
    #[arg(long, default_value_t = 0.9)]
    pub(crate) top_p: f64,
    #[arg(long, default_value_t = 1.1)]
    pub(crate) repetition_penalty: f32,
    #[arg(long, default_value_t = 299792458)]
    pub(crate) seed: u64,
    /// Stop when this text appears (repeatable).
    #[arg(long = "stop")]
    pub(crate) stop: Vec<String>,
}
