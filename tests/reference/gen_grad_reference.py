#!/usr/bin/python3
"""Independent PyTorch oracle for the learner's training backward pass.

For a model and a token sequence, computes L = sum over positions t >= P of -log p(tok[t] |
tok[:t]) (teacher forcing, full causal attention, float64), backpropagates, and writes dL/dW
for every parameter as float32 in a safetensors file (written by hand: struct + json + numpy)
with Hugging Face tensor names. None of treepo's C++ is used.

Two cases are written into tests/data/ (run from anywhere):
  1. stories260K (llama2.c checkpoint, adjacent-pair RoPE, tied, GQA 8/4), parsed with numpy.
     q_proj/k_proj rows stay in llama2.c's adjacent-pair order (as treepo keeps them).
       grad_stories260k_tokens.txt     48 token ids (BOS, then fixed pseudo-random ids)
       grad_stories260k.safetensors    gradients; metadata {"prompt_len": "8"}
  2. a random model: untied, q/k/v biases, rotate-half RoPE, GQA 4/2, seed 1234.
       grad_random_model/config.json + model.safetensors   the model (HF layout)
       grad_random_tokens.txt          48 token ids
       grad_random.safetensors         gradients; metadata {"prompt_len": "8"}

Usage: /usr/bin/python3 tests/reference/gen_grad_reference.py SHARED_DIR
SHARED_DIR is the ../shared folder holding models/stories260K/stories260K.bin.
"""

import json
import os
import struct
import sys

import numpy as np
import torch

PROMPT_LEN = 8
N_TOKENS = 48
HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "data")


def write_safetensors(path, tensors, metadata=None):
    header = {}
    blobs = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        raw = arr.tobytes()
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    if metadata:
        header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    hjson = json.dumps(header, separators=(",", ":")).encode()
    hjson += b" " * ((8 - len(hjson) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hjson)))
        f.write(hjson)
        for b in blobs:
            f.write(b)


def load_llama2c(path):
    with open(path, "rb") as f:
        data = f.read()
    dim, hidden, n_layers, n_heads, n_kv, vocab, seq_len = struct.unpack("<7i", data[:28])
    tied = vocab > 0
    vocab = abs(vocab)
    hd = dim // n_heads
    kv_dim = n_kv * hd
    arr = np.frombuffer(data[28:], dtype="<f4")
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        out = arr[pos:pos + n].reshape(shape).astype(np.float64)
        pos += n
        return out

    emb = take(vocab, dim)
    rms_att = take(n_layers, dim)
    wq = take(n_layers, dim, dim)
    wk = take(n_layers, kv_dim, dim)
    wv = take(n_layers, kv_dim, dim)
    wo = take(n_layers, dim, dim)
    rms_ffn = take(n_layers, dim)
    w1 = take(n_layers, hidden, dim)
    w2 = take(n_layers, dim, hidden)
    w3 = take(n_layers, hidden, dim)
    rms_final = take(dim)
    take(seq_len, hd // 2)
    take(seq_len, hd // 2)
    cfg = dict(dim=dim, hidden=hidden, n_layers=n_layers, n_heads=n_heads, n_kv=n_kv,
               vocab=vocab, eps=1e-5, theta=10000.0, layout="adjacent", tied=tied, bias=False)
    w = {"model.embed_tokens.weight": emb, "model.norm.weight": rms_final}
    for l in range(n_layers):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = rms_att[l]
        w[p + "self_attn.q_proj.weight"] = wq[l]
        w[p + "self_attn.k_proj.weight"] = wk[l]
        w[p + "self_attn.v_proj.weight"] = wv[l]
        w[p + "self_attn.o_proj.weight"] = wo[l]
        w[p + "post_attention_layernorm.weight"] = rms_ffn[l]
        w[p + "mlp.gate_proj.weight"] = w1[l]
        w[p + "mlp.down_proj.weight"] = w2[l]
        w[p + "mlp.up_proj.weight"] = w3[l]
    if not tied:
        w["lm_head.weight"] = take(vocab, dim)
    return cfg, w


def random_model(seed):
    cfg = dict(dim=32, hidden=48, n_layers=2, n_heads=4, n_kv=2, vocab=64, eps=1e-6,
               theta=10000.0, layout="half", tied=False, bias=True)
    rng = np.random.default_rng(seed)
    d, h, kv = cfg["dim"], cfg["hidden"], cfg["n_kv"] * (cfg["dim"] // cfg["n_heads"])

    def mat(*shape):
        return rng.normal(0.0, 0.15, shape)

    w = {"model.embed_tokens.weight": mat(cfg["vocab"], d),
         "model.norm.weight": 1.0 + 0.1 * rng.normal(size=d),
         "lm_head.weight": mat(cfg["vocab"], d)}
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = 1.0 + 0.1 * rng.normal(size=d)
        w[p + "self_attn.q_proj.weight"] = mat(d, d)
        w[p + "self_attn.k_proj.weight"] = mat(kv, d)
        w[p + "self_attn.v_proj.weight"] = mat(kv, d)
        w[p + "self_attn.q_proj.bias"] = 0.1 * rng.normal(size=d)
        w[p + "self_attn.k_proj.bias"] = 0.1 * rng.normal(size=kv)
        w[p + "self_attn.v_proj.bias"] = 0.1 * rng.normal(size=kv)
        w[p + "self_attn.o_proj.weight"] = mat(d, d)
        w[p + "post_attention_layernorm.weight"] = 1.0 + 0.1 * rng.normal(size=d)
        w[p + "mlp.gate_proj.weight"] = mat(h, d)
        w[p + "mlp.down_proj.weight"] = mat(d, h)
        w[p + "mlp.up_proj.weight"] = mat(h, d)
    # Round to float32 so the C++ side, which loads fp32, sees the same model.
    w = {k: v.astype(np.float32).astype(np.float64) for k, v in w.items()}
    return cfg, w


def rope(x, theta, layout):
    # x: [n, heads, hd]; rotates pairs by position * theta^(-2i/hd).
    n, _, hd = x.shape
    half = hd // 2
    freq = theta ** (-2.0 * torch.arange(half, dtype=torch.float64) / hd)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * freq[None, :]
    cos, sin = torch.cos(ang)[:, None, :], torch.sin(ang)[:, None, :]
    if layout == "adjacent":
        x0, x1 = x[..., 0::2], x[..., 1::2]
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).reshape(x.shape)
    x0, x1 = x[..., :half], x[..., half:]
    return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def loss_fn(cfg, t, tokens, prompt_len):
    n = len(tokens)
    H, KV = cfg["n_heads"], cfg["n_kv"]
    hd = cfg["dim"] // H
    x = t["model.embed_tokens.weight"][tokens]
    mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(cfg["n_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, t[p + "input_layernorm.weight"], cfg["eps"])
        q = h @ t[p + "self_attn.q_proj.weight"].T
        k = h @ t[p + "self_attn.k_proj.weight"].T
        v = h @ t[p + "self_attn.v_proj.weight"].T
        if cfg["bias"]:
            q = q + t[p + "self_attn.q_proj.bias"]
            k = k + t[p + "self_attn.k_proj.bias"]
            v = v + t[p + "self_attn.v_proj.bias"]
        q = rope(q.view(n, H, hd), cfg["theta"], cfg["layout"])
        k = rope(k.view(n, KV, hd), cfg["theta"], cfg["layout"])
        v = v.view(n, KV, hd)
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        s = torch.einsum("ihd,jhd->hij", q, k) / (hd ** 0.5) + mask
        a = torch.einsum("hij,jhd->ihd", torch.softmax(s, dim=-1), v).reshape(n, -1)
        x = x + a @ t[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, t[p + "post_attention_layernorm.weight"], cfg["eps"])
        g = h @ t[p + "mlp.gate_proj.weight"].T
        u = h @ t[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ t[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, t["model.norm.weight"], cfg["eps"])
    out = t["model.embed_tokens.weight"] if cfg["tied"] else t["lm_head.weight"]
    logp = torch.log_softmax(x @ out.T, dim=-1)
    rows = torch.arange(prompt_len - 1, n - 1)
    return -logp[rows, torch.tensor(tokens[prompt_len:])].sum()


def gradients(cfg, w, tokens, prompt_len):
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in w.items()}
    loss = loss_fn(cfg, t, tokens, prompt_len)
    loss.backward()
    return float(loss), {k: v.grad.numpy() for k, v in t.items()}


def write_tokens(path, tokens):
    with open(path, "w") as f:
        f.write(" ".join(str(int(x)) for x in tokens) + "\n")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    os.makedirs(DATA, exist_ok=True)
    cfg, w = load_llama2c(os.path.join(sys.argv[1], "models", "stories260K", "stories260K.bin"))
    rng = np.random.default_rng(260)
    tokens = [1] + [int(x) for x in rng.integers(3, cfg["vocab"], N_TOKENS - 1)]
    loss, g = gradients(cfg, w, tokens, PROMPT_LEN)
    write_tokens(os.path.join(DATA, "grad_stories260k_tokens.txt"), tokens)
    write_safetensors(os.path.join(DATA, "grad_stories260k.safetensors"), g,
                      {"prompt_len": PROMPT_LEN, "loss": repr(loss)})
    print(f"stories260K: loss {loss:.6f}, {len(g)} tensors")

    cfg, w = random_model(1234)
    rng = np.random.default_rng(64)
    tokens = [int(x) for x in rng.integers(0, cfg["vocab"], N_TOKENS)]
    mdir = os.path.join(DATA, "grad_random_model")
    os.makedirs(mdir, exist_ok=True)
    write_safetensors(os.path.join(mdir, "model.safetensors"), w)
    config = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
              "hidden_size": cfg["dim"], "intermediate_size": cfg["hidden"],
              "num_hidden_layers": cfg["n_layers"], "num_attention_heads": cfg["n_heads"],
              "num_key_value_heads": cfg["n_kv"], "vocab_size": cfg["vocab"],
              "max_position_embeddings": 128, "rope_theta": cfg["theta"],
              "rms_norm_eps": cfg["eps"], "tie_word_embeddings": False, "attention_bias": True,
              "bos_token_id": 1, "eos_token_id": 2, "treepo_rope_layout": "half"}
    with open(os.path.join(mdir, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
        f.write("\n")
    loss, g = gradients(cfg, w, tokens, PROMPT_LEN)
    write_tokens(os.path.join(DATA, "grad_random_tokens.txt"), tokens)
    write_safetensors(os.path.join(DATA, "grad_random.safetensors"), g,
                      {"prompt_len": PROMPT_LEN, "loss": repr(loss)})
    print(f"random: loss {loss:.6f}, {len(g)} tensors")


if __name__ == "__main__":
    main()
