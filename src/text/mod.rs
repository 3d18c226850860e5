//! Text utilities every task shares: language detection, chunking, numbers and names, chrF.
//! Nothing here calls a model.

pub(crate) mod chrf;
pub(crate) mod chunk;
pub(crate) mod clean;
pub(crate) mod countries;
pub mod lang;
pub(crate) mod lexicon;
pub(crate) mod mbr;
pub(crate) mod names;
pub(crate) mod numbers;
pub(crate) mod split;
