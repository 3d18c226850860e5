//! Generation on engines other than the built-in one.
//!
//! `openai`: any server that speaks the OpenAI chat-completions protocol (vLLM, llama.cpp's server,
//! Hugging Face TGI, Ollama). `shard`: the deterministic partition of inputs for N independent runs.

pub mod generator;
pub mod openai;
