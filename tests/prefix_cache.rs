//! The engine's prompt-prefix cache on a real model: a request whose start was computed once (in memory, or
//! read back from disk) gives the tokens the same request gives computed whole, and a file from another
//! model or a damaged one is refused with its reason and computed again.

mod common;

use candle_core::Device;
use polysum::engine::generate::{CallStats, Engine, Request};
use polysum::engine::model::LoadOptions;
use polysum::engine::prefix_cache::{PrefixSource, PrefixStore};

fn load() -> Engine {
    let opts = LoadOptions { requantize: true, ..LoadOptions::new(Device::Cpu) };
    Engine::load(&common::model_file("smollm2-135m"), None, &opts).unwrap()
}

/// A long fixed system prompt, as a few-shot prompt has.
const SYSTEM: &str = "You are a careful assistant. You answer in one short sentence. Examples of good answers \
follow.\n\nQuestion: What is the capital of Spain?\nAnswer: The capital of Spain is Madrid.\n\nQuestion: How many \
legs does a spider have?\nAnswer: A spider has eight legs.\n\nQuestion: What colour is the sky on a clear day?\n\
Answer: On a clear day the sky is blue.";

fn requests(e: &Engine) -> Vec<Request> {
    ["What is the capital of France?", "Name a large animal that lives in the sea."]
        .iter()
        .map(|q| Request::greedy(e.chat_prompt(Some(SYSTEM), q, None).unwrap(), 16))
        .collect()
}

/// Each request alone, then both in one call, with the tokens and how many prompt tokens came from the cache.
fn run(e: &Engine) -> (Vec<Vec<u32>>, usize) {
    let reqs = requests(e);
    let mut out = Vec::new();
    let mut cached = 0;
    for r in &reqs {
        let (g, stats) = e.generate_streaming(std::slice::from_ref(r), &mut |_, _| true).unwrap();
        cached += stats.cached_prompt_tokens;
        out.push(g[0].tokens.clone());
    }
    let (both, stats) = e.generate_streaming(&reqs, &mut |_, _| true).unwrap();
    cached += stats.cached_prompt_tokens;
    out.extend(both.into_iter().map(|g| g.tokens));
    (out, cached)
}

fn assert_same(e: &Engine, reference: &[Vec<u32>], got: &[Vec<u32>]) {
    let reqs = requests(e);
    let prompts = [&reqs[0].prompt, &reqs[1].prompt, &reqs[0].prompt, &reqs[1].prompt];
    for ((want, got), prompt) in reference.iter().zip(got).zip(prompts) {
        assert!(want.len() > 4, "too short an answer to compare: {want:?}");
        common::assert_same_tokens_or_rounding_tie(e, prompt, want, got, 0.1);
    }
}

#[test]
fn a_cached_prefix_gives_the_tokens_of_the_whole_prompt_in_memory_and_from_disk() {
    let e = load();
    let (whole, cached) = run(&e);
    assert_eq!(cached, 0, "nothing is cached before cache_prefix");

    let head = e.chat_head(SYSTEM).unwrap();
    assert!(requests(&e).iter().all(|r| r.prompt.starts_with(&head)));
    let dir = tempfile::tempdir().unwrap();
    let mut e = e;
    e.set_prefix_store(Some(PrefixStore::new(dir.path(), "model-a")));
    assert_eq!(e.cache_prefix(&head).unwrap(), PrefixSource::Computed { rejected: None, not_saved: None });
    assert_eq!(e.cache_prefix(&head).unwrap(), PrefixSource::Memory);
    let (in_memory, cached) = run(&e);
    let head_tokens = e.encode_prompt(&head).unwrap().len();
    assert!(head_tokens > 60, "the system prompt should be long: {head_tokens} tokens");
    // Two calls of one row and one of two: each takes the whole head from the cache.
    assert_eq!(cached, 3 * head_tokens);
    assert_same(&e, &whole, &in_memory);

    // A new engine (a new run) reads the prefix from disk.
    let mut fresh = load();
    fresh.set_prefix_store(Some(PrefixStore::new(dir.path(), "model-a")));
    assert_eq!(fresh.cache_prefix(&head).unwrap(), PrefixSource::Disk);
    let (from_disk, cached) = run(&fresh);
    assert_eq!(cached, 3 * head_tokens);
    assert_same(&fresh, &whole, &from_disk);
}

#[test]
fn a_file_of_another_model_or_a_damaged_one_is_refused_and_computed_again() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = load();
    a.set_prefix_store(Some(PrefixStore::new(dir.path(), "model-a")));
    let head = a.chat_head(SYSTEM).unwrap();
    a.cache_prefix(&head).unwrap();
    let ids = a.encode_prompt(&head).unwrap();
    let file_a = PrefixStore::new(dir.path(), "model-a").path(&ids, &Device::Cpu);
    assert!(file_a.is_file());
    let (whole, _) = run(&load());

    // Model B's store finds model A's file under its own name (copied, renamed): it refuses it.
    let store_b = PrefixStore::new(dir.path(), "model-b");
    std::fs::copy(&file_a, store_b.path(&ids, &Device::Cpu)).unwrap();
    let mut b = load();
    b.set_prefix_store(Some(store_b));
    match b.cache_prefix(&head).unwrap() {
        PrefixSource::Computed { rejected: Some(reason), not_saved: None } => {
            assert!(reason.contains("another model"), "{reason}")
        }
        other => panic!("a foreign file was not refused: {other:?}"),
    }
    let (got, cached) = run(&b);
    assert!(cached > 0);
    assert_same(&b, &whole, &got);

    // Damage model A's file in its body: it is refused, computed again and written anew.
    let mut bytes = std::fs::read(&file_a).unwrap();
    let at = bytes.len() - 100;
    bytes[at] ^= 0x40;
    std::fs::write(&file_a, &bytes).unwrap();
    let mut again = load();
    again.set_prefix_store(Some(PrefixStore::new(dir.path(), "model-a")));
    match again.cache_prefix(&head).unwrap() {
        PrefixSource::Computed { rejected: Some(reason), not_saved: None } => {
            assert!(reason.contains("damaged"), "{reason}")
        }
        other => panic!("a damaged file was not refused: {other:?}"),
    }
    let (got, _) = run(&again);
    assert_same(&again, &whole, &got);
    let mut after = load();
    after.set_prefix_store(Some(PrefixStore::new(dir.path(), "model-a")));
    assert_eq!(after.cache_prefix(&head).unwrap(), PrefixSource::Disk, "the file was not written anew");
}

/// A checker's question: the text, then the statement, then the question.
fn question(e: &Engine, text: &str, statement: &str) -> String {
    let user = format!("<text>\n{text}\n</text>\n\nStatement: {statement}\n\nIs the statement true? Answer Yes or No.");
    e.chat_prompt(Some("You check statements against a text."), &user, None).unwrap()
}

#[test]
fn a_scored_prompt_start_is_kept_for_the_next_question_about_the_same_text() {
    let text = "The town council of Ilfracombe met on Tuesday evening to discuss the harbour repairs. The mayor said \
                the work would start in March and cost about two million pounds, paid by the county.";
    let statements = ["The council met on Tuesday.", "The work will start in May.", "The county pays for the work."];
    let e = load();
    let yes_no: Vec<u32> = ["Yes", "No"].iter().map(|a| e.tokenizer().encode(a, false).unwrap()[0]).collect();
    let ask = |e: &Engine, which: &[usize]| {
        let prompts: Vec<String> = which.iter().map(|&i| question(e, text, statements[i])).collect();
        let mut stats = CallStats::default();
        let lp = e.next_token_logprobs(&prompts, &vec![yes_no.clone(); prompts.len()], &mut stats).unwrap();
        (lp, stats)
    };
    let text_tokens = e.tokenizer().encode(text, false).unwrap().len();

    // Two questions in one call: their common start is computed once, and kept.
    let (_, first) = ask(&e, &[0, 1]);
    assert_eq!(first.cached_prompt_tokens, 0);
    // A third question about the same text takes the text from the cache ...
    let (third, stats) = ask(&e, &[2]);
    assert!(stats.cached_prompt_tokens > text_tokens, "{stats:?}, text of {text_tokens} tokens");
    let whole = question(&e, text, statements[2]);
    let whole_tokens = e.encode_prompt(&whole).unwrap().len();
    assert_eq!(stats.cached_prompt_tokens + stats.prompt_tokens, whole_tokens);
    // ... and answers as the question computed whole on a fresh engine does, up to the rounding of a prompt
    // computed in two parts (as a call of several questions always has been).
    let (fresh, fresh_stats) = ask(&load(), &[2]);
    assert_eq!((fresh_stats.cached_prompt_tokens, fresh_stats.prompt_tokens), (0, whole_tokens));
    for (a, b) in third[0].iter().zip(&fresh[0]) {
        assert!((a - b).abs() < 0.1, "{third:?} against {fresh:?}");
    }
    // The same question again: all of it but the token whose logits it needs comes from the cache.
    let (again, stats) = ask(&e, &[2]);
    assert_eq!((stats.cached_prompt_tokens, stats.prompt_tokens), (whole_tokens - 1, 1));
    for (a, b) in again[0].iter().zip(&fresh[0]) {
        assert!((a - b).abs() < 0.1, "{again:?} against {fresh:?}");
    }
}
