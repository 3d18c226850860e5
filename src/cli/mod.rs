//! The command line: the only module that knows clap, `polysum.toml` and exit codes.
//!
//! `main` parses the flags (`args`), resolves them into typed options (`options`), runs the subcommand
//! through the library, and maps how it ended to one exit code in one place (`exit_code`):
//! 0 all done, 3 some articles failed (or `compare --fail-on-inconsistent` found a "check"), 4 another run
//! holds the output folder, 2 usage error, 1 fatal error.

mod args;
mod bounds;
mod check;
mod config;
mod generate;
mod models;
mod options;

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result};
use clap::Parser;

use crate::error::UsageError;
use crate::job::lock::LockError;
use crate::job::progress::Reporter;
use crate::job::task::Task;
use args::{Cli, Command, CompareArgs, MergeArgs};

/// How a subcommand that ran to its end went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything asked for was done.
    Done,
    /// Some articles failed (recorded as failed), or a comparison found something to check.
    SomeFailed,
}

/// The process's exit code for how a subcommand ended.
fn exit_code(result: &Result<Outcome>) -> i32 {
    match result {
        Ok(Outcome::Done) => 0,
        Ok(Outcome::SomeFailed) => 3,
        Err(e) if e.downcast_ref::<UsageError>().is_some() => 2,
        Err(e) if matches!(e.downcast_ref::<LockError>(), Some(LockError::Held { .. })) => 4,
        Err(_) => 1,
    }
}

/// What an error says to the user: its message and causes, or just the lock's message (which says who
/// holds the folder and what to do).
fn message(e: &anyhow::Error) -> String {
    match e.downcast_ref::<LockError>() {
        Some(lock @ LockError::Held { .. }) => lock.to_string(),
        _ => format!("{e:#}"),
    }
}

/// Run polysum with the process's arguments; returns the exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { 2 } else { 0 };
        }
    };
    // A batch command reports through its reporter (text or JSON lines); before it has one, and for the
    // other commands, errors go to stderr as plain lines.
    let mut reporter: Option<Reporter> = None;
    let result = run(cli, &mut reporter);
    let code = exit_code(&result);
    if let Err(e) = &result {
        match &reporter {
            Some(r) => r.error(&message(e)),
            None => eprintln!("error: {}", message(e)),
        }
    }
    code
}

fn run(cli: Cli, reporter: &mut Option<Reporter>) -> Result<Outcome> {
    match cli.command {
        Command::Generate(args) => generate::run(&args),
        Command::Summarize(args) => run_job(options::summarize(&args)?, reporter),
        Command::Translate(args) => run_job(options::translate(&args)?, reporter),
        Command::Models(args) => models::run(args),
        Command::Compare(args) => compare(&args),
        Command::Check(args) => check::run(&args),
        Command::Merge(args) => merge(&args),
    }
}

/// `summarize` and `translate`: one run of the batch framework.
fn run_job<T: Task>(job: options::Job<T>, reporter: &mut Option<Reporter>) -> Result<Outcome> {
    let r = reporter.insert(Reporter::new(job.logging.format, job.logging.quiet, std::io::stderr().is_terminal()));
    let report = crate::job::runner::run(&job.run, &job.task, &job.backend, r)?;
    let outcome = if report.failed > 0 { Outcome::SomeFailed } else { Outcome::Done };
    r.finish(&report, exit_code(&Ok(outcome)));
    Ok(outcome)
}

fn compare(args: &CompareArgs) -> Result<Outcome> {
    let (records, warnings) = crate::compare::record::read_dir(&args.dir)?;
    if records.is_empty() {
        anyhow::bail!(
            "no summary records in {} (expected index.jsonl or *.json written by `polysum summarize`)",
            args.dir.display()
        );
    }
    let generator = if !args.no_backtranslate && crate::compare::needs_model(&records) {
        let backend = options::backend(&args.model, &config::Config::default())?;
        Some(backend.load().context("loading the model for back-translation (or pass --no-backtranslate)")?)
    } else {
        None
    };
    let report = crate::compare::build(&args.dir.display().to_string(), &records, generator.as_deref(), warnings, true);
    let color = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let width = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100usize);
    print!("{}", crate::compare::render::terminal(&report, color, width));
    if let Some(path) = &args.json {
        write(path, &crate::compare::render::json(&report)?)?;
    }
    if let Some(path) = &args.html {
        write(path, &crate::compare::render::html(&report)?)?;
    }
    Ok(if args.fail_on_inconsistent && report.any_check() { Outcome::SomeFailed } else { Outcome::Done })
}

fn write(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

fn merge(args: &MergeArgs) -> Result<Outcome> {
    for d in &args.dirs {
        if !d.join(crate::job::META_DIR).join("state.sqlite").is_file() {
            return Err(UsageError::wrap(format!(
                "{} is not a polysum output folder (no {}/state.sqlite)",
                d.display(),
                crate::job::META_DIR
            )));
        }
    }
    let r = crate::job::merge::merge(&args.dirs, &args.out)?;
    eprintln!(
        "merged {} articles ({} files) from {} folders into {}",
        r.articles,
        r.files,
        args.dirs.len(),
        args.out.display()
    );
    Ok(Outcome::Done)
}
