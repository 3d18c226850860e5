//! A whole run over an output folder: lock, plan (what is new, changed, or already done), execute (generate
//! in parallel with one shared model), write outputs, record state, rebuild index.jsonl.
//!
//! Order of writes for an article: its `.json`/`.md` files (atomic), then its state rows (one
//! transaction), then (now and then, and at the end) `index.jsonl` from the state. A kill between any two
//! steps leaves valid files, and the next run redoes only what the state does not record.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rayon::prelude::*;

use crate::backend::{Backend, Generator};
use crate::error::UsageError;
use crate::job::input::{self, Article, Item, Rejected};
use crate::job::lock::Lock;
use crate::job::output::{self, Formats};
use crate::job::progress::{ArticleEvent, Reporter, RunReport};
use crate::job::record::{now_rfc3339, ArticleRecord, Flag, Status, SCHEMA_VERSION};
use crate::job::shard::ShardSpec;
use crate::job::state::{Key, State};
use crate::job::task::{Cache, Results, Task};

/// What a run reads, where it writes, and how.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    pub(crate) inputs: Vec<PathBuf>,
    pub(crate) out: PathBuf,
    pub(crate) formats: Formats,
    /// Redo every article, even those already done.
    pub(crate) force: bool,
    /// Articles in flight at once; `None`: the generator's `default_jobs`.
    pub(crate) jobs: Option<usize>,
    /// Input files larger than this are rejected.
    pub(crate) max_bytes: u64,
    /// `--shard K/N`: only the articles whose content hash falls in shard K.
    pub(crate) shard: Option<ShardSpec>,
}

/// An error that ends the run because the disk is full. Article problems never end a run.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct DiskFull(pub(crate) String);

/// An article that needs the model, with what the state already holds for it.
struct Work {
    article: Article,
    cached: Results,
}

/// Run `task` over `opts.inputs` into `opts.out`. The output folder's lock is taken first, so a run that
/// finds another one working gives up at once (`LockError::Held`), before the model is resolved or pulled.
/// Errors: `LockError`, `UsageError` (a folder of another task's outputs), `DiskFull`, or anything else
/// fatal; article-level problems are counted in the report instead.
pub(crate) fn run(opts: &RunOptions, task: &dyn Task, backend: &Backend, reporter: &Reporter) -> Result<RunReport> {
    let t0 = Instant::now();
    input::check_out_dir(&opts.inputs, &opts.out).map_err(|e| anyhow::Error::new(UsageError(e)))?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating the output folder {}", opts.out.display()))?;
    let _lock = Lock::acquire(&opts.out)?;
    check_task_kind(&opts.out, task)?;
    let result = (|| {
        let stale = output::remove_stale_temp_files(&opts.out);
        if stale > 0 {
            reporter.info(&format!("removed {stale} temporary files left by an interrupted run"));
        }
        let mut state = State::open(&opts.out)?;
        let model_id = backend.model_id()?;
        let mut report = RunReport::default();
        let work = plan(opts, task, &model_id, &mut state, &mut report, reporter)?;
        if !work.is_empty() {
            reporter.info(&format!("{} articles to {}; loading the model {model_id}", work.len(), task.kind().name()));
            let gen = backend.load()?;
            execute(opts, task, gen.as_ref(), work, state, &mut report, reporter)?;
        }
        report.wall_seconds = t0.elapsed().as_secs_f64();
        Ok(report)
    })();
    result.map_err(|e| {
        if output::is_disk_full_in(&e, &opts.out) {
            anyhow::Error::new(DiskFull(format!(
                "no space left on the device while writing to {} ({e:#}). Results finished so far are kept and \
valid: free some space and run again to finish the rest",
                opts.out.display()
            )))
        } else {
            e
        }
    })
}

/// A folder holds the outputs of one kind of task: a translation's `<relpath>.json` would replace the
/// summary's. The first run records its kind in `.polysum/task`; later runs of another kind are refused.
fn check_task_kind(out: &Path, task: &dyn Task) -> Result<()> {
    let name = task.kind().name();
    let meta = out.join(crate::job::META_DIR);
    let marker = meta.join("task");
    let recorded = match std::fs::read_to_string(&marker) {
        Ok(kind) => Some(kind.trim().to_string()),
        // Folders from before the marker existed hold summaries.
        Err(_) if meta.join("state.sqlite").exists() => Some("summarize".to_string()),
        Err(_) => None,
    };
    match recorded {
        Some(kind) if kind != name => Err(anyhow::Error::new(UsageError(format!(
            "{} holds the outputs of `polysum {kind}`: write the {name} outputs to another folder",
            out.display()
        )))),
        Some(_) if marker.exists() => Ok(()),
        _ => {
            std::fs::create_dir_all(&meta)?;
            output::atomic_write(&marker, format!("{name}\n").as_bytes())
        }
    }
}

/// Read every input and settle what needs no model: rejected inputs are recorded, finished articles skipped
/// (or their missing outputs rebuilt from the state), and `index.jsonl` written. Returns what is left.
fn plan(
    opts: &RunOptions,
    task: &dyn Task,
    model_id: &str,
    state: &mut State,
    report: &mut RunReport,
    reporter: &Reporter,
) -> Result<Vec<Work>> {
    let out = opts.out.as_path();
    let (sources, ignored) = input::discover(&opts.inputs, Some(out))?;
    for ig in &ignored {
        reporter.warn(&format!("skipping {}: {}", ig.path.display(), ig.reason));
    }
    report.ignored = ignored.len();
    let settings_key = task.settings_key();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut work: Vec<Work> = Vec::new();
    for src in &sources {
        for item in input::read_source(src, opts.max_bytes) {
            let item: Item = match item {
                Ok(a) if seen.contains_key(&a.rel) => Err(Rejected {
                    reason: format!("duplicate output name {:?}: {} has it already", a.rel, seen[&a.rel]),
                    rel: format!("{}-duplicate", a.rel),
                    source: a.source,
                    sha256: Some(a.sha256),
                }),
                other => other,
            };
            let (rel, source, sha) = match &item {
                Ok(a) => (&a.rel, &a.source, Some(a.sha256.as_str())),
                Err(r) => (&r.rel, &r.source, r.sha256.as_deref()),
            };
            seen.insert(rel.clone(), source.clone());
            // Every shard reads every input (so duplicate names are found the same way in each), and keeps
            // only its own articles.
            if opts.shard.is_some_and(|sh| !sh.owns_record(sha, rel)) {
                report.other_shards += 1;
                continue;
            }
            match item {
                Err(rejected) => {
                    let record = rejected_record(&rejected);
                    let stored = state.article(&record.id)?;
                    let unchanged = stored.as_ref().is_some_and(|s| same_content(s, &record))
                        && output::outputs_intact(out, &record, opts.formats);
                    if !unchanged {
                        output::write_article(out, &record, opts.formats)?;
                        state.commit(&record, &settings_key)?;
                    }
                    report.failed += 1;
                    reporter.article(&event(&record, "failed", 0.0, 0), false);
                }
                Ok(article) => {
                    for w in &article.warnings {
                        reporter.warn(&format!("{}: {w}", article.source));
                    }
                    let key = Key {
                        sha256: &article.sha256,
                        model: model_id,
                        prompt_version: task.prompt_version(),
                        length: &settings_key,
                    };
                    let (cached, finished) =
                        if opts.force { (Results::default(), false) } else { task.cached(&Cache { state, key })? };
                    if !finished {
                        work.push(Work { article, cached });
                        continue;
                    }
                    // Everything is in the state: skip, or rebuild missing/corrupt outputs without the model.
                    let stored = state.article(&article.rel)?;
                    let fresh = build_record(&article, cached);
                    let intact = stored
                        .as_ref()
                        .is_some_and(|s| same_content(s, &fresh) && output::outputs_intact(out, s, opts.formats));
                    if intact {
                        report.skipped += 1;
                    } else {
                        output::write_article(out, &fresh, opts.formats)?;
                        state.commit(&fresh, &settings_key)?;
                        report.done += 1;
                        reporter.article(&event(&fresh, "restored", 0.0, 0), false);
                    }
                }
            }
        }
    }
    output::write_index(out, &state.index_lines()?)?;
    Ok(work)
}

/// Run the model over `work`, `--jobs` articles in flight, each article's outputs and state written as
/// soon as it is done. The index is rewritten now and then, and always at the end, even on an error.
fn execute(
    opts: &RunOptions,
    task: &dyn Task,
    gen: &dyn Generator,
    work: Vec<Work>,
    state: State,
    report: &mut RunReport,
    reporter: &Reporter,
) -> Result<()> {
    let out = opts.out.as_path();
    let settings_key = task.settings_key();
    let jobs = opts.jobs.unwrap_or_else(|| gen.default_jobs()).max(1);
    reporter.start_work(work.len());
    let t_work = Instant::now();

    let state = Mutex::new(state);
    let stop = AtomicBool::new(false);
    let fatal: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    let last_index = Mutex::new(Instant::now());
    let totals = Mutex::new((0usize, 0usize, 0usize)); // done, failed, tokens

    let do_one = |w: &Work| -> Result<()> {
        let t = Instant::now();
        let results = task.run(&w.article, w.cached.clone(), gen);
        // A dead backend fails every article the same way: stop the run, and leave this article unrecorded
        // so that the next run does it.
        if let Some(why) = gen.unavailable() {
            anyhow::bail!("{why}; the articles finished so far are saved: run again when the server answers");
        }
        let generated_tokens = results.generated_tokens;
        let record = build_record(&w.article, results);
        output::write_article(out, &record, opts.formats)?;
        {
            let mut st = state.lock().unwrap();
            st.commit(&record, &settings_key)?;
            let mut last = last_index.lock().unwrap();
            if last.elapsed() >= Duration::from_secs(2) {
                output::write_index(out, &st.index_lines()?)?;
                *last = Instant::now();
            }
        }
        let ok = record.status == Status::Ok;
        {
            let mut tot = totals.lock().unwrap();
            if ok {
                tot.0 += 1
            } else {
                tot.1 += 1
            }
            tot.2 += generated_tokens;
        }
        reporter.article(
            &event(&record, if ok { "ok" } else { "failed" }, t.elapsed().as_secs_f64(), generated_tokens),
            true,
        );
        Ok(())
    };
    let each = |w: &Work| {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        if let Err(e) = do_one(w) {
            stop.store(true, Ordering::SeqCst);
            let mut f = fatal.lock().unwrap();
            if f.is_none() {
                *f = Some(e.context(format!("while saving {}", w.article.rel)));
            }
        }
    };
    if jobs == 1 {
        work.iter().for_each(each);
    } else {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .thread_name(|i| format!("polysum-article-{i}"))
            .build()?;
        pool.install(|| work.par_iter().for_each(each));
    }

    let (done, failed, tokens) = *totals.lock().unwrap();
    report.done += done;
    report.failed += failed;
    report.generated_tokens = tokens;
    report.generate_wall_seconds = t_work.elapsed().as_secs_f64();
    let st = state.into_inner().unwrap();
    let index = st.index_lines().and_then(|lines| output::write_index(out, &lines));
    if let Some(e) = fatal.into_inner().unwrap() {
        return Err(e);
    }
    index
}

fn event(r: &ArticleRecord, status: &'static str, seconds: f64, tokens: usize) -> ArticleEvent {
    ArticleEvent {
        id: r.id.clone(),
        status,
        langs: r
            .summaries
            .iter()
            .chain(r.translation.iter().map(|t| (&t.lang, &t.record)))
            .map(|(l, s)| (l.to_string(), if s.is_ok() { "ok" } else { "failed" }, s.error.clone()))
            .collect(),
        error: r.error.clone(),
        seconds,
        generated_tokens: tokens,
    }
}

/// Records equal in everything but the time they were written.
fn same_content(a: &ArticleRecord, b: &ArticleRecord) -> bool {
    let mut b = b.clone();
    b.updated_at = a.updated_at.clone();
    *a == b
}

fn build_record(a: &Article, results: Results) -> ArticleRecord {
    let Results { source_lang, truncated, summaries, translation, .. } = results;
    let truncated = truncated || summaries.values().any(|s| s.flags.contains(&Flag::TruncatedInput));
    let source_lang =
        source_lang.or_else(|| crate::text::lang::detect(&a.text)).or_else(|| a.declared_lang.as_deref()?.parse().ok());
    let status = match &translation {
        Some(t) => t.record.status,
        None if !summaries.is_empty() && summaries.values().all(|s| s.is_ok()) => Status::Ok,
        None => Status::Failed,
    };
    ArticleRecord {
        schema_version: SCHEMA_VERSION,
        id: a.rel.clone(),
        source: a.source.clone(),
        input_id: a.id.clone(),
        sha256: Some(a.sha256.clone()),
        title: Some(a.title.clone()),
        source_lang,
        declared_lang: a.declared_lang.clone(),
        story_id: a.story_id.clone(),
        status,
        error: None,
        truncated,
        warnings: a.warnings.clone(),
        summaries,
        translation,
        updated_at: now_rfc3339(),
    }
}

fn rejected_record(r: &Rejected) -> ArticleRecord {
    ArticleRecord {
        schema_version: SCHEMA_VERSION,
        id: r.rel.clone(),
        source: r.source.clone(),
        input_id: None,
        sha256: r.sha256.clone(),
        title: None,
        source_lang: None,
        declared_lang: None,
        story_id: None,
        status: Status::Failed,
        error: Some(r.reason.clone()),
        truncated: false,
        warnings: vec![],
        summaries: BTreeMap::new(),
        translation: None,
        updated_at: now_rfc3339(),
    }
}
