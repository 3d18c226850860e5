//! Repair, never hide: an unsupported sentence is rewritten with its evidence in view and checked again;
//! still unsupported, it is dropped when another sentence of the text stands, else replaced by its best
//! evidence sentence (translated when the text is in another language than the article). What none of
//! that fixes stays, flagged.
//!
//! A sentence of a translated summary whose source sentence passed is a slip of the translation, not a
//! fact the summary made up: it is translated again from that sentence alone, and if the new translation
//! fails too it stays as it was, flagged, never dropped or replaced, so that the two languages keep telling
//! the same facts. Such a sentence is also translated again when it passed but lost a name or number of
//! its source sentence; the new one is kept when it passes and loses fewer.

use anyhow::Result;

use crate::backend::{Generator, Request};
use crate::job::record::{SentenceSupport, Verdict};
use crate::text::clean;
use crate::text::lang::{self, Lang};
use crate::text::mbr::Kept;
use crate::text::split;
use crate::verify::{check, Claim, Settings, Source};

/// Tokens a rewritten sentence may take.
const MAX_SENTENCE_TOKENS: usize = 96;

/// A checked text after repair.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Repaired {
    /// The final sentences, in order, each with its support.
    pub(crate) support: Vec<SentenceSupport>,
    pub(crate) repaired: usize,
    /// The sentences taken out because they failed while the rest stood, with their support: kept so a
    /// reader can see what the check removed.
    pub(crate) dropped: Vec<SentenceSupport>,
}

impl Repaired {
    /// The final text: its sentences joined.
    pub(crate) fn text(&self) -> String {
        self.support.iter().map(|s| s.text.as_str()).collect::<Vec<_>>().join(" ")
    }
}

/// The rewrite prompt: the evidence, the sentence, and what to do, in English (the models follow English
/// instructions best) with the language to write named.
fn rewrite_prompt(evidence: &str, sentence: &str, lang: Lang) -> crate::backend::Prompt {
    let user = format!(
        "Sentences from a news article:\n<text>\n{}\n</text>\n\nThis summary sentence says something the article \
         does not: \"{}\"\n\nRewrite it in {} so that it says only what the article sentences above say, keeping \
         who did what exactly as they tell it. Write only the one rewritten sentence.",
        crate::prompt::defuse(evidence),
        crate::prompt::defuse(sentence),
        lang.english_name()
    );
    crate::backend::Prompt::chat("You correct summaries so that they state only facts from the article.", user)
}

/// The first sentence of a model's answer, cleaned.
fn first_sentence(answer: &str) -> Option<String> {
    let (cleaned, _) = clean::clean(answer, &crate::prompt::translation_labels());
    first_of(&cleaned)
}

/// The first sentence of a text already cleaned, if it has a few letters.
fn first_of(text: &str) -> Option<String> {
    let s = split::sentences(text).first()?.trim().trim_matches('"').to_string();
    (s.chars().filter(|c| c.is_alphabetic()).count() >= 3).then_some(s)
}

/// How much longer than the other a sentence and its translation may be. The sentences of a text and its
/// translation are paired by position; where the translation merged one pair of sentences and split
/// another, the counts still agree but the pairs do not, and the lengths tell.
const TRANSLATION_LENGTH_RATIO: f64 = 2.0;

/// Whether `a` and `b` are alike enough in length to be one sentence in two languages.
fn like_in_length(a: &str, b: &str) -> bool {
    let (la, lb) = (a.chars().count().max(1) as f64, b.chars().count().max(1) as f64);
    la.max(lb) / la.min(lb) <= TRANSLATION_LENGTH_RATIO
}

/// Whether a sentence that cannot be rewritten may go: yes in a summary, never in a translation (which
/// must keep every sentence of its source).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Drop {
    Allowed,
    Never,
}

/// Repair the unsupported sentences of `checked` (the support of a text in `lang`): one rewrite each,
/// all in one batched call, checked again in one call; then drop (when `drop` allows and another sentence
/// stands) or replace by the evidence what still fails. `pivot`: for a text translated sentence for
/// sentence from a checked one (written in the article's language), that one's final support; a sentence
/// whose source sentence passed is translated again instead of rewritten, and kept rather than dropped or
/// replaced (see the module's documentation).
pub(crate) fn repair(
    source: &Source<'_>,
    checked: Vec<SentenceSupport>,
    lang: Lang,
    drop: Drop,
    pivot: Option<&[SentenceSupport]>,
    settings: &Settings,
    gen: &dyn Generator,
) -> Result<Repaired> {
    let mut support = checked;
    // Each sentence's source sentence, where it passed and can be this sentence's source.
    let pivot = pivot.filter(|p| p.len() == support.len());
    let sources: Vec<Option<&SentenceSupport>> = (0..support.len())
        .map(|i| {
            pivot
                .map(|p| &p[i])
                .filter(|p| p.verdict == Verdict::Supported && like_in_length(&p.text, &support[i].text))
        })
        .collect();
    let kept: Vec<Option<Kept>> = sources.iter().map(|p| p.map(|p| Kept::new(&p.text, source.lang))).collect();
    let lost = |i: usize, text: &str| kept[i].as_ref().map_or(0, |k| k.lost(text, lang));
    let lost_before: Vec<usize> = (0..support.len()).map(|i| lost(i, &support[i].text)).collect();
    let failing: Vec<usize> =
        (0..support.len()).filter(|&i| support[i].verdict == Verdict::Unsupported || lost_before[i] > 0).collect();
    if failing.is_empty() {
        return Ok(Repaired { support, repaired: 0, dropped: vec![] });
    }
    let evidence_text = |s: &SentenceSupport| -> String {
        let ev: Vec<&str> = s.evidence.iter().filter_map(|&i| source.sentences.get(i).copied()).collect();
        if ev.is_empty() {
            source.sentences.iter().take(3).copied().collect::<Vec<_>>().join(" ")
        } else {
            ev.join(" ")
        }
    };

    // 1. Rewrite with the evidence in view, or translate again from a source sentence that passed.
    let requests: Vec<Request> = failing
        .iter()
        .map(|&i| {
            let prompt = match sources[i] {
                Some(p) => crate::prompt::translate(&p.text, lang).chat(),
                None => rewrite_prompt(&evidence_text(&support[i]), &support[i].text, lang),
            };
            let mut r = Request::greedy(prompt, MAX_SENTENCE_TOKENS);
            r.stop_strings = vec!["\n\n".into()];
            r
        })
        .collect();
    let (gens, _) = gen.generate(&requests)?;
    // A rewrite in another language than the text's is no repair.
    let rewrites: Vec<(usize, String)> = failing
        .iter()
        .zip(&gens)
        .filter_map(|(&i, g)| Some((i, first_sentence(&g.text)?)))
        .filter(|(_, t)| lang::detect(t).is_none_or(|l| l == lang))
        .collect();
    let claims: Vec<Claim> = rewrites
        .iter()
        .map(|(i, t)| Claim {
            text: t.clone(),
            lang,
            evidence: Some(support[*i].evidence.clone()).filter(|e| !e.is_empty()),
        })
        .collect();
    let rechecked = check(source, &claims, settings, gen)?;
    let mut repaired = 0;
    for ((i, _), mut s) in rewrites.iter().zip(rechecked) {
        if s.verdict != Verdict::Supported {
            continue;
        }
        if support[*i].verdict == Verdict::Unsupported {
            s.repaired = true;
            support[*i] = s;
            repaired += 1;
        } else if lost(*i, &s.text) < lost_before[*i] {
            support[*i] = s;
        }
    }

    // 2. Drop what still fails while something stands; else 3. put the evidence in its place. A sentence
    // whose source sentence passed is neither: dropped or replaced, it would leave the two languages
    // telling different facts, so it stays as translated, flagged.
    let stands = support.iter().any(|s| s.verdict == Verdict::Supported);
    let mut dropped = Vec::new();
    if stands && drop == Drop::Allowed {
        let (stay, gone): (Vec<_>, Vec<_>) = support
            .into_iter()
            .enumerate()
            .partition(|(i, s)| s.verdict == Verdict::Supported || sources[*i].is_some());
        support = stay.into_iter().map(|(_, s)| s).collect();
        dropped = gone.into_iter().map(|(_, s)| s).collect();
    } else {
        let mut replacements = Vec::new();
        for (i, s) in
            support.iter().enumerate().filter(|(i, s)| s.verdict == Verdict::Unsupported && sources[*i].is_none())
        {
            if let Some(&best) = s.evidence.first() {
                replacements.push((i, best, source.sentences[best].to_string()));
            }
        }
        let texts = if lang == source.lang {
            replacements.iter().map(|(_, _, t)| Some(t.clone())).collect::<Vec<_>>()
        } else {
            let sources: Vec<&str> = replacements.iter().map(|(_, _, t)| t.as_str()).collect();
            // The replacement stands for one sentence, so only the translation's first is kept.
            super::translate_sentences(&sources, lang, gen)?.into_iter().map(|t| t.and_then(|t| first_of(&t))).collect()
        };
        let claims: Vec<(usize, Claim)> = replacements
            .iter()
            .zip(texts)
            .filter_map(|((i, best, _), t)| Some((*i, Claim { text: t?, lang, evidence: Some(vec![*best]) })))
            .collect();
        let only: Vec<Claim> = claims.iter().map(|(_, c)| c.clone()).collect();
        // Only a replacement that passes its own check takes the sentence's place.
        for ((i, _), mut s) in claims.iter().zip(check(source, &only, settings, gen)?) {
            if s.verdict == Verdict::Supported {
                s.repaired = true;
                support[*i] = s;
                repaired += 1;
            }
        }
    }
    Ok(Repaired { support, repaired, dropped })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::FakeGenerator;
    use crate::job::record::Check;

    const TEXT: &str = "An unknown attacker shot a man with an air rifle in Ilfracombe. Police called it a random act.";

    /// A rewrite or translation that invents again.
    const INVENTED: &str = "The police shot the man in Barnstaple.";

    /// The scripted judge, with every generation answering `text`.
    fn answering(text: &str) -> FakeGenerator {
        FakeGenerator { fixed_answer: Some(text.into()), ..FakeGenerator::parse("fake").unwrap().unwrap() }
    }

    fn checked(g: &dyn Generator, source: &Source<'_>) -> (Vec<Claim>, Vec<SentenceSupport>) {
        let claims = vec![
            Claim::new("An attacker shot a man with an air rifle in Ilfracombe.", Lang::En),
            Claim::new("Police officers shot the man in Barnstaple.", Lang::En),
        ];
        let checked = check(source, &claims, &Settings::default(), g).unwrap();
        assert_eq!((checked[0].verdict, checked[1].verdict), (Verdict::Supported, Verdict::Unsupported));
        (claims, checked)
    }

    #[test]
    fn a_faithful_rewrite_repairs_the_sentence() {
        let g = FakeGenerator::parse("fake").unwrap().unwrap();
        let source = Source::new(None, TEXT, Lang::En);
        let (_, checked) = checked(&g, &source);
        let r = repair(&source, checked.clone(), Lang::En, Drop::Allowed, None, &Settings::default(), &g).unwrap();
        assert_eq!((r.support.len(), r.dropped.len(), r.repaired), (2, 0, 1), "{r:?}");
        assert!(r.support[1].repaired && r.support[1].verdict == Verdict::Supported, "{r:?}");
        assert_eq!(r.support[0], checked[0]);
    }

    #[test]
    fn an_unrepairable_sentence_is_dropped_when_the_rest_stands_else_replaced_by_its_evidence() {
        let g = answering(INVENTED);
        let source = Source::new(None, TEXT, Lang::En);
        let settings = Settings::default();
        let (claims, checked) = checked(&g, &source);
        let r = repair(&source, checked.clone(), Lang::En, Drop::Allowed, None, &settings, &g).unwrap();
        assert_eq!((r.support.len(), r.dropped.len(), r.repaired), (1, 1, 0), "{r:?}");
        assert_eq!(r.text(), claims[0].text);
        // The dropped sentence is kept aside as written, with why it failed.
        assert_eq!(r.dropped[0], checked[1]);
        assert_eq!(r.dropped[0].verdict, Verdict::Unsupported);
        // Alone, it is replaced by its best evidence sentence.
        let r = repair(&source, checked[1..].to_vec(), Lang::En, Drop::Allowed, None, &settings, &g).unwrap();
        assert_eq!((r.support.len(), r.dropped.len(), r.repaired), (1, 0, 1), "{r:?}");
        assert!(r.support[0].repaired && r.support[0].verdict == Verdict::Supported, "{r:?}");
        assert!(source.sentences.contains(&r.support[0].text.as_str()));
        assert!(!r.support[0].failed_checks.contains(&Check::Model));
        // A translation keeps every sentence: the failing one is replaced, not dropped.
        let r = repair(&source, checked.clone(), Lang::En, Drop::Never, None, &settings, &g).unwrap();
        assert_eq!((r.support.len(), r.dropped.len(), r.repaired), (2, 0, 1), "{r:?}");
        assert_eq!(r.support[0], checked[0]);
        assert!(source.sentences.contains(&r.support[1].text.as_str()));
    }

    #[test]
    fn a_translated_sentence_whose_source_passed_stays_flagged_when_its_new_translation_fails_too() {
        let g = answering(INVENTED);
        let source = Source::new(None, TEXT, Lang::En);
        let settings = Settings::default();
        let (_, checked) = checked(&g, &source);
        let mut pivot = checked.clone();
        pivot[1] = SentenceSupport { text: "Somebody shot a man in Ilfracombe.".into(), ..checked[0].clone() };
        let r = repair(&source, checked.clone(), Lang::En, Drop::Allowed, Some(&pivot), &settings, &g).unwrap();
        assert_eq!((r.support.len(), r.dropped.len(), r.repaired), (2, 0, 0), "{r:?}");
        assert_eq!(r.support, checked);
        // Without a source sentence that passed, the same sentence is dropped.
        pivot[1].verdict = Verdict::Unsupported;
        let r = repair(&source, checked.clone(), Lang::En, Drop::Allowed, Some(&pivot), &settings, &g).unwrap();
        assert_eq!((r.support.len(), r.dropped.len()), (1, 1), "{r:?}");
    }

    #[test]
    fn a_translated_sentence_that_lost_a_name_of_its_source_is_translated_again() {
        let source = Source::new(None, TEXT, Lang::En);
        let settings = Settings::default();
        let claims = [
            Claim::new("An attacker shot a man with an air rifle.", Lang::En),
            Claim::new("Police called it a random act.", Lang::En),
        ];
        let with_name = "An attacker shot a man with an air rifle in Ilfracombe.";
        let mut pivot = None;
        for (answer, kept) in
            [("Someone shot a man with an air rifle.", claims[0].text.as_str()), (with_name, with_name)]
        {
            let g = answering(answer);
            let checked = check(&source, &claims, &settings, &g).unwrap();
            assert!(checked.iter().all(|s| s.verdict == Verdict::Supported), "{checked:?}");
            let p = pivot.get_or_insert_with(|| {
                let mut p = checked.clone();
                p[0].text = with_name.into();
                p
            });
            let r = repair(&source, checked.clone(), Lang::En, Drop::Allowed, Some(p), &settings, &g).unwrap();
            assert_eq!((r.support.len(), r.dropped.len(), r.repaired), (2, 0, 0), "{r:?}");
            assert_eq!(r.support[1], checked[1]);
            assert_eq!(r.support[0].text, kept, "{answer}");
            assert_eq!(r.support[0].verdict, Verdict::Supported);
        }
    }

    #[test]
    fn a_translated_sentence_whose_source_passed_is_translated_again() {
        let source = Source::new(None, TEXT, Lang::En);
        let settings = Settings::default();
        let faithful = "An attacker shot a man with an air rifle in Ilfracombe.";
        let g = answering(faithful);
        let (_, checked) = checked(&g, &source);
        // The text it was translated from: both sentences passed, so the second is a slip of translation.
        let mut pivot = checked.clone();
        pivot[1] = SentenceSupport { text: "Somebody shot a man in Ilfracombe.".into(), ..checked[0].clone() };
        let r = repair(&source, checked.clone(), Lang::En, Drop::Allowed, Some(&pivot), &settings, &g).unwrap();
        assert_eq!((r.support.len(), r.dropped.len(), r.repaired), (2, 0, 1), "{r:?}");
        assert_eq!(r.support[1].text, faithful);
        let asked = std::mem::take(&mut *g.prompted.lock().unwrap());
        let rewrite = "says something the article does not";
        assert!(asked.iter().any(|p| p.contains("Somebody shot a man in Ilfracombe.") && p.contains("into English")));
        assert!(!asked.iter().any(|p| p.contains(rewrite)), "{asked:?}");
        // A source sentence that failed too, or one that cannot be this sentence's source (the translation
        // merged and split sentences, so the pairs by position are off): rewritten from the evidence.
        let merged = "Somebody shot a man in Ilfracombe, and the police, who came at once, called it a random act.";
        for source_sentence in [
            SentenceSupport { verdict: Verdict::Unsupported, ..pivot[1].clone() },
            SentenceSupport { text: merged.into(), ..pivot[1].clone() },
        ] {
            pivot[1] = source_sentence;
            repair(&source, checked.clone(), Lang::En, Drop::Allowed, Some(&pivot), &settings, &g).unwrap();
            let asked = std::mem::take(&mut *g.prompted.lock().unwrap());
            assert!(asked.iter().any(|p| p.contains(rewrite)), "{asked:?}");
            assert!(!asked.iter().any(|p| p.contains("into English")), "{asked:?}");
        }
    }
}
