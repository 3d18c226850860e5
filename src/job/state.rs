//! The run state, in SQLite inside the output folder (`DIR/.polysum/state.sqlite`, WAL mode).
//!
//! `summaries` caches every summary that came out ok, keyed by (article hash, model, prompt version,
//! length, language): the same article under another name, or after a rename, is not summarized again.
//! `articles` holds the latest record of every output key; `index.jsonl` is rebuilt from it, so it can
//! never hold duplicates. A row is written only after the article's files are on disk.

use std::path::Path;

use anyhow::{Context, Result};
use rusqlite::{params, Connection, OptionalExtension};

use crate::job::record::{ArticleRecord, SummaryRecord};

pub(crate) struct State {
    conn: Connection,
}

/// What identifies one summary's work.
#[derive(Debug, Clone)]
pub(crate) struct Key<'a> {
    pub(crate) sha256: &'a str,
    pub(crate) model: &'a str,
    pub(crate) prompt_version: &'a str,
    pub(crate) length: &'a str,
}

/// One row of the summary cache: the work's key (`length` is the task's whole state key, strategy and
/// context included), the language, and the stored record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CacheRow {
    pub(crate) sha256: String,
    pub(crate) model: String,
    pub(crate) prompt_version: String,
    pub(crate) length: String,
    pub(crate) lang: String,
    pub(crate) record: String,
    pub(crate) updated_at: String,
}

/// The task whose outputs the folder `dir` holds (`summarize`, `translate`), from `.polysum/task`;
/// a folder with a state but no marker is from before the marker existed and holds summaries.
pub(crate) fn recorded_task(dir: &Path) -> Option<String> {
    let meta = dir.join(crate::job::META_DIR);
    match std::fs::read_to_string(meta.join("task")) {
        Ok(kind) => Some(kind.trim().to_string()),
        Err(_) if meta.join("state.sqlite").exists() => Some("summarize".to_string()),
        Err(_) => None,
    }
}

impl State {
    pub(crate) fn open(dir: &Path) -> Result<State> {
        let meta = dir.join(crate::job::META_DIR);
        std::fs::create_dir_all(&meta).with_context(|| format!("creating {}", meta.display()))?;
        let path = meta.join("state.sqlite");
        let conn = Connection::open(&path).with_context(|| format!("opening the state database {}", path.display()))?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL").context("setting WAL mode")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS summaries (
                 sha256 TEXT NOT NULL, model TEXT NOT NULL, prompt_version TEXT NOT NULL, length TEXT NOT NULL,
                 lang TEXT NOT NULL, record TEXT NOT NULL, updated_at TEXT NOT NULL,
                 PRIMARY KEY (sha256, model, prompt_version, length, lang));
             CREATE TABLE IF NOT EXISTS articles (
                 id TEXT PRIMARY KEY, sha256 TEXT, status TEXT NOT NULL, record TEXT NOT NULL, updated_at TEXT NOT \
                 NULL);",
        )
        .with_context(|| format!("preparing the state database {}", path.display()))?;
        Ok(State { conn })
    }

    /// An ok summary done before for this key and language.
    pub(crate) fn cached<T: serde::de::DeserializeOwned>(&self, key: &Key<'_>, lang: &str) -> Result<Option<T>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT record FROM summaries WHERE sha256=?1 AND model=?2 AND prompt_version=?3 AND length=?4 AND \
                lang=?5",
                params![key.sha256, key.model, key.prompt_version, key.length, lang],
                |r| r.get(0),
            )
            .optional()?;
        // A row that does not parse (written by another version) is treated as absent and redone.
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// The record last stored for an output key.
    pub(crate) fn article(&self, id: &str) -> Result<Option<ArticleRecord>> {
        let json: Option<String> =
            self.conn.query_row("SELECT record FROM articles WHERE id=?1", params![id], |r| r.get(0)).optional()?;
        Ok(json.and_then(|j| serde_json::from_str(&j).ok()))
    }

    /// Store an article's record and its ok summaries, in one transaction.
    pub(crate) fn commit(&mut self, record: &ArticleRecord, length: &str) -> Result<()> {
        let tx = self.conn.transaction()?;
        if let Some(sha) = &record.sha256 {
            // Ok summaries, and an ok translation, are reusable work.
            let mut rows: Vec<(&str, &SummaryRecord, String)> = Vec::new();
            for (lang, s) in record.summaries.iter().filter(|(_, s)| s.is_ok()) {
                rows.push((lang.code(), s, serde_json::to_string(s)?));
            }
            if let Some(t) = record.translation.as_ref().filter(|t| t.record.is_ok()) {
                rows.push((t.lang.code(), &t.record, serde_json::to_string(t)?));
            }
            for (lang, s, json) in rows {
                put_cache_row(
                    &tx,
                    &CacheRow {
                        sha256: sha.clone(),
                        model: s.model.clone(),
                        prompt_version: s.prompt_version.clone(),
                        length: length.to_string(),
                        lang: lang.to_string(),
                        record: json,
                        updated_at: record.updated_at.clone(),
                    },
                )?;
            }
        }
        put_article(&tx, record)?;
        tx.commit().context("saving the run state")?;
        Ok(())
    }

    /// Every row of the summary cache, as stored (`polysum merge` copies them, keys unchanged).
    pub(crate) fn cache_rows(&self) -> Result<Vec<CacheRow>> {
        let mut stmt = self
            .conn
            .prepare("SELECT sha256, model, prompt_version, length, lang, record, updated_at FROM summaries")?;
        let rows = stmt.query_map([], |r| {
            Ok(CacheRow {
                sha256: r.get(0)?,
                model: r.get(1)?,
                prompt_version: r.get(2)?,
                length: r.get(3)?,
                lang: r.get(4)?,
                record: r.get(5)?,
                updated_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Store article records and summary cache rows as they are, in one transaction (`polysum merge`).
    pub(crate) fn import(&mut self, records: &[&ArticleRecord], rows: &[CacheRow]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for c in rows {
            put_cache_row(&tx, c)?;
        }
        for record in records {
            put_article(&tx, record)?;
        }
        tx.commit().context("saving the merged state")?;
        Ok(())
    }

    /// Every stored article record as one compact JSON line, ordered by id (the content of index.jsonl).
    pub(crate) fn index_lines(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT record FROM articles ORDER BY id")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            let json = row?;
            // Re-serialize compactly so that a line is exactly one record.
            let v: serde_json::Value = serde_json::from_str(&json)?;
            out.push(serde_json::to_string(&v)?);
        }
        Ok(out)
    }
}

fn put_cache_row(tx: &rusqlite::Transaction<'_>, c: &CacheRow) -> Result<()> {
    tx.execute(
        "INSERT OR REPLACE INTO summaries (sha256, model, prompt_version, length, lang, record, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![c.sha256, c.model, c.prompt_version, c.length, c.lang, c.record, c.updated_at],
    )?;
    Ok(())
}

fn put_article(tx: &rusqlite::Transaction<'_>, record: &ArticleRecord) -> Result<()> {
    let status = serde_json::to_value(record.status)?.as_str().unwrap_or("failed").to_string();
    tx.execute(
        "INSERT OR REPLACE INTO articles (id, sha256, status, record, updated_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![record.id, record.sha256, status, serde_json::to_string(record)?, record.updated_at],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::job::record::{Status, Tokens};
    use crate::text::lang::Lang;
    use std::collections::BTreeMap;

    fn summary(ok: bool) -> SummaryRecord {
        SummaryRecord {
            text: ok.then(|| "A summary.".to_string()),
            status: if ok { Status::Ok } else { Status::Failed },
            error: None,
            lang_detected: Some(Lang::En),
            model: "m".into(),
            prompt_version: "p".into(),
            length: "s3".into(),
            tokens: Tokens::default(),
            seconds: 0.0,
            flags: vec![],
            unsupported_numbers: vec![],
            attempts: vec![],
            chunks: 1,
            levels: 1,
            structure: None,
            support: None,
            repaired: None,
            dropped: None,
            dropped_sentences: vec![],
            lexical: None,
        }
    }

    #[test]
    fn caches_ok_summaries_only_and_keeps_one_row_per_id() {
        let dir = tempfile::tempdir().unwrap();
        let mut st = State::open(dir.path()).unwrap();
        let mut summaries = BTreeMap::new();
        summaries.insert(Lang::En, summary(true));
        summaries.insert(Lang::Es, summary(false));
        let rec = ArticleRecord {
            schema_version: 1,
            id: "a.txt".into(),
            source: "in/a.txt".into(),
            input_id: None,
            sha256: Some("abc".into()),
            title: None,
            source_lang: None,
            declared_lang: None,
            story_id: None,
            status: Status::Failed,
            error: None,
            truncated: false,
            warnings: vec![],
            summaries,
            translation: None,
            updated_at: "now".into(),
        };
        st.commit(&rec, "s3").unwrap();
        st.commit(&rec, "s3").unwrap();
        let key = Key { sha256: "abc", model: "m", prompt_version: "p", length: "s3" };
        assert!(st.cached::<SummaryRecord>(&key, "en").unwrap().is_some());
        assert!(st.cached::<SummaryRecord>(&key, "es").unwrap().is_none());
        assert!(st.cached::<SummaryRecord>(&Key { length: "s2", ..key.clone() }, "en").unwrap().is_none());
        assert_eq!(st.index_lines().unwrap().len(), 1);
        drop(st);
        let st = State::open(dir.path()).unwrap();
        assert_eq!(st.article("a.txt").unwrap().unwrap(), rec);
    }
}
