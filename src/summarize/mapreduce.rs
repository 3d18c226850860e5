//! Long articles: the text the final summary prompts read. An article that fits the context is read
//! whole; a longer one is cut into chunks on paragraph and sentence ends (`crate::text::chunk`), each chunk is
//! written down as short notes in the article's language (one batched call for all chunks), and the notes
//! take the article's place — condensed again, level by level, if they still do not fit. Nothing is cut:
//! the only truncation is the one a user asks for with `--max-input-tokens`, and it is flagged.

use std::borrow::Cow;
use std::time::Instant;

use anyhow::{bail, Result};

use crate::backend::Generator;
use crate::backend::Request;
use crate::backend::SamplingParams;
use crate::job::input::Article;
use crate::job::record::Tokens;
use crate::summarize::prompt::{self, Length};
use crate::text::chunk::{self, ChunkConfig};
use crate::text::clean;
use crate::text::lang::Lang;

/// Words of notes per chunk: about a tenth of a chunk of a 4k context, enough for its names and numbers.
const NOTE_WORDS: usize = 120;
/// Rounds of notes-of-notes before giving up (each round divides the text by about ten).
const MAX_LEVELS: usize = 4;
/// Chunks per generate call: bounds the KV cache of one batch.
const CHUNKS_PER_CALL: usize = 4;

/// What the final prompts will read in place of the article.
#[derive(Debug, Clone)]
pub(crate) struct Condensed<'a> {
    /// The article itself when it fits (borrowed: an article's copies are what its memory is a multiple of).
    pub(crate) text: Cow<'a, str>,
    /// Chunks of the article that were written down as notes (1: the article was read whole).
    pub(crate) chunks: usize,
    /// 1 for a direct summary; each round of notes adds one.
    pub(crate) levels: usize,
    /// The user's `--max-input-tokens` cut the article.
    pub(crate) truncated: bool,
    /// Tokens and seconds of the note-taking calls (shared by every summary of the article).
    pub(crate) tokens: Tokens,
    pub(crate) seconds: f64,
}

pub(crate) struct Limits {
    /// Context the prompts may use: the model's, or less (`--max-context`).
    pub(crate) context: usize,
    /// Tokens the final prompt needs around the text, and for its answer.
    pub(crate) final_overhead: usize,
    pub(crate) max_input_tokens: Option<usize>,
    /// Tokens each chunk repeats from the previous one.
    pub(crate) overlap: usize,
}

fn note_sampling() -> SamplingParams {
    SamplingParams { repetition_penalty: 1.1, repetition_window: 64, ..SamplingParams::greedy() }
}

/// Condense `article` until it fits `limits`; notes are written in `notes_lang`.
pub(crate) fn condense<'a>(
    article: &'a Article,
    notes_lang: Lang,
    limits: &Limits,
    gen: &dyn Generator,
) -> Result<Condensed<'a>> {
    let budget = limits.context.saturating_sub(limits.final_overhead);
    if budget < 32 {
        bail!(
            "the context ({} tokens) leaves no room for the article after the prompt and the summary: raise \
            --max-context",
            limits.context
        );
    }
    let mut out = Condensed {
        text: Cow::Borrowed(&article.text),
        chunks: 1,
        levels: 1,
        truncated: false,
        tokens: Tokens::default(),
        seconds: 0.0,
    };
    if let Some(max) = limits.max_input_tokens {
        let (text, cut) = fit_to_context(&article.text, max, gen)?;
        out.text = Cow::Owned(text);
        out.truncated = cut;
    }
    let count = |s: &str| gen.count_tokens_or_estimate(s);

    let note_length = Length::MaxWords(NOTE_WORDS);
    let note_overhead = {
        let p = prompt::chunk_notes(&article.title, "", notes_lang, 99, 99, NOTE_WORDS);
        gen.count_prompt_tokens(&p.chat())? + note_length.max_new_tokens() + 8
    };
    let chunk_budget = limits.context.saturating_sub(note_overhead);
    if chunk_budget < 64 {
        bail!(
            "the context ({} tokens) is too small to read the article in chunks: raise --max-context",
            limits.context
        );
    }

    let mut tokens = count(&out.text);
    while tokens > budget {
        if out.levels > MAX_LEVELS {
            bail!(
                "the article still takes {tokens} tokens after {MAX_LEVELS} rounds of notes (at most {budget} fit): \
                raise --max-context"
            );
        }
        let cfg = ChunkConfig { budget: chunk_budget, overlap: limits.overlap.min(chunk_budget / 4) };
        let current = std::mem::take(&mut out.text);
        let chunks = chunk::chunk(&current, cfg, &count);
        let pieces: Vec<&str> = chunks.iter().map(|c| current[c.range.clone()].trim()).collect();
        // Notes must come out shorter than what they condense, also at a later level, where the pieces are
        // notes already: each note may take about a third of its piece (0.75 words a token), at most
        // NOTE_WORDS.
        let words = (tokens * 3 / (4 * 3 * chunks.len().max(1))).clamp(24, NOTE_WORDS);
        let notes = write_notes(&article.title, &pieces, notes_lang, words, gen, &mut out)?;
        if out.levels == 1 {
            out.chunks = chunks.len();
        }
        out.levels += 1;
        let joined = notes.join("\n\n");
        let new_tokens = count(&joined);
        if new_tokens >= tokens {
            bail!(
                "the notes on {} chunks ({new_tokens} tokens) are no shorter than the text they condense ({tokens} \
                tokens)",
                chunks.len()
            );
        }
        out.text = Cow::Owned(joined);
        tokens = new_tokens;
    }
    Ok(out)
}

fn has_words(text: &str) -> bool {
    text.chars().filter(|c| c.is_alphabetic()).count() >= 3
}

/// One note per piece, in order; a piece the model writes nothing for, twice, is an error (it would be lost).
fn write_notes(
    title: &str,
    pieces: &[&str],
    lang: Lang,
    words: usize,
    gen: &dyn Generator,
    out: &mut Condensed<'_>,
) -> Result<Vec<String>> {
    let length = Length::MaxWords(words);
    let mut notes = Vec::with_capacity(pieces.len());
    for (batch_no, batch) in pieces.chunks(CHUNKS_PER_CALL).enumerate() {
        let requests = batch
            .iter()
            .enumerate()
            .map(|(k, piece)| {
                let part = batch_no * CHUNKS_PER_CALL + k + 1;
                let p = prompt::chunk_notes(title, piece, lang, part, pieces.len(), words);
                Ok(Request {
                    prompt: p.chat(),
                    max_new_tokens: length.max_new_tokens(),
                    sampling: note_sampling(),
                    stop_strings: prompt::stop_strings(),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let t = Instant::now();
        let (gens, _) = gen.generate(&requests)?;
        out.seconds += t.elapsed().as_secs_f64();
        for (k, (g, request)) in gens.iter().zip(requests).enumerate() {
            out.tokens.prompt += g.prompt_tokens;
            out.tokens.generated += g.tokens.len();
            let part = batch_no * CHUNKS_PER_CALL + k + 1;
            let mut text = clean::clean(&g.text, &prompt::answer_labels()).0;
            if !has_words(&text) {
                // A greedy path can close at once on a small model; one seeded sampled retry usually
                // writes the notes (and the run stays reproducible).
                let retry = Request {
                    sampling: SamplingParams {
                        temperature: 0.7,
                        top_p: Some(0.9),
                        seed: part as u64,
                        ..request.sampling
                    },
                    ..request
                };
                let t = Instant::now();
                let (again, _) = gen.generate(std::slice::from_ref(&retry))?;
                out.seconds += t.elapsed().as_secs_f64();
                let again = again.into_iter().next().ok_or_else(|| anyhow::anyhow!("the model returned no output"))?;
                out.tokens.prompt += again.prompt_tokens;
                out.tokens.generated += again.tokens.len();
                text = clean::clean(&again.text, &prompt::answer_labels()).0;
                if !has_words(&text) {
                    bail!(
                        "the model wrote no notes for part {part} of {} of the article (twice; it wrote {:?})",
                        pieces.len(),
                        again.text
                    );
                }
            }
            notes.push(text);
        }
    }
    Ok(notes)
}

/// The article text cut (at a word boundary) to `budget` tokens, when the user asks for a cap.
pub(crate) fn fit_to_context(text: &str, budget: usize, gen: &dyn Generator) -> Result<(String, bool)> {
    let total = gen.count_tokens(text)?;
    if total <= budget {
        return Ok((text.to_string(), false));
    }
    let chars = text.chars().count();
    let mut keep = ((chars as f64) * (budget as f64 / total as f64) * 0.98) as usize;
    loop {
        let mut end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
        // Back up to whitespace so no word is cut.
        if let Some(ws) = text[..end].rfind(char::is_whitespace) {
            if ws > end / 2 {
                end = ws;
            }
        }
        let cut = text[..end].trim_end();
        if gen.count_tokens(cut)? <= budget || keep == 0 {
            return Ok((cut.to_string(), true));
        }
        keep = keep * 9 / 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::FakeGenerator;

    fn article(words: usize) -> Article {
        let sentence = "The harbour authority said on Monday that the new ferry terminal will open in May. ";
        let text: String = (0..words / 15)
            .map(|i| if i % 4 == 3 { format!("{sentence}\n\n") } else { sentence.to_string() })
            .collect();
        Article {
            rel: "a.txt".into(),
            source: "a.txt".into(),
            id: None,
            title: "Ferry terminal".into(),
            text,
            sha256: "x".into(),
            declared_lang: None,
            story_id: None,
            warnings: vec![],
        }
    }

    fn limits(context: usize) -> Limits {
        Limits { context, final_overhead: 250, max_input_tokens: None, overlap: 32 }
    }

    #[test]
    fn an_article_that_fits_is_read_whole() {
        let g = FakeGenerator::parse("fake").unwrap().unwrap();
        let a = article(300);
        let c = condense(&a, Lang::En, &limits(4096), &g).unwrap();
        assert_eq!((c.chunks, c.levels, c.truncated), (1, 1, false));
        assert_eq!(c.text, a.text);
        assert_eq!(c.tokens, Tokens::default());
    }

    #[test]
    fn a_long_article_becomes_notes_of_every_chunk() {
        // The fake model counts a token per word and answers 16 words per chunk.
        let g = FakeGenerator::parse("fake").unwrap().unwrap();
        let a = article(3000);
        let c = condense(&a, Lang::En, &limits(800), &g).unwrap();
        assert!(c.chunks >= 6, "{} chunks", c.chunks);
        assert_eq!(c.levels, 2);
        assert_eq!(c.text.split("\n\n").count(), c.chunks, "one note per chunk");
        assert!(g.count_tokens(&c.text).unwrap() <= 800 - 250);
        assert!(c.tokens.prompt > 3000 && c.tokens.generated > 0);
    }

    #[test]
    fn too_small_a_context_is_an_error_that_says_what_to_do() {
        let g = FakeGenerator::parse("fake").unwrap().unwrap();
        let e = condense(&article(3000), Lang::En, &limits(260), &g).unwrap_err();
        assert!(format!("{e:#}").contains("--max-context"), "{e:#}");
    }
}
