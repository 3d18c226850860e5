//! What `--model` names: a registry name, `hf:ORG/REPO/FILE[@REVISION]`, or a path to a `.gguf` file.

use std::path::PathBuf;

use crate::registry::error::RegistryError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    /// A registry name or alias (not yet checked against the registry).
    Name(String),
    /// A file in a Hub repository.
    Hub(HubFile),
    /// A local file.
    Path(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFile {
    /// `ORG/REPO`.
    pub repo: String,
    /// Path of the file in the repository (may contain `/`).
    pub file: String,
    /// Branch, tag or commit; `main` by default.
    pub revision: String,
}

impl std::fmt::Display for HubFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "hf:{}/{}@{}", self.repo, self.file, self.revision)
    }
}

impl ModelSpec {
    /// The rules, in order: `hf:` prefix → Hub file; something that looks like a path (has a path separator,
    /// ends in `.gguf`, starts with `.` or `~`) → path; anything else → a registry name.
    pub fn parse(spec: &str) -> Result<ModelSpec, RegistryError> {
        let spec = spec.trim();
        if let Some(rest) = spec.strip_prefix("hf:") {
            return parse_hub(spec, rest).map(ModelSpec::Hub);
        }
        let looks_like_path = spec.contains('/')
            || spec.contains(std::path::MAIN_SEPARATOR)
            || spec.to_ascii_lowercase().ends_with(".gguf")
            || spec.starts_with('.')
            || spec.starts_with('~');
        if looks_like_path {
            return Ok(ModelSpec::Path(expand_home(spec)));
        }
        Ok(ModelSpec::Name(spec.to_string()))
    }
}

fn expand_home(spec: &str) -> PathBuf {
    if let Some(rest) = spec.strip_prefix("~/") {
        if let Some(home) = dirs::home_dir() {
            return home.join(rest);
        }
    }
    PathBuf::from(spec)
}

fn parse_hub(spec: &str, rest: &str) -> Result<HubFile, RegistryError> {
    let bad = |reason: &str| RegistryError::BadHubSpec { spec: spec.to_string(), reason: reason.to_string() };
    let mut pieces = rest.splitn(3, '/');
    let org = pieces.next().unwrap_or_default();
    let repo = pieces.next().unwrap_or_default();
    let file_rev = pieces.next().unwrap_or_default();
    if org.is_empty() || repo.is_empty() || repo.contains('@') {
        return Err(bad("ORG and REPO must not be empty"));
    }
    let (file, revision) = match file_rev.rsplit_once('@') {
        Some((file, rev)) => (file, rev),
        None => (file_rev, "main"),
    };
    if file.is_empty() || file.ends_with('/') {
        return Err(bad("FILE is missing"));
    }
    if revision.is_empty() {
        return Err(bad("REVISION after '@' is empty"));
    }
    if file.split('/').any(|c| c == ".." || c == "." || c.is_empty()) {
        return Err(bad("FILE must be a plain path inside the repository"));
    }
    Ok(HubFile { repo: format!("{org}/{repo}"), file: file.to_string(), revision: revision.to_string() })
}
