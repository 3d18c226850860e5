//! A tiny HTTP/1.1 server on 127.0.0.1 for the registry tests: serves a PyPI-style JSON index and wheels that
//! the test builds, honours `Range: bytes=N-` (unless told not to), can cut a response off halfway, and logs
//! every request.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use sha2::{Digest, Sha256};

#[derive(Debug, Clone)]
pub struct Logged {
    pub path: String,
    pub range: Option<String>,
    pub authorization: Option<String>,
    pub status: u16,
}

#[derive(Default)]
pub struct State {
    pub routes: HashMap<String, Vec<u8>>,
    /// Paths whose next response stops after half the body (the connection is closed).
    pub cut_once: HashSet<String>,
    /// Answer range requests with the whole file (200).
    pub ignore_range: bool,
    /// Extra response headers per path.
    pub headers: HashMap<String, Vec<(String, String)>>,
    pub log: Vec<Logged>,
}

pub struct Server {
    pub base: String,
    pub state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let st = state.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let st = st.clone();
                std::thread::spawn(move || handle(stream, &st));
            }
        });
        Server { base, state }
    }

    pub fn put(&self, path: &str, body: Vec<u8>) {
        self.state.lock().unwrap().routes.insert(path.to_string(), body);
    }

    pub fn cut_once(&self, path: &str) {
        self.state.lock().unwrap().cut_once.insert(path.to_string());
    }

    pub fn log(&self) -> Vec<Logged> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn requests_for(&self, path: &str) -> Vec<Logged> {
        self.log().into_iter().filter(|l| l.path == path).collect()
    }
}

fn handle(stream: TcpStream, state: &Mutex<State>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    let mut authorization = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h == "\r\n" || h.is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_string());
            }
        }
    }
    let (body, cut, ignore_range, extra) = {
        let mut st = state.lock().unwrap();
        let cut = st.cut_once.remove(&path);
        let extra: String = st.headers.get(&path).into_iter().flatten().map(|(k, v)| format!("{k}: {v}\r\n")).collect();
        (st.routes.get(&path).cloned(), cut, st.ignore_range, extra)
    };
    let mut stream = stream;
    let Some(body) = body else {
        state.lock().unwrap().log.push(Logged { path, range, authorization, status: 404 });
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\nConnection: close\r\n\r\nnot found");
        return;
    };
    let start = range
        .as_deref()
        .filter(|_| !ignore_range)
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse::<usize>().ok());
    let (status, head, slice) = match start {
        Some(s) if s < body.len() => (
            206,
            format!(
                "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {s}-{}/{}\r\nContent-Length: {}\r\n",
                body.len() - 1,
                body.len(),
                body.len() - s
            ),
            &body[s..],
        ),
        Some(_) => (416, "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Length: 0\r\n".to_string(), &body[..0]),
        None => (200, format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n", body.len()), &body[..]),
    };
    state.lock().unwrap().log.push(Logged { path, range, authorization, status });
    let _ = stream.write_all(format!("{head}{extra}Accept-Ranges: bytes\r\nConnection: close\r\n\r\n").as_bytes());
    if cut {
        let _ = stream.write_all(&slice[..slice.len() / 2]);
        let _ = stream.flush();
        let _ = stream.shutdown(std::net::Shutdown::Both);
        return;
    }
    let _ = stream.write_all(slice);
    let _ = stream.flush();
    // Drain anything left so the client sees an orderly close.
    let _ = stream.shutdown(std::net::Shutdown::Write);
    let mut sink = [0u8; 64];
    let _ = reader.get_mut().read(&mut sink);
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A wheel (zip) with `member` holding `data`, plus a dist-info file, like the real mirror's wheels.
pub fn build_wheel(package: &str, version: &str, member: &str, data: &[u8], deflate: bool) -> Vec<u8> {
    use zip::write::SimpleFileOptions;
    let mut buf = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut buf);
        let method = if deflate { zip::CompressionMethod::Deflated } else { zip::CompressionMethod::Stored };
        let opts = SimpleFileOptions::default().compression_method(method);
        let module = package.replace('-', "_");
        w.start_file(format!("{module}/__init__.py"), opts).unwrap();
        w.write_all(b"").unwrap();
        w.start_file(member, opts).unwrap();
        w.write_all(data).unwrap();
        w.start_file(format!("{module}-{version}.dist-info/METADATA"), opts).unwrap();
        w.write_all(format!("Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n").as_bytes()).unwrap();
        w.finish().unwrap();
    }
    buf.into_inner()
}

/// A fake GGUF of `len` bytes: the magic, then deterministic noise.
pub fn fake_gguf(len: usize, seed: u64) -> Vec<u8> {
    let mut out = b"GGUF".to_vec();
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.push((x >> 24) as u8);
    }
    out
}

/// A fake model split across wheels and published on the server.
pub struct FakeMirror {
    pub gguf: Vec<u8>,
    pub sha256: String,
    /// `(package, wheel path on the server)` per part.
    pub wheels: Vec<(String, String)>,
    /// The `[[model]]` entry (PyPI source only) for a registry TOML.
    pub toml: String,
}

/// Publishes `name` as `parts` wheels `<name>-partN==0.1.0` with members `<name>_partN/data/partNN.bin`.
/// Wheel N's JSON entry is served at `/pypi/<name>-partN/json`; wheel files at `/files/<file>`.
pub fn publish(server: &Server, name: &str, len: usize, parts: usize) -> FakeMirror {
    let gguf = fake_gguf(len, len as u64);
    let sha256 = sha256_hex(&gguf);
    let chunk = len.div_ceil(parts);
    let mut wheels = Vec::new();
    let mut parts_toml = String::new();
    for (i, data) in gguf.chunks(chunk).enumerate() {
        let n = i + 1;
        let package = format!("{name}-part{n}");
        let module = package.replace('-', "_");
        let member = format!("{module}/data/part{n:02}.bin");
        let wheel = build_wheel(&package, "0.1.0", &member, data, n % 2 == 0);
        let file = format!("{module}-0.1.0-py3-none-any.whl");
        let path = format!("/files/{file}");
        let json = serde_json::json!({
            "info": { "name": package },
            "releases": {
                "0.0.9": [],
                "0.1.0": [{
                    "filename": file,
                    "url": format!("{}{path}", server.base),
                    "size": wheel.len(),
                    "digests": { "sha256": sha256_hex(&wheel), "md5": "x" },
                    "packagetype": "bdist_wheel",
                    "yanked": false
                }]
            }
        });
        server.put(&format!("/pypi/{package}/json"), serde_json::to_vec(&json).unwrap());
        server.put(&path, wheel);
        parts_toml.push_str(&format!("  {{ package = \"{package}\", version = \"0.1.0\", member = \"{member}\" }},\n"));
        wheels.push((package, path));
    }
    let toml = format!(
        r#"[[model]]
name = "{name}"
aliases = ["{name}-alias"]
description = "a fake model for tests"
architecture = "llama"
quantization = "Q4_0"
context_length = 2048
license = "MIT"
file = "{name}.gguf"
size = {len}
sha256 = "{sha256}"
tested = true

[[model.source]]
kind = "pypi"
parts = [
{parts_toml}]
"#
    );
    FakeMirror { gguf, sha256, wheels, toml }
}

/// Rewrites the sha256 the JSON index gives for one wheel.
pub fn set_wheel_sha(server: &Server, package: &str, sha: &str) {
    let key = format!("/pypi/{package}/json");
    let mut st = server.state.lock().unwrap();
    let mut json: serde_json::Value = serde_json::from_slice(&st.routes[&key]).unwrap();
    json["releases"]["0.1.0"][0]["digests"]["sha256"] = serde_json::Value::String(sha.to_string());
    st.routes.insert(key, serde_json::to_vec(&json).unwrap());
}

/// Serves `bytes` as a Hub file the way hf-hub expects (`/<repo>/resolve/<revision>/<file>`, with the
/// `x-repo-commit` and `x-linked-etag` headers, the etag being the sha256 as for LFS files).
pub fn publish_hub_file(server: &Server, repo: &str, revision: &str, file: &str, bytes: &[u8], etag: &str) -> String {
    let path = format!("/{repo}/resolve/{revision}/{file}");
    server.put(&path, bytes.to_vec());
    server.state.lock().unwrap().headers.insert(
        path.clone(),
        vec![
            ("x-repo-commit".into(), "fedcba9876543210fedcba9876543210fedcba98".into()),
            ("x-linked-etag".into(), format!("\"{etag}\"")),
        ],
    );
    path
}
