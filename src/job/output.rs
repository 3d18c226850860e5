//! Files in the output folder. Every write is atomic: a temporary file in the same folder, fsync, rename,
//! fsync of the folder. A killed run leaves at most a `.polysum-tmp-*` file, which the next run removes.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::job::input::output_path;
use crate::job::record::{ArticleRecord, SentenceSupport, Status, SummaryRecord};
use crate::text::lexicon::LexicalCheck;

pub(crate) const TMP_PREFIX: &str = ".polysum-tmp-";

/// Which per-article files to write (`--format json,md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Formats {
    pub(crate) json: bool,
    pub(crate) md: bool,
}

impl Formats {
    pub(crate) fn parse(list: &str) -> Result<Formats> {
        let mut f = Formats { json: false, md: false };
        for part in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match part.to_ascii_lowercase().as_str() {
                "json" => f.json = true,
                "md" | "markdown" => f.md = true,
                other => anyhow::bail!("unknown output format {other:?}: use json, md or json,md"),
            }
        }
        if !f.json && !f.md {
            anyhow::bail!("--format is empty: use json, md or json,md");
        }
        Ok(f)
    }
}

/// The mode output files are created with before the umask applies, as any program that creates a file
/// does (0644 under the usual umask 022): outputs are meant to be read by others (a web server, a
/// colleague), and a private folder is made private by its umask or its own mode. Temporary files are
/// private by default, so this must be asked for.
#[cfg(unix)]
const OUTPUT_MODE: u32 = 0o666;

/// A builder for the temporary file of an atomic write: the polysum prefix, and the output files' mode.
fn temp_builder() -> tempfile::Builder<'static, 'static> {
    let mut b = tempfile::Builder::new();
    b.prefix(TMP_PREFIX);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        b.permissions(std::fs::Permissions::from_mode(OUTPUT_MODE));
    }
    b
}

/// Write `bytes` to `path` atomically (parents created). This is the one place that creates files in
/// an output folder: they get the mode any new file gets under the process's umask.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().context("output path has no folder")?;
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let mut tmp = temp_builder()
        .tempfile_in(parent)
        .with_context(|| format!("creating a temporary file in {}", parent.display()))?;
    tmp.write_all(bytes).with_context(|| format!("writing {}", path.display()))?;
    tmp.as_file().sync_all().with_context(|| format!("writing {}", path.display()))?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("renaming into {}", path.display()))?;
    // The rename itself must reach the disk before the state says the file exists.
    if let Ok(d) = std::fs::File::open(parent) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub(crate) fn record_json(record: &ArticleRecord) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(record)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Write the article's `.json` (always for a record, so failures are visible in the tree) and `.md` (when
/// asked and the article could be read).
pub(crate) fn write_article(dir: &Path, record: &ArticleRecord, formats: Formats) -> Result<()> {
    if formats.json {
        atomic_write(&output_path(dir, &record.id, ".json")?, &record_json(record)?)?;
    }
    if formats.md && record.error.is_none() {
        let (suffix, body) = markdown(record);
        atomic_write(&output_path(dir, &record.id, &suffix)?, body.as_bytes())?;
    }
    Ok(())
}

/// The suffixes of the files `write_article` can write for `record` (whether or not they exist).
pub(crate) fn article_suffixes(record: &ArticleRecord) -> [String; 2] {
    [".json".to_string(), markdown_suffix(record)]
}

fn markdown_suffix(record: &ArticleRecord) -> String {
    match &record.translation {
        Some(t) => format!(".{}.md", t.lang),
        None => ".md".to_string(),
    }
}

/// The Markdown file's suffix and text: `.md` with the summaries, or `.<lang>.md` with a translation.
fn markdown(record: &ArticleRecord) -> (String, String) {
    let body = match &record.translation {
        Some(t) => render_translation_md(record, t),
        None => render_md(record),
    };
    (markdown_suffix(record), body)
}

/// True when the files of `record` are on disk and intact: the JSON parses and matches the record's hash
/// and statuses, and the Markdown exists.
pub(crate) fn outputs_intact(dir: &Path, record: &ArticleRecord, formats: Formats) -> bool {
    let check = || -> Result<bool> {
        if formats.json {
            let bytes = std::fs::read(output_path(dir, &record.id, ".json")?)?;
            let on_disk: ArticleRecord = serde_json::from_slice(&bytes)?;
            if on_disk.sha256 != record.sha256
                || on_disk.summaries != record.summaries
                || on_disk.translation != record.translation
                || on_disk.status != record.status
            {
                return Ok(false);
            }
        }
        if formats.md && record.error.is_none() {
            let text = std::fs::read_to_string(output_path(dir, &record.id, &markdown_suffix(record))?)?;
            if !text.starts_with("# ") {
                return Ok(false);
            }
        }
        Ok(true)
    };
    check().unwrap_or(false)
}

/// `index.jsonl` from the given records (one compact JSON line each), atomically.
pub(crate) fn write_index(dir: &Path, lines: &[String]) -> Result<()> {
    let mut body = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        body.push_str(l);
        body.push('\n');
    }
    atomic_write(&dir.join(crate::job::INDEX), body.as_bytes())
}

/// Remove temporary files a killed run left behind (call with the lock held).
pub(crate) fn remove_stale_temp_files(dir: &Path) -> usize {
    let mut n = 0;
    for entry in walkdir::WalkDir::new(dir).into_iter().filter_map(|e| e.ok()) {
        if entry.file_type().is_file()
            && entry.file_name().to_string_lossy().starts_with(TMP_PREFIX)
            && std::fs::remove_file(entry.path()).is_ok()
        {
            n += 1;
        }
    }
    n
}

/// The Markdown view of a record.
pub(crate) fn render_md(r: &ArticleRecord) -> String {
    let mut s = String::new();
    s.push_str(&format!("# {}\n\n", r.title.as_deref().filter(|t| !t.is_empty()).unwrap_or(&r.id)));
    s.push_str(&format!("Source: `{}`", r.source));
    if let Some(l) = &r.source_lang {
        s.push_str(&format!(" · language: {l}"));
    }
    if r.truncated {
        s.push_str(" · the article was truncated to fit the model");
    }
    s.push_str("\n\n");
    for (code, sum) in &r.summaries {
        let name = code.native_name();
        let mut heading: Vec<char> = name.chars().collect();
        if let Some(c) = heading.first_mut() {
            *c = c.to_uppercase().next().unwrap_or(*c);
        }
        s.push_str(&format!("## {} ({code})\n\n", heading.into_iter().collect::<String>()));
        match (&sum.status, &sum.text) {
            (Status::Ok, Some(text)) => {
                s.push_str(text);
                s.push_str("\n\n");
                s.push_str(&check_lines(sum));
            }
            _ => s.push_str(&format!("*Failed: {}*\n\n", sum.error.as_deref().unwrap_or("unknown error"))),
        }
    }
    s
}

/// The "Check:" lines for sentences the article does not support (after any repair) and for those the
/// repair removed, each with what failed; empty when every sentence stands or nothing was checked.
fn check_line(sum: &SummaryRecord) -> String {
    let Some(support) = &sum.support else { return String::new() };
    let bad: Vec<&SentenceSupport> =
        support.iter().filter(|s| s.verdict == crate::job::record::Verdict::Unsupported).collect();
    let mut line = String::new();
    if !bad.is_empty() {
        line.push_str(&format!("> Check: not supported by the article: {}\n\n", quoted_with_reasons(&bad)));
    }
    // What the repair took out is shown too: a reader can see what the summary no longer says, and why.
    if !sum.dropped_sentences.is_empty() {
        let dropped: Vec<&SentenceSupport> = sum.dropped_sentences.iter().collect();
        line.push_str(&format!(
            "> Check: removed, not supported by the article: {}\n\n",
            quoted_with_reasons(&dropped)
        ));
    }
    line
}

/// Each sentence in quotes with the checks it failed: `"…" (model, actor); "…" (name)`.
fn quoted_with_reasons(sentences: &[&SentenceSupport]) -> String {
    sentences
        .iter()
        .map(|s| {
            let why = s.failed_checks.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(", ");
            format!("\"{}\" ({why})", s.text)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The "Check:" lines under a text: numbers the article lacks, sentences it does not support, words the
/// dictionary does not know (nothing when all is well).
fn check_lines(sum: &SummaryRecord) -> String {
    let mut s = String::new();
    if !sum.unsupported_numbers.is_empty() {
        s.push_str(&format!(
            "> Check: these numbers are not in the article: {}\n\n",
            sum.unsupported_numbers.join(", ")
        ));
    }
    s.push_str(&check_line(sum));
    if let Some(LexicalCheck::Unknown { words }) = &sum.lexical {
        s.push_str(&format!("> Check: these words are not in the dictionary: {}\n\n", words.join(", ")));
    }
    s
}

/// The Markdown view of a translation: its title and paragraphs, then where it came from.
pub(crate) fn render_translation_md(r: &ArticleRecord, t: &crate::job::record::Translation) -> String {
    let title = t.title.as_deref().or(r.title.as_deref()).filter(|s| !s.trim().is_empty()).unwrap_or(&r.id);
    let mut s = format!("# {title}\n\n");
    match (&t.record.status, &t.record.text) {
        (Status::Ok, Some(text)) => {
            for p in crate::text::split::paragraphs(text).0 {
                s.push_str(p);
                s.push_str("\n\n");
            }
        }
        _ => s.push_str(&format!("*Failed: {}*\n\n", t.record.error.as_deref().unwrap_or("unknown error"))),
    }
    if t.record.status == Status::Ok {
        s.push_str(&check_lines(&t.record));
    }
    s.push_str(&format!("---\nTranslated into {} from `{}`", t.lang.english_name(), r.source));
    if let Some(l) = &r.source_lang {
        s.push_str(&format!(" ({})", l.english_name()));
    }
    if !t.record.flags.is_empty() {
        s.push_str(&format!(
            " · check: {}",
            t.record.flags.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(", ")
        ));
    }
    s.push('\n');
    s
}

/// Free bytes under which an I/O error from SQLite is taken for a full disk.
const NEARLY_FULL_BYTES: u64 = 1 << 20;

/// Is this error, from writing into the folder `dir`, "no space left on the device"? Besides the errors
/// that say so, SQLite reports a disk that fills while it maps its shared-memory file (WAL mode) as a
/// plain I/O error: that counts as disk full when the file system of `dir` has (almost) no space left.
pub(crate) fn is_disk_full_in(err: &anyhow::Error, dir: &Path) -> bool {
    if is_disk_full(err) {
        return true;
    }
    let sqlite_io = err.chain().any(|e| {
        matches!(
            e.downcast_ref::<rusqlite::Error>(),
            Some(rusqlite::Error::SqliteFailure(f, _)) if f.code == rusqlite::ErrorCode::SystemIoFailure
        )
    });
    sqlite_io && fs4::available_space(dir).is_ok_and(|free| free < NEARLY_FULL_BYTES)
}

/// Is this error (anywhere in its chain) "no space left on the device"?
pub(crate) fn is_disk_full(err: &anyhow::Error) -> bool {
    err.chain().any(|e| {
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return io.raw_os_error() == Some(28)
                || io.kind() == std::io::ErrorKind::StorageFull
                || io.kind() == std::io::ErrorKind::QuotaExceeded;
        }
        if let Some(rusqlite::Error::SqliteFailure(f, _)) = e.downcast_ref::<rusqlite::Error>() {
            return f.code == rusqlite::ErrorCode::DiskFull;
        }
        false
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_markdown_names_unsupported_and_removed_sentences_with_their_reasons() {
        use crate::job::record::{Check, Verdict};
        let sentence = |text: &str, verdict, failed_checks| SentenceSupport {
            text: text.into(),
            verdict,
            score: 0.2,
            evidence: vec![0],
            failed_checks,
            repaired: false,
            checked_as: None,
        };
        let mut sum = SummaryRecord {
            support: Some(vec![sentence("The bridge reopened.", Verdict::Supported, vec![])]),
            ..SummaryRecord::default()
        };
        assert_eq!(check_lines(&sum), "");
        sum.dropped_sentences = vec![sentence("Police shot the man.", Verdict::Unsupported, vec![Check::Actor])];
        sum.support.as_mut().unwrap().push(sentence("It cost 9 euros.", Verdict::Unsupported, vec![Check::Number]));
        let lines = check_lines(&sum);
        assert!(lines.contains("> Check: not supported by the article: \"It cost 9 euros.\" (number)"), "{lines}");
        assert!(
            lines.contains("> Check: removed, not supported by the article: \"Police shot the man.\" (actor)"),
            "{lines}"
        );
    }

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a/b/c.json");
        atomic_write(&p, b"one").unwrap();
        atomic_write(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(p.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names.len(), 1);
        std::fs::write(p.parent().unwrap().join(format!("{TMP_PREFIX}xyz")), b"partial").unwrap();
        assert_eq!(remove_stale_temp_files(dir.path()), 1);
    }

    #[test]
    fn formats_parse() {
        assert_eq!(Formats::parse("json,md").unwrap(), Formats { json: true, md: true });
        assert_eq!(Formats::parse("md").unwrap(), Formats { json: false, md: true });
        assert!(Formats::parse("pdf").is_err());
    }

    #[test]
    fn disk_full_is_recognised_through_context() {
        let e = anyhow::Error::from(std::io::Error::from_raw_os_error(28)).context("writing x");
        assert!(is_disk_full(&e));
        let e = anyhow::Error::from(std::io::Error::from_raw_os_error(13)).context("writing x");
        assert!(!is_disk_full(&e));
        let sq = rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(13), None);
        assert!(is_disk_full(&anyhow::Error::from(sq).context("state")));
    }
}
