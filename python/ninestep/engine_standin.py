"""STAND-IN for `ninestep.engine.Engine` (ENGINE_API.md) until the real multi-sequence engine lands:
the same interface built from one `engine.Session` per sequence, so the scheduler and the server can
be written and tested against it. A step runs its items one after the other (no shared weight reads),
and copy() recomputes the source's tokens on the destination. Delete once main has `engine.Engine`."""
import numpy as np

from ._checks import positive_int


class StandInEngine:
    def __init__(self, weights, n_ctx=4096, n_seq=8, chunk=512):
        from .engine import Session

        self.n_seq = positive_int(n_seq, "n_seq")
        self._seqs = [Session(weights, n_ctx, chunk) for _ in range(self.n_seq)]
        self.n_ctx, self.chunk = self._seqs[0].n_ctx, self._seqs[0].chunk
        self.vocab_size = self._seqs[0].vocab_size
        self._ids = [[] for _ in range(self.n_seq)]  # the tokens each sequence holds (copy() replays them)

    def _seq(self, s, name="s"):
        s = positive_int(s, name, allow_zero=True)
        if s >= self.n_seq:
            raise ValueError(f"{name}: sequence {s} is out of range [0, {self.n_seq})")
        return s

    def seq_len(self, s):
        return len(self._ids[self._seq(s)])

    def truncate(self, s, n):
        s, n = self._seq(s), positive_int(n, "n", allow_zero=True)
        if n > len(self._ids[s]):
            raise ValueError(f"n: {n} is past the {len(self._ids[s])} positions of sequence {s}")
        del self._ids[s][n:]

    def copy(self, src, dst, n):
        src, dst, n = self._seq(src, "src"), self._seq(dst, "dst"), positive_int(n, "n", allow_zero=True)
        if n > len(self._ids[src]):
            raise ValueError(f"n: {n} is past the {len(self._ids[src])} positions of sequence {src}")
        ids = self._ids[src][:n]
        self._ids[dst] = []
        if n:
            self._run(dst, ids, 0)

    def _run(self, s, ids, n_logits):
        """Extends sequence s by ids; keeps _ids in step with what the session holds, even when a
        Ctrl-C stops the session between two of its chunks."""
        sess, pos = self._seqs[s], len(self._ids[s])
        try:
            out = sess.forward(np.asarray(ids, dtype=np.int32), pos, all_logits=n_logits > 1)
        finally:
            done = max(0, min(sess.n_past, pos + len(ids)) - pos)
            self._ids[s].extend(ids[:done])
        return out if n_logits else out[:0]

    def step(self, items):
        if not isinstance(items, (list, tuple)):
            raise ValueError(f"items: expected a list of (seq, ids, n_logits), got {type(items).__name__}")
        seen = set()
        checked = []
        for i, item in enumerate(items):
            if not isinstance(item, (list, tuple)) or len(item) != 3:
                raise ValueError(f"items[{i}]: expected (seq, ids, n_logits)")
            s, ids, n_logits = item
            s = self._seq(s, f"items[{i}] seq")
            if s in seen:
                raise ValueError(f"items[{i}]: sequence {s} appears twice")
            seen.add(s)
            ids = [int(t) for t in ids]
            if not ids:
                raise ValueError(f"items[{i}]: ids are empty")
            if min(ids) < 0 or max(ids) >= self.vocab_size:
                raise ValueError(f"items[{i}]: ids must be in [0, {self.vocab_size})")
            if len(self._ids[s]) + len(ids) > self.n_ctx:
                raise ValueError(f"items[{i}]: seq_len {len(self._ids[s])} + {len(ids)} ids exceeds n_ctx {self.n_ctx}")
            if n_logits not in (0, 1, len(ids)):
                raise ValueError(f"items[{i}]: n_logits must be 0, 1 or len(ids), got {n_logits}")
            checked.append((s, ids, n_logits))
        return [self._run(s, ids, n) for s, ids, n in checked]
