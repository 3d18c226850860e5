//! The lexical check: words of a text that are not words of its language — a non-word a small model made up
//! ("la ministria", "tweetó") or English left untranslated in Spanish ("ha spread") — found with a
//! hunspell-format dictionary, read by `spellbook` (the Helix editor's spell checker).
//!
//! Capitalised words, words with digits and single letters are exempt: no dictionary knows every name,
//! acronym or figure, and a sentence's first word is capitalised too. The dictionaries come from the system
//! (Debian/Ubuntu: `apt-get install hunspell-es hunspell-en-us`) or from `$POLYSUM_DICTIONARIES`; a
//! language without one is reported as not checked, never as clean.

use std::path::PathBuf;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};
use unicode_segmentation::UnicodeSegmentation;

use crate::text::lang::Lang;

/// What the check found in one text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(crate) enum LexicalCheck {
    /// Every checked word is in the dictionary.
    Clean,
    /// Words the dictionary does not know, in order of appearance, each once.
    Unknown { words: Vec<String> },
    /// No dictionary for the language: nothing was checked.
    NotRun { reason: String },
}

impl LexicalCheck {
    /// How many words the dictionary did not know (none when the check did not run).
    pub(crate) fn unknown_count(&self) -> usize {
        match self {
            LexicalCheck::Unknown { words } => words.len(),
            _ => 0,
        }
    }
}

/// Check `text` against the dictionary of `lang`.
pub(crate) fn check(text: &str, lang: Lang) -> LexicalCheck {
    match dictionary(lang) {
        Ok(dict) => {
            let words = unknown_words(dict, text);
            if words.is_empty() {
                LexicalCheck::Clean
            } else {
                LexicalCheck::Unknown { words }
            }
        }
        Err(reason) => LexicalCheck::NotRun { reason: reason.clone() },
    }
}

fn unknown_words(dict: &spellbook::Dictionary, text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in text.unicode_words() {
        // Typographic apostrophes are the dictionaries' ASCII ones ("don’t").
        let word = word.replace('’', "'");
        let word = word.trim_matches('\'');
        let exempt = word.chars().count() < 2
            || word.chars().any(|c| c.is_uppercase() || c.is_numeric())
            || !word.chars().all(|c| c.is_alphabetic() || c == '\'');
        if exempt || dict.check(word) || out.iter().any(|w| w == word) {
            continue;
        }
        out.push(word.to_string());
    }
    out
}

/// The dictionary of `lang`, read once per process; the error says what to install.
fn dictionary(lang: Lang) -> Result<&'static spellbook::Dictionary, &'static String> {
    static DICTS: [OnceLock<Result<spellbook::Dictionary, String>>; Lang::ALL.len()] =
        [const { OnceLock::new() }; Lang::ALL.len()];
    let i = Lang::ALL.iter().position(|l| *l == lang).expect("every language is in Lang::ALL");
    DICTS[i]
        .get_or_init(|| {
            let loaded = load(lang);
            // Said once per run and language; every record it concerns says it again.
            if let Err(reason) = &loaded {
                eprintln!("warning: the lexical check does not run for {}: {reason}", lang.english_name());
            }
            loaded
        })
        .as_ref()
}

/// Folders searched for `<stem>.aff`/`<stem>.dic`, in order.
fn search_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("POLYSUM_DICTIONARIES").map(PathBuf::from).into_iter().collect();
    dirs.extend(["/usr/share/hunspell", "/usr/share/myspell/dicts", "/usr/share/myspell"].map(PathBuf::from));
    dirs
}

/// Dictionary names tried for a language, the most widely installed first; then any `<code>_*` file.
fn stems(lang: Lang) -> &'static [&'static str] {
    match lang.code() {
        "en" => &["en_US", "en_GB"],
        "es" => &["es_ES", "es"],
        _ => &[],
    }
}

fn load(lang: Lang) -> Result<spellbook::Dictionary, String> {
    let dirs = search_dirs();
    let mut candidates: Vec<PathBuf> =
        dirs.iter().flat_map(|d| stems(lang).iter().map(move |s| d.join(format!("{s}.aff")))).collect();
    for d in &dirs {
        let Ok(entries) = std::fs::read_dir(d) else { continue };
        let mut more: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.extension().is_some_and(|x| x == "aff")
                    && p.file_stem()
                        .and_then(|s| s.to_str())
                        .is_some_and(|s| s.starts_with(&format!("{}_", lang.code())))
            })
            .collect();
        more.sort();
        candidates.extend(more);
    }
    let Some(aff) = candidates.into_iter().find(|p| p.is_file() && p.with_extension("dic").is_file()) else {
        let package = match lang.code() {
            "en" => "hunspell-en-us".to_string(),
            code => format!("hunspell-{code}"),
        };
        let skip = usize::from(std::env::var_os("POLYSUM_DICTIONARIES").is_some());
        let looked: Vec<String> = dirs.iter().skip(skip).map(|d| d.display().to_string()).collect();
        return Err(format!(
            "no {} hunspell dictionary (looked in $POLYSUM_DICTIONARIES and {}): install one, e.g. \
             `apt-get install {package}`",
            lang.english_name(),
            looked.join(", ")
        ));
    };
    let read = |p: &PathBuf| std::fs::read_to_string(p).map_err(|e| format!("reading {}: {e}", p.display()));
    let (aff_text, dic_text) = (read(&aff)?, read(&aff.with_extension("dic"))?);
    spellbook::Dictionary::new(&aff_text, &dic_text).map_err(|e| format!("reading {}: {e}", aff.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // These read the system's dictionaries (scripts/test installs them); without them the check says so.
    #[test]
    fn spanish_non_words_and_untranslated_english_are_found() {
        let c = check("La ministria ha spread la noticia y lo tweetó, según dijo Pedro Sánchez en 2024.", Lang::Es);
        assert_eq!(c, LexicalCheck::Unknown { words: vec!["ministria".into(), "spread".into(), "tweetó".into()] });
        assert_eq!(check("El conductor se detuvo en el lugar y murió poco después.", Lang::Es), LexicalCheck::Clean);
    }

    #[test]
    fn english_is_checked_against_english() {
        assert_eq!(check("The council didn’t approve the budget on Tuesday.", Lang::En), LexicalCheck::Clean);
        assert_eq!(
            check("The council aprobó the budget.", Lang::En),
            LexicalCheck::Unknown { words: vec!["aprobó".into()] }
        );
    }

    #[test]
    fn names_numbers_and_capitals_are_exempt() {
        assert_eq!(check("Xochitl Gálvez dijo que la OTAN gastó 3,5 millones en Kyiv.", Lang::Es), LexicalCheck::Clean);
    }

    #[test]
    fn a_language_without_a_dictionary_is_not_run_never_clean() {
        match check("Le conseil a voté.", Lang::Fr) {
            LexicalCheck::NotRun { reason } => assert!(reason.contains("hunspell-fr"), "{reason}"),
            // A machine with a French dictionary checks it; the sentence is French.
            other => assert_eq!(other, LexicalCheck::Clean),
        }
    }
}
