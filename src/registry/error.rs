//! Errors of model resolution and download that tell the user what to do next.

use std::fmt;
use std::path::PathBuf;

/// One source tried for a model, and why it did not deliver it.
#[derive(Debug)]
pub struct Attempt {
    /// The source in words, e.g. `Hugging Face Hub (Qwen/X-GGUF@main, file x.gguf)`.
    pub source: String,
    pub error: anyhow::Error,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(
        "unknown model '{name}'. Known models: {}.\nSee `polysum models list`; or pass --model \
         hf:ORG/REPO/FILE[@REVISION], or --model path/to/model.gguf",
        .known.join(", ")
    )]
    UnknownModel { name: String, known: Vec<String> },

    #[error(
        "invalid Hub model '{spec}': {reason} (expected hf:ORG/REPO/FILE[@REVISION], e.g. \
         hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf)"
    )]
    BadHubSpec { spec: String, reason: String },

    #[error(
        "model file {} does not exist (--model takes a registry name, hf:ORG/REPO/FILE or a path to a .gguf \
         file; see `polysum models list`)",
        .path.display()
    )]
    PathNotFound { path: PathBuf },

    #[error("{} is not a GGUF model file: {reason}", .path.display())]
    NotGguf { path: PathBuf, reason: String },

    #[error("model '{name}' is not cached (expected at {}): run `polysum models pull {name}`", .path.display())]
    NotCached { name: String, path: PathBuf },

    #[error(
        "cached model '{name}' at {} is damaged: {reason}. Run `polysum models rm {name}` and then \
         `polysum models pull {name}`",
        .path.display()
    )]
    CorruptCache { name: String, path: PathBuf, reason: String },

    #[error(
        "sha256 mismatch for {what}: expected {expected}, got {actual}{}",
        .removed.as_ref().map(|p| format!(" (removed {})", p.display())).unwrap_or_default()
    )]
    ChecksumMismatch { what: String, expected: String, actual: String, removed: Option<PathBuf> },

    #[error(
        "size mismatch for {what}: expected {expected} bytes, got {actual}{}",
        .removed.as_ref().map(|p| format!(" (removed {})", p.display())).unwrap_or_default()
    )]
    SizeMismatch { what: String, expected: u64, actual: u64, removed: Option<PathBuf> },

    #[error("{}", sources_failed(.model, .attempts, .offline))]
    SourcesFailed { model: String, attempts: Vec<Attempt>, offline: bool },
}

fn sources_failed(model: &str, attempts: &[Attempt], offline: &bool) -> String {
    SourcesFailedDisplay { model, attempts, offline: *offline }.to_string()
}

struct SourcesFailedDisplay<'a> {
    model: &'a str,
    attempts: &'a [Attempt],
    offline: bool,
}

impl fmt::Display for SourcesFailedDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "model '{}' is not cached and no source could provide it. Tried:", self.model)?;
        for (i, a) in self.attempts.iter().enumerate() {
            writeln!(f, "  {}. {}: {:#}", i + 1, a.source, a.error)?;
        }
        write!(f, "To proceed: ")?;
        if self.offline {
            write!(f, "unset HF_HUB_OFFLINE / POLYSUM_OFFLINE to allow downloads, ")?;
        } else {
            write!(f, "check the network connection (proxy: HTTPS_PROXY), ")?;
        }
        write!(
            f,
            "then run `polysum models pull {}`; or download the GGUF file by other means and pass --model \
            /path/to/model.gguf",
            self.model
        )
    }
}

impl RegistryError {
    /// The attempts of a `SourcesFailed` error (empty for the others).
    pub fn attempts(&self) -> &[Attempt] {
        match self {
            RegistryError::SourcesFailed { attempts, .. } => attempts,
            _ => &[],
        }
    }
}
