//! gemma3: GELU (tanh) MLP, scaled embeddings, sliding-window attention on five layers of every six with
//! their own rotary base. Its q/k norms and post-attention/post-MLP norms are picked up from the file.

use anyhow::Result;

use super::loader::Gguf;
use super::{Activation, ArchSpec, RopeStyle};

/// Gemma 3 alternates five sliding-window layers with one global layer.
const SLIDING_WINDOW_PATTERN: usize = 6;
/// llama.cpp and transformers use this base for the sliding-window layers; GGUF files do not store it.
const LOCAL_ROPE_BASE: f32 = 10_000.0;

pub(crate) fn spec(g: &Gguf) -> Result<ArchSpec> {
    let mut s = ArchSpec::common(g, "gemma3", RopeStyle::Neox, Activation::GeluTanh)?;
    s.embed_scale = Some((s.hidden as f32).sqrt());
    s.sliding_window = g.u32("gemma3.attention.sliding_window").ok().map(|w| w as usize);
    if s.sliding_window.is_some() {
        s.local_layers = (0..s.n_layer).map(|i| (i + 1) % SLIDING_WINDOW_PATTERN != 0).collect();
        s.rope_base_local = Some(g.f32_opt("gemma3.rope.local_freq_base").unwrap_or(LOCAL_ROPE_BASE));
    }
    Ok(s)
}
