//! Property tests (proptest, run as ordinary tests with a fixed number of cases): input discovery and
//! output naming give every article a distinct key that stays inside the output folder, whatever the
//! file names and JSON ids; the OpenAI reply parser never panics, caps token counts and never quotes a
//! reply in its errors.

use std::collections::HashSet;
use std::path::{Component, Path};

use polysum::backend::openai::{parse_reply, ChatRequest, MAX_PROMPT_TOKENS};
use polysum::engine::sampling::SamplingParams;
use polysum::job::input::{self, Names, RESERVED_TOP_NAMES};
use proptest::prelude::*;

/// Checks that keys are distinct (ignoring case), leave no folder, take no reserved name, and that no
/// key is a folder of another.
fn check_keys(keys: &[String]) -> Result<(), TestCaseError> {
    let mut seen = HashSet::new();
    let out = Path::new("/out");
    for k in keys {
        prop_assert!(seen.insert(k.to_lowercase()), "duplicate key {k:?} in {keys:?}");
        let p = input::output_path(out, k, ".json").map_err(|e| TestCaseError::fail(format!("{e}")))?;
        prop_assert!(p.starts_with(out));
        prop_assert!(Path::new(k).components().all(|c| matches!(c, Component::Normal(_))), "{k:?}");
        let first = k.split('/').next().unwrap().to_lowercase();
        prop_assert!(!RESERVED_TOP_NAMES.iter().any(|r| r.to_lowercase() == first), "reserved {k:?}");
    }
    for a in keys {
        for b in keys {
            prop_assert!(
                !b.to_lowercase().starts_with(&format!("{}/", a.to_lowercase())),
                "{a:?} is a folder of {b:?}"
            );
        }
    }
    Ok(())
}

/// Path-like strings: components from a hostile alphabet (dots, slashes, non-Latin, invisible, bidi).
fn hostile_path() -> impl Strategy<Value = String> {
    let part = proptest::string::string_regex("[a-zA-Zé北~._ \\-\\\\\u{202e}\u{200b}%:]{0,12}").unwrap();
    prop::collection::vec(prop_oneof![part, Just("..".to_string()), Just("index.jsonl".to_string())], 1..4)
        .prop_map(|parts| parts.join("/"))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn claimed_names_are_distinct_and_inside(paths in prop::collection::vec(hostile_path(), 1..40)) {
        let mut names = Names::for_outputs();
        let keys: Vec<String> = paths.iter().map(|p| names.claim(&input::safe_rel(p), false)).collect();
        check_keys(&keys)?;
    }

    #[test]
    fn reply_parser_never_panics_and_caps_counts(
        content in ".{0,40}",
        prompt in any::<u64>(),
        completion in any::<u64>(),
        max_tokens in 1usize..5000,
        junk in ".{0,60}",
        shape in 0u8..6,
    ) {
        let req = ChatRequest {
            system: None,
            user: "u".into(),
            assistant_prefix: Some("Summary:".into()),
            max_tokens,
            sampling: SamplingParams::greedy(),
            stop: vec!["</s>".into()],
        };
        let marker = format!("MARKER{junk}");
        let body = match shape {
            0 => serde_json::json!({"choices": [{"message": {"content": content}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": prompt, "completion_tokens": completion}}).to_string(),
            1 => serde_json::json!({"choices": [{"message": {"content": content}}],
                "usage": {"prompt_tokens": prompt as f64 * 1.5, "completion_tokens": -1}}).to_string(),
            2 => serde_json::json!({"choices": [{"message": {"content": [marker.clone()]}}]}).to_string(),
            3 => serde_json::json!({"error": marker.clone()}).to_string(),
            4 => format!("{{\"choices\": [{{\"message\": {marker}"),
            _ => marker.clone(),
        };
        match parse_reply(&body, &req) {
            Ok(r) => {
                prop_assert!(r.completion_tokens <= max_tokens);
                prop_assert!(r.prompt_tokens <= MAX_PROMPT_TOKENS);
                prop_assert!(r.text.starts_with("Summary:"));
            }
            Err(e) => {
                prop_assert!(shape >= 2, "a well-formed reply was refused: {e:#}");
                prop_assert!(!format!("{e:#}").contains("MARKER"), "the reply was quoted: {e:#}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// Real files (names from a hostile alphabet, some nested, some differing only in case or in
    /// accents) and a JSON Lines file with hostile ids: every article gets a distinct key inside the
    /// output folder.
    #[test]
    fn discovered_articles_have_distinct_keys(
        files in prop::collection::vec(("[a-zA-Zé北~._ \\-%\u{202e}]{1,10}", any::<bool>()), 1..12),
        ids in prop::collection::vec(
            prop_oneof!["[a-zA-Z~./\\-\\\\]{0,8}", Just("x-2".to_string()), Just("x".to_string())],
            0..12,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("in");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        for (name, nested) in &files {
            if name == "." || name == ".." { continue; }
            let folder = if *nested { root.join("sub") } else { root.clone() };
            let p = folder.join(format!("{name}.txt"));
            std::fs::write(p, "Title\nSome words of an article.").unwrap();
        }
        let lines: Vec<String> =
            ids.iter().map(|id| serde_json::json!({"id": id, "text": "words"}).to_string()).collect();
        std::fs::write(root.join("index.jsonl"), lines.join("\n") + "\n{\"text\": \"no id\"}\n").unwrap();
        let (sources, _) = input::discover(std::slice::from_ref(&root), None).unwrap();
        let keys: Vec<String> = sources
            .iter()
            .flat_map(|s| input::read_source(s, input::DEFAULT_MAX_BYTES))
            .map(|item| match item {
                Ok(a) => a.rel,
                Err(r) => r.rel,
            })
            .collect();
        check_keys(&keys)?;
    }
}
