//! Proper names in a summary: sequences of capitalized words ("Claudia Sheinbaum", "Banco de España",
//! "Bank of England"), except a sequence that starts a sentence, which counts only when the same sequence
//! occurs again in the text (else "The", "Según", "Officials" would be names). A small stopword list per
//! language removes capitalized words that are not names (articles, pronouns, months, days, titles), and
//! English words for a country's people ("Cubans") are not names either, unless a name follows them.
//!
//! Matching across languages is case- and accent-insensitive ("México" = "Mexico") and lenient: a name is
//! present in the other text when any of its significant words occurs there as a word, or, across
//! languages, as a word of one of its names spelled nearly alike ("Iraq" = "Irak"), or a known
//! translation of it does ("United States" = "Estados Unidos", and every name of every country:
//! `text::countries`).

use std::collections::HashSet;
use std::sync::OnceLock;

use crate::text::countries;
use crate::text::lang;
use crate::text::numbers::{fold_accents, Lang};

#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub(crate) struct Name {
    /// As written.
    pub(crate) surface: String,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Lowercase connectors allowed inside a name between capitalized words.
fn is_connector(lang: Lang, w: &str) -> bool {
    // Languages without their own lists read as English.
    match lang {
        Lang::Es => matches!(w, "de" | "del" | "la" | "las" | "los"),
        _ => matches!(w, "of" | "de" | "del" | "von" | "van" | "al"),
    }
}

/// Capitalized words that are not names (compared accent-folded and lowercase).
fn is_stopword(lang: Lang, w: &str) -> bool {
    const COMMON: &[&str] = &[
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "enero",
        "febrero",
        "marzo",
        "abril",
        "mayo",
        "junio",
        "julio",
        "agosto",
        "septiembre",
        "octubre",
        "noviembre",
        "diciembre",
        "lunes",
        "martes",
        "miercoles",
        "jueves",
        "viernes",
        "sabado",
        "domingo",
    ];
    const EN: &[&str] = &[
        "the",
        "a",
        "an",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "he",
        "she",
        "they",
        "we",
        "you",
        "i",
        "his",
        "her",
        "their",
        "our",
        "in",
        "on",
        "at",
        "for",
        "from",
        "with",
        "by",
        "to",
        "of",
        "and",
        "but",
        "or",
        "if",
        "as",
        "after",
        "before",
        "while",
        "when",
        "however",
        "also",
        "there",
        "here",
        "mr",
        "mrs",
        "ms",
        "dr",
        "according",
        "meanwhile",
        "summary",
        "english",
        "european",
        "welsh",
        "scottish",
        "asian",
        "muslim",
        "christian",
        "democrat",
        "democrats",
        "republican",
        "republicans",
    ];
    const ES: &[&str] = &[
        "el",
        "la",
        "los",
        "las",
        "un",
        "una",
        "unos",
        "unas",
        "este",
        "esta",
        "estos",
        "estas",
        "ese",
        "esa",
        "en",
        "de",
        "del",
        "por",
        "para",
        "con",
        "sin",
        "segun",
        "tras",
        "y",
        "o",
        "pero",
        "si",
        "como",
        "cuando",
        "aunque",
        "ademas",
        "sin embargo",
        "su",
        "sus",
        "se",
        "al",
        "lo",
        "le",
        "les",
        "ellos",
        "ellas",
        "el",
        "ella",
        "sr",
        "sra",
        "dr",
        "dra",
        "resumen",
        "tambien",
        "mientras",
        "durante",
        "asimismo",
    ];
    let w = fold_accents(w);
    if w.contains('-') {
        return w.split('-').all(|part| is_stopword(lang, part));
    }
    COMMON.contains(&w.as_str())
        || match lang {
            Lang::Es => ES.contains(&w.as_str()),
            _ => EN.contains(&w.as_str()) || is_demonym(&w),
        }
}

/// Whether a folded English word names a country's people ("cuban", "cubans", "japanese"), which Spanish
/// writes in lowercase ("cubanos"): a word, not a name, unless a name follows it ("Dominican Republic").
fn is_demonym(folded: &str) -> bool {
    static DEMONYMS: OnceLock<HashSet<String>> = OnceLock::new();
    DEMONYMS
        .get_or_init(|| {
            let mut set = HashSet::new();
            for c in countries::all() {
                for d in c.demonym.into_iter().flat_map(|d| d.split(',')).map(str::trim) {
                    // "South Korean" → "korean"; "Cocos Islander", "Vatican Citizen" say what, not who.
                    let Some(last) = d.split(' ').next_back() else { continue };
                    let named_for_people = ["an", "ese", "ish", "i"].iter().any(|e| last.ends_with(e));
                    // The data gives some places their own name as demonym ("Gibraltar").
                    let a_place = c.names.iter().any(|n| n.eq_ignore_ascii_case(d));
                    if a_place || (d.contains(' ') && !named_for_people) {
                        continue;
                    }
                    let one = fold_accents(last);
                    if !["ese", "sh", "ch", "ss"].iter().any(|e| one.ends_with(e)) {
                        set.insert(format!("{one}s"));
                    }
                    set.insert(one);
                }
            }
            set
        })
        .contains(folded)
}

struct Word<'a> {
    text: &'a str,
    start: usize,
    end: usize,
    sentence_start: bool,
    /// Only whitespace separates it from the previous word ("Co" in "O'Brien & Co" is not joined).
    joined: bool,
}

fn words(text: &str) -> Vec<Word<'_>> {
    let mut out = Vec::new();
    let mut sentence_start = true;
    let mut it = text.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        if c.is_alphanumeric() {
            let mut end = i + c.len_utf8();
            while let Some(&(j, d)) = it.peek() {
                // Keep inner apostrophes and hyphens: "O'Brien", "Jean-Luc". A capitalized word joined to a
                // lowercase one is a name and a word: "Iraq-led" names "Iraq".
                let after = text[j + d.len_utf8()..].chars().next();
                let inner = (d == '\'' || d == '’' || d == '-')
                    && after.is_some_and(|n| n.is_alphanumeric())
                    && !(d == '-' && c.is_uppercase() && after.is_some_and(char::is_lowercase));
                if d.is_alphanumeric() || inner {
                    end = j + d.len_utf8();
                    it.next();
                } else {
                    break;
                }
            }
            // A possessive "'s" is not part of the name: "Peru's" → "Peru".
            for poss in ["'s", "’s"] {
                if text[i..end].ends_with(poss) && end - poss.len() > i {
                    end -= poss.len();
                }
            }
            let joined = out.last().is_some_and(|p: &Word| text[p.end..i].chars().all(char::is_whitespace));
            out.push(Word { text: &text[i..end], start: i, end, sentence_start, joined });
            sentence_start = false;
        } else if matches!(c, '.' | '!' | '?' | '\n' | ':' | ';' | '¿' | '¡') {
            // "Mr." and initials do not end a sentence.
            let prev = out.last().map(|w: &Word| w.text).unwrap_or("");
            let abbreviation = c == '.'
                && (prev.chars().count() == 1
                    || matches!(fold_accents(prev).as_str(), "mr" | "mrs" | "ms" | "dr" | "sr" | "sra" | "st" | "jr"));
            if !abbreviation && c != ';' {
                sentence_start = true;
            }
        }
    }
    out
}

fn capitalized(w: &str) -> bool {
    let mut cs = w.chars();
    cs.next().is_some_and(|c| c.is_uppercase()) && !w.chars().any(|c| c.is_ascii_digit())
}

/// Every proper name in `text`, in order, each once (the first occurrence).
pub(crate) fn extract(text: &str, lang: Lang) -> Vec<Name> {
    let ws = words(text);
    let mut seqs: Vec<(usize, usize, bool)> = Vec::new(); // word index range, starts a sentence
    let mut i = 0;
    while i < ws.len() {
        // Asked only of a capitalized stopword: every word of every summary passes here.
        let opens_name = || {
            is_demonym(&fold_accents(ws[i].text))
                && ws
                    .get(i + 1)
                    .is_some_and(|n| n.joined && capitalized(n.text) && !n.sentence_start && !is_stopword(lang, n.text))
        };
        if !capitalized(ws[i].text) || (is_stopword(lang, ws[i].text) && !all_caps(ws[i].text) && !opens_name()) {
            i += 1;
            continue;
        }
        let mut j = i + 1;
        loop {
            if j < ws.len()
                && ws[j].joined
                && capitalized(ws[j].text)
                && !ws[j].sentence_start
                && !is_stopword(lang, ws[j].text)
            {
                j += 1;
                continue;
            }
            // A run of connectors followed by a capitalized word: "Banco de España", "Bank of England".
            let mut k = j;
            while k < ws.len() && ws[k].joined && is_connector(lang, ws[k].text) && k - j < 2 {
                k += 1;
            }
            if k > j
                && k < ws.len()
                && ws[k].joined
                && capitalized(ws[k].text)
                && !ws[k].sentence_start
                && !is_stopword(lang, ws[k].text)
            {
                j = k + 1;
                continue;
            }
            break;
        }
        seqs.push((i, j, ws[i].sentence_start));
        i = j;
    }
    let key =
        |a: usize, b: usize| -> String { ws[a..b].iter().map(|w| fold_accents(w.text)).collect::<Vec<_>>().join(" ") };
    let mut out: Vec<Name> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for &(a, b, at_start) in &seqs {
        let k = key(a, b);
        if single_letter(&k) {
            continue;
        }
        // At a sentence start, capitalization says nothing: keep it only when the sequence is repeated
        // (anywhere, counting the sentence starts) in the text. Its later words are capitalized for a
        // reason: "Mayor José Luis Martínez-Almeida said" keeps "José Luis Martínez-Almeida".
        let mut a = a;
        let mut k = k;
        if at_start && seqs.iter().filter(|&&(x, y, _)| key(x, y) == k).count() < 2 {
            if b - a < 2 {
                continue;
            }
            a += 1;
            k = key(a, b);
        }
        if seen.contains(&k) {
            continue;
        }
        seen.push(k);
        out.push(Name {
            surface: text[ws[a].start..ws[b - 1].end].to_string(),
            start: ws[a].start,
            end: ws[b - 1].end,
        });
    }
    out
}

fn all_caps(w: &str) -> bool {
    w.chars().count() > 1 && w.chars().all(|c| !c.is_lowercase())
}

fn single_letter(k: &str) -> bool {
    k.chars().count() <= 1
}

/// Names whose form differs between the languages (folded, lowercase): English, Spanish. Countries are
/// in `text::countries`.
const EXONYMS: &[(&str, &str)] = &[
    ("us", "eeuu"),
    ("us", "ee uu"),
    ("uk", "reino unido"),
    ("britain", "gran bretana"),
    ("european union", "union europea"),
    ("eu", "ue"),
    ("united nations", "naciones unidas"),
    ("un", "onu"),
    ("nato", "otan"),
    ("london", "londres"),
    ("england", "inglaterra"),
    ("wales", "gales"),
    ("scotland", "escocia"),
    ("new york", "nueva york"),
    ("washington", "washington"),
    ("white house", "casa blanca"),
    ("congress", "congreso"),
    ("senate", "senado"),
    ("supreme court", "tribunal supremo"),
    ("supreme court", "corte suprema"),
    ("parliament", "parlamento"),
    ("assembly", "asamblea"),
    ("government", "gobierno"),
    ("police", "policia"),
    ("father christmas", "papa noel"),
];

/// Each country's names, folded as `Searched` folds a text; names of fewer letters than this are left out
/// ("USA" is a Spanish verb folded).
fn country_names() -> &'static [Vec<String>] {
    static NAMES: OnceLock<Vec<Vec<String>>> = OnceLock::new();
    NAMES.get_or_init(|| {
        countries::all()
            .iter()
            .map(|c| {
                c.names
                    .iter()
                    .filter(|n| n.chars().filter(|ch| ch.is_alphabetic()).count() >= MIN_COUNTRY_NAME_LETTERS)
                    .map(|n| folded_words(n).join(" "))
                    .collect()
            })
            .collect()
    })
}

const MIN_COUNTRY_NAME_LETTERS: usize = 4;

/// Words of a name that can identify it on their own (not connectors, not titles, 3+ letters or an acronym).
fn significant_words(name: &str, lang: Lang) -> Vec<String> {
    let raw = words(name);
    let single = raw.len() == 1;
    raw.iter()
        .filter_map(|w| {
            let f = fold_word(w.text);
            // An acronym counts at any length ("AM" in "AMs de Wales").
            let acronym = all_caps(w.text.strip_suffix('s').unwrap_or(w.text));
            let keep = !f.is_empty()
                && !is_connector(lang, &f)
                && !is_stopword(lang, &f)
                && !is_title(&f)
                && (f.chars().count() >= 3 || acronym || single);
            keep.then_some(f)
        })
        .collect()
}

fn is_title(w: &str) -> bool {
    matches!(
        w,
        "president"
            | "presidente"
            | "presidenta"
            | "minister"
            | "ministro"
            | "ministra"
            | "prime"
            | "primer"
            | "primera"
            | "king"
            | "rey"
            | "queen"
            | "reina"
            | "senator"
            | "senador"
            | "senadora"
            | "governor"
            | "gobernador"
            | "gobernadora"
            | "mayor"
            | "alcalde"
            | "alcaldesa"
            | "general"
            | "judge"
            | "juez"
            | "jueza"
            | "sir"
            | "lord"
            | "lady"
            | "pope"
            | "papa"
            | "saint"
            | "san"
            | "santa"
    )
}

/// Folded words of a text, for whole-word lookups; plural acronyms lose their "s" ("AMs" → "am").
fn folded_words(text: &str) -> Vec<String> {
    words(text).iter().map(|w| fold_word(w.text)).collect()
}

fn fold_word(raw: &str) -> String {
    let f = fold_accents(raw);
    if raw.len() > 2 && raw.ends_with('s') && raw[..raw.len() - 1].chars().all(|c| c.is_uppercase()) {
        f[..f.len() - 1].to_string()
    } else {
        f
    }
}

fn contains_phrase(words: &[String], phrase: &str) -> bool {
    let p: Vec<&str> = phrase.split(' ').collect();
    !p.is_empty() && words.windows(p.len()).any(|w| w.iter().zip(&p).all(|(a, b)| a == b))
}

/// A text prepared for [`Searched::has`]: its folded words, and the significant words of its own names,
/// found once, when a name from the other language first needs them; so a text searched for each name of
/// another is read once, not once per name.
pub(crate) struct Searched<'a> {
    text: &'a str,
    lang: Lang,
    words: Vec<String>,
    names: std::cell::OnceCell<Vec<String>>,
}

impl<'a> Searched<'a> {
    pub(crate) fn new(text: &'a str, lang: Lang) -> Self {
        Searched { text, lang, words: folded_words(text), names: std::cell::OnceCell::new() }
    }

    /// Whether `name` (from a text in `lang`) is present in this text.
    pub(crate) fn has(&self, name: &str, lang: Lang) -> bool {
        let (words, other_lang) = (&self.words, self.lang);
        let folded = folded_words(name).join(" ");
        if contains_phrase(words, &folded) {
            return true;
        }
        let name_words: Vec<String> = folded.split(' ').map(str::to_string).collect();
        for &(en, es) in EXONYMS {
            // Within one language either form may stand for the other: a translation, and above all a
            // translation back, keeps "NATO" in Spanish text or "OTAN" in English often enough.
            // A short form must stand in capitals there, or "ONU" would be found in any "un".
            let forms = match (lang, other_lang) {
                (Lang::En, Lang::Es) => vec![(en, es)],
                (Lang::Es, Lang::En) => vec![(es, en)],
                (Lang::En, Lang::En) | (Lang::Es, Lang::Es) => vec![(en, es), (es, en)]
                    .into_iter()
                    .filter(|(_, theirs)| theirs.len() > 3 || has_capitals(self.text, theirs))
                    .collect(),
                _ => continue,
            };
            if forms.iter().any(|(mine, theirs)| contains_phrase(&name_words, mine) && contains_phrase(words, theirs)) {
                return true;
            }
        }
        // A country by another of its names ("South Korea", "Corea del Sur"): in any language, as above.
        if country_names().iter().any(|names| {
            names.iter().any(|n| contains_phrase(&name_words, n)) && names.iter().any(|n| contains_phrase(words, n))
        }) {
            return true;
        }
        let significant = significant_words(name, lang);
        if significant.iter().any(|w| words.iter().any(|x| x == w)) {
            return true;
        }
        if lang == other_lang || significant.is_empty() {
            return false;
        }
        // Spelled alike, against the other text's names only: against every word, "Biden" would be found in
        // "bien" and "Peru" in "pero".
        let theirs = self.names.get_or_init(|| {
            extract(self.text, other_lang).iter().flat_map(|n| significant_words(&n.surface, other_lang)).collect()
        });
        significant.iter().any(|w| theirs.iter().any(|x| cognates(w, x)))
    }
}

/// Whether `name` (from a text in `lang`) is present in `other` (a text in `other_lang`); to look up several
/// names in one text, prepare it once with [`Searched`].
#[cfg(test)]
fn present_in(name: &str, lang: Lang, other: &str, other_lang: Lang) -> bool {
    Searched::new(other, other_lang).has(name, lang)
}

/// Shortest word the spelling rule below applies to: a letter more or less turns a shorter word into
/// another ("Ira" is not "Iraq").
const COGNATE_MIN_CHARS: usize = 4;
/// How alike two spellings must be (normalized Damerau-Levenshtein): set beforehand, checked on the dev
/// split's summaries.
const COGNATE_MIN_SIMILARITY: f64 = 0.75;

/// Whether two folded words are one name spelled the way each language spells it ("iraq"/"irak",
/// "syria"/"siria", "nicholas"/"nicolas"): the same first letter and nearly the same letters. Only
/// across languages, where an exonym table cannot list every place.
fn cognates(a: &str, b: &str) -> bool {
    let (na, nb) = (a.chars().count(), b.chars().count());
    na >= COGNATE_MIN_CHARS
        && nb >= COGNATE_MIN_CHARS
        && a.chars().next() == b.chars().next()
        && strsim::normalized_damerau_levenshtein(a, b) >= COGNATE_MIN_SIMILARITY
}

/// Whether `text` has `word` (a folded lowercase word) written in capitals, as an acronym.
fn has_capitals(text: &str, word: &str) -> bool {
    let upper = word.to_uppercase();
    text.split(|c: char| !c.is_alphanumeric()).any(|w| w == upper)
}

/// The language check of a generated text (`lang::check`), read again without the text's proper names when
/// the whole reads as another language: an English summary of a Spanish article can carry so many of its
/// names ("Manu Carreño", "Telecinco") that the detector reads it as Spanish, while its words are English.
/// The words must still be enough to judge.
pub(crate) fn check_language(text: &str, target: Lang) -> (bool, Option<Lang>) {
    let whole = lang::check(text, target);
    if whole.0 {
        return whole;
    }
    let mut words = text.to_string();
    for n in extract(text, target) {
        words = words.replace(&n.surface, " ");
    }
    if words.split_whitespace().count() < lang::CHECK_MIN_WORDS {
        return whole;
    }
    match lang::check(&words, target) {
        (true, detected) => (true, detected),
        _ => whole,
    }
}

/// Names of `a` missing from `b`, and names of `b` missing from `a`.
pub(crate) fn only_in(a: &str, a_lang: Lang, b: &str, b_lang: Lang) -> (Vec<Name>, Vec<Name>) {
    let (in_a, in_b) = (Searched::new(a, a_lang), Searched::new(b, b_lang));
    let left = extract(a, a_lang).into_iter().filter(|n| !in_b.has(&n.surface, a_lang)).collect();
    let right = extract(b, b_lang).into_iter().filter(|n| !in_a.has(&n.surface, b_lang)).collect();
    (left, right)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str, lang: Lang) -> Vec<String> {
        extract(text, lang).into_iter().map(|n| n.surface).collect()
    }

    #[test]
    fn english_names() {
        assert_eq!(
            names("The plan was announced by President Claudia Sheinbaum in Mexico City on Monday.", Lang::En),
            vec!["President Claudia Sheinbaum", "Mexico City"]
        );
        assert_eq!(names("Officials at the Bank of England said rates would rise.", Lang::En), vec!["Bank of England"]);
        // A sentence start is a name only when repeated.
        assert_eq!(names("Officials said so. Prices rose.", Lang::En), Vec::<String>::new());
        assert_eq!(names("Sheinbaum spoke. Later, Sheinbaum left.", Lang::En), vec!["Sheinbaum"]);
        assert_eq!(names("Assembly (AMs) worry about MWPs.", Lang::En), vec!["AMs", "MWPs"]);
        assert_eq!(
            names("Mayor José Luis Martínez-Almeida said so, and Peru's president agreed.", Lang::En),
            vec!["José Luis Martínez-Almeida", "Peru"]
        );
        assert_eq!(names("Talks with O'Brien & Co.", Lang::En), vec!["O'Brien", "Co"]);
    }

    #[test]
    fn a_countrys_people_are_not_a_name_and_a_word_joined_to_a_name_is_not_part_of_it() {
        assert_eq!(
            names("The Iraq-led coalition of Cubans and Japanese-Americans met a Pakistani envoy.", Lang::En),
            vec!["Iraq"]
        );
        // Followed by a name, the people's word is part of it.
        assert_eq!(
            names("He flew to the Dominican Republic on American Airlines.", Lang::En),
            vec!["Dominican Republic", "American Airlines"]
        );
        assert_eq!(names("Talks with Jean-Luc Picard.", Lang::En), vec!["Jean-Luc Picard"]);
    }

    #[test]
    fn a_country_is_found_by_any_of_its_names() {
        assert!(present_in("South Korea", Lang::En, "Corea del Sur anunció", Lang::Es));
        assert!(present_in("Alemania", Lang::Es, "Germany said", Lang::En));
        assert!(present_in("Países Bajos", Lang::Es, "in the Netherlands", Lang::En));
        assert!(present_in("Japan", Lang::En, "en Japón", Lang::Es));
        assert!(!present_in("North Korea", Lang::En, "Corea del Sur anunció", Lang::Es));
        assert!(!present_in("Germany", Lang::En, "Francia dijo", Lang::Es));
    }

    #[test]
    fn a_text_full_of_another_languages_names_is_read_by_its_words() {
        let en = "The main contenders were Los Manolos, Manu Carreño and Manolo Lama (Cuatro), Antonio Garrido \
                  and Patricia Montero (Antena 3), the duo Sálvame, Javier Vázquez and Belén Esteban (Telecinco), \
                  Anne Igartiburu on TVE-1 and Berto and Ana Morgade (La Sexta).";
        assert_eq!(lang::check(en, Lang::En).1, Some(Lang::Es), "the detector alone reads the names");
        assert_eq!(check_language(en, Lang::En), (true, Some(Lang::En)));
        // Spanish words stay Spanish without the names.
        let es = "Los principales contendientes fueron Los Manolos, Manu Carreño y Manolo Lama, de Cuatro.";
        assert!(!check_language(es, Lang::En).0);
    }

    #[test]
    fn spanish_names() {
        assert_eq!(
            names("La presidenta Claudia Sheinbaum anunció el plan en la Ciudad de México el lunes.", Lang::Es),
            vec!["Claudia Sheinbaum", "Ciudad de México"]
        );
        assert_eq!(names("Según el Banco de España, la economía creció.", Lang::Es), vec!["Banco de España"]);
        assert_eq!(names("Según fuentes oficiales, nada cambió.", Lang::Es), Vec::<String>::new());
    }

    #[test]
    fn matching_is_case_and_accent_insensitive() {
        assert!(present_in("Mexico", Lang::En, "El gobierno de México anunció", Lang::Es));
        assert!(present_in("México", Lang::Es, "The government of MEXICO said", Lang::En));
        assert!(present_in("President Claudia Sheinbaum", Lang::En, "dijo Sheinbaum", Lang::Es));
        assert!(present_in("United States", Lang::En, "los Estados Unidos", Lang::Es));
        assert!(present_in("Papá Noel", Lang::Es, "Santa Claus or Father Christmas", Lang::En));
        assert!(present_in("EEUU", Lang::Es, "the US economy", Lang::En));
        // A name in the other language's form within one language: a translation back kept it.
        assert!(present_in("NATO", Lang::Es, "el acceso a la OTAN y la UE", Lang::Es));
        assert!(present_in("UE", Lang::En, "joined NATO and the EU", Lang::En));
        assert!(!present_in("NATO", Lang::Es, "el acceso a la UE", Lang::Es));
        assert!(!present_in("ONU", Lang::Es, "hubo un acuerdo", Lang::Es));
        assert!(present_in("ONU", Lang::Es, "un acuerdo de la UN", Lang::Es));
        assert!(present_in("AMs", Lang::En, "los AM galeses", Lang::Es));
        assert!(present_in("AMs de Wales", Lang::Es, "Welsh AMs are worried", Lang::En));
        assert!(!present_in("Consejo de Wales", Lang::Es, "the council de la", Lang::En));
        assert!(!present_in("Sheinbaum", Lang::En, "La presidenta anunció el plan", Lang::Es));
        assert!(!present_in("Mexico", Lang::En, "Estados Unidos anunció", Lang::Es));
        // A title alone does not make a match.
        assert!(!present_in("President Claudia Sheinbaum", Lang::En, "El presidente habló", Lang::Es));
    }

    #[test]
    fn a_place_spelled_the_other_languages_way_is_the_same_name() {
        assert!(present_in("Iraq", Lang::En, "las fuerzas kurdas en Irak y Siria", Lang::Es));
        assert!(present_in("Siria", Lang::Es, "Kurdish forces in Iraq and Syria", Lang::En));
        assert!(present_in("Saint Nicholas", Lang::En, "la fiesta de San Nicolás", Lang::Es));
        // Only across languages: within one, another spelling is another name.
        assert!(!present_in("Nicholas", Lang::En, "a letter from Nicolas", Lang::En));
        // Only names of the other text are read so: common words spelled nearly alike are not names.
        assert!(!present_in("Biden", Lang::En, "todo salió bien", Lang::Es));
        assert!(!present_in("Peru", Lang::En, "lo dijo, pero nadie escuchó", Lang::Es));
        assert!(!present_in("Paris", Lang::En, "en todo el país", Lang::Es));
        // Short names and other first letters are never taken for one another.
        assert!(!present_in("Iraq", Lang::En, "según dijo Ira Glass", Lang::Es));
        assert!(!present_in("Stancil", Lang::En, "dijo Stanley en la estancia", Lang::Es));
    }

    #[test]
    fn only_in_both_directions() {
        let en = "President Sheinbaum said Mexico will build 14,000 homes with help from the World Bank.";
        let es = "La presidenta Sheinbaum dijo que México construirá 14.000 viviendas, según Pemex.";
        let (l, r) = only_in(en, Lang::En, es, Lang::Es);
        assert_eq!(l.iter().map(|n| n.surface.as_str()).collect::<Vec<_>>(), vec!["World Bank"]);
        assert_eq!(r.iter().map(|n| n.surface.as_str()).collect::<Vec<_>>(), vec!["Pemex"]);
    }
}
