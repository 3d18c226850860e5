//! `summarize --shard K/N` and `polysum merge`, through the binary, with the deterministic fake model:
//! shards 0/3, 1/3 and 2/3 cover every article exactly once, and merging them gives the index of one
//! unsharded run (compared without the timing fields `updated_at` and `seconds`, which differ between
//! any two runs).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Output};

use serde_json::Value;

fn polysum(args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_polysum"))
        .args(args)
        .env_remove("POLYSUM_CONFIG")
        .env("POLYSUM_TEST_FAKE_MODEL", "1")
        .current_dir(std::env::temp_dir())
        .output()
        .unwrap();
    eprintln!("--- polysum {}\n{}", args.join(" "), String::from_utf8_lossy(&out.stderr));
    out
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn index(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("index.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// A record without the fields that record when it was made.
fn untimed(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("updated_at");
    if let Some(sums) = v["summaries"].as_object_mut() {
        for s in sums.values_mut() {
            s.as_object_mut().unwrap().remove("seconds");
        }
    }
    v
}

#[test]
fn three_shards_cover_every_article_once_and_merge_to_the_unsharded_index() {
    let tmp = tempfile::tempdir().unwrap();
    let input = common::articles(tmp.path(), 9);
    let whole = tmp.path().join("whole");
    assert_eq!(
        polysum(&["summarize", s(&input), "--out", s(&whole), "--model", "fake", "--quiet"]).status.code(),
        Some(0)
    );
    let all = index(&whole);
    assert_eq!(all.len(), 9);

    let mut owner: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    let mut dirs = Vec::new();
    for k in 0..3 {
        let out = tmp.path().join(format!("shard-{k}"));
        let o = polysum(&[
            "summarize",
            s(&input),
            "--out",
            s(&out),
            "--model",
            "fake",
            "--quiet",
            "--shard",
            &format!("{k}/3"),
        ]);
        assert_eq!(o.status.code(), Some(0));
        for rec in index(&out) {
            owner.entry(rec["id"].as_str().unwrap().to_string()).or_default().push(k);
            // The per-article output is there too, and only in its own shard's folder.
            assert!(out.join(format!("{}.json", rec["id"].as_str().unwrap())).is_file());
        }
        dirs.push(out);
    }
    let ids: Vec<String> = all.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(
        owner.keys().cloned().collect::<Vec<_>>(),
        ids,
        "the shards together hold exactly the articles of one run"
    );
    for (id, shards) in &owner {
        assert_eq!(shards.len(), 1, "{id} is in shards {shards:?}");
    }
    // Nine articles in three shards: a partition this uneven would mean the hash is not used.
    assert!(owner.values().filter(|s| s[0] == 0).count() < 9);

    let merged = tmp.path().join("merged");
    let mut args = vec!["merge".to_string()];
    args.extend(dirs.iter().map(|d| s(d).to_string()));
    args.extend(["--out".to_string(), s(&merged).to_string()]);
    let o = polysum(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(0));
    let m: Vec<Value> = index(&merged).into_iter().map(untimed).collect();
    let w: Vec<Value> = all.into_iter().map(untimed).collect();
    assert_eq!(m, w);
    for id in &ids {
        assert!(merged.join(format!("{id}.json")).is_file() && merged.join(format!("{id}.md")).is_file(), "{id}");
    }
    // The merged folder is a normal output folder: a run over the same inputs has nothing left to do.
    let o = polysum(&["summarize", s(&input), "--out", s(&merged), "--model", "fake", "--log-format", "json"]);
    assert_eq!(o.status.code(), Some(0));
    let both = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    let last = both.lines().find(|l| l.contains("\"finished\"")).unwrap_or("").to_string();
    let fin: Value = serde_json::from_str(&last).unwrap_or(Value::Null);
    assert_eq!(fin["skipped"], 9, "{last}");
}

#[test]
fn merge_refuses_one_id_with_two_contents() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    for (dir, text) in
        [(&a, "The mayor opened the bridge on Monday morning."), (&b, "The school closed for the holidays on Friday.")]
    {
        std::fs::create_dir_all(dir.join("in")).unwrap();
        std::fs::write(dir.join("in/same.txt"), format!("Title\n\n{text} It was a busy day in town for everyone."))
            .unwrap();
        assert_eq!(
            polysum(&["summarize", s(&dir.join("in")), "--out", s(&dir.join("out")), "--model", "fake", "--quiet"])
                .status
                .code(),
            Some(0)
        );
    }
    let merged = tmp.path().join("m");
    let o = polysum(&["merge", s(&a.join("out")), s(&b.join("out")), "--out", s(&merged)]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("\"same.txt\"") && err.contains("different articles"), "{err}");
    assert!(!merged.join("same.txt.json").exists() && !merged.join("index.jsonl").exists());
}

#[test]
fn bad_shard_specs_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let input = common::articles(tmp.path(), 1);
    for bad in ["3/3", "1/0", "one/two"] {
        let o =
            polysum(&["summarize", s(&input), "--out", s(&tmp.path().join("o")), "--model", "fake", "--shard", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}");
        assert!(String::from_utf8_lossy(&o.stderr).contains("--shard"), "{bad}");
    }
}
