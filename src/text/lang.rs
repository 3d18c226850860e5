//! Language detection (lingua) and the languages polysum can write summaries in.
//!
//! Source articles and every generated summary go through the same detector, so "the Spanish summary is in
//! Spanish" means "lingua, choosing among the supported languages, says Spanish".

use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use lingua::{IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder};

/// A language polysum can detect, write and check. Its serialized form is the ISO 639-1 code (`"es"`), and
/// the variants are in the codes' alphabetical order, so maps keyed by `Lang` serialize as maps keyed by code
/// always did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Lang {
    Ca,
    De,
    En,
    Es,
    Fr,
    It,
    Nl,
    Pt,
}

impl Lang {
    /// Every supported language, in the order lists name them (English and Spanish first).
    pub const ALL: [Lang; 8] = [Lang::En, Lang::Es, Lang::Fr, Lang::De, Lang::It, Lang::Pt, Lang::Ca, Lang::Nl];

    /// The ISO 639-1 code ("es").
    pub fn code(self) -> &'static str {
        self.names().0
    }

    /// The English name ("Spanish").
    pub fn english_name(self) -> &'static str {
        self.names().1
    }

    /// The language's own name ("español").
    pub fn native_name(self) -> &'static str {
        self.names().2
    }

    /// The code in capitals, as reports label a language ("ES").
    pub fn label(self) -> String {
        self.code().to_ascii_uppercase()
    }

    fn names(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Lang::En => ("en", "English", "English"),
            Lang::Es => ("es", "Spanish", "español"),
            Lang::Fr => ("fr", "French", "français"),
            Lang::De => ("de", "German", "Deutsch"),
            Lang::It => ("it", "Italian", "italiano"),
            Lang::Pt => ("pt", "Portuguese", "português"),
            Lang::Ca => ("ca", "Catalan", "català"),
            Lang::Nl => ("nl", "Dutch", "Nederlands"),
        }
    }
}

impl FromStr for Lang {
    type Err = anyhow::Error;

    /// A code, in any case ("ES" is Spanish).
    fn from_str(s: &str) -> Result<Lang> {
        let code = s.trim().to_ascii_lowercase();
        match Lang::ALL.into_iter().find(|l| l.code() == code) {
            Some(l) => Ok(l),
            None => {
                let known: Vec<&str> = Lang::ALL.iter().map(|l| l.code()).collect();
                bail!("unsupported language {s:?}: polysum can write and verify {}", known.join(", "))
            }
        }
    }
}

impl std::fmt::Display for Lang {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

// Hashed and ordered as its code is (the variants are in the codes' order), so a map keyed by `Lang` can be
// looked up by code.
impl std::hash::Hash for Lang {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.code().hash(state)
    }
}

impl std::borrow::Borrow<str> for Lang {
    fn borrow(&self) -> &str {
        self.code()
    }
}

impl PartialEq<&str> for Lang {
    fn eq(&self, other: &&str) -> bool {
        self.code() == *other
    }
}

/// Parse `en,es` into a list of distinct, supported languages (order kept).
pub fn parse_langs(list: &str) -> Result<Vec<Lang>> {
    let mut out: Vec<Lang> = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let lang: Lang = raw.parse()?;
        if !out.contains(&lang) {
            out.push(lang);
        }
    }
    if out.is_empty() {
        bail!("--langs is empty: give at least one language code, e.g. en,es");
    }
    Ok(out)
}

/// Fewest words a text needs for its language to be judged: shorter texts (names, datelines, scores) read
/// as any language and pass the check.
pub const CHECK_MIN_WORDS: usize = 5;

/// Whether `text` reads as `target` to the detector, and what it found; a text too short to judge passes.
/// Generated texts (summaries, notes, translations) go through `text::names::check_language`, which asks
/// this of the text and, when its names outvote its words, of its words alone.
pub fn check(text: &str, target: Lang) -> (bool, Option<Lang>) {
    if text.split_whitespace().count() < CHECK_MIN_WORDS {
        return (true, Some(target));
    }
    let detected = detect(text);
    (detected == Some(target), detected)
}

fn detector() -> &'static LanguageDetector {
    static DETECTOR: OnceLock<LanguageDetector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let codes: Vec<IsoCode639_1> = Lang::ALL.iter().filter_map(|l| IsoCode639_1::from_str(l.code()).ok()).collect();
        LanguageDetectorBuilder::from_iso_codes_639_1(&codes).build()
    })
}

/// The language of `text`, or `None` when the detector cannot tell (too little text, no letters). Long texts
/// are sampled from their start: detection is linear in the length.
pub fn detect(text: &str) -> Option<Lang> {
    let sample: String = text.chars().take(4000).collect();
    if !sample.chars().any(char::is_alphabetic) {
        return None;
    }
    detector().detect_language_of(sample).map(from_lingua)
}

/// The crate is built with lingua's models for exactly `Lang::ALL`, so this match covers every language it
/// can answer.
fn from_lingua(lang: Language) -> Lang {
    match lang {
        Language::Catalan => Lang::Ca,
        Language::German => Lang::De,
        Language::English => Lang::En,
        Language::Spanish => Lang::Es,
        Language::French => Lang::Fr,
        Language::Italian => Lang::It,
        Language::Dutch => Lang::Nl,
        Language::Portuguese => Lang::Pt,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_validates_language_lists() {
        assert_eq!(parse_langs("en, ES,en").unwrap(), vec!["en", "es"]);
        assert!(parse_langs("en,xx").unwrap_err().to_string().contains("xx"));
        assert!(parse_langs(" , ").is_err());
    }

    #[test]
    fn orders_as_its_code() {
        let mut by_code: Vec<&str> = Lang::ALL.iter().map(|l| l.code()).collect();
        by_code.sort();
        let mut langs = Lang::ALL.to_vec();
        langs.sort();
        assert_eq!(langs, by_code);
        assert_eq!(serde_json::to_string(&Lang::Es).unwrap(), "\"es\"");
    }

    #[test]
    fn detects_english_and_spanish() {
        assert_eq!(
            detect("The government announced on Tuesday that taxes will rise next year.").map(Lang::code),
            Some("en")
        );
        assert_eq!(
            detect("El gobierno anunció el martes que los impuestos subirán el año que viene.").map(Lang::code),
            Some("es")
        );
        assert_eq!(detect("12345 678"), None);
    }
}
