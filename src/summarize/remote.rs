//! `--backend openai` and `--shard K/N`: summarize with a remote OpenAI-compatible server, and run one
//! shard of a partition of the inputs (see `crate::backend`).

use anyhow::{bail, Result};
use clap::Args;

use crate::backend::generator::Generator;
use crate::backend::openai::{OpenAiClient, OpenAiConfig};
use crate::engine::generate::{CallStats, Generation, Request};
use crate::job::shard::ShardSpec;

#[derive(Args, Debug, Clone, Default)]
pub struct ScaleArgs {
    /// local (the built-in engine) or openai (a server speaking the OpenAI chat-completions protocol:
    /// vLLM, llama.cpp's server, TGI, Ollama) [default: local].
    #[arg(long)]
    pub backend: Option<String>,
    /// With --backend openai: the server's URL, with or without /v1 (e.g. http://vllm:8000).
    #[arg(long)]
    pub endpoint: Option<String>,
    /// With --backend openai: the environment variable holding the API key (sent as a bearer token).
    #[arg(long)]
    pub api_key_env: Option<String>,
    /// With --backend openai: the model name the server serves.
    #[arg(long)]
    pub remote_model: Option<String>,
    /// With --backend openai: requests open at once, over all articles [default: 8].
    #[arg(long, value_parser = crate::cli::bounds::max_inflight)]
    pub max_inflight: Option<usize>,
    /// With --backend openai: seconds one request may take before it is retried [default: 300].
    #[arg(long, value_parser = crate::cli::bounds::timeout)]
    pub timeout: Option<f64>,
    /// With --backend openai: retries of a request on 429, 5xx, timeouts and connection errors [default: 5].
    #[arg(long, value_parser = crate::cli::bounds::retries)]
    pub retries: Option<u32>,
    /// With --backend openai: the remote model's context length in tokens [default: 8192].
    #[arg(long, value_parser = crate::cli::bounds::context)]
    pub remote_context: Option<usize>,
    /// Summarize only shard K of N (K from 0): the articles whose content hash falls in it. N runs with
    /// K = 0..N-1, each with its own --out, cover every article once; `polysum merge` combines them.
    #[arg(long)]
    pub shard: Option<String>,
}

impl ScaleArgs {
    pub fn shard(&self) -> Result<Option<ShardSpec>> {
        self.shard.as_deref().map(ShardSpec::parse).transpose()
    }

    /// The remote configuration with `--backend openai`, `None` with `local`.
    pub fn remote(&self) -> Result<Option<OpenAiConfig>> {
        match self.backend.as_deref().unwrap_or("local") {
            "local" => {
                if self.endpoint.is_some() || self.remote_model.is_some() {
                    bail!("--endpoint and --remote-model need --backend openai");
                }
                Ok(None)
            }
            "openai" => {
                let Some(endpoint) = self.endpoint.clone() else {
                    bail!("--backend openai needs --endpoint URL (e.g. http://127.0.0.1:8000)")
                };
                let Some(model) = self.remote_model.clone() else {
                    bail!("--backend openai needs --remote-model NAME (the model the server serves)")
                };
                let mut cfg = OpenAiConfig::new(endpoint, model).api_key_from_env(self.api_key_env.as_deref())?;
                if let Some(n) = self.max_inflight {
                    if n == 0 {
                        bail!("--max-inflight must be at least 1");
                    }
                    cfg.max_inflight = n;
                }
                if let Some(t) = self.timeout {
                    cfg.timeout = crate::cli::bounds::check_timeout(t).map_err(anyhow::Error::msg)?;
                }
                if let Some(r) = self.retries {
                    cfg.max_retries = r;
                }
                if let Some(c) = self.remote_context {
                    cfg.context_length = c;
                }
                Ok(Some(cfg))
            }
            other => bail!("--backend {other:?}: use local or openai"),
        }
    }
}

/// The state key's model id of a remote run.
pub fn remote_model_id(cfg: &OpenAiConfig) -> String {
    format!("openai:{}", cfg.model)
}

impl Generator for OpenAiClient {
    fn model_id(&self) -> String {
        remote_model_id(self.config())
    }
    fn chat_prompt(&self, system: Option<&str>, user: &str, assistant_prefix: Option<&str>) -> Result<String> {
        OpenAiClient::chat_prompt(self, system, user, assistant_prefix)
    }
    fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
        OpenAiClient::generate(self, requests)
    }
    /// An overestimate (see `OpenAiClient::estimate_tokens`); the counts recorded come from the server.
    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(OpenAiClient::estimate_tokens(text))
    }
    fn context_length(&self) -> usize {
        self.config().context_length
    }
    fn is_cpu(&self) -> bool {
        false
    }
}
