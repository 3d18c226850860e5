//! Token-aware chunking of long texts for map-reduce summaries and paragraph-wise translation.
//!
//! A text is cut into units that never straddle a boundary of a stronger kind: paragraphs first, then (for a
//! paragraph over budget) sentences, then (for a sentence over budget) words. Units are packed greedily
//! into chunks of at most `budget` tokens; each chunk after the first repeats the last units of the one
//! before, up to `overlap` tokens, so a fact cut at a boundary is seen whole once. Chunks are byte ranges
//! of the original text: together they cover every character, and nothing is ever dropped.

use std::ops::Range;

use unicode_segmentation::UnicodeSegmentation;

use crate::text::split;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkConfig {
    /// Most tokens in one chunk.
    pub(crate) budget: usize,
    /// Tokens of the previous chunk repeated at the start of the next (0 for none).
    pub(crate) overlap: usize,
}

/// Where a unit ends, from strongest to weakest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Boundary {
    Word,
    Sentence,
    Paragraph,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Chunk {
    /// Byte range in the text; ranges of consecutive chunks overlap by the configured overlap.
    pub(crate) range: Range<usize>,
    /// The kind of boundary the chunk ends on (the end of the text counts as a paragraph end).
    pub(crate) ends_on: Boundary,
    pub(crate) tokens: usize,
}

struct Unit {
    range: Range<usize>,
    ends_on: Boundary,
    tokens: usize,
}

/// Split `text` into chunks of at most `cfg.budget` tokens as counted by `count`.
/// A single word longer than the budget becomes a chunk of its own (the only way a chunk can exceed it).
pub(crate) fn chunk(text: &str, cfg: ChunkConfig, count: &dyn Fn(&str) -> usize) -> Vec<Chunk> {
    let budget = cfg.budget.max(1);
    let units = units(text, budget, count);
    let mut chunks: Vec<Chunk> = Vec::new();
    let mut i = 0;
    while i < units.len() {
        // Overlap: step back over the previous chunk's last units while they fit the overlap budget.
        let mut start = i;
        if !chunks.is_empty() && cfg.overlap > 0 {
            let mut carried = 0;
            while start > 0 && carried + units[start - 1].tokens <= cfg.overlap.min(budget / 2) {
                carried += units[start - 1].tokens;
                start -= 1;
            }
        }
        let mut end = i; // exclusive
        while end < units.len() {
            let candidate = &text[units[start].range.start..units[end].range.end];
            if end > i && count(candidate) > budget {
                break;
            }
            if end == i && end > start && count(candidate) > budget {
                // The overlap left no room for new text: drop it rather than stall.
                start = i;
                continue;
            }
            end += 1;
        }
        let end = end.max(i + 1);
        let range = units[start].range.start..units[end - 1].range.end;
        chunks.push(Chunk { tokens: count(&text[range.clone()]), range, ends_on: units[end - 1].ends_on });
        i = end;
    }
    chunks
}

/// Consecutive units covering all of `text`, each within `budget` tokens where a word boundary allows.
fn units(text: &str, budget: usize, count: &dyn Fn(&str) -> usize) -> Vec<Unit> {
    let mut out = Vec::new();
    for para in split::paragraph_ranges(text) {
        split_unit(text, para, Boundary::Paragraph, Boundary::Paragraph, budget, count, &mut out);
    }
    out
}

/// Keep `range` (a piece cut at a `level` boundary, ending on `ends_on`) as one unit if it fits, else cut
/// it at the next weaker boundary: paragraphs into sentences, sentences into words.
fn split_unit(
    text: &str,
    range: Range<usize>,
    level: Boundary,
    ends_on: Boundary,
    budget: usize,
    count: &dyn Fn(&str) -> usize,
    out: &mut Vec<Unit>,
) {
    let tokens = count(&text[range.clone()]);
    let inner = match level {
        _ if tokens <= budget => None,
        Boundary::Paragraph => Some(Boundary::Sentence),
        Boundary::Sentence => Some(Boundary::Word),
        Boundary::Word => None,
    };
    let Some(inner) = inner else {
        out.push(Unit { range, ends_on, tokens });
        return;
    };
    let piece = &text[range.clone()];
    let pieces: Vec<(usize, usize)> = if inner == Boundary::Sentence {
        split::sentence_ranges(piece).into_iter().map(|r| (r.start, r.len())).collect()
    } else {
        piece.split_word_bound_indices().map(|(i, p)| (i, p.len())).collect()
    };
    let last = pieces.len().saturating_sub(1);
    for (k, (i, len)) in pieces.into_iter().enumerate() {
        let start = range.start + i;
        split_unit(text, start..start + len, inner, if k == last { ends_on } else { inner }, budget, count, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> usize {
        s.split_whitespace().count()
    }

    fn article(paragraphs: usize, sentences: usize) -> String {
        (0..paragraphs)
            .map(|p| {
                (0..sentences)
                    .map(|s| format!("Paragraph {p} sentence {s} says something about {} things.", p * 10 + s))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n\n")
    }

    fn check_invariants(text: &str, cfg: ChunkConfig, chunks: &[Chunk]) {
        assert!(!chunks.is_empty());
        assert_eq!(chunks[0].range.start, 0, "the first chunk starts at the beginning");
        assert_eq!(chunks.last().unwrap().range.end, text.len(), "the last chunk ends at the end");
        for w in chunks.windows(2) {
            assert!(w[1].range.start <= w[0].range.end, "no gap between chunks: {:?} {:?}", w[0].range, w[1].range);
            assert!(w[1].range.end > w[0].range.end, "every chunk adds text");
        }
        for c in chunks {
            assert!(c.tokens <= cfg.budget, "chunk of {} tokens over budget {}", c.tokens, cfg.budget);
            assert_eq!(c.tokens, words(&text[c.range.clone()]));
        }
    }

    #[test]
    fn short_text_is_one_chunk() {
        let text = "One paragraph.\n\nAnother one.";
        let chunks = chunk(text, ChunkConfig { budget: 100, overlap: 10 }, &words);
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].range, 0..text.len());
    }

    #[test]
    fn covers_everything_within_budget_on_paragraph_ends() {
        let text = article(8, 4); // paragraphs of 36 words
        let cfg = ChunkConfig { budget: 80, overlap: 0 };
        let chunks = chunk(&text, cfg, &words);
        check_invariants(&text, cfg, &chunks);
        assert!(chunks.len() >= 4);
        for c in &chunks {
            assert_eq!(c.ends_on, Boundary::Paragraph, "paragraphs fit, so every chunk ends on one");
        }
        // Without overlap the chunks tile the text exactly.
        for w in chunks.windows(2) {
            assert_eq!(w[1].range.start, w[0].range.end);
        }
    }

    #[test]
    fn long_paragraphs_split_on_sentences() {
        let text = article(2, 20); // paragraphs of 180 words
        let cfg = ChunkConfig { budget: 50, overlap: 0 };
        let chunks = chunk(&text, cfg, &words);
        check_invariants(&text, cfg, &chunks);
        for c in &chunks {
            assert!(c.ends_on >= Boundary::Sentence, "{:?} ends inside a sentence", &text[c.range.clone()]);
            assert!(text[c.range.clone()].trim_end().ends_with('.'));
        }
    }

    #[test]
    fn long_sentences_split_on_words() {
        let text = format!("{}.", vec!["word"; 300].join(" "));
        let cfg = ChunkConfig { budget: 64, overlap: 8 };
        let chunks = chunk(&text, cfg, &words);
        check_invariants(&text, cfg, &chunks);
        assert!(chunks.len() >= 5);
    }

    #[test]
    fn overlap_repeats_the_end_of_the_previous_chunk() {
        let text = article(1, 30); // one 270-word paragraph of 9-word sentences
        let cfg = ChunkConfig { budget: 60, overlap: 20 };
        let chunks = chunk(&text, cfg, &words);
        check_invariants(&text, cfg, &chunks);
        for w in chunks.windows(2) {
            let shared = &text[w[1].range.start..w[0].range.end];
            let n = words(shared);
            assert!(n > 0 && n <= 20, "overlap of {n} words: {shared:?}");
            // Whole sentences are repeated, never a fragment.
            assert!(shared.trim_end().ends_with('.'));
        }
    }

    #[test]
    fn works_on_real_token_like_counts() {
        // A counter that charges by characters, like a tokenizer on unfamiliar text.
        let count = |s: &str| s.chars().count().div_ceil(4);
        let text = "¿Qué pasó? El presidente habló durante 45 minutos. ".repeat(40);
        let cfg = ChunkConfig { budget: 120, overlap: 30 };
        let chunks = chunk(&text, cfg, &count);
        assert!(chunks.len() >= 5);
        assert_eq!(chunks.last().unwrap().range.end, text.len());
        for c in &chunks {
            assert!(c.tokens <= cfg.budget);
        }
    }
}
