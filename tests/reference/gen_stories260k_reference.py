#!/usr/bin/python3
"""Independent PyTorch reference for the stories260K llama2.c model.

Reads the llama2.c checkpoint and tokenizer with struct/numpy (none of treepo's C++ is used),
encodes prompts with a Python port of llama2.c's `encode`, runs the Llama forward pass in
float64 with full causal attention, and writes tests/data/stories260k_reference.json.

Usage:
  /usr/bin/python3 tests/reference/gen_stories260k_reference.py SHARED_DIR
      [--model PATH] [--tokenizer PATH] [--out PATH]
SHARED_DIR is the ../shared folder (the model is SHARED_DIR/models/stories260K/stories260K.bin,
the tokenizer .../tok512.bin); --model / --tokenizer override those paths, --out the output.

Output format (JSON object):
  "model":   "stories260K"
  "config":  {"dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size",
              "seq_len"} as read from the checkpoint header
  "prompts": list of {
      "text":   the prompt (str; may contain non-ASCII characters),
      "tokens": token ids as encoded by llama2.c: BOS (1) first, then a dummy " " prefix
                token and the BPE-merged text when the text is non-empty,
      "logits": one list of vocab_size floats per position in "tokens": the next-token logits
                after reading tokens[0..p] (position p uses positions 0..p, RoPE position p),
                computed in float64 and rounded to 7 significant digits }
  "greedy":  {"tokens": the 40 tokens generated greedily (argmax) after BOS (BOS itself
              excluded), "text": their decoded text (leading space after BOS dropped,
              <0xHH> pieces as raw bytes, decoded as UTF-8 with replacement)}

Accuracy: an independent llama2.c-style float32 token-by-token forward agrees with these
logits to 1e-5 absolute (4.6e-6 relative where |logit| > 1). Some logits are close to 0
(|logit| ~ 4e-5), so compare with a mixed bound such as |a - b| <= 1e-4 * max(1, |b|),
not a pure relative one.

Model maths (llama2.c): pre-norm residual blocks; RMSNorm x * rsqrt(mean(x^2) + 1e-5) * w;
RoPE theta 10000 over adjacent pairs (2i, 2i+1) of each head with frequency
10000^(-2i/head_size); query head h uses KV head h // (n_heads / n_kv_heads); attention scale
1/sqrt(head_size); FFN w2(silu(w1 x) * (w3 x)); final RMSNorm; logits against the token
embedding when vocab_size > 0 in the header (tied), else against the trailing wcls.
"""

import argparse
import json
import math
import os
import struct
import sys

import numpy as np
import torch

PROMPTS = [
    "",
    "Once upon a time",
    "Tom had 3 red balls, and 2 blue ones! Why?",
    "The little girl drank a café au lait, so naïve 🙂!",
    ("Once upon a time, there was a little girl named Lily. She loved to play outside in the "
     "park with her friends. One day, she saw a big red ball under a tree and ran to get "
     "it."),
]
GREEDY_STEPS = 40


def read_checkpoint(path):
    raw = open(path, "rb").read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", raw[:28])
    tied = vocab > 0
    vocab = abs(vocab)
    head = dim // n_heads
    kv_dim = n_kv * head
    floats = np.frombuffer(raw, dtype="<f4", offset=28).astype(np.float64)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        arr = floats[pos:pos + n].reshape(shape)
        assert arr.size == n, "checkpoint truncated"
        pos += n
        return torch.from_numpy(arr.copy())

    w = {}
    w["emb"] = take(vocab, dim)
    w["rms_att"] = take(n_layers, dim)
    w["wq"] = take(n_layers, dim, dim)
    w["wk"] = take(n_layers, kv_dim, dim)
    w["wv"] = take(n_layers, kv_dim, dim)
    w["wo"] = take(n_layers, dim, dim)
    w["rms_ffn"] = take(n_layers, dim)
    w["w1"] = take(n_layers, hidden, dim)
    w["w2"] = take(n_layers, dim, hidden)
    w["w3"] = take(n_layers, hidden, dim)
    w["rms_final"] = take(dim)
    pos += seq_len * head  # legacy freq_cis_real + freq_cis_imag
    w["wcls"] = w["emb"] if tied else take(vocab, dim)
    assert pos == floats.size, "checkpoint size mismatch: %d floats read of %d" % (pos, floats.size)
    cfg = dict(dim=dim, hidden_dim=hidden, n_layers=n_layers, n_heads=n_heads, n_kv_heads=n_kv,
               vocab_size=vocab, seq_len=seq_len)
    return cfg, w


def read_tokenizer(path, vocab_size):
    raw = open(path, "rb").read()
    (max_len,) = struct.unpack("<i", raw[:4])
    off = 4
    pieces, scores = [], []
    for _ in range(vocab_size):
        score, n = struct.unpack("<fi", raw[off:off + 8])
        off += 8
        pieces.append(raw[off:off + n])
        scores.append(score)
        off += n
    assert off == len(raw), "tokenizer has trailing bytes"
    return pieces, scores


def encode(text, pieces, scores):
    """llama2.c run.c `encode` with bos=1, eos=0."""
    lookup = {p: i for i, p in enumerate(pieces)}
    data = text.encode("utf-8")
    tokens = [1]
    if data:
        tokens.append(lookup.get(b" ", ord(" ") + 3))
    i = 0
    while i < len(data):
        # One UTF-8 character: a leading byte plus at most 3 continuation bytes.
        j = i + 1
        while j < len(data) and (data[j] & 0xC0) == 0x80 and j - i < 4:
            j += 1
        ch = data[i:j]
        if ch in lookup:
            tokens.append(lookup[ch])
        else:
            tokens.extend(b + 3 for b in ch)
        i = j
    while True:
        best_score, best_id, best_idx = -1e10, -1, -1
        for k in range(len(tokens) - 1):
            merged = pieces[tokens[k]] + pieces[tokens[k + 1]]
            mid = lookup.get(merged, -1)
            if mid != -1 and scores[mid] > best_score:
                best_score, best_id, best_idx = scores[mid], mid, k
        if best_id == -1:
            break
        tokens[best_idx:best_idx + 2] = [best_id]
    return tokens


def decode(tokens, pieces, prev=1):
    out = b""
    for t in tokens:
        piece = pieces[t]
        if t in (1, 2):
            piece = b""
        if prev == 1 and piece.startswith(b" "):
            piece = piece[1:]
        if len(piece) == 6 and piece.startswith(b"<0x") and piece.endswith(b">"):
            piece = bytes([int(piece[3:5], 16)])
        out += piece
        prev = t
    return out.decode("utf-8", errors="replace")


def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt((x * x).mean(dim=-1, keepdim=True) + eps) * w


def rope(x, head):
    """x: [T, n, head]; rotates adjacent pairs (2i, 2i+1) by pos * 10000^(-2i/head)."""
    t = x.shape[0]
    i2 = torch.arange(0, head, 2, dtype=torch.float64)
    freq = 1.0 / (10000.0 ** (i2 / head))
    ang = torch.arange(t, dtype=torch.float64)[:, None] * freq[None, :]  # [T, head/2]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    x0, x1 = x[..., 0::2], x[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x0 * cos - x1 * sin
    out[..., 1::2] = x0 * sin + x1 * cos
    return out


def forward(cfg, w, tokens):
    """Logits [T, vocab] (float64) for every position of `tokens`."""
    dim, n_heads, n_kv = cfg["dim"], cfg["n_heads"], cfg["n_kv_heads"]
    head = dim // n_heads
    group = n_heads // n_kv
    t = len(tokens)
    x = w["emb"][torch.tensor(tokens)]
    mask = torch.full((t, t), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(cfg["n_layers"]):
        h = rmsnorm(x, w["rms_att"][l])
        q = rope((h @ w["wq"][l].T).view(t, n_heads, head), head)
        k = rope((h @ w["wk"][l].T).view(t, n_kv, head), head)
        v = (h @ w["wv"][l].T).view(t, n_kv, head)
        kv_of = torch.arange(n_heads) // group  # query head -> kv head
        k, v = k[:, kv_of, :], v[:, kv_of, :]  # [T, n_heads, head]
        att = torch.einsum("qhd,khd->hqk", q, k) / math.sqrt(head) + mask
        att = torch.softmax(att, dim=-1)
        o = torch.einsum("hqk,khd->qhd", att, v).reshape(t, dim)
        x = x + o @ w["wo"][l].T
        h = rmsnorm(x, w["rms_ffn"][l])
        g = torch.nn.functional.silu(h @ w["w1"][l].T) * (h @ w["w3"][l].T)
        x = x + g @ w["w2"][l].T
    x = rmsnorm(x, w["rms_final"])
    return x @ w["wcls"].T


def round7(v):
    return float("%.7g" % v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("shared_dir")
    ap.add_argument("--model")
    ap.add_argument("--tokenizer")
    ap.add_argument("--out")
    args = ap.parse_args()
    base = os.path.join(args.shared_dir, "models", "stories260K")
    model_path = args.model or os.path.join(base, "stories260K.bin")
    tok_path = args.tokenizer or os.path.join(base, "tok512.bin")
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out_path = args.out or os.path.join(repo, "tests", "data", "stories260k_reference.json")

    cfg, w = read_checkpoint(model_path)
    pieces, scores = read_tokenizer(tok_path, cfg["vocab_size"])
    result = {"model": "stories260K", "config": cfg, "prompts": []}
    with torch.no_grad():
        for text in PROMPTS:
            tokens = encode(text, pieces, scores)
            logits = forward(cfg, w, tokens)
            result["prompts"].append({
                "text": text,
                "tokens": tokens,
                "logits": [[round7(v) for v in row.tolist()] for row in logits],
            })
            print("%-40r %3d tokens" % (text[:40], len(tokens)), file=sys.stderr)
        seq = [1]
        for _ in range(GREEDY_STEPS):
            seq.append(int(torch.argmax(forward(cfg, w, seq)[-1])))
        result["greedy"] = {"tokens": seq[1:], "text": decode(seq[1:], pieces)}
    print("greedy: %r" % result["greedy"]["text"], file=sys.stderr)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(result, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print("wrote %s (%d bytes)" % (out_path, os.path.getsize(out_path)), file=sys.stderr)


if __name__ == "__main__":
    main()
