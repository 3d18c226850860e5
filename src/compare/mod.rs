//! `polysum compare DIR`: do the English and the Spanish summaries of an article (and the summaries of two
//! language editions of one story) tell the same story?
//!
//! Reads what `summarize` wrote (`record`), checks numbers (`numbers`), proper names (`names`), a
//! back-translation chrF score (`backtranslate`, `chrf`) and the length ratio per pair of summaries
//! (`report`), finds parallel stories (`pairs`), and writes a terminal table, JSON and HTML (`render`).

pub(crate) mod backtranslate;
pub(crate) mod pairs;
pub(crate) mod record;
pub(crate) mod render;
pub(crate) mod report;

use std::time::Instant;

use crate::backend::Generator;
use crate::job::record::{ArticleRecord, Status};
use crate::text::lang::Lang;
use backtranslate::Job;
use record::summary;
use report::{compare_pair, ArticleResult, PairCheck, Report, SentenceView, StoryResult, Text, Verdict};

/// Whether any record has a summary worth back-translating (so the model is needed).
pub(crate) fn needs_model(records: &[ArticleRecord]) -> bool {
    records.iter().any(|r| summary(r, Lang::En).is_ok() || summary(r, Lang::Es).is_ok())
}

/// The back-translations of one record's summaries.
#[derive(Debug, Clone, Default)]
struct Back {
    en_to_es: Option<String>,
    es_to_en: Option<String>,
    error: Option<String>,
}

/// Compare every record, and every parallel story among them.
pub(crate) fn build(
    dir: &str,
    records: &[ArticleRecord],
    translator: Option<&dyn Generator>,
    mut warnings: Vec<String>,
    progress: bool,
) -> Report {
    let mut backs = vec![Back::default(); records.len()];
    if let Some(tr) = translator {
        for (i, r) in records.iter().enumerate() {
            let mut jobs = Vec::new();
            if let Ok(en) = summary(r, Lang::En) {
                jobs.push(Job { text: en.to_string(), from: Lang::En, to: Lang::Es });
            }
            if let Ok(es) = summary(r, Lang::Es) {
                jobs.push(Job { text: es.to_string(), from: Lang::Es, to: Lang::En });
            }
            if jobs.is_empty() {
                continue;
            }
            let t0 = Instant::now();
            match backtranslate::translate(tr, &jobs) {
                Ok(out) => {
                    for (job, text) in jobs.iter().zip(out) {
                        if job.from == Lang::En {
                            backs[i].en_to_es = Some(text);
                        } else {
                            backs[i].es_to_en = Some(text);
                        }
                    }
                }
                Err(e) => backs[i].error = Some(format!("back-translation failed: {e:#}")),
            }
            if progress {
                eprintln!(
                    "[{}/{}] {}: back-translated in {:.1}s",
                    i + 1,
                    records.len(),
                    render::terminal_safe(&r.id),
                    t0.elapsed().as_secs_f64()
                );
            }
        }
    }

    let articles: Vec<ArticleResult> = records.iter().zip(&backs).map(|(r, b)| article(r, b)).collect();
    let stories: Vec<StoryResult> = pairs::find(records, &mut warnings)
        .into_iter()
        .map(|p| story(&p, &records[p.en], &records[p.es], &backs[p.en], &backs[p.es]))
        .collect();
    let totals = report::totals(&articles, &stories);
    Report {
        dir: dir.to_string(),
        backtranslation: translator.is_some(),
        model: translator.map(|t| t.model_id()),
        thresholds: report::thresholds(),
        articles,
        stories,
        totals,
        warnings,
    }
}

fn text(label: &str, lang: &str, s: &str) -> Text {
    Text {
        label: label.into(),
        lang: lang.into(),
        text: s.into(),
        back_translation: None,
        marks: vec![],
        support: vec![],
    }
}

/// The article sentences of a record, indexed as `summarize --verify` indexed them: the input read again
/// from `source` and found by its hash. `None` when it cannot be (moved, changed, a line of a JSONL file
/// whose other lines do not matter here: those are read too, and matched by hash).
fn article_sentences(r: &ArticleRecord) -> Option<Vec<String>> {
    let path = std::path::PathBuf::from(
        r.source.rsplit_once(':').filter(|(_, n)| n.parse::<usize>().is_ok()).map_or(r.source.as_str(), |(p, _)| p),
    );
    let sha = r.sha256.as_deref()?;
    let (sources, _) = crate::job::input::discover(&[path], None).ok()?;
    let lang = record::lang(r)?;
    for src in &sources {
        for item in crate::job::input::read_source(src, crate::job::input::DEFAULT_MAX_BYTES) {
            let Ok(a) = item else { continue };
            if a.sha256 == sha {
                let source = crate::verify::Source::new(Some(&a.title), &a.text, lang);
                return Some(source.sentences.iter().map(|s| s.to_string()).collect());
            }
        }
    }
    None
}

/// The checked sentences of the summary in `lang`, when it was checked.
fn support(r: &ArticleRecord, lang: Lang) -> &[crate::job::record::SentenceSupport] {
    r.summaries.get(&lang).and_then(|s| s.support.as_deref()).unwrap_or_default()
}

/// A summary with its checked sentences and their evidence from `sentences`.
fn checked_text(label: &str, lang: Lang, s: &str, r: &ArticleRecord, sentences: Option<&[String]>) -> Text {
    let mut t = text(label, lang.code(), s);
    t.support = support(r, lang)
        .iter()
        .map(|s| SentenceView {
            text: s.text.clone(),
            supported: s.verdict == crate::job::record::Verdict::Supported,
            failed_checks: s.failed_checks.iter().map(|c| c.as_str().to_string()).collect(),
            evidence: s
                .evidence
                .iter()
                .map(|&i| sentences.and_then(|ss| ss.get(i).cloned()).unwrap_or_else(|| format!("sentence {i}")))
                .collect(),
        })
        .collect();
    t
}

fn article(r: &ArticleRecord, b: &Back) -> ArticleResult {
    let mut reasons = Vec::new();
    if r.status == Status::Failed {
        reasons.push(format!("article failed{}", r.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()));
    }
    let en = summary(r, Lang::En);
    let es = summary(r, Lang::Es);
    for side in [&en, &es] {
        if let Err(e) = side {
            reasons.push(e.clone());
        }
    }
    if let Some(e) = &b.error {
        reasons.push(e.clone());
    }
    let checked = !support(r, Lang::En).is_empty() || !support(r, Lang::Es).is_empty();
    let sentences = if checked { article_sentences(r) } else { None };
    let check = match (&en, &es) {
        (Ok(en), Ok(es)) => Some(compare_pair(
            checked_text("EN", Lang::En, en, r, sentences.as_deref()),
            checked_text("ES", Lang::Es, es, r, sentences.as_deref()),
            b.en_to_es.clone(),
            b.es_to_en.clone(),
        )),
        _ => None,
    };
    if let Some(c) = &check {
        reasons.extend(c.reasons.iter().cloned());
    }
    ArticleResult {
        id: r.id.clone(),
        source: r.source.clone(),
        title: r.title.clone(),
        source_lang: record::lang(r).map(|l| l.code().to_string()),
        story_id: r.story_id.clone(),
        en: en.ok().map(str::to_string),
        es: es.ok().map(str::to_string),
        check,
        verdict: Verdict::from_reasons(&reasons),
        reasons,
    }
}

fn story(p: &pairs::StoryPair, a: &ArticleRecord, b: &ArticleRecord, ba: &Back, bb: &Back) -> StoryResult {
    let mut reasons = Vec::new();
    let mut checks: Vec<PairCheck> = Vec::new();
    // (left article, left lang, right article, right lang)
    let combos = [
        ((a, ba, Lang::En), (b, bb, Lang::Es)), // each summary in its article's language
        ((a, ba, Lang::En), (b, bb, Lang::En)), // cross-pairs: one language, two editions
        ((a, ba, Lang::Es), (b, bb, Lang::Es)),
    ];
    for ((lr, lb, ll), (rr, rb, rl)) in combos {
        let which = |r: &ArticleRecord| if std::ptr::eq(r, a) { "EN article" } else { "ES article" };
        let llabel = format!("{} of {}", ll.label(), which(lr));
        let rlabel = format!("{} of {}", rl.label(), which(rr));
        match (summary(lr, ll), summary(rr, rl)) {
            (Ok(lt), Ok(rt)) => {
                let (lbt, rbt) = if ll != rl {
                    (
                        if ll == Lang::En { lb.en_to_es.clone() } else { lb.es_to_en.clone() },
                        if rl == Lang::En { rb.en_to_es.clone() } else { rb.es_to_en.clone() },
                    )
                } else {
                    (None, None)
                };
                let c = compare_pair(text(&llabel, ll.code(), lt), text(&rlabel, rl.code(), rt), lbt, rbt);
                // Two pairs share a text, so they can find the same thing: list it once.
                for reason in &c.reasons {
                    if !reasons.contains(reason) {
                        reasons.push(reason.clone());
                    }
                }
                checks.push(c);
            }
            (l, r) => {
                for (label, side) in [(&llabel, l), (&rlabel, r)] {
                    if let Err(e) = side {
                        let reason = format!("{label}: {e}");
                        if !reasons.contains(&reason) {
                            reasons.push(reason);
                        }
                    }
                }
            }
        }
    }
    StoryResult {
        key: p.key.clone(),
        paired_by: p.by.clone(),
        en_article: a.id.clone(),
        es_article: b.id.clone(),
        checks,
        verdict: Verdict::from_reasons(&reasons),
        reasons,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{CallStats, Generation, Prompt, Request, StopReason};
    use anyhow::Result;
    use std::sync::Mutex;

    /// Returns a canned translation per input text and records every batch it gets (each request read
    /// back into the job it was made from).
    struct Fake {
        map: Vec<(&'static str, &'static str)>,
        calls: Mutex<Vec<Vec<Job>>>,
    }

    fn job_of(r: &Request) -> Job {
        let Prompt::Chat { user, .. } = &r.prompt else { panic!("a raw prompt") };
        let text = user.split_once("<text>\n").and_then(|(_, rest)| rest.split_once("\n</text>")).unwrap().0;
        let (from, to) = if user.starts_with("Traduce") { (Lang::En, Lang::Es) } else { (Lang::Es, Lang::En) };
        Job { text: text.to_string(), from, to }
    }

    impl Generator for Fake {
        fn model_id(&self) -> String {
            "fake".into()
        }
        fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
            let jobs: Vec<Job> = requests.iter().map(job_of).collect();
            self.calls.lock().unwrap().push(jobs.clone());
            let gens = jobs
                .iter()
                .map(|j| {
                    let text = self
                        .map
                        .iter()
                        .find(|(k, _)| *k == j.text)
                        .map(|(_, v)| v.to_string())
                        .ok_or_else(|| anyhow::anyhow!("no translation for {:?}", j.text))?;
                    Ok(Generation { text, tokens: vec![], prompt_tokens: 0, stop_reason: StopReason::Eos })
                })
                .collect::<Result<_>>()?;
            Ok((gens, CallStats::default()))
        }
        fn score(&self, _: &[crate::backend::ScoreRequest]) -> Result<Vec<Vec<f32>>> {
            anyhow::bail!("compare scores nothing")
        }
        fn count_tokens(&self, text: &str) -> Result<usize> {
            Ok(text.split_whitespace().count())
        }
        fn count_prompt_tokens(&self, _: &Prompt) -> Result<usize> {
            Ok(0)
        }
        fn context_length(&self) -> usize {
            4096
        }
    }

    fn rec(json: &str) -> ArticleRecord {
        serde_json::from_str(json).unwrap()
    }

    const EN1: &str = "The council approved the budget of 2026 with 65 votes.";
    const ES1: &str = "El consejo aprobó el presupuesto de 2026 con sesenta y cinco votos.";

    #[test]
    fn one_batch_per_article_and_scores_both_directions() {
        let records = vec![
            rec(&format!(
                concat!(
                    r#"{{"id":"a.en","status":"ok","source_lang":"en","summaries":"#,
                    r#"{{"en":{{"text":"{EN1}","status":"ok"}},"es":{{"text":"{ES1}","status":"ok"}}}}}}"#
                ),
                EN1 = EN1,
                ES1 = ES1
            )),
            rec(concat!(
                r#"{"id":"a.es","status":"ok","source_lang":"es","summaries":"#,
                r#"{"en":{"text":null,"status":"failed","error":"model stopped"},"#,
                r#""es":{"text":"El consejo aprobó el presupuesto.","status":"ok"}}}"#,
            )),
        ];
        let fake = Fake {
            map: vec![
                (EN1, "El consejo aprobó el presupuesto de 2026 con 65 votos."),
                (ES1, "The council approved the 2026 budget with sixty-five votes."),
                ("El consejo aprobó el presupuesto.", "The council approved the budget."),
            ],
            calls: Mutex::new(vec![]),
        };
        let r = build("out", &records, Some(&fake), vec![], false);
        let calls = fake.calls.lock().unwrap();
        assert_eq!(calls.len(), 2, "one generate call per article");
        assert_eq!(calls[0].len(), 2);
        assert_eq!((calls[0][0].from.code(), calls[0][1].from.code()), ("en", "es"));
        assert_eq!(calls[1].len(), 1, "no job for the failed summary");

        let a = &r.articles[0];
        let c = a.check.as_ref().unwrap();
        assert_eq!(c.scores.len(), 2);
        assert!(c.scores.iter().all(|s| s.chrf > 35.0), "{:?}", c.scores);
        assert_eq!(a.verdict, Verdict::Consistent, "{:?}", a.reasons);

        let b = &r.articles[1];
        assert_eq!(b.verdict, Verdict::Check);
        assert_eq!(b.reasons, vec!["EN summary failed: model stopped"]);
        assert!(b.check.is_none());

        // The two files are one story: the native pair and the ES/ES cross-pair are compared; the EN/EN one
        // cannot be, and says why.
        assert_eq!(r.stories.len(), 1);
        let s = &r.stories[0];
        assert_eq!(s.checks.len(), 2);
        assert_eq!(s.checks[0].left.label, "EN of EN article");
        assert_eq!(s.checks[0].right.label, "ES of ES article");
        assert!(
            s.reasons.contains(&"EN of ES article: EN summary failed: model stopped".to_string()),
            "{:?}",
            s.reasons
        );
        assert!(s.reasons.iter().any(|x| x == "number 2026 only in EN of EN article"), "{:?}", s.reasons);
        assert_eq!(s.verdict, Verdict::Check);
        assert!(r.any_check());

        // With scores, the HTML page has the chart: two bars for the first article, two for the story.
        let page = render::html(&r).unwrap();
        assert_eq!(page.matches("<rect class=").count(), 4, "{page}");
        assert!(page.contains("<title>ES→EN "));
        assert!(page.contains("mean ES→EN chrF"));
        let table = render::terminal(&r, false, 100);
        assert!(table.contains("ES→EN") && !table.contains('\x1b'));
        assert!(render::terminal(&r, true, 100).contains("\x1b[1;33mcheck"));
    }

    #[test]
    fn translation_failure_is_a_reason_not_a_crash() {
        let records = vec![rec(&format!(
            concat!(
                r#"{{"id":"x","status":"ok","summaries":"#,
                r#"{{"en":{{"text":"{EN1}","status":"ok"}},"es":{{"text":"{ES1}","status":"ok"}}}}}}"#
            ),
            EN1 = EN1,
            ES1 = ES1
        ))];
        let fake = Fake { map: vec![], calls: Mutex::new(vec![]) };
        let r = build("out", &records, Some(&fake), vec![], false);
        assert_eq!(r.articles[0].verdict, Verdict::Check);
        assert!(
            r.articles[0].reasons[0].starts_with("back-translation failed: no translation for"),
            "{:?}",
            r.articles[0].reasons
        );
    }
}
