//! Attention of decode steps on the CPU (one query per sequence, or the few positions of a drafted step,
//! each as its own decode query), over each row's real cache slots only.
//!
//! Why not the masked matmuls that prompt steps use: a row joined to a batch has its slot axis left-padded
//! to the longest row, and although masked slots add exact zeros, the padding shifts which terms the
//! softmax and P·V reductions group together, so a sequence's numbers changed with whatever else was in
//! its batch (enough to flip a near-tied greedy token after a few steps). Here every row's query is
//! reduced over its own slots, in slot order, one at a time: a sequence decodes to the same bits alone or
//! batched. It also skips the padded slots and the mask tensors, and reads each cached key and value once
//! for all the query heads that share it.

use anyhow::{ensure, Result};
use candle_core::{DType, Layout, Storage, Tensor};

/// For each row and each of its last `t` slots (the step's queries), row by row, the cache slots that
/// query sees, in order: the real tokens at or before its position (within `window` positions for
/// sliding-window layers), as a decode step at that position sees them. `None` when a query slot is
/// padding (a prompt chunk in which that row has no token), which only the masked path handles.
pub(crate) fn visible_slots(positions: &[Vec<Option<u32>>], t: usize, window: Option<usize>) -> Option<Vec<Vec<u32>>> {
    let mut out = Vec::with_capacity(positions.len() * t);
    for pos in positions {
        for query_slot in pos.len().checked_sub(t)?..pos.len() {
            let q = pos[query_slot]?;
            let seen = pos.iter().enumerate().filter_map(|(s, p)| sees(q, (*p)?, window).then_some(s as u32));
            out.push(seen.collect());
        }
    }
    Some(out)
}

/// Whether a query at position `q` sees the token at position `p` of its own row: at or before it, and
/// within `window` positions on sliding-window layers (the rule of every attention path on the CPU).
pub(super) fn sees(q: u32, p: u32, window: Option<usize>) -> bool {
    p <= q && window.is_none_or(|w| ((q - p) as usize) < w)
}

/// `q`: `[rows, n_head, t, head_dim]`; `k`, `v`: `[rows, n_kv_head, slots, head_dim]` f32 on the CPU (views
/// of the cache, rows of `head_dim` contiguous); `slots[row * t + i]`: what `visible_slots` gave for query
/// `i` of `row`. Returns the attention output `[rows, t, n_head * head_dim]`.
pub(crate) fn forward(q: &Tensor, k: &Tensor, v: &Tensor, slots: &[Vec<u32>], scale: f32) -> Result<Tensor> {
    let (rows, n_head, t, d) = q.dims4()?;
    let (_, n_kv, _, _) = k.dims4()?;
    ensure!(slots.len() == rows * t && n_head % n_kv == 0, "decode attention takes each query's visible slots");
    let rep = n_head / n_kv;
    let q = q.flatten_all()?.to_vec1::<f32>()?;
    read_cache(k, v, |keys, values| {
        let mut out = vec![0f32; rows * t * n_head * d];
        let out_ptr = super::gemv::SendPtr(out.as_mut_ptr());
        // One task per (query, KV head): its `rep` query heads read each key and value once. A query of a
        // drafted step is computed exactly as a decode step at its position would compute it.
        candle_core::utils::barrier_pool().execute_chunked(rows * t * n_kv, |tasks| {
            let out = out_ptr;
            for task in tasks {
                let (query, g) = (task / n_kv, task % n_kv);
                let (r, qi) = (query / t, query % t);
                let seen = &slots[query];
                let n = seen.len();
                let queries: Vec<Vec<f32>> = (0..rep)
                    .map(|i| q[((r * n_head + g * rep + i) * t + qi) * d..][..d].iter().map(|x| x * scale).collect())
                    .collect();
                let mut scores = vec![0f32; rep * n];
                for (j, &s) in seen.iter().enumerate() {
                    let kr = keys.slot(r, g, s as usize);
                    for (i, qi) in queries.iter().enumerate() {
                        scores[i * n + j] = dot(qi, kr);
                    }
                }
                let mut acc = vec![0f32; rep * d];
                let mut sums = vec![0f32; rep];
                for i in 0..rep {
                    let row = &mut scores[i * n..(i + 1) * n];
                    let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                    for p in row.iter_mut() {
                        *p = (*p - max).exp();
                        sums[i] += *p;
                    }
                }
                for (j, &s) in seen.iter().enumerate() {
                    let vr = values.slot(r, g, s as usize);
                    for i in 0..rep {
                        axpy(&mut acc[i * d..(i + 1) * d], scores[i * n + j], vr);
                    }
                }
                for i in 0..rep {
                    let inv = 1.0 / sums[i];
                    let h = g * rep + i;
                    // SAFETY: each (query, head) output belongs to exactly one task, within `out`'s
                    // `rows * t * n_head * d` values; `out` outlives the pool call.
                    let dst = unsafe { std::slice::from_raw_parts_mut(out.0.add((query * n_head + h) * d), d) };
                    for (o, a) in dst.iter_mut().zip(&acc[i * d..(i + 1) * d]) {
                        *o = a * inv;
                    }
                }
            }
        });
        Ok(Tensor::from_vec(out, (rows, t, n_head * d), k.device())?)
    })?
}

/// One of a layer's cache tensors (`[rows, n_kv_head, slots, head_dim]`, f32 on the CPU) read in place.
pub(super) struct CacheBuf<'a> {
    pub(super) data: &'a [f32],
    start: usize,
    stride: [usize; 3],
    head_dim: usize,
}

impl<'a> CacheBuf<'a> {
    /// Where slot `s` of KV head `g` of row `r` starts in `data`.
    pub(super) fn at(&self, r: usize, g: usize, s: usize) -> usize {
        self.start + r * self.stride[0] + g * self.stride[1] + s * self.stride[2]
    }

    /// From one slot to the next in `data`.
    pub(super) fn slot_stride(&self) -> usize {
        self.stride[2]
    }

    /// The `head_dim` values of slot `s` of KV head `g` of row `r`.
    pub(super) fn slot(&self, r: usize, g: usize, s: usize) -> &'a [f32] {
        &self.data[self.at(r, g, s)..][..self.head_dim]
    }
}

/// Calls `f` with the cached keys `k` and values `v` read in place: both `[rows, n_kv_head, slots, head_dim]`
/// f32 on the CPU, views of the cache with each slot's `head_dim` values contiguous. Errors when they are not,
/// or when a view's last value lies past its buffer (so every `at` of a slot in the shape is within `data`).
pub(super) fn read_cache<R>(k: &Tensor, v: &Tensor, f: impl FnOnce(CacheBuf<'_>, CacheBuf<'_>) -> R) -> Result<R> {
    let (rows, n_kv, slots, d) = k.dims4()?;
    ensure!(v.dims4()? == (rows, n_kv, slots, d), "keys and values of different shapes");
    ensure!(rows * n_kv * slots * d > 0, "an empty cache view");
    ensure!(k.dtype() == DType::F32 && v.dtype() == DType::F32, "the CPU attention paths read an f32 cache");
    let (ks, kl) = k.storage_and_layout();
    let (vs, vl) = v.storage_and_layout();
    let (Storage::Cpu(kc), Storage::Cpu(vc)) = (&*ks, &*vs) else { anyhow::bail!("the cache is not on the CPU") };
    fn buf<'a>(
        data: &'a [f32],
        l: &Layout,
        (rows, n_kv, slots, d): (usize, usize, usize, usize),
    ) -> Result<CacheBuf<'a>> {
        let st = l.stride();
        ensure!(st[3] == 1, "cache rows must be contiguous");
        let b = CacheBuf { data, start: l.start_offset(), stride: [st[0], st[1], st[2]], head_dim: d };
        ensure!(b.at(rows - 1, n_kv - 1, slots - 1) + d <= data.len(), "a cache view is larger than its buffer");
        Ok(b)
    }
    let shape = (rows, n_kv, slots, d);
    Ok(f(buf(kc.as_slice::<f32>()?, kl, shape)?, buf(vc.as_slice::<f32>()?, vl, shape)?))
}

/// Eight independent lanes, summed in a fixed order: vectorizes, and gives the same bits every call.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ac.remainder().iter().zip(bc.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ac.zip(bc) {
        for l in 0..8 {
            lanes[l] = x[l].mul_add(y[l], lanes[l]);
        }
    }
    let [a0, a1, a2, a3, a4, a5, a6, a7] = lanes;
    ((a0 + a4) + (a1 + a5)) + ((a2 + a6) + (a3 + a7)) + tail
}

fn axpy(acc: &mut [f32], p: f32, v: &[f32]) {
    for (a, x) in acc.iter_mut().zip(v) {
        *a = p.mul_add(*x, *a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The masked-matmul reference for one query per row.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, slots: &[Vec<u32>], scale: f64) -> Tensor {
        let (rows, n_head, _, d) = q.dims4().unwrap();
        let (_, n_kv, n_slots, _) = k.dims4().unwrap();
        let rep = n_head / n_kv;
        let mut mask = vec![-1e9f32; rows * n_slots];
        for (r, s) in slots.iter().enumerate() {
            for &s in s {
                mask[r * n_slots + s as usize] = 0.0;
            }
        }
        let mask = Tensor::from_vec(mask, (rows, 1, 1, n_slots), &Device::Cpu).unwrap();
        let q = (q.reshape((rows, n_kv, rep, d)).unwrap() * scale).unwrap();
        let scores = q.matmul(&k.t().unwrap()).unwrap().broadcast_add(&mask).unwrap();
        let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        probs.matmul(v).unwrap().reshape((rows, 1, n_head * d)).unwrap()
    }

    #[test]
    fn matches_masked_attention_and_ignores_padding() {
        let dev = Device::Cpu;
        let (rows, n_head, n_kv, slots, d) = (2, 6, 2, 37, 20);
        let q = Tensor::randn(0f32, 1., (rows, n_head, 1, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1., (rows, n_kv, slots, d), &dev).unwrap();
        let v = Tensor::randn(0f32, 1., (rows, n_kv, slots, d), &dev).unwrap();
        // Row 0 sees everything; row 1 was left-padded by 9 slots and has a hole from a padded chunk.
        let seen = vec![(0..slots as u32).collect::<Vec<_>>(), (9..slots as u32).filter(|s| *s != 20).collect()];
        let got = forward(&q, &k, &v, &seen, 0.3).unwrap();
        let want = reference(&q, &k, &v, &seen, 0.3);
        let diff = (got - want).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap();
        assert!(diff < 1e-5, "max difference {diff}");

        // Row 1 alone (its slots moved to the front, as when it is not padded) gives the same bits.
        let idx = Tensor::new(seen[1].as_slice(), &dev).unwrap();
        let take = |t: &Tensor| t.narrow(0, 1, 1).unwrap().index_select(&idx, 2).unwrap();
        let alone =
            forward(&q.narrow(0, 1, 1).unwrap(), &take(&k), &take(&v), &[(0..seen[1].len() as u32).collect()], 0.3)
                .unwrap();
        let batched = forward(&q, &k, &v, &seen, 0.3).unwrap().narrow(0, 1, 1).unwrap();
        assert_eq!(
            alone.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            batched.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    /// The queries of a drafted step give the bits of decode steps one position at a time.
    #[test]
    fn several_queries_equal_one_decode_step_per_position() {
        let dev = Device::Cpu;
        let (n_head, n_kv, slots, d, t) = (4, 2, 23, 16, 3);
        let q = Tensor::randn(0f32, 1., (1, n_head, t, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1., (1, n_kv, slots, d), &dev).unwrap();
        let v = Tensor::randn(0f32, 1., (1, n_kv, slots, d), &dev).unwrap();
        let positions = vec![(0..slots as u32).map(Some).collect::<Vec<_>>()];
        let all = forward(&q, &k, &v, &visible_slots(&positions, t, None).unwrap(), 0.25).unwrap();
        for i in 0..t {
            // The decode step at the position of query i: the cache ends at its slot.
            let upto = slots - t + i + 1;
            let one = forward(
                &q.narrow(2, i, 1).unwrap().contiguous().unwrap(),
                &k.narrow(2, 0, upto).unwrap(),
                &v.narrow(2, 0, upto).unwrap(),
                &visible_slots(&[positions[0][..upto].to_vec()], 1, None).unwrap(),
                0.25,
            )
            .unwrap();
            assert_eq!(
                all.narrow(1, i, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                one.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
                "query {i}"
            );
        }
    }

    #[test]
    fn visible_slots_skip_padding_and_apply_the_window() {
        let positions = vec![vec![Some(0), Some(1), Some(2), Some(3)], vec![None, None, Some(0), Some(1)]];
        assert_eq!(visible_slots(&positions, 1, None), Some(vec![vec![0, 1, 2, 3], vec![2, 3]]));
        assert_eq!(visible_slots(&positions, 1, Some(2)), Some(vec![vec![2, 3], vec![2, 3]]));
        assert_eq!(visible_slots(&[vec![Some(0), None]], 1, None), None, "a padding query is left to the masked path");
        // Two queries per row: each sees what a decode step at its own position would.
        let two = visible_slots(&positions, 2, None).unwrap();
        assert_eq!(two, vec![vec![0, 1, 2], vec![0, 1, 2, 3], vec![2], vec![2, 3]]);
        assert_eq!(visible_slots(&positions, 2, Some(2)).unwrap(), vec![vec![1, 2], vec![2, 3], vec![2], vec![2, 3]]);
        assert_eq!(visible_slots(&positions, 3, None), None, "row 1's third-last slot is padding");
        assert_eq!(visible_slots(&positions, 5, None), None, "more queries than slots");
    }
}
