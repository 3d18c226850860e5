//! A scripted stand-in for the model, for tests of everything around it (state, lock, kill, retries,
//! language checks). Built only with the cargo feature `fake-model`, which the test suite enables: a
//! release binary never has it, so a user's `--model fake` is never silently answered by it.

use std::time::Instant;

use anyhow::{bail, Result};

use super::{CallStats, Generation, Generator, Prompt, ScoreRequest, StopReason};

/// The prompt as one text, the way a chat template would lay it out.
fn render(prompt: &Prompt) -> String {
    match prompt {
        Prompt::Chat { system, user, assistant_prefix } => format!(
            "<system>{}</system>\n<user>{user}</user>\n<assistant>{}",
            system.as_deref().unwrap_or(""),
            assistant_prefix.as_deref().unwrap_or("")
        ),
        Prompt::Raw(text) => text.clone(),
    }
}

/// A fake model for tests, chosen with `--model fake[:OPTIONS]` (comma-separated options):
/// `english` answers in English whatever the target; `native-es` answers English to the first prompt and
/// Spanish once the prompt itself is in Spanish; `chatty` adds "Sure! Here is a summary:";
/// `delay=MS` sleeps per call; `fail` makes every call an error; `ctx=N` sets the context length.
/// It counts one token per word. Asked to score answers about a `<statement>` against a `<text>`, it
/// favours "yes" when every word of four letters or more of the statement is in the text, else "not
/// stated" (an answer starting "not"; any other but "yes" is a "no"); asked to rewrite an unsupported
/// sentence, it answers with the first sentence of the evidence it was shown.
#[derive(Debug, Clone, Default)]
pub(crate) struct FakeGenerator {
    pub(crate) english_only: bool,
    pub(crate) spanish_when_native: bool,
    pub(crate) chatty: bool,
    pub(crate) delay_ms: u64,
    pub(crate) fail: bool,
    pub(crate) context: usize,
    /// Tests only: every generation answers this text instead (a model that invents again).
    pub(crate) fixed_answer: Option<String>,
    /// Tests only: a sampled request (temperature above 0, a `--candidates` copy) answers the next of these
    /// in turn instead, when there are any.
    pub(crate) sampled_answers: Vec<String>,
    /// Tests only: the user part of every prompt `score` was asked about, in order.
    pub(crate) asked: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Tests only: every prompt `generate` answered, as rendered, in order.
    pub(crate) prompted: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    /// Tests only: each of those prompts' `max_new_tokens`, in the same order.
    pub(crate) budgets: std::sync::Arc<std::sync::Mutex<Vec<usize>>>,
    /// How many sampled answers were given: the next one is `sampled_answers[turn % len]`.
    pub(crate) sampled_turn: std::sync::Arc<std::sync::Mutex<usize>>,
}

impl FakeGenerator {
    /// The environment variable the test suite sets to use the fake model: even a build with the feature
    /// answers `--model fake` with it only when asked this way.
    pub(crate) const ENABLE_ENV: &'static str = "POLYSUM_TEST_FAKE_MODEL";

    /// The fake model a `--model` value names (`fake` or `fake:OPTIONS`), `None` for any other value.
    pub(crate) fn parse(spec: &str) -> Result<Option<FakeGenerator>> {
        let Some(rest) = spec.strip_prefix("fake") else { return Ok(None) };
        let rest = match rest.strip_prefix(':') {
            Some(r) => r,
            None if rest.is_empty() => "",
            None => return Ok(None),
        };
        let mut g = FakeGenerator { context: 4096, ..Default::default() };
        for opt in rest.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match opt.split_once('=') {
                None if opt == "english" => g.english_only = true,
                None if opt == "native-es" => g.spanish_when_native = true,
                None if opt == "chatty" => g.chatty = true,
                None if opt == "fail" => g.fail = true,
                Some(("delay", ms)) => g.delay_ms = ms.parse()?,
                Some(("ctx", n)) => g.context = n.parse()?,
                _ => bail!("unknown fake model option {opt:?}"),
            }
        }
        Ok(Some(g))
    }

    fn answer(&self, prompt: &str) -> String {
        // Asked to rewrite an unsupported sentence: a faithful model's answer, the first evidence sentence.
        if prompt.contains("says something the article does not") {
            let evidence = prompt.split_once("<text>\n").and_then(|(_, rest)| rest.split_once("\n</text>"));
            if let Some((text, _)) = evidence {
                return crate::text::split::sentences(text).first().copied().unwrap_or(text).to_string();
            }
        }
        // Asked for a sentence's simple facts: its clauses, one a line.
        if let Some((_, sentence)) =
            prompt.split_once("simple facts: who did what").and_then(|(_, r)| r.split_once("Sentence: "))
        {
            let sentence = sentence.lines().next().unwrap_or(sentence).trim_end_matches("</user>");
            return sentence.split(';').map(str::trim).collect::<Vec<_>>().join("\n");
        }
        // The instruction follows the fenced text; look there for the target language.
        let end = ["</article>", "</text>"].iter().filter_map(|t| prompt.rfind(t).map(|p| p + t.len())).max();
        let tail = end.map(|p| &prompt[p..]).unwrap_or(prompt);
        let wants_spanish = tail.contains("Spanish") || tail.contains("español");
        let prompt_is_spanish = prompt.contains("Eres un");
        let spanish = wants_spanish && !self.english_only && (!self.spanish_when_native || prompt_is_spanish);
        let body = if spanish {
            "El artículo cuenta los hechos principales de la noticia. Las autoridades dieron los detalles el martes \
            por la tarde."
        } else {
            "The article reports the main facts of the story. Officials gave the details on Tuesday afternoon."
        };
        if self.chatty {
            format!("Sure! Here is a summary of the article:\n\n{body}\n\nLet me know if you need anything else.")
        } else {
            body.to_string()
        }
    }
}

/// The scripted judgment: whether every longer word of the statement occurs in the text.
fn statement_in_text(prompt: &str) -> bool {
    let between = |open: &str, close: &str| -> String {
        match (prompt.rfind(open), prompt.rfind(close)) {
            (Some(a), Some(b)) if a + open.len() <= b => prompt[a + open.len()..b].to_lowercase(),
            _ => String::new(),
        }
    };
    let words = |t: &str| -> Vec<String> {
        t.split(|c: char| !c.is_alphanumeric()).filter(|w| w.chars().count() >= 4).map(str::to_string).collect()
    };
    let text = words(&between("<text>", "</text>"));
    let statement = between("<statement>", "</statement>");
    words(&statement).iter().all(|w| text.contains(w))
}

impl Generator for FakeGenerator {
    fn model_id(&self) -> String {
        "fake".into()
    }
    fn generate(&self, requests: &[super::Request]) -> Result<(Vec<Generation>, CallStats)> {
        let t = Instant::now();
        if self.delay_ms > 0 {
            std::thread::sleep(std::time::Duration::from_millis(self.delay_ms));
        }
        if self.fail {
            bail!("the fake model was asked to fail");
        }
        let mut stats = CallStats::default();
        let gens: Vec<Generation> = requests
            .iter()
            .map(|r| {
                let prompt = render(&r.prompt);
                let prompt_tokens = prompt.split_whitespace().count();
                if prompt_tokens + r.max_new_tokens > self.context {
                    bail!("the prompt has {prompt_tokens} tokens, more than the fake context of {}", self.context);
                }
                let sampled = (!r.sampling.is_greedy() && !self.sampled_answers.is_empty()).then(|| {
                    let mut turn = self.sampled_turn.lock().expect("not poisoned");
                    *turn += 1;
                    self.sampled_answers[(*turn - 1) % self.sampled_answers.len()].clone()
                });
                let text = sampled.or_else(|| self.fixed_answer.clone()).unwrap_or_else(|| self.answer(&prompt));
                self.prompted.lock().expect("not poisoned").push(prompt.clone());
                self.budgets.lock().expect("not poisoned").push(r.max_new_tokens);
                let n = text.split_whitespace().count();
                stats.prompt_tokens += prompt_tokens;
                stats.generated_tokens += n;
                Ok(Generation { text, tokens: (0..n as u32).collect(), prompt_tokens, stop_reason: StopReason::Eos })
            })
            .collect::<Result<_>>()?;
        stats.decode_seconds = t.elapsed().as_secs_f64();
        Ok((gens, stats))
    }
    fn score(&self, requests: &[ScoreRequest]) -> Result<Vec<Vec<f32>>> {
        if self.fail {
            bail!("the fake model was asked to fail");
        }
        self.asked.lock().expect("not poisoned").extend(requests.iter().filter_map(|r| match &r.prompt {
            Prompt::Chat { user, .. } => Some(user.clone()),
            Prompt::Raw(_) => None,
        }));
        Ok(requests
            .iter()
            .map(|r| {
                let favoured = if statement_in_text(&render(&r.prompt)) { "yes" } else { "not" };
                r.answers
                    .iter()
                    .map(|a| {
                        let a = a.trim().to_lowercase();
                        let kind = if a.starts_with("yes") || a.starts_with("sí") {
                            "yes"
                        } else if a.starts_with("not") {
                            "not"
                        } else {
                            "no"
                        };
                        if kind == favoured {
                            -0.1
                        } else {
                            -3.0
                        }
                    })
                    .collect()
            })
            .collect())
    }
    fn count_tokens(&self, text: &str) -> Result<usize> {
        Ok(text.split_whitespace().count())
    }
    fn count_prompt_tokens(&self, prompt: &Prompt) -> Result<usize> {
        Ok(render(prompt).split_whitespace().count())
    }
    fn context_length(&self) -> usize {
        self.context
    }
}
