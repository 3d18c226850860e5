//! What a run tells its user: a progress bar (indicatif) on a terminal; one plain line per article when
//! stderr is not a terminal (cron); JSON lines with `--log-format json`; with `--quiet` only errors and the
//! final line. Log lines go to stderr; the final summary line goes to stdout.

use std::io::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s.to_ascii_lowercase().as_str() {
            "text" | "plain" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => anyhow::bail!("unknown log format {s:?}: use text or json"),
        }
    }
}

/// One processed article, for the log.
#[derive(Debug, Clone)]
pub(crate) struct ArticleEvent {
    pub(crate) id: String,
    /// `ok`, `failed` or `restored` (outputs rebuilt from the state, no generation).
    pub(crate) status: &'static str,
    /// (language, `ok`/`failed`, error).
    pub(crate) langs: Vec<(String, &'static str, Option<String>)>,
    pub(crate) error: Option<String>,
    pub(crate) seconds: f64,
    pub(crate) generated_tokens: usize,
}

/// Counts of a whole run.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct RunReport {
    pub(crate) done: usize,
    pub(crate) skipped: usize,
    pub(crate) failed: usize,
    /// Files left alone (unsupported kinds).
    pub(crate) ignored: usize,
    /// Articles left to the other shards (`--shard K/N`).
    pub(crate) other_shards: usize,
    pub(crate) generated_tokens: usize,
    /// Wall time of the generation phase (model loaded, articles summarized).
    pub(crate) generate_wall_seconds: f64,
    pub(crate) wall_seconds: f64,
}

impl RunReport {
    pub(crate) fn tokens_per_second(&self) -> f64 {
        if self.generate_wall_seconds > 0.0 {
            self.generated_tokens as f64 / self.generate_wall_seconds
        } else {
            0.0
        }
    }
}

pub(crate) struct Reporter {
    format: LogFormat,
    quiet: bool,
    bar: Option<ProgressBar>,
    total: AtomicUsize,
    n: AtomicUsize,
    tokens: AtomicU64,
    work_start: Mutex<Option<Instant>>,
}

impl Reporter {
    /// `tty`: whether stderr is a terminal (then a bar, unless JSON or quiet).
    pub(crate) fn new(format: LogFormat, quiet: bool, tty: bool) -> Reporter {
        let bar = (tty && !quiet && format == LogFormat::Text).then(|| {
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} articles, ETA {eta} {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Reporter {
            format,
            quiet,
            bar,
            total: AtomicUsize::new(0),
            n: AtomicUsize::new(0),
            tokens: AtomicU64::new(0),
            work_start: Mutex::new(None),
        }
    }

    /// The number of articles that need the model; starts the clock for ETA and tokens/s.
    pub(crate) fn start_work(&self, total: usize) {
        self.total.store(total, Ordering::SeqCst);
        *self.work_start.lock().unwrap() = Some(Instant::now());
        if let Some(bar) = &self.bar {
            bar.set_length(total as u64);
            bar.reset_eta();
        }
    }

    fn line(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.println(text),
            None => {
                let _ = writeln!(std::io::stderr().lock(), "{text}");
            }
        }
    }

    fn emit(&self, level: &str, msg: &str) {
        match self.format {
            LogFormat::Text => self
                .line(&format!("polysum: {}{msg}", if level == "info" { String::new() } else { format!("{level}: ") })),
            LogFormat::Json => self.line(&json!({"event": "log", "level": level, "message": msg}).to_string()),
        }
    }

    pub(crate) fn info(&self, msg: &str) {
        if !self.quiet {
            self.emit("info", msg);
        }
    }

    pub(crate) fn warn(&self, msg: &str) {
        if !self.quiet {
            self.emit("warning", msg);
        }
    }

    /// Always shown, even with --quiet.
    pub(crate) fn error(&self, msg: &str) {
        self.emit("error", msg);
    }

    fn tokens_per_second(&self) -> f64 {
        let start = *self.work_start.lock().unwrap();
        let secs = start.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
        if secs > 0.0 {
            self.tokens.load(Ordering::SeqCst) as f64 / secs
        } else {
            0.0
        }
    }

    /// An article that went through the model (or was restored / failed to read).
    pub(crate) fn article(&self, ev: &ArticleEvent, counts_toward_work: bool) {
        self.tokens.fetch_add(ev.generated_tokens as u64, Ordering::SeqCst);
        let n =
            if counts_toward_work { self.n.fetch_add(1, Ordering::SeqCst) + 1 } else { self.n.load(Ordering::SeqCst) };
        let total = self.total.load(Ordering::SeqCst);
        let tps = self.tokens_per_second();
        if let Some(bar) = &self.bar {
            if counts_toward_work {
                bar.inc(1);
            }
            bar.set_message(format!("{tps:.1} tokens/s"));
        }
        let failed = ev.status == "failed";
        if self.quiet && !failed {
            return;
        }
        match self.format {
            LogFormat::Text => {
                let langs: Vec<String> = ev.langs.iter().map(|(l, s, _)| format!("{l}={s}")).collect();
                let mut line = format!("polysum: [{n}/{total}] {} {}", ev.status, ev.id);
                if !langs.is_empty() {
                    line.push_str(&format!(" ({})", langs.join(" ")));
                }
                if ev.generated_tokens > 0 {
                    line.push_str(&format!(" {:.1}s, {} tokens, {tps:.1} tokens/s", ev.seconds, ev.generated_tokens));
                }
                if let Some(e) = &ev.error {
                    line.push_str(&format!(": {e}"));
                }
                for (l, _, e) in &ev.langs {
                    if let Some(e) = e {
                        line.push_str(&format!("; {l}: {e}"));
                    }
                }
                if !failed && self.bar.is_some() {
                    // With a bar, successful articles only move the bar.
                    return;
                }
                self.line(&line);
            }
            LogFormat::Json => {
                let langs: serde_json::Map<String, serde_json::Value> =
                    ev.langs.iter().map(|(l, s, e)| (l.clone(), json!({"status": s, "error": e}))).collect();
                self.line(
                    &json!({"event": "article", "n": n, "total": total, "id": ev.id, "status": ev.status,
                            "error": ev.error, "summaries": langs, "seconds": ev.seconds,
                            "generated_tokens": ev.generated_tokens, "tokens_per_second": (tps * 10.0).round() / 10.0})
                    .to_string(),
                );
            }
        }
    }

    /// The final line (stdout), always printed.
    pub(crate) fn finish(&self, r: &RunReport, exit_code: i32) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let line = match self.format {
            LogFormat::Text => {
                let mut s = format!(
                    "polysum: done {}, skipped {}, failed {}, wall time {:.1}s, {:.1} tokens/s",
                    r.done,
                    r.skipped,
                    r.failed,
                    r.wall_seconds,
                    r.tokens_per_second()
                );
                if r.ignored > 0 {
                    s.push_str(&format!(" ({} unsupported files ignored)", r.ignored));
                }
                s
            }
            LogFormat::Json => json!({"event": "finished", "done": r.done, "skipped": r.skipped, "failed": r.failed,
                "ignored": r.ignored, "wall_seconds": (r.wall_seconds * 1000.0).round() / 1000.0,
                "generated_tokens": r.generated_tokens,
                "tokens_per_second": (r.tokens_per_second() * 10.0).round() / 10.0, "exit_code": exit_code})
            .to_string(),
        };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    }
}
