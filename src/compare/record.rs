//! Reading what `summarize` wrote: the job's record types (`job::record`), read leniently (a field a record
//! lacks takes its default, unknown fields are ignored), so compare depends only on the documented fields.

use std::path::Path;

use anyhow::{Context, Result};

use crate::job::record::{ArticleRecord, Status, SCHEMA_VERSION};
use crate::text::lang::Lang;

/// The summary text in `lang` when it exists and did not fail, else why not.
pub(crate) fn summary(r: &ArticleRecord, lang: Lang) -> std::result::Result<&str, String> {
    match r.summaries.get(&lang) {
        None => Err(format!("no {} summary", lang.label())),
        Some(s) if s.status == Status::Failed => Err(format!(
            "{} summary failed{}",
            lang.label(),
            s.error.as_deref().map(|e| format!(": {e}")).unwrap_or_default()
        )),
        Some(s) => match s.text.as_deref().map(str::trim) {
            Some(t) if !t.is_empty() => Ok(t),
            _ => Err(format!("{} summary is empty", lang.label())),
        },
    }
}

/// The article's language: the detected source language, else the declared one when polysum knows it.
pub(crate) fn lang(r: &ArticleRecord) -> Option<Lang> {
    r.source_lang.or_else(|| r.declared_lang.as_deref().and_then(|d| d.parse().ok()))
}

/// Records of an output folder: `index.jsonl` when it exists (a later line with the same id replaces an
/// earlier one), else every `*.json` file under it. A line that is not a record (invalid UTF-8, torn by
/// a crash, not JSON, no id) is reported in `warnings` and skipped, and then the `*.json` files fill in
/// the records the index lost.
pub(crate) fn read_dir(dir: &Path) -> Result<(Vec<ArticleRecord>, Vec<String>)> {
    let mut warnings = Vec::new();
    let mut records: Vec<ArticleRecord> = Vec::new();
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
                .and_then(|l| serde_json::from_str::<ArticleRecord>(l).map_err(|e| format!("not a record ({e})")));
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
                .and_then(|t| Ok(serde_json::from_str::<ArticleRecord>(&t)?));
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
fn push(rec: ArticleRecord, records: &mut Vec<ArticleRecord>) {
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
        let line = concat!(
            r#"{"schema_version":1,"id":"a","source":"a.txt","status":"ok","future":{"x":1},"#,
            r#""summaries":{"en":{"text":" Hi. ","status":"ok","tokens":{"prompt":3}},"#,
            r#""es":{"text":null,"status":"failed","error":"timeout"}}}"#
        );
        let r: ArticleRecord = serde_json::from_str(line).unwrap();
        assert_eq!(summary(&r, Lang::En), Ok("Hi."));
        assert_eq!(summary(&r, Lang::Es), Err("ES summary failed: timeout".to_string()));
        assert_eq!(summary(&r, Lang::Fr), Err("no FR summary".to_string()));
        assert_eq!(r.story_id, None);
    }
}
