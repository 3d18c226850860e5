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
pub mod scheduler;
pub mod tokenizer;
pub mod registry;
pub mod summarize;
pub mod translate;
pub mod config;

/// The model used when neither --model nor POLYSUM_MODEL names one: the only small model here that writes
/// fluent Spanish.
pub const DEFAULT_MODEL: &str = "qwen2.5-coder-1.5b";

/// mimalloc instead of glibc's malloc: a prompt step allocates activation buffers of tens of MB that glibc
/// maps fresh from the kernel and returns on free, so every step paid page faults and page zeroing (18 %
/// of a summarize run's CPU time); mimalloc reuses the freed pages.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
