//! Continuous batching across callers, as llama.cpp's server does with its slots: every `generate` call,
//! from whichever thread, joins one running batch, so the articles in flight decode together. A decode
//! step reads every weight once for all its rows, which is what a GPU gains from; on 2 CPU cores the
//! gain is eaten by long contexts and prefill stalls (see `Generator::default_jobs`).
//!
//! One thread drives the engine: it prefills each call as it arrives (a prefix shared within the call is
//! computed once), joins its rows to the batch, and steps the batch; a call returns when its last row
//! stops. A call that does not fit the batch's free rows waits for rows to free up.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use anyhow::{anyhow, Result};

use crate::engine::generate::{Batch, CallStats, Engine, Generation, Keep, Request};

/// Rows decoded together at most: on 2 CPU cores the 1.5B model's summed decode rises up to 8 rows on short
/// contexts (docs/BENCHMARKS.md, batch rows); a GPU has room for many more.
pub const CPU_ROWS: usize = 8;
pub const GPU_ROWS: usize = 32;

/// The rows to decode together on `engine`: `GPU_ROWS` where it batches the GPU way (on a GPU, or forced
/// by `model::BatchPaths::Gpu`), else `CPU_ROWS`.
pub fn default_rows(engine: &Engine) -> usize {
    if engine.gpu_paths() {
        GPU_ROWS
    } else {
        CPU_ROWS
    }
}

type Reply = mpsc::Sender<Result<(Vec<Generation>, CallStats)>>;

struct Call {
    prompts: Vec<Vec<u32>>,
    requests: Vec<Request>,
    reply: Reply,
}

#[derive(Default)]
struct Queue {
    calls: VecDeque<Call>,
    shutdown: bool,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    /// The most rows decoded together so far.
    peak_rows: AtomicUsize,
}

pub struct Scheduler {
    engine: Arc<Engine>,
    shared: Arc<Shared>,
    driver: Mutex<Option<std::thread::JoinHandle<()>>>,
    max_rows: usize,
}

impl Scheduler {
    /// `max_rows`: sequences decoded together at most (a call with more rows still runs, alone).
    pub fn new(engine: Engine, max_rows: usize) -> Result<Self> {
        let engine = Arc::new(engine);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            peak_rows: AtomicUsize::new(0),
        });
        let driver = {
            let (engine, shared) = (engine.clone(), shared.clone());
            std::thread::Builder::new()
                .name("polysum-engine".into())
                .spawn(move || drive(&engine, &shared, max_rows.max(1)))?
        };
        Ok(Self { engine, shared, driver: Mutex::new(Some(driver)), max_rows: max_rows.max(1) })
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    pub(crate) fn max_rows(&self) -> usize {
        self.max_rows
    }

    /// The most rows one decode step has held so far: how much the calls overlapped.
    pub fn peak_rows(&self) -> usize {
        self.shared.peak_rows.load(Ordering::Relaxed)
    }

    /// Generate for `requests` (one call: its rows may share a prompt prefix), in the running batch.
    pub fn generate(&self, requests: &[Request]) -> Result<(Vec<Generation>, CallStats)> {
        if requests.is_empty() {
            return Ok((vec![], CallStats::default()));
        }
        let prompts = requests.iter().map(|r| self.engine.encode_prompt(&r.prompt)).collect::<Result<Vec<_>>>()?;
        self.engine.check_fits(&prompts, requests)?;
        let (reply, answer) = mpsc::channel();
        {
            let mut q = self.shared.queue.lock().expect("scheduler queue");
            q.calls.push_back(Call { prompts, requests: requests.to_vec(), reply });
        }
        self.shared.wake.notify_one();
        answer.recv().map_err(|_| anyhow!("the generation thread stopped (see the error above)"))?
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.shared.queue.lock().expect("scheduler queue").shutdown = true;
        self.shared.wake.notify_all();
        if let Some(h) = self.driver.lock().expect("driver handle").take() {
            let _ = h.join();
        }
    }
}

/// A call whose rows are in the batch.
struct Running {
    reply: Reply,
    results: Vec<Option<Generation>>,
    stats: CallStats,
    joined: Instant,
}

fn drive(engine: &Engine, shared: &Shared, max_rows: usize) {
    let mut batch: Option<Batch> = None;
    let mut running: HashMap<usize, Running> = HashMap::new();
    // Row tag → (call id, row in the call).
    let mut tags: HashMap<usize, (usize, usize)> = HashMap::new();
    let mut next_tag = 0usize;
    let mut next_call = 0usize;
    loop {
        let rows = batch.as_ref().map_or(0, Batch::len);
        let admitted: Vec<Call> = {
            let mut q = shared.queue.lock().expect("scheduler queue");
            while q.calls.is_empty() && rows == 0 && !q.shutdown {
                q = shared.wake.wait(q).expect("scheduler queue");
            }
            if q.shutdown && rows == 0 {
                return;
            }
            let mut taken = Vec::new();
            let mut free = max_rows.saturating_sub(rows);
            while let Some(c) = q.calls.front() {
                // An oversized call is admitted alone into an empty batch rather than never.
                let fits = c.prompts.len() <= free || (rows == 0 && taken.is_empty());
                if !fits {
                    break;
                }
                free = free.saturating_sub(c.prompts.len());
                taken.push(q.calls.pop_front().expect("front exists"));
            }
            taken
        };

        for call in admitted {
            let id = next_call;
            next_call += 1;
            let t = Instant::now();
            let mut stats = CallStats::default();
            let prefilled = engine
                .prefill(&call.prompts, &call.requests, next_tag, Keep::Nothing, &mut stats)
                .and_then(|b| match batch.as_mut() {
                    Some(running_batch) => running_batch.join(b),
                    None => {
                        batch = Some(b);
                        Ok(())
                    }
                });
            if let Err(e) = prefilled {
                let _ = call.reply.send(Err(e));
                continue;
            }
            stats.prompt_seconds = t.elapsed().as_secs_f64();
            for i in 0..call.prompts.len() {
                tags.insert(next_tag + i, (id, i));
            }
            next_tag += call.prompts.len();
            running.insert(
                id,
                Running { reply: call.reply, results: vec![None; call.prompts.len()], stats, joined: Instant::now() },
            );
        }

        let Some(b) = batch.as_mut() else { continue };
        if b.is_empty() {
            continue;
        }
        shared.peak_rows.fetch_max(b.len(), Ordering::Relaxed);
        match engine.step(b, &mut |_, _| true) {
            Ok(finished) => {
                for f in finished {
                    let (id, i) = tags.remove(&f.tag).expect("every row has a call");
                    let call = running.get_mut(&id).expect("the call is running");
                    call.results[i] = Some(f.generation);
                    if call.results.iter().all(Option::is_some) {
                        let mut call = running.remove(&id).expect("the call is running");
                        let gens: Vec<Generation> = call.results.into_iter().map(|g| g.expect("checked")).collect();
                        call.stats.generated_tokens = gens.iter().map(|g| g.tokens.len()).sum();
                        call.stats.decode_seconds = call.joined.elapsed().as_secs_f64();
                        let _ = call.reply.send(Ok((gens, call.stats)));
                    }
                }
            }
            Err(e) => {
                // The batch's state is unknown after a failed step: fail every call in it, start afresh.
                let msg = format!("{e:#}");
                for (_, call) in running.drain() {
                    let _ = call.reply.send(Err(anyhow!("{msg}")));
                }
                tags.clear();
                batch = None;
            }
        }
    }
}
