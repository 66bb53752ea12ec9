#!/usr/bin/python3
"""PyTorch CPU side of learner_bench: training tokens/s of a Llama-family model.

One step = forward over a batch of B sequences of T tokens (full causal attention), mean
next-token NLL, backward, torch.optim.AdamW (betas 0.9/0.999, eps 1e-8, weight decay 0.1).
Weights are random (speed does not depend on their values). Prints one JSON line:
  {"tokens_per_s": ..., "seconds_per_step": ..., "threads": ..., "torch": version}

Usage: torch_train_bench.py --dim D --hidden H --layers L --heads NH --kv-heads NKV
         --vocab V --batch B --seq T --threads N --steps S [--warmup W] [--tied]
"""

import argparse
import json
import math
import time

import torch
import torch.nn.functional as F


class Block(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        kv = a.kv_heads * (a.dim // a.heads)
        self.attn_norm = torch.nn.Parameter(torch.ones(a.dim))
        self.wq = torch.nn.Linear(a.dim, a.dim, bias=False)
        self.wk = torch.nn.Linear(a.dim, kv, bias=False)
        self.wv = torch.nn.Linear(a.dim, kv, bias=False)
        self.wo = torch.nn.Linear(a.dim, a.dim, bias=False)
        self.ffn_norm = torch.nn.Parameter(torch.ones(a.dim))
        self.w1 = torch.nn.Linear(a.dim, a.hidden, bias=False)
        self.w2 = torch.nn.Linear(a.hidden, a.dim, bias=False)
        self.w3 = torch.nn.Linear(a.dim, a.hidden, bias=False)
        self.h, self.kvh, self.hd = a.heads, a.kv_heads, a.dim // a.heads


def rmsnorm(x, w, eps=1e-5):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def rope(x, cos, sin):
    # rotate-half layout; x: [B, H, T, hd]
    half = x.shape[-1] // 2
    x0, x1 = x[..., :half], x[..., half:]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)


class Model(torch.nn.Module):
    def __init__(self, a):
        super().__init__()
        self.emb = torch.nn.Embedding(a.vocab, a.dim)
        self.blocks = torch.nn.ModuleList([Block(a) for _ in range(a.layers)])
        self.norm = torch.nn.Parameter(torch.ones(a.dim))
        self.out = None if a.tied else torch.nn.Linear(a.dim, a.vocab, bias=False)
        hd = a.dim // a.heads
        freq = 10000.0 ** (-2.0 * torch.arange(hd // 2) / hd)
        ang = torch.arange(a.seq)[:, None] * freq[None, :]
        self.cos, self.sin = torch.cos(ang), torch.sin(ang)
        self.mask = torch.full((a.seq, a.seq), float("-inf")).triu(1)

    def forward(self, tok):
        B, T = tok.shape
        x = self.emb(tok)
        for b in self.blocks:
            h = rmsnorm(x, b.attn_norm)
            q = b.wq(h).view(B, T, b.h, b.hd).transpose(1, 2)
            k = b.wk(h).view(B, T, b.kvh, b.hd).transpose(1, 2)
            v = b.wv(h).view(B, T, b.kvh, b.hd).transpose(1, 2)
            q, k = rope(q, self.cos, self.sin), rope(k, self.cos, self.sin)
            if b.kvh != b.h:
                k = k.repeat_interleave(b.h // b.kvh, dim=1)
                v = v.repeat_interleave(b.h // b.kvh, dim=1)
            s = q @ k.transpose(-1, -2) / math.sqrt(b.hd) + self.mask
            o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, -1)
            x = x + b.wo(o)
            h = rmsnorm(x, b.ffn_norm)
            x = x + b.w2(F.silu(b.w1(h)) * b.w3(h))
        x = rmsnorm(x, self.norm)
        return x @ self.emb.weight.T if self.out is None else self.out(x)


def main():
    p = argparse.ArgumentParser()
    for k in ["dim", "hidden", "layers", "heads", "kv_heads", "vocab", "batch", "seq", "threads",
              "steps"]:
        p.add_argument("--" + k.replace("_", "-"), type=int, required=True)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--tied", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Model(a)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, betas=(0.9, 0.999), eps=1e-8,
                            weight_decay=0.1)
    tok = torch.randint(0, a.vocab, (a.batch, a.seq))

    def step():
        logits = model(tok)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, a.vocab), tok[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()

    for _ in range(a.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(a.steps):
        step()
    dt = (time.perf_counter() - t0) / a.steps
    print(json.dumps({"tokens_per_s": a.batch * a.seq / dt, "seconds_per_step": dt,
                      "threads": torch.get_num_threads(), "torch": torch.__version__}))


if __name__ == "__main__":
    main()
