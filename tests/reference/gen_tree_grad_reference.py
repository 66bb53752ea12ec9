#!/usr/bin/python3
"""Independent per-path PyTorch oracle for tree-packed training (`treepo grad --trees`).

For a model and a tree file, computes L = the sum over every leaf of every tree of the summed
NLL of the leaf's response along its root-to-leaf path: each leaf's prompt + response tokens
as its own sequence (full causal attention, float64, gen_grad_reference.loss_fn), the paths'
losses added. Tokens shared by several paths therefore count once per path. Writes dL/dW as
float32 safetensors with Hugging Face names. None of treepo's C++ is used; the trees are made
here (fixed seeds) and written in treepo's tree file format (docs/tree-format.md).

The trees exercise what packing must get right: a shared prompt, branches at several depths,
leaves of different depths, two sibling segments with the same tokens (equal prefixes), a
leaf cut short by response_tokens, and a leaf with no response token (adds nothing).

Writes into tests/data/:
  grad_tree_stories260k.jsonl, grad_tree_stories260k.safetensors   stories260K (tied, GQA 8/4)
  grad_tree_random.jsonl, grad_tree_random.safetensors            grad_random_model (untied,
                                                                  q/k/v biases, rotate-half)
Metadata of each .safetensors: {"loss", "leaves", "path_tokens"}.

Usage: /usr/bin/python3 tests/reference/gen_tree_grad_reference.py SHARED_DIR
"""

import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_grad_reference as ref  # noqa: E402

SEGMENT = 4


def make_trees(rng, vocab, first_token):
    """Two query trees; node ids unique across the file."""
    trees = []
    next_id = [1]

    def seg():
        return [int(x) for x in rng.integers(3, vocab, SEGMENT)]

    def node(nodes, parent, depth, tokens, finish=None):
        nid = next_id[0]
        next_id[0] += 1
        nodes.append({"id": nid, "parent": parent, "depth": depth, "tokens": tokens,
                      "logprobs": [-0.5] * len(tokens), "text": "", "finish": finish,
                      "worker": 1, "weight_version": 0})
        return nid

    for q in range(2):
        prompt = [first_token] + [int(x) for x in rng.integers(3, vocab, 5 + q)]
        nodes, leaves = [], []

        def leaf(nid, n_tokens, finish):
            leaves.append({"node": nid, "reward": 1.0 if len(leaves) % 2 else -1.0,
                           "finish": finish, "response_tokens": n_tokens})

        a = node(nodes, None, 1, seg())
        b = node(nodes, None, 1, seg())
        a1 = node(nodes, a, 2, seg())
        a2 = node(nodes, a, 2, seg(), "eos")
        twin = seg()
        a11 = node(nodes, a1, 3, twin, "max_depth")
        a12 = node(nodes, a1, 3, list(twin), "max_depth")  # same tokens as its sibling
        b1 = node(nodes, b, 2, seg(), "eos")
        b2 = node(nodes, b, 2, seg(), "max_depth")
        leaf(a11, 3 * SEGMENT, "max_depth")
        leaf(a12, 3 * SEGMENT, "max_depth")
        leaf(a2, 2 * SEGMENT, "eos")
        leaf(b1, 2 * SEGMENT - 1, "eos")       # cut short by response_tokens
        leaf(b2, 2 * SEGMENT, "max_depth")
        if q == 1:
            c = node(nodes, None, 1, [], "eos")  # no response token at all
            leaf(c, 0, "eos")
        trees.append({"query_id": f"q{q}", "prompt": "", "answer": "",
                      "prompt_tokens": prompt, "nodes": nodes, "leaves": leaves})
    return trees


def paths(tree):
    by_id = {n["id"]: n for n in tree["nodes"]}
    for lf in tree["leaves"]:
        chain, cur = [], lf["node"]
        while cur is not None:
            chain.append(by_id[cur])
            cur = by_id[cur]["parent"]
        response = [t for n in reversed(chain) for t in n["tokens"]][:lf["response_tokens"]]
        yield tree["prompt_tokens"], response


def tree_gradients(cfg, w, trees):
    t = {k: torch.tensor(v, dtype=torch.float64, requires_grad=True) for k, v in w.items()}
    loss = torch.zeros((), dtype=torch.float64)
    leaves = path_tokens = 0
    for tree in trees:
        for prompt, response in paths(tree):
            if not response:
                continue
            loss = loss + ref.loss_fn(cfg, t, prompt + response, len(prompt))
            leaves += 1
            path_tokens += len(prompt) + len(response)
    loss.backward()
    return float(loss), {k: v.grad.numpy() for k, v in t.items()}, leaves, path_tokens


def write_case(name, cfg, w, trees):
    with open(os.path.join(ref.DATA, f"grad_tree_{name}.jsonl"), "w") as f:
        for tree in trees:
            f.write(json.dumps(tree) + "\n")
    loss, g, leaves, path_tokens = tree_gradients(cfg, w, trees)
    ref.write_safetensors(os.path.join(ref.DATA, f"grad_tree_{name}.safetensors"), g,
                          {"loss": repr(loss), "leaves": leaves, "path_tokens": path_tokens})
    print(f"{name}: loss {loss:.6f}, {leaves} leaves, {path_tokens} path tokens")


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    cfg, w = ref.load_llama2c(os.path.join(sys.argv[1], "models", "stories260K",
                                           "stories260K.bin"))
    write_case("stories260k", cfg, w, make_trees(np.random.default_rng(2601), cfg["vocab"], 1))
    cfg, w = ref.random_model(1234)
    write_case("random", cfg, w, make_trees(np.random.default_rng(6401), cfg["vocab"], 5))


if __name__ == "__main__":
    main()
