//! The error kinds that decide an exit code, raised anywhere and mapped to codes in one place
//! (`crate::cli`). Everything else is an ordinary `anyhow::Error` and means a fatal error.

/// A problem with what the user asked for: flags, settings, an output folder of another kind (exit 2).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

impl UsageError {
    /// `e` as a usage error, keeping its message (and its causes, flattened).
    pub(crate) fn wrap(e: impl std::fmt::Display) -> anyhow::Error {
        anyhow::Error::new(UsageError(format!("{e:#}")))
    }
}
