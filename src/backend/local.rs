//! The built-in engine as a [`Generator`]: prompts rendered with the model's own chat template.

use anyhow::Result;

use super::{CallStats, Generation, Generator, Prompt, Request, ScoreRequest};
use crate::engine::device::{self, DeviceSpec};
use crate::engine::generate::{self, Engine};
use crate::engine::lookup::Lookup;
use crate::engine::model::LoadOptions;
use crate::engine::prefix_cache::{PrefixSource, PrefixStore};
use crate::engine::scheduler::{self, Scheduler};

/// A model for the built-in engine: where it comes from and how to run it.
#[derive(Debug, Clone)]
pub(crate) struct LocalModel {
    /// A registry name, `hf:ORG/REPO/FILE[@REVISION]`, or a path to a `.gguf` file.
    pub(crate) spec: String,
    pub(crate) device: DeviceSpec,
    /// CPU threads for the kernels; `None`: every core.
    pub(crate) threads: Option<usize>,
    /// Re-quantize tensor types without a fast CPU kernel (Q4_1/Q5_0/Q5_1) to Q8_0 at load, on a CPU.
    pub(crate) requantize: bool,
    /// Prompt-lookup drafts of a greedy sequence decoding alone.
    pub(crate) lookup: Lookup,
}

impl LocalModel {
    /// The model's id: its GGUF file's stem, as `Engine::name` gives it. Resolves (and may pull) the model.
    pub(crate) fn model_id(&self) -> Result<String> {
        let resolved = crate::registry::resolve_model(&self.spec)?;
        Ok(resolved.gguf.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| self.spec.clone()))
    }

    /// The engine alone, for one caller at a time.
    pub(crate) fn load_engine(&self) -> Result<Engine> {
        device::set_cpu_threads(self.threads);
        let device = self.device.open()?;
        let resolved = crate::registry::resolve_model(&self.spec)?;
        let opts = LoadOptions { requantize: self.requantize && device.is_cpu(), ..LoadOptions::new(device) };
        let mut engine = Engine::load(&resolved.gguf, resolved.tokenizer_json.as_deref(), &opts)?;
        engine.set_lookup(self.lookup);
        // Computed prompt prefixes are kept on disk only for a model whose sha256 names its weights.
        if let Some(sha256) = &resolved.sha256 {
            let dir = crate::registry::Config::from_env().cache_dir.join("prefixes").join(&resolved.name);
            engine.set_prefix_store(Some(PrefixStore::new(dir, sha256.clone())));
        }
        Ok(engine)
    }

    /// The engine behind the continuous-batching scheduler, with as many rows as the device suits.
    pub(crate) fn load_scheduler(&self) -> Result<Scheduler> {
        let engine = self.load_engine()?;
        let rows = scheduler::default_rows(&engine);
        Scheduler::new(engine, rows)
    }
}

/// The prompt text the engine reads.
fn render(engine: &Engine, prompt: &Prompt) -> Result<String> {
    match prompt {
        Prompt::Chat { system, user, assistant_prefix } => {
            engine.chat_prompt(system.as_deref(), user, assistant_prefix.as_deref())
        }
        Prompt::Raw(text) => Ok(text.clone()),
    }
}

/// Each request's prompt, and the first token of each of its answers, as the engine scores them.
fn score(engine: &Engine, requests: &[ScoreRequest]) -> Result<Vec<Vec<f32>>> {
    let mut prompts = Vec::with_capacity(requests.len());
    let mut candidates = Vec::with_capacity(requests.len());
    for r in requests {
        prompts.push(render(engine, &r.prompt)?);
        let firsts = r
            .answers
            .iter()
            .map(|a| {
                let ids = engine.tokenizer().encode(a, false)?;
                ids.first().copied().ok_or_else(|| anyhow::anyhow!("the answer {a:?} has no tokens"))
            })
            .collect::<Result<Vec<u32>>>()?;
        candidates.push(firsts);
    }
    engine.next_token_logprobs(&prompts, &candidates, &mut generate::CallStats::default())
}

/// System prompts (with their template) of at least this many tokens are computed once and kept in the
/// engine's prefix cache; shorter ones cost less to compute than to copy.
const MIN_CACHED_PREFIX_TOKENS: usize = 64;

/// Put the long system prompts of `requests` in the engine's prefix cache (a no-op for those already
/// there), so a few-shot prompt's examples are computed once per run, or once per model with the store.
fn cache_system_prompts(engine: &Engine, requests: &[Request]) -> Result<()> {
    let mut seen: Vec<&str> = Vec::new();
    for r in requests {
        let Prompt::Chat { system: Some(system), .. } = &r.prompt else { continue };
        if seen.contains(&system.as_str()) {
            continue;
        }
        seen.push(system);
        let head = engine.chat_head(system)?;
        if engine.encode_prompt(&head)?.len() < MIN_CACHED_PREFIX_TOKENS {
            continue;
        }
        if let PrefixSource::Computed { rejected, not_saved } = engine.cache_prefix(&head)? {
            if let Some(reason) = rejected {
                eprintln!("warning: {reason}; it was computed again");
            }
            if let Some(reason) = not_saved {
                eprintln!("warning: a computed prompt prefix could not be kept on disk: {reason}");
            }
        }
    }
    Ok(())
}

fn engine_requests(engine: &Engine, requests: &[Request]) -> Result<Vec<generate::Request>> {
    cache_system_prompts(engine, requests)?;
    requests
        .iter()
        .map(|r| {
            Ok(generate::Request {
                prompt: render(engine, &r.prompt)?,
                max_new_tokens: r.max_new_tokens,
                sampling: r.sampling.clone(),
                stop_strings: r.stop_strings.clone(),
            })
        })
        .collect()
}

impl Generator for Scheduler {
    fn model_id(&self) -> String {
        self.engine().name().to_string()
    }
    fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
        Scheduler::generate(self, &engine_requests(self.engine(), requests)?)
    }
    /// Straight on the engine, beside the scheduler's batch: a scoring call is one prefill, with nothing
    /// to decode that could join the running batch.
    fn score(&self, requests: &[ScoreRequest]) -> Result<Vec<Vec<f32>>> {
        score(self.engine(), requests)
    }
    fn count_tokens(&self, text: &str) -> Result<usize> {
        self.engine().count_tokens(text)
    }
    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<usize> {
        Ok(self.engine().encode_prompt(&render(self.engine(), prompt)?)?.len())
    }
    fn context_length(&self) -> usize {
        self.engine().context_length()
    }
    fn is_cpu(&self) -> bool {
        self.engine().device().is_cpu()
    }
    /// On a GPU, half the batch's rows: a call has one or two rows most of the time (an article's EN and
    /// ES requests), so the batch stays full while each article waits on its own steps. On a CPU one
    /// article at a time: a one-row step on `model::gemv` is as fast per token as a two-row step, and each
    /// prefill stalls the other rows' decode (docs/BENCHMARKS.md has the measurement).
    fn default_jobs(&self) -> usize {
        if self.is_cpu() {
            1
        } else {
            (self.max_rows() / 2).max(1)
        }
    }
}

impl Generator for Engine {
    fn model_id(&self) -> String {
        self.name().to_string()
    }
    fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
        self.generate_streaming(&engine_requests(self, requests)?, &mut |_, _| true)
    }
    fn score(&self, requests: &[ScoreRequest]) -> Result<Vec<Vec<f32>>> {
        score(self, requests)
    }
    fn count_tokens(&self, text: &str) -> Result<usize> {
        Engine::count_tokens(self, text)
    }
    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<usize> {
        Ok(self.encode_prompt(&render(self, prompt)?)?.len())
    }
    fn context_length(&self) -> usize {
        Engine::context_length(self)
    }
    fn is_cpu(&self) -> bool {
        self.device().is_cpu()
    }
    /// Each call runs alone on a bare engine: two articles keep a GPU busier, a CPU gains nothing.
    fn default_jobs(&self) -> usize {
        if self.is_cpu() {
            1
        } else {
            2
        }
    }
}
