//! The OpenAI chat-completions client against an HTTP server this test starts on 127.0.0.1 (a std
//! TcpListener in a thread): success, retries on 429 (Retry-After) and 5xx, timeouts, 4xx, usage, and the
//! in-flight limit.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use polysum::backend::openai::{ChatRequest, Dialect, OpenAiClient, OpenAiConfig, OpenAiError};
use polysum::backend::{Generator, Prompt, Request, SamplingParams, ScoreRequest, StopReason};
use serde_json::{json, Value};

/// What the server does for one request.
struct Reply {
    status: u16,
    body: Value,
    headers: Vec<(&'static str, String)>,
    delay: Duration,
}

fn ok(text: &str, prompt: u64, completion: u64) -> Reply {
    Reply {
        status: 200,
        body: json!({
            "id": "x", "object": "chat.completion",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
        }),
        headers: vec![],
        delay: Duration::ZERO,
    }
}

fn status(code: u16, body: Value) -> Reply {
    Reply { status: code, body, headers: vec![], delay: Duration::ZERO }
}

#[derive(Clone, Debug)]
struct Seen {
    body: Value,
    authorization: Option<String>,
    path: String,
}

struct Server {
    url: String,
    hits: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

type Handler = dyn Fn(usize, &Value) -> Reply + Send + Sync;

/// A server answering request number n (from 0) with `handler(n, body)`, one thread per connection,
/// recording the peak number of requests open at once.
fn serve(handler: impl Fn(usize, &Value) -> Reply + Send + Sync + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let open = Arc::new(AtomicUsize::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler: Arc<Handler> = Arc::new(handler);
    let (h, p, s) = (hits.clone(), peak.clone(), seen.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let (h, p, s, o, handler) = (h.clone(), p.clone(), s.clone(), open.clone(), handler.clone());
            std::thread::spawn(move || {
                let now = o.fetch_add(1, Ordering::SeqCst) + 1;
                p.fetch_max(now, Ordering::SeqCst);
                let open = Open(&o, std::sync::Once::new());
                let _ = handle(stream, &h, &s, handler.as_ref(), &open);
            });
        }
    });
    Server { url, hits, peak, seen }
}

/// A request counted as open until its answer starts going out: once the client has read the answer it
/// may open the next request, before this connection's thread has finished (so counting up to the
/// thread's end saw one request too many).
struct Open<'a>(&'a AtomicUsize, std::sync::Once);

impl Open<'_> {
    fn close(&self) {
        self.1.call_once(|| {
            self.0.fetch_sub(1, Ordering::SeqCst);
        });
    }
}

impl Drop for Open<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

fn handle(
    stream: TcpStream,
    hits: &AtomicUsize,
    seen: &Mutex<Vec<Seen>>,
    handler: &Handler,
    open: &Open,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    let (mut len, mut auth) = (0usize, None);
    loop {
        let mut h = String::new();
        reader.read_line(&mut h)?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (name, value) = h.split_once(':').unwrap_or((h, ""));
        match name.to_ascii_lowercase().as_str() {
            "content-length" => len = value.trim().parse().unwrap_or(0),
            "authorization" => auth = Some(value.trim().to_string()),
            _ => {}
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body)?;
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let n = hits.fetch_add(1, Ordering::SeqCst);
    seen.lock().unwrap().push(Seen { body: body.clone(), authorization: auth, path });
    let reply = handler(n, &body);
    std::thread::sleep(reply.delay);
    let payload = reply.body.to_string();
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n",
        reply.status,
        payload.len()
    );
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    open.close();
    out.write_all(head.as_bytes())?;
    out.write_all(payload.as_bytes())?;
    out.flush()
}

fn config(url: &str) -> OpenAiConfig {
    let mut c = OpenAiConfig::new(url, "smollm2");
    c.backoff_base = Duration::from_millis(20);
    c.backoff_max = Duration::from_millis(200);
    c.timeout = Duration::from_secs(10);
    c.max_retries = 3;
    c
}

fn chat(user: &str, prefix: Option<&str>) -> ChatRequest {
    ChatRequest {
        system: Some("Be brief.".into()),
        user: user.into(),
        assistant_prefix: prefix.map(String::from),
        max_tokens: 64,
        sampling: SamplingParams::greedy(),
        stop: vec!["</summary>".into()],
    }
}

#[test]
fn success_sends_the_chat_and_counts_usage() {
    let server = serve(|_, _| ok("Las autoridades confirmaron el cierre.", 41, 9));
    std::env::set_var("POLYSUM_TEST_KEY_OK", "sk-test-123");
    let client = OpenAiClient::new(
        config(&format!("{}/v1/", server.url)).api_key_from_env(Some("POLYSUM_TEST_KEY_OK")).unwrap(),
    )
    .unwrap();
    let r = client.chat(&chat("Summarize: the article.", Some("Resumen: "))).unwrap();
    // The server continued the started answer; the client gives the whole answer and the continuation.
    assert_eq!(r.text, "Resumen: Las autoridades confirmaron el cierre.");
    assert_eq!(r.continuation, "Las autoridades confirmaron el cierre.");
    assert_eq!((r.prompt_tokens, r.completion_tokens, r.tries, r.stop_reason), (41, 9, 1, StopReason::Eos));

    let seen = server.seen.lock().unwrap()[0].clone();
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.authorization.as_deref(), Some("Bearer sk-test-123"));
    let b = &seen.body;
    assert_eq!(b["model"], "smollm2");
    assert_eq!(b["max_tokens"], 64);
    assert_eq!(b["temperature"], 0.0);
    assert_eq!(b["stop"], json!(["</summary>"]));
    assert_eq!(
        b["messages"],
        json!([
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Summarize: the article."},
            {"role": "assistant", "content": "Resumen: "}
        ])
    );
}

#[test]
fn the_repetition_penalty_goes_in_the_fields_of_the_servers_dialect() {
    let server = serve(|_, _| ok("Hecho.", 10, 2));
    let penalized = |dialect: Dialect| {
        let mut c = config(&server.url);
        c.dialect = dialect;
        let client = OpenAiClient::new(c).unwrap();
        let mut req = chat("Summarize: the article.", None);
        req.sampling = SamplingParams { repetition_penalty: 1.1, repetition_window: 64, ..SamplingParams::greedy() };
        client.chat(&req).unwrap();
        let mut plain = chat("Sample.", None);
        plain.sampling = SamplingParams { temperature: 0.7, top_k: Some(40), ..SamplingParams::greedy() };
        client.chat(&plain).unwrap();
        let seen = server.seen.lock().unwrap();
        let n = seen.len();
        (seen[n - 2].body.clone(), seen[n - 1].body.clone())
    };
    let fields = ["repeat_penalty", "repeat_last_n", "repetition_penalty", "top_k"];
    let (greedy, sampled) = penalized(Dialect::OpenAi);
    assert!(fields.iter().all(|f| greedy.get(f).is_none() && sampled.get(f).is_none()), "{greedy} {sampled}");
    let (greedy, sampled) = penalized(Dialect::LlamaCpp);
    assert!((greedy["repeat_penalty"].as_f64().unwrap() - 1.1).abs() < 1e-6, "{greedy}");
    assert_eq!((greedy["repeat_last_n"].clone(), greedy.get("top_k")), (json!(64), None));
    assert_eq!((sampled.get("repeat_penalty"), sampled["top_k"].clone()), (None, json!(40)));
    assert_eq!((sampled["top_p"].clone(), sampled["min_p"].clone()), (json!(1.0), json!(0.0)), "{sampled}");
    let (greedy, sampled) = penalized(Dialect::Vllm);
    assert!((greedy["repetition_penalty"].as_f64().unwrap() - 1.1).abs() < 1e-6, "{greedy}");
    assert!(greedy.get("repeat_penalty").is_none() && greedy.get("repeat_last_n").is_none(), "{greedy}");
    assert_eq!(sampled["top_k"], json!(40));
    assert_eq!("llama.cpp".parse::<Dialect>(), Ok(Dialect::LlamaCpp));
    assert!("ollama".parse::<Dialect>().unwrap_err().contains("openai, llama.cpp or vllm"));
}

#[test]
fn generate_runs_a_batch_and_sums_usage() {
    // This server echoes the started answer: the continuation must not hold it twice.
    let server = serve(|_, body| {
        let last = body["messages"].as_array().unwrap().last().unwrap().clone();
        if last["role"] == "assistant" {
            ok(&format!("{}el texto.", last["content"].as_str().unwrap()), 30, 4)
        } else {
            ok("The text.", 20, 3)
        }
    });
    let client = OpenAiClient::new(config(&server.url)).unwrap();
    let reqs = vec![
        Request::greedy(Prompt::chat("s", "English please"), 16),
        Request::greedy(Prompt::chat("s", "En español").with_answer_prefix(Some("Resumen: ".into())), 16),
    ];
    let (gens, stats) = client.generate(&reqs).unwrap();
    assert_eq!(gens[0].text, "The text.");
    assert_eq!(gens[1].text, "el texto.");
    assert_eq!(
        (gens[0].prompt_tokens, gens[0].tokens.len(), gens[1].prompt_tokens, gens[1].tokens.len()),
        (20, 3, 30, 4)
    );
    assert_eq!((stats.prompt_tokens, stats.generated_tokens), (50, 7));
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

/// A reply of one token with its top alternatives, as OpenAI and vLLM send `logprobs`.
fn top_logprobs(top: &[(&str, f64)]) -> Reply {
    let alts: Vec<Value> = top.iter().map(|(t, lp)| json!({"token": t, "logprob": lp})).collect();
    let mut r = ok(top[0].0, 30, 1);
    r.body["choices"][0]["logprobs"] =
        json!({"content": [{"token": top[0].0, "logprob": top[0].1, "top_logprobs": alts}]});
    r
}

#[test]
fn score_asks_for_one_token_with_logprobs_and_reads_each_answer() {
    let server = serve(|_, body| {
        let user = body["messages"][1]["content"].as_str().unwrap_or_default();
        if user.contains("police") {
            top_logprobs(&[("No", -0.3), ("Not", -1.6), (" no", -3.0), ("Yes", -4.0)])
        } else {
            top_logprobs(&[("Yes", -0.1), ("No", -2.5)])
        }
    });
    let client = OpenAiClient::new(config(&server.url)).unwrap();
    let ask = |claim: &str| ScoreRequest {
        prompt: Prompt::chat("Check.", format!("Did {claim}? Answer Yes, No or Not stated.")),
        answers: vec!["Yes".into(), "No".into(), "Not".into()],
    };
    let scores =
        Generator::score(&client, &[ask("an attacker shoot the man"), ask("the police shoot the man")]).unwrap();
    assert_eq!(server.hits.load(Ordering::SeqCst), 2, "one request per question");
    let [yes, no, not] = scores[0][..] else { panic!("{scores:?}") };
    assert_eq!((yes, no), (-0.1, -2.5));
    assert_eq!(not, -3.5, "an answer missing from the top pieces gets less than the lowest sent");
    let [yes, no, not] = scores[1][..] else { panic!("{scores:?}") };
    assert_eq!((yes, not), (-4.0, -1.6));
    // "No" and " no" are one answer: their probabilities add up.
    let expected = ((-0.3f64).exp() + (-3.0f64).exp()).ln() as f32;
    assert!((no - expected).abs() < 1e-5, "{no} vs {expected}");
    for seen in server.seen.lock().unwrap().iter() {
        let b = &seen.body;
        assert_eq!((b["max_tokens"].as_u64(), b["logprobs"].as_bool()), (Some(1), Some(true)), "{b}");
        assert!(b["top_logprobs"].as_u64().is_some_and(|n| n >= 5), "{b}");
        assert_eq!(b["temperature"], 0.0);
    }

    // A server that ignores `logprobs` is an error that says so, not a guess.
    let plain = serve(|_, _| ok("Yes", 30, 1));
    let client = OpenAiClient::new(config(&plain.url)).unwrap();
    let err = Generator::score(&client, &[ask("x")]).unwrap_err();
    assert!(format!("{err:#}").contains("logprobs"), "{err:#}");
}

#[test]
fn retries_after_429_honouring_retry_after() {
    let server = serve(|n, _| {
        if n == 0 {
            let mut r = status(429, json!({"error": {"message": "rate limited"}}));
            r.headers.push(("Retry-After", "1".into()));
            r
        } else {
            ok("Fine.", 5, 1)
        }
    });
    let client = OpenAiClient::new(config(&server.url)).unwrap();
    let t = Instant::now();
    let r = client.chat(&chat("x", None)).unwrap();
    // The backoff alone would be 10-20 ms; Retry-After asked for a second.
    assert!(t.elapsed() >= Duration::from_millis(950), "{:?}", t.elapsed());
    assert_eq!((r.text.as_str(), r.tries), ("Fine.", 2));
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[test]
fn retries_5xx_then_succeeds() {
    let server = serve(|n, _| if n < 2 { status(503, json!({"error": "loading model"})) } else { ok("Done.", 5, 1) });
    let client = OpenAiClient::new(config(&server.url)).unwrap();
    let r = client.chat(&chat("x", None)).unwrap();
    assert_eq!((r.text.as_str(), r.tries), ("Done.", 3));
}

#[test]
fn server_errors_every_time_give_up_after_the_retries() {
    let server = serve(|_, _| status(500, json!({"error": {"message": "CUDA out of memory"}})));
    let client = OpenAiClient::new(config(&server.url)).unwrap();
    let err = client.chat(&chat("x", None)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(matches!(err.downcast_ref::<OpenAiError>(), Some(OpenAiError::GaveUp { tries: 4, .. })), "{msg}");
    assert!(msg.contains("4 tries") && msg.contains("HTTP 500") && msg.contains("CUDA out of memory"), "{msg}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 4);
}

#[test]
fn timeout_is_retried_then_a_clear_error() {
    let server = serve(|_, _| Reply { delay: Duration::from_secs(3), ..ok("late", 1, 1) });
    let mut cfg = config(&server.url);
    cfg.timeout = Duration::from_millis(300);
    cfg.max_retries = 2;
    let client = OpenAiClient::new(cfg).unwrap();
    let t = Instant::now();
    let err = client.chat(&chat("x", None)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(matches!(err.downcast_ref::<OpenAiError>(), Some(OpenAiError::GaveUp { tries: 3, .. })), "{msg}");
    assert!(msg.contains("timeout") || msg.contains("timed out"), "{msg}");
    // Three tries of 300 ms plus short backoffs, far less than one 3 s answer.
    assert!(t.elapsed() < Duration::from_millis(2500), "{:?}", t.elapsed());
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(server.hits.load(Ordering::SeqCst), 3);
}

#[test]
fn client_error_fails_at_once_with_the_servers_message() {
    let server = serve(|_, _| {
        status(404, json!({"error": {"message": "The model `nope` does not exist.", "type": "NotFoundError"}}))
    });
    let client = OpenAiClient::new(config(&server.url)).unwrap();
    let err = client.chat(&chat("x", None)).unwrap_err();
    let msg = format!("{err:#}");
    assert!(matches!(err.downcast_ref::<OpenAiError>(), Some(OpenAiError::Rejected { status: 404, .. })), "{msg}");
    assert!(msg.contains("HTTP 404") && msg.contains("The model `nope` does not exist."), "{msg}");
    assert_eq!(server.hits.load(Ordering::SeqCst), 1, "a 4xx is not retried");
}

#[test]
fn connection_refused_is_retried_then_reported() {
    // A port with nothing listening: bind, note it, close.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cfg = config(&format!("http://127.0.0.1:{port}"));
    cfg.max_retries = 1;
    let err = OpenAiClient::new(cfg).unwrap().chat(&chat("x", None)).unwrap_err();
    assert!(matches!(err.downcast_ref::<OpenAiError>(), Some(OpenAiError::GaveUp { tries: 2, .. })), "{err:#}");
}

#[test]
fn max_inflight_bounds_open_requests_across_threads() {
    // Replies slow enough that the third request is open before the first one answers, even on a loaded
    // machine (150 ms was not, under load 4 on 2 cores).
    let server = serve(|_, _| Reply { delay: Duration::from_millis(500), ..ok("ok", 1, 1) });
    let mut cfg = config(&server.url);
    cfg.max_inflight = 3;
    let client = OpenAiClient::new(cfg).unwrap();
    let batch: Vec<Request> = (0..6).map(|i| Request::greedy(Prompt::Raw(format!("article {i}")), 8)).collect();
    // Two workers, each with a batch of 6: 12 requests, never more than 3 open.
    std::thread::scope(|s| {
        let a = s.spawn(|| client.generate(&batch).unwrap());
        let b = s.spawn(|| client.generate(&batch).unwrap());
        assert_eq!(a.join().unwrap().0.len(), 6);
        assert_eq!(b.join().unwrap().0.len(), 6);
    });
    assert_eq!(server.hits.load(Ordering::SeqCst), 12);
    assert_eq!(server.peak.load(Ordering::SeqCst), 3, "the limit is reached and never passed");
}

#[test]
fn missing_api_key_variable_is_an_error() {
    let err = OpenAiConfig::new("http://h", "m").api_key_from_env(Some("POLYSUM_TEST_KEY_UNSET_XYZ")).unwrap_err();
    assert!(err.to_string().contains("POLYSUM_TEST_KEY_UNSET_XYZ is not set"), "{err}");
}

/// `polysum compare --backend openai`: the back-translations come from the server, through the same
/// translation prompt the local model gets, and are scored like the local ones.
#[test]
fn compare_back_translates_through_a_remote_server() {
    const EN: &str = "An earthquake of magnitude 6.1 shook Lima on Tuesday, Peru's geophysical institute said. No \
    deaths were reported.";
    const ES: &str = "Un terremoto de magnitud 6,1 sacudió Lima el martes, informó el instituto geofísico de Perú. No \
    se registraron muertes.";
    // A faithful translator: the other summary, whichever way it is asked.
    let server = serve(|_, body| {
        // The client first checks that the server answers at all (GET /v1/models, no body).
        let Some(messages) = body["messages"].as_array() else { return ok("", 0, 0) };
        let user = messages.iter().find(|m| m["role"] == "user").unwrap()["content"].as_str().unwrap().to_string();
        if user.contains("al español") {
            ok(ES, 40, 30)
        } else {
            ok(EN, 40, 30)
        }
    });
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compare/consistent");
    let tmp = tempfile::tempdir().unwrap();
    let json = tmp.path().join("r.json");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_polysum"))
        .args(["compare", dir.to_str().unwrap(), "--json", json.to_str().unwrap()])
        .args(["--backend", "openai", "--endpoint", &server.url, "--remote-model", "served-model"])
        .env_remove("POLYSUM_MODEL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["backtranslation"], true);
    assert_eq!(v["model"], "openai:served-model");
    // Each summary of each article went out once, in one batch per article.
    let seen = server.seen.lock().unwrap();
    let chats: Vec<&Seen> = seen.iter().filter(|s| s.path.ends_with("/chat/completions")).collect();
    assert_eq!(chats.len(), 4, "{seen:?}");
    assert!(chats.iter().all(|s| s.body["model"] == "served-model"));
    assert!(chats.iter().any(|s| s.body.to_string().contains("Translate the following text into English")));
    let article = &v["articles"][0];
    let scores = article["check"]["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 2, "{article}");
    assert!(scores.iter().all(|s| s["chrf"].as_f64().unwrap() > 99.0), "{scores:?}");
    assert_eq!(article["verdict"], "consistent", "{article}");
}
