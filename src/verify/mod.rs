//! Faithfulness: every sentence of a summary or translation checked against the article, with its
//! evidence, then repaired or flagged.
//!
//! sentence → evidence (`align`: the article sentences that say the most of it) → hard checks (`checks`:
//! numbers, dates, names, negation, actor) → the model's judgment over the evidence (`judge`: log-
//! probabilities of Yes / No / Not stated) → verdict; unsupported sentences go to `repair` (rewritten with
//! their evidence in view, else dropped, else replaced by their evidence). A claim in another language than
//! the article's is first translated back into the article's language by the model (`Crossing`), then
//! checked like the article's own, and judged both as translated back and as written; the evidence of the
//! sentence it was translated from, when known, is ranked before any other.

pub(crate) mod align;
pub(crate) mod checks;
pub(crate) mod judge;
pub(crate) mod repair;

use anyhow::Result;

use crate::backend::{Generator, Request};
use crate::job::record::{round3, Check, SentenceSupport, Verdict};
use crate::text::clean;
use crate::text::lang::{self, Lang};
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

/// How a claim in another language than the article's is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Crossing {
    /// Translated back into the article's language by the model, then aligned, checked and judged within
    /// that one language: a small model judges a sentence against text in another language poorly, and a
    /// mistranslated word ("mano" for the man who was shot) shows up as the word it really says.
    BackTranslate,
    /// Checked as written, across the two languages: evidence by cognates, numbers and names, the model
    /// reading both languages at once.
    Direct,
    /// Translated back as with `BackTranslate`, then the model judges both the back-translation and the
    /// claim as written over the same evidence, and the mean of the two "yes" probabilities decides: a
    /// back-translation that adds an error of its own, or a cross-language reading that misses one, is
    /// outweighed by the other reading.
    #[default]
    Both,
}

impl std::str::FromStr for Crossing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "back-translate" => Ok(Crossing::BackTranslate),
            "direct" => Ok(Crossing::Direct),
            "both" => Ok(Crossing::Both),
            other => Err(format!("invalid cross-language check {other:?}: use back-translate, direct or both")),
        }
    }
}

/// What text the model reads when it judges a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Context {
    /// The claim's evidence sentences (several claims' together, up to a few sentences): short, but a
    /// summary sentence that joins facts from far apart in the article has part of its support missing.
    #[default]
    Evidence,
    /// The whole article, shared by every question about it and so computed once, when it fits the
    /// model's budget for it; a longer article falls back to the evidence.
    Article,
}

impl std::str::FromStr for Context {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "evidence" => Ok(Context::Evidence),
            "article" => Ok(Context::Article),
            other => Err(format!("invalid judge context {other:?}: use evidence or article")),
        }
    }
}

/// How claims are judged.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Settings {
    pub(crate) form: Form,
    /// A sentence whose "yes" probability is below this is unsupported.
    pub(crate) threshold: f64,
    pub(crate) crossing: Crossing,
    pub(crate) context: Context,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            form: Form::default(),
            threshold: DEFAULT_THRESHOLD,
            crossing: Crossing::default(),
            context: Context::default(),
        }
    }
}

/// Tokens of article the model reads whole with `Context::Article`: past this, the questions would cost
/// more than the summary did, and a small model's attention spreads thin.
const MAX_ARTICLE_CONTEXT_TOKENS: usize = 1536;

/// The "yes" probability below which the model's judgment fails a sentence (chosen on dev data: see
/// docs/EVAL.md).
pub(crate) const DEFAULT_THRESHOLD: f64 = 0.5;

/// Sentences whose evidence one call judges at most: more would make the shared text long, and the
/// questions read it all.
const MAX_CONTEXT_SENTENCES: usize = 12;

/// A claim's top sentence must cover this share of it before a polarity difference counts as negation:
/// only a claim that otherwise repeats the sentence is read as negating it; a paraphrase's "not" often
/// belongs to another clause (chosen on the real dev claims: see docs/EVAL.md).
const NEGATION_OVERLAP: f64 = 0.8;

/// The article as checks see it: its sentences (title first), indexed as `evidence` refers to them.
pub(crate) struct Source<'a> {
    pub(crate) text: String,
    pub(crate) lang: Lang,
    pub(crate) sentences: Vec<&'a str>,
}

impl<'a> Source<'a> {
    /// `title` (unless it was taken from the text's start: `split::title_opens`) and the sentences of every
    /// paragraph of `text`.
    pub(crate) fn new(title: Option<&'a str>, text: &'a str, lang: Lang) -> Self {
        let mut sentences: Vec<&'a str> = Vec::new();
        if let Some(t) = title.map(str::trim).filter(|t| !t.is_empty() && !split::title_opens(t, text)) {
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
    let back = back_translations(claims, source.lang, settings.crossing, gen)?;
    // What the checks read: the back-translation where there is one, else the claim as written.
    let read: Vec<Claim> = claims
        .iter()
        .zip(&back)
        .map(|(c, b)| match b {
            Some(t) => Claim { text: t.clone(), lang: source.lang, evidence: c.evidence.clone() },
            None => c.clone(),
        })
        .collect();
    let mut out: Vec<SentenceSupport> = Vec::with_capacity(claims.len());
    let mut indexes: Vec<(Lang, align::Index)> = Vec::new();
    for c in &read {
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
            checked_as: None,
        });
    }
    let whole = settings.context == Context::Article
        && gen.count_tokens_or_estimate(&source.text) <= MAX_ARTICLE_CONTEXT_TOKENS;
    let groups = if whole { vec![(0..out.len(), source.sentences.join(" "))] } else { evidence_groups(&out, source) };
    // With `Crossing::Both`, the claim as written, asked beside its back-translation.
    let originals: Vec<Option<&str>> = claims
        .iter()
        .zip(&back)
        .map(|(c, b)| (settings.crossing == Crossing::Both && b.is_some()).then_some(c.text.as_str()))
        .collect();
    for (range, context) in groups {
        let second: Vec<usize> = range.clone().filter(|&i| originals[i].is_some()).collect();
        let texts: Vec<&str> = out[range.clone()]
            .iter()
            .map(|s| s.text.as_str())
            .chain(second.iter().filter_map(|&i| originals[i]))
            .collect();
        let scores = judge::score(gen, settings.form, &context, &texts)?;
        let (own, as_written) = scores.split_at(range.len());
        for (i, (s, &p)) in range.clone().zip(out[range].iter_mut().zip(own)) {
            let p = match second.iter().position(|&j| j == i) {
                Some(k) => (p + as_written[k]) / 2.0,
                None => p,
            };
            s.score = round3(p);
            if p < settings.threshold {
                s.failed_checks.push(Check::Model);
            }
        }
    }
    for ((s, c), b) in out.iter_mut().zip(claims).zip(back) {
        s.verdict = if s.failed_checks.is_empty() { Verdict::Supported } else { Verdict::Unsupported };
        s.text = c.text.clone();
        s.checked_as = b;
    }
    Ok(out)
}

/// Runs of consecutive claims whose evidence together stays short, each with the text of that evidence:
/// one judge call per run, its questions sharing the text.
fn evidence_groups(claims: &[SentenceSupport], source: &Source<'_>) -> Vec<(std::ops::Range<usize>, String)> {
    let mut groups = Vec::new();
    let mut start = 0;
    while start < claims.len() {
        let mut end = start;
        let mut union: Vec<usize> = Vec::new();
        while end < claims.len() {
            let mut next = union.clone();
            next.extend(context_of(&claims[end].evidence, source.sentences.len()));
            next.sort_unstable();
            next.dedup();
            if end > start && next.len() > MAX_CONTEXT_SENTENCES {
                break;
            }
            union = next;
            end += 1;
        }
        let context = union.iter().map(|&i| source.sentences[i]).collect::<Vec<_>>().join(" ");
        groups.push((start..end, context));
        start = end;
    }
    groups
}

/// For each claim in another language than `to` (unless `Crossing::Direct`), the model's translation
/// of it into `to`; `None` for a claim already in `to` or not translated (it is then checked as written).
fn back_translations(
    claims: &[Claim],
    to: Lang,
    crossing: Crossing,
    gen: &dyn Generator,
) -> Result<Vec<Option<String>>> {
    let mut out: Vec<Option<String>> = vec![None; claims.len()];
    let todo: Vec<usize> = (0..claims.len()).filter(|&i| claims[i].lang != to).collect();
    if crossing == Crossing::Direct || todo.is_empty() {
        return Ok(out);
    }
    let texts: Vec<&str> = todo.iter().map(|&i| claims[i].text.as_str()).collect();
    for (&i, t) in todo.iter().zip(translate_sentences(&texts, to, gen)?) {
        out[i] = t;
    }
    Ok(out)
}

/// Each sentence translated into `to` by the model, all in one batched call, the answer cleaned of labels
/// and quotes; `None` where the answer came out empty or in another language.
pub(crate) fn translate_sentences(texts: &[&str], to: Lang, gen: &dyn Generator) -> Result<Vec<Option<String>>> {
    if texts.is_empty() {
        return Ok(vec![]);
    }
    let requests: Vec<Request> = texts
        .iter()
        .map(|text| {
            let tokens = gen.count_tokens_or_estimate(text);
            let mut r =
                Request::greedy(crate::prompt::translate(text, to).chat(), crate::prompt::translation_tokens(tokens));
            r.stop_strings = crate::prompt::stop_strings();
            r
        })
        .collect();
    let (gens, _) = gen.generate(&requests)?;
    Ok(gens
        .iter()
        .map(|g| {
            let (cleaned, _) = clean::clean(&g.text, &crate::prompt::translation_labels());
            let t = cleaned.trim().trim_matches('"').trim();
            let usable =
                t.chars().filter(|c| c.is_alphabetic()).count() >= 3 && lang::detect(t).is_none_or(|l| l == to);
            usable.then(|| t.to_string())
        })
        .collect())
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
    fn a_title_cut_from_the_first_line_is_not_a_sentence_of_its_own() {
        // An input with no title gets its first line, cut short, as title: as evidence (and as the sentence
        // a repair may fall back to) it would be a fragment ending in '…'.
        let cut: String = ARTICLE.chars().take(40).chain(['…']).collect();
        let source = Source::new(Some(&cut), ARTICLE, Lang::En);
        assert_eq!(source.sentences.len(), 3);
        assert_eq!(
            source.sentences[0],
            "An unknown attacker shot a man several times with an air rifle in Ilfracombe."
        );
        assert!(source.sentences.iter().all(|s| !s.ends_with('…')));
    }

    #[test]
    fn the_judge_reads_the_evidence_or_the_whole_article() {
        let far = "Police called the shooting a random act.";
        let source = Source::new(Some("Man shot in Ilfracombe"), ARTICLE, Lang::En);
        let claims = [Claim::new("An unknown attacker shot a man with an air rifle in Ilfracombe.", Lang::En)];
        let judged = |context: Context| {
            let g = FakeGenerator::parse("fake").unwrap().unwrap();
            let s = check(&source, &claims, &Settings { context, ..Settings::default() }, &g).unwrap();
            assert_eq!(s[0].verdict, Verdict::Supported, "{:?}", s[0]);
            let asked = g.asked.lock().unwrap().clone();
            asked
        };
        let asked = judged(Context::Evidence);
        assert_eq!(asked.len(), 1);
        assert!(!asked[0].contains(far), "{}", asked[0]);
        let asked = judged(Context::Article);
        assert_eq!(asked.len(), 1);
        assert!(source.sentences.iter().all(|s| asked[0].contains(s)), "{}", asked[0]);
    }

    #[test]
    fn a_claim_in_the_other_language_is_read_as_written_back_translated_or_both() {
        let source = Source::new(Some("Man shot in Ilfracombe"), ARTICLE, Lang::En);
        let claim = "Un atacante desconocido disparó a un hombre en Ilfracombe.";
        let asked = |crossing: Crossing| {
            let g = FakeGenerator::parse("fake").unwrap().unwrap();
            let s = check(&source, &[Claim::new(claim, Lang::Es)], &Settings { crossing, ..Settings::default() }, &g)
                .unwrap();
            assert_eq!(s[0].text, claim);
            let asked = g.asked.lock().unwrap().clone();
            (s[0].checked_as.clone(), asked)
        };
        let (back, questions) = asked(Crossing::Direct);
        assert_eq!(back, None);
        assert_eq!(questions.len(), 1);
        assert!(questions[0].contains(claim));
        // The fake model's English answer stands for the back-translation.
        let (back, questions) = asked(Crossing::BackTranslate);
        let back = back.expect("a back-translation");
        assert_eq!(lang::detect(&back), Some(Lang::En), "{back}");
        assert_eq!(questions.len(), 1);
        assert!(questions[0].contains(&back) && !questions[0].contains(claim));
        let (_, questions) = asked(Crossing::Both);
        assert_eq!(questions.len(), 2);
        assert!(questions[0].contains(&back) && questions[1].contains(claim), "{questions:?}");
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
            checked_as: None,
        }];
        let c = claims_of("Un hombre fue herido.", Lang::Es, Some(&pivot));
        assert_eq!(c[0].evidence, Some(vec![2]));
        assert_eq!(claims_of("Uno. Dos.", Lang::Es, Some(&pivot))[0].evidence, None);
    }
}
