#!/usr/bin/python3
"""A PyTorch learner for treepo: trains the policy on the trees treepo's scheduler and
workers roll out, with treepo's clipped policy loss, and publishes every new version back.

It uses the client library through the Python package in learner/client/python
(docs/external-learner.md). Run it by hand against a running scheduler:

    /usr/bin/python3 examples/torch_learner.py --scheduler tcp://127.0.0.1:5555 --model runs/base

or let `treepo train` start it in place of the built-in learner:

    treepo train --set "cluster.learner_command=/usr/bin/python3 examples/torch_learner.py"

(then every option comes from the TREEPO_* environment variables train sets). With
`cluster.learners = N` (the default is 2) train starts N ranks of it: each trains on its shard
of the step's trees, and the ranks sum their gradients and token counts with torch.distributed
(Gloo, rendezvous in the file TREEPO_RENDEZVOUS), so every rank takes the same step; rank 0
publishes, reports and checkpoints.

Per step: one sequence per leaf (prompt + root-to-leaf path), the advantages treepo's
estimator computed (whitened over the batch; with several ranks over this rank's shard), logp_old recomputed with the current weights
(tokens sampled by an older version use the workers' log-probs), the clipped loss
(eps 0.2 / 0.28, dual clip 10, token mean over the batch), global-norm clip and one AdamW
step; then publish version v+1 and report TrainDone. On Shutdown it writes the final
checkpoint (config.json + model.safetensors + state.json) when --checkpoint-dir is set.
"""

import argparse
import json
import math
import os
import shutil
import struct
import sys
import time
import zlib

import numpy as np
import torch
import torch.distributed
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "learner",
                                "client", "python"))
import treepo_client  # noqa: E402


def env(name, default):
    return os.environ.get("TREEPO_" + name, default)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--scheduler", default=env("SCHEDULER", None), help="tcp://HOST:PORT")
    p.add_argument("--model", default=env("MODEL", None), help="the model the run starts from")
    p.add_argument("--checkpoint-dir", default=env("CHECKPOINT_DIR", ""))
    p.add_argument("--scheduler-key", default=env("SCHEDULER_KEY", None))
    p.add_argument("--key", default=env("KEY", None))
    p.add_argument("--estimator", default=env("ESTIMATOR", "treepo"))
    p.add_argument("--rank", type=int, default=int(env("RANK", "0")))
    p.add_argument("--world-size", type=int, default=int(env("WORLD_SIZE", "1")))
    p.add_argument("--rendezvous", default=env("RENDEZVOUS", ""),
                   help="with world size > 1: a file path every rank can reach, not yet existing "
                        "(torch.distributed's file:// rendezvous)")
    p.add_argument("--lr", type=float, default=float(env("LR", "2e-5")))
    p.add_argument("--warmup-steps", type=int, default=int(env("WARMUP_STEPS", "2")))
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--max-grad-norm", type=float, default=1.0)
    p.add_argument("--eps-low", type=float, default=0.2)
    p.add_argument("--eps-high", type=float, default=0.28)
    p.add_argument("--dual-clip", type=float, default=10.0)
    p.add_argument("--micro-batch", type=int, default=32, help="sequences per forward")
    p.add_argument("--threads", type=int, default=int(env("THREADS", "2")))
    a = p.parse_args()
    if not a.scheduler or not a.model:
        p.error("--scheduler and --model are required (or TREEPO_SCHEDULER, TREEPO_MODEL)")
    if a.world_size > 1 and not a.rendezvous:
        p.error("--world-size > 1 needs --rendezvous (or TREEPO_RENDEZVOUS)")
    return a


def all_reduce(values, op="sum"):
    """`values` (floats) summed (or maxed) over the data-parallel ranks; as they are alone."""
    if not torch.distributed.is_initialized():
        return values
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(
        t, op=torch.distributed.ReduceOp.MAX if op == "max" else torch.distributed.ReduceOp.SUM)
    return t.tolist()


class Llama:
    """The Llama-family decoder of treepo's model definition, on Hugging Face named tensors."""

    def __init__(self, config, params):
        self.c = config
        self.p = params  # {hf_name: torch.nn.Parameter}
        if (config.get("qk_norm") or config.get("rope_scaling", "none") != "none"
                or config.get("head_dim", config["dim"] // config["n_heads"])
                != config["dim"] // config["n_heads"]):
            raise SystemExit("this example supports Llama/Qwen2 shapes only (no q/k norm, "
                             "rope_scaling or head_dim other than dim / n_heads)")
        hd = config["dim"] // config["n_heads"]
        freq = config["rope_theta"] ** (-2.0 * torch.arange(hd // 2, dtype=torch.float64) / hd)
        ang = torch.arange(config["max_seq_len"], dtype=torch.float64)[:, None] * freq[None, :]
        self.cos, self.sin = torch.cos(ang).float(), torch.sin(ang).float()

    def rope(self, x):  # x: [B, H, T, hd]
        T = x.shape[2]
        cos, sin = self.cos[:T], self.sin[:T]
        if self.c["rope_layout"] == "rotate_half":
            half = x.shape[-1] // 2
            x0, x1 = x[..., :half], x[..., half:]
            return torch.cat([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1)
        x0, x1 = x[..., 0::2], x[..., 1::2]  # llama2.c: adjacent pairs
        return torch.stack([x0 * cos - x1 * sin, x0 * sin + x1 * cos], dim=-1).flatten(-2)

    def norm(self, x, w):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.c["norm_eps"]) * w

    def linear(self, x, name):
        y = x @ self.p[name + ".weight"].T
        b = self.p.get(name + ".bias")
        return y if b is None else y + b

    def logits(self, tok):  # tok: [B, T] -> [B, T, vocab]
        c, p = self.c, self.p
        B, T = tok.shape
        H, KV = c["n_heads"], c["n_kv_heads"]
        hd = c["dim"] // H
        x = p["model.embed_tokens.weight"][tok]
        mask = torch.full((T, T), float("-inf")).triu(1)
        for layer in range(c["n_layers"]):
            pre = "model.layers.%d." % layer
            h = self.norm(x, p[pre + "input_layernorm.weight"])
            q = self.linear(h, pre + "self_attn.q_proj").view(B, T, H, hd).transpose(1, 2)
            k = self.linear(h, pre + "self_attn.k_proj").view(B, T, KV, hd).transpose(1, 2)
            v = self.linear(h, pre + "self_attn.v_proj").view(B, T, KV, hd).transpose(1, 2)
            q, k = self.rope(q), self.rope(k)
            if KV != H:
                k = k.repeat_interleave(H // KV, dim=1)
                v = v.repeat_interleave(H // KV, dim=1)
            s = q @ k.transpose(-1, -2) / math.sqrt(hd) + mask
            o = (torch.softmax(s, dim=-1) @ v).transpose(1, 2).reshape(B, T, -1)
            x = x + self.linear(o, pre + "self_attn.o_proj")
            h = self.norm(x, p[pre + "post_attention_layernorm.weight"])
            x = x + self.linear(F.silu(self.linear(h, pre + "mlp.gate_proj")) *
                                self.linear(h, pre + "mlp.up_proj"), pre + "mlp.down_proj")
        x = self.norm(x, p["model.norm.weight"])
        head = p["model.embed_tokens.weight"] if c["tied_embeddings"] else p["lm_head.weight"]
        return x @ head.T


def response_logp(model, batch, seqs):
    """Log-probs of the response tokens of sequences `seqs` (a list of indices), concatenated
    in order, and the rows' token counts."""
    rows = [batch.sequence(i) for i in seqs]
    T = max(len(r[0]) for r in rows)
    tok = torch.zeros((len(rows), T), dtype=torch.long)
    for j, r in enumerate(rows):
        tok[j, :len(r[0])] = torch.from_numpy(r[0].astype(np.int64))
    logp_all = F.log_softmax(model.logits(tok), dim=-1)
    out = []
    for j, (tokens, plen, _, _, _) in enumerate(rows):
        n = len(tokens)
        target = tok[j, plen:n]
        out.append(logp_all[j, plen - 1:n - 1].gather(-1, target[:, None])[:, 0])
    return torch.cat(out)


def clipped_loss(logp, old, adv, a):
    """treepo's clipped policy loss per token (learner/loss.cc): clip-higher, dual clip."""
    ratio = torch.exp(logp - old)
    pg = torch.maximum(-adv * ratio, -adv * ratio.clamp(1 - a.eps_low, 1 + a.eps_high))
    pg = torch.where(adv < 0, torch.minimum(pg, -adv * a.dual_clip), pg)
    clipped = ((adv > 0) & (ratio > 1 + a.eps_high)) | ((adv < 0) & (ratio < 1 - a.eps_low))
    return pg, ratio, clipped


def train_step(model, opt, sched, batch, version, a):
    t0 = time.perf_counter()
    n = len(batch)
    resp = []  # per sequence: (advantages, worker logp, versions) of its response tokens
    for i in range(n):
        tokens, plen, adv, lp, ver = batch.sequence(i)
        resp.append((adv[plen:], lp[plen:], ver[plen:]))
    # The loss is the token mean over the whole step's batch: every rank's tokens count.
    local = sum(len(r[0]) for r in resp)
    total = int(all_reduce([float(local)])[0])
    stats = {"loss": 0.0, "clipped": 0.0, "ratio_sum": 0.0, "ratio_max": 0.0, "mismatch": 0.0}
    opt.zero_grad(set_to_none=True)
    for start in range(0, n, a.micro_batch):
        seqs = list(range(start, min(n, start + a.micro_batch)))
        logp = response_logp(model, batch, seqs)
        adv = torch.from_numpy(np.concatenate([resp[i][0] for i in seqs]))
        worker = torch.from_numpy(np.concatenate([resp[i][1] for i in seqs]))
        ver = np.concatenate([resp[i][2] for i in seqs])
        # On-policy tokens: logp_old is this forward pass (the current weights sampled them).
        current = torch.from_numpy(ver == version)
        old = torch.where(current, logp.detach(), worker)
        pg, ratio, clipped = clipped_loss(logp, old, adv, a)
        loss = pg.sum() / max(1, total)
        loss.backward()
        stats["loss"] += loss.item()
        stats["clipped"] += clipped.sum().item()
        stats["ratio_sum"] += ratio.sum().item()
        stats["ratio_max"] = max(stats["ratio_max"], ratio.max().item())
        stats["mismatch"] += (logp.detach() - worker).abs().sum().item()
    params = list(model.p.values())
    if torch.distributed.is_initialized():
        # One flat buffer: one all-reduce per step (a rank with an empty shard adds zeros).
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
        flat = torch.cat([p.grad.reshape(-1) for p in params])
        torch.distributed.all_reduce(flat)
        offset = 0
        for p in params:
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        stats["loss"], stats["clipped"], stats["ratio_sum"], stats["mismatch"] = all_reduce(
            [stats["loss"], stats["clipped"], stats["ratio_sum"], stats["mismatch"]])
        stats["ratio_max"] = all_reduce([stats["ratio_max"]], op="max")[0]
    grad_norm = torch.nn.utils.clip_grad_norm_(params, a.max_grad_norm).item()
    lr = opt.param_groups[0]["lr"]
    opt.step()
    sched.step()
    return {"loss": stats["loss"], "clip_fraction": stats["clipped"] / max(1, total),
            "ratio_mean": stats["ratio_sum"] / max(1, total), "ratio_max": stats["ratio_max"],
            "logp_mismatch": stats["mismatch"] / max(1, total), "grad_norm": grad_norm,
            "lr": lr, "tokens": float(total), "sequences": float(all_reduce([float(n)])[0]),
            "optimizer_steps": 1.0, "train_s": time.perf_counter() - t0}


def save_safetensors(path, tensors):
    """Hugging Face safetensors (F32), written with NumPy alone."""
    header, offset, blobs = {}, 0, []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name], dtype="<f4")
        header[name] = {"dtype": "F32", "shape": list(arr.shape),
                        "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
        blobs.append(arr.tobytes())
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def save_checkpoint(root, step, version, model_dir, tensors):
    """root/step_NNNNNN: config.json (+ tokenizer files) copied from the start model,
    model.safetensors, state.json; written to a .tmp directory, then renamed."""
    final = os.path.join(root, "step_%06d" % step)
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for f in ("config.json", "tokenizer.bin", "tokenizer.json", "tokenizer_config.json",
              "task.json"):
        src = os.path.join(model_dir, f)
        if os.path.isfile(src):
            shutil.copyfile(src, os.path.join(tmp, f))
    save_safetensors(os.path.join(tmp, "model.safetensors"), tensors)
    with open(os.path.join(tmp, "state.json"), "w") as f:
        json.dump({"step": step, "version": version}, f)
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    return final


def main():
    a = parse_args()
    torch.set_num_threads(a.threads)
    if a.world_size > 1:
        os.makedirs(os.path.dirname(os.path.abspath(a.rendezvous)), exist_ok=True)
        torch.distributed.init_process_group("gloo", init_method="file://" + a.rendezvous,
                                             rank=a.rank, world_size=a.world_size)
    client = treepo_client.Client(a.scheduler, a.model, estimator=a.estimator,
                                  scheduler_key=a.scheduler_key, key=a.key, rank=a.rank,
                                  world_size=a.world_size,
                                  name="torch-learner-%d" % a.rank)
    lead = a.rank == 0
    params = {k: torch.nn.Parameter(torch.from_numpy(v))
              for k, v in client.initial_weights().items()}
    model = Llama(client.config, params)
    decay = [p for p in params.values() if p.dim() >= 2]
    no_decay = [p for p in params.values() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8)
    warm = max(1, a.warmup_steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warm))
    # A checkpoint (a resumed run) carries its version; a base model is version 0. The AdamW
    # moments start afresh either way.
    version = 0
    state = os.path.join(a.model, "state.json")
    if os.path.isfile(state):
        with open(state) as f:
            version = int(json.load(f)["version"])
    print("torch learner rank %d/%d: %d tensors, version %d, scheduler %s" %
          (a.rank, a.world_size, len(params), version, a.scheduler), flush=True)
    named = lambda: {k: p.detach().numpy() for k, p in params.items()}
    if lead:
        client.publish(version, named())  # the workers start from this learner's weights
    step = 0
    for batch in client.batches():
        metrics = train_step(model, opt, sched, batch, version, a)
        version += 1
        step = batch.step + 1
        if lead:
            client.publish(version, named())
            client.train_done(batch.step, version, metrics)
        print("step %d -> version %d: loss %+.4f clip %.3f grad norm %.3f tokens %d in %.2fs" %
              (batch.step, version, metrics["loss"], metrics["clip_fraction"],
               metrics["grad_norm"], metrics["tokens"], metrics["train_s"]), flush=True)
    if a.world_size > 1:
        # Every rank took the same steps: the same weights, bit for bit.
        crc = 0
        for name in sorted(params):
            crc = zlib.crc32(params[name].detach().numpy().tobytes(), crc)
        print("rank %d/%d final weights crc32 %08x" % (a.rank, a.world_size, crc), flush=True)
    if lead and a.checkpoint_dir and step > 0:
        print("checkpoint", save_checkpoint(a.checkpoint_dir, step, version, a.model, named()),
              flush=True)
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
