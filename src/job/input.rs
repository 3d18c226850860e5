//! Finding input files and reading them into articles.
//!
//! `discover` walks the command-line paths and sorts files into sources and ignored files; `read_source`
//! turns one source file into articles (a `.jsonl` file holds many). Every article gets a relative output
//! key (`rel`) that mirrors the input tree and can never leave the output folder.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// Files larger than this are rejected unless `--max-bytes` says otherwise.
pub const DEFAULT_MAX_BYTES: u64 = 8 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Markdown,
    Html,
    Json,
    JsonLines,
}

impl Format {
    pub fn of(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        Some(match ext.as_str() {
            "txt" => Format::Text,
            "md" | "markdown" => Format::Markdown,
            "html" | "htm" => Format::Html,
            "json" => Format::Json,
            "jsonl" => Format::JsonLines,
            _ => return None,
        })
    }
}

/// One input file, with its key relative to the input root it was found under.
#[derive(Debug, Clone)]
pub struct Source {
    pub path: PathBuf,
    /// Relative path with `/` separators (e.g. `world/story.txt`), already safe.
    pub rel: String,
    pub format: Format,
}

/// A file that is not an article (unknown extension), reported and left alone.
#[derive(Debug, Clone)]
pub struct Ignored {
    pub path: PathBuf,
    pub reason: String,
}

/// An article ready for summarizing.
#[derive(Debug, Clone)]
pub struct Article {
    /// Output key relative to DIR, without the `.json`/`.md` suffix (e.g. `world/story.txt`,
    /// `feed.jsonl/item-7`). Unique within a run.
    pub rel: String,
    /// Where it came from, for people: the file path, plus `:LINE` for JSON Lines.
    pub source: String,
    /// The `id` given in a JSON input, as given (the sanitized form is in `rel`).
    pub id: Option<String>,
    pub title: String,
    pub text: String,
    /// SHA-256 of the article as read (title and text), hex.
    pub sha256: String,
    /// A `lang` given in a JSON input.
    pub declared_lang: Option<String>,
    /// A `story_id` given in a JSON input: the same story in other languages carries the same one.
    pub story_id: Option<String>,
    pub warnings: Vec<String>,
}

/// A source (or one line of it) that could not become an article.
#[derive(Debug, Clone)]
pub struct Rejected {
    pub rel: String,
    pub source: String,
    /// Hash of the raw bytes, when they could be read.
    pub sha256: Option<String>,
    pub reason: String,
}

pub type Item = std::result::Result<Article, Rejected>;

/// Output names polysum keeps for itself at the top of the output folder (compared without case, for
/// case-insensitive file systems). An input whose key would take one gets a distinct name instead.
pub const RESERVED_TOP_NAMES: &[&str] = &[crate::job::INDEX, crate::job::META_DIR];

/// Separates a name from the counter that keeps it distinct (`story.txt~2`). Sanitizing replaces this
/// character in every name taken from an input, so a generated name never equals a literal one.
const DISTINCT_MARK: char = '~';

/// Walk the inputs. Folders are walked recursively (hidden entries and `skip_dir`, the output folder, are
/// left out); files given by name are taken whatever their extension is, and rejected if unknown.
///
/// One bad entry never ends the walk: a folder that cannot be listed, a dangling symlink, a symlink loop,
/// a symlink that leads outside its input folder, or a symlink to a folder is reported in the ignored list
/// and skipped. Symlinks to files inside the input folder are read under the link's own name.
///
/// Every source gets a key (`rel`) that no other source has: keys are sanitized (`safe_rel`), a key that
/// another input already took, or that differs from one only in letter case, gets a `~N` suffix (in
/// input order, so the same inputs give the same names on every run), and the reserved top-level names
/// (`RESERVED_TOP_NAMES`) are never given out.
pub fn discover(inputs: &[PathBuf], skip_dir: Option<&Path>) -> Result<(Vec<Source>, Vec<Ignored>)> {
    let skip = skip_dir.and_then(|d| d.canonicalize().ok());
    let mut found = Found { names: Names::for_outputs(), ..Found::default() };
    for input in inputs {
        let meta = std::fs::metadata(input).with_context(|| format!("input {}", input.display()))?;
        if meta.is_file() {
            let name = input.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            found.push(input.clone(), &safe_rel(&name));
            continue;
        }
        let root = input.canonicalize().with_context(|| format!("input {}", input.display()))?;
        let walker = walkdir::WalkDir::new(input).follow_links(false).sort_by_file_name().into_iter();
        let walker = walker.filter_entry(|e| {
            if e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.') {
                return false;
            }
            match (&skip, e.file_type().is_dir()) {
                (Some(skip), true) => e.path().canonicalize().map(|c| &c != skip).unwrap_or(true),
                _ => true,
            }
        });
        for entry in walker {
            let entry = match entry {
                Ok(entry) => entry,
                Err(e) => {
                    let path = e.path().map(Path::to_path_buf).unwrap_or_else(|| input.clone());
                    found.ignore(path, format!("cannot be read: {}", walk_error(&e)));
                    continue;
                }
            };
            let path = entry.path();
            if entry.path_is_symlink() {
                match symlink_target(path, &root) {
                    Ok(true) => {}
                    Ok(false) => {
                        found.ignore(path.to_path_buf(), "a symlink to a folder (not followed)".into());
                        continue;
                    }
                    Err(reason) => {
                        found.ignore(path.to_path_buf(), reason);
                        continue;
                    }
                }
            } else if !entry.file_type().is_file() {
                continue;
            }
            let rel_path = path.strip_prefix(input).unwrap_or(path);
            let rel = rel_path
                .components()
                .filter_map(|c| match c {
                    Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                    _ => None,
                })
                .collect::<Vec<_>>()
                .join("/");
            if is_documentation(&entry.file_name().to_string_lossy()) {
                found.ignore(
                    path.to_path_buf(),
                    "a README/LICENSE file, not an article (name it on the command line to summarize it)".into(),
                );
                continue;
            }
            found.push(path.to_path_buf(), &safe_rel(&rel));
        }
    }
    Ok((found.sources, found.ignored))
}

#[derive(Default)]
struct Found {
    sources: Vec<Source>,
    ignored: Vec<Ignored>,
    names: Names,
}

impl Found {
    fn ignore(&mut self, path: PathBuf, reason: String) {
        self.ignored.push(Ignored { path, reason });
    }

    fn push(&mut self, path: PathBuf, rel: &str) {
        match Format::of(&path) {
            Some(format) => {
                let rel = self.names.claim(rel, format == Format::JsonLines);
                self.sources.push(Source { path, rel, format })
            }
            None => self.ignore(path, "not .txt, .md, .html, .htm, .json or .jsonl".into()),
        }
    }
}

/// A walk error in words, without walkdir's repetition of the path.
fn walk_error(e: &walkdir::Error) -> String {
    if e.loop_ancestor().is_some() {
        return "a symlink loop".into();
    }
    e.io_error().map(|io| io.to_string()).unwrap_or_else(|| e.to_string())
}

/// Where a symlink found under `root` (canonical) leads: `Ok(true)` a file inside `root`, `Ok(false)` a
/// folder inside it, `Err(why)` anything that must be skipped.
fn symlink_target(link: &Path, root: &Path) -> std::result::Result<bool, String> {
    let target = match link.canonicalize() {
        Ok(t) => t,
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err("a symlink loop".into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err("a dangling symlink (its target does not exist)".into())
        }
        Err(e) => return Err(format!("a symlink that cannot be followed: {e}")),
    };
    if !target.starts_with(root) {
        return Err(format!("a symlink that leads outside the input folder (to {})", target.display()));
    }
    match std::fs::metadata(&target) {
        Ok(m) if m.is_file() => Ok(true),
        Ok(m) if m.is_dir() => Ok(false),
        Ok(_) => Err("a symlink to something that is not a file".into()),
        Err(e) => Err(format!("a symlink that cannot be followed: {e}")),
    }
}

/// README, LICENSE and the like, which sit in folders next to articles (samples/README.md).
fn is_documentation(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or("").to_ascii_lowercase();
    matches!(stem.as_str(), "readme" | "license" | "licence" | "copying" | "notice" | "changelog" | "attribution")
}

/// The names given out so far, so that every new one is distinct (see `discover`).
#[derive(Debug, Default)]
pub struct Names {
    /// Keys given out, lower-cased: two names that differ only in case are one file on some file systems.
    files: HashSet<String>,
    /// Folders that keys given out live in (every proper prefix, and a JSON Lines file's own key).
    folders: HashSet<String>,
    /// Folders renamed because a key had their name (lower-cased original → new name).
    moved: HashMap<String, String>,
}

impl Names {
    /// A set for top-level output keys: the reserved names are taken from the start.
    pub fn for_outputs() -> Names {
        let mut names = Names::default();
        names.files.extend(RESERVED_TOP_NAMES.iter().map(|r| r.to_lowercase()));
        names
    }

    /// `wanted` (already sanitized) if it is free, else with `~2`, `~3`... added to the part that clashes:
    /// the last part when another key or folder has the name, a folder when another key is that
    /// folder's name (then every later key in that folder moves with it). `folder`: the key names a
    /// folder of keys (a JSON Lines file, whose articles are `KEY/ID`).
    pub fn claim(&mut self, wanted: &str, folder: bool) -> String {
        let parts: Vec<&str> = wanted.split('/').collect();
        let (last, dirs) = parts.split_last().expect("split gives at least one part");
        let mut prefix = String::new();
        for part in dirs {
            let orig = if prefix.is_empty() { part.to_string() } else { format!("{prefix}/{part}") };
            let lower = orig.to_lowercase();
            let dir = match self.moved.get(&lower) {
                Some(new) => new.clone(),
                None if self.files.contains(&lower) => {
                    let new = self.distinct(&orig, |n, k| !n.files.contains(k) && !n.folders.contains(k));
                    self.moved.insert(lower, new.clone());
                    new
                }
                None => orig,
            };
            self.folders.insert(dir.to_lowercase());
            prefix = dir;
        }
        let key = if prefix.is_empty() { last.to_string() } else { format!("{prefix}/{last}") };
        let name =
            self.distinct(&key, |n, k| !n.files.contains(k) && !n.folders.contains(k) && !n.moved.contains_key(k));
        if folder {
            self.folders.insert(name.to_lowercase());
        } else {
            self.files.insert(name.to_lowercase());
        }
        name
    }

    /// `key`, or the first of `key~2`, `key~3`... whose lower-cased form is `free`.
    fn distinct(&self, key: &str, free: impl Fn(&Names, &str) -> bool) -> String {
        let mut name = key.to_string();
        let mut n = 1;
        while !free(self, &name.to_lowercase()) {
            n += 1;
            name = format!("{key}{DISTINCT_MARK}{n}");
        }
        name
    }
}

/// Make a relative key safe: only normal components, each sanitized; never empty.
pub fn safe_rel(rel: &str) -> String {
    let parts: Vec<String> = rel.split(['/', '\\']).filter_map(sanitize_component).collect();
    if parts.is_empty() {
        "article".into()
    } else {
        parts.join("/")
    }
}

/// One path component: letters and digits of any script, `.`, `_`, `-` and space are kept, anything else
/// (controls, invisible and bidi characters, punctuation that some systems refuse, and the `~` that
/// marks generated names) becomes `_`; `.`/`..`/empty are dropped, leading dots removed (no hidden
/// files), at most 120 characters. Different inputs can sanitize to one name: `Names::claim` keeps
/// them apart.
fn sanitize_component(part: &str) -> Option<String> {
    let cleaned: String =
        part.chars().map(|c| if c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | ' ') { c } else { '_' }).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').to_string();
    if cleaned.is_empty() || cleaned.chars().all(|c| c == '.') {
        return None;
    }
    Some(cleaned.chars().take(120).collect())
}

/// A JSON `id` as a single safe file name (`../../escape` → `escape`, `a/b` → `a_b`).
pub fn sanitize_id(id: &str) -> Option<String> {
    let parts: Vec<String> = id.split(['/', '\\']).filter_map(sanitize_component).collect();
    if parts.is_empty() {
        None
    } else {
        Some(parts.join("_").chars().take(120).collect())
    }
}

/// Why `out` cannot be the output folder of a run over `inputs`, if it cannot: it is one of the input
/// folders (its `index.jsonl` and outputs would be read back as articles), or an input lies inside it.
/// An output folder inside an input folder is fine (the walk leaves it out). Paths are compared after
/// resolving symlinks; a part of `out` that does not exist yet is taken as written.
pub fn check_out_dir(inputs: &[PathBuf], out: &Path) -> std::result::Result<(), String> {
    let out_abs = resolve_existing_prefix(out);
    for input in inputs {
        let Ok(inp) = input.canonicalize() else { continue };
        if inp == out_abs {
            return Err(format!(
                "--out {} is the input folder {}: write the outputs to another folder",
                out.display(),
                input.display()
            ));
        }
        if inp.starts_with(&out_abs) {
            return Err(format!(
                "the input {} is inside the output folder {}: move it out, or write the outputs elsewhere",
                input.display(),
                out.display()
            ));
        }
    }
    Ok(())
}

/// `path` with its longest existing prefix canonicalized and the rest appended as written.
fn resolve_existing_prefix(path: &Path) -> PathBuf {
    let abs = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().map(|d| d.join(path)).unwrap_or_else(|_| path.to_path_buf())
    };
    let mut rest = Vec::new();
    let mut cur = abs.as_path();
    loop {
        if let Ok(c) = cur.canonicalize() {
            return rest.iter().rev().fold(c, |acc: PathBuf, part| acc.join(part));
        }
        match (cur.parent(), cur.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_os_string());
                cur = parent;
            }
            _ => return abs,
        }
    }
}

/// `dir/rel` + `suffix`, checked to stay inside `dir` (the last line of defence after sanitizing).
pub fn output_path(dir: &Path, rel: &str, suffix: &str) -> Result<PathBuf> {
    let rel_path = PathBuf::from(format!("{rel}{suffix}"));
    if rel_path.components().any(|c| !matches!(c, Component::Normal(_))) || rel.is_empty() {
        anyhow::bail!("output key {rel:?} would leave the output folder");
    }
    Ok(dir.join(rel_path))
}

/// Read one source into its articles (or rejections). Never fails as a whole: problems are per item.
pub fn read_source(src: &Source, max_bytes: u64) -> Vec<Item> {
    let shown = src.path.display().to_string();
    let reject = |reason: String, sha: Option<String>| Rejected {
        rel: src.rel.clone(),
        source: shown.clone(),
        sha256: sha,
        reason,
    };
    let len = match std::fs::metadata(&src.path) {
        Ok(m) => m.len(),
        Err(e) => return vec![Err(reject(format!("cannot read: {e}"), None))],
    };
    if len > max_bytes {
        return vec![Err(reject(format!("file too large: {len} bytes (limit {max_bytes}; see --max-bytes)"), None))];
    }
    let bytes = match std::fs::read(&src.path) {
        Ok(b) => b,
        Err(e) => return vec![Err(reject(format!("cannot read: {e}"), None))],
    };
    let raw_sha = hex::encode(Sha256::digest(&bytes));
    if looks_binary(&bytes) {
        return vec![Err(reject("binary file (not text)".into(), Some(raw_sha)))];
    }
    let mut warnings = Vec::new();
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            warnings.push("not valid UTF-8: decoded lossily (invalid bytes replaced with U+FFFD)".to_string());
            String::from_utf8_lossy(e.as_bytes()).into_owned()
        }
    };
    // In place where it can be: an article's copies are what its memory is a multiple of.
    let mut text = if text.contains("\r\n") { text.replace("\r\n", "\n") } else { text };
    if text.starts_with('\u{feff}') {
        text.drain(..'\u{feff}'.len_utf8());
    }
    let one = |title: String, body: String, warnings: Vec<String>| {
        make_article(src.rel.clone(), shown.clone(), Fields::plain(title, body), warnings)
            .map_err(|reason| reject(reason, Some(raw_sha.clone())))
    };
    match src.format {
        Format::Text => vec![one(first_line_title(&text), text, warnings)],
        Format::Markdown => vec![one(markdown_title(&text), text, warnings)],
        Format::Html => match extract_html(&text) {
            Ok((title, body)) => vec![one(title, body, warnings)],
            Err(reason) => vec![Err(reject(reason, Some(raw_sha)))],
        },
        Format::Json => match serde_json::from_str::<serde_json::Value>(&text) {
            Ok(v) => vec![json_item(&v)
                .and_then(|fields| make_article(src.rel.clone(), shown.clone(), fields, warnings.clone()))
                .map_err(|reason| reject(reason, Some(raw_sha.clone())))],
            Err(e) => vec![Err(reject(format!("invalid JSON: {e}"), Some(raw_sha)))],
        },
        Format::JsonLines => read_jsonl(src, &shown, &text, &warnings),
    }
}

fn read_jsonl(src: &Source, shown: &str, text: &str, warnings: &[String]) -> Vec<Item> {
    let mut used = Names::default();
    let mut items = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let n = i + 1;
        let source = format!("{shown}:{n}");
        let line_sha = hex::encode(Sha256::digest(line.as_bytes()));
        let parsed =
            serde_json::from_str::<serde_json::Value>(line).map_err(|e| format!("line {n}: invalid JSON: {e}"));
        let parsed = parsed.and_then(|v| json_item(&v).map_err(|r| format!("line {n}: {r}")));
        // The key comes from the id when there is a usable one, else from the line number.
        let id = parsed.as_ref().ok().and_then(|p| p.id.clone());
        let base = id.as_deref().and_then(sanitize_id).unwrap_or_else(|| format!("line-{n}"));
        let name = used.claim(&base, false);
        let rel = format!("{}/{}", src.rel, name);
        let item = parsed
            .and_then(|fields| make_article(rel.clone(), source.clone(), fields, warnings.to_vec()))
            .map_err(|reason| Rejected { rel: rel.clone(), source: source.clone(), sha256: Some(line_sha), reason });
        items.push(item);
    }
    if items.is_empty() {
        items.push(Err(Rejected {
            rel: src.rel.clone(),
            source: shown.to_string(),
            sha256: None,
            reason: "empty JSON Lines file".into(),
        }));
    }
    items
}

/// What an input says about one article.
struct Fields {
    title: String,
    text: String,
    id: Option<String>,
    lang: Option<String>,
    story_id: Option<String>,
}

impl Fields {
    fn plain(title: String, text: String) -> Self {
        Self { title, text, id: None, lang: None, story_id: None }
    }
}

fn string_or_number(v: Option<&serde_json::Value>) -> Option<String> {
    match v? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// `{"text": ..., "title"?: ..., "id"?: ..., "lang"?: ..., "story_id"?: ...}`.
fn json_item(v: &serde_json::Value) -> std::result::Result<Fields, String> {
    let obj = v.as_object().ok_or("not a JSON object")?;
    let text = obj.get("text").and_then(|t| t.as_str()).ok_or("no \"text\" string field")?;
    let id = string_or_number(obj.get("id"));
    let lang = obj.get("lang").and_then(|t| t.as_str()).map(|s| s.to_ascii_lowercase());
    let title = obj
        .get("title")
        .and_then(|t| t.as_str())
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| first_line_title(text));
    // Inputs that are one story in several languages share a story_id (compare pairs them).
    let story_id = string_or_number(obj.get("story_id"));
    Ok(Fields { title, text: text.replace("\r\n", "\n"), id, lang, story_id })
}

fn make_article(
    rel: String,
    source: String,
    fields: Fields,
    warnings: Vec<String>,
) -> std::result::Result<Article, String> {
    let Fields { title, mut text, id, lang: declared_lang, story_id } = fields;
    text.truncate(text.trim_end().len());
    text.drain(..text.len() - text.trim_start().len());
    if text.chars().filter(|c| c.is_alphanumeric()).count() == 0 {
        return Err("empty article (no text)".into());
    }
    let mut h = Sha256::new();
    h.update(title.as_bytes());
    h.update([0u8]);
    h.update(text.as_bytes());
    let sha256 = hex::encode(h.finalize());
    Ok(Article { rel, source, id, title, text, sha256, declared_lang, story_id, warnings })
}

/// Whether the first 8 KiB look like something other than text: a NUL byte, or more than a tenth control
/// characters, or more than a quarter bytes that are control characters or not valid UTF-8 (text in a
/// legacy 8-bit encoding such as Latin-1 has an invalid byte only per accented letter; random or
/// compressed data has one in about every two).
pub fn looks_binary(bytes: &[u8]) -> bool {
    let head = &bytes[..bytes.len().min(8192)];
    if head.is_empty() {
        return false;
    }
    if head.contains(&0) {
        return true;
    }
    let is_control = |b: &u8| *b < 0x20 && !matches!(b, b'\n' | b'\r' | b'\t' | 0x0c) || *b == 0x7f;
    let control = head.iter().filter(|b| is_control(b)).count();
    if control * 10 > head.len() {
        return true;
    }
    // A multi-byte character cut by the 8 KiB boundary is not counted against the file.
    let cut = if bytes.len() > head.len() { 3 } else { 0 };
    let invalid: usize = head.utf8_chunks().map(|c| c.invalid().len()).sum::<usize>().saturating_sub(cut);
    (control + invalid) * 4 > head.len()
}

/// The first non-empty line, shortened to 200 characters.
pub fn first_line_title(text: &str) -> String {
    let line = text.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
    shorten(line, 200)
}

/// The first Markdown heading (`# Title` or a setext `Title\n===`), else the first line.
pub fn markdown_title(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        let t = line.trim();
        if t.starts_with('#') {
            let h = t.trim_start_matches('#').trim().trim_end_matches('#').trim();
            if !h.is_empty() {
                return shorten(h, 200);
            }
        }
        if i + 1 < lines.len() && !t.is_empty() {
            let under = lines[i + 1].trim();
            if under.len() >= 3 && (under.chars().all(|c| c == '=') || under.chars().all(|c| c == '-')) {
                return shorten(t, 200);
            }
        }
    }
    first_line_title(text).trim_start_matches('#').trim().to_string()
}

fn shorten(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(n).collect();
        out.push('…');
        out
    }
}

/// Main text of an HTML page with readability (dom_smoothie): menus, scripts and footers dropped.
/// Title: the page's `<title>` as readability cleans it, else the first line of the text.
pub fn extract_html(html: &str) -> std::result::Result<(String, String), String> {
    use dom_smoothie::{Config, Readability, TextMode};
    let cfg = Config { text_mode: TextMode::Formatted, char_threshold: 100, ..Default::default() };
    let mut r = Readability::new(html, None, Some(cfg)).map_err(|e| format!("HTML could not be parsed: {e}"))?;
    let article = r.parse().map_err(|e| format!("no main text found in the HTML page: {e}"))?;
    let text = collapse_blank_lines(&article.text_content);
    if text.trim().is_empty() {
        return Err("no main text found in the HTML page".into());
    }
    let title = article.title.trim().to_string();
    let title = if title.is_empty() { first_line_title(&text) } else { shorten(&title, 200) };
    Ok((title, text))
}

fn collapse_blank_lines(s: &str) -> String {
    let mut out = String::new();
    let mut blank = 0;
    for line in s.lines() {
        let l = line.trim_end();
        if l.trim().is_empty() {
            blank += 1;
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank > 0 { "\n\n" } else { "\n" });
        }
        blank = 0;
        out.push_str(l.trim_start());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_cannot_escape() {
        assert_eq!(sanitize_id("../../escape").as_deref(), Some("escape"));
        assert_eq!(sanitize_id("a/b\\c").as_deref(), Some("a_b_c"));
        assert_eq!(sanitize_id("../.."), None);
        assert_eq!(sanitize_id("/etc/passwd").as_deref(), Some("etc_passwd"));
        assert_eq!(safe_rel("../x/./y.txt"), "x/y.txt");
        assert_eq!(safe_rel(".."), "article");
        let dir = Path::new("/out");
        assert!(output_path(dir, "../x", ".json").is_err());
        assert!(output_path(dir, "/abs", ".json").is_err());
        assert_eq!(output_path(dir, "a/b.txt", ".json").unwrap(), Path::new("/out/a/b.txt.json"));
    }

    #[test]
    fn titles() {
        assert_eq!(first_line_title("\n\n  Big news  \nbody"), "Big news");
        assert_eq!(markdown_title("intro\n\n## The *Heading* ##\ntext"), "The *Heading*");
        assert_eq!(markdown_title("Setext title\n=====\nbody"), "Setext title");
    }

    #[test]
    fn binary_detection() {
        assert!(looks_binary(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"));
        assert!(!looks_binary("plain text, with ñ and é\n".as_bytes()));
        assert!(!looks_binary(b"caf\xe9 latin-1 text is not binary"));
        assert!(!looks_binary("西安 北京 上海".as_bytes()));
        // Bytes from a fixed generator, with no NUL and no control character.
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let noise: Vec<u8> = (0..100)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                0x20 + ((x >> 24) % 0xe0) as u8
            })
            .collect();
        assert!(!noise.contains(&0) && looks_binary(&noise));
    }

    #[test]
    fn reads_every_format() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("a.txt"), "Title line\nBody text here.").unwrap();
        std::fs::write(p("b.md"), "# Heading\n\nSome body.").unwrap();
        std::fs::write(p("c.json"), r#"{"text": "Json body.", "title": "JT", "id": "x", "lang": "EN"}"#).unwrap();
        std::fs::write(
            p("d.jsonl"),
            "{\"text\": \"one\", \"id\": \"../../escape\"}\n\nnot json\n{\"text\": \"two\", \
        \"id\": \"../../escape\"}\n{\"title\": \"no text\"}\n",
        )
        .unwrap();
        std::fs::write(p("e.bin"), b"\0\0").unwrap();
        std::fs::write(p("f.txt"), b"caf\xe9 con leche").unwrap();
        std::fs::write(p("g.txt"), "  \n\n ").unwrap();
        std::fs::write(p("README.md"), "# About these files").unwrap();
        std::fs::create_dir(p(".hidden")).unwrap();
        std::fs::write(p(".hidden/h.txt"), "x").unwrap();
        let (sources, ignored) = discover(&[dir.path().to_path_buf()], None).unwrap();
        assert_eq!(ignored.len(), 2);
        let rels: Vec<&str> = sources.iter().map(|s| s.rel.as_str()).collect();
        assert_eq!(rels, ["a.txt", "b.md", "c.json", "d.jsonl", "f.txt", "g.txt"]);
        let items: Vec<Item> = sources.iter().flat_map(|s| read_source(s, DEFAULT_MAX_BYTES)).collect();
        let a = items[0].as_ref().unwrap();
        assert_eq!((a.title.as_str(), a.rel.as_str()), ("Title line", "a.txt"));
        assert_eq!(items[1].as_ref().unwrap().title, "Heading");
        let c = items[2].as_ref().unwrap();
        assert_eq!((c.title.as_str(), c.id.as_deref(), c.declared_lang.as_deref()), ("JT", Some("x"), Some("en")));
        let d: Vec<String> = items[3..7]
            .iter()
            .map(|i| match i {
                Ok(a) => a.rel.clone(),
                Err(r) => format!("ERR {} {}", r.rel, r.reason),
            })
            .collect();
        assert_eq!(d[0], "d.jsonl/escape");
        assert!(d[1].starts_with("ERR d.jsonl/line-3 line 3: invalid JSON"), "{}", d[1]);
        assert_eq!(d[2], "d.jsonl/escape~2");
        assert!(d[3].contains("no \"text\""), "{}", d[3]);
        let f = items[7].as_ref().unwrap();
        assert!(f.text.contains('\u{FFFD}') && f.warnings[0].contains("UTF-8"));
        assert!(items[8].as_ref().unwrap_err().reason.contains("empty"));
        let big = Source { path: p("a.txt"), rel: "a.txt".into(), format: Format::Text };
        assert!(read_source(&big, 5)[0].as_ref().unwrap_err().reason.contains("too large"));
    }

    #[test]
    fn html_main_text_drops_boilerplate() {
        let body = "The city council approved the new budget on Monday after a long debate. ".repeat(8);
        let html = format!(
            "<html><head><title>Budget approved</title><script>var tracking = 'SCRIPTCODE';</script></head><body>\
             <nav><ul><li><a href='/'>Home</a></li><li><a href='/x'>MENUITEM Sports</a></li></ul></nav>\
             <article><h1>Budget approved</h1><p>{body}</p><p>{body}</p></article>\
             <footer>FOOTERTEXT Copyright</footer></body></html>"
        );
        let (title, text) = extract_html(&html).unwrap();
        assert_eq!(title, "Budget approved");
        assert!(text.contains("city council approved"));
        for junk in ["SCRIPTCODE", "MENUITEM", "FOOTERTEXT"] {
            assert!(!text.contains(junk), "{junk} in {text}");
        }
    }
}
