//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The cache polysum downloads models into (`POLYSUM_CACHE`, else the platform cache dir).
pub fn cache_dir() -> PathBuf {
    std::env::var_os("POLYSUM_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| dirs::cache_dir().expect("no cache dir on this platform").join("polysum"))
}

/// The cached GGUF file of a registry model. Tests that need a model fail (never skip) when it is missing:
/// `.ci/run` pulls them, and so does `polysum models pull NAME`.
pub fn model_file(name: &str) -> PathBuf {
    let dir = cache_dir().join("models").join(name);
    let found = std::fs::read_dir(&dir).ok().and_then(|entries| {
        entries.filter_map(|e| e.ok()).map(|e| e.path()).find(|p| p.extension().is_some_and(|x| x == "gguf"))
    });
    found.unwrap_or_else(|| {
        panic!("model {name} is not in {}: run `polysum models pull {name}` (or bash .ci/run) first", dir.display())
    })
}

pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join(name)
}

/// Lines of a JSONL fixture.
pub fn jsonl(name: &str) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(fixture(name)).unwrap();
    text.lines().filter(|l| !l.trim().is_empty()).map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// A folder `in/` of `n` short council stories, every other one in a subfolder.
pub fn articles(dir: &std::path::Path, n: usize) -> PathBuf {
    let input = dir.join("in");
    std::fs::create_dir_all(input.join("sub")).unwrap();
    for i in 0..n {
        let sub = if i % 2 == 0 { "" } else { "sub/" };
        std::fs::write(
            input.join(format!("{sub}story-{i}.txt")),
            format!(
                "Story number {i}\nThe town council of Riverside met on Tuesday to discuss item {i} of its agenda, \
            a new bus line."
            ),
        )
        .unwrap();
    }
    input
}

/// The polysum binary with a clean environment: no model or config from the user's shell, no colour, and
/// the scripted test model (`--model fake…`) enabled.
pub fn polysum() -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_polysum"));
    c.env_remove("POLYSUM_MODEL").env_remove("POLYSUM_CONFIG").env("NO_COLOR", "1").env("POLYSUM_TEST_FAKE_MODEL", "1");
    c.current_dir(std::env::temp_dir());
    c
}

/// Run `polysum ARGS...`, echoing its output for a failing test's log.
pub fn run_polysum(args: &[&str]) -> std::process::Output {
    let out = polysum().args(args).output().unwrap();
    eprintln!(
        "--- polysum {}\n{}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    out
}

pub fn read_json(p: &std::path::Path) -> serde_json::Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not valid JSON: {e}\n{text}", p.display()))
}

/// Prefix sharing computes a prompt in two steps instead of one, which changes the shapes of the f32
/// GEMMs and so the order of their sums. Two greedy runs must agree token for token, or part only where
/// the two candidates were tied within that noise (0.1 logit, far below the gaps of real choices; a wrong
/// mask or position parts the runs at once, by whole logits). Against llama.cpp, whose kernels quantize
/// activations and sum in their own order, the noise is larger (0.25).
pub fn assert_same_tokens_or_rounding_tie(
    e: &polysum::engine::generate::Engine,
    prompt: &str,
    a: &[u32],
    b: &[u32],
    tolerance: f32,
) {
    let n = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    if n == a.len() && n == b.len() {
        return;
    }
    assert!(n < a.len() && n < b.len(), "one run stopped early: {a:?} vs {b:?}");
    let mut ids = e.encode_prompt(prompt).unwrap();
    ids.extend_from_slice(&a[..n]);
    let logits: Vec<f32> = e.logits_all(&ids).unwrap().get(ids.len() - 1).unwrap().to_vec1().unwrap();
    let gap = (logits[a[n] as usize] - logits[b[n] as usize]).abs();
    assert!(
        gap < tolerance,
        "the runs part at token {n} ({} vs {}) with a logit gap of {gap}: not a rounding tie",
        a[n],
        b[n]
    );
}

/// Two questions about one article, 24 greedy tokens each: prompts that share the article as a prefix, as
/// an article's EN and ES requests do.
pub fn article_questions(e: &polysum::engine::generate::Engine) -> Vec<polysum::engine::generate::Request> {
    let article = std::fs::read_to_string(fixture("news-paragraph.txt")).unwrap();
    ["Summarize the article in one sentence.", "List two people or groups named in the article."]
        .iter()
        .map(|q| {
            let user = format!("Article:\n{article}\n\n{q}");
            let prompt = e.chat_prompt(Some("You are a helpful assistant."), &user, None).unwrap();
            polysum::engine::generate::Request::greedy(prompt, 24)
        })
        .collect()
}

/// Each call on its own thread, all started at once, so that they meet in the scheduler's running batch.
pub fn generate_concurrently(
    scheduler: &polysum::engine::scheduler::Scheduler,
    calls: &[Vec<polysum::engine::generate::Request>],
) -> Vec<anyhow::Result<(Vec<polysum::engine::generate::Generation>, polysum::engine::generate::CallStats)>> {
    let start = std::sync::Barrier::new(calls.len());
    std::thread::scope(|s| {
        let handles: Vec<_> = calls
            .iter()
            .map(|c| {
                let start = &start;
                s.spawn(move || {
                    start.wait();
                    scheduler.generate(c)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}
