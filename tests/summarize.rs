//! `polysum summarize` end to end, through the binary.
//!
//! Most tests use the built-in fake model (`--model fake[:options]`, deterministic, instant) so that the
//! state, lock, kill, retry and format handling are tested exactly, fast. The `smollm2_*` tests run the real
//! engine on SmolLM2-135M (the fast test model).
//!
//! Fixtures: `tests/fixtures/articles/` holds a mixed folder: `.txt`, `.md`, `.html` (with scripts, menu,
//! sidebar, footer), `.json`, `.jsonl` (with an `"id": "../../escape"` line and a line that is not JSON),
//! an empty file, a binary `.txt`, a Latin-1 (invalid UTF-8) `.txt`, an article carrying an instruction,
//! and an unsupported `logo.png`. Tests add a huge file at run time.

mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn bin() -> Command {
    common::polysum()
}

fn summarize(args: &[&str]) -> Output {
    common::run_polysum(&[&["summarize"], args].concat())
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Copy the fixture folder into `dir/in` (plus a huge file), return the input folder.
fn fixture_copy(dir: &Path, huge: bool) -> PathBuf {
    let src = common::fixture("articles");
    let dst = dir.join("in");
    for entry in walkdir::WalkDir::new(&src) {
        let entry = entry.unwrap();
        let rel = entry.path().strip_prefix(&src).unwrap();
        let target = dst.join(rel);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
    if huge {
        let line = "The committee met again and discussed the same report for a long time. ";
        std::fs::write(dst.join("huge.txt"), line.repeat(9 * 1024 * 1024 / line.len() + 1)).unwrap();
    }
    dst
}

fn read_json(p: &Path) -> Value {
    common::read_json(p)
}

/// Every line of index.jsonl parsed; panics on a partial line or a duplicate id.
fn index(out: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(out.join("index.jsonl")).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "index.jsonl does not end with a newline");
    let lines: Vec<Value> =
        text.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("bad index line {l:?}: {e}"))).collect();
    let ids: HashSet<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), lines.len(), "duplicate ids in index.jsonl");
    lines
}

/// Every .json under `out` (outside .polysum) parses, and no temporary file is left.
fn all_outputs_valid(out: &Path) -> usize {
    outputs_valid(out, false)
}

/// Right after a SIGKILL a hidden `.polysum-tmp-*` file may remain (the next run removes it); every real
/// output must still be complete.
fn outputs_valid(out: &Path, allow_temp: bool) -> usize {
    let mut n = 0;
    for entry in walkdir::WalkDir::new(out).into_iter().filter_entry(|e| e.file_name() != ".polysum") {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy();
        if name.starts_with(".polysum-tmp") {
            assert!(allow_temp, "temporary file left: {}", entry.path().display());
            continue;
        }
        if entry.file_type().is_file() && name.ends_with(".json") {
            let v = read_json(entry.path());
            assert_eq!(v["schema_version"], 2);
            n += 1;
        }
    }
    n
}

fn final_line(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or_default().to_string()
}

fn summary<'a>(rec: &'a Value, lang: &str) -> &'a Value {
    &rec["summaries"][lang]
}

#[test]
fn mixed_folder_with_bad_files_is_summarized_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let input = fixture_copy(tmp.path(), true);
    let out = tmp.path().join("out");
    let o = summarize(&[s(&input), "--out", s(&out), "--model", "fake"]);
    assert_eq!(o.status.code(), Some(3), "some articles fail, the run finishes");
    assert!(final_line(&o).starts_with("polysum: done 8, skipped 0, failed 4,"), "{}", final_line(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("logo.png"), "unsupported file reported");

    for (rel, title) in [
        ("world/bridge.txt", "Harbour bridge reopens after repairs"),
        ("es/mercado.md", "El mercado central abre sus puertas tras la reforma"),
        ("page.html", "Library extends opening hours"),
        ("item.json", "Lluvias intensas en la costa"),
        ("feed.jsonl/rail-strike", "Rail workers call off strike"),
        (
            "feed.jsonl/escape",
            "A new bakery opened on the high street of Millbrook on Saturday. Its owner said the \
        bakery would sell bread made with flour from local farms.",
        ),
        ("injection.txt", "School garden wins regional prize"),
        ("latin1.txt", "Caf\u{FFFD} opens in the old station"),
    ] {
        let rec = read_json(&out.join(format!("{rel}.json")));
        assert_eq!(rec["title"], title, "{rel}");
        assert_eq!(rec["status"], "ok", "{rel}: {rec:#}");
        assert_eq!(rec["sha256"].as_str().unwrap().len(), 64);
        for lang in ["en", "es"] {
            let sm = summary(&rec, lang);
            assert_eq!(sm["status"], "ok");
            assert_eq!(sm["lang_detected"], lang);
            assert_eq!(sm["model"], "fake");
            assert!(sm["prompt_version"].as_str().unwrap().starts_with("sum-"));
            assert!(sm["tokens"]["generated"].as_u64().unwrap() > 0);
            assert!(sm["text"].as_str().unwrap().len() > 20);
        }
        let md = std::fs::read_to_string(out.join(format!("{rel}.md"))).unwrap();
        assert!(md.starts_with(&format!("# {title}")), "{md}");
    }
    assert_eq!(read_json(&out.join("es/mercado.md.json"))["source_lang"], "es");
    assert_eq!(read_json(&out.join("world/bridge.txt.json"))["source_lang"], "en");
    assert_eq!(read_json(&out.join("item.json.json"))["input_id"], "lluvias-costa");
    assert!(read_json(&out.join("latin1.txt.json"))["warnings"][0].as_str().unwrap().contains("UTF-8"));

    for (rel, why) in [
        ("binary.txt", "binary"),
        ("empty.txt", "empty"),
        ("huge.txt", "too large"),
        ("feed.jsonl/line-3", "invalid JSON"),
    ] {
        let rec = read_json(&out.join(format!("{rel}.json")));
        assert_eq!(rec["status"], "failed", "{rel}");
        assert!(rec["error"].as_str().unwrap().contains(why), "{rel}: {}", rec["error"]);
        assert!(!out.join(format!("{rel}.md")).exists());
    }
    // The "../../escape" id stayed inside the output folder; nothing was written next to it.
    let mut beside: Vec<String> =
        std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    beside.sort();
    assert_eq!(beside, ["in", "out"]);
    assert!(!tmp.path().join("escape.json").exists() && !out.parent().unwrap().join("escape.json").exists());
    assert_eq!(read_json(&out.join("feed.jsonl/escape.json"))["input_id"], "../../escape");
    assert!(!out.join("logo.png.json").exists());

    let idx = index(&out);
    assert_eq!(idx.len(), 12, "one line per article and per rejected file");
    assert_eq!(all_outputs_valid(&out), 12);
}

#[test]
fn rerun_skips_done_work_redoes_changes_and_repairs_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in");
    std::fs::create_dir_all(&input).unwrap();
    for (name, text) in [
        (
            "a.txt",
            "Floods close the northern road\nHeavy rain closed the northern road on Monday. \
    Crews expect to reopen it on Wednesday.",
        ),
        (
            "b.txt",
            "Museum gets a new director\nThe city museum named a new director on Friday, the \
                         board said in a statement.",
        ),
    ] {
        std::fs::write(input.join(name), text).unwrap();
    }
    let out = tmp.path().join("out");
    let args = [s(&input), "--out", s(&out), "--model", "fake", "--log-format", "json"];
    let o = summarize(&args);
    assert_eq!(o.status.code(), Some(0));
    let fin: Value = serde_json::from_str(&final_line(&o)).unwrap();
    assert_eq!((fin["done"].as_u64(), fin["skipped"].as_u64(), fin["failed"].as_u64()), (Some(2), Some(0), Some(0)));
    // JSON log lines on stderr.
    let events: Vec<Value> =
        String::from_utf8_lossy(&o.stderr).lines().map(|l| serde_json::from_str(l).expect("a JSON log line")).collect();
    assert_eq!(events.iter().filter(|e| e["event"] == "article").count(), 2);
    let first_a = read_json(&out.join("a.txt.json"));

    let o = summarize(&args);
    assert_eq!(o.status.code(), Some(0));
    let fin: Value = serde_json::from_str(&final_line(&o)).unwrap();
    assert_eq!((fin["done"].as_u64(), fin["skipped"].as_u64()), (Some(0), Some(2)));
    assert_eq!(read_json(&out.join("a.txt.json")), first_a, "a skipped article's file is untouched");

    // A changed article is redone; an output deleted by hand (or corrupted) is rebuilt from the state.
    std::fs::write(
        input.join("b.txt"),
        "Museum gets a new director\nThe city museum named a new director on Saturday.",
    )
    .unwrap();
    std::fs::remove_file(out.join("a.txt.md")).unwrap();
    std::fs::write(out.join("a.txt.json"), "{ truncated").unwrap();
    let o = summarize(&args);
    let fin: Value = serde_json::from_str(&final_line(&o)).unwrap();
    assert_eq!((fin["done"].as_u64(), fin["skipped"].as_u64()), (Some(2), Some(0)));
    let events: Vec<Value> =
        String::from_utf8_lossy(&o.stderr).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let status_of =
        |id: &str| events.iter().find(|e| e["event"] == "article" && e["id"] == id).map(|e| e["status"].clone());
    assert_eq!(status_of("a.txt"), Some(Value::from("restored")));
    assert_eq!(status_of("b.txt"), Some(Value::from("ok")));
    assert_eq!(read_json(&out.join("a.txt.json"))["summaries"], first_a["summaries"]);
    assert!(out.join("a.txt.md").exists());

    // --force redoes everything; another length is other work.
    let o = summarize(&[&args[..], &["--force", "--quiet"]].concat());
    assert!(final_line(&o).contains("\"done\":2"), "{}", final_line(&o));
    assert!(o.stderr.is_empty(), "--quiet prints nothing but errors: {}", String::from_utf8_lossy(&o.stderr));
    let o = summarize(&[&args[..], &["--max-words", "20"]].concat());
    assert!(final_line(&o).contains("\"done\":2"), "{}", final_line(&o));
    assert_eq!(read_json(&out.join("a.txt.json"))["summaries"]["en"]["length"], "w20");
    assert_eq!(index(&out).len(), 2);
}

#[test]
fn wrong_language_is_retried_and_then_recorded_as_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("story.txt");
    std::fs::write(&input, "Port reopens\nThe port reopened on Tuesday after the storm, officials said.").unwrap();
    let out = tmp.path().join("out");
    // This fake always answers in English. The default strategy (translate) tries translating the English
    // summary first, then summarizing the article with both prompts.
    let o = summarize(&[s(&input), "--out", s(&out), "--model", "fake:english"]);
    assert_eq!(o.status.code(), Some(3));
    let rec = read_json(&out.join("story.txt.json"));
    assert_eq!(summary(&rec, "en")["status"], "ok");
    let es = summary(&rec, "es");
    assert_eq!(es["status"], "failed");
    assert_eq!(es["text"], Value::Null, "an English text is never stored as the Spanish summary");
    assert_eq!(es["lang_detected"], "en");
    let strategies: Vec<&str> =
        es["attempts"].as_array().unwrap().iter().map(|a| a["strategy"].as_str().unwrap()).collect();
    assert_eq!(strategies, ["translate", "base", "native"]);
    assert!(es["error"].as_str().unwrap().contains("Spanish"));
    assert!(std::fs::read_to_string(out.join("story.txt.md")).unwrap().contains("Failed:"));

    // A model that writes Spanish once asked in Spanish: rescued by the retry, flagged.
    let out2 = tmp.path().join("out2");
    let o = summarize(&[s(&input), "--out", s(&out2), "--model", "fake:native-es,chatty", "--strategy", "direct"]);
    assert_eq!(o.status.code(), Some(0));
    let es = summary(&read_json(&out2.join("story.txt.json")), "es").clone();
    assert_eq!(es["status"], "ok");
    assert_eq!(es["attempts"].as_array().unwrap().len(), 2);
    let flags: Vec<&str> = es["flags"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert!(flags.contains(&"retried") && flags.contains(&"preamble_removed"), "{flags:?}");
    assert!(!es["text"].as_str().unwrap().contains("Sure"));
}

/// Start a run, wait until it holds the lock and has begun writing, then return it.
fn start_slow(input: &Path, out: &Path, model: &str) -> std::process::Child {
    bin()
        .args(["summarize", s(input), "--out", s(out), "--model", model, "--jobs", "1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let t = Instant::now();
    while !cond() {
        assert!(t.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn count_json(out: &Path) -> usize {
    walkdir::WalkDir::new(out)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file() && e.file_name().to_string_lossy().ends_with(".json"))
        .count()
}

#[test]
fn a_second_run_on_the_same_folder_exits_with_code_4() {
    let tmp = tempfile::tempdir().unwrap();
    let input = common::articles(tmp.path(), 3);
    let out = tmp.path().join("out");
    let mut first = start_slow(&input, &out, "fake:delay=1500");
    wait_for("the first run to take the lock", Duration::from_secs(20), || {
        std::fs::read_to_string(out.join(".polysum/lock")).is_ok_and(|p| p.trim() == first.id().to_string())
    });
    let t = Instant::now();
    let o = summarize(&[s(&input), "--out", s(&out), "--model", "fake"]);
    assert!(t.elapsed() < Duration::from_secs(5), "the second run must exit at once");
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(&format!("another polysum run (pid {}) is working on", first.id())), "{err}");
    first.kill().unwrap();
    first.wait().unwrap();
    // The lock dies with its process.
    let o = summarize(&[s(&input), "--out", s(&out), "--model", "fake"]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn sigkill_at_any_point_then_rerun_completes_without_duplicates() {
    let n = 8;
    for (round, kill_after) in [1usize, 3, 6].into_iter().enumerate() {
        let tmp = tempfile::tempdir().unwrap();
        let input = common::articles(tmp.path(), n);
        let out = tmp.path().join("out");
        let mut child = start_slow(&input, &out, "fake:delay=150");
        wait_for("the first outputs", Duration::from_secs(30), || count_json(&out) >= kill_after);
        // Child::kill sends SIGKILL on Unix.
        child.kill().unwrap();
        let status = child.wait().unwrap();
        assert_eq!(std::os::unix::process::ExitStatusExt::signal(&status), Some(9), "round {round}");
        let partial = count_json(&out);
        assert!(partial < n, "the run was killed before finishing (round {round})");
        // What the killed run left is valid already.
        outputs_valid(&out, true);
        index(&out);

        let o = summarize(&[s(&input), "--out", s(&out), "--model", "fake"]);
        assert_eq!(o.status.code(), Some(0), "round {round}");
        let line = final_line(&o);
        assert!(line.contains("failed 0"), "{line}");
        assert_eq!(all_outputs_valid(&out), n);
        let idx = index(&out);
        assert_eq!(idx.len(), n);
        assert!(idx.iter().all(|r| r["status"] == "ok"));
        // Nothing finished before the kill was done again... unless the kill fell between its files and
        // its state row: at most one article per worker is redone.
        let done: usize = line.split("done ").nth(1).unwrap().split(',').next().unwrap().parse().unwrap();
        assert!(done <= n - partial + 1, "redid {done} of {n} with {partial} finished ({line})");
    }
}

#[test]
fn usage_errors_exit_2_and_config_file_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let input = common::articles(tmp.path(), 1);
    let out = tmp.path().join("out");
    for bad in [
        vec![s(&input), "--out", s(&out), "--langs", "en,xx", "--model", "fake"],
        vec![s(&input), "--model", "fake"],
        vec!["/no/such/input", "--out", s(&out), "--model", "fake"],
        vec![s(&input), "--out", s(&out), "--sentences", "2", "--max-words", "9"],
        vec![s(&input), "--out", s(&out), "--format", "pdf", "--model", "fake"],
    ] {
        let o = summarize(&bad);
        assert_eq!(o.status.code(), Some(2), "{bad:?}");
    }
    assert!(!out.exists(), "nothing is written on a usage error");

    let cfg = tmp.path().join("polysum.toml");
    std::fs::write(
        &cfg,
        "inputs = [\"in\"]\nout = \"from-config\"\nmodel = \"fake\"\nlangs = [\"es\"]\nmax_words = 25\nquiet = true\n",
    )
    .unwrap();
    let o = bin().args(["summarize"]).current_dir(tmp.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let rec = read_json(&tmp.path().join("from-config/story-0.txt.json"));
    assert_eq!(rec["summaries"].as_object().unwrap().keys().collect::<Vec<_>>(), ["es"]);
    assert_eq!(rec["summaries"]["es"]["length"], "w25");
    // Flags win over the file.
    let o = bin().args(["summarize", "--langs", "en", "--out", "flag-out"]).current_dir(tmp.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    assert!(read_json(&tmp.path().join("flag-out/story-0.txt.json"))["summaries"]["en"].is_object());
    std::fs::write(&cfg, "outt = \"typo\"\n").unwrap();
    let o = bin().args(["summarize"]).current_dir(tmp.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("outt"));
}

/// A real full disk: a 256 KiB tmpfs. Needs root (mount); fails with the reason otherwise.
#[test]
fn full_disk_is_a_clear_error_and_keeps_state_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let mnt = tmp.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let mounted = Command::new("mount").args(["-t", "tmpfs", "-o", "size=256k", "tmpfs", s(&mnt)]).output();
    // A test that cannot do its job fails rather than pass without checking anything: run the suite as root
    // (as CI does), or leave this test out with `-- --skip full_disk`.
    match mounted {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("the full-disk test needs a tmpfs mount (root): {}", String::from_utf8_lossy(&o.stderr).trim()),
        Err(e) => panic!("the full-disk test needs the mount command: {e}"),
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    // Many articles with long titles: their outputs cannot all fit in 256 KiB.
    let input = tmp.path().join("in");
    std::fs::create_dir(&input).unwrap();
    for i in 0..400 {
        let title = format!("Headline {i} ").repeat(20);
        std::fs::write(
            input.join(format!("a{i:03}.txt")),
            format!("{title}\nThe council met on Tuesday about item {i}."),
        )
        .unwrap();
    }
    let out = mnt.join("out");
    let o = summarize(&[s(&input), "--out", s(&out), "--model", "fake"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("no space left on the device"), "{err}");
    assert!(!err.contains("panicked"));
    // Whatever was written is valid; with room again, the next run finishes the rest from the state.
    let valid = all_outputs_valid(&out);
    assert!(valid < 400, "{valid}");
    index(&out);
    let grown = Command::new("mount").args(["-o", "remount,size=64m", s(&mnt)]).status().unwrap();
    assert!(grown.success());
    let o = summarize(&[s(&input), "--out", s(&out), "--model", "fake", "--quiet"]);
    assert_eq!(o.status.code(), Some(0));
    assert_eq!(all_outputs_valid(&out), 400);
    assert_eq!(index(&out).len(), 400);
}

// ---- SmolLM2-135M: the real engine ----

fn smollm2() -> String {
    common::model_file("smollm2-135m").to_string_lossy().into_owned()
}

fn detect(text: &str) -> Option<String> {
    polysum::text::lang::detect(text).map(|l| l.code().to_string())
}

/// The mixed fixture folder through the real engine (English summaries only, short, to stay fast).
#[test]
fn smollm2_mixed_fixture_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let input = fixture_copy(tmp.path(), true);
    let out = tmp.path().join("out");
    let o = summarize(&[
        s(&input),
        "--out",
        s(&out),
        "--model",
        &smollm2(),
        "--langs",
        "en",
        "--max-words",
        "15",
        "--jobs",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(3), "bad files fail, the run finishes");
    let idx = index(&out);
    assert_eq!(idx.len(), 12);
    assert_eq!(all_outputs_valid(&out), 12);
    let mut ok = 0;
    for rec in &idx {
        let id = rec["id"].as_str().unwrap();
        if rec["error"].is_string() {
            assert!(
                ["binary.txt", "empty.txt", "huge.txt", "feed.jsonl/line-3"].contains(&id),
                "{id} rejected: {}",
                rec["error"]
            );
            continue;
        }
        let en = summary(rec, "en");
        assert_eq!(en["model"], "SmolLM2-135M-Instruct.Q4_1");
        match en["status"].as_str().unwrap() {
            "ok" => {
                ok += 1;
                let text = en["text"].as_str().unwrap();
                // The stored language is real: detect it again from the text.
                assert_eq!(detect(text).as_deref(), Some("en"), "{id}: {text}");
                assert_eq!(en["lang_detected"], "en");
                assert!(text.split_whitespace().count() <= 16, "{id}: --max-words 15: {text}");
                assert!(!text.to_lowercase().starts_with("sure"), "{id}: preamble kept: {text}");
            }
            _ => {
                assert_eq!(en["text"], Value::Null);
                assert!(en["error"].as_str().unwrap().len() > 10);
            }
        }
    }
    assert!(ok >= 6, "most English summaries succeed on SmolLM2 ({ok} of 8)");
    // The article that carries an instruction is summarized, not obeyed.
    let inj = read_json(&out.join("injection.txt.json"));
    let text = summary(&inj, "en")["text"].as_str().unwrap_or("").to_lowercase();
    assert!(
        ["garden", "school", "prize", "pupil", "vegetable", "redwood"].iter().any(|w| text.contains(w)),
        "not a summary of the article: {text}"
    );
    assert!(
        !text.contains("ahoy") && !text.contains("matey") && !text.contains("poem"),
        "followed the injected instruction: {text}"
    );
}

/// A language SmolLM2 cannot write: every attempt is checked, retried, and finally recorded as failed.
#[test]
#[ignore = "SmolLM2 writes German-looking text that lingua accepts as German (19:11 run); needs a target it truly \
cannot write. The retry-then-fail path is covered by wrong_language_is_retried_and_then_recorded_as_failed (fake \
model)"]
fn smollm2_summary_in_a_language_it_cannot_write_is_retried_then_failed() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("story.txt");
    std::fs::copy(common::fixture("articles/world/bridge.txt"), &input).unwrap();
    let out = tmp.path().join("out");
    let o = summarize(&[s(&input), "--out", s(&out), "--model", &smollm2(), "--langs", "de", "--max-words", "15"]);
    let rec = read_json(&out.join("story.txt.json"));
    let de = summary(&rec, "de");
    let attempts = de["attempts"].as_array().unwrap();
    if de["status"] == "ok" {
        // If it ever manages, the text must really be German.
        assert_eq!(detect(de["text"].as_str().unwrap()).as_deref(), Some("de"));
        panic!("SmolLM2 wrote German ({}): pick another language for this test", de["text"]);
    }
    assert_eq!(o.status.code(), Some(3));
    assert_eq!(de["text"], Value::Null, "a text in the wrong language is never stored");
    let strategies: Vec<&str> = attempts.iter().map(|a| a["strategy"].as_str().unwrap()).collect();
    // `translate` runs when there is a text to translate (not after an echoed prompt).
    assert!(strategies.starts_with(&["base", "native"]), "{de:#}");
    assert!(attempts.iter().all(|a| a["outcome"] != "ok"));
    assert!(de["error"].as_str().unwrap().contains("German"), "{}", de["error"]);
    assert!(de["tokens"]["generated"].as_u64().unwrap() > 0);
}

/// SIGKILL during a real-model run, then a rerun: every output valid, the index without duplicates.
#[test]
fn smollm2_sigkill_then_rerun_completes() {
    let tmp = tempfile::tempdir().unwrap();
    let input = common::articles(tmp.path(), 3);
    let out = tmp.path().join("out");
    let model = smollm2();
    let mut child = bin()
        .args([
            "summarize",
            s(&input),
            "--out",
            s(&out),
            "--model",
            &model,
            "--langs",
            "en",
            "--max-words",
            "10",
            "--jobs",
            "1",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for("the first output", Duration::from_secs(600), || count_json(&out) >= 1);
    child.kill().unwrap();
    child.wait().unwrap();
    let before = count_json(&out);
    assert!(before < 3, "killed before the end");
    outputs_valid(&out, true);
    index(&out);
    let o = summarize(&[
        s(&input),
        "--out",
        s(&out),
        "--model",
        &model,
        "--langs",
        "en",
        "--max-words",
        "10",
        "--jobs",
        "1",
    ]);
    assert!(matches!(o.status.code(), Some(0) | Some(3)), "{:?}", o.status);
    assert_eq!(all_outputs_valid(&out), 3);
    let idx = index(&out);
    assert_eq!(idx.len(), 3);
    let line = final_line(&o);
    assert!(line.contains("done ") && line.contains("skipped "), "{line}");
}

#[test]
fn the_scripted_test_model_is_not_offered_to_users() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("a.txt");
    std::fs::write(&input, "The council approved the budget on Tuesday.").unwrap();
    let out = tmp.path().join("out");
    let o = bin()
        .env_remove("POLYSUM_TEST_FAKE_MODEL")
        .env("HF_HUB_OFFLINE", "1")
        .args(["summarize", s(&input), "--out", s(&out), "--model", "fake"])
        .output()
        .unwrap();
    assert_ne!(o.status.code(), Some(0));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("fake") && err.contains("smollm2-135m"), "an unknown model, with the known names: {err}");
    assert!(!out.join("a.txt.json").exists());
}
