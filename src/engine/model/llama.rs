//! llama (SmolLM2 and other Llama-family files).

use anyhow::Result;

use super::loader::Gguf;
use super::{Activation, ArchSpec, RopeStyle};

pub(crate) fn spec(g: &Gguf) -> Result<ArchSpec> {
    // llama.cpp's converter permutes llama q/k weights so that rotary pairs are adjacent.
    ArchSpec::common(g, "llama", RopeStyle::Interleaved, Activation::Silu)
}
