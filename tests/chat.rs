//! Chat templates from the GGUF files against the prompts llama.cpp rendered (greedy-reference.jsonl).
mod common;

use candle_core::quantized::gguf_file;
use polysum::engine::chat::{ChatTemplate, Message};
use polysum::engine::tokenizer::Tokenizer;

const SYSTEM: &str = "You are a helpful assistant.";

fn load(name: &str) -> (gguf_file::Content, Tokenizer) {
    let path = common::model_file(name);
    let c = gguf_file::Content::read(&mut std::fs::File::open(&path).unwrap()).unwrap();
    let t = Tokenizer::from_gguf(&c).unwrap();
    (c, t)
}

fn template(name: &str) -> (ChatTemplate, Tokenizer) {
    let (c, t) = load(name);
    (ChatTemplate::from_gguf(&c, &t).unwrap(), t)
}

/// (cache name, user text, prompt llama.cpp rendered) for every greedy-reference line.
fn reference_prompts() -> Vec<(&'static str, String, String)> {
    common::jsonl("greedy-reference.jsonl")
        .into_iter()
        .map(|v| {
            let file = v["model_file"].as_str().unwrap().to_lowercase();
            let name = if file.starts_with("smollm2-135m") {
                "smollm2-135m"
            } else if file.starts_with("qwen2.5-coder-0.5b") {
                "qwen2.5-coder-0.5b"
            } else {
                panic!("unexpected model file {file}")
            };
            let prompt = v["prompt"].as_str().unwrap().to_string();
            // Only the user's words are taken from the reference; everything around them must be rendered.
            let user = prompt
                .split("<|im_start|>user\n")
                .nth(1)
                .and_then(|r| r.split("<|im_end|>").next())
                .unwrap()
                .to_string();
            (name, user, prompt)
        })
        .collect()
}

#[test]
fn templates_render_the_reference_prompts() {
    let refs = reference_prompts();
    assert_eq!(refs.len(), 6);
    for name in ["smollm2-135m", "qwen2.5-coder-0.5b"] {
        let (tpl, _) = template(name);
        assert!(!tpl.is_plain(), "{name} has a template");
        let mut n = 0;
        for (_, user, prompt) in refs.iter().filter(|r| r.0 == name) {
            let got = tpl.render(&[Message::system(SYSTEM), Message::user(user)], true).unwrap();
            assert_eq!(&got, prompt, "{name}");
            n += 1;
        }
        assert_eq!(n, 3, "{name}");
    }
}

#[test]
fn qwen_1_5b_template_renders_like_0_5b() {
    let (a, _) = template("qwen2.5-coder-0.5b");
    let (b, _) = template("qwen2.5-coder-1.5b");
    for (_, user, _) in reference_prompts() {
        let msgs = [Message::system(SYSTEM), Message::user(&user)];
        assert_eq!(a.render(&msgs, true).unwrap(), b.render(&msgs, true).unwrap());
    }
}

#[test]
fn templates_without_system_or_generation_prompt() {
    let (qwen, _) = template("qwen2.5-coder-0.5b");
    assert_eq!(
        qwen.render(&[Message::user("Hi")], false).unwrap(),
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful \
        assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
    );
    let (smol, _) = template("smollm2-135m");
    assert_eq!(
        smol.render(&[Message::user("Hi"), Message::assistant("Hello!"), Message::user("Bye")], true).unwrap(),
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n\
         <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello!<|im_end|>\n\
         <|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
    );
}

/// Engine::chat_prompt appends a started answer to the rendered prompt: the prompt must end exactly at the
/// assistant's turn, and the answer's tokens must follow the generation prompt's unchanged.
#[test]
fn started_answer_follows_the_generation_prompt() {
    for name in ["smollm2-135m", "qwen2.5-coder-0.5b"] {
        let (tpl, tok) = template(name);
        let prompt =
            tpl.render(&[Message::system("Eres un asistente."), Message::user("Resume el artículo.")], true).unwrap();
        assert!(prompt.ends_with("<|im_end|>\n<|im_start|>assistant\n"), "{name}: {prompt:?}");
        let started = format!("{prompt}Resumen:");
        let mut expected = tok.encode(&prompt, true).unwrap();
        expected.extend(tok.encode("Resumen:", true).unwrap());
        assert_eq!(tok.encode(&started, true).unwrap(), expected, "{name}");
        let im_start = tok.token_to_id("<|im_start|>").unwrap();
        assert_eq!(expected.iter().filter(|&&i| i == im_start).count(), 3, "{name}: system, user, assistant turns");
    }
}

#[test]
fn gemma_base_model_gets_the_plain_format() {
    let (tpl, tok) = template("gemma-3-270m");
    assert!(tpl.is_plain());
    let prompt = tpl.render(&[Message::system("Be brief."), Message::user("Summarize: the text.")], true).unwrap();
    assert_eq!(prompt, "Be brief.\n\nSummarize: the text.\n\nAnswer:\n");
    // The blank lines and the cue's newline are gemma's own newline tokens.
    let ids = tok.encode(&prompt, true).unwrap();
    assert_eq!(ids.last(), Some(&107), "{ids:?}");
    assert_eq!(ids.iter().filter(|&&i| i == 108).count(), 2, "{ids:?}");
}

#[test]
fn template_variables_and_exceptions() {
    let (_, gemma) = load("gemma-3-270m");
    // A Gemma-style template: bos_token from the tokenizer, and a refusal of the system role.
    let src = "{{ bos_token }}{% for m in messages %}{% if m.role == 'system' %}{{ raise_exception('System role not \
    supported') }}{% endif %}\
               <start_of_turn>{{ 'model' if m.role == 'assistant' else m.role }}\n{{ m.content | trim \
               }}<end_of_turn>\n{% endfor %}\
               {% if add_generation_prompt %}<start_of_turn>model\n{% endif %}";
    let tpl = ChatTemplate::from_source(src, gemma.bos_token(), gemma.eos_token()).unwrap();
    let prompt = tpl.render(&[Message::user(" Hola ")], true).unwrap();
    assert_eq!(prompt, "<bos><start_of_turn>user\nHola<end_of_turn>\n<start_of_turn>model\n");
    assert_eq!(gemma.encode(&prompt, true).unwrap()[..2], [2, 105]);
    let err = tpl.render(&[Message::system("x"), Message::user("y")], true).unwrap_err().to_string();
    assert!(err.contains("System role not supported"), "{err}");
}

#[test]
fn strftime_now_and_python_methods_are_available() {
    let tpl = ChatTemplate::from_source(
        "{{ strftime_now('%Y') }}|{{ messages[0].content.split(',') | join('+') }}|{% if \
        messages[0].content.startswith('a') %}yes{% endif %}",
        None,
        None,
    )
    .unwrap();
    let out = tpl.render(&[Message::user("a,b")], false).unwrap();
    let (year, rest) = out.split_once('|').unwrap();
    assert!(year.len() == 4 && year.parse::<u32>().unwrap() >= 2024, "{out}");
    assert_eq!(rest, "a+b|yes");
}
