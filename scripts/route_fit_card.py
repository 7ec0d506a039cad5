"""Builds per-source outcome files from ../shared/data/routing_train and
runs `tollgate route fit` / `route eval` on them (see scripts/route-fit-card).
Standard library only."""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time

ROUTERBENCH = ("gpt-4-1106-preview", "mistralai/mixtral-8x7b-chat")
MATH_PAIR = ("meta-math/MetaMath-Mistral-7B", "mistralai/Mistral-7B-v0.1")
MC_PAIR = ("meta-llama/Meta-Llama-3-8B", "mistralai/Mistral-7B-v0.1")
CODE_PAIR = ("cognitivecomputations/dolphin-2.9-llama3-8b", "mistralai/Mistral-7B-v0.1")


def sources(data):
    """name -> (pair label, rows of {"prompt", "strong", "weak"})."""
    out = {}
    rows = []
    with open(os.path.join(data, "routing_train/alpacaeval_v1_wins.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            s, w = r["win"].get("gpt4"), r["win"].get("llama-2-7b-chat-hf")
            if s is not None and w is not None:
                rows.append({"prompt": r["instruction"], "strong": s, "weak": w})
    out["alpacaeval"] = ("gpt4 vs llama-2-7b-chat", rows)
    bench = {}
    with open(os.path.join(data, "routing_train/routerbench_slices.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            s, w = (r["score"][m] for m in ROUTERBENCH)
            bench.setdefault(r["eval_name"], []).append(
                {"prompt": r["question"], "strong": s, "weak": w})
    for name, rows in bench.items():
        out["routerbench/" + name] = ("gpt-4-1106 vs mixtral-8x7b", rows)
    dc = {}
    with open(os.path.join(data, "routing_train/routerdc_scores.jsonl")) as f:
        for line in f:
            r = json.loads(line)
            stem = re.sub(r"(_train|_test|-train)?\.json$", "", r["source_file"])
            pair = {"gsm8k": MATH_PAIR, "MATH_prealgebra": MATH_PAIR,
                    "cmmlu": MC_PAIR, "ceval": MC_PAIR,
                    "mbpp": CODE_PAIR, "humaneval": CODE_PAIR, "javascript": CODE_PAIR}.get(stem)
            if pair is None:
                continue
            s, w = (r["scores"][m] for m in pair)
            dc.setdefault((stem, pair), []).append(
                {"prompt": r["question"], "strong": s, "weak": w})
    for (stem, pair), rows in dc.items():
        label = {MATH_PAIR: "MetaMath-7B vs Mistral-7B", MC_PAIR: "Llama-3-8B vs Mistral-7B",
                 CODE_PAIR: "dolphin-2.9-llama3-8b vs Mistral-7B"}[pair]
        out["routerdc/" + stem] = (label, rows)
    return out


def run(binary, *args, refusal_ok=False):
    p = subprocess.run([binary, *args], capture_output=True, text=True)
    if refusal_ok and p.returncode == 1 and "not written" in p.stdout:
        return None
    if p.returncode != 0:
        sys.exit(f"{' '.join(args)}: exit {p.returncode}\n{p.stdout}{p.stderr}")
    return p.stdout


def figures(stdout):
    """{line name: (apgr, cpt50)} from fit's or eval's table."""
    got = {}
    for line in stdout.splitlines():
        m = re.match(r"^(.*?) +([0-9.]+) +([0-9.]+)%$", line)
        if m:
            got[m.group(1).strip()] = (float(m.group(2)), float(m.group(3)))
    return got


def run_fit_table(binary, path, tmp):
    """The table of a fit that wrote nothing (printed all the same)."""
    p = subprocess.run([binary, "route", "fit", "--outcomes", path, "--out",
                        os.path.join(tmp, "all.json")], capture_output=True, text=True)
    return p.stdout


def write(path, rows):
    with open(path, "w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")


def mark(name):
    """Sources the shipped strong head was trained on: its figure there is
    not held out."""
    return name + (" *" if name.split("/")[0] in ("alpacaeval", "routerbench") else "")


def fmt(q):
    return f"{q[0]:.3f} | {q[1]:.1f}%"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--binary", required=True)
    args = ap.parse_args()
    srcs = sources(args.data)
    tmp = tempfile.mkdtemp(prefix="route-fit-card.")
    shuffled = {}
    for name, (_, rows) in srcs.items():
        rows = list(rows)
        random.Random(0).shuffle(rows)
        shuffled[name] = rows

    print("Fit on the first N rows of a source, scored on the rest of it "
          "(APGR | CPT(50%)):\n")
    print("| source | pair | rows | N | route fit APGR | CPT(50%) | shipped APGR | CPT(50%) "
          "| length APGR | CPT(50%) | fit time |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    heads_of = {}
    for name in sorted(srcs):
        pair, _ = srcs[name]
        rows = shuffled[name]
        for n in (200, 500, 1000):
            if len(rows) < n + 200:
                continue
            train, test = os.path.join(tmp, "train.jsonl"), os.path.join(tmp, "test.jsonl")
            write(train, rows[:n])
            write(test, rows[n:])
            heads = os.path.join(tmp, f"{name.replace('/', '_')}_{n}.json")
            t = time.time()
            fitted = run(args.binary, "route", "fit", "--outcomes", train, "--out", heads,
                         refusal_ok=True)
            took = time.time() - t
            # Not written: the shipped heads keep routing, and are scored.
            router = heads if fitted else "models/wordllama"
            if fitted:
                heads_of[name] = heads
            got = figures(run(args.binary, "route", "eval", "--outcomes", test, "--router", router))
            ours = fmt(got[next(k for k in got if k.startswith('router in use'))])
            shipped = fmt(got["shipped router"] if fitted else got["router in use (shipped)"])
            print(f"| {mark(name)} | {pair} | {len(rows)} | {n} | {ours if fitted else 'not written: ' + ours} "
                  f"| {shipped} | {fmt(got['prompt length'])} | {took:.1f} s |")

    print("\nFit on one whole source (its largest N above), scored on another "
          "source of the same pair that it never saw:\n")
    print("| fitted on | scored on | route fit APGR | CPT(50%) | shipped APGR | CPT(50%) "
          "| length APGR | CPT(50%) |")
    print("|---|---|---|---|---|---|---|---|")
    for a, b in [("routerdc/gsm8k", "routerdc/MATH_prealgebra"),
                 ("routerdc/MATH_prealgebra", "routerdc/gsm8k"),
                 ("routerdc/cmmlu", "routerdc/ceval"),
                 ("routerdc/mbpp", "routerdc/humaneval"),
                 ("routerbench/arc-challenge", "routerbench/winogrande"),
                 ("routerbench/winogrande", "routerbench/arc-challenge"),
                 ("routerbench/arc-challenge", "routerbench/mbpp")]:
        if a not in heads_of or b not in srcs:
            continue
        test = os.path.join(tmp, "other.jsonl")
        write(test, srcs[b][1])
        got = figures(run(args.binary, "route", "eval", "--outcomes", test, "--router", heads_of[a]))
        print(f"| {mark(a)} | {mark(b)} | {fmt(got[next(k for k in got if k.startswith('router in use'))])} "
              f"| {fmt(got['shipped router'])} | {fmt(got['prompt length'])} |")

    print("\n\\* the shipped strong head was trained on this source, so its figure "
          "there is in-sample (docs/router-card.md gives its leave-one-source-out figures).")
    print("\nk-fold held out on every row of each source (what `route fit` prints):\n")
    print("| source | rows | route fit (5-fold) APGR | CPT(50%) | shipped APGR | CPT(50%) "
          "| length APGR | CPT(50%) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in sorted(srcs):
        path = os.path.join(tmp, "all.jsonl")
        write(path, srcs[name][1])
        got = figures(run(args.binary, "route", "fit", "--outcomes", path,
                          "--out", os.path.join(tmp, "all.json"), refusal_ok=True)
                      or run_fit_table(args.binary, path, tmp))
        print(f"| {mark(name)} | {len(srcs[name][1])} | {fmt(got['route fit (held out)'])} "
              f"| {fmt(got['router in use (shipped)'])} | {fmt(got['prompt length'])} |")


if __name__ == "__main__":
    main()
