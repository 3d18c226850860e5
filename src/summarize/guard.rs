//! Checks on a summary the model wrote (after `text::clean`): the length enforced, echoed instructions
//! caught, and numbers that the article does not contain flagged.

use std::collections::HashSet;

use crate::summarize::prompt::Length;
use crate::text::numbers::{self, Lang};
use crate::text::split::{self, ends_sentence};

/// Outcome of enforcing the length.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Fitted {
    pub(crate) text: String,
    /// Sentences or words beyond the limit were cut.
    pub(crate) trimmed: bool,
    /// An unfinished last sentence (the token limit hit mid-sentence) was dropped.
    pub(crate) dropped_unfinished: bool,
}

/// Keep at most N sentences (or N words, cutting at a sentence end when one fits); drop an unfinished
/// last sentence when the generation hit its token limit and a finished one precedes it.
pub(crate) fn fit_length(text: &str, length: Length, hit_token_limit: bool) -> Fitted {
    let mut sents: Vec<&str> = split::sentences(text);
    let mut dropped_unfinished = false;
    if hit_token_limit && sents.len() > 1 && !ends_sentence(sents[sents.len() - 1]) {
        sents.pop();
        dropped_unfinished = true;
    }
    let mut trimmed = false;
    let text = match length {
        Length::Sentences(n) => {
            if sents.len() > n.max(1) {
                sents.truncate(n.max(1));
                trimmed = true;
            }
            sents.join(" ")
        }
        Length::MaxWords(w) => {
            let all = sents.join(" ");
            if all.split_whitespace().count() <= w {
                all
            } else {
                trimmed = true;
                let mut kept: Vec<&str> = Vec::new();
                let mut count = 0;
                for s in &sents {
                    let n = s.split_whitespace().count();
                    if count + n > w {
                        break;
                    }
                    count += n;
                    kept.push(s);
                }
                if kept.is_empty() {
                    let mut t = all.split_whitespace().take(w).collect::<Vec<_>>().join(" ");
                    t = t.trim_end_matches([',', ';', ':']).to_string();
                    t.push('…');
                    t
                } else {
                    kept.join(" ")
                }
            }
        }
    };
    Fitted { text, trimmed, dropped_unfinished }
}

/// Article text the number extractor reads at once.
const NUMBER_PIECE_BYTES: usize = 64 * 1024;

/// Numbers written with digits in `summary` whose value does not occur in `article`, however the article
/// writes it (`1,200` = `1.200` = `1200`, `3.5` = `3,5`, "twenty-three" = `23`, "3 million" = `3000000`),
/// as the summary writes them.
pub(crate) fn unsupported_numbers(summary: &str, article: &str) -> Vec<String> {
    // The extractor holds a token per word of what it reads: a long article is read a piece at a time.
    let known: HashSet<i64> = split::bounded_pieces(article, NUMBER_PIECE_BYTES)
        .flat_map(|piece| [Lang::En, Lang::Es].into_iter().flat_map(move |l| numbers::extract(piece, l)))
        .map(|n| n.key())
        .collect();
    let mut out: Vec<String> = Vec::new();
    for n in numbers::extract(summary, Lang::En) {
        if n.surface.chars().any(|c| c.is_ascii_digit()) && !known.contains(&n.key()) && !out.contains(&n.surface) {
            out.push(n.surface);
        }
    }
    out
}

/// Whether `summary` repeats the prompt's own instructions (a small model echoing "Write the summary
/// in ..." instead of summarizing): it shares a run of 5 words with `instructions`.
pub(crate) fn echoes_instructions(summary: &str, instructions: &str) -> bool {
    let words = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
    };
    let inst = words(instructions);
    let grams: HashSet<&[String]> = inst.windows(5).collect();
    words(summary).windows(5).any(|w| grams.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::split::sentences;

    /// The cleaner as summaries get it: with the summary and translation labels.
    fn clean(text: &str) -> (String, bool) {
        crate::text::clean::clean(text, &crate::summarize::prompt::answer_labels())
    }

    #[test]
    fn removes_preambles_and_signoffs() {
        let (t, r) = clean(
            "Sure! Here is a summary of the article:\n\nThe council approved the budget. Taxes \
            rise.\n\nLet me know if you need more.",
        );
        assert_eq!(t, "The council approved the budget. Taxes rise.");
        assert!(r);
        let (t, _) = clean("¡Claro! Aquí tienes un resumen: El consejo aprobó el presupuesto.");
        assert_eq!(t, "El consejo aprobó el presupuesto.");
        let (t, _) = clean("**Resumen:** El consejo aprobó el presupuesto.");
        assert_eq!(t, "El consejo aprobó el presupuesto.");
        let (t, r) = clean("The council approved the budget.");
        assert_eq!((t.as_str(), r), ("The council approved the budget.", false));
        let (t, _) = clean("- First point.\n- Second point.");
        assert_eq!(t, "First point. Second point.");
        let (t, _) = clean("\"Quoted summary.\"");
        assert_eq!(t, "Quoted summary.");
        let (t, _) = clean("<summary>Summary: <summary> Lakers coach spoke.</summary>");
        assert_eq!(t, "Lakers coach spoke.");
        let (t, _) = clean("<p>The school garden wins.</p><div class=\"more\">Pupils won a prize.</div> 3 < 4");
        assert_eq!(t, "The school garden wins. Pupils won a prize. 3 < 4");
        let (t, r) = clean("\"Summary:  Lakers coach spoke.\"");
        assert_eq!((t.as_str(), r), ("Lakers coach spoke.", true));
    }

    #[test]
    fn splits_sentences_sensibly() {
        assert_eq!(
            sentences("Prices rose 3.5 percent. Mr. Smith said so! ¿Qué pasa? Fin"),
            vec!["Prices rose 3.5 percent.", "Mr. Smith said so!", "¿Qué pasa?", "Fin"]
        );
    }

    #[test]
    fn enforces_length() {
        let f = fit_length("One. Two. Three. Four.", Length::Sentences(2), false);
        assert_eq!((f.text.as_str(), f.trimmed), ("One. Two.", true));
        let f = fit_length("A done sentence. An unfinished one that goes", Length::Sentences(3), true);
        assert_eq!((f.text.as_str(), f.dropped_unfinished), ("A done sentence.", true));
        let f =
            fit_length("Short one here. Then a much longer second sentence follows it.", Length::MaxWords(5), false);
        assert_eq!(f.text, "Short one here.");
        let f = fit_length("one two three four five six", Length::MaxWords(3), false);
        assert_eq!(f.text, "one two three…");
        assert!(!fit_length("Fine.", Length::MaxWords(3), false).trimmed);
    }

    #[test]
    fn recognises_an_echoed_prompt() {
        let inst = "Schreibe die Zusammenfassung auf Deutsch, in höchstens 15 Wörtern. Schreibe nur die \
            Zusammenfassung, ohne Einleitung.";
        assert!(echoes_instructions(
            "Die Brücke ist offen. Schreibe die Zusammenfassung, ohne Einleitung zum Text.",
            "Schreibe nur die Zusammenfassung, ohne Einleitung zum Text bitte"
        ));
        assert!(!echoes_instructions("Die Brücke in Porthaven ist nach acht Monaten wieder offen.", inst));
    }

    #[test]
    fn flags_numbers_not_in_the_article() {
        let article = "The city spent $1,200 on 3.5 tonnes of salt in 2023. Three trucks were used.";
        assert!(unsupported_numbers("It spent 1200 dollars on 3,5 tonnes in 2023 with 3 trucks.", article).is_empty());
        assert_eq!(unsupported_numbers("It spent 1,500 dollars in 2024.", article), vec!["1,500", "2024"]);
        // Spelled out in the article, in digits in the summary: the same number.
        assert!(unsupported_numbers("23 people were hurt.", "Twenty-three people were hurt.").is_empty());
    }
}
