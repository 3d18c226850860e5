//! The part of a `summarize` output record (schema version 2) that compare reads. Every field has a
//! default and unknown fields are ignored, so compare depends only on the documented fields.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::Deserialize;

/// The newest record schema this reader knows.
pub(crate) const SCHEMA_VERSION: u64 = 2;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Record {
    pub(crate) schema_version: u64,
    pub(crate) id: String,
    pub(crate) source: String,
    /// The input's hash, to find the article again for its evidence sentences.
    pub(crate) sha256: Option<String>,
    pub(crate) input_id: Option<String>,
    /// Groups the language editions of one story (from JSON/JSONL inputs), when present.
    pub(crate) story_id: Option<String>,
    pub(crate) title: Option<String>,
    pub(crate) source_lang: Option<String>,
    pub(crate) declared_lang: Option<String>,
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) truncated: bool,
    pub(crate) summaries: BTreeMap<String, SummaryRecord>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct SummaryRecord {
    pub(crate) text: Option<String>,
    pub(crate) status: String,
    pub(crate) error: Option<String>,
    pub(crate) lang_detected: Option<String>,
    pub(crate) model: Option<String>,
    /// Each sentence checked against the article (schema 2, `--verify flag|fix`).
    pub(crate) support: Option<Vec<Support>>,
}

/// One summary sentence's support, as `summarize --verify` records it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Support {
    pub(crate) text: String,
    /// `supported` or `unsupported`.
    pub(crate) verdict: String,
    pub(crate) evidence: Vec<usize>,
    pub(crate) failed_checks: Vec<String>,
}

impl Support {
    pub(crate) fn supported(&self) -> bool {
        self.verdict == "supported"
    }
}

impl Record {
    /// The summary text in `lang` when it exists and did not fail, else why not.
    pub(crate) fn summary(&self, lang: &str) -> std::result::Result<&str, String> {
        match self.summaries.get(lang) {
            None => Err(format!("no {} summary", lang.to_uppercase())),
            Some(s) if s.status == "failed" => Err(format!(
                "{} summary failed{}",
                lang.to_uppercase(),
                s.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
            )),
            Some(s) => match s.text.as_deref().map(str::trim) {
                Some(t) if !t.is_empty() => Ok(t),
                _ => Err(format!("{} summary is empty", lang.to_uppercase())),
            },
        }
    }

    /// The checked sentences of the summary in `lang`, when it was checked.
    pub(crate) fn support(&self, lang: &str) -> &[Support] {
        self.summaries.get(lang).and_then(|s| s.support.as_deref()).unwrap_or_default()
    }

    /// The article's language: the detected source language, else the declared one.
    pub(crate) fn lang(&self) -> Option<&str> {
        self.source_lang.as_deref().or(self.declared_lang.as_deref())
    }
}

/// Records of an output folder: `index.jsonl` when it exists (a later line with the same id replaces an
/// earlier one), else every `*.json` file under it. A line that is not a record (invalid UTF-8, torn by
/// a crash, not JSON, no id) is reported in `warnings` and skipped, and then the `*.json` files fill in
/// the records the index lost.
pub(crate) fn read_dir(dir: &Path) -> Result<(Vec<Record>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut records: Vec<Record> = Vec::new();
    let index = dir.join("index.jsonl");
    if !dir.is_dir() {
        anyhow::bail!("{} is not a folder (give the --out folder of `polysum summarize`)", dir.display());
    }
    let from_files = if index.is_file() {
        let bytes = std::fs::read(&index).with_context(|| format!("reading {}", index.display()))?;
        let mut skipped = 0;
        for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let parsed = std::str::from_utf8(line)
                .map_err(|e| format!("not UTF-8 ({e})"))
                .and_then(|l| serde_json::from_str::<Record>(l).map_err(|e| format!("not a record ({e})")));
            match parsed {
                Ok(rec) if !rec.id.is_empty() => push(rec, &mut records),
                Ok(_) => {
                    skipped += 1;
                    warnings.push(format!("{}:{}: record without an id, skipped", index.display(), n + 1))
                }
                Err(why) => {
                    skipped += 1;
                    warnings.push(format!("{}:{}: {why}, skipped", index.display(), n + 1))
                }
            }
        }
        skipped > 0
    } else {
        true
    };
    if from_files {
        let mut files: Vec<_> = walkdir::WalkDir::new(dir)
            .into_iter()
            .filter_entry(|e| e.depth() == 0 || !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| e.ok())
            .filter(|e| e.file_type().is_file() && e.path().extension().is_some_and(|x| x == "json"))
            .map(|e| e.into_path())
            .collect();
        files.sort();
        for path in files {
            let parsed = std::fs::read_to_string(&path)
                .map_err(anyhow::Error::from)
                .and_then(|t| Ok(serde_json::from_str::<Record>(&t)?));
            match parsed {
                // Records from the index come first: a file fills in only what the index lost.
                Ok(rec) if !rec.id.is_empty() => {
                    if !records.iter().any(|r| r.id == rec.id) {
                        records.push(rec);
                    }
                }
                Ok(_) => warnings.push(format!("{}: record without an id, skipped", path.display())),
                Err(e) => warnings.push(format!("{}: not a record ({e}), skipped", path.display())),
            }
        }
    }
    for r in &records {
        if r.schema_version > SCHEMA_VERSION {
            warnings.push(format!(
                "{}: schema version {} is newer than {SCHEMA_VERSION}; reading the known fields",
                r.id, r.schema_version
            ));
        }
    }
    Ok((records, warnings))
}

/// Add `rec`, replacing an earlier record with the same id.
fn push(rec: Record, records: &mut Vec<Record>) {
    if let Some(pos) = records.iter().position(|r| r.id == rec.id) {
        records[pos] = rec;
    } else {
        records.push(rec);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_known_fields_and_ignores_others() {
        let line = r#"{"schema_version":1,"id":"a","source":"a.txt","status":"ok","future":{"x":1},
            "summaries":{"en":{"text":" Hi. ","status":"ok","tokens":{"prompt":3}},"es":{"text":null,"status":"failed","error":"timeout"}}}"#;
        let r: Record = serde_json::from_str(line).unwrap();
        assert_eq!(r.summary("en"), Ok("Hi."));
        assert_eq!(r.summary("es"), Err("ES summary failed: timeout".to_string()));
        assert_eq!(r.summary("fr"), Err("no FR summary".to_string()));
        assert_eq!(r.story_id, None);
    }
}
