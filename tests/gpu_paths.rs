//! The GPU's way of batching (`BatchPaths::Gpu`: padded multi-row prefill, the broadcast shared prefix,
//! masked decode attention, GPU batch sizes) forced on the CPU, so that every CI run checks the branches a
//! GPU takes; and the synthetic models `scripts/bench-gpu` benchmarks a GPU with.

mod common;

use std::sync::OnceLock;

use candle_core::Device;
use polysum::engine::generate::{Engine, Request};
use polysum::engine::model::{BatchPaths, LoadOptions};
use polysum::engine::scheduler::{default_rows, Scheduler, CPU_ROWS, GPU_ROWS};

fn load(path: &std::path::Path, paths: BatchPaths) -> Engine {
    let opts = LoadOptions { paths, ..LoadOptions::new(Device::Cpu) };
    Engine::load(path, None, &opts).unwrap_or_else(|e| panic!("loading {}: {e:#}", path.display()))
}

fn smollm(paths: BatchPaths) -> Engine {
    load(&common::model_file("smollm2-135m"), paths)
}

/// SmolLM2 batching the GPU's way, and the same model batching the CPU's way to compare with.
fn engines() -> &'static (Engine, Engine) {
    static E: OnceLock<(Engine, Engine)> = OnceLock::new();
    E.get_or_init(|| (smollm(BatchPaths::Gpu), smollm(BatchPaths::ByDevice)))
}

fn chat(e: &Engine, user: &str) -> String {
    e.chat_prompt(Some("You are a helpful assistant."), user, None).unwrap()
}

/// How far apart two greedy runs' logits may be where they part. The decode kernels quantize activations
/// to 8 bits, so a sum taken in another order (padded or masked attention) can flip one activation's
/// rounding, which the following layers carry on: on SmolLM2 such a flip moved the logits by 0.3 to 0.5
/// after a few identical steps, as much as against llama.cpp's own kernels. A wrong mask, position or
/// broadcast parts the runs at once, by whole logits.
const TIE: f32 = 0.5;

/// Rows of different lengths, left-padded into one prompt step and decoded with masks, give each row's
/// tokens alone (as a GPU computes them), up to rounding ties.
#[test]
fn a_padded_batch_equals_each_prompt_alone() {
    let (gpu, cpu) = engines();
    assert!(gpu.gpu_paths() && !cpu.gpu_paths());
    let prompts = [
        "The capital of France is",
        "Once upon a time, in a small village by the sea, there lived",
        "Here is a list of ten fruits, one per line, from the shortest name to the longest name:",
    ];
    let requests: Vec<Request> = prompts.iter().map(|p| Request::greedy(*p, 20)).collect();
    let lens: Vec<usize> = prompts.iter().map(|p| gpu.encode_prompt(p).unwrap().len()).collect();
    assert!(lens[0] < lens[1] && lens[1] < lens[2], "the prompts must differ in length: {lens:?}");
    let (batched, stats) = gpu.generate_streaming(&requests, &mut |_, _| true).unwrap();
    assert_eq!(stats.prompt_tokens, lens.iter().sum::<usize>(), "no shared prefix: every token computed");
    let mut identical = 0;
    for (req, b) in requests.iter().zip(&batched) {
        let alone = gpu.generate(std::slice::from_ref(req)).unwrap().remove(0);
        assert!(alone.tokens.len() > 8, "{:?} gave {:?}", req.prompt, alone.text);
        common::assert_same_tokens_or_rounding_tie(gpu, &req.prompt, &b.tokens, &alone.tokens, TIE);
        identical += usize::from(b.tokens == alone.tokens);
    }
    // The tie check above is what each row must pass. That some row agrees token for token keeps it honest
    // (a tie check too loose to fail would let every row part); how many rows meet a tie depends on the
    // CPU's kernel level, and on AVX-512 VNNI with AMX two of the three do.
    assert!(identical >= 1, "no row agrees token for token: the tie check is hiding a real difference");
}

/// An article's EN and ES requests share the article: it is computed once, on one row, and its KV cache
/// broadcast to both rows, which then run on as if each had been computed alone.
#[test]
fn a_shared_prefix_is_computed_once_and_broadcast() {
    let (gpu, _) = engines();
    let requests = common::article_questions(gpu);
    let (together, stats) = gpu.generate_streaming(&requests, &mut |_, _| true).unwrap();
    let total: usize = requests.iter().map(|r| gpu.encode_prompt(&r.prompt).unwrap().len()).sum();
    assert!(stats.prompt_tokens < total * 2 / 3, "prefix computed once: {} of {total} tokens", stats.prompt_tokens);
    for (req, t) in requests.iter().zip(&together) {
        let alone = gpu.generate(std::slice::from_ref(req)).unwrap().remove(0);
        common::assert_same_tokens_or_rounding_tie(gpu, &req.prompt, &t.tokens, &alone.tokens, TIE);
    }
    assert_ne!(together[0].tokens, together[1].tokens);
}

/// The scheduler sizes its batch for a GPU, and calls that join the running batch the GPU's way (left-padded
/// to its slots, masked) give what they give alone.
#[test]
fn the_scheduler_batches_gpu_sized_and_joined_calls_equal_each_alone() {
    let (gpu, cpu) = engines();
    assert_eq!(default_rows(gpu), GPU_ROWS);
    assert_eq!(default_rows(cpu), CPU_ROWS);
    const { assert!(GPU_ROWS > CPU_ROWS) };
    let scheduler = Scheduler::new(smollm(BatchPaths::Gpu), default_rows(gpu)).unwrap();
    let calls: Vec<Vec<Request>> = (0..6)
        .map(|i| vec![Request::greedy(chat(cpu, &format!("Write one sentence about the number {}.", i * 7 + 3)), 16)])
        .collect();
    let results: Vec<_> = common::generate_concurrently(&scheduler, &calls).into_iter().map(Result::unwrap).collect();
    assert!(scheduler.peak_rows() >= 2, "concurrent calls share decode steps (peak {})", scheduler.peak_rows());
    for (call, (gens, _)) in calls.iter().zip(&results) {
        let alone = gpu.generate(call).unwrap().remove(0);
        common::assert_same_tokens_or_rounding_tie(gpu, &call[0].prompt, &gens[0].tokens, &alone.tokens, TIE);
    }
}

/// A synthetic model from SmolLM2's header: the real file's size and tokenizer, weights from the seed.
#[test]
fn a_synthetic_model_loads_and_generates_with_the_real_tokenizer() {
    let real_path = common::model_file("smollm2-135m");
    let dir = tempfile::tempdir().unwrap();
    let header = dir.path().join("smollm2.header");
    let header_len = polysum::engine::synth::write_header(&real_path, &header).unwrap();
    let real_len = std::fs::metadata(&real_path).unwrap().len();
    assert!(header_len > 0 && header_len < real_len / 10, "a header of {header_len} bytes");
    let synth = |seed: u64, name: &str| {
        let path = dir.path().join(name);
        polysum::engine::synth::write_model(&header, seed, &path).unwrap();
        path
    };
    let a = synth(3, "a.gguf");
    assert_eq!(std::fs::metadata(&a).unwrap().len(), real_len, "the real file's layout");
    let bytes = std::fs::read(&a).unwrap();
    assert_eq!(bytes, std::fs::read(synth(3, "again.gguf")).unwrap(), "the same seed writes the same file");
    assert_ne!(bytes, std::fs::read(synth(4, "other.gguf")).unwrap(), "another seed, other weights");
    assert_ne!(bytes, std::fs::read(&real_path).unwrap(), "not the real weights");

    let fake = load(&a, BatchPaths::ByDevice);
    let (real, _) = engines();
    let text = "Los ciudadanos votaron el domingo. The council met on Monday.";
    assert_eq!(fake.tokenizer().vocab_size(), real.tokenizer().vocab_size());
    assert_eq!(fake.encode_prompt(text).unwrap(), real.encode_prompt(text).unwrap());
    assert_eq!(chat(&fake, text), chat(real, text), "the chat template came along");
    let out = fake.generate(&[Request::greedy(chat(&fake, text), 12)]).unwrap().remove(0);
    assert!(!out.tokens.is_empty());
    let logits: Vec<f32> =
        fake.logits_all(&fake.encode_prompt(text).unwrap()).unwrap().flatten_all().unwrap().to_vec1().unwrap();
    assert!(logits.iter().all(|l| l.is_finite()), "random weights keep the activations finite");
}
