//! Chat templates. STUB, being written.
use anyhow::Result;
use candle_core::quantized::gguf_file;
use crate::tokenizer::Tokenizer;
#[derive(Debug, Clone, serde::Serialize)]
pub struct Message { pub role: String, pub content: String }
impl Message {
    pub fn system(c: &str) -> Self { Self { role: "system".into(), content: c.into() } }
    pub fn user(c: &str) -> Self { Self { role: "user".into(), content: c.into() } }
    pub fn assistant(c: &str) -> Self { Self { role: "assistant".into(), content: c.into() } }
}
pub struct ChatTemplate;
impl ChatTemplate {
    pub fn from_gguf(_c: &gguf_file::Content, _t: &Tokenizer) -> Result<Self> { todo!() }
    pub fn render(&self, _m: &[Message], _add_generation_prompt: bool) -> Result<String> { todo!() }
}
