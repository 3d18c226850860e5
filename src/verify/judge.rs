//! The model's judgment of a claim over its evidence, read from the log-probabilities of the answer's first
//! token instead of a generated answer: one prefill per question, no decoding, and the evidence that every
//! question of a call shares is computed once (`backend::Generator::score`).
//!
//! How the question is asked matters: "Is the statement fully supported? Yes or No" lets a small model say
//! Yes to a statement that swaps who did what; asking whether it is true "according to the text", with an
//! explicit "Not stated", gives the model a way to say the text does not tell. Both forms are kept so the
//! checker benchmark can compare them (`--question` of `polysum check`).

use anyhow::{bail, Result};

use crate::backend::{Generator, Prompt, ScoreRequest};

/// How the model is asked about a claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Form {
    /// "According to the text, is the statement true? Answer Yes, No, or Not stated."
    #[default]
    Stated,
    /// "Is the statement fully supported by the text? Answer Yes or No."
    Supported,
}

impl std::str::FromStr for Form {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stated" => Ok(Form::Stated),
            "supported" => Ok(Form::Supported),
            other => Err(format!("invalid question form {other:?}: use stated or supported")),
        }
    }
}

impl Form {
    fn question(self) -> &'static str {
        match self {
            Form::Stated => "According to the text, is the statement true? Answer Yes, No, or Not stated.",
            Form::Supported => "Is the statement fully supported by the text? Answer Yes or No.",
        }
    }

    /// The answers scored; the first is the one that supports the claim.
    fn answers(self) -> &'static [&'static str] {
        match self {
            Form::Stated => &["Yes", "No", "Not"],
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
    let answers: Vec<String> = form.answers().iter().map(|a| a.to_string()).collect();
    let requests: Vec<ScoreRequest> =
        claims.iter().map(|c| ScoreRequest { prompt: prompt(form, context, c), answers: answers.clone() }).collect();
    let scores = gen.score(&requests)?;
    if scores.len() != claims.len() || scores.iter().any(|s| s.len() != answers.len()) {
        bail!("the backend scored {} of {} questions", scores.len(), claims.len());
    }
    Ok(scores.iter().map(|lp| yes_probability(lp)).collect())
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
