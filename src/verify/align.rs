//! Evidence: the article sentences that support a claim best, found lexically. Words are compared
//! lowercase and accent-folded, cut to a stem of a few letters (so "disparan" meets "disparado", and across
//! languages "policía" meets "police"), weighted by how rare they are in the article, with numbers compared
//! by value (`text::numbers`) so "twenty-three" meets "23".

use std::collections::{HashMap, HashSet};

use crate::text::lang::Lang;
use crate::text::numbers::{self, fold_accents};

/// Letters a word is cut to within one language: long enough to keep "police" from "policy"-like
/// neighbours rare, short enough to join inflections.
pub(crate) const STEM: usize = 5;
/// Across languages only a shorter stem is shared by cognates ("presidente"/"president" share more, but
/// "policía"/"police" only four).
const STEM_CROSS: usize = 4;
/// At most this many sentences are evidence for one claim.
pub(crate) const MAX_EVIDENCE: usize = 3;

/// Words too common to say what a sentence is about, in the languages with their own lists.
fn is_stopword(w: &str) -> bool {
    const WORDS: &[&str] = &[
        // English
        "the", "a", "an", "and", "or", "but", "of", "to", "in", "on", "at", "for", "from", "with", "by", "as", "is",
        "are", "was", "were", "be", "been", "has", "have", "had", "it", "its", "this", "that", "these", "those", "he",
        "she", "they", "his", "her", "their", "them", "who", "which", "said", "says", "will", "would", "after",
        "about", "into", "than", "also", "not", "no", "there", "more", // Spanish
        "el", "la", "los", "las", "un", "una", "unos", "unas", "y", "o", "pero", "de", "del", "al", "en", "con", "por",
        "para", "que", "se", "su", "sus", "es", "son", "fue", "ha", "han", "era", "lo", "le", "les", "como", "mas",
        "tras", "sobre", "este", "esta", "estos", "estas", "ese", "esa", "dijo", "segun", "ya", "muy",
    ];
    WORDS.contains(&w)
}

/// The words of `text`, lowercase and accent-folded.
pub(crate) fn words(text: &str) -> Vec<String> {
    fold_accents(text).split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_string).collect()
}

/// The stem a word is compared by.
pub(crate) fn stem(word: &str, len: usize) -> String {
    word.chars().take(len).collect()
}

/// What a text is compared by: stems of its content words and its numbers' values.
fn terms(text: &str, lang: Lang, stem_len: usize) -> HashSet<String> {
    let mut out: HashSet<String> = words(text)
        .into_iter()
        .filter(|w| !is_stopword(w) && !w.chars().all(|c| c.is_ascii_digit()) && w.chars().count() > 1)
        .map(|w| stem(&w, stem_len))
        .collect();
    out.extend(numbers::extract(text, lang).into_iter().map(|n| format!("#{}", n.key())));
    out
}

/// The article's sentences, each with its terms, and how rare each term is among them.
pub(crate) struct Index {
    stem_len: usize,
    sentences: Vec<HashSet<String>>,
    idf: HashMap<String, f64>,
}

impl Index {
    /// An index of `sentences` (in `lang`) for claims in `claim_lang`.
    pub(crate) fn new(sentences: &[&str], lang: Lang, claim_lang: Lang) -> Self {
        let stem_len = if lang == claim_lang { STEM } else { STEM_CROSS };
        let sentences: Vec<HashSet<String>> = sentences.iter().map(|s| terms(s, lang, stem_len)).collect();
        let mut df: HashMap<String, usize> = HashMap::new();
        for s in &sentences {
            for t in s {
                *df.entry(t.clone()).or_default() += 1;
            }
        }
        let n = sentences.len().max(1) as f64;
        let idf = df.into_iter().map(|(t, d)| (t, (1.0 + n / d as f64).ln())).collect();
        Index { stem_len, sentences, idf }
    }

    /// The weight of a claim's term: rare in the article weighs more; a term the article lacks weighs as
    /// the rarest.
    fn weight(&self, term: &str) -> f64 {
        let n = self.sentences.len().max(1) as f64;
        self.idf.get(term).copied().unwrap_or((1.0 + n).ln())
    }

    /// The evidence for `claim` (in `claim_lang`): up to [`MAX_EVIDENCE`] sentence indices, each adding the
    /// most weight of the claim's terms not yet covered, best first, with the share of the claim's
    /// weight they cover together (0 to 1).
    pub(crate) fn evidence(&self, claim: &str, claim_lang: Lang) -> (Vec<usize>, f64) {
        let claim_terms = terms(claim, claim_lang, self.stem_len);
        // Numbers are read in the claim's language but matched by value, so they stay comparable.
        let total: f64 = claim_terms.iter().map(|t| self.weight(t)).sum();
        if total == 0.0 || self.sentences.is_empty() {
            return (vec![], 0.0);
        }
        let mut covered: HashSet<&String> = HashSet::new();
        let mut picked = Vec::new();
        let mut gained = 0.0;
        while picked.len() < MAX_EVIDENCE {
            let best = self
                .sentences
                .iter()
                .enumerate()
                .filter(|(i, _)| !picked.contains(i))
                .map(|(i, s)| {
                    let gain: f64 = claim_terms
                        .iter()
                        .filter(|t| s.contains(*t) && !covered.contains(t))
                        .map(|t| self.weight(t))
                        .sum();
                    (i, gain)
                })
                .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)));
            // A later sentence must add a real part of the claim, not one shared word.
            let min_gain = if picked.is_empty() { 1e-9 } else { 0.15 * total };
            match best {
                Some((i, gain)) if gain >= min_gain => {
                    covered.extend(claim_terms.iter().filter(|t| self.sentences[i].contains(*t)));
                    gained += gain;
                    picked.push(i);
                }
                _ => break,
            }
        }
        (picked, (gained / total).min(1.0))
    }

    /// How much of `claim`'s weight one sentence covers (0 to 1).
    pub(crate) fn overlap(&self, claim: &str, claim_lang: Lang, sentence: usize) -> f64 {
        let claim_terms = terms(claim, claim_lang, self.stem_len);
        let total: f64 = claim_terms.iter().map(|t| self.weight(t)).sum();
        let Some(s) = self.sentences.get(sentence) else { return 0.0 };
        if total == 0.0 {
            return 0.0;
        }
        claim_terms.iter().filter(|t| s.contains(*t)).map(|t| self.weight(t)).sum::<f64>() / total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARTICLE: &[&str] = &[
        "A man was shot several times with an air rifle while walking home after a night out.",
        "The victim, a man in his forties, was in the Oxford Grove area of Ilfracombe when he was hit in the chest.",
        "Police officers described the shooting, which happened at about 02:30, as a random act.",
        "The victim did not see his attacker.",
    ];

    #[test]
    fn finds_the_sentences_that_say_it() {
        let idx = Index::new(ARTICLE, Lang::En, Lang::En);
        let (ev, cover) = idx.evidence("The man was hit in the chest in Ilfracombe.", Lang::En);
        assert_eq!(ev.first(), Some(&1), "{ev:?}");
        assert!(cover > 0.7, "{cover}");
        let (ev, _) = idx.evidence("Police called the shooting a random act at 2:30.", Lang::En);
        assert!(ev.contains(&2), "{ev:?}");
        let (ev, cover) = idx.evidence("Quantum chromodynamics explains quarks.", Lang::En);
        assert!(ev.is_empty() && cover == 0.0, "{ev:?} {cover}");
    }

    #[test]
    fn aligns_across_languages_through_cognates_and_numbers() {
        let idx = Index::new(ARTICLE, Lang::En, Lang::Es);
        let (ev, _) = idx.evidence("La víctima estaba en Ilfracombe, en el área de Oxford Grove.", Lang::Es);
        assert_eq!(ev.first(), Some(&1), "{ev:?}");
    }
}
