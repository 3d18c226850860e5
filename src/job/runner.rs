//! A whole run over an output folder: lock, plan (what is new, changed, or already done), generate in
//! parallel with one shared model, write outputs, record state, rebuild index.jsonl.
//!
//! Order of writes for an article: its `.json`/`.md` files (atomic), then its state rows (one
//! transaction), then (now and then, and at the end) `index.jsonl` from the state. A kill between any two
//! steps leaves valid files, and the next run redoes only what the state does not record.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rayon::prelude::*;

use crate::backend::generator::Generator;
use crate::job::input::{self, Article, Item, Rejected};
use crate::job::lock::Lock;
use crate::job::output::{self, Formats};
use crate::job::progress::{ArticleEvent, Reporter, RunReport};
use crate::job::record::{now_rfc3339, ArticleRecord, Status, SummaryRecord, Translation, SCHEMA_VERSION};
use crate::job::state::{Key, State};
use crate::summarize::pipeline::{self, Settings};
use crate::summarize::prompt::{PROMPT_VERSION, TRANSLATE_PROMPT_VERSION};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub inputs: Vec<PathBuf>,
    pub out: PathBuf,
    pub langs: Vec<String>,
    pub task: Task,
    pub formats: Formats,
    pub force: bool,
    /// Articles in flight at once; `None`: the generator's `default_jobs`.
    pub jobs: Option<usize>,
    pub max_bytes: u64,
    /// `--shard K/N`: only the articles whose content hash falls in shard K (`crate::job::shard`).
    pub shard: Option<crate::job::shard::ShardSpec>,
}

/// What a run makes of each article.
#[derive(Debug, Clone)]
pub enum Task {
    /// Summaries in every language of `RunOptions::langs`.
    Summarize(Settings),
    /// A translation into `Settings::to` (`polysum translate`; `langs` is `[to]`).
    Translate(crate::translate::Settings),
}

impl Task {
    fn name(&self) -> &'static str {
        match self {
            Task::Summarize(_) => "summarize",
            Task::Translate(_) => "translate",
        }
    }

    fn prompt_version(&self) -> &'static str {
        match self {
            Task::Summarize(_) => PROMPT_VERSION,
            Task::Translate(_) => TRANSLATE_PROMPT_VERSION,
        }
    }

    /// The state key's `length` column: everything besides model and prompt that changes the output.
    fn state_key(&self) -> String {
        match self {
            Task::Summarize(s) => {
                let ctx = s.max_context.map(|c| format!("@{c}")).unwrap_or_default();
                format!("{}{}{ctx}", s.length.key(), s.strategy.key_suffix())
            }
            Task::Translate(t) => t.state_key(),
        }
    }
}

/// A folder holds the outputs of one kind of task: a translation's `<relpath>.json` would replace the
/// summary's. The first run records its kind in `.polysum/task`; later runs of another kind are refused.
fn check_task_kind(out: &std::path::Path, task: &Task) -> Result<()> {
    let meta = out.join(crate::job::META_DIR);
    let marker = meta.join("task");
    let recorded = match std::fs::read_to_string(&marker) {
        Ok(kind) => Some(kind.trim().to_string()),
        // Folders from before the marker existed hold summaries.
        Err(_) if meta.join("state.sqlite").exists() => Some("summarize".to_string()),
        Err(_) => None,
    };
    match recorded {
        Some(kind) if kind != task.name() => Err(anyhow::Error::new(crate::summarize::UsageError(format!(
            "{} holds the outputs of `polysum {kind}`: write the {} outputs to another folder",
            out.display(),
            task.name()
        )))),
        Some(_) if marker.exists() => Ok(()),
        _ => {
            std::fs::create_dir_all(&meta)?;
            output::atomic_write(&marker, format!("{}\n", task.name()).as_bytes())
        }
    }
}

/// How the model is obtained: its id is needed before loading (to find finished work), and loading
/// happens only when there is something to generate.
pub struct ModelSource<'a> {
    pub model_id: String,
    pub load: Box<dyn FnOnce() -> Result<Box<dyn Generator + 'a>> + 'a>,
}

/// An error that ends the run (output folder or state unusable, disk full). Article problems never are.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DiskFull(pub String);

struct Work {
    article: Article,
    /// Languages to generate.
    todo: Vec<String>,
    /// Summaries reused from the state.
    cached: BTreeMap<String, SummaryRecord>,
}

/// Run over `opts.inputs` into `opts.out`. Errors: `LockError` (another run holds the folder), `DiskFull`,
/// or anything else fatal; article-level problems are counted in the report instead.
pub fn run(opts: &RunOptions, model: ModelSource<'_>, reporter: &Reporter) -> Result<RunReport> {
    let t0 = Instant::now();
    input::check_out_dir(&opts.inputs, &opts.out).map_err(|e| anyhow::Error::new(crate::summarize::UsageError(e)))?;
    std::fs::create_dir_all(&opts.out).with_context(|| format!("creating the output folder {}", opts.out.display()))?;
    let _lock = Lock::acquire(&opts.out)?;
    check_task_kind(&opts.out, &opts.task)?;
    let result = run_locked(opts, model, reporter, t0);
    result.map_err(|e| {
        if output::is_disk_full_in(&e, &opts.out) {
            anyhow::Error::new(DiskFull(format!(
                "no space left on the device while writing to {} ({e:#}). Results finished so far are kept and valid: \
free some space and run again to finish the rest",
                opts.out.display()
            )))
        } else {
            e
        }
    })
}

fn run_locked(opts: &RunOptions, model: ModelSource<'_>, reporter: &Reporter, t0: Instant) -> Result<RunReport> {
    let out = opts.out.as_path();
    let stale = output::remove_stale_temp_files(out);
    if stale > 0 {
        reporter.info(&format!("removed {stale} temporary files left by an interrupted run"));
    }
    let mut state = State::open(out)?;
    let mut report = RunReport::default();

    let (sources, ignored) = input::discover(&opts.inputs, Some(out))?;
    for ig in &ignored {
        reporter.warn(&format!("skipping {}: {}", ig.path.display(), ig.reason));
    }
    report.ignored = ignored.len();

    // Plan: read every source, settle what needs no model now.
    let length_key = opts.task.state_key();
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
            // Every shard reads every input (so duplicate names are found the same way in each), and keeps
            // only its own articles.
            let (rel, sha) = match &item {
                Ok(a) => (a.rel.as_str(), Some(a.sha256.as_str())),
                Err(r) => (r.rel.as_str(), r.sha256.as_deref()),
            };
            if opts.shard.is_some_and(|sh| !sh.owns_record(sha, rel)) {
                let (rel, source) = match &item {
                    Ok(a) => (a.rel.clone(), a.source.clone()),
                    Err(r) => (r.rel.clone(), r.source.clone()),
                };
                seen.insert(rel, source);
                report.other_shards += 1;
                continue;
            }
            match item {
                Err(rej) => {
                    seen.insert(rej.rel.clone(), rej.source.clone());
                    let record = rejected_record(&rej);
                    let stored = state.article(&record.id)?;
                    let unchanged = stored.as_ref().is_some_and(|s| same_content(s, &record))
                        && output::outputs_intact(out, &record, opts.formats);
                    if !unchanged {
                        output::write_article(out, &record, opts.formats)?;
                        state.commit(&record, &length_key)?;
                    }
                    report.failed += 1;
                    reporter.article(
                        &ArticleEvent {
                            id: record.id.clone(),
                            status: "failed",
                            langs: vec![],
                            error: record.error.clone(),
                            seconds: 0.0,
                            generated_tokens: 0,
                        },
                        false,
                    );
                }
                Ok(article) => {
                    seen.insert(article.rel.clone(), article.source.clone());
                    for w in &article.warnings {
                        reporter.warn(&format!("{}: {w}", article.source));
                    }
                    let key = Key {
                        sha256: &article.sha256,
                        model: &model.model_id,
                        prompt_version: opts.task.prompt_version(),
                        length: &length_key,
                    };
                    let mut cached = BTreeMap::new();
                    let mut cached_translation: Option<Translation> = None;
                    if !opts.force {
                        match &opts.task {
                            Task::Summarize(_) => {
                                for l in &opts.langs {
                                    if let Some(s) = state.cached(&key, l)? {
                                        cached.insert(l.clone(), s);
                                    }
                                }
                            }
                            Task::Translate(t) => cached_translation = state.cached(&key, &t.to)?,
                        }
                    }
                    let todo: Vec<String> = opts.langs.iter().filter(|l| !cached.contains_key(*l)).cloned().collect();
                    let finished = match opts.task {
                        Task::Summarize(_) => todo.is_empty(),
                        Task::Translate(_) => cached_translation.is_some(),
                    };
                    if !finished {
                        work.push(Work { article, todo, cached });
                        continue;
                    }
                    // Everything is in the state: skip, or rebuild missing/corrupt outputs without the model.
                    let stored = state.article(&article.rel)?;
                    let fresh = build_record(&article, None, None, cached, cached_translation);
                    let intact = stored
                        .as_ref()
                        .is_some_and(|s| same_content(s, &fresh) && output::outputs_intact(out, s, opts.formats));
                    if intact {
                        report.skipped += 1;
                    } else {
                        output::write_article(out, &fresh, opts.formats)?;
                        state.commit(&fresh, &length_key)?;
                        report.done += 1;
                        reporter.article(&event(&fresh, "restored", 0.0, 0), false);
                    }
                }
            }
        }
    }
    let index_lines = state.index_lines()?;
    output::write_index(out, &index_lines)?;

    if work.is_empty() {
        report.wall_seconds = t0.elapsed().as_secs_f64();
        return Ok(report);
    }

    reporter.info(&format!("{} articles to {}; loading the model {}", work.len(), opts.task.name(), model.model_id));
    let gen = (model.load)()?;
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
        let (record, generated_tokens) = match &opts.task {
            Task::Summarize(settings) => {
                let s = pipeline::summarize(&w.article, &w.todo, settings, gen.as_ref());
                let mut summaries = w.cached.clone();
                summaries.extend(s.summaries);
                (build_record(&w.article, s.source_lang, Some(s.truncated), summaries, None), s.generated_tokens)
            }
            Task::Translate(settings) => {
                let t = crate::translate::translate_article(&w.article, settings, gen.as_ref());
                (
                    build_record(&w.article, t.source_lang, None, BTreeMap::new(), Some(t.translation)),
                    t.generated_tokens,
                )
            }
        };
        output::write_article(out, &record, opts.formats)?;
        {
            let mut st = state.lock().unwrap();
            st.commit(&record, &length_key)?;
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
    // The index always ends the run matching the state, even when the run stops on an error.
    let st = state.into_inner().unwrap();
    let index = st.index_lines().and_then(|lines| output::write_index(out, &lines));
    if let Some(e) = fatal.into_inner().unwrap() {
        return Err(e);
    }
    index?;
    report.wall_seconds = t0.elapsed().as_secs_f64();
    Ok(report)
}

fn event(r: &ArticleRecord, status: &'static str, seconds: f64, tokens: usize) -> ArticleEvent {
    ArticleEvent {
        id: r.id.clone(),
        status,
        langs: r
            .summaries
            .iter()
            .chain(r.translation.iter().map(|t| (&t.lang, &t.record)))
            .map(|(l, s)| (l.clone(), if s.is_ok() { "ok" } else { "failed" }, s.error.clone()))
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

fn build_record(
    a: &Article,
    source_lang: Option<String>,
    truncated: Option<bool>,
    summaries: BTreeMap<String, SummaryRecord>,
    translation: Option<Translation>,
) -> ArticleRecord {
    let truncated =
        truncated.unwrap_or(false) || summaries.values().any(|s| s.flags.iter().any(|f| f == "truncated_input"));
    let source_lang = source_lang.or_else(|| crate::text::lang::detect(&a.text)).or_else(|| a.declared_lang.clone());
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
