//! Resumable HTTPS download of one file with a known size and sha256 (used for wheels).

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};

use crate::registry::cache::sha256_file;
use crate::registry::error::RegistryError;
use crate::registry::progress::Progress;

/// What to fetch.
pub(crate) struct Download<'a> {
    pub(crate) url: &'a str,
    /// Where the verified file goes; bytes arrive in `<dest>.part` first.
    pub(crate) dest: &'a Path,
    pub(crate) size: u64,
    pub(crate) sha256: &'a str,
    /// Name for messages and the progress bar.
    pub(crate) label: &'a str,
}

pub(crate) fn part_path(dest: &Path) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(".part");
    dest.with_file_name(name)
}

/// Downloads `d.url` to `d.dest`, resuming from `<dest>.part` with an HTTP range request when one exists
/// (a server that answers 200 instead of 206 makes it start over). The sha256 is checked before the rename to
/// `dest`; a mismatch removes the partial file. A cut-off transfer keeps `<dest>.part` for the next attempt, and
/// is retried here `retries` times. An existing `dest` is re-hashed and reused when it matches.
pub(crate) fn fetch(agent: &ureq::Agent, d: &Download, retries: u32, progress: bool) -> Result<()> {
    if d.dest.is_file() {
        if sha256_file(d.dest, None, false)? == d.sha256 {
            return Ok(());
        }
        std::fs::remove_file(d.dest).ok();
    }
    let part = part_path(d.dest);
    let mut attempt = 0;
    loop {
        match fetch_once(agent, d, &part, progress) {
            Ok(()) => break,
            Err(e) if attempt < retries && e.downcast_ref::<Cut>().is_some() => {
                attempt += 1;
                crate::registry::progress::note(
                    progress,
                    &format!("{}: {e:#}; retrying ({attempt}/{retries})", d.label),
                );
                std::thread::sleep(std::time::Duration::from_millis(300 * attempt as u64));
            }
            Err(e) => return Err(e),
        }
    }
    let actual = sha256_file(&part, None, false)?;
    if actual != d.sha256 {
        std::fs::remove_file(&part).ok();
        return Err(RegistryError::ChecksumMismatch {
            what: format!("{} (downloaded from {})", d.label, d.url),
            expected: d.sha256.to_string(),
            actual,
            removed: Some(part),
        }
        .into());
    }
    std::fs::rename(&part, d.dest).with_context(|| format!("renaming {}", part.display()))?;
    Ok(())
}

/// A transfer that ended before all bytes arrived (worth resuming).
#[derive(Debug)]
struct Cut(String);
impl std::fmt::Display for Cut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Cut {}

fn fetch_once(agent: &ureq::Agent, d: &Download, part: &Path, progress: bool) -> Result<()> {
    let mut have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
    if have > d.size {
        std::fs::remove_file(part).ok();
        have = 0;
    }
    if have == d.size {
        return Ok(());
    }
    let mut request = agent.get(d.url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(416, _)) if have > 0 => {
            // The server does not like our range: start over.
            std::fs::remove_file(part).ok();
            return fetch_once(agent, d, part, progress);
        }
        Err(ureq::Error::Status(code, r)) => bail!("{}: HTTP {code} {} from {}", d.label, r.status_text(), d.url),
        Err(e) => {
            return Err(anyhow!(Cut(format!("{}: cannot download {}: {e}", d.label, d.url))));
        }
    };
    let (mut file, start) = if have > 0 && response.status() == 206 && range_start(&response) == Some(have) {
        (OpenOptions::new().append(true).open(part).with_context(|| format!("opening {}", part.display()))?, have)
    } else {
        if response.status() != 200 {
            bail!("{}: unexpected HTTP {} from {}", d.label, response.status(), d.url);
        }
        (File::create(part).with_context(|| format!("creating {}", part.display()))?, 0)
    };
    let mut bar = Progress::start(progress, d.label, d.size, start);
    let mut reader = response.into_reader().take(d.size - start);
    let mut buf = vec![0u8; 256 * 1024];
    let mut got = start;
    let result: std::io::Result<()> = loop {
        match reader.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(n) => {
                if let Err(e) = file.write_all(&buf[..n]) {
                    break Err(e);
                }
                got += n as u64;
                bar.inc(n as u64);
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(e),
        }
    };
    file.sync_all().ok();
    drop(file);
    if let Err(e) = result {
        bar.abandon();
        if e.kind() == std::io::ErrorKind::StorageFull {
            return Err(anyhow!(e).context(format!("{}: disk full while writing {}", d.label, part.display())));
        }
        return Err(anyhow!(Cut(format!(
            "{}: download cut off after {got} of {} bytes ({e}); the partial file is kept and the next attempt resumes",
            d.label, d.size
        ))));
    }
    if got < d.size {
        bar.abandon();
        return Err(anyhow!(Cut(format!(
            "{}: download cut off after {got} of {} bytes (connection closed early); the partial file is kept and the \
            next attempt resumes",
            d.label, d.size
        ))));
    }
    bar.finish("downloaded");
    Ok(())
}

/// The first byte of a `Content-Range: bytes START-END/TOTAL` header.
fn range_start(response: &ureq::Response) -> Option<u64> {
    let v = response.header("Content-Range")?;
    let v = v.trim().strip_prefix("bytes")?.trim();
    v.split('-').next()?.trim().parse().ok()
}

/// A transport error without the URL (the caller names the server): kind, message and cause.
pub(crate) fn transport_detail(t: &ureq::Transport) -> String {
    let mut s = t.kind().to_string();
    if let Some(m) = t.message() {
        s.push_str(": ");
        s.push_str(m);
    }
    if let Some(src) = std::error::Error::source(t) {
        s.push_str(": ");
        s.push_str(&src.to_string());
    }
    s
}
