//! What a run makes of each article, as a trait the runner drives: `summarize` and `translate` implement
//! it, and the runner (inputs, plan, state, lock, outputs, progress) is the same for both.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::backend::Generator;
use crate::job::input::Article;
use crate::job::record::{SummaryRecord, Translation};
use crate::job::state::{Key, State};
use crate::text::lang::Lang;

/// The kinds of output a folder can hold; the first run records its kind in `.polysum/task`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TaskKind {
    Summarize,
    Translate,
}

impl TaskKind {
    /// The subcommand's name, as recorded in the output folder.
    pub(crate) fn name(self) -> &'static str {
        match self {
            TaskKind::Summarize => "summarize",
            TaskKind::Translate => "translate",
        }
    }
}

/// An article's results: what the state held, or what a task produced.
#[derive(Debug, Clone, Default)]
pub(crate) struct Results {
    /// The article's language, as the task found it (`None`: the runner detects it).
    pub(crate) source_lang: Option<Lang>,
    /// The input was cut to fit (`--max-input-tokens`).
    pub(crate) truncated: bool,
    /// Summaries by language code.
    pub(crate) summaries: BTreeMap<Lang, SummaryRecord>,
    pub(crate) translation: Option<Translation>,
    /// Tokens generated for these results in this run.
    pub(crate) generated_tokens: usize,
}

/// Finished work in the state, for one article under one model, prompt version and settings.
pub(crate) struct Cache<'a> {
    pub(crate) state: &'a State,
    pub(crate) key: Key<'a>,
}

impl Cache<'_> {
    /// The ok result stored for `lang`, if any.
    pub(crate) fn get<T: serde::de::DeserializeOwned>(&self, lang: Lang) -> Result<Option<T>> {
        self.state.cached(&self.key, lang.code())
    }
}

/// One kind of per-article work.
pub(crate) trait Task: Sync {
    fn kind(&self) -> TaskKind;
    /// Part of the state key: a new version redoes the work.
    fn prompt_version(&self) -> &'static str;
    /// The state key's settings column: everything besides model and prompt version that changes the output.
    fn settings_key(&self) -> String;
    /// What the state already holds for an article, and whether that is all of it.
    fn cached(&self, cache: &Cache<'_>) -> Result<(Results, bool)>;
    /// Generate what `cached` lacks; the results include `cached`. Article problems are recorded in the
    /// results (a failed summary), never returned as errors.
    fn run(&self, article: &Article, cached: Results, gen: &dyn Generator) -> Results;
}
