//! One article → its summaries: fit the text to the context, prompt every target language in one batched
//! call, clean each answer, check its language, and retry the wrong ones with stronger strategies
//! (native-language prompt with a started answer, then translation). A summary that never comes out in
//! its language is recorded as failed, without its text.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;

use crate::backend::Generator;
use crate::backend::SamplingParams;
use crate::backend::{Generation, Request, StopReason};
use crate::job::input::Article;
use crate::job::record::{check_words, round3, Attempt, Flag, Outcome, Status, Strategy, SummaryRecord, Tokens};
use crate::summarize::ground::{self, Grounding};
use crate::summarize::guard;
use crate::summarize::mapreduce;
use crate::summarize::prompt::{self, Length, Prompt, PROMPT_VERSION};
use crate::text::lang::{self, Lang};
use crate::text::lexicon::LexicalCheck;
use crate::text::mbr;
use crate::text::{clean, names};
use crate::verify;

/// Tokens each chunk of a long article repeats from the one before.
pub(crate) const CHUNK_OVERLAP: usize = 64;

/// How the summaries in languages other than the article's are made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum SummaryStrategy {
    /// Every summary is written from the article.
    Direct,
    /// One summary in the article's language, translated into the others. The default: its EN and ES
    /// summaries agree on numbers and names far more often than `direct`'s, at the same speed and language
    /// correctness (the measurement is in docs/LONG-ARTICLES.md).
    #[default]
    Translate,
}

impl std::str::FromStr for SummaryStrategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "direct" => Ok(SummaryStrategy::Direct),
            "translate" => Ok(SummaryStrategy::Translate),
            other => Err(format!("invalid strategy {other:?}: use translate or direct")),
        }
    }
}

impl SummaryStrategy {
    /// The part of the state key that tells the strategies' summaries apart (the default keeps the plain key).
    pub(crate) fn key_suffix(self) -> &'static str {
        match self {
            SummaryStrategy::Direct => "+direct",
            SummaryStrategy::Translate => "",
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) length: Length,
    /// Cap on the article's tokens (below what the context allows), e.g. to bound time per article.
    pub(crate) max_input_tokens: Option<usize>,
    /// Cap on the context the prompts use (below the model's).
    pub(crate) max_context: Option<usize>,
    pub(crate) strategy: SummaryStrategy,
    /// Reject summaries that come out in another language (off only for benchmarks with synthetic models,
    /// which write no language).
    pub(crate) check_language: bool,
    /// Check each summary sentence against the article, and repair or flag (`--verify`).
    pub(crate) verify: verify::Mode,
    /// What of the article the summary prompt shows (`--grounding`).
    pub(crate) grounding: Grounding,
    /// Translations generated per cross-language summary, one chosen by `text::mbr` (`--candidates`).
    pub(crate) candidates: usize,
}

#[cfg(test)]
impl Settings {
    /// Settings for tests: `length`, nothing capped, every summary from the article.
    pub(crate) fn new(length: Length) -> Self {
        Settings {
            length,
            max_input_tokens: None,
            max_context: None,
            strategy: SummaryStrategy::Direct,
            check_language: true,
            verify: verify::Mode::Off,
            grounding: Grounding::Article,
            candidates: 1,
        }
    }
}

impl Settings {
    /// The context the prompts may fill.
    pub(crate) fn context(&self, gen: &dyn Generator) -> usize {
        gen.usable_context(self.max_context)
    }
}

/// What `summarize` produced for one article.
#[derive(Debug, Clone)]
pub(crate) struct Summarized {
    pub(crate) source_lang: Option<Lang>,
    pub(crate) truncated: bool,
    pub(crate) summaries: BTreeMap<Lang, SummaryRecord>,
    pub(crate) generated_tokens: usize,
    pub(crate) generate_seconds: f64,
}

fn sampling() -> SamplingParams {
    // Greedy (reproducible: a re-run gives the same summary) with a mild penalty against loops.
    SamplingParams { repetition_penalty: 1.1, repetition_window: 64, ..SamplingParams::greedy() }
}

/// Tokens the prompt around the article takes, for the longest strategy and language.
fn prompt_overhead(gen: &dyn Generator, title: &str, langs: &[Lang], length: Length) -> Result<usize> {
    let mut most = 0;
    for l in langs {
        for p in [prompt::base(title, "", *l, length), prompt::native_summary(title, "", *l, length)] {
            most = most.max(gen.count_prompt_tokens(&p.chat())?);
        }
    }
    Ok(most + 8)
}

/// Per-language progress through the attempts.
struct Lane {
    lang: Lang,
    attempts: Vec<Attempt>,
    tokens: Tokens,
    seconds: f64,
    accepted: Option<Accepted>,
    /// The last rejected text, a candidate for translation (never stored).
    rejected_text: Option<String>,
    last_detected: Option<Lang>,
    error: Option<String>,
    gave_up: bool,
}

struct Accepted {
    text: String,
    detected: Lang,
    flags: Vec<Flag>,
    numbers: Vec<String>,
    /// Each sentence's support, after any repair (`--verify flag|fix`).
    checked: Option<verify::repair::Repaired>,
    lexical: LexicalCheck,
}

enum Verdict {
    Ok(Accepted),
    WrongLanguage {
        detected: Option<Lang>,
        text: String,
    },
    Empty,
    /// The answer repeats the prompt's instructions instead of summarizing.
    Echo,
}

/// The instruction text of a prompt: everything but the fenced article or text.
fn instructions_of(p: &Prompt) -> String {
    let mut user = p.user.clone();
    for (open, close) in [("<article>", "</article>"), ("<text>", "</text>")] {
        if let (Some(a), Some(b)) = (user.rfind(open), user.rfind(close)) {
            if a < b {
                user.replace_range(a..b + close.len(), " ");
            }
        }
    }
    format!("{} {} {}", p.system, user, p.assistant_prefix.as_deref().unwrap_or(""))
}

fn judge(g: &Generation, target: Lang, settings: &Settings, article: &str, instructions: &str) -> Verdict {
    let length = settings.length;
    let (cleaned, removed) = clean::clean(&g.text, &prompt::answer_labels());
    let fitted = guard::fit_length(&cleaned, length, g.stop_reason == StopReason::MaxTokens);
    let text = fitted.text;
    if text.chars().filter(|c| c.is_alphabetic()).count() < 3 {
        return Verdict::Empty;
    }
    if guard::echoes_instructions(&text, instructions) {
        return Verdict::Echo;
    }
    let (in_target, detected) = names::check_language(&text, target);
    if settings.check_language && !in_target {
        return Verdict::WrongLanguage { detected, text };
    }
    let mut flags = Vec::new();
    if removed {
        flags.push(Flag::PreambleRemoved);
    }
    if fitted.trimmed {
        flags.push(Flag::Trimmed);
    }
    if fitted.dropped_unfinished {
        flags.push(Flag::DroppedUnfinished);
    }
    let numbers = guard::unsupported_numbers(&text, article);
    if !numbers.is_empty() {
        flags.push(Flag::UnsupportedNumbers);
    }
    let lexical = check_words(&text, target, &mut flags);
    Verdict::Ok(Accepted { text, detected: detected.unwrap_or(target), flags, numbers, checked: None, lexical })
}

/// One request of a phase: its lane, its prompt, and for a translation the source text and its language.
struct PhaseRow {
    lane: usize,
    prompt: Prompt,
    source: Option<(String, Lang)>,
}

/// Run `strategies` in order for the lanes `members` that are still open, one batched call per strategy.
#[allow(clippy::too_many_arguments)]
fn run_phase(
    lanes: &mut [Lane],
    members: &[usize],
    strategies: &[Strategy],
    article: &Article,
    text: &str,
    settings: &Settings,
    gen: &dyn Generator,
    out: &mut Summarized,
) {
    let length = settings.length;
    for &strategy in strategies {
        // Prompts for the lanes still open.
        let mut rows: Vec<PhaseRow> = Vec::new();
        for &i in members {
            let lane = &lanes[i];
            if lane.accepted.is_some() || lane.gave_up {
                continue;
            }
            let (p, source) = match strategy {
                Strategy::Base => (prompt::base(&article.title, text, lane.lang, length), None),
                Strategy::Native => (prompt::native_summary(&article.title, text, lane.lang, length), None),
                Strategy::Translate => {
                    // Prefer an accepted summary in another language; else the rejected text itself.
                    let other = lanes.iter().find_map(|o| {
                        o.accepted.as_ref().filter(|_| o.lang != lane.lang).map(|a| (a.text.clone(), o.lang))
                    });
                    let rejected = || lane.rejected_text.clone().map(|t| (t, lane.last_detected.unwrap_or(lane.lang)));
                    match other.or_else(rejected) {
                        Some((src, from)) => (crate::prompt::translate(&src, lane.lang), Some((src, from))),
                        None => continue,
                    }
                }
                // A translation's second candidate; never one of a summary's strategies.
                Strategy::Resample => continue,
            };
            rows.push(PhaseRow { lane: i, prompt: p, source });
        }
        if rows.is_empty() {
            continue;
        }
        // Translations get `--candidates` answers each, one chosen; summaries one.
        let per_row: Vec<usize> =
            rows.iter().map(|r| if r.source.is_some() { settings.candidates.max(1) } else { 1 }).collect();
        let requests: Vec<Request> = rows
            .iter()
            .zip(&per_row)
            .flat_map(|(row, &n)| {
                // A translation may need more tokens than its source summary did (Spanish takes more than
                // English): cut at the summary's budget, its last sentence would be lost.
                let max_new_tokens = match &row.source {
                    Some((src, _)) => length
                        .max_new_tokens()
                        .max(crate::prompt::translation_tokens(gen.count_tokens_or_estimate(src))),
                    None => length.max_new_tokens(),
                };
                Request {
                    prompt: row.prompt.chat(),
                    max_new_tokens,
                    sampling: sampling(),
                    stop_strings: prompt::stop_strings(),
                }
                .candidates(n)
            })
            .collect();
        let t = Instant::now();
        let result = gen.generate(&requests);
        let secs = t.elapsed().as_secs_f64();
        out.generate_seconds += secs;
        match result {
            Err(e) => {
                let msg = format!("generation failed: {e:#}");
                for row in &rows {
                    let lane = &mut lanes[row.lane];
                    lane.seconds += secs;
                    lane.attempts.push(Attempt {
                        strategy,
                        outcome: Outcome::Error,
                        lang_detected: None,
                        error: Some(msg.clone()),
                    });
                    lane.error = Some(msg.clone());
                    lane.gave_up = true;
                }
            }
            Ok((gens, stats)) => {
                out.generated_tokens += stats.generated_tokens;
                let mut answers = gens.iter();
                for (row, &n) in rows.iter().zip(&per_row) {
                    let cands: Vec<&Generation> = answers.by_ref().take(n).collect();
                    let lane = &mut lanes[row.lane];
                    lane.seconds += secs;
                    // The candidates share one prompt.
                    lane.tokens.prompt += cands[0].prompt_tokens;
                    for g in &cands {
                        lane.tokens.generated += g.tokens.len();
                    }
                    let chosen = match &row.source {
                        Some((src, from)) if n > 1 => {
                            let labels = crate::prompt::translation_labels();
                            let texts: Vec<String> = cands.iter().map(|g| clean::clean(&g.text, &labels).0).collect();
                            let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                            mbr::choose(src, *from, &texts, lane.lang).0.unwrap_or(0)
                        }
                        _ => 0,
                    };
                    let g = cands[chosen];
                    match judge(g, lane.lang, settings, &article.text, &instructions_of(&row.prompt)) {
                        Verdict::Ok(mut a) => {
                            if strategy != Strategy::Base {
                                a.flags.push(if strategy == Strategy::Translate {
                                    Flag::Translated
                                } else {
                                    Flag::Retried
                                });
                            }
                            lane.attempts.push(Attempt {
                                strategy,
                                outcome: Outcome::Ok,
                                lang_detected: Some(a.detected),
                                error: None,
                            });
                            lane.accepted = Some(a);
                        }
                        Verdict::WrongLanguage { detected, text } => {
                            lane.attempts.push(Attempt {
                                strategy,
                                outcome: Outcome::WrongLanguage,
                                lang_detected: detected,
                                error: None,
                            });
                            lane.last_detected = detected;
                            lane.rejected_text = Some(text);
                        }
                        Verdict::Empty => {
                            lane.attempts.push(Attempt {
                                strategy,
                                outcome: Outcome::Empty,
                                lang_detected: None,
                                error: None,
                            });
                        }
                        Verdict::Echo => {
                            lane.attempts.push(Attempt {
                                strategy,
                                outcome: Outcome::EchoedPrompt,
                                lang_detected: None,
                                error: None,
                            });
                        }
                    }
                }
            }
        }
    }
}

/// Check the accepted summary of each lane in `members` against the article, and repair it (`fix`): its
/// text becomes the repaired one, its numbers are checked again, and what stays unsupported is flagged.
/// A summary translated from a checked one aligns each sentence through its pivot's evidence. A check
/// that fails to run (a backend error) leaves the summary as it was, without `support`, flagged `unchecked`.
#[allow(clippy::too_many_arguments)]
fn verify_lanes(
    lanes: &mut [Lane],
    members: &[usize],
    pivot: Option<usize>,
    title: &str,
    article_text: &str,
    source_lang: Lang,
    settings: &Settings,
    gen: &dyn Generator,
    out: &mut Summarized,
) {
    if settings.verify == verify::Mode::Off {
        return;
    }
    let source = verify::Source::new(Some(title), article_text, source_lang);
    let checks = verify::Settings::default();
    let pivot_support: Option<Vec<crate::job::record::SentenceSupport>> =
        pivot.and_then(|p| lanes[p].accepted.as_ref()).and_then(|a| a.checked.as_ref()).map(|c| c.support.clone());
    for &i in members {
        let lane = &mut lanes[i];
        let Some(a) = lane.accepted.as_mut() else { continue };
        let t = Instant::now();
        let hint = if a.flags.contains(&Flag::Translated) { pivot_support.as_deref() } else { None };
        let claims = verify::claims_of(&a.text, lane.lang, hint);
        let result = verify::check(&source, &claims, &checks, gen).and_then(|checked| match settings.verify {
            verify::Mode::Fix => {
                verify::repair::repair(&source, checked, lane.lang, verify::repair::Drop::Allowed, hint, &checks, gen)
            }
            _ => Ok(verify::repair::Repaired { support: checked, repaired: 0, dropped: vec![] }),
        });
        let secs = t.elapsed().as_secs_f64();
        lane.seconds += secs;
        out.generate_seconds += secs;
        let Ok(r) = result else {
            // Never read as checked: the record says the check could not run.
            a.flags.push(Flag::Unchecked);
            continue;
        };
        let mut r = r;
        if r.repaired + r.dropped.len() > 0 {
            a.text = r.text();
            // A rewritten sentence can be longer than the one it replaces: the length asked still holds.
            let fitted = guard::fit_length(&a.text, settings.length, false);
            if fitted.trimmed {
                a.text = fitted.text;
                r.support.retain(|s| a.text.contains(s.text.as_str()));
                if !a.flags.contains(&Flag::Trimmed) {
                    a.flags.push(Flag::Trimmed);
                }
            }
            a.numbers = guard::unsupported_numbers(&a.text, article_text);
            a.flags.retain(|f| *f != Flag::UnsupportedNumbers);
            if !a.numbers.is_empty() {
                a.flags.push(Flag::UnsupportedNumbers);
            }
            a.lexical = check_words(&a.text, lane.lang, &mut a.flags);
        }
        if verify::unsupported(&r.support).next().is_some() {
            a.flags.push(Flag::Unsupported);
        }
        a.checked = Some(r);
    }
}

/// Summarize `article` into every language of `langs`.
pub(crate) fn summarize(article: &Article, langs: &[Lang], settings: &Settings, gen: &dyn Generator) -> Summarized {
    let model = gen.model_id();
    let source_lang = lang::detect(&article.text).or_else(|| article.declared_lang.as_deref()?.parse().ok());
    let mut out = Summarized {
        source_lang,
        truncated: false,
        summaries: BTreeMap::new(),
        generated_tokens: 0,
        generate_seconds: 0.0,
    };
    let length = settings.length;
    let failed_all = |out: &mut Summarized, err: String| {
        for l in langs {
            out.summaries
                .insert(*l, failed_record(&model, length, err.clone(), None, vec![], Tokens::default(), 0.0, vec![]));
        }
    };

    // Long articles become notes that fit the context (map-reduce); the notes are in the article's language.
    let notes_lang = out.source_lang.unwrap_or(langs[0]);
    let condensed = (|| -> Result<mapreduce::Condensed<'_>> {
        let overhead = prompt_overhead(gen, &article.title, langs, length)? + length.max_new_tokens();
        let limits = mapreduce::Limits {
            context: settings.context(gen),
            final_overhead: overhead,
            max_input_tokens: settings.max_input_tokens,
            overlap: CHUNK_OVERLAP,
        };
        mapreduce::condense(article, notes_lang, &limits, gen)
    })();
    let mut condensed = match condensed {
        Ok(c) => c,
        Err(e) => {
            failed_all(&mut out, format!("could not prepare the prompt: {e:#}"));
            return out;
        }
    };
    out.truncated = condensed.truncated;
    out.generated_tokens += condensed.tokens.generated;
    out.generate_seconds += condensed.seconds;
    let mut text = std::mem::take(&mut condensed.text);
    // Grounding applies to an article read in one piece; chunk notes are already a selection.
    if settings.grounding == Grounding::KeySentences && condensed.levels == 1 {
        text = ground::key_sentences(&text, notes_lang, ground::KEY_SENTENCES).into();
    }

    let mut lanes: Vec<Lane> = langs
        .iter()
        .map(|l| Lane {
            lang: *l,
            attempts: vec![],
            tokens: condensed.tokens.clone(),
            seconds: condensed.seconds,
            accepted: None,
            rejected_text: None,
            last_detected: None,
            error: None,
            gave_up: false,
        })
        .collect();

    // `translate`: the summary in the article's language first, then the others translate it (and fall
    // back to summarizing the article). `direct`: every language from the article at once.
    let direct = [Strategy::Base, Strategy::Native, Strategy::Translate];
    let phases: Vec<(Vec<usize>, [Strategy; 3])> = match settings.strategy {
        SummaryStrategy::Direct => vec![((0..lanes.len()).collect(), direct)],
        SummaryStrategy::Translate => {
            let pivot = langs.iter().position(|l| *l == notes_lang).unwrap_or(0);
            let others = (0..lanes.len()).filter(|i| *i != pivot).collect();
            vec![(vec![pivot], direct), (others, [Strategy::Translate, Strategy::Base, Strategy::Native])]
        }
    };
    // Each phase's summaries are checked (and repaired) before the next phase translates them.
    let source = out.source_lang.unwrap_or(notes_lang);
    let pivot = langs.iter().position(|l| *l == notes_lang);
    for (members, strategies) in phases {
        run_phase(&mut lanes, &members, &strategies, article, &text, settings, gen, &mut out);
        let via = pivot.filter(|p| settings.strategy == SummaryStrategy::Translate && !members.contains(p));
        // A cut article is checked against what the model read (a summary cannot rest on the part it
        // never saw, and the rest of a huge article would cost memory in proportion); a whole one, or one
        // read in chunks, against the article itself.
        let checked_text = if out.truncated && condensed.levels == 1 { &text } else { article.text.as_str() };
        verify_lanes(&mut lanes, &members, via, &article.title, checked_text, source, settings, gen, &mut out);
    }

    for lane in lanes {
        let mut base_flags = Vec::new();
        if out.truncated {
            base_flags.push(Flag::TruncatedInput);
        }
        let mut record = match lane.accepted {
            Some(a) => {
                let mut flags = base_flags;
                flags.extend(a.flags);
                SummaryRecord {
                    text: Some(a.text),
                    status: Status::Ok,
                    error: None,
                    lang_detected: Some(a.detected),
                    model: model.clone(),
                    prompt_version: PROMPT_VERSION.into(),
                    length: length.key(),
                    tokens: lane.tokens,
                    seconds: round3(lane.seconds),
                    flags,
                    unsupported_numbers: a.numbers,
                    attempts: lane.attempts,
                    chunks: 1,
                    levels: 1,
                    structure: None,
                    repaired: a.checked.as_ref().map(|c| c.repaired),
                    dropped: a.checked.as_ref().map(|c| c.dropped.len()),
                    dropped_sentences: a.checked.as_ref().map(|c| c.dropped.clone()).unwrap_or_default(),
                    support: a.checked.map(|c| c.support),
                    lexical: Some(a.lexical),
                }
            }
            None => {
                let tried: Vec<String> = lane
                    .attempts
                    .iter()
                    .map(|a| {
                        format!(
                            "{}→{}",
                            a.strategy.as_str(),
                            a.lang_detected.map_or_else(|| a.outcome.to_string(), |l| l.to_string())
                        )
                    })
                    .collect();
                let err = lane.error.unwrap_or_else(|| match &lane.last_detected {
                    Some(d) => format!(
                        "no summary in {} ({}) after {} attempts: the model wrote {} ({})",
                        lane.lang.english_name(),
                        lane.lang,
                        lane.attempts.len(),
                        d.english_name(),
                        tried.join(", ")
                    ),
                    None => format!(
                        "no usable summary in {} ({}) after {} attempts ({})",
                        lane.lang.english_name(),
                        lane.lang,
                        lane.attempts.len(),
                        tried.join(", ")
                    ),
                });
                failed_record(
                    &model,
                    length,
                    err,
                    lane.last_detected,
                    lane.attempts,
                    lane.tokens,
                    lane.seconds,
                    base_flags,
                )
            }
        };
        record.chunks = condensed.chunks;
        record.levels = condensed.levels;
        out.summaries.insert(lane.lang, record);
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn failed_record(
    model: &str,
    length: Length,
    error: String,
    detected: Option<Lang>,
    attempts: Vec<Attempt>,
    tokens: Tokens,
    seconds: f64,
    flags: Vec<Flag>,
) -> SummaryRecord {
    SummaryRecord {
        text: None,
        status: Status::Failed,
        error: Some(error),
        lang_detected: detected,
        model: model.to_string(),
        prompt_version: PROMPT_VERSION.into(),
        length: length.key(),
        tokens,
        seconds: round3(seconds),
        flags,
        unsupported_numbers: vec![],
        attempts,
        chunks: 1,
        levels: 1,
        structure: None,
        support: None,
        repaired: None,
        dropped: None,
        dropped_sentences: vec![],
        lexical: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::FakeGenerator;

    fn article(text: &str) -> Article {
        Article {
            rel: "a.txt".into(),
            source: "a.txt".into(),
            id: None,
            title: "Title".into(),
            text: text.into(),
            sha256: "x".into(),
            declared_lang: None,
            story_id: None,
            warnings: vec![],
        }
    }

    fn langs() -> Vec<Lang> {
        vec![Lang::En, Lang::Es]
    }

    const TEXT: &str =
        "The city council approved a new budget on Tuesday afternoon after a long debate about taxes and schools.";

    #[test]
    fn grounded_generation_shows_the_model_only_the_key_sentences() {
        // Sentences that share no word with anything else: the least central.
        const FILLER: [&str; 12] = [
            "Gardens bloom.",
            "Rivers freeze.",
            "Owls hoot.",
            "Trains rattle.",
            "Bakers knead.",
            "Kites soar.",
            "Violins hum.",
            "Glaciers creep.",
            "Painters sketch.",
            "Tigers prowl.",
            "Comets glow.",
            "Sailors wave.",
        ];
        let text = format!("{TEXT} {} The council said the budget raises taxes for schools.", FILLER.join(" "));
        let prompts = |grounding: Grounding| {
            let g = FakeGenerator::parse("fake").unwrap().unwrap();
            let settings = Settings { grounding, ..Settings::new(Length::Sentences(3)) };
            let s = summarize(&article(&text), &langs(), &settings, &g);
            assert_eq!(s.summaries[&Lang::En].status, Status::Ok);
            let p = g.prompted.lock().unwrap().clone();
            p
        };
        let whole = prompts(Grounding::Article);
        assert!(whole.iter().all(|p| FILLER.iter().all(|f| p.contains(f))), "{whole:?}");
        let grounded = prompts(Grounding::KeySentences);
        assert!(grounded.iter().all(|p| p.contains(TEXT) && p.contains("raises taxes")), "{grounded:?}");
        let shown = FILLER.iter().filter(|f| grounded[0].contains(*f)).count();
        assert_eq!(shown, ground::KEY_SENTENCES - 2, "{}", grounded[0]);
    }

    #[test]
    fn both_languages_ok_first_time() {
        let g = FakeGenerator::parse("fake").unwrap().unwrap();
        let s = summarize(&article(TEXT), &langs(), &Settings::new(Length::Sentences(3)), &g);
        for l in ["en", "es"] {
            let r = &s.summaries[l];
            assert_eq!((r.status, r.lang_detected.map(Lang::code)), (Status::Ok, Some(l)), "{r:?}");
            assert_eq!(r.attempts.len(), 1);
        }
        assert_eq!(s.source_lang.map(Lang::code), Some("en"));
        assert!(!s.truncated);
    }

    #[test]
    fn a_translated_summary_is_chosen_among_its_candidates() {
        let chosen = "Las autoridades dieron los detalles el martes por la tarde. El artículo resume la noticia.";
        let g =
            FakeGenerator { sampled_answers: vec![chosen.into()], ..FakeGenerator::parse("fake").unwrap().unwrap() };
        let settings =
            Settings { strategy: SummaryStrategy::Translate, candidates: 3, ..Settings::new(Length::Sentences(3)) };
        let s = summarize(&article(TEXT), &langs(), &settings, &g);
        let es = &s.summaries["es"];
        // Two sampled candidates agree with each other more than either with the greedy one.
        assert_eq!(es.text.as_deref(), Some(chosen), "{es:?}");
        assert!(es.flags.contains(&Flag::Translated));
        let en = s.summaries["en"].text.clone().unwrap();
        let asked = g.prompted.lock().unwrap().iter().filter(|p| p.contains(&en)).count();
        assert_eq!(asked, 3, "one prompt per candidate");
    }

    #[test]
    fn a_translation_may_take_more_tokens_than_the_summary_it_translates() {
        // One long sentence: within a one-sentence summary's budget, but its translation may need more.
        let long = format!("Officials said {} the bridge reopened.", "that the plan worked and ".repeat(10).trim_end());
        let g = FakeGenerator { fixed_answer: Some(long.clone()), ..FakeGenerator::parse("fake").unwrap().unwrap() };
        let settings = Settings { strategy: SummaryStrategy::Translate, ..Settings::new(Length::Sentences(1)) };
        summarize(&article(TEXT), &langs(), &settings, &g);
        let words = long.split_whitespace().count();
        assert!(words <= Length::Sentences(1).max_new_tokens());
        let prompted = g.prompted.lock().unwrap().clone();
        let budgets = g.budgets.lock().unwrap().clone();
        // Only the translation prompt holds the summary: the summaries were asked about the article.
        let translation = prompted.iter().position(|p| p.contains(&long)).expect("asked");
        assert!(budgets[translation] >= 2 * words, "{} for {words} words", budgets[translation]);
    }

    #[test]
    fn wrong_language_is_retried_then_recorded_as_failed_without_text() {
        let g = FakeGenerator::parse("fake:english").unwrap().unwrap();
        let s = summarize(&article(TEXT), &langs(), &Settings::new(Length::Sentences(2)), &g);
        assert_eq!(s.summaries["en"].status, Status::Ok);
        let es = &s.summaries["es"];
        assert_eq!(es.status, Status::Failed);
        assert_eq!(es.text, None);
        assert_eq!(es.lang_detected.map(Lang::code), Some("en"));
        let strategies: Vec<Strategy> = es.attempts.iter().map(|a| a.strategy).collect();
        assert_eq!(strategies, [Strategy::Base, Strategy::Native, Strategy::Translate]);
        assert!(es.error.as_deref().unwrap().contains("Spanish"), "{:?}", es.error);
    }

    #[test]
    fn native_retry_can_rescue_a_summary() {
        let g = FakeGenerator::parse("fake:native-es,chatty").unwrap().unwrap();
        let s = summarize(&article(TEXT), &langs(), &Settings::new(Length::Sentences(3)), &g);
        let es = &s.summaries["es"];
        assert_eq!(es.status, Status::Ok, "{es:?}");
        assert_eq!(es.attempts.len(), 2);
        assert!(es.flags.contains(&Flag::Retried) && es.flags.contains(&Flag::PreambleRemoved));
        assert!(!es.text.as_ref().unwrap().contains("Sure"));
    }

    #[test]
    fn long_articles_are_truncated_with_a_flag() {
        let g = FakeGenerator::parse("fake").unwrap().unwrap();
        let long = TEXT.repeat(200);
        let s = summarize(
            &article(&long),
            &langs(),
            &Settings { max_input_tokens: Some(100), ..Settings::new(Length::MaxWords(30)) },
            &g,
        );
        assert!(s.truncated);
        assert!(s.summaries["en"].flags.contains(&Flag::TruncatedInput));
        let (cut, t) = mapreduce::fit_to_context(&long, 100, &g).unwrap();
        assert!(t && cut.split_whitespace().count() <= 100 && cut.split_whitespace().count() > 50);
    }

    #[test]
    fn generation_errors_fail_the_summaries_with_the_reason() {
        let g = FakeGenerator::parse("fake:fail").unwrap().unwrap();
        let s = summarize(&article(TEXT), &langs(), &Settings::new(Length::Sentences(3)), &g);
        assert!(s
            .summaries
            .values()
            .all(|r| r.status == Status::Failed && r.error.as_deref().unwrap().contains("asked to fail")));
    }
}
