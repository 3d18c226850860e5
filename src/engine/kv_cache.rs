//! The KV cache of a batch of sequences, and where each of its slots sits in its sequence.
//!
//! All rows share one slot axis: a forward step appends the same number of slots to every row, left-padding
//! the rows that have fewer new tokens. Each slot records the token's position in its own sequence, or
//! `None` for padding, which is what the attention masks are built from. Buffers are allocated for the slots
//! the rows are expected to reach (`reserve`: prompt plus the most output asked for), as llama.cpp sizes its
//! context, so neither a decode step nor a doubling copies the cache; past that they grow by doubling.

use anyhow::{ensure, Result};
use candle_core::{Device, Tensor};

/// One layer's keys and values: `[rows, kv_heads, capacity, head_dim]`, of which `len` slots are filled.
struct LayerKv {
    k: Tensor,
    v: Tensor,
    len: usize,
}

pub(crate) struct KvCache {
    layers: Vec<Option<LayerKv>>,
    /// `positions[row][slot]`: the sequence position of the token in that slot, `None` for padding.
    positions: Vec<Vec<Option<u32>>>,
    /// The slot count the buffers are allocated for when they next grow (0: not known, grow by doubling).
    reserve: usize,
}

impl KvCache {
    pub(crate) fn new(n_layer: usize, rows: usize) -> Self {
        Self { layers: (0..n_layer).map(|_| None).collect(), positions: vec![vec![]; rows], reserve: 0 }
    }

    /// Size the buffers, when they are next allocated or grown, for `slots` slots per row: what the rows
    /// will reach if every one writes all the output it may. A cache that outgrows it grows by doubling.
    pub(crate) fn reserve(&mut self, slots: usize) {
        self.reserve = slots;
    }

    pub(crate) fn rows(&self) -> usize {
        self.positions.len()
    }

    /// Slots per row (padding included).
    pub(crate) fn slots(&self) -> usize {
        self.positions.first().map_or(0, |p| p.len())
    }

    /// Tokens of `row` already in the cache: the position its next token takes.
    pub(crate) fn seq_len(&self, row: usize) -> usize {
        self.positions[row].iter().filter(|p| p.is_some()).count()
    }

    pub(crate) fn positions(&self) -> &[Vec<Option<u32>>] {
        &self.positions
    }

    /// Reserve the slots of one step: `new_tokens[row]` real tokens per row, left-padded to the longest.
    /// Returns each new slot's position (padding gets position 0, which the masks make irrelevant).
    pub(crate) fn push_step(&mut self, new_tokens: &[usize]) -> Result<Vec<Vec<Option<u32>>>> {
        ensure!(new_tokens.len() == self.rows(), "a step has {} rows, the cache {}", new_tokens.len(), self.rows());
        let width = new_tokens.iter().copied().max().unwrap_or(0);
        let mut step = Vec::with_capacity(self.rows());
        for (row, &n) in new_tokens.iter().enumerate() {
            let start = self.seq_len(row) as u32;
            let pad = width - n;
            let slots: Vec<Option<u32>> =
                (0..width).map(|j| if j < pad { None } else { Some(start + (j - pad) as u32) }).collect();
            self.positions[row].extend_from_slice(&slots);
            step.push(slots);
        }
        Ok(step)
    }

    /// Append one layer's new keys and values (`[rows, kv_heads, t, head_dim]`) and return views of the
    /// whole cache for that layer.
    pub(crate) fn append(&mut self, layer: usize, k: &Tensor, v: &Tensor) -> Result<(Tensor, Tensor)> {
        let (rows, heads, t, dim) = k.dims4()?;
        let entry = &mut self.layers[layer];
        let needed = entry.as_ref().map_or(0, |e| e.len) + t;
        let capacity = entry.as_ref().map_or(0, |e| e.k.dim(2).unwrap_or(0));
        if needed > capacity {
            let new_cap = if needed <= self.reserve { self.reserve } else { needed.max(capacity * 2).max(64) };
            let grow = |old: Option<&Tensor>, len: usize| -> Result<Tensor> {
                let buf = Tensor::zeros((rows, heads, new_cap, dim), k.dtype(), k.device())?;
                if let Some(old) = old {
                    buf.slice_set(&old.narrow(2, 0, len)?.contiguous()?, 2, 0)?;
                }
                Ok(buf)
            };
            let len = entry.as_ref().map_or(0, |e| e.len);
            let nk = grow(entry.as_ref().map(|e| &e.k), len)?;
            let nv = grow(entry.as_ref().map(|e| &e.v), len)?;
            *entry = Some(LayerKv { k: nk, v: nv, len });
        }
        let e = entry.as_mut().expect("allocated above");
        e.k.slice_set(&k.contiguous()?, 2, e.len)?;
        e.v.slice_set(&v.contiguous()?, 2, e.len)?;
        e.len += t;
        Ok((e.k.narrow(2, 0, e.len)?, e.v.narrow(2, 0, e.len)?))
    }

    /// Drop the last `n` slots of every row: the drafted tokens a step computed and the model did not keep
    /// (`crate::engine::lookup`). The buffers stay; the next step writes over those slots.
    pub(crate) fn drop_last(&mut self, n: usize) -> Result<()> {
        ensure!(n <= self.slots(), "dropping {n} slots from a cache of {}", self.slots());
        for l in self.layers.iter_mut().flatten() {
            ensure!(n <= l.len, "dropping {n} slots from a layer of {}", l.len);
            l.len -= n;
        }
        for p in &mut self.positions {
            p.truncate(p.len() - n);
        }
        Ok(())
    }

    /// An independent copy: appending to it leaves this cache as it is (a shared prefix, one row at a time).
    pub(crate) fn fork(&self) -> Result<KvCache> {
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref()
                    .map(|l| -> Result<LayerKv> { Ok(LayerKv { k: l.k.copy()?, v: l.v.copy()?, len: l.len }) })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache { layers, positions: self.positions.clone(), reserve: self.reserve })
    }

    /// An independent single-row copy of this single-row cache's first `len` slots: a cached prompt prefix
    /// cut where a prompt stops agreeing with it. The copy owns its buffers, so appending to it cannot
    /// write into a cache other callers share.
    pub fn copy_prefix(&self, len: usize) -> Result<KvCache> {
        ensure!(self.rows() == 1, "only a single-row cache can be cut");
        ensure!(len <= self.slots(), "cutting {len} slots from a cache of {}", self.slots());
        ensure!(self.positions[0].iter().all(|p| p.is_some()), "a cache with padding cannot be cut");
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref()
                    .map(|l| -> Result<LayerKv> {
                        Ok(LayerKv { k: l.k.narrow(2, 0, len)?.copy()?, v: l.v.narrow(2, 0, len)?.copy()?, len })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache { layers, positions: vec![self.positions[0][..len].to_vec()], reserve: 0 })
    }

    /// Each layer's filled keys and values, `[rows, kv_heads, slots, head_dim]` (`None` for a layer that
    /// has seen no step).
    pub fn layer_views(&self) -> Result<Vec<Option<(Tensor, Tensor)>>> {
        self.layers
            .iter()
            .map(|l| {
                l.as_ref()
                    .map(|l| -> Result<_> { Ok((l.k.narrow(2, 0, l.len)?, l.v.narrow(2, 0, l.len)?)) })
                    .transpose()
            })
            .collect()
    }

    /// A single-row cache of a whole sequence from its layers' keys and values (`[1, kv_heads, n, head_dim]`
    /// each, as `layer_views` gives them): a prompt prefix read back from disk.
    pub fn from_layers(layers: Vec<Option<(Tensor, Tensor)>>, n: usize) -> Result<KvCache> {
        let layers = layers
            .into_iter()
            .map(|l| {
                l.map(|(k, v)| -> Result<LayerKv> {
                    ensure!(k.dims4()?.0 == 1 && k.dim(2)? == n && k.dims() == v.dims(), "a layer of the wrong shape");
                    Ok(LayerKv { k, v, len: n })
                })
                .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache { layers, positions: vec![(0..n as u32).map(Some).collect()], reserve: 0 })
    }

    /// A cache of `rows` rows, each a copy of this single-row cache (a shared prompt prefix).
    pub(crate) fn broadcast_rows(&self, rows: usize) -> Result<KvCache> {
        ensure!(self.rows() == 1, "only a single-row cache can be broadcast");
        let layers = self
            .layers
            .iter()
            .map(|l| {
                l.as_ref()
                    .map(|l| -> Result<LayerKv> {
                        let rep = |t: &Tensor| -> Result<Tensor> {
                            let (_, h, cap, d) = t.dims4()?;
                            Ok(t.broadcast_as((rows, h, cap, d))?.contiguous()?)
                        };
                        Ok(LayerKv { k: rep(&l.k)?, v: rep(&l.v)?, len: l.len })
                    })
                    .transpose()
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache { layers, positions: vec![self.positions[0].clone(); rows], reserve: 0 })
    }

    /// Keep only the given rows (in that order), e.g. dropping sequences that finished.
    pub(crate) fn retain_rows(&mut self, keep: &[usize]) -> Result<()> {
        if keep.len() == self.rows() && keep.iter().enumerate().all(|(i, &r)| i == r) {
            return Ok(());
        }
        let device = self.layers.iter().flatten().next().map(|l| l.k.device().clone()).unwrap_or(Device::Cpu);
        let idx = Tensor::new(keep.iter().map(|&r| r as u32).collect::<Vec<_>>().as_slice(), &device)?;
        for l in self.layers.iter_mut().flatten() {
            l.k = l.k.index_select(&idx, 0)?;
            l.v = l.v.index_select(&idx, 0)?;
        }
        self.positions = keep.iter().map(|&r| self.positions[r].clone()).collect();
        Ok(())
    }
}

impl KvCache {
    /// Append the rows of `other` after this cache's rows (a sequence joining a running batch). The two
    /// slot axes are aligned on their ends, the shorter one left-padded, as `push_step` pads.
    pub(crate) fn join(&mut self, other: KvCache) -> Result<()> {
        if other.rows() == 0 {
            return Ok(());
        }
        if self.rows() == 0 {
            *self = other;
            return Ok(());
        }
        ensure!(
            self.layers.len() == other.layers.len(),
            "joining caches of {} and {} layers",
            self.layers.len(),
            other.layers.len()
        );
        let slots = self.slots().max(other.slots());
        let (pad_a, pad_b) = (slots - self.slots(), slots - other.slots());
        // The rows keep their ends aligned, so each side's expected growth counts from the joined slot axis.
        let ahead = |c: &KvCache| c.reserve.saturating_sub(c.slots());
        self.reserve = slots + ahead(self).max(ahead(&other));
        for (a, b) in self.layers.iter_mut().zip(other.layers) {
            *a = match (a.take(), b) {
                (Some(a), Some(b)) => {
                    let both = |x: &Tensor, xa: usize, y: &Tensor, ya: usize| -> Result<Tensor> {
                        Ok(Tensor::cat(
                            &[left_pad(&x.narrow(2, 0, xa)?, pad_a)?, left_pad(&y.narrow(2, 0, ya)?, pad_b)?],
                            0,
                        )?)
                    };
                    Some(LayerKv { k: both(&a.k, a.len, &b.k, b.len)?, v: both(&a.v, a.len, &b.v, b.len)?, len: slots })
                }
                (None, None) => None,
                _ => anyhow::bail!("joining caches filled up to different layers"),
            };
        }
        let pad = |rows: Vec<Vec<Option<u32>>>, n: usize| {
            rows.into_iter().map(move |r| std::iter::repeat_n(None, n).chain(r).collect::<Vec<_>>())
        };
        let mine = std::mem::take(&mut self.positions);
        self.positions = pad(mine, pad_a).chain(pad(other.positions, pad_b)).collect();
        Ok(())
    }

    /// Drop the leading slots that are padding in every row (left by rows that left the batch), so a
    /// batch that sequences keep joining does not grow its slot axis without end.
    pub(crate) fn trim_padding(&mut self) -> Result<()> {
        let lead = self.positions.iter().map(|p| p.iter().take_while(|s| s.is_none()).count()).min().unwrap_or(0);
        if lead == 0 {
            return Ok(());
        }
        for l in self.layers.iter_mut().flatten() {
            l.k = l.k.narrow(2, lead, l.len - lead)?.contiguous()?;
            l.v = l.v.narrow(2, lead, l.len - lead)?.contiguous()?;
            l.len -= lead;
        }
        for p in &mut self.positions {
            p.drain(..lead);
        }
        self.reserve = self.reserve.saturating_sub(lead);
        Ok(())
    }
}

/// `[rows, heads, n, dim]` → `[rows, heads, pad + n, dim]`, zeros first.
fn left_pad(t: &Tensor, pad: usize) -> Result<Tensor> {
    if pad == 0 {
        return Ok(t.contiguous()?);
    }
    let (rows, heads, _, dim) = t.dims4()?;
    Ok(Tensor::cat(&[Tensor::zeros((rows, heads, pad, dim), t.dtype(), t.device())?, t.clone()], 2)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::DType;

    #[test]
    fn steps_left_pad_and_count_positions() {
        let mut c = KvCache::new(1, 2);
        let step = c.push_step(&[3, 1]).unwrap();
        assert_eq!(step[0], vec![Some(0), Some(1), Some(2)]);
        assert_eq!(step[1], vec![None, None, Some(0)]);
        let step = c.push_step(&[1, 1]).unwrap();
        assert_eq!(step, vec![vec![Some(3)], vec![Some(1)]]);
        assert_eq!(c.seq_len(0), 4);
        assert_eq!(c.seq_len(1), 2);
        assert_eq!(c.slots(), 4);
    }

    #[test]
    fn dropped_slots_are_written_over_by_the_next_step() {
        let mut c = KvCache::new(1, 1);
        let step = |c: &mut KvCache, values: &[f32]| {
            c.push_step(&[values.len()]).unwrap();
            let k = Tensor::new(values, &Device::Cpu).unwrap().reshape((1, 1, values.len(), 1)).unwrap();
            c.append(0, &k, &k).unwrap().0.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        };
        step(&mut c, &[1.0, 2.0]);
        step(&mut c, &[3.0, 4.0, 5.0]);
        c.drop_last(2).unwrap();
        assert_eq!(c.seq_len(0), 3);
        assert_eq!(step(&mut c, &[9.0]), vec![1.0, 2.0, 3.0, 9.0]);
        assert_eq!(c.positions()[0], vec![Some(0), Some(1), Some(2), Some(3)]);
        assert!(c.drop_last(5).is_err());
    }

    #[test]
    fn append_grows_and_keeps_contents() {
        let mut c = KvCache::new(1, 1);
        let mut all = vec![];
        for i in 0..100 {
            let k = Tensor::full(i as f32, (1, 2, 1, 4), &Device::Cpu).unwrap();
            let (kk, _) = c.append(0, &k, &k).unwrap();
            all.push(i as f32);
            assert_eq!(kk.dim(2).unwrap(), i + 1);
        }
        let (k, _) = c
            .append(
                0,
                &Tensor::zeros((1, 2, 0, 4), DType::F32, &Device::Cpu).unwrap(),
                &Tensor::zeros((1, 2, 0, 4), DType::F32, &Device::Cpu).unwrap(),
            )
            .unwrap();
        let got: Vec<f32> =
            k.narrow(1, 0, 1).unwrap().narrow(3, 0, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(got, all);
    }

    #[test]
    fn broadcast_then_retain() {
        let mut c = KvCache::new(1, 1);
        c.push_step(&[2]).unwrap();
        let k = Tensor::arange(0f32, 16., &Device::Cpu).unwrap().reshape((1, 2, 2, 4)).unwrap();
        c.append(0, &k, &k).unwrap();
        let mut b = c.broadcast_rows(3).unwrap();
        assert_eq!(b.rows(), 3);
        assert_eq!(b.seq_len(2), 2);
        b.push_step(&[1, 2, 1]).unwrap();
        let add = Tensor::full(100f32, (3, 2, 2, 4), &Device::Cpu).unwrap();
        b.append(0, &add, &add).unwrap();
        b.retain_rows(&[2, 0]).unwrap();
        assert_eq!(b.rows(), 2);
        assert_eq!(b.seq_len(0), 3);
        assert_eq!(b.positions()[0], vec![Some(0), Some(1), None, Some(2)]);
    }

    fn capacity(c: &KvCache) -> usize {
        c.layers[0].as_ref().map_or(0, |l| l.k.dim(2).unwrap())
    }

    #[test]
    fn a_reserved_cache_is_allocated_once_and_grows_past_it_by_doubling() {
        let step = |c: &mut KvCache, n: usize, x: f32| {
            let k = Tensor::full(x, (1, 1, n, 2), &Device::Cpu).unwrap();
            c.append(0, &k, &k).unwrap().0
        };
        let mut c = KvCache::new(1, 1);
        c.reserve(100);
        step(&mut c, 70, 1.0);
        assert_eq!(capacity(&c), 100, "the prompt step allocates the reserved slots");
        for i in 0..30 {
            step(&mut c, 1, 2.0 + i as f32);
            assert_eq!(capacity(&c), 100, "decode steps within the reserve write in place");
        }
        let k = step(&mut c, 1, 40.0);
        assert_eq!(capacity(&c), 200, "past the reserve the buffers double");
        let col: Vec<f32> = k.narrow(3, 0, 1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(col.len(), 101);
        assert_eq!((col[0], col[69], col[70], col[99], col[100]), (1.0, 1.0, 2.0, 31.0, 40.0));
    }

    #[test]
    fn a_join_reserves_for_the_row_with_the_most_growth_ahead_and_trimming_takes_the_padding_off() {
        let mut a = KvCache::new(1, 1);
        a.reserve(10);
        a.push_step(&[6]).unwrap();
        let ka = Tensor::full(1f32, (1, 1, 6, 2), &Device::Cpu).unwrap();
        a.append(0, &ka, &ka).unwrap();
        let mut b = KvCache::new(1, 1);
        b.reserve(12);
        b.push_step(&[2]).unwrap();
        let kb = Tensor::full(2f32, (1, 1, 2, 2), &Device::Cpu).unwrap();
        b.append(0, &kb, &kb).unwrap();
        a.join(b).unwrap();
        // b's ten slots ahead count from the joined axis of six.
        assert_eq!(a.reserve, 16);
        a.push_step(&[1, 1]).unwrap();
        let both = Tensor::full(3f32, (2, 1, 1, 2), &Device::Cpu).unwrap();
        a.append(0, &both, &both).unwrap();
        assert_eq!(capacity(&a), 16);
        a.retain_rows(&[1]).unwrap();
        a.trim_padding().unwrap();
        assert_eq!(a.slots(), 3);
        assert_eq!(a.reserve, 12, "the leading padding that went was part of the reserve");
    }

    #[test]
    fn join_aligns_ends_and_trim_drops_common_padding() {
        let mut a = KvCache::new(1, 1);
        a.push_step(&[3]).unwrap();
        let ka = Tensor::full(1f32, (1, 1, 3, 2), &Device::Cpu).unwrap();
        a.append(0, &ka, &ka).unwrap();
        let mut b = KvCache::new(1, 1);
        b.push_step(&[1]).unwrap();
        let kb = Tensor::full(2f32, (1, 1, 1, 2), &Device::Cpu).unwrap();
        b.append(0, &kb, &kb).unwrap();
        a.join(b).unwrap();
        assert_eq!(a.rows(), 2);
        assert_eq!(a.positions()[1], vec![None, None, Some(0)]);
        assert_eq!(a.seq_len(1), 1);
        // A decode step after the join appends to both rows.
        a.push_step(&[1, 1]).unwrap();
        let step = Tensor::full(3f32, (2, 1, 1, 2), &Device::Cpu).unwrap();
        let (k, _) = a.append(0, &step, &step).unwrap();
        let row1: Vec<f32> = k.get(1).unwrap().flatten_all().unwrap().to_vec1().unwrap();
        assert_eq!(row1, vec![0., 0., 0., 0., 2., 2., 3., 3.]);
        // The long row leaves: the short row's padding goes with it.
        a.retain_rows(&[1]).unwrap();
        a.trim_padding().unwrap();
        assert_eq!(a.positions()[0], vec![Some(0), Some(1)]);
        a.push_step(&[1]).unwrap();
        let one = Tensor::full(4f32, (1, 1, 1, 2), &Device::Cpu).unwrap();
        let (k, _) = a.append(0, &one, &one).unwrap();
        assert_eq!(k.flatten_all().unwrap().to_vec1::<f32>().unwrap(), vec![2., 2., 3., 3., 4., 4.]);
    }
}
