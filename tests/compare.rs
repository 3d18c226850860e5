//! `polysum compare` end to end, on fixture output folders (tests/fixtures/compare/*), with the binary.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixture_dir(name: &str) -> PathBuf {
    common::fixture("compare").join(name)
}

fn polysum(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_polysum"))
        .args(args)
        .env_remove("NO_COLOR")
        .env_remove("POLYSUM_MODEL")
        .output()
        .unwrap()
}

fn compare_json(dir: &Path, extra: &[&str]) -> (Output, serde_json::Value) {
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("r.json");
    let mut args = vec!["compare", dir.to_str().unwrap(), "--json", json.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = polysum(&args);
    assert!(json.exists(), "no JSON written; stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    (out, v)
}

fn article<'a>(v: &'a serde_json::Value, id: &str) -> &'a serde_json::Value {
    v["articles"].as_array().unwrap().iter().find(|a| a["id"] == id).unwrap_or_else(|| panic!("no article {id}"))
}

fn reasons(v: &serde_json::Value) -> Vec<String> {
    v["reasons"].as_array().unwrap().iter().map(|r| r.as_str().unwrap().to_string()).collect()
}

#[test]
fn exit_codes_and_plain_table_when_not_a_terminal() {
    let news = fixture_dir("news");
    let out = polysum(&["compare", news.to_str().unwrap(), "--no-backtranslate"]);
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.contains('\x1b'), "colour codes in piped output");
    assert!(stdout.contains("budget") && stdout.contains("check"), "{stdout}");
    assert!(stdout.contains("number 14,000 million only in EN"), "{stdout}");
    // The malformed index line is a warning, not a failure.
    assert!(stdout.contains("warning:") && stdout.contains("index.jsonl:7"), "{stdout}");

    let out = polysum(&["compare", news.to_str().unwrap(), "--no-backtranslate", "--fail-on-inconsistent"]);
    assert_eq!(out.status.code(), Some(3));
    let ok = fixture_dir("consistent");
    let out = polysum(&["compare", ok.to_str().unwrap(), "--no-backtranslate", "--fail-on-inconsistent"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    let missing = polysum(&["compare", "/nonexistent/polysum-out", "--no-backtranslate"]);
    assert_eq!(missing.status.code(), Some(1));
    let usage = polysum(&["compare", "--no-such-flag"]);
    assert_eq!(usage.status.code(), Some(2));
}

#[test]
fn json_flags_numbers_names_and_missing_summaries() {
    let (out, v) = compare_json(&fixture_dir("news"), &["--no-backtranslate"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(v["backtranslation"], false);

    let budget = article(&v, "budget");
    assert_eq!(budget["verdict"], "check");
    let r = reasons(budget);
    for want in [
        "number 14,000 million only in EN",
        "number 12.000 millones only in ES",
        "name José Luis Martínez-Almeida only in EN",
        "name Rita Maestre only in ES",
    ] {
        assert!(r.contains(&want.to_string()), "missing {want:?} in {r:?}");
    }
    // "Madrid" is in both (as "Ayuntamiento de Madrid" in Spanish): not flagged.
    assert!(!r.iter().any(|x| x.contains("name Madrid")), "{r:?}");

    // Numbers written differently but equal: "14,000" / "catorce mil", "3.5 billion" / "3.500 millones",
    // "65 percent" / "sesenta y cinco por ciento".
    for id in ["housing.en", "housing.es"] {
        let a = article(&v, id);
        assert_eq!(a["verdict"], "consistent", "{id}: {:?}", reasons(a));
    }

    let storm = article(&v, "storm");
    assert_eq!(storm["verdict"], "check");
    assert_eq!(
        reasons(storm),
        vec!["ES summary failed: the summary was not in Spanish (detected en) after 2 attempts"]
    );
    assert!(storm["check"].is_null());

    // Parallel stories: by file stem and by story_id.
    let stories = v["stories"].as_array().unwrap();
    let keys: Vec<(&str, &str)> =
        stories.iter().map(|s| (s["key"].as_str().unwrap(), s["paired_by"].as_str().unwrap())).collect();
    assert_eq!(keys, vec![("housing", "stem"), ("wire-77", "story_id")]);
    let wire = &stories[1];
    assert_eq!((wire["en_article"].as_str(), wire["es_article"].as_str()), (Some("feed/1"), Some("feed/2")));
    let labels: Vec<String> = wire["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| format!("{} | {}", c["left"]["label"].as_str().unwrap(), c["right"]["label"].as_str().unwrap()))
        .collect();
    assert_eq!(
        labels,
        vec![
            "EN of EN article | ES of ES article",
            "EN of EN article | EN of ES article",
            "ES of EN article | ES of ES article"
        ]
    );
    // "2,500" = "two thousand five hundred" = "2.500": no number flags in any of the three pairs.
    assert!(!reasons(wire).iter().any(|r| r.starts_with("number")), "{:?}", reasons(wire));
    // Same-language cross-pairs are scored without a model.
    assert!(wire["checks"][1]["scores"][0]["chrf"].as_f64().unwrap() > 0.0);
}

#[test]
fn html_escapes_hostile_text_and_loads_nothing_external() {
    let tmp = tempfile::tempdir().unwrap();
    let html = tmp.path().join("r.html");
    let out = polysum(&[
        "compare",
        fixture_dir("xss").to_str().unwrap(),
        "--no-backtranslate",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(!page.contains("<script"), "unescaped script tag");
    assert!(!page.contains("<img"), "unescaped img tag");
    assert!(!page.contains("\"><"), "a quote broke out of the text");
    assert!(page.contains("&lt;script&gt;alert(1)&lt;"), "escaped script text missing");
    assert!(page.contains("&quot;&gt;&lt;img onerror=alert(2)"), "escaped img text missing");
    assert!(page.contains("&quot;&gt;&lt;img onerror=alert(3)"), "escaped source path missing");
    assert!(page.contains("O&#x27;Brien &amp; Co."));
    // Self-contained and phone-ready.
    for external in ["src=\"", "src='", "href=\"http", "<link", "@import", "url("] {
        assert!(!page.contains(external), "external resource: {external}");
    }
    assert!(page.contains("name=\"viewport\""));
    assert!(page.contains("@media (max-width"));
}

/// Renders a report in headless Chromium and fails on any console message (the page has no scripts, so
/// any console line is an error: a script error, a blocked resource, a CSP violation).
fn chromium_console(html: &Path) -> (String, Vec<String>) {
    let browser = ["chromium", "chromium-browser"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    let Some(browser) = browser else {
        panic!(
            "chromium is not installed: install Debian's `chromium` package (apt-get install chromium) to run this \
        test"
        );
    };
    let profile = tempfile::tempdir().unwrap();
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(["--enable-logging=stderr", "--v=0", "--dump-dom"])
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium failed: {}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console =
        stderr.lines().filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught")).map(str::to_string).collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn html_loads_in_chromium_without_console_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let html = tmp.path().join("report.html");
    let out = polysum(&[
        "compare",
        fixture_dir("news").to_str().unwrap(),
        "--no-backtranslate",
        "--html",
        html.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(0));
    let (dom, console) = chromium_console(&html);
    assert!(console.is_empty(), "console messages: {console:#?}");
    // Six article cards and two story cards, the chart only when there are scores (none without a model,
    // except the stories' same-language pairs, which the chart leaves out).
    assert_eq!(dom.matches("<section class=\"card article").count(), 6, "{dom}");
    assert_eq!(dom.matches("<section class=\"card story").count(), 2);
    assert!(dom.contains("<mark>14,000 million</mark>"), "flag not highlighted");

    // The check itself detects errors: the same page with a broken script must fail it.
    let page = std::fs::read_to_string(&html).unwrap().replace("</body>", "<script>notDefined();</script></body>");
    let broken = tmp.path().join("broken.html");
    std::fs::write(&broken, page).unwrap();
    let (_, console) = chromium_console(&broken);
    assert!(console.iter().any(|l| l.contains("notDefined")), "a broken script went unnoticed");
}

#[test]
fn backtranslation_runs_the_model_once_per_article() {
    let model = common::model_file("smollm2-135m");
    let (out, v) = compare_json(&fixture_dir("consistent"), &["--model", model.to_str().unwrap(), "--threads", "2"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(v["backtranslation"], true);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("back-translated in").count(), 2, "{stderr}");
    for a in v["articles"].as_array().unwrap() {
        let c = &a["check"];
        let labels: Vec<&str> = c["scores"].as_array().unwrap().iter().map(|s| s["label"].as_str().unwrap()).collect();
        assert_eq!(labels, vec!["ES→EN", "EN→ES"]);
        for s in c["scores"].as_array().unwrap() {
            let x = s["chrf"].as_f64().unwrap();
            assert!((0.0..=100.0).contains(&x));
        }
        assert!(!c["left"]["back_translation"].as_str().unwrap().is_empty());
        assert!(!c["right"]["back_translation"].as_str().unwrap().is_empty());
    }
    // The native pair of the story reuses the articles' back-translations.
    assert_eq!(v["stories"][0]["checks"][0]["scores"].as_array().unwrap().len(), 2);
}

#[test]
fn html_shows_each_sentence_beside_its_evidence_and_the_verdict_counts_source_support() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("budget.txt");
    // The scripted summary says "Tuesday" where the article says "Monday".
    std::fs::write(
        &input,
        "Council budget\nThe article reports the main facts of the story, the council said.\n\
         Officials gave the details on Monday afternoon after a long meeting.\n",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = common::run_polysum(&[
        "summarize",
        input.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--model",
        "fake",
        "--verify",
        "flag",
    ]);
    assert_eq!(o.status.code(), Some(0));
    let (_, v) = compare_json(&out, &["--no-backtranslate"]);
    let a = article(&v, "budget.txt");
    assert_eq!(a["verdict"], "check");
    assert!(
        reasons(a)
            .iter()
            .any(|r| r.starts_with("EN not supported by the article: \"Officials gave the details on Tuesday")),
        "{:?}",
        reasons(a)
    );
    let html = tmp.path().join("report.html");
    let o = polysum(&["compare", out.to_str().unwrap(), "--no-backtranslate", "--html", html.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0));
    let (dom, console) = chromium_console(&html);
    assert!(console.is_empty(), "console messages: {console:#?}");
    assert!(dom.contains("<table class=\"support\">"), "{dom}");
    // The invented day is marked, beside the article sentence it contradicts.
    let row =
        dom.split("<tr class=\"unsupported\">").nth(1).expect("an unsupported row").split("</tr>").next().unwrap();
    assert!(row.contains("Tuesday") && row.contains("not supported: date"), "{row}");
    assert!(
        row.contains("<blockquote>Officials gave the details on Monday afternoon after a long meeting.</blockquote>"),
        "{row}"
    );
    assert!(dom.contains("<tr class=\"supported\"><td>The article reports the main facts of the story.</td>"), "{dom}");
}
