"""The checker benchmark of scripts/eval (sets claims-real and claims-edited): `polysum check` on labelled
claims, one call per article and claim language with all its claims.

  claims-real    eval/claims/real-<split>.jsonl: sentences of polysum's own summaries and translations of dev
                 articles, each labelled supported or unsupported by a person reading it against its article.
                 The main measure: balanced accuracy, unsupported being the class to catch.
  claims-edited  eval/claims/edited-<split>.jsonl (scripts/claims.py edited): article sentences with one
                 controlled edit each, and unedited ones. The share of edits caught, the false-alarm rate on
                 the unedited, both per kind of edit.

Confidence intervals are percentile bootstraps that resample articles, not claims: the claims of one article
share its evidence and errors, so resampling them alone would claim more certainty than the data gives.
"""

import hashlib
import json
import random
import re
import subprocess
import time
from collections import Counter, defaultdict
from pathlib import Path

from evaltext import fmt, fold

ROOT = Path(__file__).resolve().parent.parent
CLAIM_SETS = ["claims-real", "claims-edited"]
BOOTSTRAP = 1000


def read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def claims_file(name, split):
    kind = name.split("-", 1)[1]
    return ROOT / "eval" / "claims" / f"{kind}-{split}.jsonl"


def article_text(data, cache, row):
    key = (row["source_set"], row["source_id"])
    if row["source_set"] not in cache:
        cache[row["source_set"]] = {it["id"]: it for it in read_jsonl(data / f"{row['source_set']}.jsonl")}
    return cache[row["source_set"]][key[1]][row.get("article_field", "text")]


def source_lang(row, item_lang):
    return row.get("source_lang") or item_lang


def groups(rows, limit):
    """Claims grouped by (article, claim language), in file order; with `limit`, whole groups are taken per
    language until each language has at least `limit` claims."""
    by_key = defaultdict(list)
    for r in rows:
        by_key[(r["source_set"], r["source_id"], r.get("article_field", "text"), r["lang"])].append(r)
    if not limit:
        return list(by_key.items())
    out, taken = [], Counter()
    for key, rs in by_key.items():
        if taken[key[3]] < limit:
            out.append((key, rs))
            taken[key[3]] += len(rs)
    return out


def run_check(binary, article, claims, lang, src_lang, extra, log):
    """One `polysum check` call; returns (exit code, the JSON objects it printed, wall seconds)."""
    args = [str(binary), "check", str(article), str(claims), "--lang", lang, "--source-lang", src_lang, "--json"] + extra
    t = time.time()
    with open(log, "a") as err:
        p = subprocess.run(args, stdout=subprocess.PIPE, stderr=err, text=True)
    out = []
    for line in p.stdout.splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return p.returncode, out, time.time() - t


def predict(name, a, data, work, binary, extra):
    """Runs the checker over a claims set; returns the rows with `verdict`, `score` and `failed_checks`
    added (None where the checker gave no answer), and run figures."""
    rows = read_jsonl(claims_file(name, a.split))
    folder = work / name
    folder.mkdir(parents=True, exist_ok=True)
    cache, out, calls, failed_calls, reused, seconds = {}, [], 0, 0, 0, 0.0
    for (set_name, source_id, field, lang), rs in groups(rows, a.claims_limit):
        text = article_text(data, cache, rs[0])
        item_lang = cache[set_name][source_id].get("tgt_lang" if field == "tgt_text" else "lang")
        claims_text = "".join(" ".join(r["claim"].split()) + "\n" for r in rs)
        src = source_lang(rs[0], item_lang)
        # Answers are kept per call, named by everything that decides them, so that a run that was stopped
        # or that gained claims redoes only the calls it lacks (same --work).
        key = hashlib.sha256(json.dumps([text, claims_text, lang, src, extra, str(binary)]).encode()).hexdigest()[:16]
        done = folder / f"{key}.answers.json"
        if done.exists():
            answers, wall = json.loads(done.read_text())
            reused += 1
        else:
            art = folder / f"{key}.article.txt"
            art.write_text(text + "\n")
            cl = folder / f"{key}.claims.txt"
            cl.write_text(claims_text)
            code, answers, wall = run_check(binary, art, cl, lang, src, extra, work / "polysum.log")
            if code != 0 or len(answers) != len(rs):
                failed_calls += 1
                answers = []
            else:
                done.write_text(json.dumps([answers, wall]))
        calls += 1
        seconds += wall
        for i, r in enumerate(rs):
            ans = answers[i] if i < len(answers) else {}
            out.append({**r, "verdict": ans.get("verdict"), "score": ans.get("score"),
                        "failed_checks": ans.get("failed_checks"), "evidence": ans.get("evidence"),
                        "checked_as": ans.get("checked_as")})
    for r in out:
        r["baseline_verdict"] = lexical_baseline(r["claim"], article_text(data, cache, r))
    pred = work / f"{name}-predictions.jsonl"
    pred.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in out))
    answered = sum(r["verdict"] is not None for r in out)
    return out, {"calls": calls, "failed_calls": failed_calls, "reused_calls": reused, "claims": len(out), "answered": answered,
                 "check_seconds": round(seconds, 1), "seconds_per_claim": round(seconds / max(answered, 1), 2)}


WORD = re.compile(r"\w+")


def lexical_baseline(claim, article):
    """The reference point every checker must beat, computed in the same run: a claim is supported when
    every word and number of it occurs in the article. It is blind across languages (an ES claim about an
    EN article is always "unsupported" to it), so it counts on same-language claims only."""
    words = set(WORD.findall(fold(article)))
    return "supported" if all(w in words for w in WORD.findall(fold(claim))) else "unsupported"


def baseline(rows):
    """Balanced accuracy of the lexical baseline on the same-language claims among rows."""
    same = [{**r, "verdict": r["baseline_verdict"]} for r in rows
            if r.get("baseline_verdict") and r["lang"] == r.get("source_lang", r["lang"])]
    v = balanced_accuracy(same)
    return round(v, 1) if v is not None else None


def balanced_accuracy(rows):
    """Mean of the recall on unsupported claims and the recall on supported ones; None when a class is
    missing."""
    pos = [r for r in rows if r["label"] == "unsupported"]
    neg = [r for r in rows if r["label"] == "supported"]
    if not pos or not neg:
        return None
    tpr = sum(r["verdict"] == "unsupported" for r in pos) / len(pos)
    tnr = sum(r["verdict"] == "supported" for r in neg) / len(neg)
    return 100 * (tpr + tnr) / 2


def share(rows, verdict):
    return 100 * sum(r["verdict"] == verdict for r in rows) / len(rows) if rows else None


def bootstrap(rows, stat, seed=18):
    """95 % percentile interval of `stat` over resamples of whole articles."""
    by_article = defaultdict(list)
    for r in rows:
        by_article[(r["source_set"], r["source_id"])].append(r)
    keys = sorted(by_article)
    rng = random.Random(seed)
    values = []
    for _ in range(BOOTSTRAP):
        sample = [r for _ in keys for r in by_article[keys[rng.randrange(len(keys))]]]
        v = stat(sample)
        if v is not None:
            values.append(v)
    if not values:
        return None
    values.sort()
    return [round(values[int(0.025 * len(values))], 1), round(values[int(0.975 * len(values)) - 1], 1)]


def auc(rows):
    """ROC AUC of the score (higher meaning supported) against the labels: how well the score ranks, whatever
    the threshold. None without scores or without both classes."""
    scored = [(r["score"], r["label"] == "supported") for r in rows if isinstance(r.get("score"), (int, float))]
    pos = [s for s, ok in scored if ok]
    neg = [s for s, ok in scored if not ok]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return round(100 * wins / (len(pos) * len(neg)), 1)


def check_breakdown(rows):
    """For each failed check: how often it fires on claims labelled unsupported and on supported ones."""
    fired = defaultdict(Counter)
    for r in rows:
        for c in r.get("failed_checks") or []:
            name = c if isinstance(c, str) else json.dumps(c, sort_keys=True)
            fired[name][r["label"]] += 1
    totals = Counter(r["label"] for r in rows)
    return {name: {"on_unsupported": c["unsupported"], "on_supported": c["supported"],
                   "precision": round(100 * c["unsupported"] / (c["unsupported"] + c["supported"]), 1),
                   "of_unsupported": round(100 * c["unsupported"] / max(totals["unsupported"], 1), 1),
                   "of_supported": round(100 * c["supported"] / max(totals["supported"], 1), 1)}
            for name, c in sorted(fired.items(), key=lambda kv: -sum(kv[1].values()))}


def score_real(rows):
    rows = [r for r in rows if r["verdict"] is not None]
    res = {}
    for part, sel in [("all", rows), ("en", [r for r in rows if r["lang"] == "en"]),
                      ("es", [r for r in rows if r["lang"] == "es"]),
                      ("summary", [r for r in rows if r["kind"] == "summary"]),
                      ("translation", [r for r in rows if r["kind"] == "translation"])]:
        if not sel:
            continue
        unsup = [r for r in sel if r["label"] == "unsupported"]
        sup = [r for r in sel if r["label"] == "supported"]
        res[part] = {"n": len(sel), "n_unsupported": len(unsup),
                     "balanced_accuracy": round(balanced_accuracy(sel), 1) if balanced_accuracy(sel) is not None else None,
                     "ci95": bootstrap(sel, balanced_accuracy),
                     "caught": round(share(unsup, "unsupported"), 1) if unsup else None,
                     "false_alarms": round(share(sup, "unsupported"), 1) if sup else None,
                     "auc": auc(sel), "lexical_baseline": baseline(sel)}
    res["checks"] = check_breakdown(rows)
    return res


def score_edited(rows):
    rows = [r for r in rows if r["verdict"] is not None]
    res = {}

    def caught(rs):
        e = [r for r in rs if r["kind"] == "edited"]
        return share(e, "unsupported")

    def false_alarms(rs):
        u = [r for r in rs if r["kind"] == "unedited"]
        return share(u, "unsupported")

    for part in ["all", "en", "es"]:
        sel = rows if part == "all" else [r for r in rows if r["lang"] == part]
        if not sel:
            continue
        edited = [r for r in sel if r["kind"] == "edited"]
        unedited = [r for r in sel if r["kind"] == "unedited"]
        res[part] = {"n_edited": len(edited), "n_unedited": len(unedited),
                     "caught": round(caught(sel), 1) if edited else None, "caught_ci95": bootstrap(sel, caught) if edited else None,
                     "false_alarms": round(false_alarms(sel), 1) if unedited else None,
                     "false_alarms_ci95": bootstrap(sel, false_alarms) if unedited else None,
                     "balanced_accuracy": round(balanced_accuracy(sel), 1) if balanced_accuracy(sel) is not None else None,
                     "auc": auc(sel), "lexical_baseline": baseline(sel)}
    res["by_edit"] = {}
    for kind in sorted({r["edit"] for r in rows if r["kind"] == "edited"}):
        for lang in ["en", "es"]:
            e = [r for r in rows if r["edit"] == kind and r["lang"] == lang]
            if e:
                res["by_edit"][f"{kind} {lang}"] = {"n": len(e), "caught": round(share(e, "unsupported"), 1)}
    res["checks"] = check_breakdown(rows)
    return res


def eval_claims(name, a, data, work, binary, extra, previous_work=None):
    """Runs (or, with previous_work, rereads) the checker on one claims set and scores it."""
    if previous_work is not None:
        pred = previous_work / f"{name}-predictions.jsonl"
        rows, run = (read_jsonl(pred), {}) if pred.exists() else ([], {})
    else:
        rows, run = predict(name, a, data, work, binary, extra)
    scored = score_real(rows) if name == "claims-real" else score_edited(rows)
    return {**run, **scored}


def ci(v):
    return f"[{v[0]:.1f}, {v[1]:.1f}]" if v else "—"


def table(results):
    lines = []
    real = results.get("claims-real")
    if real:
        lines += ["", "| real claims | n | unsupported | balanced acc. % | 95 % CI | caught % | false alarms % | AUC | lexical baseline % |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for part in ["en", "es", "summary", "translation", "all"]:
            r = real.get(part)
            if r:
                lines.append("| " + " | ".join([part, str(r["n"]), str(r["n_unsupported"]), fmt(r["balanced_accuracy"]), ci(r["ci95"]),
                                                fmt(r["caught"]), fmt(r["false_alarms"]), fmt(r["auc"]), fmt(r["lexical_baseline"])]) + " |")
    ed = results.get("claims-edited")
    if ed:
        lines += ["", "| edited claims | edited | unedited | caught % | 95 % CI | false alarms % | 95 % CI | balanced acc. % | AUC | lexical baseline % |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for part in ["en", "es", "all"]:
            r = ed.get(part)
            if r:
                lines.append("| " + " | ".join([part, str(r["n_edited"]), str(r["n_unedited"]), fmt(r["caught"]), ci(r["caught_ci95"]),
                                                fmt(r["false_alarms"]), ci(r["false_alarms_ci95"]), fmt(r["balanced_accuracy"]),
                                                fmt(r["auc"]), fmt(r["lexical_baseline"])]) + " |")
        if ed.get("by_edit"):
            lines += ["", "| edit | n | caught % |", "|---|---|---|"]
            lines += [f"| {k} | {v['n']} | {fmt(v['caught'])} |" for k, v in ed["by_edit"].items()]
    for name in CLAIM_SETS:
        r = results.get(name)
        if r and r.get("checks"):
            lines += ["", f"| {name}: failed check | on unsupported | on supported | precision % | of unsupported % | of supported % |",
                      "|---|---|---|---|---|---|"]
            lines += [f"| {k} | {v['on_unsupported']} | {v['on_supported']} | {fmt(v['precision'])} | {fmt(v['of_unsupported'])} | {fmt(v['of_supported'])} |"
                      for k, v in r["checks"].items()]
        if r and r.get("calls"):
            lines.append(f"\n{name}: {r['answered']}/{r['claims']} claims answered in {r['calls']} calls "
                         f"({r['failed_calls']} failed), {fmt(r['seconds_per_claim'])} s per claim")
    return "\n".join(lines)
