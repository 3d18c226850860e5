//! The inference engine on real GGUF files, against llama.cpp's reference outputs.

mod common;

use std::collections::HashMap;
use std::sync::OnceLock;

use candle_core::Device;
use polysum::engine::generate::{Engine, Request, StopReason};
use polysum::engine::lookup::Lookup;
use polysum::engine::model::{BatchPaths, LoadOptions};
use polysum::engine::sampling::SamplingParams;

/// llama.cpp's file names in the fixtures → registry names.
fn registry_name(model_file: &str) -> &'static str {
    match model_file {
        f if f.starts_with("smollm2-135m") => "smollm2-135m",
        f if f.starts_with("qwen2.5-coder-0.5b") => "qwen2.5-coder-0.5b",
        f if f.starts_with("gemma-3-270m") => "gemma-3-270m",
        other => panic!("fixture names an unknown model file {other}"),
    }
}

fn load(name: &str, requantize: bool) -> Engine {
    load_with(name, requantize, BatchPaths::ByDevice)
}

fn load_with(name: &str, requantize: bool, paths: BatchPaths) -> Engine {
    let opts = LoadOptions { requantize, paths, ..LoadOptions::new(Device::Cpu) };
    Engine::load(&common::model_file(name), None, &opts).unwrap_or_else(|e| panic!("loading {name}: {e:#}"))
}

fn smollm() -> &'static Engine {
    static E: OnceLock<Engine> = OnceLock::new();
    E.get_or_init(|| load("smollm2-135m", true))
}

#[test]
fn greedy_generation_reproduces_llama_cpp() {
    reproduces_llama_cpp(BatchPaths::ByDevice);
}

/// The GPU's way of batching (masked decode attention), forced on the CPU, against the same references.
#[test]
fn greedy_generation_on_the_gpu_paths_reproduces_llama_cpp() {
    reproduces_llama_cpp(BatchPaths::Gpu);
}

fn reproduces_llama_cpp(paths: BatchPaths) {
    let mut by_model: HashMap<&str, Vec<serde_json::Value>> = HashMap::new();
    for case in common::jsonl("greedy-reference.jsonl") {
        by_model.entry(registry_name(case["model_file"].as_str().unwrap())).or_default().push(case);
    }
    assert!(by_model.contains_key("smollm2-135m") && by_model.contains_key("qwen2.5-coder-0.5b"));
    for (name, cases) in by_model {
        // Qwen's Q5_0 stays as stored (a SIMD kernel) or converts to Q8_0 exactly; SmolLM2's Q4_1 cannot
        // convert exactly, so it runs as stored, the way llama.cpp ran it.
        let engine = load_with(name, name != "smollm2-135m", paths);
        for case in cases {
            // The references were made from the prompt without its final newline (as shell command
            // substitution passes it): SmolLM2's answers all begin with the "\n" the prompt lacked.
            let prompt = case["prompt"].as_str().unwrap().trim_end_matches('\n');
            let expected = case["output"].as_str().unwrap();
            let max = case["max_new_tokens"].as_u64().unwrap() as usize;
            let got = engine.generate(&[Request::greedy(prompt, max)]).unwrap().remove(0);
            if !expected.starts_with(got.text.trim_end()) && !got.text.starts_with(expected) {
                // llama.cpp's kernels sum in another order than candle's: a run may part from the
                // reference only where the two candidates were tied within that noise.
                let reference = engine.tokenizer().encode(expected, false).unwrap();
                common::assert_same_tokens_or_rounding_tie(&engine, prompt, &got.tokens, &reference, 0.25);
                continue;
            }
            if case["stopped_on_eos"].as_bool().unwrap() {
                assert_eq!(got.text, expected, "{name}: {prompt:?}");
                assert_eq!(got.stop_reason, StopReason::Eos, "{name}: {prompt:?}");
            } else {
                assert_eq!(got.tokens.len(), max);
                let first16 = engine.tokenizer().decode(&got.tokens[..16]).unwrap();
                assert!(
                    expected.starts_with(&first16),
                    "{name}: {prompt:?}\n ours: {first16:?}\n llama.cpp: {expected:?}"
                );
            }
        }
    }
}

fn chat(engine: &Engine, user: &str) -> String {
    engine.chat_prompt(Some("You are a helpful assistant."), user, None).unwrap()
}

#[test]
fn a_batch_of_different_lengths_equals_each_prompt_alone() {
    let e = smollm();
    // Plain prompts with no common first token: a shared prefix would be computed once, in a step of its
    // own, which is a different (if equally valid) order of sums than one prompt computed alone.
    let prompts = [
        "The capital of France is".to_string(),
        "Once upon a time, in a small village by the sea, there lived".to_string(),
        "Here is a list of ten fruits, one per line, from the shortest name to the longest name:".to_string(),
    ];
    let requests: Vec<Request> = prompts.iter().map(|p| Request::greedy(p.clone(), 20)).collect();
    let ids: Vec<Vec<u32>> = prompts.iter().map(|p| e.encode_prompt(p).unwrap()).collect();
    let lens: Vec<usize> = ids.iter().map(Vec::len).collect();
    assert!(lens[0] < lens[1] && lens[1] < lens[2], "the prompts must differ in length: {lens:?}");
    assert!(ids[0][0] != ids[1][0] && ids[1][0] != ids[2][0] && ids[0][0] != ids[2][0], "no shared prefix");
    let batched = e.generate(&requests).unwrap();
    for (req, b) in requests.iter().zip(&batched) {
        let alone = e.generate(std::slice::from_ref(req)).unwrap().remove(0);
        assert!(alone.tokens.len() > 8, "{:?} gave {:?}", req.prompt, alone.text);
        // On the CPU a row is computed the same way alone or batched (each row's prompt on its own, the
        // decode attention over its own slots, one dot product per output): same tokens, not just close.
        assert_eq!(b.tokens, alone.tokens, "{:?}", req.prompt);
        assert_eq!(b.text, alone.text);
    }
}

#[test]
fn concurrent_calls_join_one_batch_and_equal_each_prompt_alone() {
    let e = smollm();
    let scheduler = polysum::engine::scheduler::Scheduler::new(load("smollm2-135m", true), 4).unwrap();
    let article = std::fs::read_to_string(common::fixture("news-paragraph.txt")).unwrap();
    let calls: Vec<Vec<Request>> = vec![
        vec![Request::greedy(chat(e, "Name a color."), 24)],
        vec![Request::greedy(chat(e, "Write one sentence about the sea and the wind and the boats."), 24)],
        // A call of two rows sharing the article, as an article's EN and ES requests do.
        vec![
            Request::greedy(chat(e, &format!("Article:\n{article}\n\nSummarize the article in one sentence.")), 24),
            Request::greedy(
                chat(e, &format!("Article:\n{article}\n\nList two people or groups named in the article.")),
                24,
            ),
        ],
        // Larger than the batch: it runs alone when the batch is empty, not never.
        (0..5).map(|i| Request::greedy(chat(e, &format!("Count to {}.", i + 2)), 8)).collect(),
        // Longer than the context: this call fails, the others do not.
        vec![Request::greedy(chat(e, &"word ".repeat(9000)), 8)],
    ];
    let results = common::generate_concurrently(&scheduler, &calls);
    assert!(
        scheduler.peak_rows() >= 2,
        "concurrent calls must share decode steps (peak {} rows)",
        scheduler.peak_rows()
    );
    assert!(scheduler.peak_rows() <= 5);
    for (call, result) in calls.iter().zip(&results).take(4) {
        let (gens, stats) = result.as_ref().unwrap_or_else(|err| panic!("{err:#}"));
        assert_eq!(gens.len(), call.len());
        assert_eq!(stats.generated_tokens, gens.iter().map(|g| g.tokens.len()).sum::<usize>());
        // Joining a running batch (left-padded to its slots, decoded with other calls' rows) changes
        // nothing: the call gives the tokens it gives alone, whatever the threads' timing was.
        let (alone, _) = e.generate_streaming(call, &mut |_, _| true).unwrap();
        for ((req, got), alone) in call.iter().zip(gens).zip(&alone) {
            assert_eq!(got.tokens, alone.tokens, "{:?}", req.prompt);
        }
    }
    let Err(err) = &results[4] else { panic!("a prompt beyond the context fails") };
    assert!(format!("{err:#}").contains("context"), "{err:#}");
    // The scheduler keeps serving after the failure.
    let (again, _) = scheduler.generate(&calls[0]).unwrap();
    assert_eq!(again[0].tokens, results[0].as_ref().unwrap().0[0].tokens);
}

#[test]
fn a_repeated_prompt_is_computed_once_and_its_rows_agree() {
    let e = smollm();
    let a = chat(e, "Translate into Spanish: The council approved the budget on Tuesday.");
    let b = chat(e, "Name three rivers of Europe.");
    let candidates = [a.clone(), a.clone(), b.clone(), a.clone()].map(|p| Request::greedy(p, 16));
    let (gens, stats) = e.generate_streaming(&candidates, &mut |_, _| true).unwrap();
    let (ia, ib) = (e.encode_prompt(&a).unwrap(), e.encode_prompt(&b).unwrap());
    let shared = ia.iter().zip(&ib).take_while(|(x, y)| x == y).count();
    // The start both prompts share once, then each prompt's own tokens once, however often it repeats.
    assert_eq!(stats.prompt_tokens, shared + (ia.len() - shared) + (ib.len() - shared));
    assert_eq!(gens[0].tokens, gens[1].tokens);
    assert_eq!(gens[0].tokens, gens[3].tokens);
    // A repeated row gives what the same call without the repeats gives.
    let (once, _) = e.generate_streaming(&candidates[1..3], &mut |_, _| true).unwrap();
    assert_eq!(once[0].tokens, gens[0].tokens);
    assert_eq!(once[1].tokens, gens[2].tokens);
}

#[test]
fn sampled_rows_from_a_copied_prompt_cache_are_independent() {
    let e = smollm();
    let a = chat(e, "Translate into Spanish: The council approved the budget on Tuesday.");
    let sampled = |seed| Request {
        sampling: SamplingParams { temperature: 1.0, top_p: Some(0.95), seed, ..SamplingParams::greedy() },
        ..Request::greedy(a.clone(), 16)
    };
    // What `--candidates 3` sends: the greedy row and two sampled ones, one prompt.
    let call = [Request::greedy(a.clone(), 16), sampled(1), sampled(2)];
    let (gens, stats) = e.generate_streaming(&call, &mut |_, _| true).unwrap();
    assert_eq!(stats.prompt_tokens, e.encode_prompt(&a).unwrap().len(), "the prompt is computed once");
    assert_ne!(gens[1].tokens, gens[2].tokens, "two seeds, two samples");
    // The sampled rows decode from copies: the greedy row is what it is beside a greedy copy, and a
    // sampled row draws the same whether a later row takes a copy of the cache too or not.
    let (greedy, _) = e.generate_streaming(&[call[0].clone(), call[0].clone()], &mut |_, _| true).unwrap();
    assert_eq!(greedy[0].tokens, gens[0].tokens);
    let (fewer, _) = e.generate_streaming(&call[..2], &mut |_, _| true).unwrap();
    assert_eq!(fewer[1].tokens, gens[1].tokens);
}

#[test]
fn continuations_of_a_shared_prefix_equal_independent_runs() {
    let e = smollm();
    let requests = common::article_questions(e);
    let (together, stats) = e.generate_streaming(&requests, &mut |_, _| true).unwrap();
    let total: usize = requests.iter().map(|r| e.encode_prompt(&r.prompt).unwrap().len()).sum();
    assert!(
        stats.prompt_tokens < total * 2 / 3,
        "the shared prefix must be computed once ({} of {total} tokens computed)",
        stats.prompt_tokens
    );
    for (req, t) in requests.iter().zip(&together) {
        let alone = e.generate(std::slice::from_ref(req)).unwrap().remove(0);
        common::assert_same_tokens_or_rounding_tie(e, &req.prompt, &t.tokens, &alone.tokens, 0.1);
    }
    assert_ne!(together[0].tokens, together[1].tokens);
}

/// Prompt-lookup drafts change how many steps a greedy sequence takes, not its tokens: each drafted
/// position is computed as a one-token decode step at that position computes it, on the re-quantized
/// legacy types (SmolLM2), on the K-quants of the default model and across Gemma 3's sliding window alike,
/// repetition penalty included.
#[test]
fn drafted_decoding_gives_the_tokens_of_plain_decoding() {
    let article = std::fs::read_to_string(common::fixture("news-paragraph.txt")).unwrap();
    // Gemma 3's local layers see a sliding window: its prompt is made longer than the window, so that
    // drafted positions attend across the window's edge.
    for (name, copies) in [("smollm2-135m", 1), ("qwen2.5-coder-1.5b", 1), ("gemma-3-270m", 3)] {
        let drafted = load(name, true);
        let mut plain = load(name, true);
        plain.set_lookup(Lookup::off());
        let text = vec![article.as_str(); copies].join("\n");
        let user = format!("Article:\n{text}\n\nRepeat the article's first two sentences word for word.");
        let prompt = drafted.chat_prompt(Some("You are a helpful assistant."), &user, None).unwrap();
        if name.starts_with("gemma") {
            assert!(drafted.encode_prompt(&prompt).unwrap().len() > 512, "the prompt must pass the sliding window");
        }
        let sampling = SamplingParams { repetition_penalty: 1.1, ..SamplingParams::greedy() };
        let request = Request { sampling, ..Request::greedy(prompt, 48) };
        let want = plain.generate(std::slice::from_ref(&request)).unwrap().remove(0);
        let got = drafted.generate(std::slice::from_ref(&request)).unwrap().remove(0);
        assert_eq!(got.tokens, want.tokens, "{name}: {:?} against {:?}", got.text, want.text);
        assert_eq!(got.stop_reason, want.stop_reason);
        assert_eq!(plain.draft_counts().steps, 0, "{name}: drafting off drafts nothing");
        let counts = drafted.draft_counts();
        // Copying from the prompt is what drafts are for: a good share of the tokens must come from kept
        // drafts, or the check above compared plain decoding with itself.
        assert!(counts.accepted * 4 > want.tokens.len(), "{name}: {counts:?} for {} tokens", want.tokens.len());
        // Rows that stop inside a draft: at the token limit, and at a stop string the draft completes.
        let stop = want.text.split_whitespace().nth(4).expect("five words").to_string();
        for cut in [Request { max_new_tokens: 7, ..request.clone() }, Request { stop_strings: vec![stop], ..request }] {
            let want = plain.generate(std::slice::from_ref(&cut)).unwrap().remove(0);
            let mut streamed = String::new();
            let (got, _) = drafted
                .generate_streaming(std::slice::from_ref(&cut), &mut |_, piece| {
                    streamed.push_str(piece);
                    true
                })
                .unwrap();
            assert_eq!((&got[0].text, got[0].stop_reason), (&want.text, want.stop_reason), "{name}");
            assert_eq!(streamed, want.text, "{name}: the streamed pieces add up to the text");
        }
    }
}

#[test]
fn gemma3_perplexity_on_news_is_low() {
    // SiLU in place of Gemma's GELU gives about 37 here.
    let e = load("gemma-3-270m", true);
    let text = std::fs::read_to_string(common::fixture("news-paragraph.txt")).unwrap();
    let ppl = e.perplexity(&text).unwrap();
    assert!(ppl < 20.0, "gemma-3-270m perplexity {ppl}");
    assert!(ppl > 1.0);
}

#[test]
fn streaming_pieces_add_up_to_the_text_and_stop_strings_cut() {
    let e = smollm();
    let prompt = chat(e, "Describe the ocean in two sentences.");
    let mut streamed = String::new();
    let (g, _) = e
        .generate_streaming(&[Request::greedy(prompt.clone(), 40)], &mut |_, piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!(streamed, g[0].text);
    let full = &g[0].text;
    // Stop at a word from the middle of what the model writes unhindered.
    let word = full.split_whitespace().filter(|w| w.len() >= 4).nth(2).expect("the model writes a few words");
    let cut = full.find(word).unwrap();
    let stop = Request { stop_strings: vec![word.to_string()], ..Request::greedy(prompt, 40) };
    let mut streamed = String::new();
    let (g, _) = e
        .generate_streaming(&[stop], &mut |_, piece| {
            streamed.push_str(piece);
            true
        })
        .unwrap();
    assert_eq!(g[0].stop_reason, StopReason::StopString);
    assert_eq!(g[0].text, full[..cut]);
    assert_eq!(streamed, g[0].text, "the stop string is never streamed");
}

#[test]
fn sampling_is_reproducible_by_seed() {
    let e = smollm();
    let prompt = chat(e, "Write a short poem about rain.");
    let sampled = |seed| {
        let sampling = SamplingParams {
            temperature: 0.9,
            top_k: Some(40),
            top_p: Some(0.95),
            repetition_penalty: 1.1,
            repetition_window: 64,
            seed,
        };
        e.generate(&[Request { sampling, ..Request::greedy(prompt.clone(), 24) }]).unwrap().remove(0).tokens
    };
    assert_eq!(sampled(1), sampled(1));
    assert_ne!(sampled(1), sampled(2));
}

#[test]
fn prompt_and_output_beyond_the_context_is_a_clear_error() {
    let e = smollm();
    let err = e.generate(&[Request::greedy("hello", e.context_length())]).unwrap_err().to_string();
    assert!(err.contains("context"), "{err}");
}
