//! TEMPORARY dev tokenizer (candle's TokenizerFromGguf) until the real one lands.
use std::path::Path;
use anyhow::Result;
use candle_core::quantized::gguf_file;
use candle_core::quantized::tokenizer::TokenizerFromGguf;
pub struct Tokenizer { inner: tokenizers::Tokenizer, eos: Vec<u32> }
impl Tokenizer {
    pub fn from_gguf(c: &gguf_file::Content) -> Result<Self> {
        let inner = tokenizers::Tokenizer::from_gguf(c)?;
        let eos = ["<|im_end|>", "<|endoftext|>", "<end_of_turn>", "<eos>"].iter().filter_map(|t| inner.token_to_id(t)).collect();
        Ok(Self { inner, eos })
    }
    pub fn from_json_file(_p: &Path, _c: Option<&gguf_file::Content>) -> Result<Self> { todo!() }
    pub fn encode(&self, text: &str, _parse_special: bool) -> Result<Vec<u32>> { Ok(self.inner.encode(text, false).map_err(anyhow::Error::msg)?.get_ids().to_vec()) }
    pub fn decode(&self, ids: &[u32]) -> Result<String> { self.inner.decode(ids, true).map_err(anyhow::Error::msg) }
    pub fn bos_id(&self) -> Option<u32> { None }
    pub fn add_bos(&self) -> bool { false }
    pub fn eos_id(&self) -> Option<u32> { None }
    pub fn end_of_generation_ids(&self) -> Vec<u32> { self.eos.clone() }
}
