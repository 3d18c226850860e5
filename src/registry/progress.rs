//! Download progress on stderr: a bar on a terminal, else one plain line per file.

use std::io::IsTerminal;

use indicatif::{HumanBytes, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub(crate) struct Progress {
    bar: Option<ProgressBar>,
    label: String,
    enabled: bool,
}

impl Progress {
    /// Starts reporting a download of `total` bytes (0 when unknown); `done` bytes are already there (resume).
    pub(crate) fn start(enabled: bool, label: &str, total: u64, done: u64) -> Progress {
        Progress::new(enabled, label, total, done, true)
    }

    /// A bar on a terminal, and nothing otherwise (for hashing, which has no line of its own).
    pub(crate) fn start_quiet(enabled: bool, label: &str, total: u64) -> Progress {
        Progress::new(enabled, label, total, 0, false)
    }

    fn new(enabled: bool, label: &str, total: u64, done: u64, lines: bool) -> Progress {
        let tty = enabled && std::io::stderr().is_terminal();
        let bar = tty.then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{msg:32!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(label.to_string());
            bar.set_position(done);
            bar
        });
        if enabled && lines && !tty {
            if done > 0 {
                eprintln!("{label}: resuming at {} of {}", HumanBytes(done), HumanBytes(total));
            } else {
                eprintln!("{label}: downloading {}", HumanBytes(total));
            }
        }
        Progress { bar, label: label.to_string(), enabled: enabled && lines }
    }

    pub(crate) fn set_total(&mut self, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total);
        }
    }

    pub(crate) fn set_position(&mut self, pos: u64) {
        if let Some(bar) = &self.bar {
            bar.set_position(pos);
        }
    }

    pub(crate) fn inc(&mut self, n: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(n);
        }
    }

    pub(crate) fn finish(&mut self, msg: &str) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        if self.enabled {
            eprintln!("{}: {msg}", self.label);
        }
    }

    /// Removes the bar without a line.
    pub(crate) fn clear(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }

    pub(crate) fn abandon(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.abandon();
    }
}

/// hf-hub reports through this trait.
impl hf_hub::api::Progress for Progress {
    fn init(&mut self, size: usize, _filename: &str) {
        self.set_total(size as u64);
        self.set_position(0);
    }
    fn update(&mut self, size: usize) {
        self.inc(size as u64);
    }
    fn finish(&mut self) {}
}

/// A status line on stderr (when progress is enabled).
pub(crate) fn note(enabled: bool, msg: &str) {
    if enabled {
        eprintln!("{msg}");
    }
}
