#!/usr/bin/python3
"""Independent PyTorch (float64) reference for the Hugging Face architectures treepo runs.

Writes random tiny models in the Hugging Face layout (config.json + model.safetensors) for
each architecture below, and for each the logits of every position of two token sequences
and the gradients of a next-token loss with respect to every parameter. None of treepo's C++
is used: the configs are read back by this script's own code, the model is written here from
the published formulas of transformers' modeling_llama / modeling_qwen2 / modeling_qwen3 and
modeling_rope_utils (default, linear, llama3 and yarn RoPE).

Models (tests/data/hf_arch/<name>/):
  qwen2         Qwen2: q/k/v biases, tied embeddings, GQA 6/2, theta 1e6
  qwen2_yarn    Qwen2 with rope_scaling yarn (factor 4, original context 32)
  qwen3         Qwen3: per-head q/k RMSNorm, head_dim 16 with hidden 32 and 4 heads (q is 64
                wide), untied, eos_token_id a list; weights stored as BF16 (the reference uses
                the BF16 values)
  llama31       Llama 3.1: rope_scaling llama3 (factor 8, low 1, high 4, original 64),
                theta 500000, untied, eos_token_id [a, b, c]
  llama_linear  Llama with rope_scaling linear (factor 2), tied

Per model, beside the model files:
  reference.json  {"sequences": [{"tokens": [...], "logits": [[vocab floats] per position]}],
                   "loss": float, "prompt_len": int, "grad_tokens": [...]}
                  logits rounded to 8 significant digits
  grads.safetensors  dL/dW (float32, HF names) for
                  L = sum over t >= prompt_len of -log p(grad_tokens[t] | grad_tokens[:t])

Usage: /usr/bin/python3 tests/reference/gen_hf_arch_reference.py [OUT_DIR]
(OUT_DIR defaults to tests/data/hf_arch beside this script.)
"""

import json
import math
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "data", "hf_arch")
VOCAB = 96
PROMPT_LEN = 6
SEQ_LENS = (7, 70)

MODELS = {
    "qwen2": dict(
        config={"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                "hidden_size": 48, "intermediate_size": 64, "num_hidden_layers": 2,
                "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": VOCAB,
                "max_position_embeddings": 128, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6,
                "tie_word_embeddings": True, "hidden_act": "silu", "bos_token_id": 1,
                "eos_token_id": 2, "sliding_window": 128, "use_sliding_window": False,
                "max_window_layers": 2, "torch_dtype": "float32", "use_cache": True,
                "attention_dropout": 0.0, "initializer_range": 0.02,
                "transformers_version": "4.43.1"},
        seed=11, dtype="F32"),
    "qwen2_yarn": dict(
        config={"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
                "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": VOCAB,
                "max_position_embeddings": 128, "rope_theta": 10000.0, "rms_norm_eps": 1e-6,
                "tie_word_embeddings": False, "hidden_act": "silu", "bos_token_id": 1,
                "eos_token_id": 2,
                "rope_scaling": {"type": "yarn", "factor": 4.0,
                                 "original_max_position_embeddings": 32}},
        seed=12, dtype="F32"),
    "qwen3": dict(
        config={"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
                "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                "vocab_size": VOCAB, "max_position_embeddings": 256, "rope_theta": 1000000.0,
                "rms_norm_eps": 1e-6, "tie_word_embeddings": False, "hidden_act": "silu",
                "attention_bias": False, "bos_token_id": 1, "eos_token_id": [2, 5],
                "rope_scaling": None, "sliding_window": None, "use_sliding_window": False,
                "max_window_layers": 2, "torch_dtype": "bfloat16",
                "transformers_version": "4.51.0"},
        seed=13, dtype="BF16"),
    "llama31": dict(
        config={"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2,
                "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
                "vocab_size": VOCAB, "max_position_embeddings": 512, "rope_theta": 500000.0,
                "rms_norm_eps": 1e-5, "tie_word_embeddings": False, "hidden_act": "silu",
                "attention_bias": False, "mlp_bias": False, "pretraining_tp": 1,
                "bos_token_id": 1, "eos_token_id": [2, 7, 9],
                "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0,
                                 "original_max_position_embeddings": 64},
                "torch_dtype": "float32"},
        seed=14, dtype="F32"),
    "llama_linear": dict(
        config={"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                "hidden_size": 32, "intermediate_size": 40, "num_hidden_layers": 1,
                "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": VOCAB,
                "max_position_embeddings": 256, "rope_theta": 10000.0, "rms_norm_eps": 1e-5,
                "tie_word_embeddings": True, "hidden_act": "silu", "bos_token_id": 1,
                "eos_token_id": 2, "rope_scaling": {"type": "linear", "factor": 2.0}},
        seed=15, dtype="F32"),
}


# ---------------------------------------------------------------- safetensors, by hand

def to_bf16_bits(a):
    """float32 -> bfloat16 bit patterns (round to nearest even)."""
    u = np.ascontiguousarray(a, dtype="<f4").view("<u4").astype(np.uint64)
    u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16
    return u.astype("<u2")


def from_bf16_bits(b):
    return (b.astype("<u4") << 16).view("<f4")


def write_safetensors(path, tensors, dtype="F32", metadata=None):
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        if dtype == "BF16":
            raw = to_bf16_bits(np.asarray(tensors[name], dtype=np.float32)).tobytes()
        else:
            raw = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": dtype, "shape": list(np.shape(tensors[name])),
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


# ---------------------------------------------------------------- model definition

def shape_of(cfg):
    heads = cfg["num_attention_heads"]
    hd = cfg.get("head_dim") or cfg["hidden_size"] // heads
    return dict(dim=cfg["hidden_size"], hid=cfg["intermediate_size"],
                layers=cfg["num_hidden_layers"], heads=heads,
                kv_heads=cfg.get("num_key_value_heads") or heads, hd=hd,
                bias=cfg["model_type"] == "qwen2", qk_norm=cfg["model_type"] == "qwen3",
                tied=cfg.get("tie_word_embeddings", False), eps=cfg["rms_norm_eps"])


def random_weights(cfg, seed, dtype):
    s = shape_of(cfg)
    rng = np.random.default_rng(seed)
    d, h, hd = s["dim"], s["hid"], s["hd"]
    q, kv = s["heads"] * hd, s["kv_heads"] * hd

    def mat(*shape):
        return rng.normal(0.0, 0.15, shape)

    def norm(n):
        return 1.0 + 0.1 * rng.normal(size=n)

    w = {"model.embed_tokens.weight": mat(VOCAB, d), "model.norm.weight": norm(d)}
    if not s["tied"]:
        w["lm_head.weight"] = mat(VOCAB, d)
    for l in range(s["layers"]):
        p = f"model.layers.{l}."
        w[p + "input_layernorm.weight"] = norm(d)
        w[p + "self_attn.q_proj.weight"] = mat(q, d)
        w[p + "self_attn.k_proj.weight"] = mat(kv, d)
        w[p + "self_attn.v_proj.weight"] = mat(kv, d)
        if s["bias"]:
            w[p + "self_attn.q_proj.bias"] = 0.1 * rng.normal(size=q)
            w[p + "self_attn.k_proj.bias"] = 0.1 * rng.normal(size=kv)
            w[p + "self_attn.v_proj.bias"] = 0.1 * rng.normal(size=kv)
        if s["qk_norm"]:
            w[p + "self_attn.q_norm.weight"] = norm(hd)
            w[p + "self_attn.k_norm.weight"] = norm(hd)
        w[p + "self_attn.o_proj.weight"] = mat(d, q)
        w[p + "post_attention_layernorm.weight"] = norm(d)
        w[p + "mlp.gate_proj.weight"] = mat(h, d)
        w[p + "mlp.up_proj.weight"] = mat(h, d)
        w[p + "mlp.down_proj.weight"] = mat(d, h)
    # Round to the stored dtype so that the reference runs exactly the model on disk.
    out = {}
    for k, v in w.items():
        v32 = v.astype(np.float32)
        out[k] = from_bf16_bits(to_bf16_bits(v32)) if dtype == "BF16" else v32
    return out


def inv_freq_and_scale(cfg):
    """transformers' modeling_rope_utils, in float64."""
    s = shape_of(cfg)
    hd, base = s["hd"], cfg.get("rope_theta", 10000.0)
    inv = 1.0 / base ** (np.arange(0, hd, 2, dtype=np.float64) / hd)
    rs = cfg.get("rope_scaling")
    if not rs:
        return inv, 1.0
    kind = rs.get("rope_type", rs.get("type"))
    factor = rs["factor"]
    if kind == "linear":
        return inv / factor, 1.0
    if kind == "llama3":
        old = rs["original_max_position_embeddings"]
        low, high = rs["low_freq_factor"], rs["high_freq_factor"]
        low_wl, high_wl = old / low, old / high
        out = []
        for f in inv:
            wl = 2 * math.pi / f
            if wl < high_wl:
                out.append(f)
            elif wl > low_wl:
                out.append(f / factor)
            else:
                smooth = (old / wl - low) / (high - low)
                out.append((1 - smooth) * f / factor + smooth * f)
        return np.array(out), 1.0
    if kind == "yarn":
        orig = rs.get("original_max_position_embeddings") or cfg["max_position_embeddings"]
        beta_fast, beta_slow = rs.get("beta_fast", 32), rs.get("beta_slow", 1)

        def corr(rot):
            return hd * math.log(orig / (rot * 2 * math.pi)) / (2 * math.log(base))

        lo, hi = math.floor(corr(beta_fast)), math.ceil(corr(beta_slow))
        lo, hi = max(lo, 0), min(hi, hd - 1)
        if lo == hi:
            hi += 0.001
        ramp = np.clip((np.arange(hd // 2, dtype=np.float64) - lo) / (hi - lo), 0, 1)
        extra = 1 - ramp
        inv = inv / factor * (1 - extra) + inv * extra
        scale = 0.1 * math.log(factor) + 1.0 if factor > 1 else 1.0
        return inv, scale
    raise ValueError(kind)


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt((x * x).mean(-1, keepdim=True) + eps) * w


def forward(cfg, t, tokens):
    """Logits [n, vocab] of a sequence, full causal attention, float64."""
    s = shape_of(cfg)
    n, H, KV, hd, eps = len(tokens), s["heads"], s["kv_heads"], s["hd"], s["eps"]
    inv, scale = inv_freq_and_scale(cfg)
    ang = torch.arange(n, dtype=torch.float64)[:, None] * torch.tensor(inv)[None, :]
    emb = torch.cat([ang, ang], dim=-1)
    cos, sin = (torch.cos(emb) * scale)[:, None, :], (torch.sin(emb) * scale)[:, None, :]
    x = t["model.embed_tokens.weight"][torch.tensor(tokens)]
    mask = torch.full((n, n), float("-inf"), dtype=torch.float64).triu(1)
    for l in range(s["layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, t[p + "input_layernorm.weight"], eps)
        q = h @ t[p + "self_attn.q_proj.weight"].T
        k = h @ t[p + "self_attn.k_proj.weight"].T
        v = h @ t[p + "self_attn.v_proj.weight"].T
        if s["bias"]:
            q = q + t[p + "self_attn.q_proj.bias"]
            k = k + t[p + "self_attn.k_proj.bias"]
            v = v + t[p + "self_attn.v_proj.bias"]
        q, k, v = q.view(n, H, hd), k.view(n, KV, hd), v.view(n, KV, hd)
        if s["qk_norm"]:
            q = rmsnorm(q, t[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, t[p + "self_attn.k_norm.weight"], eps)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(H // KV, dim=1)
        v = v.repeat_interleave(H // KV, dim=1)
        sc = torch.einsum("ihd,jhd->hij", q, k) / math.sqrt(hd) + mask
        a = torch.einsum("hij,jhd->ihd", torch.softmax(sc, dim=-1), v).reshape(n, H * hd)
        x = x + a @ t[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, t[p + "post_attention_layernorm.weight"], eps)
        g = h @ t[p + "mlp.gate_proj.weight"].T
        u = h @ t[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(g) * u) @ t[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, t["model.norm.weight"], eps)
    out = t["model.embed_tokens.weight"] if s["tied"] else t["lm_head.weight"]
    return x @ out.T


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else OUT
    for name, spec in MODELS.items():
        cfg = spec["config"]
        mdir = os.path.join(out_dir, name)
        os.makedirs(mdir, exist_ok=True)
        w = random_weights(cfg, spec["seed"], spec["dtype"])
        write_safetensors(os.path.join(mdir, "model.safetensors"), w, spec["dtype"],
                          {"format": "pt"})
        with open(os.path.join(mdir, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2)
            f.write("\n")
        rng = np.random.default_rng(spec["seed"] + 100)
        t = {k: torch.tensor(v, dtype=torch.float64) for k, v in w.items()}
        seqs = []
        for n in SEQ_LENS:
            tokens = [1] + [int(x) for x in rng.integers(3, VOCAB, n - 1)]
            with torch.no_grad():
                logits = forward(cfg, t, tokens)
            seqs.append({"tokens": tokens,
                         "logits": [[float(f"{v:.8g}") for v in row] for row in logits.tolist()]})
        # Gradients of the next-token loss over the longer sequence.
        tokens = seqs[-1]["tokens"]
        tg = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in w.items()}
        logp = torch.log_softmax(forward(cfg, tg, tokens), dim=-1)
        rows = torch.arange(PROMPT_LEN - 1, len(tokens) - 1)
        loss = -logp[rows, torch.tensor(tokens[PROMPT_LEN:])].sum()
        loss.backward()
        grads = {k: v.grad.numpy().astype(np.float32) for k, v in tg.items()}
        write_safetensors(os.path.join(mdir, "grads.safetensors"), grads, "F32",
                          {"prompt_len": PROMPT_LEN, "loss": repr(float(loss))})
        with open(os.path.join(mdir, "reference.json"), "w") as f:
            json.dump({"model": name, "sequences": seqs, "prompt_len": PROMPT_LEN,
                       "grad_tokens": tokens, "loss": float(loss)}, f, separators=(",", ":"))
            f.write("\n")
        print(f"{name}: loss {float(loss):.6f}, {len(w)} tensors")


if __name__ == "__main__":
    main()
