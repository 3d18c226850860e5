//! chrF as sacrebleu (2.x, `CHRF()` defaults) defines it: character n-grams of orders 1–6 over the text with
//! all whitespace removed, β = 2, precision and recall averaged over the orders that occur in both texts
//! ("effective order"), then combined into one F-score on a 0–100 scale.

use std::collections::HashMap;

/// Character n-gram orders 1..=CHAR_ORDER (sacrebleu's default).
pub(crate) const CHAR_ORDER: usize = 6;
/// Recall weighs β² = 4 times as much as precision (sacrebleu's default β).
pub(crate) const BETA: f64 = 2.0;

/// Sentence-level chrF of `hypothesis` against one `reference`, 0–100.
pub(crate) fn chrf(hypothesis: &str, reference: &str) -> f64 {
    let hyp = strip_whitespace(hypothesis);
    let refr = strip_whitespace(reference);
    let factor = BETA * BETA;
    let (mut avg_prec, mut avg_rec, mut effective) = (0.0, 0.0, 0usize);
    for n in 1..=CHAR_ORDER {
        let h = ngrams(&hyp, n);
        let r = ngrams(&refr, n);
        let n_hyp: usize = h.values().sum();
        let n_ref: usize = r.values().sum();
        if n_hyp == 0 || n_ref == 0 {
            continue;
        }
        let matched: usize = h.iter().map(|(g, c)| (*c).min(r.get(g).copied().unwrap_or(0))).sum();
        avg_prec += matched as f64 / n_hyp as f64;
        avg_rec += matched as f64 / n_ref as f64;
        effective += 1;
    }
    if effective == 0 {
        return 0.0;
    }
    avg_prec /= effective as f64;
    avg_rec /= effective as f64;
    if avg_prec + avg_rec == 0.0 {
        return 0.0;
    }
    100.0 * (1.0 + factor) * avg_prec * avg_rec / (factor * avg_prec + avg_rec)
}

/// Python's `''.join(s.split())`: `str.split()` also splits on the separators U+001C–U+001F.
fn strip_whitespace(s: &str) -> Vec<char> {
    s.chars().filter(|c| !c.is_whitespace() && !('\u{1c}'..='\u{1f}').contains(c)).collect()
}

fn ngrams(chars: &[char], n: usize) -> HashMap<&[char], usize> {
    let mut out = HashMap::new();
    if chars.len() >= n {
        for w in chars.windows(n) {
            *out.entry(w).or_insert(0) += 1;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected values computed with sacrebleu 2.6.0: `CHRF().sentence_score(hyp, [ref]).score`.
    #[test]
    fn matches_sacrebleu() {
        let cases = [
            ("The cat sat on the mat.", "The cat is on the mat.", 67.17273492330233),
            (
                "Mexico will build 14,000 homes in 2025, President Sheinbaum said.",
                "President Sheinbaum announced that Mexico plans to build 14,000 houses next year.",
                47.65375926524957,
            ),
            (
                "El gobierno aprobó el presupuesto de 2026 con 65 votos a favor.",
                "El Gobierno aprobó los presupuestos de 2026 por sesenta y cinco votos.",
                49.097182374734224,
            ),
            ("abc", "xyz", 0.0),
            ("Same text here.", "Same text here.", 100.0),
        ];
        for (h, r, want) in cases {
            let got = chrf(h, r);
            assert!((got - want).abs() < 1e-9, "chrf({h:?}, {r:?}) = {got}, sacrebleu says {want}");
        }
    }

    #[test]
    fn whitespace_is_ignored_and_order_matters() {
        assert_eq!(chrf("a b c", "abc"), 100.0);
        assert_eq!(chrf("", "abc"), 0.0);
        // Not symmetric: β weighs recall, so a short hypothesis scores lower than the reverse.
        assert!(chrf("cat", "the cat sat") < chrf("the cat sat", "cat"));
    }

    /// By hand: hyp "ab", ref "abc". Order 1: P = 2/2, R = 2/3; order 2: P = 1/1, R = 1/2; orders 3–6 are
    /// absent from the hypothesis. Mean P = 1, mean R = 7/12; F2 = 5·P·R / (4P + R) = (35/12) / (55/12) = 7/11.
    #[test]
    fn hand_computed() {
        assert!((chrf("ab", "abc") - 700.0 / 11.0).abs() < 1e-9);
    }
}
