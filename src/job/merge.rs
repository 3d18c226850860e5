//! `polysum merge DIR... --out DIR`: combine the output folders of sharded runs into one, as if one run
//! had written it: every article's `.json`/`.md` copied (atomically), the records and cached summaries
//! put into the destination's state, and `index.jsonl` rebuilt from it (ordered by id, like every run's).
//!
//! An article id found in two folders with different content hashes is a conflict: nothing is written
//! and the command fails. The same id with the same hash (a shard run twice, or a folder merged again)
//! keeps the record with status ok, else the newest. The destination may already hold results: they
//! take part like one more folder. Each folder is locked while it is read, and the destination while it
//! is written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::job::input::output_path;
use crate::job::lock::Lock;
use crate::job::output;
use crate::job::record::{ArticleRecord, Status};
use crate::job::state::{recorded_task, State};

/// What a merge did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct MergeReport {
    pub(crate) articles: usize,
    pub(crate) files: usize,
}

fn records_of(dir: &Path) -> Result<Vec<ArticleRecord>> {
    let st = State::open(dir)?;
    st.index_lines()?
        .iter()
        .map(|l| {
            serde_json::from_str::<ArticleRecord>(l)
                .with_context(|| format!("a record in {} that does not parse", dir.display()))
        })
        .collect()
}

/// Merge `dirs` into `out`. Every folder must hold the outputs of one task (`.polysum/task`); the
/// summary cache rows are copied with their keys as stored (strategy and context included), so a later
/// run on `out` reuses exactly the work it would have reused in the shard folders.
pub(crate) fn merge(dirs: &[PathBuf], out: &Path) -> Result<MergeReport> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let out_canon = out.canonicalize()?;
    let _out_lock = Lock::acquire(out)?;
    // id → (record, folder it comes from).
    let mut chosen: BTreeMap<String, (ArticleRecord, PathBuf)> = BTreeMap::new();
    let mut cache_rows = Vec::new();
    let mut sources: Vec<PathBuf> = vec![out.to_path_buf()];
    for d in dirs {
        if d.canonicalize().ok().as_deref() == Some(out_canon.as_path()) {
            continue;
        }
        sources.push(d.clone());
    }
    let mut task: Option<(String, PathBuf)> = None;
    for (i, dir) in sources.iter().enumerate() {
        let _lock = if i == 0 { None } else { Some(Lock::acquire(dir)?) };
        if let Some(kind) = recorded_task(dir) {
            match &task {
                Some((have, from)) if *have != kind => bail!(
                    "{} holds the outputs of `polysum {have}` and {} those of `polysum {kind}`: they cannot be merged; \
nothing was merged",
                    from.display(),
                    dir.display()
                ),
                Some(_) => {}
                None => task = Some((kind, dir.clone())),
            }
        }
        for rec in records_of(dir)? {
            let take = match chosen.get(&rec.id) {
                Some((have, from)) if have.sha256 != rec.sha256 => bail!(
                    "article {:?} is in {} with content hash {} and in {} with content hash {}: these are different \
                    articles \
under one name (were the shards run on different inputs?); nothing was merged",
                    rec.id,
                    from.display(),
                    have.sha256.as_deref().unwrap_or("none"),
                    dir.display(),
                    rec.sha256.as_deref().unwrap_or("none")
                ),
                Some((have, _)) => prefer(&rec, have),
                None => true,
            };
            if take {
                chosen.insert(rec.id.clone(), (rec, dir.clone()));
            }
        }
        if i > 0 {
            cache_rows.extend(State::open(dir)?.cache_rows()?);
        }
    }

    let mut report = MergeReport { articles: chosen.len(), files: 0 };
    if let Some((kind, _)) = &task {
        let marker = out.join(crate::job::META_DIR).join("task");
        if !marker.exists() {
            output::atomic_write(&marker, format!("{kind}\n").as_bytes())?;
        }
    }
    let mut state = State::open(out)?;
    for (rec, from) in chosen.values() {
        if from.as_path() != out {
            for suffix in output::article_suffixes(rec) {
                let src = output_path(from, &rec.id, &suffix)?;
                if src.is_file() {
                    let bytes = std::fs::read(&src).with_context(|| format!("reading {}", src.display()))?;
                    output::atomic_write(&output_path(out, &rec.id, &suffix)?, &bytes)?;
                    report.files += 1;
                }
            }
        }
    }
    let records: Vec<&ArticleRecord> = chosen.values().map(|(r, _)| r).collect();
    state.import(&records, &cache_rows)?;
    output::write_index(out, &state.index_lines()?)?;
    Ok(report)
}

/// Whether `new` should replace `have` (same id, same content): ok beats failed, then the newer one.
fn prefer(new: &ArticleRecord, have: &ArticleRecord) -> bool {
    match (new.status, have.status) {
        (Status::Ok, Status::Failed) => true,
        (Status::Failed, Status::Ok) => false,
        _ => new.updated_at > have.updated_at,
    }
}
