//! `--shard K/N`: N independent runs, each with its own output folder, that together cover every article
//! exactly once, without talking to each other.
//!
//! An article belongs to shard `shard_of(sha256, N)`: the first 8 bytes of its content hash (the
//! `sha256` of the output records, as hex) read as a big-endian u64, modulo N. The content hash does not
//! depend on file names, input order or the machine, so every run computes the same partition. A record
//! without a content hash (an unreadable file) is placed by the SHA-256 of its output id instead.

use anyhow::{bail, Result};
use sha2::{Digest, Sha256};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ShardSpec {
    /// This run's shard, `0 <= index < count`.
    pub(crate) index: u64,
    pub(crate) count: u64,
}

impl ShardSpec {
    /// `K/N` with `0 <= K < N`.
    pub(crate) fn parse(s: &str) -> Result<ShardSpec> {
        let Some((k, n)) = s.trim().split_once('/') else {
            bail!("--shard {s:?}: expected K/N, e.g. 0/4 for the first of four shards");
        };
        let (Ok(index), Ok(count)) = (k.trim().parse::<u64>(), n.trim().parse::<u64>()) else {
            bail!("--shard {s:?}: K and N must be whole numbers, as in 0/4");
        };
        if count == 0 {
            bail!("--shard {s:?}: N must be at least 1");
        }
        if index >= count {
            bail!("--shard {s:?}: K counts from 0, so it must be less than N (0/{count} to {}/{count})", count - 1);
        }
        Ok(ShardSpec { index, count })
    }

    /// Whether the article with this content hash (hex SHA-256) is this shard's.
    pub(crate) fn owns(&self, sha256_hex: &str) -> bool {
        shard_of(sha256_hex, self.count) == self.index
    }

    /// For a record that may lack a content hash: its hash, else the hash of its id.
    pub(crate) fn owns_record(&self, sha256_hex: Option<&str>, id: &str) -> bool {
        match sha256_hex {
            Some(h) => self.owns(h),
            None => self.owns(&hex::encode(Sha256::digest(id.as_bytes()))),
        }
    }
}

impl std::fmt::Display for ShardSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The shard of a content hash: its first 16 hex digits (8 bytes) as a big-endian u64, modulo `n`. A
/// string that is not hex (never the case for polysum's hashes) is hashed first.
pub(crate) fn shard_of(sha256_hex: &str, n: u64) -> u64 {
    assert!(n > 0, "shard count must be at least 1");
    let head = sha256_hex.get(..16).and_then(|h| u64::from_str_radix(h, 16).ok());
    let value = head.unwrap_or_else(|| {
        let d = Sha256::digest(sha256_hex.as_bytes());
        u64::from_be_bytes(d[..8].try_into().unwrap())
    });
    value % n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_validate() {
        assert_eq!(ShardSpec::parse("1/3").unwrap(), ShardSpec { index: 1, count: 3 });
        assert_eq!(ShardSpec::parse(" 0 / 1 ").unwrap().to_string(), "0/1");
        for bad in ["3/3", "1/0", "x/2", "2", "-1/3", ""] {
            assert!(ShardSpec::parse(bad).is_err(), "{bad}");
        }
        assert!(ShardSpec::parse("3/3").unwrap_err().to_string().contains("less than N"));
    }

    #[test]
    fn first_eight_bytes_mod_n() {
        // 0x0000000000000007 mod 3 = 1; 0xffffffffffffffff mod 2 = 1.
        assert_eq!(shard_of("0000000000000007aa", 3), 1);
        assert_eq!(shard_of("ffffffffffffffff00", 2), 1);
        assert_eq!(shard_of("0000000000000006", 3), 0);
    }

    #[test]
    fn every_hash_in_exactly_one_shard() {
        let n = 5;
        let mut counts = [0usize; 5];
        for i in 0..1000u32 {
            let h = hex::encode(Sha256::digest(i.to_le_bytes()));
            let owners: Vec<u64> = (0..n).filter(|k| ShardSpec { index: *k, count: n }.owns(&h)).collect();
            assert_eq!(owners.len(), 1);
            counts[owners[0] as usize] += 1;
        }
        // Roughly balanced (200 each expected).
        assert!(counts.iter().all(|c| (150..250).contains(c)), "{counts:?}");
    }
}
