//! Prompt pieces every task shares: the chat prompt's parts, the fence that keeps untrusted text apart from
//! the instructions, and the one translation prompt (a summary translated into another language by
//! `summarize`, an article's pieces by `translate`, a summary back-translated by `compare`). Each task's own
//! prompts live in its own `prompt` file.

use crate::text::lang::Lang;

/// The parts of one chat prompt.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Prompt {
    pub(crate) system: String,
    pub(crate) user: String,
    pub(crate) assistant_prefix: Option<String>,
}

impl Prompt {
    /// The prompt as the backends take it.
    pub(crate) fn chat(&self) -> crate::backend::Prompt {
        crate::backend::Prompt::chat(self.system.clone(), self.user.clone())
            .with_answer_prefix(self.assistant_prefix.clone())
    }
}

/// Stop generating when the model starts echoing the fence.
pub(crate) fn stop_strings() -> Vec<String> {
    vec!["</article>".into(), "<article>".into(), "</text>".into()]
}

/// Put the article between `<article>` tags; tags inside the text are defused so it cannot close the fence.
pub(crate) fn fence(title: &str, text: &str) -> String {
    format!("<article>\nTitle: {}\n\n{}\n</article>", defuse(title), defuse(text))
}

/// `s` with the fence tags made harmless (`<article>` becomes `[article]`), so it cannot close a fence.
pub(crate) fn defuse(s: &str) -> String {
    let mut out = s.to_string();
    for tag in ["<article>", "</article>", "<text>", "</text>"] {
        // Case-insensitive replace without regex: scan a lowercase copy.
        loop {
            let lower = out.to_ascii_lowercase();
            match lower.find(tag) {
                Some(pos) => out.replace_range(pos..pos + tag.len(), &tag.replace('<', "[").replace('>', "]")),
                None => break,
            }
        }
    }
    out
}

/// The words of a translation prompt in its target language.
struct Translation {
    system: &'static str,
    /// Worked examples (source, translation), shown in the system prompt in the same form as the request
    /// and its answer. The system prompt is the same for every request into one language, so the engine
    /// computes it once (`engine::prefix_cache`) and the examples cost nothing per request.
    examples: &'static [(&'static str, &'static str)],
    /// `{text}` is replaced.
    user: &'static str,
    /// The label that starts the answer.
    label: &'static str,
}

// Examples from FLORES-200 (CC BY-SA 4.0, NLLB Team, Meta AI): devtest sentences 222, 224, 249, 257, 269 and
// 283, which are in polysum's dev split (never its test split) after the first 200 sentences that dev
// evaluations read; the Spanish of the English-to-Spanish ones edited closer to the source.
const EXAMPLES_EN_ES: &[(&str, &str)] = &[
    (
        "Last month Iran saw its worst air disaster in years when an airliner heading to Armenia crashed, killing \
the 168 on board.",
        "El mes pasado, Irán vivió una de sus peores catástrofes aéreas en años cuando un avión de línea con dirección \
a Armenia se estrelló, causando la muerte de los 168 pasajeros a bordo.",
    ),
    (
        "NHK also reported that the Kashiwazaki Kariwa nuclear power plant in Niigata prefecture was operating \
normally.",
        "Además, NHK informó de que la central nuclear de Kashiwazaki-Kariwa, en la prefectura de Niigata, estaba \
funcionando con normalidad.",
    ),
    (
        "The two compounds react with one another to form crystals that may block kidney function, researchers at \
the university said.",
        "Los dos compuestos reaccionan entre sí y forman cristales que pueden bloquear la función renal, dijeron los \
investigadores de la universidad.",
    ),
    (
        "The road where the crash happened was temporarily closed while emergency services freed the driver from \
the red Audi TT.",
        "La carretera donde se produjo el accidente fue cerrada temporalmente mientras los servicios de emergencia \
liberaban al conductor del Audi TT rojo.",
    ),
];

const EXAMPLES_ES_EN: &[(&str, &str)] = &[
    (
        "Aerosmith canceló los conciertos pendientes de su gira.",
        "Aerosmith have cancelled their remaining concerts on their tour.",
    ),
    (
        "Nicholas Alden y Zachary Cuddeback, de 25 y 21 años, respectivamente, fallecieron. Este último iba al \
volante.",
        "The fatalities were Nicholas Alden, 25, and Zachary Cuddeback, 21. Cuddeback had been the driver.",
    ),
    (
        "Además, NHK indicó que la central nuclear de Kashiwazaki-Kariwa, en la prefectura de Niigata, estaba \
operando con normalidad.",
        "NHK also reported that the Kashiwazaki Kariwa nuclear power plant in Niigata prefecture was operating \
normally.",
    ),
    (
        "El mes pasado, Irán vivió una de sus peores catástrofes aéreas en años cuando un avión de línea con \
dirección a Armenia se estrelló, causando el deceso de los 168 pasajeros a bordo.",
        "Last month Iran saw its worst air disaster in years when an airliner heading to Armenia crashed, killing \
the 168 on board.",
    ),
];

fn translation(target: Lang) -> &'static Translation {
    match target.code() {
        "es" => &Translation {
            system: "Eres un traductor profesional. Traduces textos al español de forma fiel y natural, como los \
                escribiría un periodista hispanohablante: traduces cada oración entera, con la gramática del español \
                (verbos pronominales como «se detuvo», «se estrelló»), sin dejar palabras en inglés salvo los nombres \
                propios, y con los nombres y las cifras tal como están en el original.",
            examples: EXAMPLES_EN_ES,
            user: "Traduce al español el siguiente texto.\n\n<text>\n{text}\n</text>\n\nEscribe solo la traducción al \
                español.",
            label: "Traducción al español:",
        },
        "fr" => &Translation {
            system: "Tu es un traducteur professionnel. Tu traduis des textes en français, fidèlement.",
            examples: &[],
            user: "Traduis le texte suivant en français.\n\n<text>\n{text}\n</text>\n\nÉcris seulement la traduction \
                en français.",
            label: "Traduction en français :",
        },
        "de" => &Translation {
            system: "Du bist ein professioneller Übersetzer. Du übersetzt Texte genau ins Deutsche.",
            examples: &[],
            user: "Übersetze den folgenden Text ins Deutsche.\n\n<text>\n{text}\n</text>\n\nSchreibe nur die deutsche \
                Übersetzung.",
            label: "Deutsche Übersetzung:",
        },
        "it" => &Translation {
            system: "Sei un traduttore professionista. Traduci testi in italiano in modo fedele.",
            examples: &[],
            user: "Traduci in italiano il testo seguente.\n\n<text>\n{text}\n</text>\n\nScrivi solo la traduzione in \
                italiano.",
            label: "Traduzione in italiano:",
        },
        "pt" => &Translation {
            system: "És um tradutor profissional. Traduzes textos para português com fidelidade.",
            examples: &[],
            user: "Traduz para português o texto seguinte.\n\n<text>\n{text}\n</text>\n\nEscreve apenas a tradução em \
                português.",
            label: "Tradução em português:",
        },
        "ca" => &Translation {
            system: "Ets un traductor professional. Tradueixes textos al català amb fidelitat.",
            examples: &[],
            user: "Tradueix al català el text següent.\n\n<text>\n{text}\n</text>\n\nEscriu només la traducció al \
                català.",
            label: "Traducció al català:",
        },
        "nl" => &Translation {
            system: "Je bent een professionele vertaler. Je vertaalt teksten getrouw naar het Nederlands.",
            examples: &[],
            user: "Vertaal de volgende tekst naar het Nederlands.\n\n<text>\n{text}\n</text>\n\nSchrijf alleen de \
                Nederlandse vertaling.",
            label: "Nederlandse vertaling:",
        },
        _ => &Translation {
            system: "You are a professional translator. You translate texts into English faithfully and naturally, as \
                a native English-speaking journalist would write them: every sentence in full, in idiomatic English, \
                with no words left in the source language except proper names, and with names and numbers exactly as \
                in the original.",
            examples: EXAMPLES_ES_EN,
            user: "Translate the following text into English.\n\n<text>\n{text}\n</text>\n\nWrite only the English \
                translation.",
            label: "English translation:",
        },
    }
}

/// Tokens a translation of a text of `source_tokens` tokens may take: twice the source (a translation into
/// Spanish takes more tokens than its English source) past a floor for short texts; enough for a faithful
/// rendering, not for a model that goes on explaining.
pub(crate) fn translation_tokens(source_tokens: usize) -> usize {
    source_tokens * 2 + 32
}

/// Translate `text` (written in some other language) into `target`, with the instruction in the target
/// language and the answer started with its label.
pub(crate) fn translate(text: &str, target: Lang) -> Prompt {
    let t = translation(target);
    let user = t.user.replace("{text}", &defuse(text));
    Prompt { system: translation_system(t), user, assistant_prefix: Some(format!("{} ", t.label)) }
}

/// The system prompt of a translation into one language: the role, then the examples as request and answer.
fn translation_system(t: &Translation) -> String {
    let mut system = t.system.to_string();
    for (source, target) in t.examples {
        let request = t.user.replace("{text}", source);
        system.push_str(&format!("\n\n{request}\n{} {target}", t.label));
    }
    system
}

/// A translation prompt with the instruction in English and both languages named: the retry for a text
/// whose first translation came out in the wrong language.
pub(crate) fn translate_from(text: &str, from: Lang, to: Lang) -> Prompt {
    let (src, dst) = (from.english_name(), to.english_name());
    let user = format!(
        "Translate the following {src} text into {dst}. Translate every sentence; keep names and numbers exactly \
as they are.\n\n<text>\n{}\n</text>\n\nWrite only the {dst} translation.",
        defuse(text)
    );
    Prompt { system: format!("You are a professional translator from {src} into {dst}."), user, assistant_prefix: None }
}

/// The labels a model may echo at the start of a translation, in every supported language.
pub(crate) fn translation_labels() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Lang::ALL.iter().map(|l| translation(*l).label).collect();
    // What models add on their own, unasked.
    v.extend(["Translation:", "Traducción:", "English:", "Español:"]);
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::text::clean::clean;

    #[test]
    fn translation_answers_lose_their_labels_and_quotes() {
        let labels = translation_labels();
        assert_eq!(clean("Translation: \"The council met.\"\n", &labels).0, "The council met.");
        assert_eq!(clean("Traducción: El consejo se reunió.", &labels).0, "El consejo se reunió.");
        assert_eq!(clean("Plain text.", &labels).0, "Plain text.");
        // The answer started over after a label: only the first one is kept.
        let again = "El consejo se reunió. Traducción al español: El consejo se reunió.";
        assert_eq!(clean(again, &labels), ("El consejo se reunió.".to_string(), true));
        // A label word inside a sentence is text.
        let inner = "He said the English translation: was wrong.";
        assert_eq!(clean(inner, &labels).0, inner);
    }

    #[test]
    fn the_fence_cannot_be_closed_from_inside() {
        let f = fence("T", "a </ARTICLE> b <text>");
        assert_eq!(f.matches("</article>").count(), 1);
        assert!(f.contains("a [/article] b [text]"), "{f}");
    }
}
