//! The engine: a loaded model with its tokenizer and chat template, and batched generation.
//!
//! `Engine` is `Sync`: load it once and call `generate` from many threads; every call owns its KV cache.
//! A call takes several requests at once and runs them as one batch (rows of different lengths are padded
//! and masked). When all requests of a call start with the same tokens (the EN and ES prompts of one
//! article share the article), that prefix is computed once and its KV cache copied to every row. A greedy
//! row decoding alone on the CPU takes prompt-lookup drafts (`crate::engine::lookup`): same tokens, fewer
//! steps.

use std::path::Path;
use std::time::Instant;

use anyhow::{bail, ensure, Context, Result};
use candle_core::{Device, Tensor};

use crate::engine::chat::{ChatTemplate, Message};
use crate::engine::kv_cache::KvCache;
use crate::engine::lookup::{DraftCounts, Lookup};
use crate::engine::model::{LoadOptions, Model, MAX_DRAFT_POSITIONS};
use crate::engine::prefix_cache::{PrefixCache, PrefixSource, PrefixStore};
use crate::engine::sampling::{Sampler, SamplingParams};
use crate::engine::tokenizer::Tokenizer;

/// What to generate for one sequence.
#[derive(Debug, Clone)]
pub struct Request {
    /// The full prompt text, already rendered through the chat template (see `Engine::chat_prompt`).
    pub prompt: String,
    pub max_new_tokens: usize,
    pub sampling: SamplingParams,
    /// Generation stops when the decoded output contains one of these; the stop string is not returned.
    pub stop_strings: Vec<String>,
}

impl Request {
    pub fn greedy(prompt: impl Into<String>, max_new_tokens: usize) -> Self {
        Self { prompt: prompt.into(), max_new_tokens, sampling: SamplingParams::greedy(), stop_strings: vec![] }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    /// An end-of-sequence or end-of-turn token.
    Eos,
    StopString,
    MaxTokens,
}

#[derive(Debug, Clone)]
pub struct Generation {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub stop_reason: StopReason,
}

/// Timings of one `generate` call, for tokens/s figures.
#[derive(Debug, Clone, Default)]
pub struct CallStats {
    /// Prompt tokens actually computed (a shared prefix counts once).
    pub prompt_tokens: usize,
    /// Prompt tokens taken from the engine's prefix cache instead of computed.
    pub cached_prompt_tokens: usize,
    pub prompt_seconds: f64,
    /// Tokens generated, summed over the rows.
    pub generated_tokens: usize,
    pub decode_seconds: f64,
}

/// Whether a prefill shares prompt starts with other scoring calls: generation neither leaves nor takes
/// them, so its tokens never depend on what was scored before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Keep {
    Nothing,
    /// Take the longest match among recent prompt starts too, and leave this call's common start (a lone
    /// prompt: all of it) among them (`PrefixCache::remember`).
    PromptStart,
}

/// Streaming callback: (row, the text piece decoded at this step). Return `false` to stop that row.
pub(crate) type OnToken<'a> = dyn FnMut(usize, &str) -> bool + 'a;

pub struct Engine {
    model: Model,
    tokenizer: Tokenizer,
    template: ChatTemplate,
    stop_ids: Vec<u32>,
    name: String,
    prefixes: PrefixCache,
    lookup: Lookup,
    drafts: std::sync::Mutex<DraftCounts>,
}

impl Engine {
    /// Load a GGUF file, with `tokenizer_json` overriding the tokenizer kept in the GGUF metadata.
    pub fn load(gguf: &Path, tokenizer_json: Option<&Path>, opts: &LoadOptions) -> Result<Self> {
        // The tokenizer before the weights: the memory its construction frees goes back before they come.
        let opened = crate::engine::model::open(gguf, opts)?;
        let tokenizer = match tokenizer_json {
            Some(path) => Tokenizer::from_json_file(path, Some(opened.metadata()))?,
            None => Tokenizer::from_gguf(opened.metadata())
                .with_context(|| format!("building the tokenizer from {}", gguf.display()))?,
        };
        let template = ChatTemplate::from_gguf(opened.metadata(), &tokenizer)?;
        let model = opened.load()?;
        let stop_ids = tokenizer.end_of_generation_ids();
        let name = gguf.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Self {
            model,
            tokenizer,
            template,
            stop_ids,
            name,
            prefixes: PrefixCache::default(),
            lookup: Lookup::default(),
            drafts: Default::default(),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// How greedy sequences decoded alone take prompt-lookup drafts (`Lookup::off()`: never).
    pub fn set_lookup(&mut self, lookup: Lookup) {
        self.lookup = lookup;
    }

    /// Drafted and kept tokens since the engine was loaded.
    pub fn draft_counts(&self) -> DraftCounts {
        *self.drafts.lock().expect("draft counts")
    }

    /// Keep computed prompt prefixes in `store` too (`None`: in memory only).
    pub fn set_prefix_store(&mut self, store: Option<PrefixStore>) {
        self.prefixes.set_store(store);
    }

    /// The start of every chat prompt with this system prompt, up to where the user's message begins
    /// (template and system prompt): the part `cache_prefix` can keep.
    pub fn chat_head(&self, system: &str) -> Result<String> {
        let a = self.chat_prompt(Some(system), "A", None)?;
        let b = self.chat_prompt(Some(system), "B", None)?;
        let len: usize = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).map(|(x, _)| x.len_utf8()).sum();
        Ok(a[..len].to_string())
    }

    /// Compute the KV cache of the prompt start `text` once (or read it from the prefix store), for every
    /// later call whose prompts begin with its tokens.
    pub fn cache_prefix(&self, text: &str) -> Result<PrefixSource> {
        let ids = self.encode_prompt(text)?;
        ensure!(!ids.is_empty(), "an empty prompt prefix");
        if self.prefixes.contains(&ids) {
            return Ok(PrefixSource::Memory);
        }
        let mut rejected = None;
        if let Some(store) = self.prefixes.store() {
            match store.load(&ids, self.device()) {
                Ok(Some(kv)) => {
                    self.prefixes.insert(ids, kv);
                    return Ok(PrefixSource::Disk);
                }
                Ok(None) => {}
                Err(e) => rejected = Some(format!("{e:#}")),
            }
        }
        let mut kv = KvCache::new(self.model.config().n_layer, 1);
        self.model.forward(std::slice::from_ref(&ids), &mut kv)?;
        let not_saved = match self.prefixes.store().map(|s| s.save(&ids, &kv, self.device())) {
            Some(Err(e)) => Some(format!("{e:#}")),
            _ => None,
        };
        self.prefixes.insert(ids, kv);
        Ok(PrefixSource::Computed { rejected, not_saved })
    }

    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }

    pub fn device(&self) -> &Device {
        self.model.device()
    }

    /// Whether batches run the GPU way (`model::BatchPaths`): on a GPU, or when the load options force it.
    pub fn gpu_paths(&self) -> bool {
        self.model.gpu_paths()
    }

    /// The model's trained context length (prompt plus output must fit).
    pub fn context_length(&self) -> usize {
        self.model.config().context_length
    }

    /// Render a system prompt, a user message and an optional started answer with the model's template.
    pub fn chat_prompt(&self, system: Option<&str>, user: &str, assistant_prefix: Option<&str>) -> Result<String> {
        let mut messages = Vec::new();
        if let Some(system) = system {
            messages.push(Message::system(system));
        }
        messages.push(Message::user(user));
        let mut prompt = self.template.render(&messages, true)?;
        if let Some(prefix) = assistant_prefix {
            prompt.push_str(prefix);
        }
        Ok(prompt)
    }

    /// Prompt token ids, with the BOS token when the model wants one.
    pub fn encode_prompt(&self, prompt: &str) -> Result<Vec<u32>> {
        let mut ids = Vec::new();
        let body = self.tokenizer.encode(prompt, true)?;
        if let Some(bos) = self.tokenizer.bos_id().filter(|_| self.tokenizer.add_bos()) {
            if body.first() != Some(&bos) {
                ids.push(bos);
            }
        }
        ids.extend(body);
        Ok(ids)
    }

    pub(crate) fn count_tokens(&self, text: &str) -> Result<usize> {
        self.tokenizer.count(text)
    }

    /// Generate for every request in one batch.
    pub fn generate(&self, requests: &[Request]) -> Result<Vec<Generation>> {
        Ok(self.generate_streaming(requests, &mut |_, _| true)?.0)
    }

    pub fn generate_streaming(
        &self,
        requests: &[Request],
        on_token: &mut OnToken<'_>,
    ) -> Result<(Vec<Generation>, CallStats)> {
        let prompts = requests.iter().map(|r| self.encode_prompt(&r.prompt)).collect::<Result<Vec<_>>>()?;
        self.generate_ids(&prompts, requests, on_token)
    }

    /// Core loop over token ids (`prompts[i]` belongs to `requests[i]`).
    pub fn generate_ids(
        &self,
        prompts: &[Vec<u32>],
        requests: &[Request],
        on_token: &mut OnToken<'_>,
    ) -> Result<(Vec<Generation>, CallStats)> {
        if prompts.is_empty() {
            return Ok((vec![], CallStats::default()));
        }
        self.check_fits(prompts, requests)?;
        let mut stats = CallStats::default();
        let t0 = Instant::now();
        let mut batch = self.prefill(prompts, requests, 0, Keep::Nothing, &mut stats)?;
        // A GPU runs the prompt's kernels asynchronously: wait for them, or their time counts as decode time.
        self.device().synchronize()?;
        stats.prompt_seconds = t0.elapsed().as_secs_f64();

        let t1 = Instant::now();
        let mut done: Vec<Option<Generation>> = vec![None; prompts.len()];
        while !batch.is_empty() {
            for f in self.step(&mut batch, on_token)? {
                done[f.tag] = Some(f.generation);
            }
        }
        stats.decode_seconds = t1.elapsed().as_secs_f64();
        let gens: Vec<Generation> = done.into_iter().map(|g| g.expect("every row finishes")).collect();
        stats.generated_tokens = gens.iter().map(|g| g.tokens.len()).sum();
        Ok((gens, stats))
    }

    /// Check that each prompt fits the context with its output.
    pub(crate) fn check_fits(&self, prompts: &[Vec<u32>], requests: &[Request]) -> Result<()> {
        let ctx = self.context_length();
        for (i, (p, r)) in prompts.iter().zip(requests).enumerate() {
            if p.is_empty() {
                bail!("request {i}: the prompt is empty");
            }
            if p.len() + r.max_new_tokens > ctx {
                bail!(
                    "request {i}: the prompt has {} tokens and up to {} may be generated, but the model's context \
                    holds {ctx}; shorten the input or lower the output length",
                    p.len(),
                    r.max_new_tokens
                );
            }
        }
        Ok(())
    }

    /// Compute the prompts of one call into a new batch whose rows are tagged `first_tag + i`. A prefix
    /// shared by every row is computed once, on a single row, then copied.
    ///
    /// On the CPU each row's own tokens are computed on their own and the rows joined after: a prompt step
    /// is compute-bound there, so batching rows saves nothing, while left-padding them computes the padding
    /// and changes the order of the GEMMs' sums, so a row's output would depend on its batch. (With the
    /// decode attention of `model::decode_attention`, a row then gives the same tokens alone or batched,
    /// for the weight types `model::gemv` decodes at every batch size.) A GPU computes them together, in
    /// one padded step (`model::BatchPaths`), which `BatchPaths::Gpu` also forces on the CPU.
    pub(crate) fn prefill(
        &self,
        prompts: &[Vec<u32>],
        requests: &[Request],
        first_tag: usize,
        keep: Keep,
        stats: &mut CallStats,
    ) -> Result<Batch> {
        let rows = prompts.len();
        let n_layer = self.model.config().n_layer;
        let shared = if rows > 1 { common_prefix_len(prompts) } else { 0 };
        // Keep at least one token per row to compute, so every row gets its own first logits.
        let shared = shared.min(prompts.iter().map(|p| p.len()).min().unwrap_or(0).saturating_sub(1));
        let limit = prompts.iter().map(|p| p.len()).min().unwrap_or(0).saturating_sub(1);
        // A cached prefix first (it may cover more than `shared` on a single row), then the rest of what the
        // rows share.
        let (mut prefix, cached) =
            self.prefixes.lookup(prompts, limit, keep == Keep::PromptStart)?.unwrap_or((KvCache::new(n_layer, 1), 0));
        stats.cached_prompt_tokens += cached;
        let shared = shared.max(cached);
        if shared > cached {
            self.model.forward(&[prompts[0][cached..shared].to_vec()], &mut prefix)?;
            stats.prompt_tokens += shared - cached;
            if keep == Keep::PromptStart && !self.prefixes.recalls(&prompts[0][..shared]) {
                self.prefixes.remember(prompts[0][..shared].to_vec(), prefix.copy_prefix(shared)?);
            }
        }
        let suffixes: Vec<Vec<u32>> = prompts.iter().map(|p| p[shared..].to_vec()).collect();
        stats.prompt_tokens += suffixes.iter().map(|s| s.len()).sum::<usize>();
        let (cache, logits) = if !self.model.gpu_paths() && rows > 1 {
            let mut cache = KvCache::new(n_layer, 0);
            let mut logits: Vec<Tensor> = Vec::with_capacity(rows);
            // A row whose prompt repeats an earlier row's (candidates of one request) copies that row's cache.
            let mut computed: Vec<(usize, KvCache)> = Vec::new();
            for (i, suffix) in suffixes.iter().enumerate() {
                let repeats = suffixes[i + 1..].contains(suffix);
                let row = match computed.iter().position(|(j, _)| suffixes[*j] == *suffix) {
                    Some(at) => {
                        logits.push(logits[computed[at].0].clone());
                        stats.prompt_tokens -= suffix.len();
                        // The last repeat takes the kept copy itself.
                        if repeats {
                            computed[at].1.fork()?
                        } else {
                            computed.swap_remove(at).1
                        }
                    }
                    None => {
                        let mut row = prefix.fork()?;
                        row.reserve(self.slots_needed(prompts[i].len(), requests[i].max_new_tokens));
                        logits.push(self.model.forward(std::slice::from_ref(suffix), &mut row)?);
                        if repeats {
                            computed.push((i, row.fork()?));
                        }
                        row
                    }
                };
                cache.join(row)?;
            }
            (cache, Tensor::cat(&logits, 0)?)
        } else {
            let mut cache = if shared > 0 { prefix.broadcast_rows(rows)? } else { KvCache::new(n_layer, rows) };
            // Rows are left-padded to the longest prompt, so the slot axis reaches it plus the most output.
            let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
            let most = requests.iter().map(|r| r.max_new_tokens).max().unwrap_or(0);
            cache.reserve(self.slots_needed(longest, most));
            let logits = self.model.forward(&suffixes, &mut cache)?;
            if keep == Keep::PromptStart && rows == 1 && !self.prefixes.recalls(&prompts[0]) {
                self.prefixes.remember(prompts[0].clone(), cache.copy_prefix(prompts[0].len())?);
            }
            (cache, logits)
        };
        let rows = requests
            .iter()
            .zip(prompts)
            .enumerate()
            .map(|(i, (r, p))| BatchRow {
                tag: first_tag + i,
                request: r.clone(),
                sampler: Sampler::new(&r.sampling, i as u64),
                history: p.clone(),
                prompt_tokens: p.len(),
                state: RowState::default(),
            })
            .collect();
        Ok(Batch { cache, logits: Some(logits), rows })
    }

    /// The cache slots a row reaches if it writes all the output it may: its prompt's tokens plus `max_new`,
    /// within the context.
    fn slots_needed(&self, prompt_tokens: usize, max_new: usize) -> usize {
        prompt_tokens.saturating_add(max_new).min(self.context_length())
    }

    /// One decode step: sample a token for every row, take the rows that stop out of the batch, and compute
    /// the next logits of the others.
    pub(crate) fn step(&self, batch: &mut Batch, on_token: &mut OnToken<'_>) -> Result<Vec<Finished>> {
        if self.drafts_for(batch) {
            return self.draft_step(batch, on_token);
        }
        let Some(logits) = batch.logits.take() else { return Ok(vec![]) };
        let mut next = Vec::with_capacity(batch.rows.len());
        let mut keep = Vec::with_capacity(batch.rows.len());
        let mut stops = Vec::with_capacity(batch.rows.len());
        let tokens = sample_rows(&logits, &mut batch.rows)?;
        for (i, (row, token)) in batch.rows.iter_mut().zip(tokens).enumerate() {
            row.history.push(token);
            let stop = self.accept(token, row.tag, &row.request, &mut row.state, on_token)?;
            if stop.is_none() {
                next.push(token);
                keep.push(i);
            }
            stops.push(stop);
        }
        let mut finished = Vec::new();
        let mut kept = Vec::with_capacity(keep.len());
        for (row, stop) in std::mem::take(&mut batch.rows).into_iter().zip(stops) {
            match stop {
                None => kept.push(row),
                Some(stop_reason) => finished.push(row.finish(stop_reason)),
            }
        }
        batch.rows = kept;
        if !finished.is_empty() {
            // Finished rows leave the batch, so they cost nothing in later steps.
            batch.cache.retain_rows(&keep)?;
            batch.cache.trim_padding()?;
        }
        if !next.is_empty() {
            batch.logits = Some(self.model.decode_step(&next, &mut batch.cache)?);
        }
        Ok(finished)
    }

    /// Whether the next step of `batch` takes a prompt-lookup draft: a greedy row decoding alone where a
    /// drafted step computes what decode steps would (`Model::drafts_exactly`). A step over several rows
    /// already reads each weight once for all of them, and a sampled row would need the drafts'
    /// probabilities, which prompt lookup does not have.
    fn drafts_for(&self, batch: &Batch) -> bool {
        self.lookup.max_draft > 0
            && self.model.drafts_exactly()
            && batch.logits.is_some()
            && matches!(batch.rows.as_slice(), [row] if row.request.sampling.is_greedy())
    }

    /// `step` for a single greedy row with prompt-lookup drafts (`crate::engine::lookup`): the sampled
    /// token and the draft that follows it in the row's history are computed in one step; the draft's
    /// tokens are kept while each is the one the model picks after the tokens before it, and the logits
    /// after the last kept token are the next step's.
    fn draft_step(&self, batch: &mut Batch, on_token: &mut OnToken<'_>) -> Result<Vec<Finished>> {
        let logits = batch.logits.take().context("a draft step needs the next-token logits")?;
        let row = &mut batch.rows[0];
        let token = row.sampler.sample(&logits.get(0)?, &row.history)?;
        row.history.push(token);
        if let Some(stop) = self.accept(token, row.tag, &row.request, &mut row.state, on_token)? {
            return finish_all(batch, stop);
        }
        let room = row.request.max_new_tokens.saturating_sub(row.state.tokens.len()).min(MAX_DRAFT_POSITIONS - 1);
        let room = room.min(row.state.draft_len.unwrap_or(self.lookup.max_draft));
        let draft = self.lookup.draft(&row.history, room).to_vec();
        if draft.is_empty() {
            batch.logits = Some(self.model.decode_step(&[token], &mut batch.cache)?);
            return Ok(vec![]);
        }
        let input: Vec<u32> = std::iter::once(token).chain(draft.iter().copied()).collect();
        let all = self.model.draft_step(&input, &mut batch.cache)?;
        let (mut kept, mut stop) = (0, None);
        for &drafted in &draft {
            if row.sampler.sample(&all.get(kept)?, &row.history)? != drafted {
                break;
            }
            row.history.push(drafted);
            kept += 1;
            stop = self.accept(drafted, row.tag, &row.request, &mut row.state, on_token)?;
            if stop.is_some() {
                break;
            }
        }
        self.count_draft(draft.len(), kept);
        if let Some(stop) = stop {
            return finish_all(batch, stop);
        }
        // A draft kept whole doubles the length allowed (not the draft's own, which the history may have cut).
        row.state.draft_len = Some(if kept == draft.len() { (2 * room).min(self.lookup.max_draft) } else { kept + 1 });
        batch.cache.drop_last(draft.len() - kept)?;
        batch.logits = Some(all.narrow(0, kept, 1)?);
        Ok(vec![])
    }

    fn count_draft(&self, drafted: usize, accepted: usize) {
        let mut c = self.drafts.lock().expect("draft counts");
        c.steps += 1;
        c.drafted += drafted;
        c.accepted += accepted;
    }

    /// Take one sampled token into a row's output; returns why the row stops, if it does.
    fn accept(
        &self,
        token: u32,
        row: usize,
        request: &Request,
        st: &mut RowState,
        on_token: &mut OnToken<'_>,
    ) -> Result<Option<StopReason>> {
        let stop = self.accept_inner(token, request, st)?;
        // Stream what is final: everything once the row stops, else all but a possible stop-string start.
        let upto =
            if stop.is_some() { st.text.len() } else { st.text.len() - held_back(&st.text, &request.stop_strings) };
        if upto > st.emitted && st.text.is_char_boundary(upto) && st.text.is_char_boundary(st.emitted) {
            let keep_going = on_token(row, &st.text[st.emitted..upto]);
            st.emitted = upto;
            if !keep_going && stop.is_none() {
                return Ok(Some(StopReason::StopString));
            }
        }
        Ok(stop)
    }

    fn accept_inner(&self, token: u32, request: &Request, st: &mut RowState) -> Result<Option<StopReason>> {
        if self.stop_ids.contains(&token) {
            return Ok(Some(StopReason::Eos));
        }
        st.tokens.push(token);
        let decoded = self.tokenizer.decode(&st.tokens)?;
        // A token can end inside a UTF-8 character: wait for the rest before taking the text.
        if !decoded.ends_with('\u{FFFD}') || st.tokens.len() >= request.max_new_tokens {
            st.text = decoded;
            if let Some(pos) = find_stop(&st.text, &request.stop_strings) {
                st.text.truncate(pos);
                return Ok(Some(StopReason::StopString));
            }
        }
        if st.tokens.len() >= request.max_new_tokens {
            return Ok(Some(StopReason::MaxTokens));
        }
        Ok(None)
    }

    /// For each prompt, the log-probability of each token in `candidates[i]` being the next one: one
    /// prefill and no decode step, with a prefix shared by every prompt computed once (as `generate` does),
    /// so many short questions about one text cost the text once plus each question.
    ///
    /// The prompts' common start (a single prompt: all of it) is kept among the engine's recent prefixes,
    /// so a later question about the same text computes only what differs; `stats` counts the prompt
    /// tokens computed and those taken from the cache.
    pub fn next_token_logprobs(
        &self,
        prompts: &[String],
        candidates: &[Vec<u32>],
        stats: &mut CallStats,
    ) -> Result<Vec<Vec<f32>>> {
        if prompts.len() != candidates.len() {
            bail!("{} prompts but {} candidate lists", prompts.len(), candidates.len());
        }
        if prompts.is_empty() {
            return Ok(vec![]);
        }
        let ids = prompts.iter().map(|p| self.encode_prompt(p)).collect::<Result<Vec<_>>>()?;
        let requests: Vec<Request> = prompts.iter().map(|p| Request::greedy(p.as_str(), 1)).collect();
        self.check_fits(&ids, &requests)?;
        let batch = self.prefill(&ids, &requests, 0, Keep::PromptStart, stats)?;
        let logits = batch.logits.context("a prefill leaves next-token logits")?;
        let logp = candle_nn::ops::log_softmax(&logits.to_dtype(candle_core::DType::F32)?, candle_core::D::Minus1)?
            .to_device(&Device::Cpu)?;
        let vocab = logp.dim(1)?;
        candidates
            .iter()
            .enumerate()
            .map(|(i, cands)| {
                let row = logp.get(i)?.to_vec1::<f32>()?;
                cands
                    .iter()
                    .map(|&t| {
                        row.get(t as usize)
                            .copied()
                            .with_context(|| format!("token {t} is past the vocabulary of {vocab}"))
                    })
                    .collect()
            })
            .collect()
    }

    /// Logits after every token of `ids` (teacher-forced), `[ids.len(), vocab]`.
    pub fn logits_all(&self, ids: &[u32]) -> Result<Tensor> {
        let mut cache = KvCache::new(self.model.config().n_layer, 1);
        self.model.forward_all(ids, &mut cache)
    }

    /// Mean negative log-likelihood per token of `text` (perplexity = exp of it), teacher-forced.
    pub fn perplexity(&self, text: &str) -> Result<f64> {
        let ids = self.encode_prompt(text)?;
        if ids.len() < 2 {
            bail!("perplexity needs at least two tokens");
        }
        let logits = self.logits_all(&ids)?;
        let logp = candle_nn::ops::log_softmax(&logits.to_dtype(candle_core::DType::F32)?, candle_core::D::Minus1)?;
        let targets = Tensor::new(&ids[1..], logp.device())?;
        let picked = logp.narrow(0, 0, ids.len() - 1)?.gather(&targets.unsqueeze(1)?, 1)?;
        let nll = -(picked.sum_all()?.to_scalar::<f32>()? as f64) / (ids.len() - 1) as f64;
        Ok(nll.exp())
    }
}

/// Sequences decoded together. Rows come from `Engine::prefill` and leave when they stop; between steps
/// another prefilled batch can `join`, which is how `crate::engine::scheduler` keeps one batch running across
/// calls (continuous batching, as llama.cpp's server slots do).
pub(crate) struct Batch {
    cache: KvCache,
    /// Next-token logits, `[rows, vocab]`, row i for `rows[i]`; `None` once every row has stopped.
    logits: Option<Tensor>,
    rows: Vec<BatchRow>,
}

struct BatchRow {
    /// The caller's name for the row (`on_token` and `Finished` report it).
    tag: usize,
    request: Request,
    sampler: Sampler,
    /// Prompt and generated ids (repetition penalties look at both).
    history: Vec<u32>,
    prompt_tokens: usize,
    state: RowState,
}

/// A row that stopped at the last step.
pub(crate) struct Finished {
    pub(crate) tag: usize,
    pub(crate) generation: Generation,
}

/// Take every row out of `batch` as finished with `stop_reason` (a single row's batch, when it stops).
fn finish_all(batch: &mut Batch, stop_reason: StopReason) -> Result<Vec<Finished>> {
    batch.logits = None;
    batch.cache.retain_rows(&[])?;
    Ok(std::mem::take(&mut batch.rows).into_iter().map(|row| row.finish(stop_reason)).collect())
}

impl BatchRow {
    fn finish(self, stop_reason: StopReason) -> Finished {
        Finished {
            tag: self.tag,
            generation: Generation {
                text: self.state.text,
                tokens: self.state.tokens,
                prompt_tokens: self.prompt_tokens,
                stop_reason,
            },
        }
    }
}

impl Batch {
    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Take the rows of `other` into this batch; both must be between steps.
    pub(crate) fn join(&mut self, other: Batch) -> Result<()> {
        if other.is_empty() {
            return Ok(());
        }
        self.logits = match (self.logits.take(), other.logits) {
            (Some(a), Some(b)) => Some(Tensor::cat(&[a, b], 0)?),
            (None, b) if self.rows.is_empty() => b,
            _ => bail!("a batch can only join another between steps"),
        };
        self.cache.join(other.cache)?;
        self.rows.extend(other.rows);
        Ok(())
    }
}

#[derive(Default)]
struct RowState {
    tokens: Vec<u32>,
    text: String,
    /// Bytes of `text` already passed to the streaming callback.
    emitted: usize,
    /// The most tokens the row's next draft may have (`None`: `Lookup::max_draft`, before its first
    /// draft): doubled after a draft kept whole, cut to one more than was kept after one that was not, so
    /// that a row copying its prompt drafts far and a row writing its own words risks little.
    draft_len: Option<usize>,
}

/// Each row's next token from the step's logits (`[rows, vocab]`, row i for `rows[i]`).
///
/// Off the CPU, greedy rows without a repetition penalty take their argmax on the device, so only their
/// token ids come back to the host; the other rows' logits are copied over in one transfer and sampled
/// there.
fn sample_rows(logits: &Tensor, rows: &mut [BatchRow]) -> Result<Vec<u32>> {
    let on_host = |r: &BatchRow| !(r.request.sampling.is_greedy() && r.request.sampling.repetition_penalty == 1.0);
    if logits.device().is_cpu() {
        return rows.iter_mut().enumerate().map(|(i, r)| r.sampler.sample(&logits.get(i)?, &r.history)).collect();
    }
    let argmax = match rows.iter().any(|r| !on_host(r)) {
        true => Some(logits.argmax(candle_core::D::Minus1)?.to_vec1::<u32>()?),
        false => None,
    };
    let host = match rows.iter().any(on_host) {
        true => Some(logits.to_device(&Device::Cpu)?),
        false => None,
    };
    let mut tokens = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter_mut().enumerate() {
        tokens.push(match (&argmax, &host) {
            (Some(argmax), _) if !on_host(r) => argmax[i],
            (_, Some(host)) => r.sampler.sample(&host.get(i)?, &r.history)?,
            _ => bail!("row {i} has neither a device argmax nor host logits"),
        });
    }
    Ok(tokens)
}

/// How many bytes at the end of `text` could be the beginning of a stop string.
fn held_back(text: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|s| (1..s.len()).rev().filter(move |&n| s.is_char_boundary(n)).map(move |n| &s[..n]))
        .filter(|prefix| text.ends_with(prefix))
        .map(|p| p.len())
        .max()
        .unwrap_or(0)
}

fn common_prefix_len(prompts: &[Vec<u32>]) -> usize {
    let first = &prompts[0];
    let mut n = first.len();
    for p in &prompts[1..] {
        n = n.min(first.iter().zip(p).take_while(|(a, b)| a == b).count());
    }
    n
}

fn find_stop(text: &str, stops: &[String]) -> Option<usize> {
    stops.iter().filter(|s| !s.is_empty()).filter_map(|s| text.find(s.as_str())).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_prefix() {
        assert_eq!(common_prefix_len(&[vec![1, 2, 3], vec![1, 2, 4], vec![1, 2]]), 2);
        assert_eq!(common_prefix_len(&[vec![1, 2, 3], vec![5]]), 0);
    }

    #[test]
    fn holds_back_partial_stop_strings() {
        let stops = vec!["</summary>".to_string()];
        assert_eq!(held_back("text </sum", &stops), 5);
        assert_eq!(held_back("text", &stops), 0);
    }

    #[test]
    fn stop_string_earliest() {
        let stops = vec!["\n\n".to_string(), "END".to_string()];
        assert_eq!(find_stop("abc END x\n\n", &stops), Some(4));
        assert_eq!(find_stop("abc", &stops), None);
    }
}
