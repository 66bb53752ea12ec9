#!/usr/bin/python3
"""How far the CUDA backend's logits should be from the CPU backend's, estimated in PyTorch.

The CUDA backend (docs/gpu.md) rounds every GEMM input to bf16 and stores K and V in bf16; the
CPU backend keeps activations fp32. Both hold the same bf16 weights in the tests. This script
runs the stories260K llama2.c model (read with struct/numpy, none of treepo's C++) twice in
float32 -- once exactly, once with those roundings -- over the prompt of
tests/gpu/cuda_decoder_test.cc (Stories260kCudaTest), decodes 32 greedy tokens and prints the
worst relative L2 logit error and how many greedy tokens agree: the margin under the test's
1e-2 bound.

Usage:
  /usr/bin/python3 tests/reference/cuda_bf16_error_estimate.py SHARED_DIR
SHARED_DIR is the ../shared folder (the model is SHARED_DIR/models/stories260K/stories260K.bin).
"""
import struct
import sys

import numpy as np
import torch


def load(path):
    b = open(path, "rb").read()
    dim, hid, n_layers, n_heads, n_kv, vocab, _ = struct.unpack("7i", b[:28])
    shared = vocab > 0
    vocab = abs(vocab)
    a = np.frombuffer(b[28:], dtype=np.float32)
    off = 0

    def take(*shape):
        nonlocal off
        n = int(np.prod(shape))
        t = torch.tensor(a[off:off + n].reshape(shape))
        off += n
        return t

    hd = dim // n_heads
    kvd = n_kv * hd
    m = dict(dim=dim, hid=hid, L=n_layers, H=n_heads, KV=n_kv, vocab=vocab, hd=hd)
    m["emb"] = take(vocab, dim)
    m["att_n"] = take(n_layers, dim)
    m["wq"] = take(n_layers, dim, dim)
    m["wk"] = take(n_layers, kvd, dim)
    m["wv"] = take(n_layers, kvd, dim)
    m["wo"] = take(n_layers, dim, dim)
    m["ffn_n"] = take(n_layers, dim)
    m["w1"] = take(n_layers, hid, dim)
    m["w2"] = take(n_layers, dim, hid)
    m["w3"] = take(n_layers, hid, dim)
    m["fin"] = take(dim)
    assert shared, "stories260K ties its embeddings"
    for k in ("emb", "wq", "wk", "wv", "wo", "w1", "w2", "w3"):  # both backends: bf16 weights
        m[k] = m[k].to(torch.bfloat16).float()
    return m


def forward(m, toks, device_roundings):
    r = (lambda t: t.to(torch.bfloat16).float()) if device_roundings else (lambda t: t)
    H, KV, hd, dim = m["H"], m["KV"], m["hd"], m["dim"]
    inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2).float() / hd))

    def rms(x, w):
        return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + 1e-5) * w

    def rope(x, pos):  # llama2.c: adjacent pairs
        ang = pos[:, None].float() * inv[None, :]
        c, s = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
        y = torch.empty_like(x)
        y[..., 0::2] = x[..., 0::2] * c - x[..., 1::2] * s
        y[..., 1::2] = x[..., 0::2] * s + x[..., 1::2] * c
        return y

    T = len(toks)
    x = m["emb"][toks].clone()
    pos = torch.arange(T)
    mask = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
    for l in range(m["L"]):
        xb = r(rms(x, m["att_n"][l]))
        q = rope((xb @ m["wq"][l].T).view(T, H, hd), pos)
        k = r(rope((xb @ m["wk"][l].T).view(T, KV, hd), pos)).repeat_interleave(H // KV, 1)
        v = r((xb @ m["wv"][l].T).view(T, KV, hd)).repeat_interleave(H // KV, 1)
        s = torch.einsum("thd,shd->hts", q, k) / hd**0.5
        att = torch.einsum("hts,shd->thd", s.masked_fill(mask, float("-inf")).softmax(-1), v)
        x = x + r(att.reshape(T, dim)) @ m["wo"][l].T
        xb = r(rms(x, m["ffn_n"][l]))
        h = r(torch.nn.functional.silu(xb @ m["w1"][l].T) * (xb @ m["w3"][l].T))
        x = x + h @ m["w2"][l].T
    return r(rms(x, m["fin"])) @ m["emb"].T


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    m = load(sys.argv[1] + "/models/stories260K/stories260K.bin")
    exact, device = [1, 403, 407, 261, 378, 395], None
    device = list(exact)
    errs, agree = [], 0
    for _ in range(32):
        a = forward(m, torch.tensor(exact), False)[-1]
        b = forward(m, torch.tensor(device), True)[-1]
        errs.append(((b - a).norm() / a.norm()).item())
        exact.append(int(a.argmax()))
        device.append(int(b.argmax()))
        if exact[-1] != device[-1]:
            break
        agree += 1
    print(f"greedy tokens agreeing: {agree}/32; relative logit error: worst {max(errs):.4f}, "
          f"mean {sum(errs) / len(errs):.4f}")


if __name__ == "__main__":
    main()
