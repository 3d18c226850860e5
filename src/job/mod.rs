//! The batch framework that `summarize` and `translate` run on: inputs, the plan against the state,
//! the runner, the lock, the state, the output files, progress, the record schema, shards and merge.

pub mod input;
pub mod lock;
pub mod merge;
pub mod output;
pub mod progress;
pub mod record;
pub mod runner;
pub mod shard;
pub mod state;
pub mod task;

/// polysum's own files inside the output folder (lock, state database).
pub const META_DIR: &str = ".polysum";
