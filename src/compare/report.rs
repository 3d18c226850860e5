//! The result of comparing two summaries, of one article and of one parallel story, and the verdict rules.

use std::collections::BTreeSet;

use serde::Serialize;

use crate::text::chrf::chrf;
use crate::text::names;
use crate::text::numbers::{self, Lang};

/// Below this, a summary translated into the other language shares too little with the other summary: on
/// the fixture summaries, two summaries of one story score 48–72 chrF, summaries of different stories 14–30.
pub(crate) const BACKTRANSLATION_CHRF_MIN: f64 = 35.0;
/// Below this, two same-language summaries of the two editions of a story say different things (the same
/// gap between one story and different stories as above, without a translation step).
pub(crate) const SAME_LANGUAGE_CHRF_MIN: f64 = 35.0;
/// One summary more than this many times longer than the other (in characters): one of them left out
/// much of the story. Spanish runs ~1.2× English, so 2 is far outside the normal spread.
pub(crate) const LENGTH_RATIO_MAX: f64 = 2.0;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    Consistent,
    Check,
}

impl Verdict {
    pub(crate) fn from_reasons(reasons: &[String]) -> Self {
        if reasons.is_empty() {
            Verdict::Consistent
        } else {
            Verdict::Check
        }
    }
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Verdict::Consistent => "consistent",
            Verdict::Check => "check",
        }
    }
}

/// One side of a comparison.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Text {
    /// "EN", "ES", "EN of ES article", ...
    pub(crate) label: String,
    pub(crate) lang: String,
    pub(crate) text: String,
    /// This text translated into the other side's language, when back-translation ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) back_translation: Option<String>,
    /// Byte ranges of `text` flagged as missing from the other side (numbers, names).
    #[serde(skip)]
    pub(crate) marks: Vec<(usize, usize)>,
    /// Each sentence as checked against the article (`summarize --verify`), with its evidence.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) support: Vec<SentenceView>,
}

/// A summary sentence beside the article sentences that support it.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct SentenceView {
    pub(crate) text: String,
    pub(crate) supported: bool,
    pub(crate) failed_checks: Vec<String>,
    /// The evidence sentences of the article, as text (or "sentence N" when the article cannot be read).
    pub(crate) evidence: Vec<String>,
}

impl Text {
    /// Whether the article supports the sentence of this text that holds `surface`: then a number or name
    /// the other side lacks is the other side's omission, not an invention here.
    fn source_supports(&self, surface: &str) -> bool {
        self.support.iter().any(|s| s.supported && s.text.contains(surface))
    }
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Score {
    /// "ES→EN" (the ES summary translated to English, scored against the EN one), or "chrF" for two
    /// summaries in one language.
    pub(crate) label: String,
    pub(crate) chrf: f64,
    pub(crate) min: f64,
}

/// Two summaries compared.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct PairCheck {
    pub(crate) left: Text,
    pub(crate) right: Text,
    pub(crate) numbers_only_left: Vec<String>,
    pub(crate) numbers_only_right: Vec<String>,
    pub(crate) names_only_left: Vec<String>,
    pub(crate) names_only_right: Vec<String>,
    pub(crate) scores: Vec<Score>,
    /// Characters of the right text / of the left.
    pub(crate) length_ratio: f64,
    pub(crate) reasons: Vec<String>,
}

/// Compare two summaries. Back-translations (`left_bt`: left translated into right's language) are scored
/// with chrF when the languages differ, and a name one side lacks is also looked for in that side's
/// back-translation; same-language texts are scored directly.
pub(crate) fn compare_pair(
    mut left: Text,
    mut right: Text,
    left_bt: Option<String>,
    right_bt: Option<String>,
) -> PairCheck {
    let read = |code: &str| code.parse::<Lang>().unwrap_or(Lang::En);
    let (ll, rl) = (read(&left.lang), read(&right.lang));
    let mut reasons = Vec::new();

    // Numbers, on the normalized value.
    let ln = numbers::extract(&left.text, ll);
    let rn = numbers::extract(&right.text, rl);
    let lkeys: BTreeSet<i64> = ln.iter().map(|n| n.key()).collect();
    let rkeys: BTreeSet<i64> = rn.iter().map(|n| n.key()).collect();
    let missing = |from: &[numbers::Number], other: &BTreeSet<i64>, marks: &mut Vec<(usize, usize)>| -> Vec<String> {
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for n in from.iter().filter(|n| !other.contains(&n.key())) {
            marks.push((n.start, n.end));
            if seen.insert(n.key()) {
                out.push(n.surface.clone());
            }
        }
        out
    };
    let numbers_only_left = missing(&ln, &rkeys, &mut left.marks);
    let numbers_only_right = missing(&rn, &lkeys, &mut right.marks);
    // What the article supports is no reason to check, even when the other side leaves it out ("in his
    // forties" against "40").
    for n in numbers_only_left.iter().filter(|n| !left.source_supports(n)) {
        reasons.push(format!("number {n} only in {}", left.label));
    }
    for n in numbers_only_right.iter().filter(|n| !right.source_supports(n)) {
        reasons.push(format!("number {n} only in {}", right.label));
    }

    // Proper names. A name the other side writes in its own language's form ("Navidad" for "Christmas")
    // is found in that side's back-translation, when there is one.
    let (mut lnames, mut rnames) = names::only_in(&left.text, ll, &right.text, rl);
    if let Some(bt) = right_bt.as_deref().filter(|_| ll != rl) {
        let searched = names::Searched::new(bt, ll);
        lnames.retain(|n| !searched.has(&n.surface, ll));
    }
    if let Some(bt) = left_bt.as_deref().filter(|_| ll != rl) {
        let searched = names::Searched::new(bt, rl);
        rnames.retain(|n| !searched.has(&n.surface, rl));
    }
    left.marks.extend(lnames.iter().map(|n| (n.start, n.end)));
    right.marks.extend(rnames.iter().map(|n| (n.start, n.end)));
    let names_only_left: Vec<String> = lnames.into_iter().map(|n| n.surface).collect();
    let names_only_right: Vec<String> = rnames.into_iter().map(|n| n.surface).collect();
    for n in names_only_left.iter().filter(|n| !left.source_supports(n)) {
        reasons.push(format!("name {n} only in {}", left.label));
    }
    for n in names_only_right.iter().filter(|n| !right.source_supports(n)) {
        reasons.push(format!("name {n} only in {}", right.label));
    }
    // What the article does not support is a reason, whatever the other side says.
    for side in [&left, &right] {
        for s in side.support.iter().filter(|s| !s.supported) {
            reasons.push(format!(
                "{} not supported by the article: \"{}\" ({})",
                side.label,
                s.text,
                s.failed_checks.join(", ")
            ));
        }
    }

    // chrF.
    let mut scores = Vec::new();
    if ll == rl {
        scores.push(Score { label: "chrF".into(), chrf: chrf(&right.text, &left.text), min: SAME_LANGUAGE_CHRF_MIN });
    } else {
        if let Some(bt) = &right_bt {
            scores.push(Score {
                label: format!("{}→{}", rl.label(), ll.label()),
                chrf: chrf(bt, &left.text),
                min: BACKTRANSLATION_CHRF_MIN,
            });
        }
        if let Some(bt) = &left_bt {
            scores.push(Score {
                label: format!("{}→{}", ll.label(), rl.label()),
                chrf: chrf(bt, &right.text),
                min: BACKTRANSLATION_CHRF_MIN,
            });
        }
    }
    for s in &scores {
        if s.chrf < s.min {
            let what = if ll == rl { "chrF".to_string() } else { format!("back-translation {} chrF", s.label) };
            reasons.push(format!("{what} {:.0} < {:.0}", s.chrf, s.min));
        }
    }
    left.back_translation = left_bt;
    right.back_translation = right_bt;

    let (lc, rc) = (left.text.chars().count().max(1) as f64, right.text.chars().count().max(1) as f64);
    let length_ratio = rc / lc;
    if !(1.0 / LENGTH_RATIO_MAX..=LENGTH_RATIO_MAX).contains(&length_ratio) {
        let (long, short) = if length_ratio > 1.0 { (&right.label, &left.label) } else { (&left.label, &right.label) };
        reasons.push(format!("length ratio {:.1} ({long} vs {short})", length_ratio.max(1.0 / length_ratio)));
    }
    left.marks.sort();
    right.marks.sort();
    PairCheck {
        left,
        right,
        numbers_only_left,
        numbers_only_right,
        names_only_left,
        names_only_right,
        scores,
        length_ratio,
        reasons,
    }
}

/// A piece of a text for display: flagged (missing from the other side) or not.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Segment {
    pub(crate) text: String,
    pub(crate) mark: bool,
}

/// Split `text` at the marked byte ranges (overlaps merged).
pub(crate) fn segments(text: &str, marks: &[(usize, usize)]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut pos = 0;
    let mut ranges: Vec<(usize, usize)> = marks.iter().copied().filter(|&(a, b)| a < b && b <= text.len()).collect();
    ranges.sort();
    for (a, b) in ranges {
        let a = a.max(pos);
        if a >= b {
            continue;
        }
        if a > pos {
            out.push(Segment { text: text[pos..a].to_string(), mark: false });
        }
        out.push(Segment { text: text[a..b].to_string(), mark: true });
        pos = b;
    }
    if pos < text.len() {
        out.push(Segment { text: text[pos..].to_string(), mark: false });
    }
    out
}

/// One article: its two summaries compared.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct ArticleResult {
    pub(crate) id: String,
    pub(crate) source: String,
    pub(crate) title: Option<String>,
    pub(crate) source_lang: Option<String>,
    pub(crate) story_id: Option<String>,
    pub(crate) en: Option<String>,
    pub(crate) es: Option<String>,
    /// Present when both summaries exist.
    pub(crate) check: Option<PairCheck>,
    pub(crate) verdict: Verdict,
    pub(crate) reasons: Vec<String>,
}

/// One story in two language editions.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct StoryResult {
    pub(crate) key: String,
    pub(crate) paired_by: crate::compare::pairs::PairedBy,
    pub(crate) en_article: String,
    pub(crate) es_article: String,
    /// EN of EN article vs ES of ES article, then the cross-pairs EN vs EN and ES vs ES.
    pub(crate) checks: Vec<PairCheck>,
    pub(crate) verdict: Verdict,
    pub(crate) reasons: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Totals {
    pub(crate) articles: usize,
    pub(crate) articles_consistent: usize,
    pub(crate) articles_check: usize,
    pub(crate) stories: usize,
    pub(crate) stories_consistent: usize,
    pub(crate) stories_check: usize,
    /// Mean back-translation chrF over the articles, per direction ("ES→EN", "EN→ES").
    pub(crate) mean_backtranslation_chrf: Vec<(String, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Thresholds {
    pub(crate) backtranslation_chrf_min: f64,
    pub(crate) same_language_chrf_min: f64,
    pub(crate) length_ratio_max: f64,
}

#[derive(Debug, Clone, Serialize)]
pub(crate) struct Report {
    pub(crate) dir: String,
    pub(crate) backtranslation: bool,
    pub(crate) model: Option<String>,
    pub(crate) thresholds: Thresholds,
    pub(crate) articles: Vec<ArticleResult>,
    pub(crate) stories: Vec<StoryResult>,
    pub(crate) totals: Totals,
    pub(crate) warnings: Vec<String>,
}

impl Report {
    pub(crate) fn any_check(&self) -> bool {
        self.articles.iter().any(|a| a.verdict == Verdict::Check)
            || self.stories.iter().any(|s| s.verdict == Verdict::Check)
    }
}

pub(crate) fn thresholds() -> Thresholds {
    Thresholds {
        backtranslation_chrf_min: BACKTRANSLATION_CHRF_MIN,
        same_language_chrf_min: SAME_LANGUAGE_CHRF_MIN,
        length_ratio_max: LENGTH_RATIO_MAX,
    }
}

pub(crate) fn totals(articles: &[ArticleResult], stories: &[StoryResult]) -> Totals {
    let mut sums: Vec<(String, f64, usize)> = Vec::new();
    for s in articles.iter().filter_map(|a| a.check.as_ref()).flat_map(|c| &c.scores) {
        match sums.iter_mut().find(|(l, _, _)| *l == s.label) {
            Some(e) => {
                e.1 += s.chrf;
                e.2 += 1;
            }
            None => sums.push((s.label.clone(), s.chrf, 1)),
        }
    }
    let ac = articles.iter().filter(|a| a.verdict == Verdict::Consistent).count();
    let sc = stories.iter().filter(|s| s.verdict == Verdict::Consistent).count();
    Totals {
        articles: articles.len(),
        articles_consistent: ac,
        articles_check: articles.len() - ac,
        stories: stories.len(),
        stories_consistent: sc,
        stories_check: stories.len() - sc,
        mean_backtranslation_chrf: sums.into_iter().map(|(l, s, n)| (l, s / n as f64)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(label: &str, lang: &str, text: &str) -> Text {
        Text {
            label: label.into(),
            lang: lang.into(),
            text: text.into(),
            back_translation: None,
            marks: vec![],
            support: vec![],
        }
    }

    #[test]
    fn consistent_pair_has_no_reasons() {
        let c = compare_pair(
            t("EN", "en", "Mexico will build 14,000 homes, President Sheinbaum said on Monday."),
            t("ES", "es", "México construirá 14.000 viviendas, dijo el lunes la presidenta Sheinbaum."),
            None,
            None,
        );
        assert!(c.reasons.is_empty(), "{:?}", c.reasons);
        assert!(c.scores.is_empty());
        assert_eq!(Verdict::from_reasons(&c.reasons), Verdict::Consistent);
    }

    #[test]
    fn flags_numbers_names_scores_and_length() {
        let en = "Mexico will build 14,000 homes in 2025, President Sheinbaum said.";
        let es = "México construirá 12.000 viviendas en 2025 con el apoyo del Banco Mundial y de Pemex, una empresa \
        pública que ya ha construido miles de casas en todo el país durante la última década.";
        let c = compare_pair(
            t("EN", "en", en),
            t("ES", "es", es),
            Some("x".into()),
            Some("Something else entirely.".into()),
        );
        assert_eq!(c.numbers_only_left, vec!["14,000"]);
        assert_eq!(c.numbers_only_right, vec!["12.000"]);
        assert!(c.names_only_left.contains(&"President Sheinbaum".to_string()), "{:?}", c.names_only_left);
        assert!(c.names_only_right.contains(&"Pemex".to_string()), "{:?}", c.names_only_right);
        assert!(c.reasons.contains(&"number 14,000 only in EN".to_string()));
        assert!(c.reasons.contains(&"number 12.000 only in ES".to_string()));
        assert!(c.reasons.contains(&"name Pemex only in ES".to_string()), "{:?}", c.reasons);
        assert_eq!(c.scores.iter().map(|s| s.label.as_str()).collect::<Vec<_>>(), vec!["ES→EN", "EN→ES"]);
        assert!(
            c.reasons.iter().any(|r| r.starts_with("back-translation ES→EN chrF ") && r.ends_with("< 35")),
            "{:?}",
            c.reasons
        );
        assert!(c.reasons.iter().any(|r| r.starts_with("length ratio 2.")), "{:?}", c.reasons);
        // The flagged number is marked in the text.
        let segs = segments(&c.left.text, &c.left.marks);
        assert!(segs.contains(&Segment { text: "14,000".into(), mark: true }));
    }

    #[test]
    fn a_name_in_the_other_languages_form_is_found_through_the_back_translation() {
        let en = "Children in Spain wait for the Three Kings.";
        let es = "Los niños de España esperan a los Reyes Magos.";
        let without = compare_pair(t("EN", "en", en), t("ES", "es", es), None, None);
        assert!(without.names_only_left.contains(&"Three Kings".to_string()), "{:?}", without);
        assert!(without.names_only_right.contains(&"Reyes Magos".to_string()), "{:?}", without);

        let left_bt = Some("Los niños de España esperan a los Reyes Magos.".to_string());
        let right_bt = Some("Children in Spain wait for the Three Kings.".to_string());
        let with = compare_pair(t("EN", "en", en), t("ES", "es", es), left_bt, right_bt);
        assert!(with.names_only_left.is_empty() && with.names_only_right.is_empty(), "{:?}", with);
        assert!(!with.reasons.iter().any(|r| r.starts_with("name ")), "{:?}", with.reasons);

        // A back-translation without the name leaves it missing.
        let right_bt = Some("Children in Spain wait for the gifts.".to_string());
        let lost = compare_pair(t("EN", "en", en), t("ES", "es", es), None, right_bt);
        assert_eq!(lost.names_only_left, vec!["Three Kings"]);
    }

    #[test]
    fn same_language_scored_directly() {
        let c = compare_pair(
            t("EN of EN article", "en", "The council approved the budget."),
            t("EN of ES article", "en", "The council approved the budget."),
            None,
            None,
        );
        assert_eq!(c.scores.len(), 1);
        assert_eq!(c.scores[0].chrf, 100.0);
        assert!(c.reasons.is_empty());
    }

    #[test]
    fn segments_split_and_merge() {
        let s = segments("abcdef", &[(1, 3), (2, 4), (5, 6)]);
        assert_eq!(
            s,
            vec![
                Segment { text: "a".into(), mark: false },
                Segment { text: "bc".into(), mark: true },
                Segment { text: "d".into(), mark: true },
                Segment { text: "e".into(), mark: false },
                Segment { text: "f".into(), mark: true },
            ]
        );
    }

    #[test]
    fn a_number_the_article_supports_is_no_reason_but_an_unsupported_sentence_is() {
        let en = t("EN", "en", "A man in his forties was shot in Ilfracombe.");
        let es = t("ES", "es", "Un hombre de unos 40 años recibió disparos en Ilfracombe.");
        let plain = compare_pair(en.clone(), es.clone(), None, None);
        assert_eq!(plain.reasons, vec!["number 40 only in ES"]);
        let mut es = es;
        es.support = vec![SentenceView {
            text: es.text.clone(),
            supported: true,
            failed_checks: vec![],
            evidence: vec!["La víctima, un hombre de unos 40 años...".into()],
        }];
        assert!(compare_pair(en.clone(), es.clone(), None, None).reasons.is_empty());
        es.support[0].supported = false;
        es.support[0].failed_checks = vec!["actor".into()];
        let c = compare_pair(en, es, None, None);
        assert_eq!(c.reasons.len(), 2, "{:?}", c.reasons);
        assert!(c.reasons[1].starts_with("ES not supported by the article") && c.reasons[1].ends_with("(actor)"));
    }
}
