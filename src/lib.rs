//! polysum: English and Spanish summaries of news articles with a local language model.
//!
//! The data flows one way: inputs → articles → prompts → generation → summaries → outputs/state.
//! The inference engine (`model`, `tokenizer`, `chat`, `sampling`, `kv_cache`, `generate`) knows nothing
//! about articles; the batch jobs (`summarize`, `translate`, `compare`) know nothing about tensors.

pub mod backend;
pub mod chat;
pub mod chunk;
pub mod cli;
pub mod compare;
pub mod device;
pub mod generate;
pub mod kv_cache;
pub mod model;
pub mod sampling;
pub mod tokenizer;
pub mod registry;
pub mod summarize;
pub mod translate;
pub mod config;

/// The model used when neither --model nor POLYSUM_MODEL names one: the only small model here that writes
/// fluent Spanish.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-1.5b";
