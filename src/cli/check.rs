//! `polysum check ARTICLE CLAIMS`: claims checked against an article as summaries are (`crate::verify`),
//! printed as a table or as JSON lines. The checker benchmark (`scripts/eval`) drives it.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use super::args::CheckArgs;
use super::config::Config;
use super::Outcome;
use crate::error::UsageError;
use crate::job::record::{Check, SentenceSupport};
use crate::text::lang::{self, Lang};
use crate::verify::{self, Claim, Source};

fn usage(msg: impl std::fmt::Display) -> anyhow::Error {
    UsageError::wrap(msg)
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| usage(format!("cannot read the {what} {}: {e}", path.display())))
}

/// One language from a flag, else detected in `text`.
fn language(flag: Option<&str>, name: &str, text: &str) -> Result<Lang> {
    match flag {
        Some(v) => match lang::parse_langs(v).map_err(usage)?.as_slice() {
            [l] => Ok(*l),
            _ => Err(usage(format!("{name} takes one language"))),
        },
        None => lang::detect(text)
            .ok_or_else(|| usage(format!("cannot tell the language of the text for {name}: give it with {name}"))),
    }
}

pub(crate) fn run(args: &CheckArgs) -> Result<Outcome> {
    let article = read(&args.article, "article")?;
    let claims_text = read(&args.claims, "claims file")?;
    let lines: Vec<&str> = claims_text.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let source_lang = language(args.source_lang.as_deref(), "--source-lang", &article)?;
    let claim_lang = language(args.lang.as_deref(), "--lang", &lines.join(" "))?;
    let form = args.question.as_deref().map(str::parse).transpose().map_err(usage)?.unwrap_or_default();
    let threshold = match args.threshold {
        Some(t) if !(0.0..=1.0).contains(&t) => return Err(usage("--threshold is a probability, from 0 to 1")),
        Some(t) => t,
        None => verify::DEFAULT_THRESHOLD,
    };
    let crossing = args.cross_language.as_deref().map(str::parse).transpose().map_err(usage)?.unwrap_or_default();
    let context = args.context.as_deref().map(str::parse).transpose().map_err(usage)?.unwrap_or_default();
    let settings = verify::Settings { form, threshold, crossing, context };
    let backend = super::options::backend(&args.model, &Config::default())?;
    let gen = backend.load().context("loading the model")?;
    let source = Source::new(None, &article, source_lang);
    let claims: Vec<Claim> = lines.iter().map(|l| Claim::new(*l, claim_lang)).collect();
    let support = verify::check(&source, &claims, &settings, gen.as_ref())?;
    let mut out = std::io::stdout().lock();
    if args.json {
        for s in &support {
            writeln!(out, "{}", serde_json::to_string(&json_line(s))?)?;
        }
    } else {
        write!(out, "{}", table(&support))?;
    }
    Ok(Outcome::Done)
}

/// The JSON form of one claim's result: the record's `support` entry without `repaired`.
fn json_line(s: &SentenceSupport) -> serde_json::Value {
    serde_json::json!({
        "text": s.text,
        "verdict": s.verdict,
        "score": s.score,
        "evidence": s.evidence,
        "failed_checks": s.failed_checks,
        "checked_as": s.checked_as,
    })
}

fn table(support: &[SentenceSupport]) -> String {
    let mut t = String::from("verdict      score  evidence  failed         claim\n");
    for s in support {
        let verdict = match s.verdict {
            crate::job::record::Verdict::Supported => "supported",
            crate::job::record::Verdict::Unsupported => "UNSUPPORTED",
        };
        let evidence = s.evidence.iter().map(|i| i.to_string()).collect::<Vec<_>>().join(",");
        let failed = s.failed_checks.iter().map(|c: &Check| c.as_str()).collect::<Vec<_>>().join(",");
        t.push_str(&format!("{verdict:<12} {:>5.3}  {evidence:<8}  {failed:<13}  {}\n", s.score, s.text));
    }
    t
}
