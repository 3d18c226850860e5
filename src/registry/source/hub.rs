//! The Hugging Face Hub, through hf-hub's sync API and its cache layout (`$HF_HOME/hub`). Offline, only that
//! cache is looked at. Online, a quick probe with short timeouts comes first: hf-hub 0.4 builds its own ureq agent
//! with no connect timeout, so an unreachable Hub would otherwise hang instead of failing over.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use hf_hub::{Repo, RepoType};

use crate::registry::cache::sha256_file;
use crate::registry::config::Config;
use crate::registry::error::RegistryError;
use crate::registry::progress::Progress;
use crate::registry::spec::HubFile;

fn repo(hf: &HubFile) -> Repo {
    Repo::with_revision(hf.repo.clone(), RepoType::Model, hf.revision.clone())
}

/// The file in hf-hub's cache, if it is there (no network).
pub(crate) fn cached(cfg: &Config, hf: &HubFile) -> Option<PathBuf> {
    hf_hub::Cache::new(cfg.hf_cache_dir.clone()).repo(repo(hf)).get(&hf.file)
}

/// The URL hf-hub downloads the file from.
pub(crate) fn url(cfg: &Config, hf: &HubFile) -> String {
    format!(
        "{}/{}/resolve/{}/{}",
        cfg.hf_endpoint.trim_end_matches('/'),
        hf.repo,
        hf.revision.replace('/', "%2F"),
        hf.file
    )
}

/// The file from the Hub cache, or downloaded into it. Returns the path and whether it was downloaded now.
pub(crate) fn fetch(cfg: &Config, hf: &HubFile) -> Result<(PathBuf, bool)> {
    if let Some(path) = cached(cfg, hf) {
        return Ok((path, false));
    }
    if cfg.offline {
        bail!(
            "offline (HF_HUB_OFFLINE=1), and the file is not in the Hugging Face cache {}",
            cfg.hf_cache_dir.display()
        );
    }
    let url = url(cfg, hf);
    probe(cfg, &url)?;
    let api = hf_hub::api::sync::ApiBuilder::from_cache(hf_hub::Cache::new(cfg.hf_cache_dir.clone()))
        .with_endpoint(cfg.hf_endpoint.clone())
        .with_token(cfg.hf_token.clone())
        .with_retries(cfg.retries as usize)
        .with_progress(false)
        .build()
        .context("setting up the Hub client")?;
    let label = format!("hub {}", hf.file.rsplit('/').next().unwrap_or(&hf.file));
    let progress = Progress::start(cfg.progress, &label, 0, 0);
    let path = api
        .repo(repo(hf))
        .download_with_progress(&hf.file, progress)
        .map_err(|e| anyhow!("download from {url} failed: {e}"))?;
    Ok((path, true))
}

/// The sha256 the Hub vouches for: the name of the LFS blob the cached file points to (hf-hub names blobs by
/// etag, which for LFS files is the file's sha256).
pub(crate) fn blob_sha256(path: &Path) -> Option<String> {
    let blob = std::fs::canonicalize(path).ok()?;
    let name = blob.file_name()?.to_str()?;
    (name.len() == 64 && name.chars().all(|c| c.is_ascii_hexdigit())).then(|| name.to_ascii_lowercase())
}

/// Checks a file just downloaded from the Hub against `expected` (else the blob's own sha256, if it has one).
/// On a mismatch the blob and its snapshot link are removed when `remove` (a file downloaded just now), so the next
/// attempt downloads again; a file that was already in the Hub cache is left alone.
pub(crate) fn verify_download(
    path: &Path,
    expected: Option<&str>,
    what: &str,
    remove: bool,
    progress: bool,
) -> Result<()> {
    let Some(expected) = expected.map(str::to_string).or_else(|| blob_sha256(path)) else {
        return Ok(());
    };
    let actual = sha256_file(path, Some(&format!("checking {what}")), progress)?;
    if actual != expected {
        let mut removed = None;
        if remove {
            let blob = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
            std::fs::remove_file(&blob).ok();
            std::fs::remove_file(path).ok();
            removed = Some(blob);
        }
        return Err(RegistryError::ChecksumMismatch { what: what.to_string(), expected, actual, removed }.into());
    }
    Ok(())
}

/// Asks the Hub for the first byte of the file, with short timeouts, on a thread that is abandoned if even name
/// resolution hangs. Success means hf-hub can take over; the error explains what went wrong.
pub(crate) fn probe(cfg: &Config, url: &str) -> Result<()> {
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(cfg.connect_timeout)
        .timeout_read(cfg.connect_timeout * 3)
        .redirects(0)
        .try_proxy_from_env(true)
        .build();
    let mut request = agent.get(url).set("Range", "bytes=0-0");
    if let Some(token) = &cfg.hf_token {
        request = request.set("Authorization", &format!("Bearer {token}"));
    }
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(request.call().map(|r| r.status()));
    });
    let wait = cfg.connect_timeout * 4 + Duration::from_secs(1);
    let endpoint = &cfg.hf_endpoint;
    match rx.recv_timeout(wait) {
        Err(_) => bail!("no answer from {endpoint} within {:.1} s", wait.as_secs_f64()),
        Ok(Ok(_)) => Ok(()),
        Ok(Err(ureq::Error::Status(code, _))) if (300..400).contains(&code) => Ok(()),
        Ok(Err(ureq::Error::Status(401 | 403, _))) => {
            bail!("{url}: access denied (gated or private repository: accept its terms on the Hub and set HF_TOKEN)")
        }
        Ok(Err(ureq::Error::Status(404, _))) => bail!("{url}: no such repository, revision or file on the Hub"),
        Ok(Err(ureq::Error::Status(code, r))) => bail!("{url}: HTTP {code} {}", r.status_text()),
        Ok(Err(ureq::Error::Transport(t))) => {
            bail!("cannot reach {endpoint}: {}", super::http::transport_detail(&t))
        }
    }
}
