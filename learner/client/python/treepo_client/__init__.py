"""treepo_client: serve a treepo scheduler as its learner from Python.

A thin ctypes wrapper of libtreepo_client (learner/client/treepo_client.h): no compiler
needed, NumPy arrays out. Typical loop (examples/torch_learner.py is a whole learner):

    import treepo_client as tc
    with tc.Client("tcp://127.0.0.1:5555", model="runs/base") as client:
        weights = client.initial_weights()          # {hf_name: np.ndarray float32}
        version = client.version
        for batch in client.batches():             # ends when the scheduler shuts down
            ...train on batch.tokens / batch.advantages / batch.logprobs ...
            version += 1
            client.publish(version, new_weights)    # {hf_name: array}, every tensor once
            client.train_done(batch.step, version, {"loss": loss})

The library is found through $TREEPO_CLIENT_LIB, else next to this package in an install
(lib/ beside share/treepo/python), else in a build tree (build/*/learner/client/).
"""

import ctypes
import glob
import json
import os

import numpy as np

ABI_VERSION = 1

__all__ = ["Client", "Batch", "TreepoError", "find_library", "ABI_VERSION"]


class TreepoError(RuntimeError):
    """A failure reported by libtreepo_client (the message names the reason)."""


class _Options(ctypes.Structure):
    _fields_ = [
        ("scheduler", ctypes.c_char_p),
        ("model", ctypes.c_char_p),
        ("name", ctypes.c_char_p),
        ("estimator", ctypes.c_char_p),
        ("scheduler_key", ctypes.c_char_p),
        ("key", ctypes.c_char_p),
        ("insecure", ctypes.c_int),
        ("rank", ctypes.c_int),
        ("world_size", ctypes.c_int),
        ("register_timeout_ms", ctypes.c_int),
        ("weight_chunk_bytes", ctypes.c_int64),
    ]


def find_library():
    """The path of libtreepo_client.so (see the module docstring for the search order)."""
    env = os.environ.get("TREEPO_CLIENT_LIB")
    if env:
        return env
    here = os.path.dirname(os.path.abspath(__file__))
    candidates = []
    # Installed: PREFIX/share/treepo/python/treepo_client -> PREFIX/lib*/
    prefix = os.path.normpath(os.path.join(here, "..", "..", "..", ".."))
    for lib in ("lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu"):
        candidates.append(os.path.join(prefix, lib, "libtreepo_client.so"))
    # Source tree: learner/client/python/treepo_client -> build/*/learner/client/
    root = os.path.normpath(os.path.join(here, "..", "..", "..", ".."))
    candidates += sorted(glob.glob(os.path.join(root, "build", "*", "learner", "client",
                                                "libtreepo_client.so")))
    for c in candidates:
        if os.path.exists(c):
            return c
    raise TreepoError("libtreepo_client.so not found (set TREEPO_CLIENT_LIB); looked in: " +
                      ", ".join(candidates))


_lib = None


def _load(path=None):
    global _lib
    if _lib is not None and path is None:
        return _lib
    lib = ctypes.CDLL(path or find_library())
    P, I, I64, U64 = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_uint64
    sigs = {
        "treepo_client_abi_version": (I, []),
        "treepo_client_options_init": (None, [ctypes.POINTER(_Options)]),
        "treepo_client_connect": (P, [ctypes.POINTER(_Options), ctypes.c_char_p, ctypes.c_size_t]),
        "treepo_client_close": (None, [P]),
        "treepo_client_error": (ctypes.c_char_p, [P]),
        "treepo_client_model_json": (ctypes.c_char_p, [P]),
        "treepo_client_initial_weights": (ctypes.POINTER(ctypes.c_float),
                                          [P, ctypes.POINTER(I64)]),
        "treepo_client_next_batch": (I, [P, I, ctypes.POINTER(P)]),
        "treepo_client_publish": (I, [P, U64, I64, ctypes.POINTER(ctypes.c_char_p),
                                      ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(I64)]),
        "treepo_client_train_done": (I, [P, U64, U64, I64, ctypes.POINTER(ctypes.c_char_p),
                                         ctypes.POINTER(ctypes.c_double)]),
        "treepo_client_fail": (I, [P, ctypes.c_char_p]),
        "treepo_batch_step": (U64, [P]),
        "treepo_batch_num_sequences": (I64, [P]),
        "treepo_batch_num_tokens": (I64, [P]),
        "treepo_batch_offsets": (ctypes.POINTER(I64), [P]),
        "treepo_batch_prompt_lens": (ctypes.POINTER(ctypes.c_int32), [P]),
        "treepo_batch_trees": (ctypes.POINTER(ctypes.c_int32), [P]),
        "treepo_batch_rewards": (ctypes.POINTER(ctypes.c_float), [P]),
        "treepo_batch_tokens": (ctypes.POINTER(ctypes.c_int32), [P]),
        "treepo_batch_advantages": (ctypes.POINTER(ctypes.c_float), [P]),
        "treepo_batch_logprobs": (ctypes.POINTER(ctypes.c_float), [P]),
        "treepo_batch_versions": (ctypes.POINTER(ctypes.c_uint64), [P]),
        "treepo_batch_num_trees": (I64, [P]),
        "treepo_batch_trees_jsonl": (ctypes.c_char_p, [P]),
        "treepo_batch_free": (None, [P]),
    }
    for name, (res, args) in sigs.items():
        f = getattr(lib, name)
        f.restype = res
        f.argtypes = args
    abi = lib.treepo_client_abi_version()
    if abi != ABI_VERSION:
        raise TreepoError("libtreepo_client ABI %d, this package speaks %d" % (abi, ABI_VERSION))
    if path is None:
        _lib = lib
    return lib


def _array(ptr, n, dtype):
    if n == 0:
        return np.zeros(0, dtype=dtype)
    return np.ctypeslib.as_array(ptr, shape=(n,)).astype(dtype, copy=True)


class Batch:
    """One step's trees (this rank's shard) as training sequences, copied into NumPy.

    Per sequence (one per leaf): offsets[i]:offsets[i+1] slices the token arrays,
    prompt_lens, trees (tree index), rewards. Per token: tokens, advantages and logprobs
    (0 on prompt tokens), versions (the weight version that sampled the token; 0 on prompt
    tokens). trees_jsonl: the raw trees (docs/tree-format.md) for your own advantages;
    raw_trees() parses them.
    """

    def __init__(self, lib, handle):
        n = lib.treepo_batch_num_sequences(handle)
        t = lib.treepo_batch_num_tokens(handle)
        self.step = lib.treepo_batch_step(handle)
        self.offsets = _array(lib.treepo_batch_offsets(handle), n + 1, np.int64)
        self.prompt_lens = _array(lib.treepo_batch_prompt_lens(handle), n, np.int32)
        self.trees = _array(lib.treepo_batch_trees(handle), n, np.int32)
        self.rewards = _array(lib.treepo_batch_rewards(handle), n, np.float32)
        self.tokens = _array(lib.treepo_batch_tokens(handle), t, np.int32)
        self.advantages = _array(lib.treepo_batch_advantages(handle), t, np.float32)
        self.logprobs = _array(lib.treepo_batch_logprobs(handle), t, np.float32)
        self.versions = _array(lib.treepo_batch_versions(handle), t, np.uint64)
        self.num_trees = lib.treepo_batch_num_trees(handle)
        self.trees_jsonl = lib.treepo_batch_trees_jsonl(handle).decode("utf-8")

    def __len__(self):
        return len(self.prompt_lens)

    def sequence(self, i):
        """(tokens, prompt_len, advantages, logprobs, versions) of sequence i."""
        a, b = self.offsets[i], self.offsets[i + 1]
        return (self.tokens[a:b], int(self.prompt_lens[i]), self.advantages[a:b],
                self.logprobs[a:b], self.versions[a:b])

    def raw_trees(self):
        return [json.loads(line) for line in self.trees_jsonl.splitlines() if line]


class Client:
    """A learner connected to a treepo scheduler (one data-parallel rank)."""

    def __init__(self, scheduler, model, name=None, estimator=None, scheduler_key=None,
                 key=None, insecure=False, rank=0, world_size=1, register_timeout_ms=30000,
                 weight_chunk_bytes=0, library=None):
        self._h = None
        self._lib = _load(library)
        o = _Options()
        self._lib.treepo_client_options_init(ctypes.byref(o))
        enc = lambda s: None if s is None else str(s).encode("utf-8")
        self._keep = [enc(scheduler), enc(model), enc(name), enc(estimator), enc(scheduler_key),
                      enc(key)]
        (o.scheduler, o.model, o.name, o.estimator, o.scheduler_key, o.key) = self._keep
        o.insecure, o.rank, o.world_size = int(bool(insecure)), rank, world_size
        o.register_timeout_ms, o.weight_chunk_bytes = register_timeout_ms, weight_chunk_bytes
        err = ctypes.create_string_buffer(4096)
        self._h = self._lib.treepo_client_connect(ctypes.byref(o), err, len(err))
        if not self._h:
            raise TreepoError(err.value.decode("utf-8", "replace"))
        self.model = json.loads(self._lib.treepo_client_model_json(self._h).decode("utf-8"))
        self.config = self.model["config"]
        self.version = int(self.model["version"])  # the scheduler's version at registration

    def close(self):
        if self._h:
            self._lib.treepo_client_close(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None):
            self.close()

    def _check(self, rc):
        if rc < 0:
            raise TreepoError(self._lib.treepo_client_error(self._h).decode("utf-8", "replace"))
        return rc

    def initial_weights(self):
        """{hf_name: float32 array of the tensor's shape}: the model the run starts from."""
        total = ctypes.c_int64()
        ptr = self._lib.treepo_client_initial_weights(self._h, ctypes.byref(total))
        flat = np.ctypeslib.as_array(ptr, shape=(total.value,))
        return {t["name"]: flat[t["offset"]:t["offset"] + t["numel"]].reshape(t["shape"]).copy()
                for t in self.model["tensors"]}

    def next_batch(self, timeout_ms=1000):
        """A Batch, None when none came within timeout_ms, or StopIteration at Shutdown."""
        h = ctypes.c_void_p()
        rc = self._check(self._lib.treepo_client_next_batch(self._h, timeout_ms, ctypes.byref(h)))
        if rc == 2:
            raise StopIteration
        if rc == 0:
            return None
        try:
            return Batch(self._lib, h)
        finally:
            self._lib.treepo_batch_free(h)

    def batches(self, timeout_ms=1000):
        """Yields every batch until the scheduler ends the run."""
        while True:
            try:
                b = self.next_batch(timeout_ms)
            except StopIteration:
                return
            if b is not None:
                yield b

    def publish(self, version, tensors):
        """Sends {hf_name: array} (every tensor of the model, float32) as `version`."""
        names = list(tensors)
        arrays = [np.ascontiguousarray(tensors[n], dtype=np.float32) for n in names]
        c_names = (ctypes.c_char_p * len(names))(*[n.encode("utf-8") for n in names])
        c_data = (ctypes.c_void_p * len(names))(*[a.ctypes.data for a in arrays])
        c_numel = (ctypes.c_int64 * len(names))(*[a.size for a in arrays])
        self._check(self._lib.treepo_client_publish(self._h, version, len(names), c_names,
                                                    c_data, c_numel))
        self.version = version

    def train_done(self, step, version, metrics=None):
        """Reports step `step` done with weight `version` and {name: float} metrics."""
        metrics = metrics or {}
        names = list(metrics)
        c_names = (ctypes.c_char_p * len(names))(*[n.encode("utf-8") for n in names])
        c_vals = (ctypes.c_double * len(names))(*[float(metrics[n]) for n in names])
        self._check(self._lib.treepo_client_train_done(self._h, step, version, len(names),
                                                       c_names, c_vals))

    def fail(self, message):
        """Tells the scheduler this learner cannot go on (it ends the run with the message)."""
        self._check(self._lib.treepo_client_fail(self._h, message.encode("utf-8")))
