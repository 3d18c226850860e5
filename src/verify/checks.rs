//! Hard checks of a claim against its article, without a model: numbers (digits or words), weekdays and
//! months, names of people, places and organisations, negation, and who does the main action. Each is
//! cheap and certain about what it sees; what none of them sees is left to `judge`.

use std::collections::HashSet;

use crate::job::record::Check;
use crate::text::lang::Lang;
use crate::text::names;
use crate::text::numbers;
use crate::verify::align::{self, stem, words};

/// The article as the checks read it.
pub(crate) struct Article<'a> {
    pub(crate) lang: Lang,
    pub(crate) sentences: &'a [&'a str],
    /// Number values (`numbers::Number::key`) the article states, however written, in either language's
    /// reading.
    numbers: HashSet<i64>,
    /// Weekdays (0–6) and months (7–18) the article names.
    dates: HashSet<u8>,
    /// The article prepared for name lookups, read once for all the claims.
    searched: names::Searched<'a>,
}

impl<'a> Article<'a> {
    pub(crate) fn new(text: &'a str, lang: Lang, sentences: &'a [&'a str]) -> Self {
        let mut numbers: HashSet<i64> =
            [Lang::En, Lang::Es].into_iter().flat_map(|l| numbers::extract(text, l)).map(|n| n.key()).collect();
        // "in his forties" states 40 as much as "40s" does.
        numbers.extend(words(text).iter().filter_map(|w| decade(w)).map(|d| d * 1000));
        let dates = words(text).iter().filter_map(|w| date_word(w)).collect();
        Article { lang, sentences, numbers, dates, searched: names::Searched::new(text, lang) }
    }
}

/// The decade a word names ("forties", "cuarentena" is not one: Spanish says "cuarenta y tantos").
fn decade(w: &str) -> Option<i64> {
    let tens = ["twenties", "thirties", "forties", "fifties", "sixties", "seventies", "eighties", "nineties"];
    tens.iter().position(|t| *t == w).map(|i| (i as i64 + 2) * 10)
}

/// A weekday (0–6) or month (7–18) word, in English or Spanish, accent-folded.
fn date_word(w: &str) -> Option<u8> {
    const DAYS: [[&str; 2]; 7] = [
        ["monday", "lunes"],
        ["tuesday", "martes"],
        ["wednesday", "miercoles"],
        ["thursday", "jueves"],
        ["friday", "viernes"],
        ["saturday", "sabado"],
        ["sunday", "domingo"],
    ];
    const MONTHS: [[&str; 2]; 12] = [
        ["january", "enero"],
        ["february", "febrero"],
        ["march", "marzo"],
        ["april", "abril"],
        // "may" is a verb far more often than the month: only Spanish "mayo" counts.
        ["", "mayo"],
        ["june", "junio"],
        ["july", "julio"],
        ["august", "agosto"],
        ["september", "septiembre"],
        ["october", "octubre"],
        ["november", "noviembre"],
        ["december", "diciembre"],
    ];
    if let Some(i) = DAYS.iter().position(|d| d.contains(&w)) {
        return Some(i as u8);
    }
    MONTHS.iter().position(|m| !w.is_empty() && m.contains(&w)).map(|i| 7 + i as u8)
}

/// Words that negate a clause.
fn is_negation(w: &str) -> bool {
    matches!(
        w,
        "not"
            | "no"
            | "never"
            | "nobody"
            | "nothing"
            | "none"
            | "neither"
            | "nor"
            | "without"
            | "nunca"
            | "jamas"
            | "ni"
            | "nadie"
            | "nada"
            | "ninguno"
            | "ninguna"
            | "ningun"
            | "sin"
            | "didn"
            | "doesn"
            | "don"
            | "isn"
            | "wasn"
            | "weren"
            | "won"
            | "cannot"
            | "hasn"
            | "haven"
    )
}

fn negated(text: &str) -> bool {
    // "n't" splits into "didn" + "t", which `is_negation` knows by its first half.
    words(text).iter().any(|w| is_negation(w))
}

/// Words that end a claim's subject but say nothing of the action: auxiliaries, modals and reporting
/// verbs.
fn is_auxiliary(w: &str) -> bool {
    matches!(
        w,
        "should"
            | "must"
            | "may"
            | "might"
            | "debe"
            | "deben"
            | "puede"
            | "pueden"
            | "is"
            | "are"
            | "was"
            | "were"
            | "has"
            | "have"
            | "had"
            | "will"
            | "would"
            | "could"
            | "can"
            | "did"
            | "does"
            | "said"
            | "says"
            | "told"
            | "es"
            | "son"
            | "fue"
            | "fueron"
            | "ha"
            | "han"
            | "habia"
            | "era"
            | "eran"
            | "sera"
            | "dijo"
            | "dice"
            | "esta"
            | "estan"
            | "estaba"
    )
}

/// Common English past tenses without "-ed".
fn is_irregular_verb(w: &str) -> bool {
    matches!(
        w,
        "shot"
            | "made"
            | "took"
            | "gave"
            | "found"
            | "left"
            | "won"
            | "lost"
            | "hit"
            | "killed"
            | "met"
            | "led"
            | "sent"
            | "held"
            | "brought"
            | "bought"
            | "sold"
            | "paid"
            | "built"
            | "fell"
            | "rose"
            | "ran"
            | "saw"
    )
}

/// Words that start an object or complement: the word before one, after a subject, is the verb.
fn starts_object(w: &str) -> bool {
    matches!(
        w,
        "a" | "an"
            | "the"
            | "his"
            | "her"
            | "their"
            | "its"
            | "to"
            | "un"
            | "una"
            | "unos"
            | "unas"
            | "el"
            | "la"
            | "los"
            | "las"
            | "al"
            | "su"
            | "sus"
            | "que"
            | "that"
    )
}

/// Words of a subject that say nothing of who it is.
fn is_determiner(w: &str) -> bool {
    matches!(
        w,
        "the"
            | "a"
            | "an"
            | "this"
            | "these"
            | "those"
            | "his"
            | "her"
            | "their"
            | "its"
            | "some"
            | "several"
            | "el"
            | "la"
            | "los"
            | "las"
            | "un"
            | "una"
            | "unos"
            | "unas"
            | "su"
            | "sus"
            | "de"
            | "del"
            | "of"
            | "este"
            | "esta"
            | "estos"
            | "estas"
            | "varios"
            | "varias"
    )
}

fn has_verb_ending(w: &str, lang: Lang) -> bool {
    match lang {
        Lang::Es => ["aron", "ieron", "aba", "aban"].iter().any(|e| w.ends_with(e)),
        _ => w.len() > 4 && w.ends_with("ed"),
    }
}

/// Forms of "to be": a sentence whose verb is one, or that goes on with one ("has been", "ha sido"),
/// states a condition or a passive, and names no actor.
fn is_be(w: &str) -> bool {
    matches!(
        w,
        "is" | "are"
            | "was"
            | "were"
            | "been"
            | "es"
            | "son"
            | "fue"
            | "fueron"
            | "era"
            | "eran"
            | "sera"
            | "sido"
            | "esta"
            | "estan"
            | "estaba"
    )
}

/// Words that open an introductory phrase ("During the 1960s, …", "Además, …"): the subject comes after
/// its comma.
fn opens_phrase(w: &str) -> bool {
    w.chars().all(|c| c.is_ascii_digit())
        || matches!(
            w,
            "during"
                | "in"
                | "on"
                | "at"
                | "after"
                | "before"
                | "since"
                | "while"
                | "according"
                | "additionally"
                | "however"
                | "meanwhile"
                | "durante"
                | "en"
                | "tras"
                | "despues"
                | "antes"
                | "desde"
                | "mientras"
                | "segun"
                | "ademas"
                | "sin"
        )
}

/// The claim's actor and main verb: the words before the first verb-like word (an auxiliary, a past-tense
/// ending, or a word followed by the start of an object), content words only, and that verb. `None` when
/// no verb shows within the first words, the subject is only a pronoun, or the verb is a form of "to be"
/// (a condition or a passive: no one acts).
pub(crate) fn actor(claim: &str, lang: Lang) -> Option<(Vec<String>, String)> {
    let claim = match claim.split_once(',') {
        Some((head, rest)) if words(head).first().is_some_and(|w| opens_phrase(w)) && words(head).len() <= 7 => rest,
        _ => claim,
    };
    let ws = words(claim);
    // The Spanish preterite's stressed "-ó" ("ocurrió", "murió") is lost when accents are folded, so it is
    // read from the claim as written.
    let preterites: HashSet<String> = match lang {
        Lang::Es => claim
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| w.chars().count() > 3 && w.ends_with('ó'))
            .flat_map(words)
            .collect(),
        _ => HashSet::new(),
    };
    let limit = ws.len().min(7);
    let at = (1..limit).find(|&i| {
        let w = &ws[i];
        !is_determiner(w)
            && (is_auxiliary(w)
                || is_irregular_verb(w)
                || has_verb_ending(w, lang)
                || preterites.contains(w)
                || ws.get(i + 1).is_some_and(|n| starts_object(n) && !is_determiner(&ws[i - 1])))
    })?;
    let subject: Vec<String> =
        ws[..at].iter().filter(|w| !is_determiner(w) && w.chars().count() > 2).cloned().collect();
    const PRONOUNS: &[&str] = &["he", "she", "they", "it", "we", "el", "ella", "ellos", "ellas", "who", "which"];
    if subject.is_empty() || subject.iter().all(|w| PRONOUNS.contains(&w.as_str())) {
        return None;
    }
    if is_be(&ws[at]) || (is_auxiliary(&ws[at]) && ws.get(at + 1).is_some_and(|w| is_be(w))) {
        return None;
    }
    if is_event_verb(&ws, at) || (is_auxiliary(&ws[at]) && at + 1 < ws.len() && is_event_verb(&ws, at + 1)) {
        return None;
    }
    Some((subject, ws[at].clone()))
}

/// Whether the verb at `at` of `ws` only says that something took place ("the incident occurred", "el
/// accidente ocurrió", "tuvo lugar", "se produjo"): its subject is the event itself, which a summary names
/// in its own words ("the incident" for "the crash"), not someone who acted.
fn is_event_verb(ws: &[String], at: usize) -> bool {
    let w = ws[at].as_str();
    let next = ws.get(at + 1).map(String::as_str);
    let before = at.checked_sub(1).map(|i| ws[i].as_str());
    ["occur", "happen", "ocurr", "suced"].iter().any(|p| w.starts_with(p))
        || (matches!(w, "take" | "takes" | "took" | "taken" | "taking") && next == Some("place"))
        || (matches!(w, "tuvo" | "tiene" | "tendra" | "tuvieron" | "tienen") && next == Some("lugar"))
        || (w.starts_with("produ") && before == Some("se"))
}

/// What failed for `claim` (in `lang`), with `evidence` the indices of its best article sentences, best
/// overlap first allowed in any order, and `top` the one that overlaps it most.
pub(crate) fn run(
    claim: &str,
    lang: Lang,
    article: &Article<'_>,
    evidence: &[usize],
    top: Option<usize>,
) -> Vec<Check> {
    let mut failed = Vec::new();
    let claim_numbers = numbers::extract(claim, lang);
    if claim_numbers.iter().any(|n| !article.numbers.contains(&n.key())) {
        failed.push(Check::Number);
    }
    if words(claim).iter().filter_map(|w| date_word(w)).any(|d| !article.dates.contains(&d)) {
        failed.push(Check::Date);
    }
    if names::extract(claim, lang).iter().any(|n| !article.searched.has(&n.surface, lang)) {
        failed.push(Check::Name);
    }
    if let Some(top) = top.and_then(|i| article.sentences.get(i)) {
        if lang == article.lang && negated(claim) != negated(top) {
            failed.push(Check::Negation);
        }
    }
    if lang == article.lang && !actor_found(claim, lang, article, evidence) {
        failed.push(Check::Actor);
    }
    failed
}

/// Whether the claim's actor is in its evidence, and, where the article uses the claim's verb at all,
/// in a sentence with that verb: "the police shot him" fails when the article's sentences with "shot"
/// name an attacker, even though the police appear elsewhere.
fn actor_found(claim: &str, lang: Lang, article: &Article<'_>, evidence: &[usize]) -> bool {
    let Some((subject, verb)) = actor(claim, lang) else { return true };
    let stems = |t: &str| -> HashSet<String> { words(t).iter().map(|w| stem(w, align::STEM)).collect() };
    let subject: Vec<String> = subject.iter().map(|w| stem(w, align::STEM)).collect();
    // An auxiliary says nothing of the action: then the evidence alone must name the actor.
    if !is_auxiliary(&verb) {
        let verb = stem(&verb, align::STEM);
        let with_verb: Vec<HashSet<String>> =
            article.sentences.iter().map(|s| stems(s)).filter(|s| s.contains(&verb)).collect();
        if !with_verb.is_empty() {
            return with_verb.iter().any(|s| subject.iter().all(|w| s.contains(w)));
        }
    }
    let ev: HashSet<String> =
        evidence.iter().filter_map(|i| article.sentences.get(*i)).flat_map(|s| stems(s)).collect();
    subject.iter().all(|w| ev.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ES: &[&str] = &[
        "Disparan varias veces a un hombre con una carabina en Ilfracombe",
        "Han disparado varias veces a un hombre con una carabina mientras volvía a casa caminando.",
        "La víctima, un hombre de unos 40 años, se encontraba en el área de Oxford Grove de Ilfracombe.",
        "Los oficiales de policía describieron el tiroteo, que ocurrió el sábado, como un acto aleatorio.",
        "La víctima no vio a su atacante.",
    ];

    fn article(sentences: &'static [&'static str]) -> (String, &'static [&'static str]) {
        (sentences.join(" "), sentences)
    }

    #[test]
    fn an_invented_actor_fails_and_the_real_one_passes() {
        let (text, s) = article(ES);
        let a = Article::new(&text, Lang::Es, s);
        let bad = "Los oficiales de policía dispararon varias veces a un hombre con una carabina.";
        assert_eq!(actor(bad, Lang::Es).map(|a| a.1), Some("dispararon".into()));
        assert!(run(bad, Lang::Es, &a, &[0, 1, 3], Some(1)).contains(&Check::Actor));
        let good = "La policía describió el tiroteo como un acto aleatorio.";
        assert_eq!(actor(good, Lang::Es), Some((vec!["policia".into()], "describio".into())));
        assert_eq!(actor("Drivers should avoid the area.", Lang::En).map(|a| a.1), Some("should".into()));
        // An introductory phrase is not the subject; a state or a passive has no actor.
        let intro = actor("During the 1960s, Brzezinski worked for Kennedy.", Lang::En);
        assert_eq!(intro, Some((vec!["brzezinski".into()], "worked".into())));
        assert_eq!(actor("Traffic has been suspended on the bridge.", Lang::En), None);
        assert_eq!(actor("The newborn was about six feet tall.", Lang::En), None);
        // A verb that only says something took place has no one acting.
        assert_eq!(actor("The incident occurred on Thursday afternoon.", Lang::En), None);
        assert_eq!(actor("El accidente ocurrió cerca de la calle Evelyn.", Lang::Es), None);
        assert_eq!(actor("The final round will take place in Paris.", Lang::En), None);
        assert_eq!(actor("The police took the man to hospital.", Lang::En).map(|a| a.1), Some("took".into()));
        assert!(run(good, Lang::Es, &a, &[3], Some(3)).is_empty(), "{:?}", run(good, Lang::Es, &a, &[3], Some(3)));
    }

    #[test]
    fn numbers_dates_names_and_negation() {
        let (text, s) = article(ES);
        let a = Article::new(&text, Lang::Es, s);
        assert_eq!(run("La víctima tenía unos cuarenta años.", Lang::Es, &a, &[2], Some(2)), vec![]);
        assert_eq!(run("La víctima tenía 45 años.", Lang::Es, &a, &[2], Some(2)), vec![Check::Number]);
        assert_eq!(run("El tiroteo ocurrió el sábado.", Lang::Es, &a, &[3], Some(3)), vec![]);
        assert_eq!(run("El tiroteo ocurrió el lunes.", Lang::Es, &a, &[3], Some(3)), vec![Check::Date]);
        assert!(run("El tiroteo ocurrió en Barnstaple.", Lang::Es, &a, &[3], Some(3)).contains(&Check::Name));
        assert!(run("La víctima vio a su atacante.", Lang::Es, &a, &[4], Some(4)).contains(&Check::Negation));
        // Across languages: values and names still compare, and an English decade word is a number.
        assert_eq!(run("The victim was in his forties, in Ilfracombe.", Lang::En, &a, &[2], Some(2)), vec![]);
        assert_eq!(run("It happened on Monday.", Lang::En, &a, &[3], Some(3)), vec![Check::Date]);
    }
}
