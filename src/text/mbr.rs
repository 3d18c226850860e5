//! One translation chosen among several candidates of the same source text (`--candidates`).
//!
//! Minimum Bayes risk: each candidate is scored by its mean chrF against the other candidates, so the one
//! that agrees most with the rest wins and a sample that wandered off loses. Before that, what can be
//! checked against the source decides: a candidate must be in the target language, and among those the
//! fewest names and numbers of the source lost and words the target dictionary does not know come first.
//! The first candidate (the greedy one, by the callers' convention) wins ties, so a choice among equals
//! changes nothing.

use crate::text::lang::Lang;
use crate::text::{chrf, lexicon, names, numbers};

/// Agreements closer than this are equal: the same texts summed in another order differ in the last bits.
const TIE: f64 = 1e-9;

/// What the choice saw of one candidate.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judged {
    /// In the target language and not empty.
    pub(crate) eligible: bool,
    /// The language it was read as (`names::check_language`).
    pub(crate) detected: Option<Lang>,
    /// Names and numbers of the source the candidate lost, plus words the target dictionary does not know.
    pub(crate) faults: usize,
    /// Of which words the target dictionary does not know (0 when it could not check).
    pub(crate) unknown: usize,
    /// Mean chrF against the other candidates (0 with one candidate).
    pub(crate) agreement: f64,
}

/// The index of the best of `candidates` (translations of `source`, written in `from`, into `to`) and what
/// was judged of each; `None` when no candidate is in the target language.
pub(crate) fn choose(source: &str, from: Lang, candidates: &[&str], to: Lang) -> (Option<usize>, Vec<Judged>) {
    let kept = Kept::new(source, from);
    let mut judged: Vec<Judged> = candidates
        .iter()
        .map(|c| {
            let (in_target, detected) = names::check_language(c, to);
            let eligible = c.chars().any(char::is_alphanumeric) && in_target;
            let unknown = lexicon::check(c, to).unknown_count();
            Judged { eligible, detected, faults: kept.lost(c, to) + unknown, unknown, agreement: 0.0 }
        })
        .collect();
    let eligible: Vec<usize> = (0..candidates.len()).filter(|&i| judged[i].eligible).collect();
    // Every candidate in the target language stands as a pseudo-reference for the others.
    if eligible.len() > 1 {
        for &i in &eligible {
            let sum: f64 =
                eligible.iter().filter(|&&j| j != i).map(|&j| chrf::chrf(candidates[i], candidates[j])).sum();
            judged[i].agreement = sum / (eligible.len() - 1) as f64;
        }
    }
    let best = eligible.iter().copied().reduce(|best, i| {
        let (b, c) = (&judged[best], &judged[i]);
        if c.faults < b.faults || (c.faults == b.faults && c.agreement > b.agreement + TIE) {
            i
        } else {
            best
        }
    });
    (best, judged)
}

/// The names and numbers of a source text, which a translation of it must keep.
pub(crate) struct Kept {
    from: Lang,
    numbers: Vec<i64>,
    names: Vec<names::Name>,
}

impl Kept {
    pub(crate) fn new(source: &str, from: Lang) -> Self {
        Kept {
            from,
            numbers: numbers::extract(source, from).iter().map(numbers::Number::key).collect(),
            names: names::extract(source, from),
        }
    }

    /// How many of the source's names and numbers `translation` (written in `to`) lost.
    pub(crate) fn lost(&self, translation: &str, to: Lang) -> usize {
        let found: Vec<i64> = numbers::extract(translation, to).iter().map(numbers::Number::key).collect();
        let lost_numbers = self.numbers.iter().filter(|k| !found.contains(k)).count();
        let lost_names = if self.names.is_empty() {
            0
        } else {
            let searched = names::Searched::new(translation, to);
            self.names.iter().filter(|n| !searched.has(&n.surface, self.from)).count()
        };
        lost_numbers + lost_names
    }
}

/// The part of a state key that tells candidate counts apart; one candidate keeps the key it always had.
pub(crate) fn key_suffix(candidates: usize) -> String {
    if candidates > 1 {
        format!("+c{candidates}")
    } else {
        String::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_candidate_closest_to_the_others_wins() {
        let cands = [
            "El concejo aprobó los presupuestos el martes.",
            "El consejo aprobó el presupuesto el martes.",
            "Los vecinos celebraron una fiesta en la plaza mayor.",
            "El consejo aprobó el presupuesto el martes.",
        ];
        let src = "The council approved the budget on Tuesday.";
        let (best, judged) = choose(src, Lang::En, &cands, Lang::Es);
        // The two that agree tie, and the first of them wins.
        assert_eq!(best, Some(1), "{judged:?}");
        assert!(judged[2].agreement < judged[0].agreement && judged[0].agreement < judged[1].agreement);
    }

    #[test]
    fn a_lost_number_or_name_outweighs_agreement() {
        let src = "Maria Lopez said 40 people were hurt in Valencia.";
        let cands = [
            "Maria Lopez dijo que 14 personas resultaron heridas en Valencia.",
            "Maria Lopez dijo que 14 personas resultaron heridas en Valencia ayer.",
            "Maria Lopez dijo que 40 personas resultaron heridas en Valencia.",
        ];
        let (best, judged) = choose(src, Lang::En, &cands, Lang::Es);
        assert_eq!(best, Some(2), "{judged:?}");
        assert!(judged[0].faults >= 1 && judged[2].faults < judged[0].faults);
        let cands =
            ["Ana dijo que 40 personas resultaron heridas.", "Maria Lopez dijo que 40 personas resultaron heridas."];
        assert_eq!(choose(src, Lang::En, &cands, Lang::Es).0, Some(1));
    }

    #[test]
    fn the_wrong_language_is_never_chosen_and_ties_keep_the_first() {
        let src = "The council approved the budget on Tuesday after a long debate.";
        let cands = [
            "The council approved the budget on Tuesday after a long debate.",
            "El consejo aprobó el presupuesto el martes tras un largo debate.",
        ];
        let (best, judged) = choose(src, Lang::En, &cands, Lang::Es);
        assert_eq!(best, Some(1));
        assert!(!judged[0].eligible);
        let same = ["El consejo aprobó el presupuesto el martes.", "El consejo aprobó el presupuesto el martes."];
        assert_eq!(choose(src, Lang::En, &same, Lang::Es).0, Some(0));
        assert_eq!(choose(src, Lang::En, &cands[..1], Lang::Es).0, None);
        assert_eq!(choose(src, Lang::En, &[], Lang::Es).0, None);
    }
}
