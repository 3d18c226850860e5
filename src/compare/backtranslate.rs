//! Back-translation: the Spanish summary translated to English and the English one to Spanish, by the
//! model, in one batched `Engine::generate` call per article.

use anyhow::Result;

use crate::engine::generate::{Engine, Request};

/// One text to translate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    pub text: String,
    pub from: String,
    pub to: String,
}

/// Something that translates a batch of texts (the model, or a stand-in in tests).
pub trait Translate {
    /// Translations of `jobs`, in order; every call is one batch.
    fn translate(&self, jobs: &[Job]) -> Result<Vec<String>>;
    fn name(&self) -> String;
}

/// Most output tokens per translation: a 3–5 sentence summary needs ~150; the cap keeps a runaway row short.
const MAX_TRANSLATION_TOKENS: usize = 400;

pub fn prompt(engine: &Engine, job: &Job) -> Result<String> {
    let (user, prefix) = match (job.from.as_str(), job.to.as_str()) {
        ("es", "en") => (
            format!(
                "Translate this Spanish text into English. Write only the English translation, nothing else.\n\n{}",
                job.text
            ),
            None,
        ),
        ("en", "es") => (
            format!(
                "Traduce este texto del inglés al español. Escribe solo la traducción al español, nada más.\n\n{}",
                job.text
            ),
            None,
        ),
        (from, to) => {
            (format!("Translate this text from {from} into {to}. Write only the translation.\n\n{}", job.text), None)
        }
    };
    engine.chat_prompt(None, &user, prefix)
}

/// Remove what models add around a translation: a label line, surrounding quotes.
pub fn clean(text: &str) -> String {
    let mut t = text.trim();
    for label in
        ["Translation:", "English translation:", "Traducción:", "Traducción al español:", "English:", "Español:"]
    {
        if t.len() >= label.len() && t.is_char_boundary(label.len()) && t[..label.len()].eq_ignore_ascii_case(label) {
            t = t[label.len()..].trim_start();
        }
    }
    let t = t.trim();
    let unquoted = t.strip_prefix('"').and_then(|s| s.strip_suffix('"')).unwrap_or(t);
    unquoted.trim().to_string()
}

impl Translate for Engine {
    fn translate(&self, jobs: &[Job]) -> Result<Vec<String>> {
        let requests = jobs
            .iter()
            .map(|j| {
                let budget = (self.count_tokens(&j.text)? * 2 + 32).min(MAX_TRANSLATION_TOKENS);
                Ok(Request::greedy(prompt(self, j)?, budget))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(self.generate(&requests)?.into_iter().map(|g| clean(&g.text)).collect())
    }

    fn name(&self) -> String {
        Engine::name(self).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_labels_and_quotes() {
        assert_eq!(clean("Translation: \"The council met.\"\n"), "The council met.");
        assert_eq!(clean("Traducción: El consejo se reunió."), "El consejo se reunió.");
        assert_eq!(clean("Plain text."), "Plain text.");
    }
}
