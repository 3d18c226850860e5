//! Token sampling: greedy or temperature / top-k / top-p with a repetition penalty and a seed.
//!
//! Candle-transformers' `LogitsProcessor` does the sampling itself; this module only holds the user-facing
//! settings and the repetition penalty, which has to see each sequence's own history.

use anyhow::Result;
use candle_core::{DType, Tensor};
use candle_transformers::generation::{LogitsProcessor, Sampling};

#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// 0 means greedy (argmax).
    pub temperature: f64,
    pub top_k: Option<usize>,
    pub top_p: Option<f64>,
    /// 1.0 disables the penalty.
    pub repetition_penalty: f32,
    /// How many of the most recent tokens the penalty looks at.
    pub repetition_window: usize,
    pub seed: u64,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self::greedy()
    }
}

impl SamplingParams {
    pub fn greedy() -> Self {
        Self { temperature: 0.0, top_k: None, top_p: None, repetition_penalty: 1.0, repetition_window: 64, seed: 0 }
    }

    pub(crate) fn is_greedy(&self) -> bool {
        self.temperature <= 0.0
    }

    fn sampling(&self) -> Sampling {
        if self.is_greedy() {
            return Sampling::ArgMax;
        }
        let temperature = self.temperature;
        match (self.top_k, self.top_p) {
            (None, None) => Sampling::All { temperature },
            (Some(k), None) => Sampling::TopK { k, temperature },
            (None, Some(p)) => Sampling::TopP { p, temperature },
            (Some(k), Some(p)) => Sampling::TopKThenTopP { k, p, temperature },
        }
    }
}

/// One sampler per sequence, so that sequences in a batch draw independent, reproducible streams.
pub(crate) struct Sampler {
    params: SamplingParams,
    processor: LogitsProcessor,
}

impl Sampler {
    /// `stream` distinguishes the sequences of one batch: the same seed and stream give the same draws.
    pub(crate) fn new(params: &SamplingParams, stream: u64) -> Self {
        let seed = params.seed.wrapping_add(stream.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        Self { params: params.clone(), processor: LogitsProcessor::from_sampling(seed, params.sampling()) }
    }

    /// `logits` is one row of vocabulary scores; `history` the sequence's tokens so far.
    pub(crate) fn sample(&mut self, logits: &Tensor, history: &[u32]) -> Result<u32> {
        let logits = logits.to_dtype(DType::F32)?;
        let logits = if self.params.repetition_penalty != 1.0 && !history.is_empty() {
            let start = history.len().saturating_sub(self.params.repetition_window);
            candle_transformers::utils::apply_repeat_penalty(
                &logits,
                self.params.repetition_penalty,
                &history[start..],
            )?
        } else {
            logits
        };
        Ok(self.processor.sample(&logits)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn greedy_takes_argmax() {
        let logits = Tensor::new(&[0.1f32, 2.0, -1.0, 1.9], &Device::Cpu).unwrap();
        let mut s = Sampler::new(&SamplingParams::greedy(), 0);
        assert_eq!(s.sample(&logits, &[]).unwrap(), 1);
    }

    #[test]
    fn repetition_penalty_moves_argmax_away_from_history() {
        let logits = Tensor::new(&[0.1f32, 2.0, -1.0, 1.9], &Device::Cpu).unwrap();
        let params = SamplingParams { repetition_penalty: 1.5, ..SamplingParams::greedy() };
        let mut s = Sampler::new(&params, 0);
        assert_eq!(s.sample(&logits, &[1]).unwrap(), 3);
    }

    #[test]
    fn same_seed_same_draws_other_stream_differs() {
        let logits = Tensor::new(&[1.0f32; 64], &Device::Cpu).unwrap();
        let params = SamplingParams { temperature: 1.0, seed: 42, ..SamplingParams::greedy() };
        let draw = |stream| {
            let mut s = Sampler::new(&params, stream);
            (0..16).map(|_| s.sample(&logits, &[]).unwrap()).collect::<Vec<_>>()
        };
        assert_eq!(draw(0), draw(0));
        assert_ne!(draw(0), draw(1));
    }

    #[test]
    fn top_k_one_is_argmax_even_when_sampling() {
        let logits = Tensor::new(&[0.1f32, 0.3, 5.0, 0.2], &Device::Cpu).unwrap();
        let params = SamplingParams { temperature: 1.0, top_k: Some(1), seed: 7, ..SamplingParams::greedy() };
        let mut s = Sampler::new(&params, 0);
        for _ in 0..10 {
            assert_eq!(s.sample(&logits, &[]).unwrap(), 2);
        }
    }
}
