//! Cleaning what the model wrote: chatty preambles and sign-offs removed, the length enforced, and
//! numbers that the article does not contain flagged.

use std::collections::HashSet;

use crate::summarize::prompt::{self, Length};

/// Openings of a chatty preamble line ("Sure! Here is a summary:"), lower case.
const PREAMBLE_STARTS: &[&str] = &[
    "sure",
    "certainly",
    "of course",
    "here is",
    "here's",
    "here are",
    "below is",
    "okay",
    "ok,",
    "absolutely",
    "the following is",
    "this is a summary",
    "a summary of",
    "in summary",
    "summary of the article",
    "claro",
    "¡claro",
    "por supuesto",
    "¡por supuesto",
    "aquí tienes",
    "aquí está",
    "aquí hay",
    "a continuación",
    "este es un resumen",
    "resumen del artículo",
    "vale",
    "bien,",
    "voici",
    "hier ist",
    "ecco",
    "aqui está",
];

/// Sign-offs at the end ("Let me know if ..."), lower case.
const SIGNOFF_STARTS: &[&str] = &[
    "let me know",
    "i hope this",
    "hope this helps",
    "if you need",
    "feel free",
    "note:",
    "espero que",
    "si necesitas",
    "nota:",
    "avísame",
    "(note",
    "(nota",
];

/// Remove preambles, sign-offs, echoed labels and wrapping quotes; join lines into one paragraph.
/// Returns the text and whether anything chatty was removed.
/// The first line without its preamble: what is left of it, or nothing.
fn replace_first(lines: &mut Vec<String>, rest: String) {
    if rest.is_empty() {
        lines.remove(0);
    } else {
        lines[0] = rest;
    }
}

pub fn clean(text: &str) -> (String, bool) {
    let mut removed = false;
    let labels = prompt::answer_labels();
    // Tags the model may echo from the prompt's fences.
    let mut text = text.to_string();
    for tag in ["<summary>", "</summary>", "<article>", "</article>", "<text>", "</text>"] {
        text = text.replace(tag, " ");
    }
    let text = strip_html_tags(&text);
    let mut lines: Vec<String> =
        text.lines().map(|l| l.trim().trim_matches('*').trim().to_string()).filter(|l| !l.is_empty()).collect();
    // Leading preamble lines, or a preamble sentence ending in ':' at the start of the first line.
    while let Some(first) = lines.first().cloned() {
        let lower = first.to_lowercase();
        let starts = PREAMBLE_STARTS.iter().any(|p| lower.starts_with(p));
        let label = labels.iter().find(|l| lower.starts_with(&l.to_lowercase()));
        if let Some(label) = label {
            replace_first(&mut lines, first[label.len()..].trim().to_string());
            removed = true;
            continue;
        }
        if starts {
            if let Some(colon) = first.find(':').filter(|&c| c < 160) {
                replace_first(&mut lines, first[colon + 1..].trim().trim_matches('*').trim().to_string());
                removed = true;
                continue;
            }
            // "Sure!" or "Certainly." on its own, or before the summary on the same line.
            if let Some(end) = first.find(['!', '.']).filter(|&e| e < 40) {
                replace_first(&mut lines, first[end + 1..].trim().to_string());
                removed = true;
                continue;
            }
        }
        break;
    }
    while let Some(last) = lines.last() {
        let lower = last.to_lowercase();
        if SIGNOFF_STARTS.iter().any(|p| lower.starts_with(p)) {
            lines.pop();
            removed = true;
        } else {
            break;
        }
    }
    let joined = lines.iter().map(|l| strip_bullet(l)).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    let out = joined.split_whitespace().collect::<Vec<_>>().join(" ");
    let mut out = strip_quotes(out.trim()).trim().to_string();
    // A label inside the quotes ("\"Summary: ...\"").
    while let Some(label) = labels.iter().find(|l| out.to_lowercase().starts_with(&l.to_lowercase())) {
        match out.get(label.len()..) {
            Some(rest) => out = rest.trim().to_string(),
            None => break,
        }
        removed = true;
    }
    (out, removed)
}

/// Remove HTML-looking tags (`<p>`, `</div>`, `<div class="more">`) a model may wrap its answer in.
fn strip_html_tags(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find('<') {
        let after = &rest[start + 1..];
        let is_tag = after.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/');
        match (is_tag, after.find('>')) {
            (true, Some(end)) if end <= 120 && !after[..end].contains('<') => {
                out.push_str(&rest[..start]);
                out.push(' ');
                rest = &after[end + 1..];
            }
            _ => {
                out.push_str(&rest[..start + 1]);
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

fn strip_bullet(line: &str) -> &str {
    let l = line.trim_start_matches(['-', '*', '•']).trim_start();
    // "1. text" / "2) text"
    let digits = l.chars().take_while(|c| c.is_ascii_digit()).count();
    if digits > 0 && digits < 3 {
        let rest = &l[digits..];
        if let Some(r) = rest.strip_prefix(". ").or_else(|| rest.strip_prefix(") ")) {
            return r.trim();
        }
    }
    l.trim()
}

fn strip_quotes(s: &str) -> &str {
    for (a, b) in [('"', '"'), ('“', '”'), ('«', '»')] {
        if s.starts_with(a)
            && s.ends_with(b)
            && s.len() > 2
            && s[a.len_utf8()..s.len() - b.len_utf8()].find(b).is_none()
        {
            return &s[a.len_utf8()..s.len() - b.len_utf8()];
        }
    }
    s
}

/// Split into sentences at `.`, `!`, `?` or `…` followed by a space and a capital, digit, quote or
/// inverted mark (so "3.5" and "U.S. officials" mostly stay whole).
pub fn sentences(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for i in 0..chars.len() {
        let (pos, c) = chars[i];
        if !matches!(c, '.' | '!' | '?' | '…') {
            continue;
        }
        // Closing quotes or brackets belong to the sentence.
        let mut j = i + 1;
        while j < chars.len() && matches!(chars[j].1, '"' | '”' | '»' | ')' | '\'') {
            j += 1;
        }
        if j < chars.len() && !chars[j].1.is_whitespace() {
            continue;
        }
        let mut k = j;
        while k < chars.len() && chars[k].1.is_whitespace() {
            k += 1;
        }
        let next_ok = k >= chars.len() || {
            let n = chars[k].1;
            n.is_uppercase() || n.is_ascii_digit() || matches!(n, '"' | '“' | '«' | '¿' | '¡' | '(')
        };
        // "Mr." / "Sr." style abbreviations: one or two letters before the dot.
        let word_len = text[start..pos].rsplit(' ').next().map(|w| w.chars().count()).unwrap_or(0);
        let abbrev = c == '.'
            && word_len <= 2
            && text[start..pos].rsplit(' ').next().is_some_and(|w| w.chars().next().is_some_and(char::is_uppercase));
        if next_ok && !abbrev {
            let end = if j < chars.len() { chars[j].0 } else { text.len() };
            let s = text[start..end].trim();
            if !s.is_empty() {
                out.push(s);
            }
            start = end;
        }
    }
    let rest = text[start..].trim();
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

fn ends_sentence(s: &str) -> bool {
    s.trim_end_matches(['"', '”', '»', ')', '\'']).ends_with(['.', '!', '?', '…'])
}

/// Outcome of enforcing the length.
#[derive(Debug, Clone, PartialEq)]
pub struct Fitted {
    pub text: String,
    /// Sentences or words beyond the limit were cut.
    pub trimmed: bool,
    /// An unfinished last sentence (the token limit hit mid-sentence) was dropped.
    pub dropped_unfinished: bool,
}

/// Keep at most N sentences (or N words, cutting at a sentence end when one fits); drop an unfinished
/// last sentence when the generation hit its token limit and a finished one precedes it.
pub fn fit_length(text: &str, length: Length, hit_token_limit: bool) -> Fitted {
    let mut sents: Vec<&str> = sentences(text);
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

/// Numbers written with digits in `summary` that do not occur in `article` (in any of the usual
/// spellings: `1,200` = `1.200` = `1200`, `3.5` = `3,5`; small numbers may be spelled out in the article).
pub fn unsupported_numbers(summary: &str, article: &str) -> Vec<String> {
    let mut known: HashSet<String> = HashSet::new();
    for n in numbers(article) {
        known.extend(variants(&n));
    }
    let lower = article.to_lowercase();
    for (i, words) in SPELLED.iter().enumerate() {
        if words.iter().any(|w| contains_word(&lower, w)) {
            known.insert((i + 1).to_string());
        }
    }
    let mut out: Vec<String> = Vec::new();
    for n in numbers(summary) {
        if !variants(&n).iter().any(|v| known.contains(v)) && !out.contains(&n) {
            out.push(n);
        }
    }
    out
}

/// Whether `summary` repeats the prompt's own instructions (a small model echoing "Write the summary
/// in ..." instead of summarizing): it shares a run of 5 words with `instructions`.
pub fn echoes_instructions(summary: &str, instructions: &str) -> bool {
    let words = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(|w| w.to_lowercase()).collect()
    };
    let inst = words(instructions);
    let grams: HashSet<&[String]> = inst.windows(5).collect();
    words(summary).windows(5).any(|w| grams.contains(w))
}

/// Number words 1..=12 in English and Spanish (what small numbers in a summary may come from).
const SPELLED: [&[&str]; 12] = [
    &["one", "uno", "una", "first", "primer", "primera"],
    &["two", "dos", "second", "segundo"],
    &["three", "tres", "third", "tercer"],
    &["four", "cuatro"],
    &["five", "cinco"],
    &["six", "seis"],
    &["seven", "siete"],
    &["eight", "ocho"],
    &["nine", "nueve"],
    &["ten", "diez"],
    &["eleven", "once"],
    &["twelve", "doce"],
];

fn contains_word(haystack: &str, word: &str) -> bool {
    haystack.match_indices(word).any(|(i, _)| {
        let before = haystack[..i].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let after = haystack[i + word.len()..].chars().next().is_none_or(|c| !c.is_alphanumeric());
        before && after
    })
}

/// Digit runs, with `.`/`,` inside them ("1,200.5").
fn numbers(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_ascii_digit() {
            let mut j = i;
            while j < chars.len()
                && (chars[j].is_ascii_digit()
                    || (matches!(chars[j], '.' | ',') && j + 1 < chars.len() && chars[j + 1].is_ascii_digit()))
            {
                j += 1;
            }
            out.push(chars[i..j].iter().collect());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

fn variants(n: &str) -> Vec<String> {
    let swapped: String = n
        .chars()
        .map(|c| match c {
            '.' => ',',
            ',' => '.',
            c => c,
        })
        .collect();
    let bare: String = n.chars().filter(|c| c.is_ascii_digit()).collect();
    let mut v = vec![n.to_string(), swapped, bare];
    // "3.0" ≈ "3"
    for s in [n.strip_suffix(".0"), n.strip_suffix(",0")].into_iter().flatten() {
        v.push(s.to_string());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removes_preambles_and_signoffs() {
        let (t, r) = clean("Sure! Here is a summary of the article:\n\nThe council approved the budget. Taxes rise.\n\nLet me know if you need more.");
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
        let inst = "Schreibe die Zusammenfassung auf Deutsch, in höchstens 15 Wörtern. Schreibe nur die Zusammenfassung, ohne Einleitung.";
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
    }
}
