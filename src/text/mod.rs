//! Text utilities every task shares: language detection, chunking, numbers and names, chrF.
//! Nothing here calls a model.

pub mod chrf;
pub mod chunk;
pub mod clean;
pub mod lang;
pub mod names;
pub mod numbers;
pub mod split;
