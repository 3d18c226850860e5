//! The model as the tasks see it: one [`Generator`] trait, with a chat prompt as a typed value, and one
//! implementation per backend.
//!
//! - `local`: the built-in engine (`crate::engine`), alone or behind its continuous-batching scheduler.
//! - `openai`: any server that speaks the OpenAI chat-completions protocol (vLLM, llama.cpp's server,
//!   Hugging Face TGI, Ollama).
//! - `fake` (cargo feature `fake-model`, for the test suite): a scripted stand-in.
//!
//! Tasks build [`Request`]s from [`Prompt`]s; a backend renders them its own way (the model's chat template
//! locally, a `messages` list for a server), so nothing above this module renders templates.

#[cfg(any(test, feature = "fake-model"))]
pub mod fake;
pub(crate) mod local;
pub mod openai;

use anyhow::Result;

pub use crate::engine::generate::{CallStats, Generation, StopReason};
pub use crate::engine::sampling::SamplingParams;

/// Context used when the model allows more: small models summarize worse and slower past it, and the KV
/// cache of a batch stays small. `--max-context` changes it.
pub const DEFAULT_MAX_CONTEXT: usize = 8192;

/// What a model is asked: a chat (system prompt, user message, optionally the start of the answer), or
/// raw text for a model without a chat template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prompt {
    Chat { system: Option<String>, user: String, assistant_prefix: Option<String> },
    Raw(String),
}

impl Prompt {
    /// A chat with a system prompt and a user message.
    pub fn chat(system: impl Into<String>, user: impl Into<String>) -> Self {
        Prompt::Chat { system: Some(system.into()), user: user.into(), assistant_prefix: None }
    }

    /// A chat of one user message.
    pub fn user(user: impl Into<String>) -> Self {
        Prompt::Chat { system: None, user: user.into(), assistant_prefix: None }
    }

    /// The same chat with the answer started by `prefix` (the generation continues it).
    pub fn with_answer_prefix(self, prefix: Option<String>) -> Self {
        match self {
            Prompt::Chat { system, user, .. } => Prompt::Chat { system, user, assistant_prefix: prefix },
            raw => raw,
        }
    }
}

/// One generation: the prompt, how much to generate and how to sample.
#[derive(Debug, Clone)]
pub struct Request {
    pub prompt: Prompt,
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation stops when the output contains one of these; the stop string is not returned.
    pub stop_strings: Vec<String>,
}

impl Request {
    /// A greedy request without stop strings.
    pub fn greedy(prompt: Prompt, max_new_tokens: usize) -> Self {
        Self { prompt, max_new_tokens, sampling: SamplingParams::greedy(), stop_strings: vec![] }
    }

    /// `n` requests for `n` candidate answers (`--candidates`): this one as asked, then `n - 1` sampled
    /// copies with seeds of their own (the engine also mixes in each row's place in its call, so a run is
    /// reproducible, not a candidate apart from its call), and the first candidate is what the request
    /// alone gives. The local engine computes a prompt repeated within one call once (on the CPU), so there
    /// the extra candidates cost decode steps only.
    pub fn candidates(self, n: usize) -> Vec<Request> {
        let sampled = |seed: u64| Request {
            sampling: SamplingParams {
                temperature: CANDIDATE_TEMPERATURE,
                top_p: Some(0.9),
                seed,
                ..self.sampling.clone()
            },
            ..self.clone()
        };
        let mut out: Vec<Request> = (1..n.max(1) as u64).map(sampled).collect();
        out.insert(0, self);
        out
    }
}

/// How far sampled candidates may stray from the greedy answer: low enough that most stay fluent
/// translations, high enough that they differ where the model is unsure.
const CANDIDATE_TEMPERATURE: f64 = 0.6;

/// A prompt and a few candidate answers, scored by how likely the model is to start its answer with each
/// (the log-probability of each answer's first token after the prompt). Cheaper and steadier than
/// generating an answer and parsing it: one forward step, and no answer falls outside the candidates.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    pub prompt: Prompt,
    /// The answers to score, e.g. "Yes", "No", "Not"; only each one's first token counts, so their first
    /// tokens should differ.
    pub answers: Vec<String>,
}

/// What the tasks need from a language model.
pub trait Generator: Sync {
    /// Identifies the model in the state key and the output (`model` field).
    fn model_id(&self) -> String;
    /// One batched call; the answers come in the order of `requests`. Requests that share a prompt prefix
    /// share its computation where the backend can.
    fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)>;
    /// For each request, the log-probability of each of its answers' first token after its prompt, in the
    /// order of `answers`. Requests that share a prompt prefix share its computation where the backend can,
    /// so ask every question about one text in one call.
    fn score(&self, requests: &[ScoreRequest]) -> Result<Vec<Vec<f32>>>;
    /// Tokens of `text` alone.
    fn count_tokens(&self, text: &str) -> Result<usize>;
    /// Tokens of a whole prompt as the backend sends it (template included).
    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<usize>;
    /// `count_tokens`, or two tokens a word where the tokenizer cannot say: for budgets, where an estimate
    /// beats failing the article.
    fn count_tokens_or_estimate(&self, text: &str) -> usize {
        self.count_tokens(text).unwrap_or_else(|_| text.split_whitespace().count() * 2)
    }
    /// Prompt plus output must fit in this many tokens.
    fn context_length(&self) -> usize;
    /// The context prompts may fill: the model's, capped by `cap` (`--max-context`), else by
    /// [`DEFAULT_MAX_CONTEXT`].
    fn usable_context(&self, cap: Option<usize>) -> usize {
        self.context_length().min(cap.unwrap_or(DEFAULT_MAX_CONTEXT))
    }
    /// Whether the model runs on the CPU.
    fn is_cpu(&self) -> bool {
        true
    }
    /// Why the backend can take no more requests, when it cannot (a server taken for down after requests
    /// in a row gave up): the run then stops, instead of failing every article left one by one.
    fn unavailable(&self) -> Option<String> {
        None
    }
    /// Articles to keep in flight when --jobs does not say: more than one pays only where concurrent calls
    /// share work (a batching scheduler, a server).
    fn default_jobs(&self) -> usize {
        1
    }
}

pub(crate) use local::LocalModel;

/// Which model generates, as chosen on the command line, before anything is resolved or loaded.
#[derive(Debug, Clone)]
pub(crate) enum Backend {
    /// The built-in engine.
    Local(LocalModel),
    /// A server speaking the OpenAI chat-completions protocol.
    OpenAi(openai::OpenAiConfig),
    /// The scripted stand-in of the test suite.
    #[cfg(feature = "fake-model")]
    Fake(fake::FakeGenerator),
}

impl Backend {
    /// The model's id, as the outputs and the state key record it. For a local model this resolves the
    /// model (pulling it into the cache when it is not there yet): call it under the output folder's lock.
    pub(crate) fn model_id(&self) -> Result<String> {
        match self {
            Backend::Local(m) => m.model_id(),
            Backend::OpenAi(cfg) => Ok(openai::remote_model_id(cfg)),
            #[cfg(feature = "fake-model")]
            Backend::Fake(f) => Ok(f.model_id()),
        }
    }

    /// The model, ready to generate. A local model runs behind the continuous-batching scheduler, so
    /// concurrent callers share decode steps.
    pub(crate) fn load(&self) -> Result<Box<dyn Generator>> {
        Ok(match self {
            Backend::Local(m) => Box::new(m.load_scheduler()?),
            Backend::OpenAi(cfg) => Box::new(openai::OpenAiClient::connect(cfg.clone())?),
            #[cfg(feature = "fake-model")]
            Backend::Fake(f) => Box::new(f.clone()),
        })
    }
}
