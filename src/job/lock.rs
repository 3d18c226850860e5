//! One run per output folder: an exclusive advisory lock on `DIR/.polysum/lock`, held for the whole run.
//! The OS releases it when the process ends, however it ends (SIGKILL included).

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use fs4::fs_std::FileExt;

#[derive(Debug, thiserror::Error)]
pub(crate) enum LockError {
    #[error("another polysum run (pid {pid}) is working on {dir}; try again when it has finished")]
    Held { pid: String, dir: PathBuf },
    #[error("cannot open the lock file {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
}

/// Held while alive.
#[derive(Debug)]
pub(crate) struct Lock {
    _file: File,
}

impl Lock {
    /// Take the lock of `dir` (the output folder) without waiting.
    pub(crate) fn acquire(dir: &Path) -> Result<Lock, LockError> {
        let meta = dir.join(crate::job::META_DIR);
        let path = meta.join("lock");
        let io = |source| LockError::Io { path: path.clone(), source };
        std::fs::create_dir_all(&meta).map_err(io)?;
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        if !FileExt::try_lock_exclusive(&file).map_err(io)? {
            let mut pid = String::new();
            let _ = file.read_to_string(&mut pid);
            let pid = pid.trim().to_string();
            return Err(LockError::Held {
                pid: if pid.is_empty() { "unknown".into() } else { pid },
                dir: dir.to_path_buf(),
            });
        }
        // Only the holder writes its pid; others only read it for the message.
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        write!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Lock { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_lock_fails_with_pid_and_is_free_after_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = Lock::acquire(dir.path()).unwrap();
        match Lock::acquire(dir.path()) {
            Err(LockError::Held { pid, .. }) => assert_eq!(pid, std::process::id().to_string()),
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        Lock::acquire(dir.path()).unwrap();
    }
}
