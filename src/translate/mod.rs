//! `polysum translate INPUT... --to es|en --out DIR`: whole articles translated paragraph by paragraph,
//! with the paragraph structure and the title kept, the output language checked, and a sentence-count
//! check against the source (a paragraph the model skipped is caught, not shipped).
//!
//! It runs on the summarize machinery (`summarize::runner`): the same inputs, state, lock, atomic writes,
//! progress and exit codes; only the per-article step differs.

use std::time::Instant;

use anyhow::Result;

use crate::backend::Generator;
use crate::backend::SamplingParams;
use crate::backend::{Request, StopReason};
use crate::job::input::Article;
use crate::job::record::{
    check_words, round3, Attempt, Flag, Outcome, Status, Strategy, Structure, SummaryRecord, Tokens, Translation,
};
use crate::job::task::{Cache, Results, Task, TaskKind};
use crate::prompt;
use crate::text::chunk::{self, ChunkConfig};
use crate::text::lang::{self, Lang};
use crate::text::mbr;
use crate::text::{clean, split};
use crate::verify;

/// Bump whenever a translation prompt changes: it is part of the state key, so a new version redoes the
/// translations.
pub(crate) const TRANSLATE_PROMPT_VERSION: &str = "tr-2";

/// Most tokens of source text in one request: small models translate short pieces more faithfully, and a
/// piece's answer stays well inside the context.
const MAX_PIECE_TOKENS: usize = 400;
/// Pieces translated in one batched call.
const PIECES_PER_CALL: usize = 4;
/// Rows of one batched call when each piece has several candidates: past this, a decode step costs about
/// as much per row as a call of its own.
const ROWS_PER_CALL: usize = 8;

/// Whole articles translated into `to`.
#[derive(Debug, Clone)]
pub(crate) struct Translate {
    pub(crate) to: Lang,
    /// The source language; `None` detects it.
    pub(crate) from: Option<Lang>,
    pub(crate) max_context: Option<usize>,
    /// Check each translated sentence (and the title) against its source sentences (`--verify`).
    pub(crate) verify: verify::Mode,
    /// Translations generated per piece, one chosen by `text::mbr` (`--candidates`); 1 keeps the greedy one.
    pub(crate) candidates: usize,
}

impl Task for Translate {
    fn kind(&self) -> TaskKind {
        TaskKind::Translate
    }

    fn prompt_version(&self) -> &'static str {
        TRANSLATE_PROMPT_VERSION
    }

    /// The same article translated into the same language is done once.
    fn settings_key(&self) -> String {
        format!(
            "translate:{}{}{}",
            self.from.map_or("auto", Lang::code),
            self.verify.key_suffix(),
            mbr::key_suffix(self.candidates)
        )
    }

    fn cached(&self, cache: &Cache<'_>) -> Result<(Results, bool)> {
        let translation = cache.get::<Translation>(self.to)?;
        let finished = translation.is_some();
        Ok((Results { translation, ..Results::default() }, finished))
    }

    fn run(&self, article: &Article, _cached: Results, gen: &dyn Generator) -> Results {
        let t = translate_article(article, self, gen);
        Results {
            source_lang: t.source_lang,
            translation: Some(t.translation),
            generated_tokens: t.generated_tokens,
            ..Results::default()
        }
    }
}

/// What `translate_article` produced.
pub(crate) struct Translated {
    pub(crate) source_lang: Option<Lang>,
    pub(crate) translation: Translation,
    pub(crate) generated_tokens: usize,
    pub(crate) generate_seconds: f64,
}

/// The article's paragraphs without its title: text and Markdown inputs carry the title as their first
/// line, and it is translated once, as the title. `false` when the title is the whole text (a one-line
/// article), which is then translated once, as the body.
fn body_paragraphs(article: &Article) -> (Vec<&str>, &'static str, bool) {
    let (paras, sep) = split::paragraphs(&article.text);
    let title = article.title.trim();
    let mut body = paras.clone();
    let mut title_is_first_line = false;
    if let Some(first) = body.first_mut() {
        let (line, rest) = first.split_once('\n').unwrap_or((first, ""));
        let line = line.trim().trim_start_matches('#').trim();
        if !title.is_empty() && line == title {
            *first = rest.trim();
            title_is_first_line = true;
        }
    }
    body.retain(|p| !p.is_empty() && !p.chars().all(|c| c == '=' || c == '-' || c.is_whitespace()));
    if body.is_empty() {
        return (paras, sep, false);
    }
    // A title that is not the text's first line came with the input (JSON `title`); one cut from the first
    // line (a long first line) is part of the body.
    let given =
        !title.is_empty() && (title_is_first_line || !paras.first().is_some_and(|p| split::title_opens(title, p)));
    (body, sep, given)
}

/// The sentence-count check: per paragraph, a translation with less than half the source's sentences
/// (of a source with at least 3) lost some; over the whole text, a ratio outside 0.75–1.33 is suspect.
/// Returns the structure counts, and the numbers (1-based) of the paragraphs that look short.
pub(crate) fn sentence_check(source: &[&str], translated: &[String]) -> (Structure, Vec<usize>) {
    let count = |p: &str| split::sentences(p).len();
    let mut short = Vec::new();
    let (mut src_total, mut out_total) = (0, 0);
    for (i, src) in source.iter().enumerate() {
        let s = count(src);
        let o = translated.get(i).map(|t| count(t)).unwrap_or(0);
        src_total += s;
        out_total += o;
        if (s >= 3 && o * 2 < s) || (s > 0 && o == 0) {
            short.push(i + 1);
        }
    }
    let structure = Structure {
        source_paragraphs: source.len(),
        paragraphs: translated.iter().filter(|t| !t.trim().is_empty()).count(),
        source_sentences: src_total,
        sentences: out_total,
    };
    (structure, short)
}

fn sampling() -> SamplingParams {
    SamplingParams { repetition_penalty: 1.05, repetition_window: 64, ..SamplingParams::greedy() }
}

/// The second candidate for a piece whose greedy translation has words the dictionary does not know: the
/// same prompt, sampled, so the model can pick other words.
fn lexical_retry_sampling() -> SamplingParams {
    SamplingParams { temperature: 0.7, top_p: Some(0.9), seed: 1, ..sampling() }
}

/// One piece of the source: the title (paragraph `None`) or part of a paragraph.
struct Piece<'a> {
    paragraph: Option<usize>,
    text: &'a str,
    tokens: usize,
}

/// The answer for one piece, once accepted or given up on.
#[derive(Default, Clone)]
struct PieceResult {
    text: String,
    ok: bool,
    cut: bool,
    detected: Option<Lang>,
    /// Words of `text` the target language's dictionary does not know (0 when it could not check).
    unknown: usize,
}

/// Translate `article` into `settings.to`.
pub(crate) fn translate_article(article: &Article, settings: &Translate, gen: &dyn Generator) -> Translated {
    let to = settings.to;
    let source_lang = settings
        .from
        .or_else(|| lang::detect(&article.text))
        .or_else(|| article.declared_lang.as_deref()?.parse().ok());
    let model = gen.model_id();
    let (paras, sep, title_separate) = body_paragraphs(article);
    let mut record = SummaryRecord {
        text: None,
        status: Status::Failed,
        error: None,
        lang_detected: None,
        model,
        prompt_version: TRANSLATE_PROMPT_VERSION.into(),
        length: "full".into(),
        tokens: Tokens::default(),
        seconds: 0.0,
        flags: vec![],
        unsupported_numbers: vec![],
        attempts: vec![],
        chunks: 0,
        levels: 1,
        structure: None,
        support: None,
        repaired: None,
        dropped: None,
        dropped_sentences: vec![],
        lexical: None,
    };
    let mut out = Translated {
        source_lang,
        translation: Translation { lang: to, title: None, record: record.clone() },
        generated_tokens: 0,
        generate_seconds: 0.0,
    };

    if source_lang == Some(to) {
        let texts: Vec<String> = paras.iter().map(|p| p.to_string()).collect();
        let (structure, _) = sentence_check(&paras, &texts);
        record.text = Some(texts.join(sep));
        record.chunks = texts.len();
        record.status = Status::Ok;
        record.lang_detected = Some(to);
        record.flags.push(Flag::AlreadyInTargetLanguage);
        record.structure = Some(structure);
        out.translation.title = Some(article.title.clone());
        out.translation.record = record;
        return out;
    }
    let from = source_lang.unwrap_or(if to == Lang::En { Lang::Es } else { Lang::En });

    let count = |s: &str| gen.count_tokens_or_estimate(s);
    let context = gen.usable_context(settings.max_context);
    let overhead = {
        let p = prompt::translate("", to);
        gen.count_prompt_tokens(&p.chat()).unwrap_or(0) + 40
    };
    // The answer takes up to twice the source's tokens.
    let budget = (context.saturating_sub(overhead) / 3).min(MAX_PIECE_TOKENS);
    if budget < 16 {
        record.error =
            Some(format!("the context ({context} tokens) is too small to translate in: raise --max-context"));
        out.translation.record = record;
        return out;
    }

    let mut pieces: Vec<Piece> = Vec::new();
    if title_separate {
        pieces.push(Piece { paragraph: None, text: article.title.trim(), tokens: count(&article.title) });
    }
    for (i, p) in paras.iter().enumerate() {
        for c in chunk::chunk(p, ChunkConfig { budget, overlap: 0 }, &count) {
            pieces.push(Piece { paragraph: Some(i), text: p[c.range].trim(), tokens: c.tokens });
        }
    }
    record.chunks = pieces.iter().filter(|p| p.paragraph.is_some()).count();

    let mut results = vec![PieceResult::default(); pieces.len()];
    let n = settings.candidates.max(1);
    let labels = prompt::translation_labels();
    let t0 = Instant::now();
    for (round, strategy) in [Strategy::Native, Strategy::Base].into_iter().enumerate() {
        // The second round retries the pieces in the wrong language with the stronger prompt, and, with one
        // candidate, gives the pieces with unknown words a second, sampled one (several candidates were
        // already chosen among with the dictionary's help).
        let open: Vec<usize> =
            (0..pieces.len()).filter(|&i| !results[i].ok || (round == 1 && n == 1 && results[i].unknown > 0)).collect();
        if open.is_empty() {
            break;
        }
        // Accepted pieces in the second round are only resampled; the others are retried in earnest.
        let resampled = open.iter().filter(|&&i| results[i].ok).count();
        let retried: Vec<usize> = open.iter().copied().filter(|&i| !results[i].ok).collect();
        let per_piece = if round == 0 { n } else { 1 };
        let mut wrong = 0;
        for batch in open.chunks(PIECES_PER_CALL.min(ROWS_PER_CALL / per_piece).max(1)) {
            let requests: Vec<Request> = batch
                .iter()
                .flat_map(|&i| {
                    let lexical_retry = round == 1 && results[i].ok;
                    let p = if round == 0 || lexical_retry {
                        prompt::translate(pieces[i].text, to)
                    } else {
                        prompt::translate_from(pieces[i].text, from, to)
                    };
                    Request {
                        prompt: p.chat(),
                        max_new_tokens: crate::prompt::translation_tokens(pieces[i].tokens),
                        sampling: if lexical_retry { lexical_retry_sampling() } else { sampling() },
                        stop_strings: prompt::stop_strings(),
                    }
                    .candidates(per_piece)
                })
                .collect();
            let gens = match gen.generate(&requests) {
                Ok((gens, _)) => gens,
                Err(e) => {
                    record.error = Some(format!("generation failed: {e:#}"));
                    record.attempts.push(Attempt {
                        strategy,
                        outcome: Outcome::Error,
                        lang_detected: None,
                        error: record.error.clone(),
                    });
                    out.translation.record = finish_failed(record, t0);
                    return out;
                }
            };
            for (&i, cands) in batch.iter().zip(gens.chunks(per_piece)) {
                let was_ok = results[i].ok;
                // The candidates share one prompt.
                record.tokens.prompt += cands[0].prompt_tokens;
                for g in cands {
                    record.tokens.generated += g.tokens.len();
                    out.generated_tokens += g.tokens.len();
                }
                let texts: Vec<String> = cands.iter().map(|g| clean::clean(&g.text, &labels).0).collect();
                let (chosen, judged) =
                    mbr::choose(pieces[i].text, from, &texts.iter().map(String::as_str).collect::<Vec<_>>(), to);
                let k = chosen.unwrap_or(0);
                let (text, g) = (texts[k].clone(), &cands[k]);
                // The choice already read each candidate's language and words.
                let (ok, detected) = (judged[k].eligible, judged[k].detected);
                if !ok && text.chars().any(|c| c.is_alphanumeric()) && !was_ok {
                    wrong += 1;
                }
                let unknown = if ok { judged[k].unknown } else { 0 };
                let new = PieceResult { text, ok, cut: g.stop_reason == StopReason::MaxTokens, detected, unknown };
                // A second candidate replaces an accepted piece only with fewer unknown words; otherwise the
                // first attempt's text is kept as a fallback only to report on, never shipped unless ok.
                if !results[i].ok || (new.ok && new.unknown < results[i].unknown) {
                    results[i] = new;
                }
            }
        }
        if !retried.is_empty() {
            let failed_now = retried.iter().filter(|&&i| !results[i].ok).count();
            record.attempts.push(Attempt {
                strategy: if round == 0 { Strategy::Translate } else { strategy },
                outcome: if failed_now == 0 {
                    Outcome::Ok
                } else {
                    Outcome::PiecesFailed(format!(
                        "{failed_now} of {} pieces not in {to} ({wrong} in another language)",
                        retried.len()
                    ))
                },
                lang_detected: None,
                error: None,
            });
        }
        if resampled > 0 {
            record.attempts.push(Attempt {
                strategy: Strategy::Resample,
                outcome: Outcome::Ok,
                lang_detected: None,
                error: None,
            });
        }
    }
    out.generate_seconds = t0.elapsed().as_secs_f64();

    // Reassemble: pieces of a paragraph joined by a space, paragraphs by the source's separator.
    let mut translated = vec![String::new(); paras.len()];
    let mut title = None;
    let mut bad: Vec<String> = Vec::new();
    for (piece, r) in pieces.iter().zip(&results) {
        if !r.ok {
            let what = piece.paragraph.map_or("the title".to_string(), |p| format!("paragraph {}", p + 1));
            bad.push(match &r.detected {
                Some(d) if !r.text.is_empty() => format!("{what} came out in {}", d.english_name()),
                _ => format!("{what} came out empty"),
            });
            continue;
        }
        if r.cut && !record.flags.contains(&Flag::PieceCut) {
            record.flags.push(Flag::PieceCut);
        }
        match piece.paragraph {
            None => title = Some(r.text.clone()),
            Some(p) => {
                let t = &mut translated[p];
                if !t.is_empty() {
                    t.push(' ');
                }
                t.push_str(&r.text);
            }
        }
    }
    let (structure, short) = sentence_check(&paras, &translated);
    if structure.paragraphs < structure.source_paragraphs {
        record.flags.push(Flag::ParagraphDropped);
    }
    if !short.is_empty()
        || !(0.75..=1.34).contains(&(structure.sentences as f64 / structure.source_sentences.max(1) as f64))
    {
        record.flags.push(Flag::SentenceCountMismatch);
    }
    record.structure = Some(structure);
    let text = translated.join(sep);
    let detected = lang::detect(&text);
    record.lang_detected = detected;
    if !bad.is_empty() {
        record.error = Some(format!("no translation into {} for {}", to.english_name(), bad.join("; ")));
    } else if detected != Some(to) {
        record.error = Some(format!(
            "the translation reads as {}, not {}",
            detected.map_or("no known language", Lang::english_name),
            to.english_name()
        ));
    } else {
        record.status = Status::Ok;
        out.translation.title = if title_separate { title } else { translated.first().cloned() };
        let t = Instant::now();
        let text = match check_translation(
            article,
            from,
            to,
            &paras,
            translated,
            &mut out.translation.title,
            settings.verify,
            gen,
        ) {
            Some((paragraphs, r)) => {
                if verify::unsupported(&r.support).next().is_some() {
                    record.flags.push(Flag::Unsupported);
                }
                record.repaired = Some(r.repaired);
                record.dropped = Some(0);
                record.support = Some(r.support);
                paragraphs.join(sep)
            }
            None => {
                if settings.verify != verify::Mode::Off {
                    // Never read as checked: the record says the check could not run.
                    record.flags.push(Flag::Unchecked);
                }
                text
            }
        };
        out.generate_seconds += t.elapsed().as_secs_f64();
        // On the final text: a repaired sentence is new wording.
        record.lexical = Some(check_words(&text, to, &mut record.flags));
        record.text = Some(text);
    }
    record.seconds = round3(out.generate_seconds);
    out.translation.record = record;
    out
}

/// Each translated sentence, and the title, checked against the source sentences of its paragraph (`fix`:
/// what fails is translated again from its evidence, never dropped). Returns the paragraphs as they now
/// read and the support of every sentence, title first; `None` with `--verify off`, or when the check
/// could not run (the translation then stays as it was, without `support`).
#[allow(clippy::too_many_arguments)]
fn check_translation(
    article: &Article,
    from: Lang,
    to: Lang,
    paras: &[&str],
    translated: Vec<String>,
    title: &mut Option<String>,
    mode: verify::Mode,
    gen: &dyn Generator,
) -> Option<(Vec<String>, verify::repair::Repaired)> {
    if mode == verify::Mode::Off {
        return None;
    }
    let source = verify::Source::new(Some(&article.title), &article.text, from);
    // The source sentences of each paragraph, as evidence of its translation's sentences.
    let evidence_of =
        |p: &str| -> Vec<usize> { (0..source.sentences.len()).filter(|&i| p.contains(source.sentences[i])).collect() };
    let mut claims = Vec::new();
    let title_claim = title.clone().filter(|t| !t.trim().is_empty());
    if let Some(t) = &title_claim {
        let ev = (0..source.sentences.len()).filter(|&i| source.sentences[i] == article.title.trim()).collect();
        claims.push(verify::Claim { text: t.clone(), lang: to, evidence: Some(ev) });
    }
    let mut counts = Vec::with_capacity(translated.len());
    for (p, text) in paras.iter().zip(&translated) {
        let sentences = split::sentences(text);
        counts.push(sentences.len());
        let ev = evidence_of(p);
        claims.extend(sentences.iter().map(|s| verify::Claim {
            text: s.to_string(),
            lang: to,
            evidence: Some(ev.clone()),
        }));
    }
    let settings = verify::Settings::default();
    let checked = verify::check(&source, &claims, &settings, gen).ok()?;
    let r = match mode {
        verify::Mode::Fix => {
            verify::repair::repair(&source, checked, to, verify::repair::Drop::Never, None, &settings, gen).ok()?
        }
        _ => verify::repair::Repaired { support: checked, repaired: 0, dropped: vec![] },
    };
    // Never dropped: the sentences come back in their paragraphs' counts.
    let mut it = r.support.iter().map(|s| s.text.as_str());
    if title_claim.is_some() {
        *title = it.next().map(str::to_string);
    }
    let paragraphs = counts.iter().map(|&n| it.by_ref().take(n).collect::<Vec<_>>().join(" ")).collect();
    Some((paragraphs, r))
}

fn finish_failed(mut record: SummaryRecord, t0: Instant) -> SummaryRecord {
    record.status = Status::Failed;
    record.text = None;
    record.seconds = round3(t0.elapsed().as_secs_f64());
    record
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::FakeGenerator;

    #[test]
    fn a_second_candidate_for_unknown_words_is_recorded_as_a_resample() {
        let article = Article {
            rel: "a.txt".into(),
            source: "a.txt".into(),
            id: None,
            title: String::new(),
            text: "The mayor opened the new bridge on Monday.".into(),
            sha256: "x".into(),
            declared_lang: Some("en".into()),
            story_id: None,
            warnings: vec![],
        };
        let settings = Translate {
            to: Lang::Es,
            from: Some(Lang::En),
            max_context: None,
            verify: verify::Mode::Off,
            candidates: 1,
        };
        // A Spanish answer with a word no dictionary knows, every time.
        let answer = "El alcalde abrió el nuevo puente el lunes zqxwvj.";
        let g = FakeGenerator { fixed_answer: Some(answer.into()), ..FakeGenerator::parse("fake").unwrap().unwrap() };
        let t = translate_article(&article, &settings, &g);
        let r = &t.translation.record;
        assert_eq!(r.status, Status::Ok, "{r:?}");
        assert_eq!(r.text.as_deref(), Some(answer));
        let strategies: Vec<&str> = r.attempts.iter().map(|a| a.strategy.as_str()).collect();
        assert_eq!(strategies, ["translate", "resample"], "{r:?}");
        assert_eq!(g.prompted.lock().unwrap().len(), 2);
    }

    #[test]
    fn several_candidates_are_asked_for_at_once_and_the_one_that_keeps_the_numbers_wins() {
        let article = Article {
            rel: "a.txt".into(),
            source: "a.txt".into(),
            id: None,
            title: String::new(),
            text: "The mayor opened 40 new homes in Valencia on Monday.".into(),
            sha256: "x".into(),
            declared_lang: Some("en".into()),
            story_id: None,
            warnings: vec![],
        };
        let greedy = "El alcalde abrió 14 viviendas nuevas en Valencia el lunes.";
        let kept = "El alcalde abrió 40 viviendas nuevas en Valencia el lunes.";
        let fake = || FakeGenerator {
            fixed_answer: Some(greedy.into()),
            sampled_answers: vec![kept.into(), "El alcalde inauguró 40 viviendas en Valencia el lunes.".into()],
            ..FakeGenerator::parse("fake").unwrap().unwrap()
        };
        let settings = Translate {
            to: Lang::Es,
            from: Some(Lang::En),
            max_context: None,
            verify: verify::Mode::Off,
            candidates: 3,
        };
        let g = fake();
        let t = translate_article(&article, &settings, &g);
        let r = &t.translation.record;
        assert_eq!(r.text.as_deref(), Some(kept), "{r:?}");
        assert_eq!(g.prompted.lock().unwrap().len(), 3, "three candidates, no second round");
        let strategies: Vec<&str> = r.attempts.iter().map(|a| a.strategy.as_str()).collect();
        assert_eq!(strategies, ["translate"]);
        // One candidate: the greedy answer, as before.
        let g = fake();
        let t = translate_article(&article, &Translate { candidates: 1, ..settings.clone() }, &g);
        assert_eq!(t.translation.record.text.as_deref(), Some(greedy));
        assert_eq!(g.prompted.lock().unwrap().len(), 1);
        assert_ne!(settings.settings_key(), Translate { candidates: 1, ..settings }.settings_key());
    }

    #[test]
    fn the_sentence_check_catches_a_dropped_paragraph_and_a_short_one() {
        let src = ["A one. A two. A three.", "B one. B two.", "C one."];
        let fine: Vec<String> = ["Uno. Dos. Tres.", "Uno. Dos.", "Uno."].map(String::from).to_vec();
        let (s, short) = sentence_check(&src, &fine);
        assert_eq!((s.source_paragraphs, s.paragraphs, s.source_sentences, s.sentences), (3, 3, 6, 6));
        assert!(short.is_empty());
        let dropped: Vec<String> = ["Uno, dos y tres.", "", "Uno."].map(String::from).to_vec();
        let (s, short) = sentence_check(&src, &dropped);
        assert_eq!(s.paragraphs, 2);
        assert_eq!(short, [1, 2]);
    }
}
