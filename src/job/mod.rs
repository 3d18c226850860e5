//! The batch framework that `summarize` and `translate` run on: inputs, the plan against the state,
//! the runner, the lock, the state, the output files, progress, the record schema, shards and merge.

pub mod input;
pub(crate) mod lock;
pub(crate) mod merge;
pub(crate) mod output;
pub(crate) mod progress;
pub(crate) mod record;
pub(crate) mod runner;
pub(crate) mod shard;
pub(crate) mod state;
pub(crate) mod task;

/// The index of every article's record, at the top of the output folder.
pub(crate) const INDEX: &str = "index.jsonl";

/// polysum's own files inside the output folder (lock, state database).
pub(crate) const META_DIR: &str = ".polysum";
