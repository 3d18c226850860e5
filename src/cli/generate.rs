//! `polysum generate`: one generation from the built-in engine, streamed, with its speed on stderr (a
//! debugging aid for the engine).

use std::io::Write;

use anyhow::Result;

use super::args::GenerateArgs;
use super::config::Config;
use super::Outcome;
use crate::backend::Backend;
use crate::engine::generate::Request;
use crate::engine::sampling::SamplingParams;
use crate::error::UsageError;

pub(crate) fn run(args: &GenerateArgs) -> Result<Outcome> {
    let Backend::Local(model) = super::options::backend(&args.model, &Config::default())? else {
        return Err(UsageError::wrap("generate runs the built-in engine: --backend openai does not apply"));
    };
    let engine = model.load_engine()?;
    let prompt = if args.raw {
        args.prompt.clone()
    } else {
        engine.chat_prompt(args.system.as_deref(), &args.prompt, args.prefix.as_deref())?
    };
    let sampling = if args.greedy || args.temperature <= 0.0 {
        SamplingParams::greedy()
    } else {
        SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: Some(args.top_p).filter(|p| *p < 1.0),
            repetition_penalty: args.repetition_penalty,
            repetition_window: 64,
            seed: args.seed,
        }
    };
    let request = Request { prompt, max_new_tokens: args.max_tokens, sampling, stop_strings: args.stop.clone() };
    let mut stdout = std::io::stdout();
    if let Some(prefix) = &args.prefix {
        print!("{prefix}");
    }
    let (gens, stats) = engine.generate_streaming(std::slice::from_ref(&request), &mut |_, piece| {
        let _ = write!(stdout, "{piece}");
        let _ = stdout.flush();
        true
    })?;
    println!();
    let g = &gens[0];
    eprintln!(
        "prompt: {} tokens, {:.1} tokens/s | decode: {} tokens, {:.1} tokens/s | stop: {:?}",
        stats.prompt_tokens,
        stats.prompt_tokens as f64 / stats.prompt_seconds.max(1e-9),
        g.tokens.len(),
        stats.generated_tokens as f64 / stats.decode_seconds.max(1e-9),
        g.stop_reason
    );
    let drafts = engine.draft_counts();
    if drafts.steps > 0 {
        eprintln!("drafts: {} of {} drafted tokens kept over {} steps", drafts.accepted, drafts.drafted, drafts.steps);
    }
    Ok(Outcome::Done)
}
