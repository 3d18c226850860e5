//! The GGUF tokenizers against llama.cpp's token ids (tests/fixtures/tokenizer-reference.jsonl).
mod common;

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Instant;

use candle_core::quantized::gguf_file;
use polysum::engine::tokenizer::Tokenizer;

const MODELS: [&str; 4] = ["smollm2-135m", "qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b", "gemma-3-270m"];

/// The registry name of a fixture's `model_file` (e.g. "smollm2-135m-instruct-q4_1.gguf" → "smollm2-135m").
fn cache_name(model_file: &str) -> &'static str {
    let lower = model_file.to_lowercase();
    MODELS
        .into_iter()
        .find(|m| lower.starts_with(m))
        .unwrap_or_else(|| panic!("fixture names an unknown model file {model_file}"))
}

fn content(name: &str) -> gguf_file::Content {
    let path = common::model_file(name);
    gguf_file::Content::read(&mut std::fs::File::open(&path).unwrap()).unwrap()
}

/// Each model's tokenizer, built once for all tests (the gemma one has 262k tokens).
fn tok(name: &str) -> &'static Tokenizer {
    static CELLS: [OnceLock<Tokenizer>; 4] = [const { OnceLock::new() }; 4];
    let i = MODELS.iter().position(|m| *m == name).unwrap_or_else(|| panic!("unknown model {name}"));
    CELLS[i].get_or_init(|| Tokenizer::from_gguf(&content(name)).unwrap())
}

struct Case {
    model: &'static str,
    text: String,
    ids: Vec<u32>,
}

fn cases() -> Vec<Case> {
    common::jsonl("tokenizer-reference.jsonl")
        .into_iter()
        .map(|v| {
            assert_eq!(v["add_bos"], false, "the fixtures are without BOS");
            assert_eq!(v["parse_special"], true, "the fixtures parse special tokens");
            Case {
                model: cache_name(v["model_file"].as_str().unwrap()),
                text: v["text"].as_str().unwrap().to_string(),
                ids: v["ids"].as_array().unwrap().iter().map(|i| i.as_u64().unwrap() as u32).collect(),
            }
        })
        .collect()
}

#[test]
fn fixture_covers_every_model() {
    let cases = cases();
    assert_eq!(cases.len(), 24);
    for m in MODELS {
        assert_eq!(cases.iter().filter(|c| c.model == m).count(), 6, "{m}");
    }
}

#[test]
fn ids_match_llama_cpp() {
    let mut wrong = Vec::new();
    for c in cases() {
        let got = tok(c.model).encode(&c.text, true).unwrap();
        if got != c.ids {
            wrong.push(format!("{} {:?}\n  llama.cpp {:?}\n  ours      {:?}", c.model, c.text, c.ids, got));
        }
    }
    assert!(wrong.is_empty(), "{} of 24 strings differ:\n{}", wrong.len(), wrong.join("\n"));
}

const CONTROL_TEXTS: [&str; 4] = ["<|im_start|>", "<|im_end|>", "<start_of_turn>", "<end_of_turn>"];

/// Plain text round-trips exactly. With parse_special the control tokens become ids that decode to
/// nothing (what generation wants: no "<|im_end|>" in an answer), so the text comes back without them.
#[test]
fn decode_inverts_encode() {
    let extra = [
        "",
        " leading space",
        "trailing newline\n",
        "windows\r\nline\r\n",
        "\t\ttabs and   spaces   ",
        "👩‍👩‍👧 家族 Ελληνικά ¿Dónde está el niño?",
        "<p>HTML &amp; <b>tags</b></p>\n\n\n",
        "<|im_start|> written out, <end_of_turn>",
    ];
    for m in MODELS {
        let t = tok(m);
        let texts: Vec<String> = cases()
            .into_iter()
            .filter(|c| c.model == m)
            .map(|c| c.text)
            .chain(extra.iter().map(|s| s.to_string()))
            .collect();
        for text in &texts {
            let plain = t.encode(text, false).unwrap();
            assert_eq!(&t.decode(&plain).unwrap(), text, "{m}, parse_special off");
            let mut expected = text.clone();
            for s in CONTROL_TEXTS {
                if t.encode(s, true).unwrap().len() == 1 {
                    expected = expected.replace(s, "");
                }
            }
            let parsed = t.encode(text, true).unwrap();
            assert_eq!(t.decode(&parsed).unwrap(), expected, "{m}, parse_special on");
        }
    }
}

#[test]
fn special_tokens_encode_as_single_ids() {
    let expect: [(&str, &[(&str, u32)]); 4] = [
        ("smollm2-135m", &[("<|im_start|>", 1), ("<|im_end|>", 2), ("<|endoftext|>", 0)]),
        ("qwen2.5-coder-0.5b", &[("<|im_start|>", 151644), ("<|im_end|>", 151645), ("<|endoftext|>", 151643)]),
        ("qwen2.5-coder-1.5b", &[("<|im_start|>", 151644), ("<|im_end|>", 151645), ("<|endoftext|>", 151643)]),
        ("gemma-3-270m", &[("<start_of_turn>", 105), ("<end_of_turn>", 106), ("<bos>", 2), ("<eos>", 1)]),
    ];
    for (m, tokens) in expect {
        let t = tok(m);
        for &(text, id) in tokens {
            assert_eq!(t.encode(text, true).unwrap(), [id], "{m} {text}");
            assert_eq!(t.token_to_id(text), Some(id), "{m} {text}");
            // Next to ordinary text, too.
            let ids = t.encode(&format!("a{text}b"), true).unwrap();
            assert!(ids.contains(&id) && ids.len() >= 3, "{m} {text}: {ids:?}");
        }
    }
}

#[test]
fn without_parse_special_control_tokens_are_text() {
    for (m, text, id) in [
        ("smollm2-135m", "<|im_start|>", 1),
        ("qwen2.5-coder-0.5b", "<|im_start|>", 151644),
        ("qwen2.5-coder-1.5b", "<|im_end|>", 151645),
        ("gemma-3-270m", "<start_of_turn>", 105),
    ] {
        let ids = tok(m).encode(text, false).unwrap();
        assert!(ids.len() > 1 && !ids.contains(&id), "{m} {text}: {ids:?}");
        assert_eq!(tok(m).decode(&ids).unwrap(), text);
    }
    // Gemma's user-defined tokens ("\n", runs of spaces, "<h1>") are split out either way, as in llama.cpp.
    let g = tok("gemma-3-270m");
    assert_eq!(g.encode("<h1>x\n", false).unwrap(), g.encode("<h1>x\n", true).unwrap());
    assert_eq!(g.encode("\n", false).unwrap(), [107]);
}

#[test]
fn qwen_1_5b_tokenizes_like_0_5b() {
    let (a, b) = (tok("qwen2.5-coder-0.5b"), tok("qwen2.5-coder-1.5b"));
    assert_eq!(a.vocab_size(), b.vocab_size());
    assert_eq!(a.end_of_generation_ids(), b.end_of_generation_ids());
    for c in cases() {
        for parse_special in [true, false] {
            assert_eq!(
                a.encode(&c.text, parse_special).unwrap(),
                b.encode(&c.text, parse_special).unwrap(),
                "{:?}",
                c.text
            );
        }
    }
}

#[test]
fn end_of_generation_ids_cover_end_of_turn() {
    let smol = tok("smollm2-135m").end_of_generation_ids();
    assert!(smol.contains(&2) && smol.contains(&0), "{smol:?}"); // <|im_end|>, <|endoftext|>
    for m in ["qwen2.5-coder-0.5b", "qwen2.5-coder-1.5b"] {
        let ids = tok(m).end_of_generation_ids();
        assert!(ids.contains(&151645) && ids.contains(&151643), "{m} {ids:?}");
        assert!(!ids.contains(&151644), "<|im_start|> does not end a generation");
    }
    let gemma = tok("gemma-3-270m").end_of_generation_ids();
    assert!(gemma.contains(&106) && gemma.contains(&1), "{gemma:?}"); // <end_of_turn>, <eos>
}

#[test]
fn special_ids_and_flags_come_from_the_metadata() {
    let g = tok("gemma-3-270m");
    assert_eq!((g.bos_id(), g.eos_id(), g.add_bos(), g.vocab_size()), (Some(2), Some(1), true, 262_144));
    assert_eq!((g.bos_token().as_deref(), g.eos_token().as_deref()), (Some("<bos>"), Some("<eos>")));
    let q = tok("qwen2.5-coder-0.5b");
    assert_eq!((q.bos_id(), q.eos_id(), q.add_bos(), q.vocab_size()), (Some(151643), Some(151645), false, 151_936));
    assert_eq!(q.eos_token().as_deref(), Some("<|im_end|>"));
    let s = tok("smollm2-135m");
    assert_eq!((s.bos_id(), s.eos_id(), s.add_bos(), s.vocab_size()), (Some(1), Some(2), false, 49_152));
    assert_eq!(s.bos_token().as_deref(), Some("<|im_start|>"));
    // Control tokens (and Qwen's unused [PAD] ids) decode to nothing; ids past the vocabulary are an error.
    assert_eq!(q.decode(&[151644, 9707, 151665, 151645]).unwrap(), "Hello");
    assert!(q.decode(&[151_936]).is_err());
}

/// CPU seconds this thread has used (Linux; None elsewhere): on a shared machine wall time says little.
fn thread_cpu_seconds() -> Option<f64> {
    let st = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    let fields: Vec<&str> = st[st.rfind(')')? + 2..].split(' ').collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

#[test]
fn tokenizers_build_quickly() {
    // Generous for a loaded 2-core machine; a quiet one builds gemma's (262k tokens) in well under that.
    for m in MODELS {
        let c = content(m);
        let (t0, cpu0) = (Instant::now(), thread_cpu_seconds());
        let t = Tokenizer::from_gguf(&c).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        let cpu = cpu0.zip(thread_cpu_seconds()).map(|(a, b)| format!("{:.2}", b - a)).unwrap_or_else(|| "?".into());
        eprintln!("{m}: from_gguf {secs:.3} s wall, {cpu} s CPU ({} tokens)", t.vocab_size());
        assert!(secs < 10.0, "{m}: {secs:.1} s to build the tokenizer");
        // An article's worth of text (about 10 kB, special tokens and HTML included).
        let text: String =
            cases().iter().filter(|c| c.model == m).map(|c| c.text.as_str()).collect::<Vec<_>>().join("\n").repeat(25);
        let t0 = Instant::now();
        let ids = t.encode(&text, true).unwrap();
        let secs = t0.elapsed().as_secs_f64();
        eprintln!("{m}: encoded {} bytes into {} tokens in {:.1} ms", text.len(), ids.len(), secs * 1e3);
        assert!(secs < 2.0, "{m}: {secs:.1} s to encode {} bytes", text.len());
    }
}

#[test]
fn gguf_without_vocabulary_is_a_clear_error() {
    let mut c = content("smollm2-135m");
    c.metadata.remove("tokenizer.ggml.tokens");
    let err = Tokenizer::from_gguf(&c).unwrap_err().to_string();
    // It says what helps (a tokenizer.json beside the file), not a flag polysum does not have.
    assert!(err.contains("tokenizer.ggml.tokens") && err.contains("tokenizer.json"), "{err}");
    assert!(!err.contains("--tokenizer"), "{err}");
    let mut c = content("smollm2-135m");
    c.metadata.insert("tokenizer.ggml.pre".into(), gguf_file::Value::String("brand-new".into()));
    let err = Tokenizer::from_gguf(&c).unwrap_err().to_string();
    assert!(err.contains("brand-new"), "{err}");
}

/// llama.cpp's SentencePiece segmentation (`llm_tokenizer_spm_session`), written out directly: repeatedly
/// join the adjacent pair whose text is the best-scoring vocabulary token (leftmost on ties), then byte
/// tokens for whatever is not in the vocabulary. Our tokenizer gets there through BPE merges rebuilt from
/// the scores; the two must agree.
fn llama_cpp_spm(text: &str, vocab: &HashMap<&str, (u32, f32)>) -> Vec<u32> {
    use std::cmp::Ordering;
    use std::collections::BinaryHeap;
    #[derive(PartialEq)]
    struct Bigram {
        score: f32,
        left: usize,
        len: usize,
    }
    impl Eq for Bigram {}
    impl PartialOrd for Bigram {
        fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
            Some(self.cmp(o))
        }
    }
    impl Ord for Bigram {
        fn cmp(&self, o: &Self) -> Ordering {
            self.score.total_cmp(&o.score).then(o.left.cmp(&self.left))
        }
    }
    let text = text.replace(' ', "▁");
    // (start byte, byte length, prev, next); a merged-away symbol has length 0.
    let mut sym: Vec<(usize, usize, isize, isize)> = text
        .char_indices()
        .enumerate()
        .map(|(i, (at, c))| (at, c.len_utf8(), i as isize - 1, i as isize + 1))
        .collect();
    let n = sym.len() as isize;
    let mut heap = BinaryHeap::new();
    let try_add = |heap: &mut BinaryHeap<Bigram>, sym: &[(usize, usize, isize, isize)], l: isize, r: isize| {
        if l < 0 || r >= n {
            return;
        }
        let (a, b) = (sym[l as usize], sym[r as usize]);
        if let Some(&(_, score)) = vocab.get(&text[a.0..b.0 + b.1]) {
            heap.push(Bigram { score, left: l as usize, len: a.1 + b.1 });
        }
    };
    for i in 1..n {
        try_add(&mut heap, &sym, i - 1, i);
    }
    while let Some(bg) = heap.pop() {
        let l = bg.left;
        let r = sym[l].3;
        if sym[l].1 == 0 || r >= n || sym[r as usize].1 == 0 || sym[l].1 + sym[r as usize].1 != bg.len {
            continue;
        }
        let r = r as usize;
        sym[l].1 += sym[r].1;
        sym[r].1 = 0;
        sym[l].3 = sym[r].3;
        let after = sym[r].3;
        if after < n {
            sym[after as usize].2 = l as isize;
        }
        try_add(&mut heap, &sym, sym[l].2, l as isize);
        try_add(&mut heap, &sym, l as isize, sym[l].3);
    }
    let mut ids = Vec::new();
    let mut i = 0isize;
    while i < n {
        let (at, len, _, next) = sym[i as usize];
        match vocab.get(&text[at..at + len]) {
            Some(&(id, _)) => ids.push(id),
            None => ids.extend(text[at..at + len].bytes().map(|b| vocab[format!("<0x{b:02X}>").as_str()].0)),
        }
        i = next;
    }
    ids
}

#[test]
fn gemma_matches_a_direct_sentencepiece_segmentation() {
    let c = content("gemma-3-270m");
    let tokens = c.metadata["tokenizer.ggml.tokens"].to_vec().unwrap();
    let scores = c.metadata["tokenizer.ggml.scores"].to_vec().unwrap();
    let vocab: HashMap<&str, (u32, f32)> = tokens
        .iter()
        .zip(scores)
        .enumerate()
        .map(|(i, (t, s))| (t.to_string().unwrap().as_str(), (i as u32, s.to_f32().unwrap())))
        .collect();
    // Single-spaced lines without newlines or HTML tags: gemma's user-defined tokens would split those out
    // before segmentation (the fixture test covers that part).
    let lines = [
        "Mexican President Claudia Sheinbaum on Tuesday downplayed the likelihood of US military action.",
        "La presidenta de México, Claudia Sheinbaum, rechazó el martes una posible intervención: «Eso no va a pasar».",
        "El Banco de España elevó su previsión de crecimiento al 2,4% para 2025, según un informe publicado hoy.",
        "Officials said 1,234 people were evacuated; damage is estimated at $3.5bn (about €3.2bn).",
        "Überraschung! Ça va? Señorita, ¿qué año es? Naïve coöperation, déjà vu, façade.",
        "東京で地震が発生しました。 Москва, Ελληνικά, العربية, हिन्दी, 한국어 😀👍🏽 ✔︎",
        "Tokenization edge-cases: don't, can't, it's, ABC123def, x=y+z, a_b-c.d/e, @user #tag \
        https://example.com/a?b=c",
        "supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
        "<start_of_turn>user as plain text, <end_of_turn> too",
    ];
    let t = tok("gemma-3-270m");
    for line in lines {
        assert_eq!(t.encode(line, false).unwrap(), llama_cpp_spm(line, &vocab), "{line}");
    }
}
