//! Prompt prefixes computed once: the KV cache of a long fixed start that many prompts share (a system
//! prompt with worked examples), kept for the engine's lifetime and optionally on disk in the model cache,
//! so a few-shot prompt pays for its examples once per model instead of once per request.
//!
//! It sits beside the per-call shared prefix of `generate` (the EN and ES prompts of one article): a call
//! first takes the longest cached prefix its prompts agree with, then computes the rest of what its rows
//! share once, then each row's own tokens. Scoring calls also keep their own latest prompt starts, in
//! memory only and apart from the named prefixes (`remember`), for the next question about the same text.
//! A cached prefix is used only as far as a prompt's token ids match it, so a prompt that tokenizes
//! differently at the boundary loses nothing but the saving.
//!
//! A file on disk is named by a hash of everything its keys and values depend on (model sha256, engine
//! version, device, the prefix's token ids), and its header repeats them with a sha256 of the
//! body: a file copied from another model or damaged is rejected with the reason, and computed again.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, ensure, Context, Result};
use candle_core::{DType, Device, Tensor};
use sha2::{Digest, Sha256};

use crate::engine::kv_cache::KvCache;

/// Entries kept in memory: a run uses a few fixed prompts (one per target language and task); past that
/// the least recently used goes.
const CAPACITY: usize = 8;

/// What the keys and values of a file depend on besides the model: the engine's numerics and this layout.
/// Bumped with any change to either, so older files are rejected instead of read wrongly.
pub const ENGINE_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "/prefix-kv-1");

const MAGIC: &[u8] = b"polysum-prefix-kv\n";

/// One computed prefix: its token ids and their single-row KV cache.
struct Entry {
    ids: Vec<u32>,
    kv: KvCache,
}

/// Where a prefix passed to `Engine::cache_prefix` came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixSource {
    /// Already in memory.
    Memory,
    /// Read from the disk store and verified.
    Disk,
    /// Computed now; `rejected` says why a file of the store was not used, when there was one, and
    /// `not_saved` why the result could not be written to the store (the run goes on without it).
    Computed { rejected: Option<String>, not_saved: Option<String> },
}

/// Where computed prefixes are kept between runs: a folder, and the identity of the model whose keys and
/// values they hold.
#[derive(Debug, Clone)]
pub struct PrefixStore {
    dir: PathBuf,
    model_sha256: String,
}

#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Header {
    engine: String,
    model_sha256: String,
    device: String,
    dtype: String,
    ids: Vec<u32>,
    /// Per layer `[kv_heads, head_dim]`, `None` for a layer without keys.
    layers: Vec<Option<[usize; 2]>>,
    body_sha256: String,
}

impl PrefixStore {
    pub fn new(dir: impl Into<PathBuf>, model_sha256: impl Into<String>) -> Self {
        Self { dir: dir.into(), model_sha256: model_sha256.into() }
    }

    /// The file that holds (or would hold) the prefix `ids` computed on `device`.
    pub fn path(&self, ids: &[u32], device: &Device) -> PathBuf {
        let mut h = Sha256::new();
        for part in [self.model_sha256.as_str(), ENGINE_VERSION, &device_label(device)] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        for id in ids {
            h.update(id.to_le_bytes());
        }
        self.dir.join(format!("{}.kv", &hex::encode(h.finalize())[..40]))
    }

    /// The stored prefix `ids`, verified: `Ok(None)` when there is no file, an error saying why when the
    /// file is not this model's, this engine's, these ids', or is damaged.
    pub(crate) fn load(&self, ids: &[u32], device: &Device) -> Result<Option<KvCache>> {
        let path = self.path(ids, device);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        self.parse(&bytes, ids, device).with_context(|| format!("cached prompt prefix {}", path.display())).map(Some)
    }

    fn parse(&self, bytes: &[u8], ids: &[u32], device: &Device) -> Result<KvCache> {
        let mut r = bytes;
        let mut magic = vec![0u8; MAGIC.len()];
        r.read_exact(&mut magic).context("the file is too short")?;
        ensure!(magic == MAGIC, "not a polysum prompt-prefix file");
        let mut len = [0u8; 8];
        r.read_exact(&mut len).context("the file is too short")?;
        let len = u64::from_le_bytes(len) as usize;
        ensure!(len <= r.len(), "the header is cut short");
        let header: Header = serde_json::from_slice(&r[..len]).context("the header is not readable")?;
        let body = &r[len..];
        if header.model_sha256 != self.model_sha256 {
            bail!("it was computed with another model (sha256 {}, not {})", header.model_sha256, self.model_sha256);
        }
        ensure!(
            header.engine == ENGINE_VERSION,
            "it was computed by engine {}, this is {ENGINE_VERSION}",
            header.engine
        );
        ensure!(header.device == device_label(device), "it was computed on another device ({})", header.device);
        let dtype: DType = header.dtype.parse().map_err(|_| anyhow::anyhow!("an unknown dtype {}", header.dtype))?;
        ensure!(header.ids == ids, "it holds another prompt prefix");
        ensure!(hex::encode(Sha256::digest(body)) == header.body_sha256, "its contents are damaged (sha256 mismatch)");
        let n = ids.len();
        let mut at = 0usize;
        let mut take = |heads: usize, dim: usize| -> Result<Tensor> {
            let count = heads * n * dim;
            let end = at + count * 4;
            ensure!(end <= body.len(), "its contents are cut short");
            let values: Vec<f32> =
                body[at..end].chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
            at = end;
            Ok(Tensor::from_vec(values, (1, heads, n, dim), device)?.to_dtype(dtype)?)
        };
        let mut layers = Vec::with_capacity(header.layers.len());
        for shape in &header.layers {
            layers.push(match shape {
                Some([heads, dim]) => Some((take(*heads, *dim)?, take(*heads, *dim)?)),
                None => None,
            });
        }
        ensure!(at == body.len(), "it has bytes past its last layer");
        KvCache::from_layers(layers, n)
    }

    /// Write the prefix `ids` and its cache atomically (a reader never sees half a file).
    pub(crate) fn save(&self, ids: &[u32], kv: &KvCache, device: &Device) -> Result<PathBuf> {
        let mut body = Vec::new();
        let mut shapes = Vec::new();
        let mut dtype = DType::F32;
        for layer in kv.layer_views()? {
            match layer {
                Some((k, v)) => {
                    let (_, heads, _, dim) = k.dims4()?;
                    dtype = k.dtype();
                    shapes.push(Some([heads, dim]));
                    for t in [k, v] {
                        for x in t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()? {
                            body.extend_from_slice(&x.to_le_bytes());
                        }
                    }
                }
                None => shapes.push(None),
            }
        }
        let header = Header {
            engine: ENGINE_VERSION.to_string(),
            model_sha256: self.model_sha256.clone(),
            device: device_label(device),
            dtype: dtype.as_str().to_string(),
            ids: ids.to_vec(),
            layers: shapes,
            body_sha256: hex::encode(Sha256::digest(&body)),
        };
        let header = serde_json::to_vec(&header)?;
        std::fs::create_dir_all(&self.dir).with_context(|| format!("creating {}", self.dir.display()))?;
        let path = self.path(ids, device);
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir)?;
        tmp.write_all(MAGIC)?;
        tmp.write_all(&(header.len() as u64).to_le_bytes())?;
        tmp.write_all(&header)?;
        tmp.write_all(&body)?;
        tmp.persist(&path).with_context(|| format!("writing {}", path.display()))?;
        Ok(path)
    }
}

fn device_label(device: &Device) -> String {
    format!("{:?}", device.location())
}

/// Prompts of earlier scoring calls kept in memory: a checker asks about the same text again after a
/// repair, and about a translation's text after its source's, so the latest few are worth keeping; more
/// would rarely be asked again before they went.
const RECENT_CAPACITY: usize = 2;

/// Tokens a prompt must share with a recent prompt before its cache is copied: a shorter match (a chat
/// template's first tokens) costs less to compute than the copy.
const MIN_RECENT_MATCH: usize = 32;

/// The prefixes of one engine.
#[derive(Default)]
pub struct PrefixCache {
    /// Prefixes asked for by name (`Engine::cache_prefix`), least recently used first.
    entries: Mutex<Vec<Arc<Entry>>>,
    /// Prompt starts the engine kept on its own (`remember`), least recently used first: apart from
    /// `entries`, so a stream of one-off prompts never pushes out a few-shot prefix.
    recent: Mutex<Vec<Arc<Entry>>>,
    store: Option<PrefixStore>,
}

impl PrefixCache {
    pub fn set_store(&mut self, store: Option<PrefixStore>) {
        self.store = store;
    }

    pub fn store(&self) -> Option<&PrefixStore> {
        self.store.as_ref()
    }

    pub fn contains(&self, ids: &[u32]) -> bool {
        self.entries.lock().expect("prefix cache lock").iter().any(|e| e.ids == ids)
    }

    pub(crate) fn insert(&self, ids: Vec<u32>, kv: KvCache) {
        let mut entries = self.entries.lock().expect("prefix cache lock");
        entries.retain(|e| e.ids != ids);
        if entries.len() >= CAPACITY {
            entries.remove(0);
        }
        entries.push(Arc::new(Entry { ids, kv }));
    }

    /// Whether a recent prompt start already holds every token of `ids` (nothing to `remember`).
    pub(crate) fn recalls(&self, ids: &[u32]) -> bool {
        self.recent.lock().expect("prefix cache lock").iter().any(|e| e.ids.starts_with(ids))
    }

    /// Keep the single-row cache `kv` of the prompt start `ids` among the recent ones (in memory only),
    /// for a later scoring call that begins the same way. A recent start that `ids` extends goes.
    pub(crate) fn remember(&self, ids: Vec<u32>, kv: KvCache) {
        let mut recent = self.recent.lock().expect("prefix cache lock");
        if let Some(i) = recent.iter().position(|e| e.ids.starts_with(&ids)) {
            let held = recent.remove(i);
            recent.push(held);
            return;
        }
        recent.retain(|e| !ids.starts_with(&e.ids));
        if recent.len() >= RECENT_CAPACITY {
            recent.remove(0);
        }
        recent.push(Arc::new(Entry { ids, kv }));
    }

    /// The cached prefix that every prompt agrees with longest, cut to at most `limit` tokens: an own copy
    /// of its cache and how many tokens it covers. `None` when no entry matches a token of every prompt.
    /// With `recent`, the prompt starts of earlier scoring calls count too, where they match long enough.
    pub(crate) fn lookup(&self, prompts: &[Vec<u32>], limit: usize, recent: bool) -> Result<Option<(KvCache, usize)>> {
        let matched = |e: &Entry| prompts.iter().map(|p| common_len(&e.ids, p)).min().unwrap_or(0).min(limit);
        // The best of one list, moved to its end (the last to go) only when it is the one used.
        let best = |list: &[Arc<Entry>], floor: usize| -> Option<(usize, usize)> {
            let (i, n) = list.iter().enumerate().map(|(i, e)| (i, matched(e))).max_by_key(|&(_, n)| n)?;
            (n > 0 && n >= floor).then_some((i, n))
        };
        let mut named = self.entries.lock().expect("prefix cache lock");
        let mut kept = self.recent.lock().expect("prefix cache lock");
        let from_named = best(&named, 1);
        let from_recent = if recent { best(&kept, MIN_RECENT_MATCH) } else { None };
        let (list, (i, n)) = match (from_named, from_recent) {
            (Some(a), Some(b)) if b.1 > a.1 => (&mut *kept, b),
            (Some(a), _) => (&mut *named, a),
            (None, Some(b)) => (&mut *kept, b),
            (None, None) => return Ok(None),
        };
        let entry = list.remove(i);
        list.push(Arc::clone(&entry));
        drop((named, kept));
        // The copy is made outside the locks: it is the slow part, and other calls may look up meanwhile.
        Ok(Some((entry.kv.copy_prefix(n)?, n)))
    }
}

fn common_len(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(n: usize, fill: f32) -> KvCache {
        let t = Tensor::full(fill, (1, 2, n, 4), &Device::Cpu).unwrap();
        KvCache::from_layers(vec![Some((t.clone(), t)), None], n).unwrap()
    }

    #[test]
    fn lookup_takes_the_longest_agreement_within_the_limit() {
        let cache = PrefixCache::default();
        cache.insert(vec![1, 2, 3, 4], kv(4, 1.0));
        cache.insert(vec![1, 2, 9], kv(3, 2.0));
        let (c, n) = cache.lookup(&[vec![1, 2, 3, 4, 5], vec![1, 2, 3, 7]], 100, false).unwrap().unwrap();
        assert_eq!((n, c.seq_len(0)), (3, 3));
        let (_, n) = cache.lookup(&[vec![1, 2, 3, 4, 5]], 2, false).unwrap().unwrap();
        assert_eq!(n, 2);
        assert!(cache.lookup(&[vec![5, 6]], 100, false).unwrap().is_none());
    }

    #[test]
    fn recent_prompt_starts_serve_only_scoring_lookups_and_never_displace_named_ones() {
        let cache = PrefixCache::default();
        let long: Vec<u32> = (0..40).collect();
        cache.insert(vec![0, 1, 2], kv(3, 1.0));
        cache.remember(long.clone(), kv(40, 2.0));
        let prompt = [long.iter().copied().chain([99]).collect::<Vec<u32>>()];
        // A generation call sees only the named prefix; a scoring call the longer recent one.
        assert_eq!(cache.lookup(&prompt, 100, false).unwrap().unwrap().1, 3);
        assert_eq!(cache.lookup(&prompt, 100, true).unwrap().unwrap().1, 40);
        // A recent match too short to be worth its copy is passed over.
        let short = [vec![0, 1, 2, 3, 4, 77]];
        assert_eq!(cache.lookup(&short, 100, true).unwrap().unwrap().1, 3);
        // A start already held is not kept twice; one that extends a held start replaces it; past the
        // capacity the least recently used goes, and the named prefix stays.
        assert!(cache.recalls(&long[..10]) && !cache.recalls(&prompt[0]));
        cache.remember(prompt[0].clone(), kv(41, 3.0));
        assert_eq!(cache.recent.lock().unwrap().len(), 1);
        for first in [100, 200] {
            cache.remember((first..first + 40).collect(), kv(40, 4.0));
        }
        assert!(!cache.recalls(&prompt[0]));
        assert_eq!(cache.recent.lock().unwrap().len(), RECENT_CAPACITY);
        assert!(cache.contains(&[0, 1, 2]));
    }

    #[test]
    fn a_lookup_copy_does_not_write_into_the_entry() {
        let cache = PrefixCache::default();
        cache.insert(vec![1, 2, 3], kv(3, 1.0));
        let (mut c, _) = cache.lookup(&[vec![1, 2, 3, 4]], 3, false).unwrap().unwrap();
        c.push_step(&[1]).unwrap();
        let add = Tensor::full(9f32, (1, 2, 1, 4), &Device::Cpu).unwrap();
        c.append(0, &add, &add).unwrap();
        let (again, _) = cache.lookup(&[vec![1, 2, 3, 4]], 3, false).unwrap().unwrap();
        let (k, _) = again.layer_views().unwrap()[0].clone().unwrap();
        assert_eq!(k.dim(2).unwrap(), 3);
        assert!(k.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|&x| x == 1.0));
    }

    #[test]
    fn the_store_round_trips_and_rejects_foreign_and_damaged_files() {
        let dir = tempfile::tempdir().unwrap();
        let ids = vec![5, 6, 7];
        let a = PrefixStore::new(dir.path(), "aaaa");
        let path = a.save(&ids, &kv(3, 0.5), &Device::Cpu).unwrap();
        let back = a.load(&ids, &Device::Cpu).unwrap().unwrap();
        let (k, _) = back.layer_views().unwrap()[0].clone().unwrap();
        assert!(k.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().all(|&x| x == 0.5));
        assert!(back.layer_views().unwrap()[1].is_none());
        assert!(a.load(&[5, 6], &Device::Cpu).unwrap().is_none());

        // Another model's store finds the file only if it is put under its name: then it refuses it.
        let b = PrefixStore::new(dir.path(), "bbbb");
        std::fs::copy(&path, b.path(&ids, &Device::Cpu)).unwrap();
        let Err(err) = b.load(&ids, &Device::Cpu) else { panic!("a foreign file was read") };
        let err = format!("{err:#}");
        assert!(err.contains("another model"), "{err}");

        let mut bytes = std::fs::read(&path).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let Err(err) = a.load(&ids, &Device::Cpu) else { panic!("a damaged file was read") };
        let err = format!("{err:#}");
        assert!(err.contains("damaged"), "{err}");
        std::fs::write(&path, &bytes[..10]).unwrap();
        assert!(a.load(&ids, &Device::Cpu).is_err());
    }
}
