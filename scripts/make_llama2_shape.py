"""A GGUF with Llama-2-7B's shape and random weights (scripts/make-llama2-shape).

    python scripts/make_llama2_shape.py --layers 4 --out models/llama-2-7b-shape-4L.Q4_K_M.gguf

Real layer sizes (hidden 4096, FFN 11008, 32 heads, 32 KV heads, vocabulary
32,000, RoPE 10,000, context 4,096), `--layers` of its 32 blocks, weights
drawn from N(0, 0.02) with a fixed seed, the Llama 2 tokenizer's
vocabulary (from the router's tokenizer.json, which is Llama 2's). Written
as F16, then quantized to Q4_K_M by llama.cpp (llama-cpp-python's
`llama_model_quantize`), as the usual Llama 2 downloads are. The answers
are noise; the speed per layer is a real Llama 2's.
"""
import argparse
import ctypes
import json
import os

import numpy as np
from gguf import GGUFWriter, TokenType

ap = argparse.ArgumentParser()
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--out", required=True)
ap.add_argument("--tokenizer", default="models/wordllama/tokenizer.json")
a = ap.parse_args()

HIDDEN, FFN, HEADS, VOCAB, CTX = 4096, 11008, 32, 32000, 4096
rng = np.random.default_rng(7)


def weight(*shape):
    return (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype(np.float16)


tok = json.load(open(a.tokenizer))["model"]
vocab = sorted(tok["vocab"].items(), key=lambda kv: kv[1])
assert len(vocab) == VOCAB, len(vocab)
tokens = [t.encode() for t, _ in vocab]
scores = [-float(i) for _, i in vocab]
types = []
for t, i in vocab:
    if t == "<unk>":
        types.append(TokenType.UNKNOWN)
    elif t in ("<s>", "</s>"):
        types.append(TokenType.CONTROL)
    elif t.startswith("<0x") and t.endswith(">") and len(t) == 6:
        types.append(TokenType.BYTE)
    else:
        types.append(TokenType.NORMAL)

f16 = a.out + ".f16.tmp"
w = GGUFWriter(f16, "llama")
w.add_name(f"llama-2-7b-shape-{a.layers}L (random weights)")
w.add_context_length(CTX)
w.add_embedding_length(HIDDEN)
w.add_block_count(a.layers)
w.add_feed_forward_length(FFN)
w.add_head_count(HEADS)
w.add_head_count_kv(HEADS)
w.add_rope_dimension_count(HIDDEN // HEADS)
w.add_rope_freq_base(10000.0)
w.add_layer_norm_rms_eps(1e-5)
w.add_file_type(1)  # F16
w.add_tokenizer_model("llama")
w.add_token_list(tokens)
w.add_token_scores(scores)
w.add_token_types(types)
w.add_bos_token_id(1)
w.add_eos_token_id(2)
w.add_unk_token_id(0)
w.add_add_bos_token(True)
w.add_add_eos_token(False)
w.add_tensor("token_embd.weight", weight(VOCAB, HIDDEN))
for b in range(a.layers):
    p = f"blk.{b}."
    w.add_tensor(p + "attn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    for n in ("attn_q", "attn_k", "attn_v", "attn_output"):
        w.add_tensor(p + n + ".weight", weight(HIDDEN, HIDDEN))
    w.add_tensor(p + "ffn_norm.weight", np.ones(HIDDEN, dtype=np.float32))
    w.add_tensor(p + "ffn_gate.weight", weight(FFN, HIDDEN))
    w.add_tensor(p + "ffn_up.weight", weight(FFN, HIDDEN))
    w.add_tensor(p + "ffn_down.weight", weight(HIDDEN, FFN))
w.add_tensor("output_norm.weight", np.ones(HIDDEN, dtype=np.float32))
w.add_tensor("output.weight", weight(VOCAB, HIDDEN))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()

import llama_cpp  # noqa: E402  (only needed for the quantization)

params = llama_cpp.llama_model_quantize_default_params()
params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_K_M
params.nthread = os.cpu_count() or 1
rc = llama_cpp.llama_model_quantize(f16.encode(), a.out.encode(), ctypes.byref(params))
os.remove(f16)
if rc != 0:
    raise SystemExit(f"llama_model_quantize failed: {rc}")
print(f"{a.out}: {a.layers} of Llama-2-7B's 32 blocks, Q4_K_M")
