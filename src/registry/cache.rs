//! polysum's model cache: `<cache>/models/<name>/<file>`. A file there is only ever created by an atomic rename
//! after its sha256 matched; downloads in progress live in `<cache>/models/<name>/.partial/`, which listing and
//! resolution ignore.
//!
//! A file whose sha256 matched gets a stamp beside it (`<cache>/models/<name>/.verified`: size, inode and
//! modification time of the file, and the hash): loading trusts a file whose stamp still matches and
//! hashes it again when anything in the stamp changed (a file rewritten in place gets a new mtime).

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use fs4::fs_std::FileExt;
use sha2::{Digest, Sha256};

use crate::registry::catalog::ModelEntry;
use crate::registry::config::Config;
use crate::registry::error::RegistryError;

pub(crate) struct ModelCache {
    root: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CacheStatus {
    Cached {
        path: PathBuf,
        size: u64,
    },
    /// A download was started: bytes of temporary files in `.partial/`.
    Partial {
        bytes: u64,
    },
    Missing,
}

/// The stamp file's name in a model's folder.
const STAMP: &str = ".verified";

/// What identified the file when its hash was last checked.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
struct Stamp {
    size: u64,
    inode: u64,
    mtime_secs: i64,
    mtime_nanos: u32,
    sha256: String,
}

impl Stamp {
    fn of(path: &Path, sha256: &str) -> std::io::Result<Stamp> {
        let m = std::fs::metadata(path)?;
        let since = |t: std::time::SystemTime| match t.duration_since(std::time::UNIX_EPOCH) {
            Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
            Err(e) => (-(e.duration().as_secs() as i64), e.duration().subsec_nanos()),
        };
        let (mtime_secs, mtime_nanos) = since(m.modified()?);
        #[cfg(unix)]
        let inode = std::os::unix::fs::MetadataExt::ino(&m);
        #[cfg(not(unix))]
        let inode = 0;
        Ok(Stamp { size: m.len(), inode, mtime_secs, mtime_nanos, sha256: sha256.to_string() })
    }
}

/// Held while a model is being pulled (an exclusive lock on `<cache>/models/<name>/.lock`).
pub(crate) struct PullLock {
    _file: File,
}

impl ModelCache {
    pub(crate) fn new(cfg: &Config) -> ModelCache {
        ModelCache { root: cfg.models_dir() }
    }

    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    pub(crate) fn model_dir(&self, entry: &ModelEntry) -> PathBuf {
        self.root.join(&entry.name)
    }

    /// Where the verified GGUF of `entry` lives (whether or not it is there).
    pub(crate) fn final_path(&self, entry: &ModelEntry) -> PathBuf {
        self.model_dir(entry).join(&entry.file)
    }

    /// Temporary files of a download in progress.
    pub(crate) fn partial_dir(&self, entry: &ModelEntry) -> PathBuf {
        self.model_dir(entry).join(".partial")
    }

    /// The cached file, if there is one.
    pub(crate) fn cached(&self, entry: &ModelEntry) -> Option<PathBuf> {
        let path = self.final_path(entry);
        path.is_file().then_some(path)
    }

    pub(crate) fn status(&self, entry: &ModelEntry) -> CacheStatus {
        if let Some(path) = self.cached(entry) {
            let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
            return CacheStatus::Cached { path, size };
        }
        let bytes = dir_bytes(&self.partial_dir(entry));
        if bytes > 0 {
            CacheStatus::Partial { bytes }
        } else {
            CacheStatus::Missing
        }
    }

    /// Takes the pull lock of a model, waiting (with a note on stderr) while another process holds it.
    pub(crate) fn lock(&self, entry: &ModelEntry, progress: bool) -> Result<PullLock> {
        let dir = self.model_dir(entry);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let path = dir.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening lock file {}", path.display()))?;
        if !file.try_lock_exclusive().with_context(|| format!("locking {}", path.display()))? {
            crate::registry::progress::note(
                progress,
                &format!("another polysum process is downloading {}; waiting for it to finish", entry.name),
            );
            file.lock_exclusive().with_context(|| format!("locking {}", path.display()))?;
        }
        Ok(PullLock { _file: file })
    }

    /// Moves a verified temporary file into place (same directory tree, so the rename is atomic).
    pub(crate) fn install(&self, entry: &ModelEntry, verified_tmp: &Path) -> Result<PathBuf> {
        let dest = self.final_path(entry);
        std::fs::rename(verified_tmp, &dest)
            .with_context(|| format!("moving {} to {}", verified_tmp.display(), dest.display()))?;
        if let Some(dir) = dest.parent() {
            // Make the rename durable; failure here is harmless.
            let _ = File::open(dir).and_then(|d| d.sync_all());
        }
        Ok(dest)
    }

    /// Records that `path`, the cached file of `entry`, hashed to `sha256` (see the module notes). A
    /// stamp that cannot be written only costs a hash at the next load.
    pub(crate) fn record_verified(&self, entry: &ModelEntry, path: &Path, sha256: &str) {
        if let Ok(stamp) = Stamp::of(path, sha256) {
            if let Ok(json) = serde_json::to_string(&stamp) {
                let _ = write_atomic(&self.model_dir(entry).join(STAMP), &json);
            }
        }
    }

    /// Checks the cached file `path` of `entry` against the registry's sha256: free when the stamp
    /// still describes the file, else a full hash (and a new stamp when it matches). A registry entry
    /// without a sha256 has nothing to check.
    pub(crate) fn check_verified(&self, entry: &ModelEntry, path: &Path, progress: bool) -> Result<(), RegistryError> {
        let Some(expected) = entry.sha256.as_deref() else {
            return Ok(());
        };
        let corrupt =
            |reason: String| RegistryError::CorruptCache { name: entry.name.clone(), path: path.to_path_buf(), reason };
        let stamp_path = self.model_dir(entry).join(STAMP);
        let stamped = std::fs::read_to_string(&stamp_path).ok().and_then(|t| serde_json::from_str::<Stamp>(&t).ok());
        let now = Stamp::of(path, expected).map_err(|e| corrupt(format!("cannot read it: {e}")))?;
        if stamped.as_ref() == Some(&now) {
            return Ok(());
        }
        crate::registry::progress::note(
            progress,
            &format!(
                "{}: checking the sha256 of the cached file (new, or changed since it was last checked)",
                entry.name
            ),
        );
        let label = format!("verifying {}", entry.name);
        let actual = sha256_file(path, Some(&label), progress).map_err(|e| corrupt(format!("{e:#}")))?;
        if actual != expected {
            let _ = std::fs::remove_file(&stamp_path);
            return Err(corrupt(format!("its sha256 is {actual}, not {expected}")));
        }
        self.record_verified(entry, path, expected);
        Ok(())
    }

    /// Removes a model's folder (file, partial downloads, lock). Returns whether there was anything.
    pub(crate) fn remove(&self, entry: &ModelEntry) -> Result<bool> {
        let dir = self.model_dir(entry);
        if !dir.exists() {
            return Ok(false);
        }
        let had_file = self.cached(entry).is_some() || dir_bytes(&self.partial_dir(entry)) > 0;
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
        Ok(had_file)
    }
}

/// Total bytes of the regular files under `dir` (0 when it does not exist).
pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// sha256 (lowercase hex) of a file, reporting progress.
pub(crate) fn sha256_file(path: &Path, label: Option<&str>, progress: bool) -> Result<String> {
    let mut file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let total = file.metadata().map(|m| m.len()).unwrap_or(0);
    let mut bar = label.map(|l| crate::registry::progress::Progress::start_quiet(progress, l, total));
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        if let Some(b) = bar.as_mut() {
            b.inc(n as u64);
        }
    }
    if let Some(mut b) = bar {
        b.clear();
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Checks the 4-byte `GGUF` magic.
pub(crate) fn check_gguf(path: &Path) -> Result<(), RegistryError> {
    let not = |reason: String| RegistryError::NotGguf { path: path.to_path_buf(), reason };
    let mut file = File::open(path).map_err(|e| not(format!("cannot open it: {e}")))?;
    let mut magic = [0u8; 4];
    match file.read_exact(&mut magic) {
        Ok(()) if &magic == b"GGUF" => Ok(()),
        Ok(()) => Err(not(format!(
            "it starts with {:?} instead of the magic \"GGUF\" (a damaged download, or another format such as \
            safetensors)",
            String::from_utf8_lossy(&magic)
        ))),
        Err(_) => Err(not("it is shorter than a GGUF header (empty or truncated)".to_string())),
    }
}

/// Writes `text` to `path` atomically (temp file + rename).
pub(crate) fn write_atomic(path: &Path, text: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(())
}
