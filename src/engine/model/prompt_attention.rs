//! Attention of prompt steps on the CPU: each query over the run of cache slots it sees, a block of queries
//! at a time.
//!
//! Why not the masked matmuls that the GPU way uses: a causal step multiplies every query against every
//! slot and then masks away the slots after it (half of the product in a prompt's first chunk), and the
//! mask, the scaled scores and each softmax pass go through memory as tensors of their own. Here a block of
//! queries of one KV head (all the query heads that share it) is multiplied against only the slots its
//! queries see, the softmax runs in place on each query's own run, and the probabilities go straight into
//! the product with the values. A row's queries see contiguous runs whenever its slots hold consecutive
//! positions (every CPU prompt step, computed one row at a time); anything else returns `None` from
//! [`visible_runs`] and takes the masked path.

use std::ops::Range;
use std::sync::Mutex;

use anyhow::{ensure, Result};
use candle_core::Tensor;

/// Queries per work item: the item's scores (its queries times the query heads of one KV head, against the
/// slots they see) stay within a core's L2 at a few thousand slots.
const QUERY_BLOCK: usize = 32;

/// For each row and each of its last `t` slots (the step's queries), row by row, the run of cache slots
/// that query sees: the real tokens at or before its position (within `window` positions for
/// sliding-window layers). `None` when a query slot is padding or some query's slots are not one run.
pub(crate) fn visible_runs(positions: &[Vec<Option<u32>>], t: usize, window: Option<usize>) -> Option<Vec<Range<u32>>> {
    let mut out = Vec::with_capacity(positions.len() * t);
    for pos in positions {
        for query_slot in pos.len().checked_sub(t)?..pos.len() {
            let q = pos[query_slot]?;
            let (mut first, mut last, mut count) = (u32::MAX, 0, 0);
            for (s, p) in pos.iter().enumerate() {
                if p.is_some_and(|p| super::decode_attention::sees(q, p, window)) {
                    first = first.min(s as u32);
                    last = s as u32;
                    count += 1;
                }
            }
            if count == 0 || last - first + 1 != count {
                return None;
            }
            out.push(first..last + 1);
        }
    }
    Some(out)
}

/// `q`: `[rows, n_head, t, head_dim]`; `k`, `v`: `[rows, n_kv_head, slots, head_dim]` f32 on the CPU (views
/// of the cache, rows of `head_dim` contiguous); `runs[row * t + i]`: what `visible_runs` gave for query `i`
/// of `row`. Returns the attention output `[rows, t, n_head * head_dim]`.
pub(crate) fn forward(q: &Tensor, k: &Tensor, v: &Tensor, runs: &[Range<u32>], scale: f32) -> Result<Tensor> {
    let (rows, n_head, t, d) = q.dims4()?;
    let (_, n_kv, slots, _) = k.dims4()?;
    ensure!(runs.len() == rows * t && n_head % n_kv == 0, "prompt attention takes each query's run of slots");
    ensure!(
        runs.iter().all(|r| r.start < r.end && r.end as usize <= slots),
        "a query's run is empty or past the cache"
    );
    let rep = n_head / n_kv;
    let q = q.flatten_all()?.to_vec1::<f32>()?;
    super::decode_attention::read_cache(k, v, |keys, values| {
        let mut out = vec![0f32; rows * t * n_head * d];
        let out_ptr = super::gemv::SendPtr(out.as_mut_ptr());
        let blocks = t.div_ceil(QUERY_BLOCK);
        let pool = candle_core::utils::barrier_pool();
        // A block's queries of row r, their runs, and the span of slots they see together.
        let block_runs = |r: usize, block: usize| {
            let queries = block * QUERY_BLOCK..((block + 1) * QUERY_BLOCK).min(t);
            let own = &runs[r * t + queries.start..r * t + queries.end];
            let lo = own.iter().map(|s| s.start).min().expect("a block has queries") as usize;
            let hi = own.iter().map(|s| s.end).max().expect("a block has queries") as usize;
            (queries, own, lo..hi)
        };
        // Every thread's working buffers are made here, on the calling thread, sized for the widest block: the
        // allocator keeps what a pool thread frees in that thread's own heap, so buffers allocated there would
        // stay resident beside the calling thread's.
        let m_max = rep * QUERY_BLOCK.min(t);
        let widest = (0..rows * blocks).map(|rb| block_runs(rb / blocks, rb % blocks).2.len()).max().unwrap_or(0);
        let scratch: Vec<Mutex<Scratch>> =
            (0..=pool.n_workers()).map(|_| Mutex::new(Scratch::with_capacity(m_max, widest, d))).collect();
        // Later blocks see more slots: they go first, so the last items the workers pick up are the short ones.
        pool.execute_chunked(rows * n_kv * blocks, |tasks| {
            let out = out_ptr;
            // As many buffers as threads, each held only while a thread works through its tasks: one is free.
            let mut scratch = scratch.iter().find_map(|s| s.try_lock().ok()).expect("a buffer per thread");
            let Scratch { qb, scores, sums, y } = &mut *scratch;
            for task in tasks {
                let block = blocks - 1 - task / (rows * n_kv);
                let (r, g) = ((task % (rows * n_kv)) / n_kv, task % n_kv);
                let (queries, own, seen) = block_runs(r, block);
                let (nq, lo, n) = (queries.len(), seen.start, seen.len());
                // The block's queries of every head that shares KV head g, scaled: row `h * nq + i`.
                qb.clear();
                for h in 0..rep {
                    let head = (r * n_head + g * rep + h) * t;
                    qb.extend(q[(head + queries.start) * d..(head + queries.end) * d].iter().map(|x| x * scale));
                }
                let m = rep * nq;
                scores.clear();
                scores.resize(m * n, 0.0);
                // The keys of slots lo..hi read as the d × n transpose.
                let key = Strided { data: keys.data, offset: keys.at(r, g, lo), row: 1, col: keys.slot_stride() };
                matmul(scores, qb, key, (m, n, d));
                sums.clear();
                for (i, row) in scores.chunks_exact_mut(n).enumerate() {
                    let run = &own[i % nq];
                    let (a, b) = (run.start as usize - lo, run.end as usize - lo);
                    row[..a].fill(0.0);
                    row[b..].fill(0.0);
                    sums.push(super::vector_math::softmax_numerators(&mut row[a..b]));
                }
                y.clear();
                y.resize(m * d, 0.0);
                let value =
                    Strided { data: values.data, offset: values.at(r, g, lo), row: values.slot_stride(), col: 1 };
                matmul(y, scores, value, (m, d, n));
                for (i, (yr, sum)) in y.chunks_exact(d).zip(sums.iter()).enumerate() {
                    let (h, qi) = (i / nq, queries.start + i % nq);
                    let inv = 1.0 / sum;
                    // SAFETY: each (row, query, head) output belongs to exactly one task, within `out`'s
                    // `rows * t * n_head * d` values; `out` outlives the pool call.
                    let dst = unsafe {
                        std::slice::from_raw_parts_mut(out.0.add(((r * t + qi) * n_head + g * rep + h) * d), d)
                    };
                    for (o, x) in dst.iter_mut().zip(yr) {
                        *o = x * inv;
                    }
                }
            }
        });
        Ok(Tensor::from_vec(out, (rows, t, n_head * d), k.device())?)
    })?
}

/// One thread's working buffers for a work item: the block's scaled queries, their scores (then
/// probabilities), each row's softmax sum, and the output rows before normalising.
struct Scratch {
    qb: Vec<f32>,
    scores: Vec<f32>,
    sums: Vec<f32>,
    y: Vec<f32>,
}

impl Scratch {
    fn with_capacity(m: usize, n: usize, d: usize) -> Self {
        Scratch {
            qb: Vec::with_capacity(m * d),
            scores: Vec::with_capacity(m * n),
            sums: Vec::with_capacity(m),
            y: Vec::with_capacity(m * d),
        }
    }
}

/// A matrix read in place: element (i, j) is `data[offset + i·row + j·col]`.
struct Strided<'a> {
    data: &'a [f32],
    offset: usize,
    row: usize,
    col: usize,
}

/// `dst = lhs · rhs` on the calling thread, with `(m, n, k)`: `dst` m × n and `lhs` m × k, both row-major,
/// `rhs` k × n. Panics when a matrix does not fit its slice.
fn matmul(dst: &mut [f32], lhs: &[f32], rhs: Strided, (m, n, k): (usize, usize, usize)) {
    assert!(m > 0 && n > 0 && k > 0 && dst.len() == m * n && lhs.len() == m * k);
    assert!(rhs.offset + (k - 1) * rhs.row + (n - 1) * rhs.col < rhs.data.len(), "rhs past its slice");
    // SAFETY: `dst` and `lhs` are exactly m × n and m × k row-major, and every element of `rhs` is within
    // its slice (asserted: its strides are non-negative, so the last element is the farthest); `dst` is
    // borrowed mutably, so nothing else reads or writes it meanwhile.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            lhs.as_ptr(),
            1,
            k as isize,
            rhs.data.as_ptr().add(rhs.offset),
            rhs.col as isize,
            rhs.row as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The masked-matmul reference: every query against every slot, the slots outside its run masked.
    fn reference(q: &Tensor, k: &Tensor, v: &Tensor, runs: &[Range<u32>], scale: f64) -> Tensor {
        let (rows, n_head, t, d) = q.dims4().unwrap();
        let (_, n_kv, slots, _) = k.dims4().unwrap();
        let rep = n_head / n_kv;
        let mut mask = vec![-1e9f32; rows * t * slots];
        for (i, run) in runs.iter().enumerate() {
            for s in run.clone() {
                mask[i * slots + s as usize] = 0.0;
            }
        }
        let mask = Tensor::from_vec(mask, (rows, 1, 1, t, slots), &Device::Cpu).unwrap();
        let q = (q.reshape((rows, n_kv, rep * t, d)).unwrap() * scale).unwrap();
        let scores = q.matmul(&k.t().unwrap()).unwrap().reshape((rows, n_kv, rep, t, slots)).unwrap();
        let scores = scores.broadcast_add(&mask).unwrap().reshape((rows, n_kv, rep * t, slots)).unwrap();
        let probs = candle_nn::ops::softmax_last_dim(&scores).unwrap();
        let y = probs.matmul(v).unwrap().reshape((rows, n_head, t, d)).unwrap();
        y.transpose(1, 2).unwrap().reshape((rows, t, n_head * d)).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b).unwrap().abs().unwrap().max_all().unwrap().to_scalar::<f32>().unwrap()
    }

    #[test]
    fn matches_masked_attention_over_several_blocks_with_a_cached_past() {
        let dev = Device::Cpu;
        // 70 queries (three blocks, the last one short) after 25 cached slots; a sliding window as well.
        let (n_head, n_kv, past, t, d) = (6, 2, 25, 70, 24);
        let slots = past + t;
        let q = Tensor::randn(0f32, 1., (1, n_head, t, d), &dev).unwrap();
        let k = Tensor::randn(0f32, 1., (1, n_kv, slots, d), &dev).unwrap();
        let v = Tensor::randn(0f32, 1., (1, n_kv, slots, d), &dev).unwrap();
        let positions = vec![(0..slots as u32).map(Some).collect::<Vec<_>>()];
        for window in [None, Some(16)] {
            let runs = visible_runs(&positions, t, window).unwrap();
            let got = forward(&q, &k, &v, &runs, 0.3).unwrap();
            let want = reference(&q, &k, &v, &runs, 0.3);
            assert!(max_diff(&got, &want) < 1e-5, "window {window:?}: max difference {}", max_diff(&got, &want));
        }
    }

    #[test]
    fn rows_are_independent_and_views_of_a_larger_cache_are_read_in_place() {
        let dev = Device::Cpu;
        let (n_head, n_kv, t, d, capacity) = (4, 4, 9, 16, 40);
        let q = Tensor::randn(0f32, 1., (2, n_head, t, d), &dev).unwrap();
        // The cache buffers are longer than the slots in use, as `KvCache` keeps them.
        let kbuf = Tensor::randn(0f32, 1., (2, n_kv, capacity, d), &dev).unwrap();
        let vbuf = Tensor::randn(0f32, 1., (2, n_kv, capacity, d), &dev).unwrap();
        let (k, v) = (kbuf.narrow(2, 0, t + 3).unwrap(), vbuf.narrow(2, 0, t + 3).unwrap());
        let positions = vec![(0..(t + 3) as u32).map(Some).collect::<Vec<_>>(); 2];
        let runs = visible_runs(&positions, t, None).unwrap();
        let both = forward(&q, &k, &v, &runs, 0.25).unwrap();
        let want = reference(&q, &k.contiguous().unwrap(), &v.contiguous().unwrap(), &runs, 0.25);
        assert!(max_diff(&both, &want) < 1e-5);
        let second = forward(
            &q.narrow(0, 1, 1).unwrap(),
            &k.narrow(0, 1, 1).unwrap(),
            &v.narrow(0, 1, 1).unwrap(),
            &runs[t..],
            0.25,
        )
        .unwrap();
        assert_eq!(
            both.narrow(0, 1, 1).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            second.flatten_all().unwrap().to_vec1::<f32>().unwrap()
        );
    }

    #[test]
    fn visible_runs_follow_positions_and_refuse_what_is_not_one_run() {
        let positions = vec![vec![Some(0), Some(1), Some(2), Some(3)]];
        assert_eq!(visible_runs(&positions, 2, None), Some(vec![0..3, 0..4]));
        assert_eq!(visible_runs(&positions, 2, Some(2)), Some(vec![1..3, 2..4]));
        let padded = vec![vec![None, None, Some(0), Some(1)]];
        assert_eq!(visible_runs(&padded, 2, None), Some(vec![2..3, 2..4]));
        assert_eq!(visible_runs(&padded, 3, None), None, "a padding query is left to the masked path");
        let hole = vec![vec![Some(0), None, Some(1), Some(2)]];
        assert_eq!(visible_runs(&hole, 1, None), None, "a hole in the slots is left to the masked path");
        assert_eq!(visible_runs(&positions, 5, None), None, "more queries than slots");
    }
}
