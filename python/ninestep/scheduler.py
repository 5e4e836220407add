"""Continuous batching over one multi-sequence engine (`engine.Engine`, ENGINE_API.md).

Each step():
1. frees the sequences of cancelled requests (cancel() may come from any thread);
2. admits waiting requests to free sequences, reusing the longest prompt prefix any sequence still
   holds: a free one by truncate(), a busy one by copy(); a prompt that a sequence holds exactly with
   the logits of its last prefill reuses those logits too (so `n > 1` runs its prompt once and the
   others copy it, and a repeated prompt gets the very same logits); a request that scores its
   prompt (prompt_logprobs) reuses nothing and gets every prompt row's logits (SCORED_ROWS a step
   for all such requests together);
3. runs one engine step within a token budget (the engine's `chunk`): every decoding request's next
   token first, then prompt chunks in admission order, so decodes keep flowing beside long prompts;
4. hands each request its logits; finished requests leave their sequence (its tokens stay for reuse).

The caller steps from one thread (the model's lock or the server's engine thread)."""
import itertools
import threading
from collections import deque


class Slot:
    """One sequence of the engine."""

    def __init__(self, index):
        self.index = index
        self.ids = []       # the token ids in this sequence's KV cache, in order
        self.req = None     # the request using it; None = free (its ids are kept for prefix reuse)
        self.last = None    # (prompt ids, logits [vocab] after them) of the last prompt run here
        self.used = 0       # when it was last given to a request (the least recent is reused first)


def _common(a, b, limit):
    n = 0
    limit = min(limit, len(a), len(b))
    while n < limit and a[n] == b[n]:
        n += 1
    return n


class Scheduler:
    SCORED_ROWS = 64  # prompt rows per step of the requests that score their prompts (their logits come back)

    def __init__(self, engine, budget=None):
        self.engine = engine
        self.budget = budget or engine.chunk
        self.slots = [Slot(i) for i in range(engine.n_seq)]
        self.waiting = deque()
        self._lock = threading.Lock()   # guards `waiting` against submit() from other threads
        self._clock = itertools.count(1)
        self._order = {}                # request -> admission number (prompt chunks go in this order)
        # counters for /metrics
        self.steps = self.prompt_tokens_run = self.tokens_generated = 0

    # -- any thread ------------------------------------------------------------------------------
    def submit(self, req):
        if req.done:
            return
        if len(req.prompt) + max(req.max_new_tokens - 1, 0) > self.engine.n_ctx:
            raise ValueError(f"prompt: {len(req.prompt)} tokens + {req.max_new_tokens} new tokens do not fit "
                             f"the context of {self.engine.n_ctx} (n_ctx)")
        with self._lock:
            self.waiting.append(req)

    @property
    def n_waiting(self):
        return len(self.waiting)

    @property
    def n_running(self):
        return sum(s.req is not None for s in self.slots)

    @property
    def busy(self):
        return bool(self.waiting) or any(s.req is not None for s in self.slots)

    def kv_used(self):
        return sum(len(s.ids) for s in self.slots)

    # -- the stepping thread ------------------------------------------------------------------
    def release(self, reqs):
        """Finishes `reqs` now as cancelled (those not done) and frees their sequences."""
        reqs = set(r for r in reqs if not r.done)
        if not reqs:
            return
        with self._lock:
            self.waiting = deque(r for r in self.waiting if r not in reqs)
        for s in self.slots:
            if s.req in reqs:
                s.req = None
        for r in reqs:
            self._order.pop(r, None)
            r.cancelled_now()

    def reset(self):
        """Forgets the cache of every sequence no request is using."""
        for s in self.slots:
            if s.req is None:
                self.engine.truncate(s.index, 0)
                s.ids, s.last = [], None

    def step(self):
        """One engine step; returns the requests that changed (got text, finished)."""
        touched = []
        try:
            self._drop_cancelled(touched)
            self._admit(touched)
            plan = self._plan()
            if plan:
                self._run(plan, touched)
        except BaseException as e:
            self._resync(e)
            raise
        finally:
            for r in touched:
                if r.on_update is not None:
                    r.on_update(r)
        return touched

    def _drop_cancelled(self, touched):
        with self._lock:
            gone = [r for r in self.waiting if r.cancelled]
            if gone:
                self.waiting = deque(r for r in self.waiting if not r.cancelled)
        for s in self.slots:
            if s.req is not None and s.req.cancelled:
                gone.append(s.req)
                s.req = None
        for r in gone:
            self._order.pop(r, None)
            r.cancelled_now()
            touched.append(r)

    def _blocked(self, req):
        """A request waits while another of its group runs the shared prompt (it then copies it)."""
        return req.group is not None and any(
            s.req is not None and s.req.group == req.group and s.req.prefilling for s in self.slots)

    def _admit(self, touched):
        while any(s.req is None for s in self.slots):
            with self._lock:
                req = next((r for r in self.waiting if not self._blocked(r)), None)
                if req is None:
                    return
                self.waiting.remove(req)
            self._place(req)
            if req.done:  # its first token came from reused logits and ended it
                self._leave(req)
                touched.append(req)
            elif req.pieces:
                touched.append(req)

    def _place(self, req):
        p = req.prompt
        reuse = 0 if req.prompt_logprobs is not None else len(p)  # scored: every position must run
        best, best_keep, exact = None, 0, False
        for s in self.slots:
            k = _common(s.ids, p, reuse)
            ex = k == len(p) and s.last is not None and s.last[0] == p
            keep = k if ex else min(k, len(p) - 1)  # at least one token must run to give logits
            if keep > best_keep or (ex and not exact and keep >= best_keep):
                best, best_keep, exact = s, keep, ex
        free = [s for s in self.slots if s.req is None]
        if best is not None and best.req is None:
            dst = best
        else:
            dst = min(free, key=lambda s: (s.used, s.index))
        own = _common(dst.ids, p, min(reuse, len(p) - 1))
        if dst is best or best is None or best_keep <= own:
            keep = best_keep if dst is best else own
            self.engine.truncate(dst.index, keep)
            dst.ids = dst.ids[:keep]
            exact = exact and dst is best
        else:
            self.engine.copy(best.index, dst.index, best_keep)
            dst.ids = best.ids[:best_keep]
            keep = best_keep
            if exact:
                dst.last = best.last
        if not exact:
            dst.last = None
        dst.req, dst.used = req, next(self._clock)
        self._order[req] = dst.used
        req.admitted(keep)
        if exact:
            req.feed(dst.last[1].copy())
            self.tokens_generated += len(req.tokens)

    def _plan(self):
        """[(slot, ids, is_prompt)] within the token budget: decodes first, then prompt chunks."""
        budget, plan, scored_left = self.budget, [], self.SCORED_ROWS
        running = [s for s in self.slots if s.req is not None]
        for s in running:
            if s.req.next_token is not None and budget > 0:
                plan.append((s, [s.req.next_token], False))
                budget -= 1
        for s in sorted((s for s in running if s.req.prefilling), key=lambda s: self._order[s.req]):
            if budget <= 0:
                break
            take = min(budget, len(s.req.prompt) - s.req.pos)
            if s.req.prompt_logprobs is not None:  # each row's logits come back: [take, vocab] floats
                rest = len(s.req.prompt) - s.req.pos
                take = min(take, scored_left)
                if rest - take == 1:  # no token left for a chunk of its own: a lone row takes the
                    take -= 1         # decode kernels, whose rounding moves the scores after it
                if take < min(2, rest):
                    continue
                scored_left -= take
            plan.append((s, s.req.prompt[s.req.pos:s.req.pos + take], True))
            budget -= take
        return plan

    def _run(self, plan, touched):
        items = []
        for s, ids, is_prompt in plan:
            last = not is_prompt or s.req.pos + len(ids) == len(s.req.prompt)
            scored = is_prompt and s.req.prompt_logprobs is not None
            items.append((s.index, ids, len(ids) if scored else 1 if last else 0))
        for s, ids, _ in plan:
            s.ids.extend(ids)
        outs = self.engine.step(items)
        self.steps += 1
        for (s, ids, is_prompt), out in zip(plan, outs):
            req = s.req
            if is_prompt:
                self.prompt_tokens_run += len(ids)
                if req.prompt_logprobs is not None:
                    req.score_prompt(out)
                req.pos += len(ids)
                if req.prefilling:
                    continue
                s.last = (list(req.prompt), out[-1].copy())
            else:
                req.next_token = None
            before = len(req.tokens)
            req.feed(out[-1])
            self.tokens_generated += len(req.tokens) - before
            touched.append(req)
            if req.done:
                self._leave(req)

    def _leave(self, req):
        self._order.pop(req, None)
        for s in self.slots:
            if s.req is req:
                s.req = None

    def _resync(self, exc):
        """After a failed or interrupted step: each slot holds what the engine holds; running requests
        fail (the caller decides what to tell their owners)."""
        for s in self.slots:
            n = self.engine.seq_len(s.index)
            if n != len(s.ids):
                s.ids = s.ids[:n]
                s.last = None
            if s.req is not None:
                r, s.req = s.req, None
                self._order.pop(r, None)
                r.fail(exc)
