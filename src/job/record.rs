//! The records polysum writes: one per article, in `<relpath>.json`, in `index.jsonl` and in the state
//! database. Their JSON form is the documented, versioned schema (docs/OUTPUT.md): add fields freely,
//! bump `SCHEMA_VERSION` when a field changes meaning or goes away.
//!
//! Readers are lenient: a field a record lacks (an older record, or one written by hand) takes its default,
//! and unknown fields are ignored, so `compare` reads these same types from any output folder. The
//! container-level `#[serde(default)]` keeps that true for fields added later: a new field's type must have
//! a default or this file does not compile.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::text::lang::Lang;
use crate::text::lexicon::{self, LexicalCheck};

pub(crate) const SCHEMA_VERSION: u32 = 2;

/// The dictionary check of `text`, with `flags` holding `unknown_words` exactly when it finds some.
pub(crate) fn check_words(text: &str, lang: Lang, flags: &mut Vec<Flag>) -> LexicalCheck {
    let lexical = lexicon::check(text, lang);
    flags.retain(|f| *f != Flag::UnknownWords);
    if matches!(lexical, LexicalCheck::Unknown { .. }) {
        flags.push(Flag::UnknownWords);
    }
    lexical
}

/// Which prompt an attempt used, strongest last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Strategy {
    /// Shared English system prompt, fenced article, instruction naming the target language.
    Base,
    /// Everything in the target language, and the answer started with its word for "Summary:".
    Native,
    /// Translate a text (a summary in another language, the rejected attempt, or an article's piece).
    Translate,
    /// The same translation prompt again, sampled: a second candidate for pieces whose first translation
    /// has words the dictionary does not know (kept only when it has fewer).
    Resample,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Outcome {
    Ok,
    WrongLanguage,
    Empty,
    /// The answer repeated the prompt's instructions.
    EchoedPrompt,
    Error,
    /// A translation round in which some pieces still failed: how many, in words.
    #[serde(untagged)]
    PiecesFailed(String),
}

/// Something worth knowing about a result that is still ok.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Flag {
    /// A chatty introduction or sign-off was removed.
    PreambleRemoved,
    /// Cut to the asked length.
    Trimmed,
    /// An unfinished last sentence was dropped.
    DroppedUnfinished,
    /// The summary has numbers the article does not (`unsupported_numbers` lists them).
    UnsupportedNumbers,
    /// The article was cut to `--max-input-tokens`.
    TruncatedInput,
    /// Made by translating the summary in another language.
    Translated,
    /// Came from a retry with a stronger prompt.
    Retried,
    /// The article was already in the target language: copied, not translated.
    AlreadyInTargetLanguage,
    /// A piece's translation hit its token limit.
    PieceCut,
    /// A paragraph came out empty.
    ParagraphDropped,
    /// The translation's sentence count is far from the source's.
    SentenceCountMismatch,
    /// Some sentence is still unsupported by the article after the check (and any repair): `support` says
    /// which and why.
    Unsupported,
    /// Words the language's dictionary does not know remain (`lexical` lists them).
    UnknownWords,
    /// The faithfulness check could not run (the backend gave no answer scores): nothing says whether the
    /// text is supported.
    Unchecked,
}

impl Strategy {
    /// The name the records use.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Strategy::Base => "base",
            Strategy::Native => "native",
            Strategy::Translate => "translate",
            Strategy::Resample => "resample",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Ok => "ok",
            Outcome::WrongLanguage => "wrong_language",
            Outcome::Empty => "empty",
            Outcome::EchoedPrompt => "echoed_prompt",
            Outcome::Error => "error",
            Outcome::PiecesFailed(what) => what,
        })
    }
}

impl std::fmt::Display for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Flag::PreambleRemoved => "preamble_removed",
            Flag::Trimmed => "trimmed",
            Flag::DroppedUnfinished => "dropped_unfinished",
            Flag::UnsupportedNumbers => "unsupported_numbers",
            Flag::TruncatedInput => "truncated_input",
            Flag::Translated => "translated",
            Flag::Retried => "retried",
            Flag::AlreadyInTargetLanguage => "already_in_target_language",
            Flag::PieceCut => "piece_cut",
            Flag::ParagraphDropped => "paragraph_dropped",
            Flag::SentenceCountMismatch => "sentence_count_mismatch",
            Flag::Unsupported => "unsupported",
            Flag::UnknownWords => "unknown_words",
            Flag::Unchecked => "unchecked",
        })
    }
}

/// Seconds as recorded: to the millisecond.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// A record without a status reads as ok: failed records always say so.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Status {
    #[default]
    Ok,
    Failed,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct Tokens {
    /// Prompt tokens of the requests behind this summary (all attempts).
    pub(crate) prompt: usize,
    /// Tokens generated for it (all attempts).
    pub(crate) generated: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Attempt {
    pub(crate) strategy: Strategy,
    pub(crate) outcome: Outcome,
    pub(crate) lang_detected: Option<Lang>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<String>,
}

/// Whether the article supports a sentence, as `crate::verify` judged it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Supported,
    Unsupported,
}

/// A check a sentence failed (`failed_checks`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Check {
    /// A number (in digits or words) the article does not have.
    Number,
    /// A weekday or month the article does not name.
    Date,
    /// A person, place or organisation the article does not name.
    Name,
    /// Negated where its evidence is not, or the reverse.
    Negation,
    /// Who does the main action is not who does it in the article.
    Actor,
    /// The model, asked about the sentence over its evidence, did not answer that it is true.
    Model,
}

impl Check {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Check::Number => "number",
            Check::Date => "date",
            Check::Name => "name",
            Check::Negation => "negation",
            Check::Actor => "actor",
            Check::Model => "model",
        }
    }
}

/// One final sentence of a summary or translation, checked against the article.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SentenceSupport {
    pub(crate) text: String,
    pub(crate) verdict: Verdict,
    /// The model's probability that the sentence is true given its evidence (answer "yes" against "no"
    /// and "not stated"), to a thousandth; for a sentence with `checked_as`, the mean of that reading's
    /// and the sentence's as written.
    pub(crate) score: f64,
    /// Indices of the article sentences (`text::split::sentences` of title and text, title first) that
    /// support it best.
    pub(crate) evidence: Vec<usize>,
    pub(crate) failed_checks: Vec<Check>,
    /// Rewritten, or replaced by its evidence, after failing the check.
    #[serde(default)]
    pub(crate) repaired: bool,
    /// A sentence in another language than the article's: the model's translation of it into the
    /// article's language, which the checks read (absent when it was checked as written only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) checked_as: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct SummaryRecord {
    /// The summary; `null` when the status is `failed` (a text in the wrong language is never kept).
    pub(crate) text: Option<String>,
    pub(crate) status: Status,
    pub(crate) error: Option<String>,
    /// The language the detector found in the text that was accepted (or in the last rejected attempt).
    pub(crate) lang_detected: Option<Lang>,
    pub(crate) model: String,
    pub(crate) prompt_version: String,
    /// `s3` (3 sentences) or `w40` (40 words).
    pub(crate) length: String,
    pub(crate) tokens: Tokens,
    /// Wall time of the generate calls behind this summary (a batched call counts for each of its rows).
    pub(crate) seconds: f64,
    pub(crate) flags: Vec<Flag>,
    /// Numbers in `text` that do not occur in the article (flag `unsupported_numbers`).
    pub(crate) unsupported_numbers: Vec<String>,
    #[serde(deserialize_with = "known_attempts")]
    pub(crate) attempts: Vec<Attempt>,
    /// Pieces of the input the model read one at a time: 1 when the article fit the context; for a
    /// map-reduce summary the chunks of the first level; for a translation the paragraphs and pieces of
    /// paragraphs translated.
    #[serde(default = "one")]
    pub(crate) chunks: usize,
    /// Rounds of summarizing: 1 for a direct summary, 2 for chunk notes then the summary of the notes, more
    /// when the notes themselves had to be condensed.
    #[serde(default = "one")]
    pub(crate) levels: usize,
    /// Translations: how much of the source's structure came through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) structure: Option<Structure>,
    /// Each final sentence checked against the article (absent with `--verify off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) support: Option<Vec<SentenceSupport>>,
    /// Sentences rewritten or replaced after failing the check (absent with `--verify off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) repaired: Option<usize>,
    /// Sentences dropped after failing the check while the rest stood (absent with `--verify off`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) dropped: Option<usize>,
    /// The dropped sentences themselves, each with its support (why it failed, its evidence).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) dropped_sentences: Vec<SentenceSupport>,
    /// The lexical check of `text` (`text::lexicon`): clean, the unknown words (flag `unknown_words`), or
    /// why it did not run. Absent where no text was kept, and in records made before the check.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) lexical: Option<LexicalCheck>,
}

fn one() -> usize {
    1
}

/// The attempts this version can read: records from before `Strategy` and `Outcome` wrote attempts in
/// another shape, which is history, not a reason to refuse the record.
fn known_attempts<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Attempt>, D::Error> {
    let raw = Vec::<serde_json::Value>::deserialize(d)?;
    Ok(raw.into_iter().filter_map(|v| serde_json::from_value(v).ok()).collect())
}

/// Paragraph and sentence counts of a translation and its source (flag `sentence_count_mismatch` when the
/// sentences differ by more than the check allows, `paragraph_dropped` when a paragraph came out empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Structure {
    pub(crate) source_paragraphs: usize,
    pub(crate) paragraphs: usize,
    pub(crate) source_sentences: usize,
    pub(crate) sentences: usize,
}

/// A whole-article translation (`polysum translate`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Translation {
    /// The target language.
    pub(crate) lang: Lang,
    /// The translated title (`null` when the status is `failed`).
    pub(crate) title: Option<String>,
    #[serde(flatten)]
    pub(crate) record: SummaryRecord,
}

impl SummaryRecord {
    pub(crate) fn is_ok(&self) -> bool {
        self.status == Status::Ok && self.text.is_some()
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub(crate) struct ArticleRecord {
    pub(crate) schema_version: u32,
    /// The output key: outputs are `<id>.json` and `<id>.md` in the output folder.
    pub(crate) id: String,
    /// The input file (with `:LINE` for JSON Lines).
    pub(crate) source: String,
    /// The `id` field of a JSON input, as given.
    pub(crate) input_id: Option<String>,
    /// SHA-256 of title + NUL + text (of the raw bytes for files that could not be read as articles).
    pub(crate) sha256: Option<String>,
    pub(crate) title: Option<String>,
    /// Detected language of the article (ISO 639-1), else the declared one when polysum supports it.
    pub(crate) source_lang: Option<Lang>,
    /// `lang` given in a JSON input.
    pub(crate) declared_lang: Option<String>,
    /// `story_id` given in a JSON input: language editions of one story share it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) story_id: Option<String>,
    /// `ok` when every requested summary is ok.
    pub(crate) status: Status,
    /// Why the article could not be read (then `summaries` is empty).
    pub(crate) error: Option<String>,
    /// The article was longer than the model's context and was cut (flag `truncated_input` too).
    pub(crate) truncated: bool,
    pub(crate) warnings: Vec<String>,
    pub(crate) summaries: BTreeMap<Lang, SummaryRecord>,
    /// `polysum translate`: the article's translation (and `summaries` is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) translation: Option<Translation>,
    /// When this record was written, UTC, RFC 3339.
    pub(crate) updated_at: String,
}

/// Now as RFC 3339 UTC (second precision), without a date crate.
pub(crate) fn now_rfc3339() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86400, secs % 86400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_fields_read_as_defaults() {
        let r: ArticleRecord =
            serde_json::from_str(r#"{"id":"a","summaries":{"es":{"text":"Hola.","status":"failed"}},"x":1}"#).unwrap();
        assert_eq!((r.id.as_str(), r.status, r.schema_version), ("a", Status::Ok, 0));
        let es = &r.summaries[&Lang::Es];
        assert_eq!((es.status, es.chunks, es.levels), (Status::Failed, 1, 1));
        assert!(es.flags.is_empty() && es.model.is_empty());
        let s: SummaryRecord = serde_json::from_str(
            r#"{"tokens":{"prompt":3},"attempts":[{"n":1,"status":"ok"},{"strategy":"native","outcome":"empty"}]}"#,
        )
        .unwrap();
        assert_eq!(s.tokens, Tokens { prompt: 3, generated: 0 });
        assert_eq!(s.attempts.len(), 1, "the old-shape attempt is left out, the known one kept");
        assert_eq!((s.attempts[0].strategy, &s.attempts[0].outcome), (Strategy::Native, &Outcome::Empty));
        // A language this version does not know is not silently taken for another one.
        assert!(serde_json::from_str::<ArticleRecord>(r#"{"id":"a","summaries":{"xx":{}}}"#).is_err());
    }

    #[test]
    fn timestamp_shape() {
        let t = super::now_rfc3339();
        assert_eq!(t.len(), 20);
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T");
    }
}
