"""llama.cpp on the same GGUF, prompt and thread count as examples/local_bench.rs.

    pip install llama-cpp-python   # builds llama.cpp (~17 min on 2 cores)
    python3 bench/llamacpp_bench.py [--model FILE] [--max-tokens N] [--rounds N] [--threads N]

Prints one line: single-stream prefill and generation tokens/s, TTFT.
"""
import argparse
import os
import re
import statistics
import time

from llama_cpp import Llama

src = open(os.path.join(os.path.dirname(__file__), "..", "examples", "local_bench.rs")).read()
body = src.split('pub const PROMPT: &str = "', 1)[1].split('";', 1)[0]
PROMPT = re.sub(r"\\\n\s*", "", body).replace("\\n", "\n")

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
ap.add_argument("--max-tokens", type=int, default=64)
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--threads", type=int, default=os.cpu_count())
a = ap.parse_args()

llm = Llama(model_path=a.model, n_ctx=2048, n_threads=a.threads, n_threads_batch=a.threads, verbose=False)
messages = [{"role": "user", "content": PROMPT}]
runs = []
for i in range(a.rounds + 1):
    llm.reset()  # no prompt cache between runs: prefill is measured every time
    start = time.perf_counter()
    first = None
    n = 0
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=a.max_tokens, temperature=0, stream=True):
        if chunk["choices"][0]["delta"].get("content"):
            n += 1
            if first is None:
                first = time.perf_counter() - start
    total = time.perf_counter() - start
    if i > 0:  # the first run is a warm-up
        runs.append((first, total, n))

# Prompt tokens as llama.cpp counts them for this chat (template applied).
usage = llm.create_chat_completion(messages=messages, max_tokens=1, temperature=0)["usage"]
prompt_tokens = usage["prompt_tokens"]
prefill = statistics.median(prompt_tokens / f for f, _, _ in runs)
gen = statistics.median((n - 1) / (t - f) for f, t, n in runs)
ttft = statistics.median(f for f, _, _ in runs) * 1e3
print(f"llama.cpp (llama-cpp-python, {a.threads} threads): prompt {prompt_tokens} tokens, "
      f"prefill {prefill:.1f} tok/s, generation {gen:.1f} tok/s, TTFT p50 {ttft:.0f} ms")
