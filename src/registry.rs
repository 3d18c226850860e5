//! Model registry and sources. STUB, being written.
use std::path::PathBuf;
use anyhow::Result;
pub struct ResolvedModel { pub name: String, pub gguf: PathBuf, pub tokenizer_json: Option<PathBuf> }
pub fn resolve_model(spec: &str) -> Result<ResolvedModel> {
    Ok(ResolvedModel { name: spec.into(), gguf: PathBuf::from(spec), tokenizer_json: None })
}
