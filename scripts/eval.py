"""polysum's quality benchmark (run it through scripts/eval, which installs the tools).

Every figure comes from the real `polysum` binary run on the public sets in shared/eval:
  summaries     news-en, news-es, long-en, long-es: ROUGE-1/2/Lsum against the human reference (rouge-score,
                with a Unicode-aware tokenizer so Spanish accents count), the Lead-3 baseline in the same run,
                output-language correctness by langid (a detector independent of polysum's lingua), number faithfulness
                (share of numbers in summaries that occur in the article), EN/ES consistency from
                `polysum compare` (numbers and names found in both summaries; through back-translations too
                with --compare-backtranslate), seconds per article,
                tokens/s, peak RSS.
  translation   translation-en-es, both directions: chrF, chrF++ and BLEU (sacrebleu) against the human side,
                chrF with a 95 % bootstrap confidence interval (1000 resamples of the sentences).
results.json records what ran: the checkout's commit, the binary, and the prompt versions and strategies
that polysum's records name.
  parallel      parallel-stories: EN story and its ES translation as two inputs; `polysum compare` verdicts
                and back-translation chrF.
  claims-real, claims-edited (only when named in --sets; dev only)
                the checker: `polysum check` on labelled claims (eval/claims/), balanced accuracy on polysum's own
                sentences, edits caught and false alarms on edited article sentences (see scripts/evalcheck.py).
"""

import argparse
import json
import math
import os
import re
import resource
import shlex
import subprocess
import sys
import time
from pathlib import Path

import langid
from rouge_score import rouge_scorer
import sacrebleu
from sacrebleu.metrics import CHRF

import evalcheck
from evaltext import fmt, sentences

ROOT = Path(__file__).resolve().parent.parent
# POLYSUM_BIN: a copy of the binary, so that a rebuild during a long run does not change it mid-way.
BIN = Path(os.environ.get("POLYSUM_BIN", ROOT / "target" / "release" / "polysum"))
SUMMARY_SETS = ["news-en", "news-es", "long-en", "long-es"]
ALL_SETS = SUMMARY_SETS + ["translation", "parallel"]
# Not in the default --sets: they need `polysum check`.
KNOWN_SETS = ALL_SETS + evalcheck.CLAIM_SETS

# The language check uses langid.py (its model ships in the package), not lingua, which polysum itself uses:
# a detector that shares polysum's errors cannot catch them. Restricted to polysum's 8 languages.
langid.set_languages(["en", "es", "fr", "de", "it", "pt", "ca", "nl"])


def detect(text):
    if not (text or "").strip():
        return None
    return langid.classify(text)[0]


# What the records say was used, over every set of the run (results.json keeps it).
SEEN = {"prompt_versions": set(), "strategies": set()}


def note_record(r):
    for part in list((r.get("summaries") or {}).values()) + [r.get("translation") or {}]:
        if part.get("prompt_version"):
            SEEN["prompt_versions"].add(part["prompt_version"])
        for att in part.get("attempts") or []:
            if att.get("strategy"):
                SEEN["strategies"].add(att["strategy"])


def provenance():
    """The checkout's commit (with -dirty when it has uncommitted changes) and the binary's version."""
    def run(args):
        try:
            return subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return None
    commit = run(["git", "rev-parse", "HEAD"])
    if commit and run(["git", "status", "--porcelain", "--untracked-files=no"]):
        commit += "-dirty"
    return {"commit": commit, "binary": str(BIN), "binary_version": run([str(BIN), "--version"])}


class UnicodeTokenizer:
    """rouge-score's default tokenizer drops every non-ASCII letter ("está" → "est"); this keeps words whole."""

    def tokenize(self, text):
        return re.findall(r"\w+", text.lower())


SCORER = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], tokenizer=UnicodeTokenizer())
def lead3(text):
    # Articles with one paragraph per line: the first line is often the title, keep it as a sentence.
    return " ".join(sentences(" ".join(text.split("\n")))[:3])


def rouge(pred, ref):
    s = SCORER.score("\n".join(sentences(ref)), "\n".join(sentences(pred)))
    return {k: 100 * v.fmeasure for k, v in s.items()}


NUMBER = re.compile(r"\d+(?:[.,\u00a0 ]\d{3})*(?:[.,]\d+)?")


def numbers(text):
    """Digit numbers, normalized: thousands separators removed, decimal comma as point."""
    out = set()
    for m in NUMBER.findall(text or ""):
        n = m.replace("\u00a0", "").replace(" ", "")
        if re.fullmatch(r"\d{1,3}([.,]\d{3})+", n):
            n = re.sub(r"[.,]", "", n)
        else:
            n = n.replace(",", ".")
        out.add(n.rstrip("0").rstrip(".") if "." in n else n)
    return out


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs) if xs else None


def read_jsonl(path):
    return [json.loads(l) for l in path.read_text().splitlines() if l.strip()]


SCORE_ONLY = None  # with --score-only: the previous results.json of the work folder (timings come from it)


def run_polysum(args, log, scoring=False):
    """Run polysum; returns (exit code, its final JSON line, wall seconds, peak RSS in MiB of this child).
    With --score-only only the runs that score (`scoring`: `polysum compare`) run again."""
    if SCORE_ONLY is not None and not scoring:
        return 0, {}, 0.0, 0.0
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.time()
    with open(log, "a") as err:
        p = subprocess.run([str(BIN)] + args, stdout=subprocess.PIPE, stderr=err, text=True)
    wall = time.time() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    final = {}
    for line in reversed(p.stdout.splitlines()):
        try:
            final = json.loads(line)
            break
        except ValueError:
            continue
    # ru_maxrss of children is the largest of any child so far: exact for the first, a lower bound after.
    return p.returncode, final, wall, max(after, before) / 1024


def records_by_input_id(out):
    """The records polysum wrote, by the `id` of the JSONL input line (index.jsonl keeps it as input_id)."""
    index = out / "index.jsonl"
    if not index.exists():
        return {}
    records = read_jsonl(index)
    for r in records:
        note_record(r)
    return {r.get("input_id"): r for r in records}


def candidates_args(a):
    """polysum's --candidates, when the run sets it (else polysum's default)."""
    return ["--candidates", str(a.candidates)] if a.candidates else []


def model_args(a):
    out = ["--model", a.model]
    if a.threads:
        out += ["--threads", str(a.threads)]
    return out


def eval_summaries(name, items, a, work):
    lang = name.split("-")[1]
    inp = work / "in" / f"{name}.jsonl"
    inp.parent.mkdir(parents=True, exist_ok=True)
    with open(inp, "w") as f:
        for it in items:
            row = {"id": it["id"], "text": it["text"], "lang": it["lang"]}
            if it.get("title"):
                row["title"] = it["title"]
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    out = work / name

    def summarize_args(out, verify):
        args = ["summarize", str(inp), "--out", str(out), "--log-format", "json", "--langs", "en,es",
                "--verify", verify] + model_args(a)
        if a.strategy:
            args += ["--strategy", a.strategy]
        if a.max_context:
            args += ["--max-context", str(a.max_context)]
        if a.grounding:
            args += ["--grounding", a.grounding]
        return args + candidates_args(a)

    code, final, wall, rss = run_polysum(summarize_args(out, a.verify), work / "polysum.log")
    records = records_by_input_id(out)
    res = {"items": len(items), "exit_code": code, "wall_seconds": round(wall, 1),
           "seconds_per_article": round(wall / max(len(items), 1), 1),
           "tokens_per_second": final.get("tokens_per_second"), "peak_rss_mib": round(rss),
           "generated_tokens": final.get("generated_tokens"), "done": final.get("done"), "skipped": final.get("skipped")}
    res.update(support_figures(records.values()))
    if a.verify_baseline and a.verify != "off":
        # The same articles again without the checks, after the checked run (so any prompt prefix cached
        # on disk is warm for the baseline, not for the checked run: the ratio errs against the checks).
        off = summarize_args(work / f"{name}-verify-off", "off")
        code_off, _, wall_off, _ = run_polysum(off, work / "polysum.log")
        res["off_exit_code"] = code_off
        res["off_seconds_per_article"] = round(wall_off / max(len(items), 1), 1)
        res["verify_time_ratio"] = round(wall / wall_off, 2) if wall_off else None
    # ROUGE of the summary in the article's language, and Lead-3, against the reference.
    scored = [(it, records.get(it["id"], {}).get("summaries", {}).get(lang, {})) for it in items if it.get("summary")]
    if scored:
        ours = [rouge(s.get("text") or "", it["summary"]) for it, s in scored]
        lead = [rouge(lead3(it["text"]), it["summary"]) for it, _ in scored]
        res["rouge_items"] = len(scored)
        for k in ["rouge1", "rouge2", "rougeLsum"]:
            res[k] = round(mean(r[k] for r in ours), 2)
            res["lead3_" + k] = round(mean(r[k] for r in lead), 2)
    # Language, numbers, chunks per summary language.
    for target in ["en", "es"]:
        texts = [(it, records.get(it["id"], {}).get("summaries", {}).get(target)) for it in items]
        ok = [(it, s) for it, s in texts if s and s.get("status") == "ok" and s.get("text")]
        res[f"{target}_ok"] = len(ok)
        right = sum(detect(s["text"]) == target for _, s in ok)
        res[f"{target}_lang_correct"] = round(100 * right / max(len(items), 1), 1)
        res[f"{target}_lang_correct_ci95"] = wilson(right, len(items))
        nums = [(n, numbers(it["text"])) for it, s in ok for n in numbers(s["text"])]
        res[f"{target}_numbers"] = len(nums)
        res[f"{target}_number_faithfulness"] = round(100 * sum(n in art for n, art in nums) / len(nums), 1) if nums else None
        res[f"{target}_mean_chunks"] = round(mean(s.get("chunks", 1) for _, s in ok), 2) if ok else None
    # EN/ES consistency: numbers and names found in both summaries; with --compare-backtranslate also
    # through each summary's back-translation, as `polysum compare` does by default.
    cmp_json = work / f"{name}-compare.json"
    bt = model_args(a) if a.compare_backtranslate else ["--no-backtranslate"]
    code, _, _, _ = run_polysum(["compare", str(out), "--json", str(cmp_json)] + bt, work / "polysum.log", scoring=True)
    if code == 0 and cmp_json.exists():
        res.update(consistency(json.loads(cmp_json.read_text())))
    return res


def support_figures(records):
    """What the checks (`--verify flag|fix`) left: final summary sentences, those still marked unsupported,
    and the sentences repaired and dropped, over every summary of every record."""
    summaries = [s for r in records for s in (r.get("summaries") or {}).values() if s.get("status") == "ok"]
    checked = [s for s in summaries if s.get("support") is not None]
    if not checked:
        return {}
    sentences = [x for s in checked for x in s["support"]]
    unsupported = sum(x.get("verdict") == "unsupported" for x in sentences)
    return {"checked_summaries": len(checked), "unchecked_summaries": len(summaries) - len(checked),
            "final_sentences": len(sentences), "unsupported_sentences": unsupported,
            "unsupported_share": round(100 * unsupported / len(sentences), 1) if sentences else None,
            "repaired_sentences": sum(s.get("repaired", 0) for s in checked),
            "dropped_sentences": sum(s.get("dropped", 0) for s in checked)}


def consistency(report):
    arts = [r for r in report.get("articles", []) if r.get("check")]
    if not arts:
        return {}
    same_numbers = sum(not r["check"]["numbers_only_left"] and not r["check"]["numbers_only_right"] for r in arts)
    same_names = sum(not r["check"]["names_only_left"] and not r["check"]["names_only_right"] for r in arts)
    t = report.get("totals", {})
    out = {"compared": len(arts), "numbers_agree": round(100 * same_numbers / len(arts), 1),
           "numbers_agree_ci95": wilson(same_numbers, len(arts)),
           "names_agree": round(100 * same_names / len(arts), 1), "names_agree_ci95": wilson(same_names, len(arts)),
           "consistent": round(100 * t.get("articles_consistent", 0) / max(t.get("articles", 1), 1), 1)}
    for label, v in t.get("mean_backtranslation_chrf", []) or []:
        out[f"backtranslation_chrf {label}"] = round(v, 1)
    return out


def eval_translation(items, a, work):
    res = {}
    for src, dst, text_key, ref_key in [("en", "es", "text", "tgt_text"), ("es", "en", "tgt_text", "text")]:
        name = f"translation-{src}-{dst}"
        inp = work / "in" / f"{name}.jsonl"
        inp.parent.mkdir(parents=True, exist_ok=True)
        with open(inp, "w") as f:
            for it in items:
                f.write(json.dumps({"id": it["id"], "text": it[text_key], "lang": src}, ensure_ascii=False) + "\n")
        out = work / name
        args = ["translate", str(inp), "--to", dst, "--from", src, "--out", str(out), "--log-format", "json", "--format", "json",
                "--verify", a.verify] + model_args(a) + candidates_args(a)
        code, final, wall, rss = run_polysum(args, work / "polysum.log")
        hyps, refs, failed = [], [], 0
        records = records_by_input_id(out)
        for it in items:
            t = records.get(it["id"], {}).get("translation") or {}
            if t.get("status") != "ok":
                failed += 1
            hyps.append((t.get("text") or "").replace("\n", " "))
            refs.append(it[ref_key])
        res[f"{src}->{dst}"] = {
            "items": len(items), "exit_code": code, "failed": failed,
            "chrF": round(sacrebleu.corpus_chrf(hyps, [refs]).score, 2),
            "chrF_ci95": chrf_ci(hyps, refs),
            "chrF++": round(sacrebleu.corpus_chrf(hyps, [refs], word_order=2).score, 2),
            "BLEU": round(sacrebleu.corpus_bleu(hyps, [refs]).score, 2),
            "lang_correct": round(100 * sum(detect(h) == dst for h in hyps) / max(len(hyps), 1), 1),
            "seconds_per_item": round(wall / max(len(items), 1), 2), "tokens_per_second": final.get("tokens_per_second"),
            "peak_rss_mib": round(rss)}
    return res


def wilson(k, n):
    """The 95 % Wilson score interval of the share k/n, in percent (None without items): the interval for a
    share of a few dozen items, where k = n or k = 0 still leaves room."""
    if not n:
        return None
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(100 * max(0.0, centre - half), 1), round(100 * min(1.0, centre + half), 1)]


def chrf_ci(hyps, refs):
    """Half-width of the 95 % bootstrap interval of corpus chrF (sacrebleu's resampling of the sentences)."""
    if len(hyps) < 2:
        return None
    return round(float(CHRF().corpus_score(hyps, [refs], n_bootstrap=1000)._ci), 2)


def eval_parallel(items, a, work):
    inp = work / "in" / "parallel.jsonl"
    inp.parent.mkdir(parents=True, exist_ok=True)
    with open(inp, "w") as f:
        for it in items:
            story = it.get("doc_id") or it["id"]
            f.write(json.dumps({"id": f"{story}.en", "text": it["text"], "lang": "en", "story_id": story}, ensure_ascii=False) + "\n")
            f.write(json.dumps({"id": f"{story}.es", "text": it["tgt_text"], "lang": "es", "story_id": story}, ensure_ascii=False) + "\n")
    out = work / "parallel"
    args = ["summarize", str(inp), "--out", str(out), "--log-format", "json"] + model_args(a) + candidates_args(a)
    if a.strategy:
        args += ["--strategy", a.strategy]
    code, final, wall, rss = run_polysum(args, work / "polysum.log")
    cmp_json = work / "parallel-compare.json"
    t = time.time()
    ccode, _, cwall, crss = run_polysum(["compare", str(out), "--json", str(cmp_json), "--html", str(work / "parallel-compare.html")] + model_args(a), work / "polysum.log",
                                          scoring=True)
    res = {"stories": len(items), "inputs": 2 * len(items), "exit_code": code, "summarize_seconds_per_input": round(wall / max(2 * len(items), 1), 1),
           "compare_seconds": round(cwall, 1), "peak_rss_mib": round(max(rss, crss))}
    if ccode == 0 and cmp_json.exists():
        report = json.loads(cmp_json.read_text())
        res.update(consistency(report))
        tot = report.get("totals", {})
        res["stories_consistent"] = f"{tot.get('stories_consistent', 0)}/{tot.get('stories', 0)}"
        res["articles_consistent"] = f"{tot.get('articles_consistent', 0)}/{tot.get('articles', 0)}"
        reasons = {}
        for s in report.get("stories", []) + report.get("articles", []):
            for r in s.get("reasons", []):
                kind = r.split(" ")[0] if not r.startswith("back-translation") else "back-translation"
                reasons[kind] = reasons.get(kind, 0) + 1
        res["reasons"] = reasons
    return res


def git_commit():
    """The commit of the checkout the binary was built from, with "+dirty" for uncommitted changes."""
    try:
        head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True).stdout.strip()
        return head + ("+dirty" if dirty else "") if head else None
    except OSError:
        return None


def md_table(lines, head, rows):
    """Appends a Markdown table (after a blank line when `lines` has some already), or nothing when there
    are no rows."""
    if rows:
        lines += [""] * bool(lines) + ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]


def table(results, previous=None):
    lines = []
    prev = (previous or {}).get("sets", {})

    def cell(set_name, key, v):
        p = prev.get(set_name, {})
        for part in key.split("/"):
            p = p.get(part, {}) if isinstance(p, dict) else {}
        if isinstance(v, (int, float)) and isinstance(p, (int, float)) and not isinstance(v, bool):
            return f"{fmt(v)} ({v - p:+.1f})"
        return fmt(v)

    cols = ["rouge1", "rouge2", "rougeLsum", "lead3_rougeLsum", "en_lang_correct", "es_lang_correct",
            "en_number_faithfulness", "es_number_faithfulness", "numbers_agree", "names_agree",
            "seconds_per_article", "tokens_per_second", "peak_rss_mib"]
    head = ["set", "n", "R-1", "R-2", "R-Lsum", "Lead-3 R-Lsum", "EN lang %", "ES lang %", "EN nums %", "ES nums %",
            "nums agree %", "names agree %", "s/article", "tok/s", "RSS MiB"]
    sets = [(name, results[name]) for name in SUMMARY_SETS if results.get(name)]
    md_table(lines, head, [[name, str(r["items"])] + [cell(name, c, r.get(c)) for c in cols] for name, r in sets])

    def share(r, key):
        ci = r.get(key + "_ci95")
        return f"{fmt(r.get(key))} [{ci[0]}, {ci[1]}]" if ci else fmt(r.get(key))

    # The shares above with their 95 % Wilson intervals: what a small n can and cannot tell apart.
    md_table(lines, ["shares, 95 % interval", "n", "EN lang %", "ES lang %", "compared", "nums agree %",
                     "names agree %"],
             [[name, str(r["items"]), share(r, "en_lang_correct"), share(r, "es_lang_correct"),
               fmt(r.get("compared")), share(r, "numbers_agree"), share(r, "names_agree")]
              for name, r in sets if r.get("en_lang_correct_ci95")])
    md_table(lines, ["checks", "summaries", "final sentences", "unsupported %", "repaired", "dropped", "s/article",
                     "--verify off s/article", "time × off"],
             [[name] + [cell(name, c, r.get(c)) for c in [
                 "checked_summaries", "final_sentences", "unsupported_share", "repaired_sentences",
                 "dropped_sentences", "seconds_per_article", "off_seconds_per_article", "verify_time_ratio"]]
              for name, r in sets if r.get("final_sentences") is not None])
    tr = results.get("translation") or {}
    md_table(lines, ["translation", "n", "chrF", "± 95 %", "chrF++", "BLEU", "lang %", "failed", "s/item", "tok/s"],
             [[d, str(r["items"])] + [cell("translation", f"{d}/{c}", r.get(c)) for c in [
                 "chrF", "chrF_ci95", "chrF++", "BLEU", "lang_correct", "failed", "seconds_per_item",
                 "tokens_per_second"]] for d, r in tr.items()])
    pr = results.get("parallel")
    if pr:
        bt = ", ".join(f"{k.split(' ', 1)[1]} {v}" for k, v in pr.items() if k.startswith("backtranslation_chrf"))
        md_table(lines, ["parallel stories", "stories", "stories consistent", "articles consistent", "nums agree %",
                         "names agree %", "back-translation chrF", "s/input", "compare s"],
                 [["parallel", str(pr["stories"]), fmt(pr.get("stories_consistent")),
                   fmt(pr.get("articles_consistent")), fmt(pr.get("numbers_agree")), fmt(pr.get("names_agree")),
                   bt or "—", fmt(pr.get("summarize_seconds_per_input")), fmt(pr.get("compare_seconds"))]])
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--split", choices=["dev", "test"], default="dev")
    ap.add_argument("--limit", type=int, default=5, help="items per summary set (default 5)")
    ap.add_argument("--translation-limit", type=int, help="sentences per direction (default: --limit × 4)")
    ap.add_argument("--parallel-limit", type=int, help="parallel stories (default: --limit)")
    ap.add_argument("--sets", default=",".join(ALL_SETS), help=f"comma-separated, from {','.join(KNOWN_SETS)} (default: all but the claims sets)")
    ap.add_argument("--claims-limit", type=int, help="claims sets: whole articles until each language has this many claims (default: all)")
    ap.add_argument("--checker-args", default="", help="claims sets: extra arguments for `polysum check`, e.g. \"--form question\"")
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--threads", type=int)
    ap.add_argument("--strategy", choices=["direct", "translate"])
    ap.add_argument("--max-context", type=int)
    ap.add_argument("--grounding", choices=["article", "key-sentences"],
                    help="summary sets: what of the article the model is shown (polysum's default: article)")
    ap.add_argument("--verify", choices=["off", "flag", "fix"], default="fix",
                    help="summary and translation sets: polysum's --verify (default fix, polysum's own default)")
    ap.add_argument("--candidates", type=int, help="polysum's --candidates: translations per piece (default: polysum's)")
    ap.add_argument("--compare-backtranslate", action="store_true",
                    help="summary sets: `polysum compare` with back-translations (slower; names written in the other "
                         "language's form are then found)")
    ap.add_argument("--verify-baseline", action="store_true",
                    help="summary sets: run each set again with --verify off and report the time ratio")
    ap.add_argument("--data", default=os.environ.get("POLYSUM_EVAL_DATA", str(ROOT.parent / "shared" / "eval")))
    ap.add_argument("--work", help="folder for inputs and outputs (default: eval-out/<split>-<model>-<time>)")
    ap.add_argument("--json", help="write the results here (default: <work>/results.json)")
    ap.add_argument("--compare-with", help="a previous results JSON: print the differences")
    ap.add_argument("--score-only", action="store_true", help="rescore the outputs already in --work (no summarize, translate or check runs; "
                         "`polysum compare` runs again; timings kept from its results.json)")
    a = ap.parse_args()
    global SCORE_ONLY
    if a.score_only:
        if not a.work or not (Path(a.work) / "results.json").exists():
            sys.exit("scripts/eval: --score-only needs --work DIR of an earlier run (with its results.json)")
        SCORE_ONLY = json.loads((Path(a.work) / "results.json").read_text())

    data = Path(a.data) / a.split
    if not data.is_dir():
        sys.exit(f"scripts/eval: no evaluation data in {data} (set --data or POLYSUM_EVAL_DATA)")
    sets = [s for s in a.sets.split(",") if s]
    unknown = [s for s in sets if s not in KNOWN_SETS]
    if unknown:
        sys.exit(f"scripts/eval: unknown sets {unknown}; choose from {KNOWN_SETS}")
    for name in set(sets) & set(evalcheck.CLAIM_SETS):
        if not evalcheck.claims_file(name, a.split).exists():
            sys.exit(f"scripts/eval: no {evalcheck.claims_file(name, a.split).relative_to(ROOT)}: claims are labelled on dev only")
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    work = Path(a.work or ROOT / "eval-out" / f"{a.split}-{a.model.replace('/', '_')}-{stamp}").resolve()
    work.mkdir(parents=True, exist_ok=True)
    if SCORE_ONLY is None and "/" not in a.model and not a.model.endswith(".gguf"):
        subprocess.run([str(BIN), "models", "pull", a.model], check=False, stdout=subprocess.DEVNULL)

    results = {}
    t0 = time.time()
    for name in sets:
        print(f"scripts/eval: {name} ...", file=sys.stderr, flush=True)
        t = time.time()
        if name in SUMMARY_SETS:
            items = read_jsonl(data / f"{name}.jsonl")[: a.limit]
            results[name] = eval_summaries(name, items, a, work)
        elif name == "translation":
            items = read_jsonl(data / "translation-en-es.jsonl")[: a.translation_limit or a.limit * 4]
            results[name] = eval_translation(items, a, work)
        elif name == "parallel":
            items = read_jsonl(data / "parallel-stories.jsonl")[: a.parallel_limit or a.limit]
            results[name] = eval_parallel(items, a, work)
        elif name in evalcheck.CLAIM_SETS:
            results[name] = evalcheck.eval_claims(name, a, data, work, BIN, shlex.split(a.checker_args) + model_args(a),
                                                  previous_work=work if SCORE_ONLY is not None else None)
        if SCORE_ONLY is not None:
            # Timings and run figures are the earlier run's.
            before = SCORE_ONLY.get("sets", {}).get(name, {})
            keep = ["exit_code", "wall_seconds", "seconds_per_article", "tokens_per_second", "peak_rss_mib", "generated_tokens",
                    "done", "skipped", "summarize_seconds_per_input", "compare_seconds", "calls", "failed_calls",
                    "claims", "answered", "check_seconds", "seconds_per_claim",
                    "off_exit_code", "off_seconds_per_article", "verify_time_ratio"]
            if name == "translation":
                for d, r in results[name].items():
                    r.update({k: v for k, v in before.get(d, {}).items() if k in keep + ["seconds_per_item"]})
            else:
                results[name].update({k: v for k, v in before.items() if k in keep})
        print(f"scripts/eval: {name} done in {time.time() - t:.0f} s", file=sys.stderr, flush=True)

    date = SCORE_ONLY["date"] + " (rescored)" if SCORE_ONLY else time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    doc = {"date": date, "split": a.split, "model": a.model,
           "strategy": a.strategy or "default", "verify": a.verify, "candidates": a.candidates or "default", "grounding": a.grounding or "default",
           "compare_backtranslate": a.compare_backtranslate, "limit": a.limit, "max_context": a.max_context,
           "checker_args": a.checker_args or None, "claims_limit": a.claims_limit,
           "polysum_commit": git_commit(),
           "machine": f"{os.cpu_count()} CPUs, {os.uname().machine}",
           "wall_seconds": SCORE_ONLY.get("wall_seconds") if SCORE_ONLY else round(time.time() - t0),
           "command": " ".join(["scripts/eval"] + sys.argv[1:]), **provenance(),
           "prompt_versions": sorted(SEEN["prompt_versions"]), "strategies_used": sorted(SEEN["strategies"]),
           "lang_detector": f"langid {getattr(langid, '__version__', '1.1.6')}", "sets": results}
    out_json = Path(a.json) if a.json else work / "results.json"
    out_json.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    previous = json.loads(Path(a.compare_with).read_text()) if a.compare_with else None
    print(f"## {a.split}, {a.model}, {doc['date']} ({doc['machine']}; {doc['wall_seconds']} s)\n")
    if previous:
        print(f"(differences against {a.compare_with}: {previous.get('date')}, {previous.get('model')})\n")
    print(table(results, previous))
    print(evalcheck.table(results))
    print(f"\nresults: {out_json}")


if __name__ == "__main__":
    main()
