"""Builds outcome files from RouteLLM's public evaluation sets (per-item
GPT-4-1106-preview vs Mixtral-8x7B-Instruct outcomes on GSM8K test, MMLU
and MT-Bench) and scores routers on them with `tollgate route eval`.
Nothing here trains: these sets are evaluation only. Standard library only.
See scripts/route-heldout."""

import argparse
import csv
import io
import json
import os
import subprocess
import sys

COMMIT = "0b64fdafe049e596a3f5657c219329f24af24198"  # lm-sys/RouteLLM, pinned
STRONG, WEAK = "gpt-4-1106-preview", "mistralai/Mixtral-8x7B-Instruct-v0.1"


def git_show(repo, path):
    return subprocess.run(["git", "-C", repo, "show", f"{COMMIT}:{path}"], capture_output=True,
                          check=True).stdout.decode("utf-8")


def csv_rows(text):
    csv.field_size_limit(1 << 24)
    for r in csv.DictReader(io.StringIO(text)):
        yield {"prompt": r["prompt"], "strong": float(r[STRONG] == "True"),
               "weak": float(r[WEAK] == "True")}


def sets(repo):
    """name -> rows of {"prompt", "strong", "weak"}."""
    out = {"gsm8k": list(csv_rows(git_show(repo, "routellm/evals/gsm8k/gsm8k_responses.csv")))}
    files = subprocess.run(["git", "-C", repo, "ls-tree", "--name-only", COMMIT,
                            "routellm/evals/mmlu/responses/"], capture_output=True,
                           check=True).stdout.decode().split()
    mmlu = []
    for f in sorted(files):
        if f.endswith(".csv"):
            mmlu.extend(csv_rows(git_show(repo, f)))
    out["mmlu"] = mmlu
    first = {}
    for line in git_show(repo, "routellm/evals/mt_bench/question.jsonl").splitlines():
        q = json.loads(line)
        first[q["question_id"]] = q["turns"][0]
    score = {}
    for line in git_show(repo, "routellm/evals/mt_bench/judgements.jsonl").splitlines():
        j = json.loads(line)
        score.setdefault((j["question_id"], j["model"]), []).append(float(j["score"]))
    mt = []
    for qid, prompt in sorted(first.items()):
        s, w = score.get((qid, STRONG)), score.get((qid, WEAK))
        if s and w:
            mt.append({"prompt": prompt, "strong": sum(s) / len(s), "weak": sum(w) / len(w)})
    out["mt-bench"] = mt
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--routellm", required=True, help="a RouteLLM git checkout")
    ap.add_argument("--binary", required=True)
    ap.add_argument("--out", required=True, help="where the outcome files go")
    ap.add_argument("--router", action="append", default=[],
                    help="heads files to score besides the shipped router")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for name, rows in sets(args.routellm).items():
        path = os.path.join(args.out, name + ".jsonl")
        with open(path, "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
        print(f"## {name}: {len(rows)} items, {STRONG} vs {WEAK}", flush=True)
        for router in [None] + args.router:
            cmd = [args.binary, "route", "eval", "--outcomes", path]
            if router:
                cmd += ["--router", router]
            subprocess.run(cmd, check=True, stdout=sys.stdout)
        print(flush=True)


if __name__ == "__main__":
    main()
