//! `polysum summarize`: English and Spanish (or other) summaries of every article, as a task of the batch
//! framework (`crate::job`).
//!
//! article → its text fitted to the context (`mapreduce` for long articles) → prompts (`prompt`) →
//! generation → cleaned and checked summaries (`guard`, the language check) → retries with stronger
//! strategies (`pipeline`).

pub(crate) mod ground;
pub(crate) mod guard;
pub(crate) mod mapreduce;
pub(crate) mod pipeline;
pub(crate) mod prompt;

use anyhow::Result;

use crate::backend::Generator;
use crate::job::input::Article;
use crate::job::record::SummaryRecord;
use crate::job::task::{Cache, Results, Task, TaskKind};
use crate::text::lang::Lang;

/// Summaries of every article in `langs`.
#[derive(Debug, Clone)]
pub(crate) struct Summarize {
    pub(crate) langs: Vec<Lang>,
    pub(crate) settings: pipeline::Settings,
}

impl Task for Summarize {
    fn kind(&self) -> TaskKind {
        TaskKind::Summarize
    }

    fn prompt_version(&self) -> &'static str {
        prompt::PROMPT_VERSION
    }

    fn settings_key(&self) -> String {
        let s = &self.settings;
        let ctx = s.max_context.map(|c| format!("@{c}")).unwrap_or_default();
        format!(
            "{}{}{}{ctx}{}{}",
            s.length.key(),
            s.strategy.key_suffix(),
            s.grounding.key_suffix(),
            s.verify.key_suffix(),
            crate::text::mbr::key_suffix(s.candidates)
        )
    }

    fn cached(&self, cache: &Cache<'_>) -> Result<(Results, bool)> {
        let mut results = Results::default();
        for &l in &self.langs {
            if let Some(s) = cache.get::<SummaryRecord>(l)? {
                results.summaries.insert(l, s);
            }
        }
        let finished = results.summaries.len() == self.langs.len();
        Ok((results, finished))
    }

    fn run(&self, article: &Article, cached: Results, gen: &dyn Generator) -> Results {
        let todo: Vec<Lang> = self.langs.iter().filter(|l| !cached.summaries.contains_key(*l)).copied().collect();
        let s = pipeline::summarize(article, &todo, &self.settings, gen);
        let mut summaries = cached.summaries;
        summaries.extend(s.summaries);
        Results {
            source_lang: s.source_lang,
            truncated: s.truncated,
            summaries,
            translation: None,
            generated_tokens: s.generated_tokens,
        }
    }
}
