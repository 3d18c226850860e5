//! Prompt-lookup drafts: speculative decoding without a draft model.
//!
//! A summary or a translation repeats stretches of its prompt (names, titles, phrases of the article), so
//! the tokens that followed the latest earlier occurrence of a sequence's last few tokens are a cheap guess
//! at what comes next. The engine computes a draft's tokens in one step and keeps the longest run of them
//! that the model itself picks at each position, then goes on from the first token it would not have
//! drafted: a greedy sequence gets the model's own tokens, in fewer, wider steps. (The one-token decode
//! kernels and the many-token ones sum in different orders, so the two can part where two candidate tokens
//! are tied within rounding, as a batched row and the same row alone can.)

/// How drafts are taken (`Engine::set_lookup`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lookup {
    /// Most tokens proposed per step; 0 turns drafting off.
    pub max_draft: usize,
    /// The longest n-gram searched for first; shorter ones down to `ngram_min` when it is not found.
    pub ngram_max: usize,
    /// The shortest n-gram that may start a draft: a single repeated token says too little about what
    /// follows it, and a rejected draft costs a wider step than a plain one.
    pub ngram_min: usize,
}

/// The default number of drafted tokens per step (`--draft`); docs/BENCHMARKS.md has the measurement.
pub const DEFAULT_DRAFT: usize = 8;

impl Default for Lookup {
    fn default() -> Self {
        Self { max_draft: DEFAULT_DRAFT, ngram_max: 4, ngram_min: 2 }
    }
}

impl Lookup {
    /// Drafting turned off.
    pub fn off() -> Self {
        Self { max_draft: 0, ..Self::default() }
    }

    /// `Lookup::default()` with `max_draft` tokens at most per step (0: off).
    pub fn with_max_draft(max_draft: usize) -> Self {
        Self { max_draft, ..Self::default() }
    }

    /// Up to `max_draft` tokens (never more than `limit`) that followed the latest earlier occurrence of the
    /// longest n-gram ending `history`, from `ngram_max` down to `ngram_min` tokens; empty when none occurs.
    pub(crate) fn draft<'h>(&self, history: &'h [u32], limit: usize) -> &'h [u32] {
        let take = self.max_draft.min(limit);
        if take == 0 || self.ngram_min == 0 {
            return &[];
        }
        for n in (self.ngram_min..=self.ngram_max).rev() {
            if history.len() <= n {
                continue;
            }
            let key = &history[history.len() - n..];
            // Latest first: a phrase repeated in the output continues as it did most recently.
            if let Some(start) = (0..history.len() - n).rev().find(|&i| &history[i..i + n] == key) {
                let from = start + n;
                return &history[from..(from + take).min(history.len())];
            }
        }
        &[]
    }
}

/// How many drafted tokens the engine computed and how many of them it kept, since it was loaded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DraftCounts {
    /// Steps that checked a draft.
    pub steps: usize,
    pub drafted: usize,
    pub accepted: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continues_the_latest_occurrence_of_the_longest_ngram() {
        let l = Lookup { max_draft: 3, ngram_max: 3, ngram_min: 2 };
        // "7 8" occurs twice before the end; the later occurrence (followed by 4) wins over the earlier (1).
        let h = [7, 8, 1, 2, 9, 7, 8, 4, 5, 6, 0, 7, 8];
        assert_eq!(l.draft(&h, 100), &[4, 5, 6]);
        // A three-token match beats a more recent two-token one.
        let h = [3, 7, 8, 1, 2, 9, 7, 8, 4, 3, 7, 8];
        assert_eq!(l.draft(&h, 100), &[1, 2, 9]);
    }

    #[test]
    fn stops_at_the_limit_the_end_of_history_or_without_a_match() {
        let l = Lookup { max_draft: 8, ngram_max: 2, ngram_min: 2 };
        assert_eq!(l.draft(&[1, 2, 3, 1, 2], 100), &[3, 1, 2]);
        assert_eq!(l.draft(&[1, 2, 3, 4, 5, 1, 2], 2), &[3, 4]);
        assert!(l.draft(&[1, 2, 3, 4], 100).is_empty(), "no n-gram repeats");
        assert!(l.draft(&[5, 1, 2, 3, 1], 100).is_empty(), "a single repeated token is too short");
        assert!(Lookup::off().draft(&[1, 2, 3, 1, 2], 100).is_empty());
        assert!(l.draft(&[1, 2], 100).is_empty());
    }
}
