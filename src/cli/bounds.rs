//! Numeric flags, validated and bounded where they enter: each function parses one flag's text (a clap
//! `value_parser`) and the `check_*` forms validate the same setting from `polysum.toml`. A value out
//! of range is a usage error that names the range, never a panic, a hang or an allocation sized by it.

use std::time::Duration;

/// The most articles in flight at once (`--jobs`): each holds a worker thread and a share of the batch.
pub(crate) const MAX_JOBS: usize = 256;
/// The most requests open at once against a server (`--max-inflight`), one thread each.
pub(crate) const MAX_INFLIGHT: usize = 1024;
/// The longest a request may take (`--timeout`), in seconds: a day.
pub(crate) const MAX_TIMEOUT_SECS: f64 = 86_400.0;
/// The most retries of a request (`--retries`).
pub(crate) const MAX_RETRIES: u32 = 100;
/// The most CPU threads (`--threads`).
pub(crate) const MAX_THREADS: usize = 4096;
/// The most drafted tokens per decode step (`--draft`): with the sampled token, the most positions a step
/// computes with the decode kernels (`engine::model::MAX_DRAFT_POSITIONS`).
pub(crate) const MAX_DRAFT: usize = crate::engine::model::MAX_DRAFT_POSITIONS - 1;
/// The most translation candidates per piece (`--candidates`): each one is a row of the batch.
pub(crate) const MAX_CANDIDATES: usize = 8;
/// The largest context, in tokens (`--max-context`, `--remote-context`, `--max-input-tokens`).
pub(crate) const MAX_CONTEXT: usize = 1 << 20;

fn in_range<T: PartialOrd + std::fmt::Display + Copy>(flag: &str, v: T, min: T, max: T) -> Result<T, String> {
    if v < min || v > max {
        return Err(format!("{flag} must be between {min} and {max} (got {v})"));
    }
    Ok(v)
}

fn int<T: std::str::FromStr>(flag: &str, s: &str) -> Result<T, String> {
    s.trim().parse().map_err(|_| format!("{flag} takes a whole number (got {s:?})"))
}

/// `--candidates N`: 1 to `MAX_CANDIDATES`.
pub(crate) fn candidates(s: &str) -> Result<usize, String> {
    check_candidates(int("--candidates", s)?)
}

/// `candidates` from `polysum.toml`, bounded as `--candidates`.
pub(crate) fn check_candidates(n: usize) -> Result<usize, String> {
    in_range("--candidates", n, 1, MAX_CANDIDATES)
}

/// `--jobs N`: 1 to `MAX_JOBS`.
pub(crate) fn jobs(s: &str) -> Result<usize, String> {
    check_jobs(int("--jobs", s)?)
}

/// `jobs` from `polysum.toml`, bounded as `--jobs`.
pub(crate) fn check_jobs(n: usize) -> Result<usize, String> {
    in_range("--jobs", n, 1, MAX_JOBS)
}

/// `--max-inflight N`: 1 to `MAX_INFLIGHT`.
pub(crate) fn max_inflight(s: &str) -> Result<usize, String> {
    check_max_inflight(int("--max-inflight", s)?)
}

/// `max_inflight` from `polysum.toml`, bounded as `--max-inflight`.
pub(crate) fn check_max_inflight(n: usize) -> Result<usize, String> {
    in_range("--max-inflight", n, 1, MAX_INFLIGHT)
}

/// `--threads N`: 1 to `MAX_THREADS`.
pub(crate) fn threads(s: &str) -> Result<usize, String> {
    check_threads(int("--threads", s)?)
}

/// `threads` from `polysum.toml`, bounded as `--threads`.
pub(crate) fn check_threads(n: usize) -> Result<usize, String> {
    in_range("--threads", n, 1, MAX_THREADS)
}

/// `--draft N`: 0 (off) to `MAX_DRAFT`.
pub(crate) fn draft(s: &str) -> Result<usize, String> {
    check_draft(int("--draft", s)?)
}

/// `draft` from `polysum.toml`, bounded as `--draft`.
pub(crate) fn check_draft(n: usize) -> Result<usize, String> {
    in_range("--draft", n, 0, MAX_DRAFT)
}

/// `--retries N`: 0 to `MAX_RETRIES`.
pub(crate) fn retries(s: &str) -> Result<u32, String> {
    check_retries(int("--retries", s)?)
}

/// `retries` from `polysum.toml`, bounded as `--retries`.
pub(crate) fn check_retries(n: u32) -> Result<u32, String> {
    in_range("--retries", n, 0, MAX_RETRIES)
}

/// A context size in tokens: 256 to `MAX_CONTEXT`.
pub(crate) fn context(s: &str) -> Result<usize, String> {
    check_context(int("the context", s)?)
}

/// A context size from `polysum.toml`, bounded as the context flags.
pub(crate) fn check_context(n: usize) -> Result<usize, String> {
    in_range("the context", n, 256, MAX_CONTEXT)
}

/// `--timeout SECONDS`: a finite number above 0 and at most `MAX_TIMEOUT_SECS` (fractions allowed).
pub(crate) fn timeout(s: &str) -> Result<f64, String> {
    let t: f64 = s.trim().parse().map_err(|_| format!("--timeout takes a number of seconds (got {s:?})"))?;
    check_timeout(t).map(|_| t)
}

/// A timeout in seconds as a `Duration`, checked as `--timeout`.
pub(crate) fn check_timeout(t: f64) -> Result<Duration, String> {
    if !(t.is_finite() && t > 0.0 && t <= MAX_TIMEOUT_SECS) {
        return Err(format!("--timeout must be more than 0 and at most {MAX_TIMEOUT_SECS} seconds (got {t})"));
    }
    Duration::try_from_secs_f64(t).map_err(|e| format!("--timeout {t}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_hold_at_the_edges() {
        assert_eq!(jobs("1"), Ok(1));
        assert_eq!(jobs(&MAX_JOBS.to_string()), Ok(MAX_JOBS));
        assert!(jobs("0").is_err() && jobs("100000").is_err() && jobs("-1").is_err() && jobs("x").is_err());
        assert_eq!(timeout("0.5"), Ok(0.5));
        for bad in ["0", "-1", "1e20", "inf", "NaN", "86401", ""] {
            assert!(timeout(bad).is_err(), "{bad}");
        }
        assert!(check_timeout(MAX_TIMEOUT_SECS).is_ok());
        assert!(max_inflight("0").is_err() && max_inflight("8").is_ok() && max_inflight("1000000").is_err());
        assert!(retries("101").is_err() && retries("0").is_ok());
        assert!(context("255").is_err() && context("4096").is_ok() && context("99999999999").is_err());
        assert!(threads("0").is_err() && threads("4").is_ok());
    }
}
