//! Text ↔ token ids, built from the vocabulary stored in a GGUF file (or from a `tokenizer.json`).
//!
//! candle's `TokenizerFromGguf` only knows `gpt2` vocabularies and adds a prefix space for SmolLM2, so we
//! build a Hugging Face `tokenizers::Tokenizer` ourselves, choosing every piece the way llama.cpp
//! (`llama-vocab.cpp`) interprets the same metadata: llama.cpp produced the GGUF files and the reference
//! token ids in `tests/fixtures/tokenizer-reference.jsonl`.
//!
//! Special tokens are split out of the text by [`SpecialTokens`] before the Hugging Face tokenizer sees it,
//! instead of by the tokenizer's own added-vocabulary matcher, for two reasons:
//! - `parse_special` is chosen per call, and the `tokenizers` switch for it
//!   (`set_encode_special_tokens`) needs `&mut`, which would mean a lock or a second copy of a 262k-token
//!   tokenizer just to keep [`Tokenizer`] `Sync`;
//! - llama.cpp matches special tokens longest-first over the whole text, `tokenizers` leftmost-longest; the
//!   two differ on overlapping tokens, and we want llama.cpp's ids.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, bail, Result};
use candle_core::quantized::gguf_file;
use rayon::prelude::*;
use tokenizers::decoders::byte_fallback::ByteFallback;
use tokenizers::decoders::byte_level::ByteLevel;
use tokenizers::decoders::fuse::Fuse;
use tokenizers::decoders::sequence::Sequence as DecoderSequence;
use tokenizers::decoders::strip::Strip;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::normalizers::{Prepend, Replace, Sequence as NormalizerSequence, NFC};
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence as PreTokenizerSequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{AddedToken, DecoderWrapper, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior};

/// `tokenizer.ggml.token_type` values (llama.cpp's `llama_token_type`).
const TYPE_NORMAL: i64 = 1;
const TYPE_UNKNOWN: i64 = 2;
const TYPE_CONTROL: i64 = 3;
const TYPE_USER_DEFINED: i64 = 4;
const TYPE_UNUSED: i64 = 5;

/// The pre-tokenizer regex of Qwen2 (HF `tokenizer.json`; llama.cpp `LLAMA_VOCAB_PRE_TYPE_QWEN2` spells the
/// case-insensitive contractions out, same matches).
const QWEN2_REGEX: &str =
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Llama 3's: like Qwen2's but numbers in groups of up to three digits.
const LLAMA3_REGEX: &str = concat!(
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Token texts that end a turn in the chat formats we know of, whatever the GGUF declares as eos/eot; the
/// list llama.cpp uses to fill its end-of-generation set, plus the FIM/repository separators it also
/// stops on (a chat answer that emits one has left the conversation).
const END_OF_GENERATION_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
];

pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    specials: SpecialTokens,
    /// Ids that decode to nothing: control tokens (llama.cpp prints them only when asked) and unused ones.
    silent: Vec<bool>,
    vocab_size: usize,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
}

// Other modules share one tokenizer across threads (rayon); keep that a compile-time fact.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
};

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokenizer")
            .field("vocab_size", &self.vocab_size)
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .field("eot", &self.eot)
            .field("add_bos", &self.add_bos)
            .field("special_tokens", &self.specials.pieces.len())
            .finish()
    }
}

impl Tokenizer {
    pub fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let spec = VocabSpec::from_gguf(content)?;
        Self::from_spec(spec)
    }

    /// A tokenizer.json shipped beside a GGUF; special ids (bos/eos/eot) taken from the GGUF metadata when
    /// given, else from the json's added tokens.
    pub(crate) fn from_json_file(path: &Path, content: Option<&gguf_file::Content>) -> Result<Self> {
        let mut inner = tokenizers::Tokenizer::from_file(path).map_err(|e| {
            anyhow!("cannot read the tokenizer {}: {e} (expected a Hugging Face tokenizer.json)", path.display())
        })?;
        // Special tokens are matched by `SpecialTokens`, only when the caller asks for it. (It ignores the
        // json's lstrip/rstrip/single_word flags on added tokens; none of our models' tokens set them.)
        inner.set_encode_special_tokens(true);
        let vocab_size = inner.get_vocab_size(true);
        let added = inner.get_added_tokens_decoder();
        let mut pieces = Vec::new();
        let mut silent = vec![false; vocab_size];
        for (&id, tok) in &added {
            pieces.push(SpecialPiece { text: tok.content.clone(), id, control: tok.special });
            if tok.special {
                if let Some(s) = silent.get_mut(id as usize) {
                    *s = true;
                }
            }
        }
        let specials = SpecialTokens::new(pieces);

        let by_name =
            |names: &[&str]| names.iter().find_map(|n| added.iter().find(|(_, t)| t.content == *n).map(|(id, _)| *id));
        let md = content.map(|c| &c.metadata);
        let meta_id = |key: &str| md.and_then(|m| m.get(key)).and_then(value_as_u32);
        let bos = meta_id("tokenizer.ggml.bos_token_id")
            .or_else(|| by_name(&["<|begin_of_text|>", "<bos>", "<s>", "<|startoftext|>"]));
        let eos = meta_id("tokenizer.ggml.eos_token_id").or_else(|| {
            by_name(&["<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<eos>", "</s>", "<|endoftext|>", "<|end_of_text|>"])
        });
        let eot = meta_id("tokenizer.ggml.eot_token_id");
        let add_bos = match md.and_then(|m| m.get("tokenizer.ggml.add_bos_token")) {
            Some(v) => v.to_bool().unwrap_or(false),
            // Without GGUF metadata, the json's post-processor says whether the model wants a BOS.
            None => match bos {
                Some(bos) => inner.encode_fast("a", true).map(|e| e.get_ids().first() == Some(&bos)).unwrap_or(false),
                None => false,
            },
        };
        Ok(Self { inner, specials, silent, vocab_size, bos, eos, eot, add_bos })
    }

    fn from_spec(spec: VocabSpec) -> Result<Self> {
        let n = spec.tokens.len();
        let mut pieces = Vec::new();
        let mut silent = vec![false; n];
        let mut added = Vec::new();
        for (id, (text, &ty)) in spec.tokens.iter().zip(&spec.types).enumerate() {
            let id = id as u32;
            match ty {
                // llama.cpp lists unknown tokens with the control ones: parsed only with parse_special.
                TYPE_CONTROL | TYPE_UNKNOWN => {
                    pieces.push(SpecialPiece { text: text.clone(), id, control: true });
                    added.push(AddedToken::from(text.clone(), true).normalized(false));
                    silent[id as usize] = ty == TYPE_CONTROL;
                }
                // Always split out of the text before the model's own tokenization, as llama.cpp and
                // `tokenizers` both do for user-defined tokens (gemma's "\n", "  ", "<h1>", ...).
                TYPE_USER_DEFINED => {
                    pieces.push(SpecialPiece { text: text.clone(), id, control: false });
                    added.push(AddedToken::from(text.clone(), false).normalized(false));
                }
                TYPE_UNUSED => silent[id as usize] = true,
                _ => {}
            }
        }
        let eot = spec.eot;
        let (bos, eos, add_bos) = (spec.bos, spec.eos, spec.add_bos);
        let mut inner = match spec.kind {
            VocabKind::Gpt2 { merges, pre } => build_byte_level_bpe(spec.tokens, merges, &pre)?,
            VocabKind::SentencePiece { scores, add_space_prefix } => {
                build_sentencepiece_bpe(spec.tokens, &spec.types, &scores, add_space_prefix)?
            }
        };
        // Registering them keeps `inner` a faithful stand-alone tokenizer (and `token_to_id` on added
        // tokens); `SpecialTokens` has already removed them from any text `inner` is given.
        inner
            .add_special_tokens(added.iter().filter(|t| t.special).cloned())
            .map_err(|e| anyhow!("registering special tokens: {e}"))?;
        inner
            .add_tokens(added.into_iter().filter(|t| !t.special))
            .map_err(|e| anyhow!("registering user-defined tokens: {e}"))?;
        inner.set_encode_special_tokens(true);
        for id in [bos, eos, eot].into_iter().flatten() {
            if id as usize >= n {
                bail!(
                    "the GGUF names special token id {id}, but the vocabulary has only {n} tokens: the file is \
                inconsistent"
                );
            }
        }
        Ok(Self { inner, specials: SpecialTokens::new(pieces), silent, vocab_size: n, bos, eos, eot, add_bos })
    }

    /// Never adds BOS. With parse_special, special/control tokens written in the text (e.g. "<|im_start|>")
    /// encode as their single id; without it they are plain text.
    pub fn encode(&self, text: &str, parse_special: bool) -> Result<Vec<u32>> {
        let mut ids = Vec::with_capacity(text.len() / 3 + 1);
        for fragment in self.specials.partition(text, parse_special) {
            match fragment {
                Fragment::Special(id) => ids.push(id),
                Fragment::Text(t) => {
                    let enc =
                        self.inner.encode_fast(t, false).map_err(|e| anyhow!("tokenizing {:?}: {e}", preview(t)))?;
                    ids.extend_from_slice(enc.get_ids());
                }
            }
        }
        Ok(ids)
    }

    /// How many tokens `encode(text, false)` gives, holding at most [`COUNT_PIECE_BYTES`] of text in the
    /// tokenizer at once: tokenizing keeps alignments, offsets and token strings worth many times the text,
    /// so a whole long article counted at once cost its size many times over. A longer text is counted
    /// piece by piece, each cut before a space that starts a word, where the pre-tokenizers split anyway.
    pub(crate) fn count(&self, text: &str) -> Result<usize> {
        self.count_in_pieces(text, COUNT_PIECE_BYTES)
    }

    fn count_in_pieces(&self, text: &str, max_piece: usize) -> Result<usize> {
        let mut total = 0;
        let mut rest = text;
        while !rest.is_empty() {
            let end = piece_end(rest, max_piece);
            total += self.encode(&rest[..end], false)?.len();
            rest = &rest[end..];
        }
        Ok(total)
    }

    /// Skips special/control tokens; decode(encode(x)) == x for ordinary text.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let mut kept = Vec::with_capacity(ids.len());
        for &id in ids {
            match self.silent.get(id as usize) {
                Some(true) => {}
                Some(false) => kept.push(id),
                None => bail!(
                    "token id {id} is outside the vocabulary ({} tokens): the model and tokenizer do not match",
                    self.vocab_size
                ),
            }
        }
        // `silent` already dropped what should not print; unknown tokens print, as in llama.cpp.
        self.inner.decode(&kept, false).map_err(|e| anyhow!("decoding {} tokens: {e}", kept.len()))
    }

    pub fn bos_id(&self) -> Option<u32> {
        self.bos
    }

    /// `tokenizer.ggml.add_bos_token` (gemma: true; qwen/smollm: false).
    pub fn add_bos(&self) -> bool {
        self.add_bos
    }

    pub fn eos_id(&self) -> Option<u32> {
        self.eos
    }

    /// Every id that ends a generation: eos, eot (tokenizer.ggml.eot_token_id), and end-of-turn tokens
    /// present in the vocab such as <|im_end|>, <|endoftext|>, <end_of_turn>, <|eot_id|>.
    pub fn end_of_generation_ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = [self.eos, self.eot].into_iter().flatten().collect();
        ids.extend(END_OF_GENERATION_TEXTS.iter().filter_map(|t| self.inner.token_to_id(t)));
        ids.sort_unstable();
        ids.dedup();
        ids
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// The id of a token spelled as in the vocabulary (byte-level vocabularies write a space as "Ġ",
    /// sentencepiece ones as "▁").
    pub fn token_to_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    pub fn bos_token(&self) -> Option<String> {
        self.bos.and_then(|id| self.inner.id_to_token(id))
    }

    pub fn eos_token(&self) -> Option<String> {
        self.eos.and_then(|id| self.inner.id_to_token(id))
    }
}

/// Text [`Tokenizer::count`] tokenizes at once: more than any context's worth of text, so the counts that
/// decide whether a text fits are of whole texts, and a few MB of transient tokenizer state at most.
const COUNT_PIECE_BYTES: usize = 256 * 1024;

/// Where the first piece of `text` ends: all of it when it has at most `max` bytes, else before the last
/// space within them that follows a non-space and starts a word, else at the last character boundary.
fn piece_end(text: &str, max: usize) -> usize {
    if text.len() <= max {
        return text.len();
    }
    let mut end = max.max(1);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let bytes = text.as_bytes();
    let mut search = end;
    while let Some(p) = text[..search].rfind(' ') {
        let starts_word = text[p + 1..].chars().next().is_some_and(char::is_alphanumeric);
        if p > 0 && !bytes[p - 1].is_ascii_whitespace() && starts_word {
            return p;
        }
        search = p;
    }
    if end == 0 {
        // `max` is inside the first character: take that character whole.
        end = text.char_indices().nth(1).map_or(text.len(), |(i, _)| i);
    }
    end
}

fn preview(t: &str) -> String {
    t.chars().take(40).collect()
}

/// The tokenizer part of the GGUF metadata, read into plain values (and constructible in unit tests).
struct VocabSpec {
    tokens: Vec<String>,
    types: Vec<i64>,
    kind: VocabKind,
    bos: Option<u32>,
    eos: Option<u32>,
    eot: Option<u32>,
    add_bos: bool,
}

enum VocabKind {
    Gpt2 { merges: Vec<(String, String)>, pre: String },
    SentencePiece { scores: Vec<f32>, add_space_prefix: bool },
}

impl VocabSpec {
    fn from_gguf(content: &gguf_file::Content) -> Result<Self> {
        let md = &content.metadata;
        let get = |k: &str| md.get(k);
        let model = match get("tokenizer.ggml.model") {
            Some(v) => v.to_string().map_err(|_| anyhow!("tokenizer.ggml.model is not a string"))?.clone(),
            None => bail!(
                "GGUF has no tokenizer.ggml.model: put the model's tokenizer.json in the folder of the GGUF \
            file, where polysum reads it instead"
            ),
        };
        let tokens: Vec<String> = match get("tokenizer.ggml.tokens") {
            Some(v) => v
                .to_vec()
                .map_err(|_| anyhow!("tokenizer.ggml.tokens is not an array"))?
                .iter()
                .map(|t| t.to_string().cloned().map_err(|_| anyhow!("tokenizer.ggml.tokens holds a non-string")))
                .collect::<Result<_>>()?,
            None => bail!(
                "GGUF has no tokenizer.ggml.tokens: put the model's tokenizer.json in the folder of the GGUF \
            file, where polysum reads it instead"
            ),
        };
        let n = tokens.len();
        let types: Vec<i64> = match get("tokenizer.ggml.token_type") {
            Some(v) => {
                let types = v
                    .to_vec()
                    .map_err(|_| anyhow!("tokenizer.ggml.token_type is not an array"))?
                    .iter()
                    .map(|t| value_as_i64(t).ok_or_else(|| anyhow!("tokenizer.ggml.token_type holds a non-integer")))
                    .collect::<Result<Vec<_>>>()?;
                if types.len() != n {
                    bail!(
                        "tokenizer.ggml.token_type has {} entries for {n} tokens: the GGUF is inconsistent",
                        types.len()
                    );
                }
                types
            }
            // Old converters wrote no types: every token is then an ordinary one, as llama.cpp assumes.
            None => vec![TYPE_NORMAL; n],
        };
        let id = |k: &str| get(k).and_then(value_as_u32);
        let flag = |k: &str| get(k).and_then(|v| v.to_bool().ok());
        let kind = match model.as_str() {
            "gpt2" => {
                let merges = match get("tokenizer.ggml.merges") {
                    Some(v) => v
                        .to_vec()
                        .map_err(|_| anyhow!("tokenizer.ggml.merges is not an array"))?
                        .iter()
                        .map(|m| {
                            let m = m.to_string().map_err(|_| anyhow!("tokenizer.ggml.merges holds a non-string"))?;
                            // Byte-level tokens spell a space "Ġ", so the first real space separates the pair.
                            m.split_once(' ').map(|(a, b)| (a.to_string(), b.to_string())).ok_or_else(|| {
                                anyhow!(
                                    "tokenizer.ggml.merges entry {m:?} is not two tokens separated \
                                by a space"
                                )
                            })
                        })
                        .collect::<Result<Vec<_>>>()?,
                    None => bail!(
                        "GGUF has a gpt2 vocabulary but no tokenizer.ggml.merges: put the model's \
                    tokenizer.json in the folder of the GGUF file, where polysum reads it instead"
                    ),
                };
                let pre = match get("tokenizer.ggml.pre") {
                    Some(v) => v.to_string().map_err(|_| anyhow!("tokenizer.ggml.pre is not a string"))?.clone(),
                    None => "default".to_string(),
                };
                VocabKind::Gpt2 { merges, pre }
            }
            "llama" => {
                let scores: Vec<f32> = match get("tokenizer.ggml.scores") {
                    Some(v) => v
                        .to_vec()
                        .map_err(|_| anyhow!("tokenizer.ggml.scores is not an array"))?
                        .iter()
                        .map(|s| s.to_f32().map_err(|_| anyhow!("tokenizer.ggml.scores holds a non-f32")))
                        .collect::<Result<_>>()?,
                    None => bail!(
                        "GGUF has a sentencepiece (llama) vocabulary but no tokenizer.ggml.scores: put the \
                    model's tokenizer.json in the folder of the GGUF file, where polysum reads it instead"
                    ),
                };
                if scores.len() != n {
                    bail!(
                        "tokenizer.ggml.scores has {} entries for {n} tokens: the GGUF is \
                    inconsistent",
                        scores.len()
                    );
                }
                // llama.cpp's default for sentencepiece vocabularies is to add the prefix space.
                VocabKind::SentencePiece {
                    scores,
                    add_space_prefix: flag("tokenizer.ggml.add_space_prefix").unwrap_or(true),
                }
            }
            other => bail!(
                "GGUF tokenizer type {other:?} is not supported (only \"gpt2\" byte-level BPE and \"llama\" \
                sentencepiece): put the model's tokenizer.json in the folder of the GGUF file, where polysum reads it \
                instead"
            ),
        };
        // llama.cpp's defaults: sentencepiece models want a BOS, byte-level BPE ones do not.
        let default_add_bos = matches!(kind, VocabKind::SentencePiece { .. });
        Ok(Self {
            tokens,
            types,
            kind,
            bos: id("tokenizer.ggml.bos_token_id"),
            eos: id("tokenizer.ggml.eos_token_id"),
            eot: id("tokenizer.ggml.eot_token_id"),
            add_bos: flag("tokenizer.ggml.add_bos_token").unwrap_or(default_add_bos),
        })
    }
}

fn value_as_i64(v: &gguf_file::Value) -> Option<i64> {
    use gguf_file::Value as V;
    Some(match *v {
        V::U8(x) => x as i64,
        V::I8(x) => x as i64,
        V::U16(x) => x as i64,
        V::I16(x) => x as i64,
        V::U32(x) => x as i64,
        V::I32(x) => x as i64,
        V::U64(x) => i64::try_from(x).ok()?,
        V::I64(x) => x,
        _ => return None,
    })
}

fn value_as_u32(v: &gguf_file::Value) -> Option<u32> {
    // Converters write -1 (or nothing) for "no such token".
    value_as_i64(v).and_then(|x| u32::try_from(x).ok())
}

fn vocab_map(tokens: &[String]) -> Vocab {
    // When a text repeats, the later id wins, as in llama.cpp's `token_to_id`.
    tokens.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect()
}

/// Byte-level BPE (`tokenizer.ggml.model == "gpt2"`) with the pre-tokenizer llama.cpp picks for `pre`.
fn build_byte_level_bpe(
    tokens: Vec<String>,
    merges: Vec<(String, String)>,
    pre: &str,
) -> Result<tokenizers::Tokenizer> {
    let byte_level = || ByteLevel::new(false, true, false);
    let isolate = |regex: &str| -> Result<PreTokenizerWrapper> {
        Ok(Split::new(SplitPattern::Regex(regex.to_string()), SplitDelimiterBehavior::Isolated, false)
            .map_err(|e| anyhow!("pre-tokenizer regex: {e}"))?
            .into())
    };
    let mut ignore_merges = false;
    let (normalizer, pre_tokenizer): (Option<NormalizerWrapper>, PreTokenizerWrapper) = match pre {
        // GPT-2's regex inside ByteLevel, no prefix space (llama.cpp never adds one for BPE). llama.cpp's
        // "default" additionally splits punctuation runs and 3-digit groups; no model here uses it, and
        // Hugging Face's GPT-2 tokenizer (the model's own) does not, so we follow Hugging Face.
        "default" | "gpt2" => (None, byte_level().use_regex(true).into()),
        // Qwen2's regex, then ByteLevel only for the byte mapping; NFC as the Hugging Face tokenizer has
        // (llama.cpp does not normalize: they differ only on decomposed input).
        "qwen2" | "deepseek-r1-qwen" | "stablelm2" | "megrez" => {
            (Some(NFC.into()), PreTokenizerSequence::new(vec![isolate(QWEN2_REGEX)?, byte_level().into()]).into())
        }
        // Every digit alone, then GPT-2's regex (llama.cpp: "\p{N}" first, then the GPT-2 expression).
        "smollm" | "starcoder" | "refact" | "command-r" | "codeshell" | "exaone" | "minerva-7b" => (
            None,
            PreTokenizerSequence::new(vec![Digits::new(true).into(), byte_level().use_regex(true).into()]).into(),
        ),
        // Not covered by the fixtures; mirrors llama.cpp's LLAMA_VOCAB_PRE_TYPE_LLAMA3 (which also ignores
        // merges for words already in the vocabulary).
        "llama-bpe" | "llama3" => {
            ignore_merges = true;
            (None, PreTokenizerSequence::new(vec![isolate(LLAMA3_REGEX)?, byte_level().into()]).into())
        }
        // A wrong pre-tokenizer gives plausible but different ids and silently worse output, so refuse, as
        // llama.cpp does for pre-tokenizers it does not know.
        other => bail!(
            "GGUF pre-tokenizer tokenizer.ggml.pre = {other:?} is not supported (known: default, gpt2, qwen2, smollm, \
            starcoder, llama-bpe and aliases): put the model's tokenizer.json in the folder of the GGUF file, where \
            polysum reads it instead"
        ),
    };
    let bpe = BPE::builder()
        .vocab_and_merges(vocab_map(&tokens), merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| anyhow!("building the BPE model from the GGUF vocabulary: {e}"))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    if let Some(n) = normalizer {
        tok.with_normalizer(Some(n)).map_err(|e| anyhow!("{e}"))?;
    }
    tok.with_pre_tokenizer(Some(pre_tokenizer));
    tok.with_decoder(Some(DecoderWrapper::from(byte_level())));
    Ok(tok)
}

/// SentencePiece (`tokenizer.ggml.model == "llama"`) as BPE with byte fallback: GGUF keeps only scores, so
/// the merges are rebuilt from them (see [`merges_from_scores`]).
fn build_sentencepiece_bpe(
    tokens: Vec<String>,
    types: &[i64],
    scores: &[f32],
    add_space_prefix: bool,
) -> Result<tokenizers::Tokenizer> {
    let vocab = vocab_map(&tokens);
    let merges = merges_from_scores(&tokens, types, scores, &vocab);
    let bpe = BPE::builder()
        .vocab_and_merges(vocab, merges)
        .byte_fallback(true)
        .build()
        .map_err(|e| anyhow!("building the sentencepiece model from the GGUF vocabulary: {e}"))?;
    let mut tok = tokenizers::Tokenizer::new(bpe);
    let space = Replace::new(" ", "▁").map_err(|e| anyhow!("{e}"))?;
    let normalizer: NormalizerWrapper = if add_space_prefix {
        NormalizerSequence::new(vec![Prepend::new("▁".into()).into(), space.into()]).into()
    } else {
        space.into()
    };
    tok.with_normalizer(Some(normalizer)).map_err(|e| anyhow!("{e}"))?;
    let mut decoders: Vec<DecoderWrapper> = vec![
        Replace::new("▁", " ").map_err(|e| anyhow!("{e}"))?.into(),
        ByteFallback::new().into(),
        Fuse::new().into(),
    ];
    if add_space_prefix {
        decoders.push(Strip::new(' ', 1, 0).into());
    }
    tok.with_decoder(Some(DecoderSequence::new(decoders)));
    Ok(tok)
}

/// BPE merges equivalent to SentencePiece's (and llama.cpp's SPM) segmentation: that algorithm repeatedly
/// joins the adjacent pair whose concatenation is the highest-scoring vocabulary token, leftmost on ties.
/// So every way to cut a token into two vocabulary tokens is a merge, ranked by the whole token's score
/// (descending); BPE then applies the lowest-ranked merge present, leftmost first: the same choice.
///
/// Only ordinary tokens take part: control and user-defined tokens are split out of the text before
/// merging, and byte tokens only come from byte fallback. Cuts of the same token share a score; they are
/// ordered by where the cut falls, which only matters when two such pairs are adjacent in one word (BPE
/// ranks must be distinct, SentencePiece would take the leftmost).
fn merges_from_scores(tokens: &[String], types: &[i64], scores: &[f32], vocab: &Vocab) -> Vec<(String, String)> {
    let normal = |i: usize| types.get(i).is_none_or(|&t| t == TYPE_NORMAL);
    // Gemma has 262k tokens and about 2M cuts to look up: use the BPE model's own (ahash) vocabulary, and
    // all cores.
    let is_part = |s: &str| vocab.get(s).is_some_and(|&id| normal(id as usize));
    // (score of the merged token, its id, byte offset of the cut)
    let mut found: Vec<(f32, u32, u32)> = tokens
        .par_iter()
        .enumerate()
        .filter(|(i, t)| normal(*i) && vocab.get(t.as_str()) == Some(&(*i as u32)))
        .flat_map_iter(|(i, t)| {
            t.char_indices()
                .skip(1)
                .filter(|&(cut, _)| is_part(&t[..cut]) && is_part(&t[cut..]))
                .map(move |(cut, _)| (scores[i], i as u32, cut as u32))
        })
        .collect();
    found.sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    found
        .into_iter()
        .map(|(_, id, cut)| {
            let t = &tokens[id as usize];
            (t[..cut as usize].to_string(), t[cut as usize..].to_string())
        })
        .collect()
}

/// Special (control) and user-defined tokens, split out of the text the way llama.cpp's
/// `tokenizer_st_partition` does: longest token first over the whole text, then shorter ones in what is
/// left; user-defined tokens always, control (and unknown) tokens only with parse_special.
struct SpecialTokens {
    /// In matching priority: longer text first, then lower id (llama.cpp sorts by length only; the id
    /// makes equal-length overlaps deterministic).
    pieces: Vec<SpecialPiece>,
    /// Indices into `pieces`, by the first byte of their text.
    by_first_byte: Vec<Vec<u32>>,
}

struct SpecialPiece {
    text: String,
    id: u32,
    /// Parsed only with parse_special.
    control: bool,
}

#[derive(Debug, PartialEq)]
enum Fragment<'a> {
    Text(&'a str),
    Special(u32),
}

impl SpecialTokens {
    fn new(mut pieces: Vec<SpecialPiece>) -> Self {
        pieces.retain(|p| !p.text.is_empty());
        pieces.sort_by(|a, b| b.text.len().cmp(&a.text.len()).then(a.id.cmp(&b.id)));
        let mut by_first_byte = vec![Vec::new(); 256];
        for (i, p) in pieces.iter().enumerate() {
            by_first_byte[p.text.as_bytes()[0] as usize].push(i as u32);
        }
        Self { pieces, by_first_byte }
    }

    fn partition<'a>(&self, text: &'a str, parse_special: bool) -> Vec<Fragment<'a>> {
        let bytes = text.as_bytes();
        // Every occurrence of every eligible piece; a piece's text starts with a UTF-8 lead byte, so each
        // match starts (and ends) on a character boundary.
        let mut found: Vec<(u32, usize)> = Vec::new();
        for (pos, &b) in bytes.iter().enumerate() {
            for &i in &self.by_first_byte[b as usize] {
                let p = &self.pieces[i as usize];
                if (parse_special || !p.control) && bytes[pos..].starts_with(p.text.as_bytes()) {
                    found.push((i, pos));
                }
            }
        }
        if found.is_empty() {
            return if text.is_empty() { vec![] } else { vec![Fragment::Text(text)] };
        }
        // Priority order, then left to right: what llama.cpp's repeated splitting of fragments amounts to.
        found.sort_unstable();
        let mut taken: BTreeMap<usize, (usize, u32)> = BTreeMap::new();
        for (i, start) in found {
            let p = &self.pieces[i as usize];
            let end = start + p.text.len();
            let overlaps = taken.range(..end).next_back().is_some_and(|(_, &(e, _))| e > start);
            if !overlaps {
                taken.insert(start, (end, p.id));
            }
        }
        let mut out = Vec::with_capacity(taken.len() * 2 + 1);
        let mut at = 0;
        for (start, (end, id)) in taken {
            if start > at {
                out.push(Fragment::Text(&text[at..start]));
            }
            out.push(Fragment::Special(id));
            at = end;
        }
        if at < text.len() {
            out.push(Fragment::Text(&text[at..]));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(text: &str, id: u32, control: bool) -> SpecialPiece {
        SpecialPiece { text: text.into(), id, control }
    }

    #[test]
    fn partition_takes_longest_token_first_like_llama_cpp() {
        // Leftmost-longest (tokenizers' matcher) would give "ab" + "cd"; llama.cpp takes "bcd" first.
        let s = SpecialTokens::new(vec![piece("ab", 10, false), piece("bcd", 11, false)]);
        assert_eq!(s.partition("abcd", false), vec![Fragment::Text("a"), Fragment::Special(11)]);
        assert_eq!(
            s.partition("ab ab", false),
            vec![Fragment::Special(10), Fragment::Text(" "), Fragment::Special(10)]
        );
    }

    #[test]
    fn partition_parses_control_tokens_only_when_asked() {
        let s = SpecialTokens::new(vec![piece("<|im_start|>", 1, true), piece("\n", 2, false)]);
        assert_eq!(
            s.partition("<|im_start|>x\n", true),
            vec![Fragment::Special(1), Fragment::Text("x"), Fragment::Special(2)]
        );
        assert_eq!(s.partition("<|im_start|>x\n", false), vec![Fragment::Text("<|im_start|>x"), Fragment::Special(2)]);
        assert_eq!(s.partition("", true), vec![]);
        // Runs of the same token do not overlap.
        let s = SpecialTokens::new(vec![piece("  ", 5, false)]);
        assert_eq!(s.partition("     ", false), vec![Fragment::Special(5), Fragment::Special(5), Fragment::Text(" ")]);
    }

    fn toy_sentencepiece(scores: &[(&str, f32)]) -> Tokenizer {
        let mut tokens = vec!["<unk>".to_string(), "<s>".to_string(), "</s>".to_string()];
        let mut types = vec![TYPE_UNKNOWN, TYPE_CONTROL, TYPE_CONTROL];
        let mut sc = vec![0.0, 0.0, 0.0];
        for b in 0..=255u8 {
            tokens.push(format!("<0x{b:02X}>"));
            types.push(6);
            sc.push(0.0);
        }
        for (t, s) in scores {
            tokens.push(t.to_string());
            types.push(TYPE_NORMAL);
            sc.push(*s);
        }
        Tokenizer::from_spec(VocabSpec {
            tokens,
            types,
            kind: VocabKind::SentencePiece { scores: sc, add_space_prefix: false },
            bos: Some(1),
            eos: Some(2),
            eot: None,
            add_bos: true,
        })
        .unwrap()
    }

    fn pieces(t: &Tokenizer, text: &str) -> Vec<String> {
        t.encode(text, false).unwrap().into_iter().map(|id| t.inner.id_to_token(id).unwrap()).collect()
    }

    #[test]
    fn merges_from_scores_follow_the_higher_score() {
        let base = [("a", -1.0), ("b", -1.0), ("c", -1.0), ("▁", -1.0)];
        // "bc" outscores "ab": SentencePiece joins b+c first and "abc" splits as a|bc.
        let t = toy_sentencepiece(&[base.as_slice(), &[("ab", -3.0), ("bc", -2.0)]].concat());
        assert_eq!(pieces(&t, "abc"), ["a", "bc"]);
        let t = toy_sentencepiece(&[base.as_slice(), &[("ab", -2.0), ("bc", -3.0)]].concat());
        assert_eq!(pieces(&t, "abc"), ["ab", "c"]);
        // A whole-word token reachable through either cut.
        let t = toy_sentencepiece(
            &[base.as_slice(), &[("ab", -2.0), ("bc", -3.0), ("abc", -4.0), ("▁abc", -5.0)]].concat(),
        );
        assert_eq!(pieces(&t, "abc abc"), ["abc", "▁abc"]);
        assert_eq!(t.decode(&t.encode("abc abc", false).unwrap()).unwrap(), "abc abc");
    }

    #[test]
    fn merges_from_scores_lists_every_cut_in_score_order() {
        let tokens: Vec<String> = ["a", "b", "c", "ab", "bc", "abc"].iter().map(|s| s.to_string()).collect();
        let types = vec![TYPE_NORMAL; 6];
        let scores = [-1.0, -1.0, -1.0, -5.0, -2.0, -3.0];
        let m = merges_from_scores(&tokens, &types, &scores, &vocab_map(&tokens));
        let m: Vec<(&str, &str)> = m.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        assert_eq!(m, [("b", "c"), ("a", "bc"), ("ab", "c"), ("a", "b")]);
    }

    #[test]
    fn counting_in_pieces_matches_encoding_whole() {
        let t = toy_sentencepiece(&[("a", -1.0), ("b", -1.0), ("▁", -1.0), ("ab", -2.0), ("▁ab", -3.0)]);
        let text = "ab ab  ab\n\nab a€b ".repeat(50);
        let whole = t.encode(&text, false).unwrap().len();
        for max in [16, 64, 1000] {
            assert_eq!(t.count_in_pieces(&text, max).unwrap(), whole, "pieces of {max} bytes");
        }
        assert_eq!(t.count("").unwrap(), 0);
    }

    #[test]
    fn pieces_end_before_a_word_and_on_character_boundaries() {
        assert_eq!(piece_end("ab cd ef", 100), 8);
        assert_eq!(piece_end("ab cd ef", 6), 5);
        assert_eq!(piece_end("ab cd  ef", 8), 2, "not inside a run of spaces");
        assert_eq!(piece_end("€€€", 4), 3, "no space: the last character boundary");
        assert_eq!(piece_end("€€€", 1), 3, "a character longer than the piece is taken whole");
    }

    #[test]
    fn byte_fallback_round_trips_unknown_characters() {
        let t = toy_sentencepiece(&[("a", -1.0), ("▁", -1.0)]);
        let ids = t.encode("a€", false).unwrap();
        // "€" is three UTF-8 bytes, each its own <0xNN> token.
        assert_eq!(ids.len(), 4);
        assert_eq!(t.decode(&ids).unwrap(), "a€");
        // Control tokens are silent, and ids past the vocabulary are an error.
        assert_eq!(t.decode(&[1, ids[0], 2]).unwrap(), "a");
        assert_eq!(t.decode(&[0]).unwrap(), "<unk>");
        assert!(t.decode(&[100_000]).is_err());
    }

    #[test]
    fn json_file_round_trip_keeps_ids_and_specials() {
        let t = toy_sentencepiece(&[("a", -1.0), ("b", -1.0), ("▁", -1.0), ("ab", -2.0), ("▁ab", -3.0)]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokenizer.json");
        t.inner.save(&path, false).unwrap();
        let j = Tokenizer::from_json_file(&path, None).unwrap();
        for text in ["ab ab", "<s>ab</s>", "a€b", ""] {
            for parse_special in [true, false] {
                assert_eq!(j.encode(text, parse_special).unwrap(), t.encode(text, parse_special).unwrap(), "{text:?}");
            }
            let ids = t.encode(text, false).unwrap();
            assert_eq!(j.decode(&ids).unwrap(), text);
        }
        assert_eq!(j.encode("<s>ab", true).unwrap()[0], 1);
        assert!(!j.encode("<s>ab", false).unwrap().contains(&1));
        // Without GGUF metadata the ids come from the json's added tokens, BOS from its (absent) post-processor.
        assert_eq!((j.bos_id(), j.eos_id(), j.add_bos()), (Some(1), Some(2), false));
        assert_eq!(j.end_of_generation_ids(), [2]);
        assert_eq!(j.decode(&[1, 2]).unwrap(), "");
        assert!(Tokenizer::from_json_file(&dir.path().join("missing.json"), None)
            .unwrap_err()
            .to_string()
            .contains("missing.json"));
    }

    #[test]
    fn unknown_pre_tokenizer_is_refused_with_its_name() {
        let err = build_byte_level_bpe(vec!["a".into()], vec![], "mystery-pre").unwrap_err().to_string();
        assert!(err.contains("mystery-pre") && err.contains("tokenizer.json in the folder of the GGUF"), "{err}");
    }
}
