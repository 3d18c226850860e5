//! TEMPORARY chat stub.
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
    pub fn from_gguf(_c: &gguf_file::Content, _t: &Tokenizer) -> Result<Self> { Ok(Self) }
    pub fn render(&self, m: &[Message], _g: bool) -> Result<String> {
        let mut s = String::new();
        for x in m { s += &format!("<|im_start|>{}\n{}<|im_end|>\n", x.role, x.content); }
        s += "<|im_start|>assistant\n"; Ok(s)
    }
}
