//! The Spanish summary of an English article, with the default model: it reads as Spanish to a detector
//! other than polysum's own, and the lexical check (hunspell's Spanish dictionary) finds every word.

mod common;

/// Spanish and English words that are frequent in any news text and are not words of the other language:
/// a detector independent of lingua, for the one thing this test asks of it.
const SPANISH: &[&str] = &["el", "la", "los", "las", "del", "que", "por", "para", "una", "con", "según", "fue", "ha"];
const ENGLISH: &[&str] = &["the", "of", "and", "that", "for", "with", "was", "has", "were", "by", "is", "from"];

fn share(text: &str, words: &[&str]) -> usize {
    text.split(|c: char| !c.is_alphabetic()).filter(|w| words.contains(&w.to_lowercase().as_str())).count()
}

#[test]
fn an_english_article_gives_a_clean_spanish_summary_with_the_default_model() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("bridge.txt");
    std::fs::write(
        &input,
        "City opens new bridge over the river\n\nThe city of Riverton opened a new bridge over the Clear River on \
Monday, after three years of work. The bridge cost 45 million dollars and has two lanes for cars and a path \
for bicycles. Mayor Ana Torres said the bridge would cut travel times between the two halves of the city by \
twenty minutes. About 2,000 residents walked across the bridge at the opening ceremony.",
    )
    .unwrap();
    let out = tmp.path().join("out");
    let o = common::polysum()
        .env_remove("POLYSUM_TEST_FAKE_MODEL")
        .args(["summarize", input.to_str().unwrap(), "--out", out.to_str().unwrap(), "--langs", "en,es"])
        .args(["--sentences", "2", "--jobs", "1"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", String::from_utf8_lossy(&o.stderr));
    let record = common::read_json(&out.join("bridge.txt.json"));
    let es = &record["summaries"]["es"];
    assert_eq!(es["status"], "ok", "{es}");
    let text = es["text"].as_str().unwrap();
    assert!(
        share(text, SPANISH) > 2 * share(text, ENGLISH).max(1),
        "does not read as Spanish (Spanish words {}, English words {}): {text}",
        share(text, SPANISH),
        share(text, ENGLISH)
    );
    assert_eq!(es["lexical"]["status"], "clean", "{text}\n{}", es["lexical"]);
    assert!(!es["flags"].as_array().unwrap().iter().any(|f| f == "unknown_words"));
}
