//! A client for servers that speak the OpenAI chat-completions protocol: vLLM, llama.cpp's server,
//! Hugging Face TGI, Ollama (`POST {endpoint}/v1/chat/completions`).
//!
//! * The endpoint may be given with or without `/v1` (`http://host:8000`, `http://host:8000/v1`), or as the
//!   full `.../chat/completions` URL.
//! * A request sends the system and user messages and, when the answer is started (`assistant_prefix`), a
//!   final assistant message with that start. Servers differ: some continue that message and return only
//!   the continuation (llama.cpp's llama-server), some start a fresh answer after it (llama-cpp-python,
//!   vLLM without `continue_final_message`), some echo the start. The client gives the whole answer either
//!   way: [`ChatResponse::text`] always begins with the started
//!   answer (prepended when the server did not echo it), and [`ChatResponse::continuation`] is the part
//!   after it, which is what the built-in engine returns and what [`OpenAiClient::generate`] gives.
//! * Sent: `model`, `messages`, `max_tokens`, `temperature` (0 for greedy), `top_p`, `seed`, `stop`. The
//!   repetition penalty and top-k of [`SamplingParams`] have no standard field: they are sent in the
//!   server's own fields when its [`Dialect`] is known (llama.cpp, vLLM), else not sent (a server that
//!   rejects unknown fields still answers, without them). Stop strings are also applied to the answer
//!   here, for servers that ignore `stop`.
//! * Read: `choices[0].message.content`, `choices[0].finish_reason` (`length` → [`StopReason::MaxTokens`],
//!   else [`StopReason::Eos`], or [`StopReason::StopString`] when a stop string was cut here), and
//!   `usage.prompt_tokens` / `usage.completion_tokens`, which are the token counts reported everywhere.
//! * Scoring ([`OpenAiClient::score_one`]): one greedy token with `logprobs: true` and `top_logprobs`,
//!   read from `choices[0].logprobs.content[0].top_logprobs`.
//! * Errors: 429, 5xx, timeouts and connection errors are retried with exponential backoff and jitter
//!   (a `Retry-After: SECONDS` header is honoured); any other 4xx fails at once with the server's message.
//! * Circuit breaker: after `BREAKER_GIVE_UPS` requests in a row gave up (every retry failed), the
//!   server is taken for down and every later request of this client fails at once with
//!   [`OpenAiError::Unavailable`] instead of spending its own retries. [`OpenAiClient::connect`] also
//!   checks, before any work, that the server answers at all.
//! * Replies are validated at the edge: token counts above what was asked for are capped
//!   (`usage.completion_tokens` at `max_tokens`, `usage.prompt_tokens` at [`MAX_PROMPT_TOKENS`]), and
//!   errors name what was wrong with a reply without echoing its body (a server's own error message is
//!   shown shortened, with control characters escaped).
//! * Concurrency: at most `max_inflight` requests are open at once per client, over all threads: share
//!   one client between workers.
//! * The API key is read from the environment variable named by the caller and sent as
//!   `Authorization: Bearer ...`; it is never printed, not even by `Debug`.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

use super::{CallStats, Generation, Generator, Prompt, Request, SamplingParams, ScoreRequest, StopReason};

/// Requests in a row that gave up after which the server is taken for down (see the module notes).
pub const BREAKER_GIVE_UPS: u32 = 3;

/// The most prompt tokens a reply may report; more is a broken count and is capped.
pub const MAX_PROMPT_TOKENS: usize = 1 << 24;

#[derive(Clone)]
pub struct OpenAiConfig {
    /// Base URL of the server (`http://vllm:8000`, `http://vllm:8000/v1`, or the full completions URL).
    pub endpoint: String,
    /// The `model` field sent to the server.
    pub model: String,
    /// Sent as a bearer token when set.
    pub api_key: Option<String>,
    pub connect_timeout: Duration,
    /// Limit for a whole request (connect, send, wait for and read the answer).
    pub timeout: Duration,
    /// Retries after the first try (so `max_retries + 1` tries at most).
    pub max_retries: u32,
    /// The first retry waits about this long, then twice as long each time (with jitter), up to `backoff_max`.
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Requests open at the same time, over all threads using this client.
    pub max_inflight: usize,
    /// The context length assumed for the remote model (prompt plus answer).
    pub context_length: usize,
    /// Which sampling fields beyond the protocol's the server reads.
    pub dialect: Dialect,
}

/// The sampling fields a server reads beyond the protocol's own (`--remote-dialect`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
pub enum Dialect {
    /// Only the protocol's fields: what any server accepts (OpenAI's own rejects unknown ones), so the
    /// repetition penalty and top-k are not applied and answers may differ from the built-in engine's.
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    /// llama.cpp's `llama-server`: `repeat_penalty` over the last `repeat_last_n` tokens of prompt and
    /// answer (the penalty the built-in engine applies, the same way), and when sampling `top_k`, `top_p`
    /// and `min_p` set to what the request asks (the server's own defaults off).
    #[serde(rename = "llama.cpp", alias = "llama-cpp")]
    LlamaCpp,
    /// vLLM: `repetition_penalty` (over the whole prompt and answer: vLLM has no window) and `top_k`.
    #[serde(rename = "vllm")]
    Vllm,
}

impl std::str::FromStr for Dialect {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "openai" => Ok(Dialect::OpenAi),
            "llama.cpp" | "llama-cpp" => Ok(Dialect::LlamaCpp),
            "vllm" => Ok(Dialect::Vllm),
            other => Err(format!("invalid --remote-dialect {other:?}: use openai, llama.cpp or vllm")),
        }
    }
}

impl std::fmt::Debug for OpenAiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "<set>"))
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("max_retries", &self.max_retries)
            .field("max_inflight", &self.max_inflight)
            .field("context_length", &self.context_length)
            .field("dialect", &self.dialect)
            .finish()
    }
}

impl OpenAiConfig {
    pub fn new(endpoint: impl Into<String>, model: impl Into<String>) -> Self {
        Self {
            endpoint: endpoint.into(),
            model: model.into(),
            api_key: None,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
            max_retries: 5,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
            max_inflight: 8,
            context_length: 8192,
            dialect: Dialect::OpenAi,
        }
    }

    /// Read the API key from the environment variable `var`; an error when it is not set.
    pub fn api_key_from_env(mut self, var: Option<&str>) -> Result<Self> {
        if let Some(var) = var {
            let key = std::env::var(var)
                .map_err(|_| anyhow!("--api-key-env {var}: the environment variable {var} is not set"))?;
            if key.trim().is_empty() {
                bail!("--api-key-env {var}: the environment variable {var} is empty");
            }
            self.api_key = Some(key.trim().to_string());
        }
        Ok(self)
    }
}

/// The completions URL for an endpoint given with or without `/v1`.
pub fn completions_url(endpoint: &str) -> String {
    let e = endpoint.trim().trim_end_matches('/');
    if e.ends_with("/chat/completions") {
        e.to_string()
    } else if e.ends_with("/v1") {
        format!("{e}/chat/completions")
    } else {
        format!("{e}/v1/chat/completions")
    }
}

/// One chat request.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    pub system: Option<String>,
    pub user: String,
    /// The start of the answer, sent as a final assistant message.
    pub assistant_prefix: Option<String>,
    pub max_tokens: usize,
    pub sampling: SamplingParams,
    pub stop: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ChatResponse {
    /// The whole answer, beginning with the started answer when there was one.
    pub text: String,
    /// `text` without the started answer.
    pub continuation: String,
    pub finish_reason: Option<String>,
    pub stop_reason: StopReason,
    pub prompt_tokens: usize,
    pub completion_tokens: usize,
    /// Tries it took (1 when the first succeeded).
    pub tries: u32,
}

/// A request that failed for good, with whether it is worth trying again later.
#[derive(Debug, thiserror::Error)]
pub enum OpenAiError {
    /// A 4xx other than 429: the request itself is wrong (model name, key, context length...).
    #[error("the server at {url} refused the request with HTTP {status}: {message}")]
    Rejected { url: String, status: u16, message: String },
    /// 429/5xx/connection errors/timeouts, still failing after every retry.
    #[error("the server at {url} did not answer after {tries} tries: {last}")]
    GaveUp { url: String, tries: u32, last: String },
    #[error("the server at {url} sent an answer that is not a chat completion: {detail}")]
    BadAnswer { url: String, detail: String },
    /// The circuit breaker is open: earlier requests gave up, so this one was not sent.
    #[error(
        "the server at {url} is taken for down: {give_ups} requests in a row failed after every retry (last: {last})"
    )]
    Unavailable { url: String, give_ups: u32, last: String },
    /// [`OpenAiClient::connect`] found no server.
    #[error("no server answers at {url} after {tries} tries: {last}")]
    Unreachable { url: String, tries: u32, last: String },
}

/// A counting semaphore: at most `n` holders at once.
struct Semaphore {
    free: Mutex<usize>,
    cv: Condvar,
}

struct Permit<'a>(&'a Semaphore);

impl Semaphore {
    fn new(n: usize) -> Self {
        Self { free: Mutex::new(n.max(1)), cv: Condvar::new() }
    }
    fn acquire(&self) -> Permit<'_> {
        let mut free = self.free.lock().unwrap();
        while *free == 0 {
            free = self.cv.wait(free).unwrap();
        }
        *free -= 1;
        Permit(self)
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.free.lock().unwrap() += 1;
        self.0.cv.notify_one();
    }
}

pub struct OpenAiClient {
    cfg: OpenAiConfig,
    url: String,
    agent: ureq::Agent,
    inflight: Semaphore,
    /// Requests in a row that gave up, and the last reason (the circuit breaker).
    give_ups: AtomicU32,
    last_give_up: Mutex<String>,
}

enum TryError {
    Retry { why: String, retry_after: Option<Duration> },
    Fatal(anyhow::Error),
}

impl OpenAiClient {
    pub fn new(cfg: OpenAiConfig) -> Result<Self> {
        if cfg.model.trim().is_empty() {
            bail!("--remote-model is required with --backend openai (the model name the server serves)");
        }
        let url = completions_url(&cfg.endpoint);
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("--endpoint {:?} is not an http:// or https:// URL", cfg.endpoint);
        }
        let agent = ureq::AgentBuilder::new().timeout_connect(cfg.connect_timeout).timeout(cfg.timeout).build();
        Ok(Self {
            inflight: Semaphore::new(cfg.max_inflight),
            url,
            agent,
            cfg,
            give_ups: AtomicU32::new(0),
            last_give_up: Mutex::new(String::new()),
        })
    }

    /// A client whose server answered: `new`, then a `GET` of the server's models list, retried on
    /// connection errors and timeouts like a request. Any HTTP answer counts (some servers do not list
    /// models); no answer after every retry is [`OpenAiError::Unreachable`], so a run against a dead
    /// endpoint stops before its first article.
    pub fn connect(cfg: OpenAiConfig) -> Result<Self> {
        let client = Self::new(cfg)?;
        let url = client.url.trim_end_matches("/chat/completions").to_string() + "/models";
        let tries = client.cfg.max_retries + 1;
        let mut last = String::new();
        for attempt in 0..tries {
            let mut r = client.agent.get(&url);
            if let Some(key) = &client.cfg.api_key {
                r = r.set("Authorization", &format!("Bearer {key}"));
            }
            match r.call() {
                Ok(_) | Err(ureq::Error::Status(..)) => return Ok(client),
                Err(ureq::Error::Transport(t)) => last = snippet(&t.to_string()),
            }
            if attempt + 1 < tries {
                std::thread::sleep(client.backoff(attempt, None));
            }
        }
        Err(OpenAiError::Unreachable { url: client.url.clone(), tries, last }.into())
    }

    pub fn config(&self) -> &OpenAiConfig {
        &self.cfg
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    fn body(&self, req: &ChatRequest) -> Value {
        let mut messages = Vec::new();
        if let Some(s) = &req.system {
            messages.push(json!({"role": "system", "content": s}));
        }
        messages.push(json!({"role": "user", "content": req.user}));
        if let Some(p) = req.assistant_prefix.as_deref().filter(|p| !p.is_empty()) {
            messages.push(json!({"role": "assistant", "content": p}));
        }
        let mut body = json!({
            "model": self.cfg.model,
            "messages": messages,
            "max_tokens": req.max_tokens,
            "stream": false,
        });
        let s = &req.sampling;
        if s.is_greedy() {
            body["temperature"] = json!(0.0);
        } else {
            body["temperature"] = json!(s.temperature);
            if let Some(p) = s.top_p {
                body["top_p"] = json!(p);
            }
        }
        body["seed"] = json!(s.seed);
        let (penalty, sampled) = (s.repetition_penalty != 1.0, !s.is_greedy());
        match self.cfg.dialect {
            Dialect::OpenAi => {}
            Dialect::LlamaCpp => {
                if penalty {
                    body["repeat_penalty"] = json!(s.repetition_penalty);
                    body["repeat_last_n"] = json!(s.repetition_window);
                }
                // llama-server applies top-k 40, top-p 0.95 and min-p 0.05 unless told otherwise; the
                // engine applies only what the request asks.
                if sampled {
                    body["top_k"] = json!(s.top_k.unwrap_or(0));
                    body["top_p"] = json!(s.top_p.unwrap_or(1.0));
                    body["min_p"] = json!(0.0);
                }
            }
            Dialect::Vllm => {
                if penalty {
                    body["repetition_penalty"] = json!(s.repetition_penalty);
                }
                if let Some(k) = s.top_k.filter(|_| sampled) {
                    body["top_k"] = json!(k);
                }
            }
        }
        let stop: Vec<&String> = req.stop.iter().filter(|s| !s.is_empty()).collect();
        if !stop.is_empty() {
            body["stop"] = json!(stop);
        }
        body
    }

    /// One chat completion, retried as documented, under the in-flight limit.
    pub fn chat(&self, req: &ChatRequest) -> Result<ChatResponse> {
        let (v, tries) = self.send(&self.body(req))?;
        let mut r = parse_answer(&v, req)
            .map_err(|cause| OpenAiError::BadAnswer { url: self.url.clone(), detail: format!("{cause:#}") })?;
        r.tries = tries;
        Ok(r)
    }

    /// One request body sent, retried as documented, under the in-flight limit: the reply's JSON and the
    /// tries it took.
    fn send(&self, body: &Value) -> Result<(Value, u32)> {
        let give_ups = self.give_ups.load(Ordering::SeqCst);
        if give_ups >= BREAKER_GIVE_UPS {
            let last = self.last_give_up.lock().map(|l| l.clone()).unwrap_or_default();
            return Err(OpenAiError::Unavailable { url: self.url.clone(), give_ups, last }.into());
        }
        let tries_max = self.cfg.max_retries + 1;
        let mut last = String::new();
        for attempt in 0..tries_max {
            let outcome = {
                let _permit = self.inflight.acquire();
                self.try_once(body)
            };
            match outcome {
                Ok(v) => {
                    self.give_ups.store(0, Ordering::SeqCst);
                    return Ok((v, attempt + 1));
                }
                Err(TryError::Fatal(e)) => return Err(e),
                Err(TryError::Retry { why, retry_after }) => {
                    last = why;
                    if attempt + 1 < tries_max {
                        std::thread::sleep(self.backoff(attempt, retry_after));
                    }
                }
            }
        }
        if let Ok(mut l) = self.last_give_up.lock() {
            l.clone_from(&last);
        }
        self.give_ups.fetch_add(1, Ordering::SeqCst);
        Err(OpenAiError::GaveUp { url: self.url.clone(), tries: tries_max, last }.into())
    }

    /// The log-probability of each answer's first token, from one greedy token with `logprobs` and
    /// `top_logprobs` (OpenAI, vLLM and llama.cpp's server send them). The server sends text pieces, not
    /// ids: a piece counts for the answer it spells exactly, else for the answer it begins (case and
    /// leading space aside); an answer among none of the top pieces gets the lowest one sent, less one.
    pub fn score_one(&self, req: &ScoreRequest) -> Result<Vec<f32>> {
        let mut body = self.body(&chat_request(&Request::greedy(req.prompt.clone(), 1)));
        body["logprobs"] = json!(true);
        body["top_logprobs"] = json!(TOP_LOGPROBS);
        let (v, _) = self.send(&body)?;
        parse_top_logprobs(&v, &req.answers)
            .map_err(|cause| OpenAiError::BadAnswer { url: self.url.clone(), detail: format!("{cause:#}") }.into())
    }

    /// How long to wait before retry number `attempt + 1`.
    fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let exp = self.cfg.backoff_base.saturating_mul(1u32 << attempt.min(16)).min(self.cfg.backoff_max);
        // Jitter: 50% to 100% of the exponential step, so many clients do not retry in lockstep.
        let jittered = exp.mul_f64(0.5 + 0.5 * jitter_unit());
        match retry_after {
            // The server knows best, but a run must not hang for hours on one header.
            Some(ra) => ra.min(Duration::from_secs(300)),
            None => jittered,
        }
    }

    fn try_once(&self, body: &Value) -> std::result::Result<Value, TryError> {
        let mut r = self.agent.post(&self.url).set("Content-Type", "application/json");
        if let Some(key) = &self.cfg.api_key {
            r = r.set("Authorization", &format!("Bearer {key}"));
        }
        match r.send_json(body) {
            Ok(resp) => {
                let text = resp.into_string().map_err(|e| TryError::Retry {
                    why: format!("reading the answer failed: {e}"),
                    retry_after: None,
                })?;
                reply_json(&text)
                    .map_err(|detail| TryError::Fatal(OpenAiError::BadAnswer { url: self.url.clone(), detail }.into()))
            }
            Err(ureq::Error::Status(status, resp)) => {
                let retry_after = resp
                    .header("retry-after")
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|s| *s >= 0.0)
                    .map(Duration::from_secs_f64);
                let message = server_message(&resp.into_string().unwrap_or_default());
                if status == 429 || status >= 500 {
                    Err(TryError::Retry { why: format!("HTTP {status}: {message}"), retry_after })
                } else {
                    Err(TryError::Fatal(OpenAiError::Rejected { url: self.url.clone(), status, message }.into()))
                }
            }
            Err(ureq::Error::Transport(t)) => {
                let why = match t.kind() {
                    _ if is_timeout(&t) => {
                        format!("no answer within the timeout of {:?} ({t})", self.cfg.timeout)
                    }
                    ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme => {
                        return Err(TryError::Fatal(anyhow!("--endpoint {}: {t}", self.cfg.endpoint)));
                    }
                    _ => format!("{t}"),
                };
                Err(TryError::Retry { why, retry_after: None })
            }
        }
    }

    /// Every request of the call at once (each its own HTTP request, under the client's in-flight limit),
    /// in order. Fails when any request fails for good. Texts are the continuations after a started
    /// answer, as from the built-in engine; `tokens` holds `completion_tokens` placeholder ids (the server
    /// sends no ids) so that `tokens.len()` is the server's count.
    pub fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
        let t0 = Instant::now();
        let chats: Vec<ChatRequest> = requests.iter().map(chat_request).collect();
        let results: Vec<Result<ChatResponse>> = if chats.len() == 1 {
            vec![self.chat(&chats[0])]
        } else {
            std::thread::scope(|s| {
                let handles: Vec<_> = chats.iter().map(|c| s.spawn(move || self.chat(c))).collect();
                handles
                    .into_iter()
                    .map(|h| h.join().unwrap_or_else(|_| Err(anyhow!("a request thread panicked"))))
                    .collect()
            })
        };
        let mut stats = CallStats::default();
        let mut gens = Vec::with_capacity(results.len());
        for (i, r) in results.into_iter().enumerate() {
            let r = r.with_context(|| format!("request {} of {}", i + 1, requests.len()))?;
            stats.prompt_tokens += r.prompt_tokens;
            stats.generated_tokens += r.completion_tokens;
            gens.push(Generation {
                text: r.continuation,
                tokens: (0..r.completion_tokens as u32).collect(),
                prompt_tokens: r.prompt_tokens,
                stop_reason: r.stop_reason,
            });
        }
        // The server does not say how its time split between prompt and decode: it all counts as decode.
        stats.decode_seconds = t0.elapsed().as_secs_f64();
        Ok((gens, stats))
    }

    /// An estimate of the tokens in `text` without the remote tokenizer: one per 3 bytes, rounded up,
    /// which is more than BPE tokenizers give for English or Spanish prose (about 4 to 5 bytes a
    /// token), so a text that fits by this count fits the server's context.
    pub fn estimate_tokens(text: &str) -> usize {
        text.len().div_ceil(3)
    }
}

/// The chat request for a prompt: its messages, or (a raw prompt) one user message.
pub fn chat_request(r: &Request) -> ChatRequest {
    let (system, user, assistant_prefix) = match &r.prompt {
        Prompt::Chat { system, user, assistant_prefix } => (system.clone(), user.clone(), assistant_prefix.clone()),
        Prompt::Raw(text) => (None, text.clone(), None),
    };
    ChatRequest {
        system,
        user,
        assistant_prefix,
        max_tokens: r.max_new_tokens,
        sampling: r.sampling.clone(),
        stop: r.stop_strings.clone(),
    }
}

/// Alternatives a scoring request asks for: the most OpenAI's API gives.
const TOP_LOGPROBS: usize = 20;

/// Each answer's log-probability from `choices[0].logprobs.content[0].top_logprobs` (see
/// [`OpenAiClient::score_one`]).
pub fn parse_top_logprobs(v: &Value, answers: &[String]) -> Result<Vec<f32>> {
    let top = v["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
        .as_array()
        .ok_or_else(|| anyhow!("no `choices[0].logprobs.content[0].top_logprobs`: the server ignored `logprobs`"))?;
    let norm = |t: &str| t.trim().to_lowercase();
    let answers: Vec<String> = answers.iter().map(|a| norm(a)).collect();
    let mut sums: Vec<Option<f64>> = vec![None; answers.len()];
    let mut lowest = f64::INFINITY;
    for entry in top {
        let (Some(token), Some(lp)) = (entry["token"].as_str(), entry["logprob"].as_f64()) else { continue };
        lowest = lowest.min(lp);
        let t = norm(token);
        if t.is_empty() {
            continue;
        }
        let owner = answers.iter().position(|a| *a == t).or_else(|| answers.iter().position(|a| a.starts_with(&t)));
        if let Some(i) = owner {
            // Pieces of one answer ("Yes", " yes") add up: log(exp(a) + exp(b)).
            sums[i] = Some(match sums[i] {
                None => lp,
                Some(a) => a.max(lp) + (-(a - lp).abs()).exp().ln_1p(),
            });
        }
    }
    if !lowest.is_finite() {
        bail!("`top_logprobs` is empty");
    }
    Ok(sums.into_iter().map(|s| s.unwrap_or(lowest - 1.0) as f32).collect())
}

/// The body of a 200 reply as JSON, or why it is not (its size, never its content).
fn reply_json(text: &str) -> std::result::Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("not JSON ({e}; {} bytes)", text.len()))
}

/// The answer in the body of a successful reply to `req`: what [`OpenAiClient::chat`] makes of it.
/// Never panics, whatever the body; token counts are capped as the module notes say; an error says
/// what is wrong without quoting the body.
pub fn parse_reply(body: &str, req: &ChatRequest) -> Result<ChatResponse> {
    let v = reply_json(body).map_err(anyhow::Error::msg)?;
    parse_answer(&v, req)
}

fn parse_answer(v: &Value, req: &ChatRequest) -> Result<ChatResponse> {
    let choice = v["choices"].get(0).ok_or_else(|| anyhow!("no `choices[0]` (a JSON {})", json_kind(v)))?;
    let content = match &choice["message"]["content"] {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => bail!("`choices[0].message.content` is a JSON {}, not a string", json_kind(other)),
    };
    let finish_reason = choice["finish_reason"].as_str().map(str::to_string);
    let usage = &v["usage"];
    // Counts are the server's word: believed up to what is possible, never used to size anything larger.
    let count = |field: &str, max: usize| usize::try_from(usage[field].as_u64().unwrap_or(0)).unwrap_or(max).min(max);
    let prompt_tokens = count("prompt_tokens", MAX_PROMPT_TOKENS);
    let completion_tokens = count("completion_tokens", req.max_tokens);

    let prefix = req.assistant_prefix.as_deref().unwrap_or("");
    // A server that echoes the started answer returns it first (maybe without its trailing space).
    let mut continuation = if !prefix.is_empty() && content.starts_with(prefix) {
        content[prefix.len()..].to_string()
    } else if !prefix.trim_end().is_empty() && content.starts_with(prefix.trim_end()) {
        content[prefix.trim_end().len()..].trim_start().to_string()
    } else {
        content
    };
    let mut stop_reason = match finish_reason.as_deref() {
        Some("length") => StopReason::MaxTokens,
        _ => StopReason::Eos,
    };
    if let Some(pos) = req.stop.iter().filter(|s| !s.is_empty()).filter_map(|s| continuation.find(s.as_str())).min() {
        continuation.truncate(pos);
        stop_reason = StopReason::StopString;
    }
    Ok(ChatResponse {
        text: format!("{prefix}{continuation}"),
        continuation,
        finish_reason,
        stop_reason,
        prompt_tokens,
        completion_tokens,
        tries: 1,
    })
}

/// The error message in a server's error body (`{"error": {"message"}}`, `{"error": "..."}`,
/// `{"detail": ...}`, `{"message"}`), else the body itself, shortened.
fn server_message(body: &str) -> String {
    if let Ok(v) = serde_json::from_str::<Value>(body) {
        for m in [&v["error"]["message"], &v["error"], &v["message"], &v["detail"]] {
            match m {
                Value::String(s) if !s.is_empty() => return snippet(s),
                Value::Null => {}
                other if !other.is_object() => return snippet(&other.to_string()),
                _ => {}
            }
        }
    }
    if body.trim().is_empty() {
        "(empty body)".into()
    } else {
        snippet(body.trim())
    }
}

/// What kind of JSON value `v` is, for messages that must not echo it.
fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Server text for a log line: its first 200 characters, control characters escaped (a reply cannot
/// recolour or rewrite the terminal the log is read on).
fn snippet(s: &str) -> String {
    const MAX: usize = 200;
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i == MAX {
            out.push_str("...");
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Whether a transport error is a timeout (ureq reports read deadlines as io errors).
fn is_timeout(t: &ureq::Transport) -> bool {
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(t);
    while let Some(e) = src {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            if matches!(io.kind(), std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock) {
                return true;
            }
        }
        src = e.source();
    }
    let s = t.to_string().to_ascii_lowercase();
    s.contains("timed out") || s.contains("timeout")
}

/// A number in [0, 1) that differs between calls (for backoff jitter; no randomness crate needed).
fn jitter_unit() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0));
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The state key's model id of a remote run.
pub fn remote_model_id(cfg: &OpenAiConfig) -> String {
    format!("openai:{}", cfg.model)
}

impl Generator for OpenAiClient {
    fn model_id(&self) -> String {
        remote_model_id(self.config())
    }
    fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
        OpenAiClient::generate(self, requests)
    }
    /// One HTTP request per question, all at once under the in-flight limit (a server with prefix
    /// caching, as vLLM's, shares the text they repeat).
    fn score(&self, requests: &[ScoreRequest]) -> Result<Vec<Vec<f32>>> {
        std::thread::scope(|s| {
            let handles: Vec<_> = requests.iter().map(|r| s.spawn(move || self.score_one(r))).collect();
            handles
                .into_iter()
                .enumerate()
                .map(|(i, h)| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow!("a request thread panicked")))
                        .with_context(|| format!("scoring request {} of {}", i + 1, requests.len()))
                })
                .collect()
        })
    }
    /// An overestimate (see `OpenAiClient::estimate_tokens`); the counts recorded come from the server.
    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(OpenAiClient::estimate_tokens(text))
    }
    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<usize> {
        let chat = chat_request(&Request::greedy(prompt.clone(), 0));
        let texts = [chat.system.as_deref().unwrap_or(""), &chat.user, chat.assistant_prefix.as_deref().unwrap_or("")];
        Ok(texts.iter().map(|t| OpenAiClient::estimate_tokens(t)).sum())
    }
    fn context_length(&self) -> usize {
        self.config().context_length
    }
    fn is_cpu(&self) -> bool {
        false
    }
    fn unavailable(&self) -> Option<String> {
        let give_ups = self.give_ups.load(Ordering::SeqCst);
        (give_ups >= BREAKER_GIVE_UPS).then(|| {
            let last = self.last_give_up.lock().map(|l| l.clone()).unwrap_or_default();
            OpenAiError::Unavailable { url: self.url.clone(), give_ups, last }.to_string()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_with_or_without_v1() {
        assert_eq!(completions_url("http://h:8000"), "http://h:8000/v1/chat/completions");
        assert_eq!(completions_url("http://h:8000/"), "http://h:8000/v1/chat/completions");
        assert_eq!(completions_url("http://h:8000/v1/"), "http://h:8000/v1/chat/completions");
        assert_eq!(completions_url("http://h/api/v1/chat/completions"), "http://h/api/v1/chat/completions");
    }

    fn req(prefix: Option<&str>) -> ChatRequest {
        ChatRequest {
            system: None,
            user: "u".into(),
            assistant_prefix: prefix.map(String::from),
            max_tokens: 10,
            sampling: SamplingParams::greedy(),
            stop: vec!["</summary>".into()],
        }
    }

    #[test]
    fn started_answer_is_prepended_only_when_not_echoed() {
        let v = json!({"choices": [{"message": {"content": "el gobierno \
        anunció"}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 7, "completion_tokens": 3}});
        let r = parse_answer(&v, &req(Some("Resumen: "))).unwrap();
        assert_eq!((r.text.as_str(), r.continuation.as_str()), ("Resumen: el gobierno anunció", "el gobierno anunció"));
        assert_eq!((r.prompt_tokens, r.completion_tokens, r.stop_reason), (7, 3, StopReason::Eos));
        let v = json!({"choices": [{"message": {"content": "Resumen: el gobierno"}, "finish_reason": "length"}]});
        let r = parse_answer(&v, &req(Some("Resumen: "))).unwrap();
        assert_eq!(
            (r.text.as_str(), r.continuation.as_str(), r.stop_reason),
            ("Resumen: el gobierno", "el gobierno", StopReason::MaxTokens)
        );
        let v = json!({"choices": [{"message": {"content": "One.</summary> extra"}, "finish_reason": "stop"}]});
        let r = parse_answer(&v, &req(None)).unwrap();
        assert_eq!((r.text.as_str(), r.stop_reason), ("One.", StopReason::StopString));
        assert!(parse_answer(&json!({"object": "error"}), &req(None)).is_err());
    }

    #[test]
    fn prompts_become_messages() {
        let p = Prompt::Chat {
            system: Some("s".into()),
            user: "u\n\"q\"".into(),
            assistant_prefix: Some("Resumen: ".into()),
        };
        let c = chat_request(&Request::greedy(p, 5));
        assert_eq!(
            (c.system.as_deref(), c.user.as_str(), c.assistant_prefix.as_deref()),
            (Some("s"), "u\n\"q\"", Some("Resumen: "))
        );
        let c = chat_request(&Request::greedy(Prompt::Raw("raw text".into()), 5));
        assert_eq!((c.system, c.user.as_str(), c.assistant_prefix), (None, "raw text", None));
    }

    #[test]
    fn server_messages() {
        assert_eq!(
            server_message(r#"{"error":{"message":"model x not found","type":"invalid_request_error"}}"#),
            "model x not found"
        );
        assert_eq!(server_message(r#"{"detail":"bad"}"#), "bad");
        assert_eq!(server_message("plain"), "plain");
        assert_eq!(server_message(""), "(empty body)");
    }

    #[test]
    fn debug_hides_the_key() {
        let mut c = OpenAiConfig::new("http://h", "m");
        c.api_key = Some("sk-secret".into());
        assert!(!format!("{c:?}").contains("sk-secret"));
    }
}
