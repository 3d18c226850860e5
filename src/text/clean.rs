//! Cleaning what a model wrote around its answer: chatty preambles and sign-offs, echoed labels, HTML tags,
//! bullets and wrapping quotes. One cleaner for every answer (summaries, notes, translations,
//! back-translations); each caller passes the labels its prompts may make the model echo.

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

/// The first line without its preamble: what is left of it, or nothing.
fn replace_first(lines: &mut Vec<String>, rest: String) {
    if rest.is_empty() {
        lines.remove(0);
    } else {
        lines[0] = rest;
    }
}

/// Remove preambles, sign-offs, the `labels` a model echoes ("Summary:"), HTML tags and wrapping quotes;
/// join the lines into one paragraph. Returns the text and whether anything chatty was removed.
pub(crate) fn clean(text: &str, labels: &[&str]) -> (String, bool) {
    let mut removed = false;
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
    // A label after a finished sentence: the model started its answer over ("… del norte. Traducción al
    // español: …" and the same text again); what follows is a repeat or a second answer. Positions found in
    // the lower-cased text stand for the text's own only where lower-casing kept every length, as it does
    // for the scripts the labels are in.
    let lower = out.to_lowercase();
    if lower.len() == out.len() {
        let after_sentence = |i: usize| {
            i > 0 && out.is_char_boundary(i) && out[..i].trim_end().ends_with(['.', '!', '?', '"', '”', '»'])
        };
        let restart = labels
            .iter()
            .filter_map(|l| lower.match_indices(l.to_lowercase().as_str()).map(|(i, _)| i).find(|&i| after_sentence(i)))
            .min();
        if let Some(i) = restart {
            out = out[..i].trim_end().to_string();
            removed = true;
        }
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

/// A line without its list marker ("- ", "* ", "• ", "1. ", "2) "); a line that starts with a number of
/// its own ("3 groups", "1.5 million") keeps it.
pub(crate) fn strip_bullet(line: &str) -> &str {
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
