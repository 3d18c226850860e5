//! Grounded generation (`--grounding key-sentences`): the model is shown only the article's key sentences,
//! in their order, and compresses those, so that what it writes has fewer places to come from but the
//! article. The alternative to checking and repairing afterwards; docs/EVAL.md compares the two (on dev
//! it gave more unsupported sentences, not fewer, so it is not the default).
//!
//! Key sentences: the lead (news states the main event first) and the sentences that share the most
//! with the rest of the article (degree centrality over content-word overlap, as in LexRank), up to
//! `KEY_SENTENCES`.

use crate::text::lang::Lang;
use crate::text::split;
use crate::verify::align::Index;

/// How the article reaches the summary prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Grounding {
    /// The whole article (or its notes, for a long one).
    #[default]
    Article,
    /// Only its key sentences, for an article read in one piece.
    KeySentences,
}

impl std::str::FromStr for Grounding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "article" => Ok(Grounding::Article),
            "key-sentences" => Ok(Grounding::KeySentences),
            other => Err(format!("invalid grounding {other:?}: use article or key-sentences")),
        }
    }
}

impl Grounding {
    /// The part of the state key that tells the outputs apart; `article` keeps the earlier key.
    pub(crate) fn key_suffix(self) -> &'static str {
        match self {
            Grounding::Article => "",
            Grounding::KeySentences => "+ground",
        }
    }
}

/// Sentences kept: room for a short summary's facts several times over, few enough that the model
/// compresses rather than picks.
pub(crate) const KEY_SENTENCES: usize = 8;

/// The key sentences of `text` (in `lang`), in the article's order, one a line; the text itself when it
/// has no more than `keep` sentences.
pub(crate) fn key_sentences(text: &str, lang: Lang, keep: usize) -> String {
    let sentences: Vec<&str> = split::paragraphs(text).0.into_iter().flat_map(split::sentences).collect();
    if sentences.len() <= keep || keep == 0 {
        return text.to_string();
    }
    let index = Index::new(&sentences, lang, lang);
    let centrality: Vec<f64> = sentences
        .iter()
        .enumerate()
        .map(|(i, s)| (0..sentences.len()).filter(|&j| j != i).map(|j| index.overlap(s, lang, j)).sum())
        .collect();
    let mut ranked: Vec<usize> = (1..sentences.len()).collect();
    ranked.sort_by(|&a, &b| centrality[b].total_cmp(&centrality[a]).then(a.cmp(&b)));
    let mut chosen: Vec<usize> = std::iter::once(0).chain(ranked.into_iter().take(keep - 1)).collect();
    chosen.sort_unstable();
    chosen.iter().map(|&i| sentences[i]).collect::<Vec<_>>().join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_lead_and_the_central_sentences_in_order() {
        let text = "A storm closed the harbour bridge in Porthaven on Monday.\n\n\
            The weather was cold. Repairs to the harbour bridge will take eight months.\n\n\
            A local bakery sold out of bread. The harbour bridge carries most of the town's traffic.\n\n\
            Officials said the harbour bridge repairs will cost two million euros.";
        let out = key_sentences(text, Lang::En, 4);
        let kept: Vec<&str> = out.lines().collect();
        assert_eq!(kept.len(), 4, "{out}");
        assert_eq!(kept[0], "A storm closed the harbour bridge in Porthaven on Monday.");
        assert!(!out.contains("bakery") && !out.contains("cold"), "{out}");
        // In the article's order.
        let at = |s: &str| text.find(s).unwrap();
        assert!(kept.windows(2).all(|w| at(w[0]) < at(w[1])), "{out}");
        // A short text stays whole.
        assert_eq!(key_sentences("One. Two.", Lang::En, 4), "One. Two.");
        assert_eq!("key-sentences".parse::<Grounding>(), Ok(Grounding::KeySentences));
    }
}
