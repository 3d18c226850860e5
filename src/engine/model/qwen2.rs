//! qwen2 (Qwen2 and Qwen2.5, Coder included). Its q/k/v biases are picked up from the file.

use anyhow::Result;

use super::loader::Gguf;
use super::{Activation, ArchSpec, RopeStyle};

pub(crate) fn spec(g: &Gguf) -> Result<ArchSpec> {
    ArchSpec::common(g, "qwen2", RopeStyle::Neox, Activation::Silu)
}
