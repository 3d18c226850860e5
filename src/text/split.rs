//! The one paragraph and sentence splitter every part of polysum uses (chunking, length fitting, the
//! translation's structure check, the evidence of a summary sentence).
//!
//! Paragraphs are blank-line separated when the text has blank lines, else one per line (news feeds and
//! NTREX put one paragraph per line). Sentences end at `.`, `!`, `?` or `…` followed by a space and a
//! capital, digit, quote or inverted mark, so "3.5", "U.S. officials" and "Mr. Smith" mostly stay whole.

use std::ops::Range;

/// Whether `text` separates its paragraphs with blank lines (else each line is a paragraph).
fn blank_separated(text: &str) -> bool {
    text.lines().any(|l| l.trim().is_empty()) && text.trim().contains('\n')
}

/// `text` in consecutive pieces of at most `max` bytes (a longer word stays whole), each ending at the last
/// line end within them, else the last whitespace: for readers whose memory grows with what they read at
/// once, and whose units (numbers, names) never span a line.
pub(crate) fn bounded_pieces(text: &str, max: usize) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut end = rest.len().min(max.max(1));
        while !rest.is_char_boundary(end) {
            end += 1;
        }
        if end < rest.len() {
            // Just after the whitespace character at `i` of `s`.
            let after = |s: &str, i: usize| i + s[i..].chars().next().map_or(0, char::len_utf8);
            let head = &rest[..end];
            end = match head.rfind('\n').or_else(|| head.rfind(char::is_whitespace)) {
                Some(i) => after(head, i),
                None => rest.find(char::is_whitespace).map_or(rest.len(), |i| after(rest, i)),
            };
        }
        let (piece, tail) = rest.split_at(end);
        rest = tail;
        Some(piece)
    })
}

/// Byte ranges of the paragraphs of `text`, in order and covering it end to end: each range ends where
/// the next paragraph's first character is (so the separating whitespace stays with the paragraph before).
pub(crate) fn paragraph_ranges(text: &str) -> Vec<Range<usize>> {
    let blank = blank_separated(text);
    let bytes = text.as_bytes();
    let mut ends = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'\n' {
            i += 1;
            continue;
        }
        let mut j = i;
        let mut newlines = 0;
        while j < bytes.len() && bytes[j].is_ascii_whitespace() {
            newlines += usize::from(bytes[j] == b'\n');
            j += 1;
        }
        if (newlines >= 2 || !blank) && j < bytes.len() {
            ends.push(j);
        }
        i = j.max(i + 1);
    }
    cover(text.len(), ends)
}

/// The paragraphs of `text`, trimmed, empty ones dropped, and the separator that joins them back in the
/// text's own style (`"\n\n"` or `"\n"`).
pub(crate) fn paragraphs(text: &str) -> (Vec<&str>, &'static str) {
    let sep = if blank_separated(text) { "\n\n" } else { "\n" };
    let parts = paragraph_ranges(text).into_iter().map(|r| text[r].trim()).filter(|p| !p.is_empty()).collect();
    (parts, sep)
}

/// Byte ranges of the sentences of `text`, in order and covering it end to end (the whitespace after a
/// sentence starts the next range).
pub(crate) fn sentence_ranges(text: &str) -> Vec<Range<usize>> {
    let mut ends = Vec::new();
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
        let last_word = text[start..pos].rsplit(' ').next().unwrap_or("");
        let abbrev =
            c == '.' && last_word.chars().count() <= 2 && last_word.chars().next().is_some_and(char::is_uppercase);
        if next_ok && !abbrev {
            let end = if j < chars.len() { chars[j].0 } else { text.len() };
            if end > start && end < text.len() {
                ends.push(end);
            }
            start = end;
        }
    }
    cover(text.len(), ends)
}

/// The sentences of `text`, trimmed, empty ones dropped.
pub(crate) fn sentences(text: &str) -> Vec<&str> {
    sentence_ranges(text).into_iter().map(|r| text[r].trim()).filter(|s| !s.is_empty()).collect()
}

/// Whether `s` ends like a finished sentence (a closing quote or bracket after the mark allowed).
pub(crate) fn ends_sentence(s: &str) -> bool {
    s.trim_end_matches(['"', '”', '»', ')', '\'']).ends_with(['.', '!', '?', '…'])
}

/// Whether `title` is how `text` starts: a title taken from the text's first line (an input with no title of
/// its own), whole or cut short with '…', rather than one that came with the article.
pub(crate) fn title_opens(title: &str, text: &str) -> bool {
    let title = title.trim();
    let stem = title.strip_suffix('…').unwrap_or(title).trim_end();
    !stem.is_empty() && text.trim_start().trim_start_matches('#').trim_start().starts_with(stem)
}

/// Consecutive ranges from 0 to `len` cut at `ends` (increasing, each inside the text).
fn cover(len: usize, ends: Vec<usize>) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for e in ends {
        if e > start {
            out.push(start..e);
            start = e;
        }
    }
    if start < len {
        out.push(start..len);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_pieces_cover_the_text_and_end_at_lines_then_spaces() {
        let pieces = |t, max| bounded_pieces(t, max).collect::<Vec<_>>();
        assert_eq!(pieces("ab cd\nef gh\nij", 7), ["ab cd\n", "ef gh\n", "ij"]);
        assert_eq!(pieces("ab cd ef", 4), ["ab ", "cd ", "ef"]);
        assert_eq!(pieces("abcdefgh ij", 4), ["abcdefgh ", "ij"], "a longer word stays whole");
        assert_eq!(pieces("a\u{a0}b\u{3000}c", 4), ["a\u{a0}", "b\u{3000}", "c"], "wide spaces end on a boundary");
        assert_eq!(pieces("", 4), Vec::<&str>::new());
        let text = "Three million people, 1,200 trucks.\n\nIn 2023 they spent $4.5 billion. ".repeat(40);
        assert_eq!(pieces(&text, 100).concat(), text);
        assert!(pieces(&text, 100).iter().all(|p| p.len() <= 100));
    }

    #[test]
    fn a_title_opens_the_text_when_it_is_its_first_line_whole_or_cut_short() {
        let text = "(CNN)Michele Bachmann is comparing President Obama to a co-pilot. She said so on Tuesday.";
        assert!(title_opens("(CNN)Michele Bachmann is comparing President…", text));
        assert!(title_opens(text, text));
        assert!(title_opens("Storm warning", "# Storm warning\n\nRain today."));
        assert!(!title_opens("Bachmann compares Obama to co-pilot", text), "a title of its own");
        assert!(!title_opens("…", text));
    }

    #[test]
    fn paragraphs_by_blank_lines_or_by_lines() {
        let (p, sep) = paragraphs("One. Two.\nstill one.\n\n  Three.\n\n\nFour.");
        assert_eq!(p, ["One. Two.\nstill one.", "Three.", "Four."]);
        assert_eq!(sep, "\n\n");
        let (p, sep) = paragraphs("First line.\n Second line.\nThird.\n");
        assert_eq!(p, ["First line.", "Second line.", "Third."]);
        assert_eq!(sep, "\n");
        let (p, sep) = paragraphs("First line.\nSecond line.\n\rThird.");
        assert_eq!((p.len(), sep), (3, "\n"));
        assert_eq!(paragraphs("A b.\n\n\n  C d.  \n \nE.").0, vec!["A b.", "C d.", "E."]);
        assert_eq!(paragraphs("single").0, vec!["single"]);
    }

    #[test]
    fn ranges_cover_the_text() {
        for text in
            ["A. B.\n\nC! D?\n\n\n E", "one line only", "", "x.\ny.\nz", "Mr. Smith said 3.5 U.S. things. Done."]
        {
            for ranges in [paragraph_ranges(text), sentence_ranges(text)] {
                let joined: String = ranges.iter().map(|r| &text[r.clone()]).collect();
                assert_eq!(joined, text);
                assert!(ranges.iter().all(|r| !r.is_empty()));
            }
        }
    }

    #[test]
    fn sentences_keep_numbers_and_abbreviations_whole() {
        assert_eq!(
            sentences("Mr. Smith paid 3.5 million. «Bien», dijo. ¿Y ahora? 2026 starts."),
            ["Mr. Smith paid 3.5 million.", "«Bien», dijo.", "¿Y ahora?", "2026 starts."]
        );
        assert!(ends_sentence("He left.\"") && !ends_sentence("He left"));
    }
}
