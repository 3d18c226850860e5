//! What the summarizer needs from a language model, as a small trait: the real `Engine`, or a
//! deterministic fake for tests of everything around the model (state, lock, kill, retries).

use std::time::Instant;

use anyhow::{bail, Result};

use crate::engine::generate::{CallStats, Engine, Generation, Request, StopReason};

pub trait Generator: Sync {
    /// Identifies the model in the state key and the output (`model` field).
    fn model_id(&self) -> String;
    fn chat_prompt(&self, system: Option<&str>, user: &str, assistant_prefix: Option<&str>) -> Result<String>;
    /// One batched call: requests that share a prefix share its computation.
    fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)>;
    fn count_tokens(&self, text: &str) -> Result<usize>;
    /// `count_tokens`, or two tokens a word where the tokenizer cannot say (a remote model): for
    /// budgets, where an estimate beats failing the article.
    fn count_tokens_or_estimate(&self, text: &str) -> usize {
        self.count_tokens(text).unwrap_or_else(|_| text.split_whitespace().count() * 2)
    }
    fn context_length(&self) -> usize;
    /// Whether the model runs on the CPU.
    fn is_cpu(&self) -> bool {
        true
    }
    /// Articles to keep in flight when --jobs does not say: more than one pays only where concurrent
    /// calls share work (a batching scheduler, a server).
    fn default_jobs(&self) -> usize {
        1
    }
}

impl Generator for crate::engine::scheduler::Scheduler {
    fn model_id(&self) -> String {
        self.engine().model_id()
    }
    fn chat_prompt(&self, system: Option<&str>, user: &str, assistant_prefix: Option<&str>) -> Result<String> {
        self.engine().chat_prompt(system, user, assistant_prefix)
    }
    fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
        crate::engine::scheduler::Scheduler::generate(self, requests)
    }
    fn count_tokens(&self, text: &str) -> Result<usize> {
        self.engine().count_tokens(text)
    }
    fn context_length(&self) -> usize {
        self.engine().context_length()
    }
    fn is_cpu(&self) -> bool {
        self.engine().is_cpu()
    }
    /// On a GPU, half the batch's rows: a call has one or two rows most of the time (an article's EN and
    /// ES requests), so the batch stays full while each article waits on its own steps. On a CPU one
    /// article at a time: measured on 2 cores, 4 articles took 126 s at --jobs 1, 151 s at 2 and 146 s at
    /// 4 (a one-row step on `model::gemv` is as fast per token as a two-row step on candle's tiles, and
    /// each prefill stalls the other rows' decode).
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
    fn chat_prompt(&self, system: Option<&str>, user: &str, assistant_prefix: Option<&str>) -> Result<String> {
        Engine::chat_prompt(self, system, user, assistant_prefix)
    }
    fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
        self.generate_streaming(requests, &mut |_, _| true)
    }
    fn count_tokens(&self, text: &str) -> Result<usize> {
        Engine::count_tokens(self, text)
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

/// A fake model for tests, chosen with `--model fake[:OPTIONS]` (comma-separated options):
/// `english` answers in English whatever the target; `native-es` answers English to the first prompt and
/// Spanish once the prompt itself is in Spanish; `chatty` adds "Sure! Here is a summary:";
/// `delay=MS` sleeps per call; `fail` makes every call an error; `ctx=N` sets the context length.
/// It counts one token per word.
#[derive(Debug, Clone, Default)]
pub struct FakeGenerator {
    pub english_only: bool,
    pub spanish_when_native: bool,
    pub chatty: bool,
    pub delay_ms: u64,
    pub fail: bool,
    pub context: usize,
}

impl FakeGenerator {
    /// The environment variable that makes `--model fake…` available (the tests set it).
    pub const ENABLE_ENV: &'static str = "POLYSUM_TEST_FAKE_MODEL";

    pub fn parse(spec: &str) -> Result<Option<FakeGenerator>> {
        let Some(rest) = spec.strip_prefix("fake") else { return Ok(None) };
        let rest = match rest.strip_prefix(':') {
            Some(r) => r,
            None if rest.is_empty() => "",
            None => return Ok(None),
        };
        let mut g = FakeGenerator { context: 4096, ..Default::default() };
        for opt in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match opt.split_once('=') {
                None if opt == "english" => g.english_only = true,
                None if opt == "native-es" => g.spanish_when_native = true,
                None if opt == "chatty" => g.chatty = true,
                None if opt == "fail" => g.fail = true,
                Some(("delay", ms)) => g.delay_ms = ms.parse()?,
                Some(("ctx", n)) => g.context = n.parse()?,
                _ => bail!("unknown fake model option {opt:?}"),
            }
        }
        Ok(Some(g))
    }

    fn answer(&self, prompt: &str) -> String {
        // The instruction follows the fenced text; look there for the target language.
        let end = ["</article>", "</text>"].iter().filter_map(|t| prompt.rfind(t).map(|p| p + t.len())).max();
        let tail = end.map(|p| &prompt[p..]).unwrap_or(prompt);
        let wants_spanish = tail.contains("Spanish") || tail.contains("español");
        let prompt_is_spanish = prompt.contains("Eres un");
        let spanish = wants_spanish && !self.english_only && (!self.spanish_when_native || prompt_is_spanish);
        let body = if spanish {
            "El artículo cuenta los hechos principales de la noticia. Las autoridades dieron los detalles el martes por la tarde."
        } else {
            "The article reports the main facts of the story. Officials gave the details on Tuesday afternoon."
        };
        if self.chatty {
            format!("Sure! Here is a summary of the article:\n\n{body}\n\nLet me know if you need anything else.")
        } else {
            body.to_string()
        }
    }
}

impl Generator for FakeGenerator {
    fn model_id(&self) -> String {
        "fake".into()
    }
    fn chat_prompt(&self, system: Option<&str>, user: &str, assistant_prefix: Option<&str>) -> Result<String> {
        Ok(format!(
            "<system>{}</system>\n<user>{user}</user>\n<assistant>{}",
            system.unwrap_or(""),
            assistant_prefix.unwrap_or("")
        ))
    }
    fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
        let t = Instant::now();
        if self.delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.delay_ms));
        }
        if self.fail {
            bail!("the fake model was asked to fail");
        }
        let mut stats = CallStats::default();
        let gens: Vec<Generation> = requests
            .iter()
            .map(|r| {
                let prompt_tokens = r.prompt.split_whitespace().count();
                if prompt_tokens + r.max_new_tokens > self.context {
                    bail!("the prompt has {prompt_tokens} tokens, more than the fake context of {}", self.context);
                }
                let text = self.answer(&r.prompt);
                let n = text.split_whitespace().count();
                stats.prompt_tokens += prompt_tokens;
                stats.generated_tokens += n;
                Ok(Generation { text, tokens: (0..n as u32).collect(), prompt_tokens, stop_reason: StopReason::Eos })
            })
            .collect::<Result<_>>()?;
        stats.decode_seconds = t.elapsed().as_secs_f64();
        Ok((gens, stats))
    }
    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(text.split_whitespace().count())
    }
    fn context_length(&self) -> usize {
        self.context
    }
}
