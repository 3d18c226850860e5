//! Back-translation: the Spanish summary translated to English and the English one to Spanish, by the
//! model (any backend), in one batched call per article, with the same translation prompt that `summarize`
//! translates its summaries with.

use anyhow::Result;

use crate::backend::{Generator, Request};
use crate::prompt;
use crate::text::clean;
use crate::text::lang::Lang;

/// One text to translate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Job {
    pub(crate) text: String,
    pub(crate) from: Lang,
    pub(crate) to: Lang,
}

/// Most output tokens per translation: a 3–5 sentence summary needs ~150; the cap keeps a runaway row short.
const MAX_TRANSLATION_TOKENS: usize = 400;

/// The translations of `jobs`, in order, from one batched call.
pub(crate) fn translate(gen: &dyn Generator, jobs: &[Job]) -> Result<Vec<String>> {
    let requests: Vec<Request> = jobs
        .iter()
        .map(|j| {
            let budget =
                crate::prompt::translation_tokens(gen.count_tokens_or_estimate(&j.text)).min(MAX_TRANSLATION_TOKENS);
            let mut request = Request::greedy(prompt::translate(&j.text, j.to).chat(), budget);
            request.stop_strings = prompt::stop_strings();
            request
        })
        .collect();
    let labels = prompt::translation_labels();
    Ok(gen.generate(&requests)?.0.into_iter().map(|g| clean::clean(&g.text, &labels).0).collect())
}
