//! The model's judgment of a claim over its evidence, read from the log-probabilities of the answer's first
//! token instead of a generated answer: one prefill per question, no decoding, and the evidence that every
//! question of a call shares is computed once (`backend::Generator::score`).
//!
//! How the question is asked matters: "Is the statement fully supported? Yes or No" lets a small model say
//! Yes to a statement that swaps who did what; asking whether it is true "according to the text", with an
//! explicit "Not stated", gives the model a way to say the text does not tell. A long sentence hides a
//! false detail among true ones, so a third form has the model split it into simple facts first and asks
//! each. All forms are kept so the checker benchmark can compare them (`--question` of `polysum check`).

use anyhow::{bail, Result};

use crate::backend::{Generator, Prompt, Request, ScoreRequest};
use crate::text::clean;

/// How the model is asked about a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Form {
    /// "According to the text, is the statement true? Answer Yes, No, or Not stated."
    #[default]
    Stated,
    /// "Is the statement fully supported by the text? Answer Yes or No."
    Supported,
    /// The statement split by the model into its simple facts (who did what to whom, when, where, how
    /// many), each asked as `Stated`: the statement is as strong as its weakest fact.
    Atomic,
}

impl std::str::FromStr for Form {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stated" => Ok(Form::Stated),
            "supported" => Ok(Form::Supported),
            "atomic" => Ok(Form::Atomic),
            other => Err(format!("invalid question form {other:?}: use stated, supported or atomic")),
        }
    }
}

impl Form {
    fn question(self) -> &'static str {
        match self {
            Form::Stated | Form::Atomic => {
                "According to the text, is the statement true? Answer Yes, No, or Not stated."
            }
            Form::Supported => "Is the statement fully supported by the text? Answer Yes or No.",
        }
    }

    /// The answers scored; the first is the one that supports the claim.
    fn answers(self) -> &'static [&'static str] {
        match self {
            Form::Stated | Form::Atomic => &["Yes", "No", "Not"],
            Form::Supported => &["Yes", "No"],
        }
    }
}

const SYSTEM: &str = "You check statements against a text. Judge only by what the text says.";

/// The question about `claim` over `context`; every question over one context shares everything before
/// the statement, so a backend computes that once.
pub(crate) fn prompt(form: Form, context: &str, claim: &str) -> Prompt {
    Prompt::chat(
        SYSTEM,
        format!(
            "<text>\n{}\n</text>\n\nStatement: <statement>{}</statement>\n\n{}",
            crate::prompt::defuse(context),
            crate::prompt::defuse(claim),
            form.question()
        ),
    )
}

/// For each claim, the probability the model gives to "yes" among the form's answers (0 to 1), all
/// claims over the one `context` in one call.
pub(crate) fn score(gen: &dyn Generator, form: Form, context: &str, claims: &[&str]) -> Result<Vec<f64>> {
    if claims.is_empty() {
        return Ok(vec![]);
    }
    if form == Form::Atomic {
        let facts = decompose(gen, claims)?;
        let flat: Vec<&str> = facts.iter().flatten().map(String::as_str).collect();
        let scores = score(gen, Form::Stated, context, &flat)?;
        let mut at = 0;
        return Ok(facts
            .iter()
            .map(|f| {
                let weakest = scores[at..at + f.len()].iter().copied().fold(1.0, f64::min);
                at += f.len();
                weakest
            })
            .collect());
    }
    let answers: Vec<String> = form.answers().iter().map(|a| a.to_string()).collect();
    let requests: Vec<ScoreRequest> =
        claims.iter().map(|c| ScoreRequest { prompt: prompt(form, context, c), answers: answers.clone() }).collect();
    let scores = gen.score(&requests)?;
    if scores.len() != claims.len() || scores.iter().any(|s| s.len() != answers.len()) {
        bail!("the backend scored {} of {} questions", scores.len(), claims.len());
    }
    Ok(scores.iter().map(|lp| yes_probability(lp)).collect())
}

/// Facts one statement is split into at most: a sentence of a summary rarely holds more, and each costs
/// a question.
const MAX_FACTS: usize = 6;

const DECOMPOSE_SYSTEM: &str = "You split sentences into the simple facts they state.\n\n\
Sentence: Police said a man in his forties was shot twice in the town centre on Saturday by a stranger.\n\
Facts:\n\
A man was shot.\n\
The man is in his forties.\n\
The man was shot twice.\n\
The shooting was in the town centre.\n\
The shooting was on Saturday.\n\
A stranger shot the man.\n\
Police said so.";

/// Each statement's simple facts, as the model splits it (in the statement's language), in one batched
/// call; a statement the model returns nothing usable for stands as its own one fact.
fn decompose(gen: &dyn Generator, claims: &[&str]) -> Result<Vec<Vec<String>>> {
    let requests: Vec<Request> = claims
        .iter()
        .map(|c| {
            let user = format!(
                "Split this sentence into its simple facts: who did what, to whom, when, where, how many. Write \
                 each fact as one short sentence on its own line, in the sentence's language, with its words.\n\n\
                 Sentence: {}",
                crate::prompt::defuse(c)
            );
            let prompt = Prompt::chat(DECOMPOSE_SYSTEM, user).with_answer_prefix(Some("Facts:\n".into()));
            let mut r = Request::greedy(prompt, gen.count_tokens_or_estimate(c) * 3 + 32);
            r.stop_strings = vec!["\n\n".into(), "Sentence:".into()];
            r
        })
        .collect();
    let (gens, _) = gen.generate(&requests)?;
    Ok(claims
        .iter()
        .zip(&gens)
        .map(|(c, g)| {
            let facts: Vec<String> = g
                .text
                .lines()
                .map(clean::strip_bullet)
                .filter(|l| l.chars().filter(|ch| ch.is_alphabetic()).count() >= 3 && !l.starts_with("Facts"))
                .take(MAX_FACTS)
                .map(str::to_string)
                .collect();
            if facts.is_empty() {
                vec![c.to_string()]
            } else {
                facts
            }
        })
        .collect())
}

/// `exp(lp[0])` over the sum of `exp(lp[i])`, computed stably.
fn yes_probability(lp: &[f32]) -> f64 {
    let max = lp.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let sum: f64 = lp.iter().map(|&l| (l as f64 - max).exp()).sum();
    (lp[0] as f64 - max).exp() / sum
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::fake::FakeGenerator;

    #[test]
    fn list_numbers_go_and_a_fact_keeps_its_own() {
        assert_eq!(clean::strip_bullet("2. The man was shot."), "The man was shot.");
        assert_eq!(clean::strip_bullet("3) Police said so."), "Police said so.");
        assert_eq!(clean::strip_bullet("3 grupos quieren cambiarlo."), "3 grupos quieren cambiarlo.");
        assert_eq!(clean::strip_bullet("1.5 million people voted."), "1.5 million people voted.");
    }

    #[test]
    fn an_atomic_claim_is_as_strong_as_its_weakest_fact() {
        // The scripted model splits a sentence into its clauses; one of them is not in the text.
        let g = FakeGenerator::parse("fake").unwrap().unwrap();
        let ctx = "An unknown attacker shot the man twice.";
        let s = score(&g, Form::Atomic, ctx, &["The attacker shot the man; police arrested him."]).unwrap();
        assert!(s[0] < 0.5, "{s:?}");
        let s = score(&g, Form::Atomic, ctx, &["The attacker shot the man; he shot him twice."]).unwrap();
        assert!(s[0] > 0.5, "{s:?}");
    }

    #[test]
    fn normalises_over_the_answers() {
        assert!((yes_probability(&[-1.0, -1.0]) - 0.5).abs() < 1e-9);
        assert!(yes_probability(&[-0.1, -3.0, -3.0]) > 0.8);
        assert!(yes_probability(&[-50.0, -0.1, -60.0]) < 1e-6);
    }

    #[test]
    fn shares_the_context_and_asks_each_claim() {
        let g = FakeGenerator::parse("fake").unwrap().unwrap();
        let ctx = "An unknown attacker shot the man twice.";
        let s = score(&g, Form::Stated, ctx, &["The attacker shot the man.", "Police shot the man."]).unwrap();
        assert!(s[0] > 0.5 && s[1] < 0.5, "{s:?}");
        let Prompt::Chat { user: a, .. } = prompt(Form::Stated, ctx, "x") else { panic!() };
        let Prompt::Chat { user: b, .. } = prompt(Form::Stated, ctx, "y") else { panic!() };
        assert!(
            a.find("<statement>") == b.find("<statement>")
                && a[..a.find("<statement>").unwrap()] == b[..b.find("<statement>").unwrap()]
        );
    }
}
