//! Faithful summaries end to end: `--verify off|flag|fix` on the scripted model (whose English summary
//! says "Tuesday" where the article says "Monday"), `polysum check`, and both on smollm2-135m.

mod common;

use std::path::Path;
use std::process::Output;

use common::{read_json, run_polysum};
use serde_json::Value;

/// An article whose first sentence the fake summary repeats and whose second it gets wrong (the day).
const ARTICLE: &str = "Council budget\nThe article reports the main facts of the story, the council said.\n\
    Officials gave the details on Monday afternoon after a long meeting.\n";

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn summarize(input: &Path, out: &Path, verify: &str) -> Output {
    run_polysum(&["summarize", s(input), "--out", s(out), "--model", "fake", "--langs", "en", "--verify", verify])
}

fn setup() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("budget.txt");
    std::fs::write(&input, ARTICLE).unwrap();
    (tmp, input)
}

fn english(out: &Path) -> Value {
    read_json(&out.join("budget.txt.json"))["summaries"]["en"].clone()
}

fn markdown(out: &Path) -> String {
    std::fs::read_to_string(out.join("budget.txt.md")).unwrap()
}

#[test]
fn flag_records_each_sentence_with_its_evidence_and_marks_the_invented_day() {
    let (tmp, input) = setup();
    let out = tmp.path().join("out");
    assert_eq!(summarize(&input, &out, "flag").status.code(), Some(0));
    let en = english(&out);
    let support = en["support"].as_array().expect("support recorded");
    assert_eq!(support.len(), 2, "{en}");
    assert_eq!(support[0]["verdict"], "supported", "{en}");
    assert_eq!(support[0]["evidence"][0], 1, "the sentence it repeats is its evidence: {en}");
    assert_eq!(support[1]["verdict"], "unsupported", "{en}");
    assert!(support[1]["failed_checks"].as_array().unwrap().contains(&"date".into()), "{en}");
    assert!(support[1]["evidence"].as_array().unwrap().contains(&2.into()), "the Monday sentence: {en}");
    assert!(en["flags"].as_array().unwrap().contains(&"unsupported".into()), "{en}");
    assert_eq!((en["repaired"].as_u64(), en["dropped"].as_u64()), (Some(0), Some(0)));
    // Flagged, not changed.
    assert!(en["text"].as_str().unwrap().contains("Tuesday"), "{en}");
    let md = markdown(&out);
    assert!(md.contains("> Check: not supported by the article: \"Officials gave the details on Tuesday"), "{md}");

    // The same setting again: nothing to redo. Another setting: redone, and repaired.
    let again = summarize(&input, &out, "flag");
    assert!(String::from_utf8_lossy(&again.stdout).contains("done 0, skipped 1"), "re-run with the same setting");
    let fix = summarize(&input, &out, "fix");
    assert!(String::from_utf8_lossy(&fix.stdout).contains("done 1, skipped 0"), "re-run with another setting");
    assert!(english(&out)["text"].as_str().unwrap().contains("Monday"));
}

#[test]
fn fix_rewrites_the_invented_day_from_its_evidence() {
    let (tmp, input) = setup();
    let out = tmp.path().join("out");
    assert_eq!(summarize(&input, &out, "fix").status.code(), Some(0));
    let en = english(&out);
    let text = en["text"].as_str().unwrap();
    assert!(text.contains("Monday") && !text.contains("Tuesday"), "{en}");
    assert_eq!(en["repaired"], 1, "{en}");
    let support = en["support"].as_array().unwrap();
    assert!(support.iter().all(|s| s["verdict"] == "supported"), "{en}");
    assert_eq!(support[1]["repaired"], true, "{en}");
    assert!(!en["flags"].as_array().unwrap().contains(&"unsupported".into()), "{en}");
    assert!(!markdown(&out).contains("Check:"));
}

#[test]
fn off_writes_what_a_run_without_checks_writes() {
    let (tmp, input) = setup();
    let (off, flag) = (tmp.path().join("off"), tmp.path().join("flag"));
    assert_eq!(summarize(&input, &off, "off").status.code(), Some(0));
    assert_eq!(summarize(&input, &flag, "flag").status.code(), Some(0));
    let (mut a, mut b) = (english(&off), english(&flag));
    for field in ["support", "repaired", "dropped"] {
        assert!(a.get(field).is_none(), "{field} with --verify off: {a}");
        b.as_object_mut().unwrap().remove(field);
    }
    b["flags"].as_array_mut().unwrap().retain(|f| f != "unsupported");
    for v in [&mut a, &mut b] {
        v["seconds"] = 0.into();
    }
    assert_eq!(a, b, "off is flag without its checks");
    assert!(!markdown(&off).contains("Check:"));
}

#[test]
fn check_prints_one_json_line_per_claim_and_rejects_bad_usage() {
    let (tmp, input) = setup();
    let claims = tmp.path().join("claims.txt");
    std::fs::write(&claims, "Officials gave the details on Monday afternoon.\n\nThe mayor resigned on Friday.\n")
        .unwrap();
    let o = run_polysum(&["check", s(&input), s(&claims), "--model", "fake", "--json"]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "blank lines are skipped");
    assert_eq!((lines[0]["verdict"].as_str(), lines[0]["evidence"][0].as_u64()), (Some("supported"), Some(2)));
    assert_eq!(lines[1]["verdict"], "unsupported");
    assert!(lines[1]["failed_checks"].as_array().unwrap().contains(&"date".into()));
    assert!(lines.iter().all(|l| l["score"].as_f64().is_some_and(|p| (0.0..=1.0).contains(&p))));
    // A table without --json.
    let t = run_polysum(&["check", s(&input), s(&claims), "--model", "fake"]);
    assert!(String::from_utf8_lossy(&t.stdout).contains("UNSUPPORTED"));
    for bad in [
        vec!["check", s(&input), "/nonexistent/claims.txt", "--model", "fake"],
        vec!["check", s(&input), s(&claims), "--model", "fake", "--question", "maybe"],
        vec!["check", s(&input), s(&claims), "--model", "fake", "--lang", "xx"],
    ] {
        assert_eq!(run_polysum(&bad).status.code(), Some(2), "{bad:?}");
    }
}

fn smollm2() -> String {
    common::model_file("smollm2-135m").to_string_lossy().into_owned()
}

#[test]
fn smollm2_check_and_summarize_with_fix() {
    let model = smollm2();
    let (tmp, input) = setup();
    let claims = tmp.path().join("claims.txt");
    std::fs::write(&claims, "Officials gave the details on Monday.\nThe council met on Friday in Paris.\n").unwrap();
    let o = run_polysum(&["check", s(&input), s(&claims), "--model", &model, "--json", "--lang", "en"]);
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2);
    // The hard checks do not depend on the model.
    let failed = lines[1]["failed_checks"].as_array().unwrap();
    assert!(failed.contains(&"date".into()) && failed.contains(&"name".into()), "{:?}", lines[1]);
    assert_eq!(lines[1]["verdict"], "unsupported");

    let out = tmp.path().join("out");
    let o = run_polysum(&[
        "summarize",
        s(&input),
        "--out",
        s(&out),
        "--model",
        &model,
        "--langs",
        "en",
        "--max-words",
        "30",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let en = english(&out);
    let text = en["text"].as_str().unwrap();
    let support = en["support"].as_array().expect("fix is the default");
    // One entry per final sentence, its text that sentence, its evidence sentences of the article.
    let joined: Vec<&str> = support.iter().map(|s| s["text"].as_str().unwrap()).collect();
    assert_eq!(joined.join(" "), text, "{en}");
    for s in support {
        assert!(s["evidence"].as_array().unwrap().iter().all(|i| i.as_u64().unwrap() < 3), "{s}");
    }
}

#[test]
fn translate_checks_each_sentence_and_the_title_against_the_source() {
    let (tmp, input) = setup();
    let out = tmp.path().join("tr");
    let translate = |verify: &str| {
        run_polysum(&["translate", s(&input), "--to", "es", "--out", s(&out), "--model", "fake", "--verify", verify])
    };
    assert_eq!(translate("flag").status.code(), Some(0));
    let t = read_json(&out.join("budget.txt.json"))["translation"].clone();
    let support = t["support"].as_array().expect("support recorded");
    // The title, then each sentence of the two translated paragraphs (the scripted model answers two a piece).
    assert_eq!(support.len(), 1 + 2 * 2, "{t}");
    assert_eq!(support[0]["text"], t["title"], "{t}");
    // The scripted Spanish says nothing of the English article: every sentence flagged, with its source.
    assert!(support.iter().all(|s| s["verdict"] == "unsupported"), "{t}");
    assert!(support[3]["evidence"].as_array().unwrap().contains(&2.into()), "the second paragraph: {t}");
    assert!(t["flags"].as_array().unwrap().contains(&"unsupported".into()), "{t}");
    let md = std::fs::read_to_string(out.join("budget.txt.es.md")).unwrap();
    assert!(md.contains("> Check: not supported by the article"), "{md}");

    let off = tmp.path().join("tr-off");
    let o =
        run_polysum(&["translate", s(&input), "--to", "es", "--out", s(&off), "--model", "fake", "--verify", "off"]);
    assert_eq!(o.status.code(), Some(0));
    let t = read_json(&off.join("budget.txt.json"))["translation"].clone();
    assert!(t.get("support").is_none(), "{t}");
}
