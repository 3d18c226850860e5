//! Faithfulness: every sentence of a summary or translation checked against the article, with its
//! evidence, then repaired or flagged.
//!
//! sentence → evidence (`align`: the article sentences that say the most of it) → hard checks (`checks`:
//! numbers, dates, names, negation, actor) → the model's judgment over the evidence (`judge`: log-
//! probabilities of Yes / No / Not stated) → verdict; unsupported sentences go to `repair` (rewritten with
//! their evidence in view, else dropped, else replaced by their evidence). A claim in another language than
//! the article's is aligned through the sentence it was translated from when there is one, else through
//! cognates, numbers and names, and judged by the model across the two languages.

pub(crate) mod align;
pub(crate) mod checks;
pub(crate) mod judge;
pub(crate) mod repair;

use anyhow::Result;

use crate::backend::Generator;
use crate::job::record::{round3, Check, SentenceSupport, Verdict};
use crate::text::lang::Lang;
use crate::text::split;

pub(crate) use judge::Form;

/// What a run does with the checks (`--verify`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Mode {
    /// No check: the output of a run without them.
    Off,
    /// Check and record every sentence's support; change nothing.
    Flag,
    /// Check, then repair what fails (rewrite, else drop, else replace by the evidence); flag the rest.
    #[default]
    Fix,
}

impl std::str::FromStr for Mode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "off" => Ok(Mode::Off),
            "flag" => Ok(Mode::Flag),
            "fix" => Ok(Mode::Fix),
            other => Err(format!("invalid --verify {other:?}: use off, flag or fix")),
        }
    }
}

impl Mode {
    /// The part of the state key that tells the modes' outputs apart; `off` keeps the key of a run
    /// without checks, so its earlier results stay valid.
    pub(crate) fn key_suffix(self) -> &'static str {
        match self {
            Mode::Off => "",
            Mode::Flag => "+vflag",
            Mode::Fix => "+vfix",
        }
    }
}

/// How claims are judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    pub(crate) form: Form,
    /// A sentence whose "yes" probability is below this is unsupported.
    pub(crate) threshold: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings { form: Form::default(), threshold: DEFAULT_THRESHOLD }
    }
}

/// The "yes" probability below which the model's judgment fails a sentence (chosen on dev data: see
/// docs/EVAL.md).
pub(crate) const DEFAULT_THRESHOLD: f64 = 0.5;

/// Sentences whose evidence one call judges at most: more would make the shared text long, and the
/// questions read it all.
const MAX_CONTEXT_SENTENCES: usize = 12;

/// A claim's top sentence must cover this share of it before a polarity difference counts as negation.
const NEGATION_OVERLAP: f64 = 0.5;

/// The article as checks see it: its sentences (title first), indexed as `evidence` refers to them.
pub(crate) struct Source<'a> {
    pub(crate) text: String,
    pub(crate) lang: Lang,
    pub(crate) sentences: Vec<&'a str>,
}

impl<'a> Source<'a> {
    /// `title` (when the text does not start with it) and the sentences of every paragraph of `text`.
    pub(crate) fn new(title: Option<&'a str>, text: &'a str, lang: Lang) -> Self {
        let mut sentences: Vec<&'a str> = Vec::new();
        if let Some(t) = title.map(str::trim).filter(|t| !t.is_empty() && !text.trim_start().starts_with(*t)) {
            sentences.push(t);
        }
        for p in split::paragraphs(text).0 {
            sentences.extend(split::sentences(p));
        }
        Source { text: format!("{}\n{}", title.unwrap_or(""), text), lang, sentences }
    }
}

/// A sentence to check.
#[derive(Debug, Clone)]
pub(crate) struct Claim {
    pub(crate) text: String,
    pub(crate) lang: Lang,
    /// Where its evidence is, when known (the evidence of the sentence it was translated from, the source
    /// paragraph of a translated sentence): ranked and used instead of aligning over the whole article.
    pub(crate) evidence: Option<Vec<usize>>,
}

impl Claim {
    pub(crate) fn new(text: impl Into<String>, lang: Lang) -> Self {
        Claim { text: text.into(), lang, evidence: None }
    }
}

/// Every claim checked against `source`: evidence, hard checks, and the model's judgment, in order.
pub(crate) fn check(
    source: &Source<'_>,
    claims: &[Claim],
    settings: &Settings,
    gen: &dyn Generator,
) -> Result<Vec<SentenceSupport>> {
    let article = checks::Article::new(&source.text, source.lang, &source.sentences);
    let mut out: Vec<SentenceSupport> = Vec::with_capacity(claims.len());
    let mut indexes: Vec<(Lang, align::Index)> = Vec::new();
    for c in claims {
        if !indexes.iter().any(|(l, _)| *l == c.lang) {
            indexes.push((c.lang, align::Index::new(&source.sentences, source.lang, c.lang)));
        }
        let index = &indexes.iter().find(|(l, _)| *l == c.lang).expect("just added").1;
        // A given evidence (the pivot's, a translation's source paragraph) is ranked and cut like an aligned one.
        let evidence = match c.evidence.as_ref().filter(|e| !e.is_empty()) {
            Some(given) => {
                let mut ranked: Vec<(usize, f64)> =
                    given.iter().map(|&i| (i, index.overlap(&c.text, c.lang, i))).collect();
                ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                ranked.into_iter().take(align::MAX_EVIDENCE).map(|(i, _)| i).collect()
            }
            None => index.evidence(&c.text, c.lang).0,
        };
        let top = evidence
            .iter()
            .copied()
            .map(|i| (i, index.overlap(&c.text, c.lang, i)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .filter(|(_, o)| *o >= NEGATION_OVERLAP)
            .map(|(i, _)| i);
        let failed_checks = checks::run(&c.text, c.lang, &article, &evidence, top);
        out.push(SentenceSupport {
            text: c.text.clone(),
            verdict: Verdict::Supported,
            score: 0.0,
            evidence,
            failed_checks,
            repaired: false,
        });
    }
    // The model, over groups of claims whose evidence together stays short.
    let mut start = 0;
    while start < out.len() {
        let mut end = start;
        let mut union: Vec<usize> = Vec::new();
        while end < out.len() {
            let mut next = union.clone();
            next.extend(context_of(&out[end].evidence, source.sentences.len()));
            next.sort_unstable();
            next.dedup();
            if end > start && next.len() > MAX_CONTEXT_SENTENCES {
                break;
            }
            union = next;
            end += 1;
        }
        let context = union.iter().map(|&i| source.sentences[i]).collect::<Vec<_>>().join(" ");
        let texts: Vec<&str> = out[start..end].iter().map(|s| s.text.as_str()).collect();
        let scores = judge::score(gen, settings.form, &context, &texts)?;
        for (s, p) in out[start..end].iter_mut().zip(scores) {
            s.score = round3(p);
            if p < settings.threshold {
                s.failed_checks.push(Check::Model);
            }
        }
        start = end;
    }
    for s in &mut out {
        s.verdict = if s.failed_checks.is_empty() { Verdict::Supported } else { Verdict::Unsupported };
    }
    Ok(out)
}

/// The sentences a claim is judged over: its evidence, or the article's lead when nothing aligned (a
/// claim in another language with no shared word still gets a text to be judged against).
fn context_of(evidence: &[usize], n: usize) -> Vec<usize> {
    if evidence.is_empty() {
        (0..n.min(align::MAX_EVIDENCE)).collect()
    } else {
        evidence.to_vec()
    }
}

/// A summary's sentences as claims in `lang`; when `pivot` holds the checked sentences it was translated
/// from, sentence for sentence, each takes its pivot's evidence.
pub(crate) fn claims_of(text: &str, lang: Lang, pivot: Option<&[SentenceSupport]>) -> Vec<Claim> {
    let sentences = split::sentences(text);
    let pivot = pivot.filter(|p| p.len() == sentences.len());
    sentences
        .iter()
        .enumerate()
        .map(|(i, s)| Claim { text: s.to_string(), lang, evidence: pivot.map(|p| p[i].evidence.clone()) })
        .collect()
}

/// The sentences still unsupported, for the Markdown's "Check:" line and the flags.
pub(crate) fn unsupported(support: &[SentenceSupport]) -> impl Iterator<Item = &SentenceSupport> {
    support.iter().filter(|s| s.verdict == Verdict::Unsupported)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::FakeGenerator;

    const ARTICLE: &str = "An unknown attacker shot a man several times with an air rifle in Ilfracombe.\n\n\
        The victim, a man in his forties, was walking home on Saturday night. Police called the shooting a random act.";

    #[test]
    fn supported_and_invented_claims() {
        let g = FakeGenerator::parse("fake").unwrap().unwrap();
        let source = Source::new(Some("Man shot in Ilfracombe"), ARTICLE, Lang::En);
        assert_eq!(source.sentences.len(), 4);
        let claims = [
            Claim::new("An attacker shot a man with an air rifle in Ilfracombe.", Lang::En),
            Claim::new("Police officers shot a man with an air rifle in Ilfracombe.", Lang::En),
            Claim::new("The victim, in his forties, was shot on Monday in Barnstaple.", Lang::En),
        ];
        let s = check(&source, &claims, &Settings::default(), &g).unwrap();
        assert_eq!(s[0].verdict, Verdict::Supported, "{:?}", s[0]);
        assert!(s[0].evidence.contains(&1), "{:?}", s[0]);
        assert_eq!(s[1].verdict, Verdict::Unsupported);
        assert!(s[1].failed_checks.contains(&Check::Actor), "{:?}", s[1]);
        assert!(s[1].failed_checks.contains(&Check::Model), "{:?}", s[1]);
        assert!(s[2].failed_checks.contains(&Check::Date) && s[2].failed_checks.contains(&Check::Name), "{:?}", s[2]);
    }

    #[test]
    fn a_translation_takes_its_pivots_evidence() {
        let pivot = vec![SentenceSupport {
            text: "A.".into(),
            verdict: Verdict::Supported,
            score: 1.0,
            evidence: vec![2],
            failed_checks: vec![],
            repaired: false,
        }];
        let c = claims_of("Un hombre fue herido.", Lang::Es, Some(&pivot));
        assert_eq!(c[0].evidence, Some(vec![2]));
        assert_eq!(claims_of("Uno. Dos.", Lang::Es, Some(&pivot))[0].evidence, None);
    }
}
