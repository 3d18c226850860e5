//! Language detection (lingua) and the languages polysum can write summaries in.
//!
//! Source articles and every generated summary go through the same detector, so "the Spanish summary is in
//! Spanish" means "lingua, choosing among the supported languages, says Spanish".

use std::str::FromStr;
use std::sync::OnceLock;

use anyhow::{bail, Result};
use lingua::{IsoCode639_1, Language, LanguageDetector, LanguageDetectorBuilder};

/// Languages that can be detected and targeted: (ISO 639-1 code, English name, own name).
pub const SUPPORTED: &[(&str, &str, &str)] = &[
    ("en", "English", "English"),
    ("es", "Spanish", "español"),
    ("fr", "French", "français"),
    ("de", "German", "Deutsch"),
    ("it", "Italian", "italiano"),
    ("pt", "Portuguese", "português"),
    ("ca", "Catalan", "català"),
    ("nl", "Dutch", "Nederlands"),
];

/// English name of a supported language code ("es" → "Spanish").
pub fn is_supported(code: &str) -> bool {
    SUPPORTED.iter().any(|l| l.0 == code)
}

pub fn english_name(code: &str) -> &'static str {
    SUPPORTED.iter().find(|l| l.0 == code).map(|l| l.1).unwrap_or("English")
}

/// The language's own name ("es" → "español").
pub fn native_name(code: &str) -> &'static str {
    SUPPORTED.iter().find(|l| l.0 == code).map(|l| l.2).unwrap_or("English")
}

/// Parse `en,es` into a list of distinct, supported codes (lower case, order kept).
pub fn parse_langs(list: &str) -> Result<Vec<String>> {
    let mut out: Vec<String> = Vec::new();
    for raw in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let code = raw.to_ascii_lowercase();
        if !SUPPORTED.iter().any(|l| l.0 == code) {
            let known: Vec<&str> = SUPPORTED.iter().map(|l| l.0).collect();
            bail!("unsupported language {raw:?}: polysum can write and verify {}", known.join(", "));
        }
        if !out.contains(&code) {
            out.push(code);
        }
    }
    if out.is_empty() {
        bail!("--langs is empty: give at least one language code, e.g. en,es");
    }
    Ok(out)
}

fn detector() -> &'static LanguageDetector {
    static DETECTOR: OnceLock<LanguageDetector> = OnceLock::new();
    DETECTOR.get_or_init(|| {
        let codes: Vec<IsoCode639_1> = SUPPORTED.iter().filter_map(|l| IsoCode639_1::from_str(l.0).ok()).collect();
        LanguageDetectorBuilder::from_iso_codes_639_1(&codes).build()
    })
}

/// The language of `text` as an ISO 639-1 code, or `None` when the detector cannot tell (too little text,
/// no letters). Long texts are sampled from their start: detection is linear in the length.
pub fn detect(text: &str) -> Option<String> {
    let sample: String = text.chars().take(4000).collect();
    if !sample.chars().any(char::is_alphabetic) {
        return None;
    }
    detector().detect_language_of(sample).map(code_of)
}

fn code_of(lang: Language) -> String {
    lang.iso_code_639_1().to_string()
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
    fn detects_english_and_spanish() {
        assert_eq!(
            detect("The government announced on Tuesday that taxes will rise next year.").as_deref(),
            Some("en")
        );
        assert_eq!(
            detect("El gobierno anunció el martes que los impuestos subirán el año que viene.").as_deref(),
            Some("es")
        );
        assert_eq!(detect("12345 678"), None);
    }
}
