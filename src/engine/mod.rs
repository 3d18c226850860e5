//! The inference engine: GGUF models on candle, tokenizer, chat template, sampling, KV cache, batched
//! generation with prompt-lookup drafts, and the continuous-batching scheduler. It knows nothing about
//! articles or jobs.

pub mod chat;
pub mod device;
pub mod generate;
pub(crate) mod kv_cache;
pub mod lookup;
pub mod model;
pub mod prefix_cache;
pub mod sampling;
pub mod scheduler;
pub mod synth;
pub mod tokenizer;
