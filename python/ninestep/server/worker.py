"""The engine thread: it owns the stepping of the model's scheduler (each step runs in C++ with the
GIL released), while asyncio serves HTTP. Requests come in with submit(); their updates go back to
the event loop through call_soon_threadsafe, once per step for all of them (each call wakes the
loop through a socket write: one per request and step was 6% of the engine thread's time with
8 streams)."""
import collections
import threading
import time


class QueueFull(Exception):
    pass


def _deliver(items):
    for queue, item in items:
        queue.put_nowait(item)


class Worker:
    def __init__(self, model, max_queue):
        self.model = model
        self.sched = model._scheduler
        self.max_queue = max_queue
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="ninestep-engine", daemon=True)
        # metrics
        self.requests = collections.Counter()    # route -> requests accepted
        self.rejected = 0                         # 503s from a full queue
        self.prompt_tokens = self.completion_tokens = 0
        self._recent = collections.deque()       # (time, generated tokens) of recent steps
        self.error = None
        self._outbox = {}                         # event loop -> [(queue, update)] of this step

    def start(self):
        self._thread.start()

    def submit(self, reqs, loop, queue):
        """Queues `reqs`; every change of one puts (request, [(text, logprobs)], done) on `queue`.
        Called on the event loop that reads `queue`."""
        if self._stop:
            raise QueueFull("shutting down")
        if self.sched.n_waiting + len(reqs) > self.max_queue + max(0, self.model.n_seq - self.sched.n_running):
            self.rejected += 1
            raise QueueFull("queue full")

        def update(r):  # on the engine thread, which flushes after the step
            self._outbox.setdefault(loop, []).append((queue, (r, r.take(), r.done)))

        for r in reqs:
            r.on_update = update
            if r.done:  # nothing to generate (max_tokens 0): the scheduler never sees it
                self.prompt_tokens += len(r.prompt)
                queue.put_nowait((r, r.take(), True))
                continue
            self.sched.submit(r)
        self._wake.set()

    def cancel(self, reqs):
        for r in reqs:
            r.cancel()
        self._wake.set()

    def _loop(self):
        while not self._stop:
            if not self.sched.busy:
                self._wake.wait(0.5)
                self._wake.clear()
                continue
            before = self.sched.tokens_generated
            try:
                with self.model._lock:
                    touched = self.sched.step()
            except Exception as e:  # the scheduler failed the running requests and told them
                self.error = e
                continue
            finally:
                self._flush()
            n = self.sched.tokens_generated - before
            for r in touched:
                if r.done and r.finish_reason in ("stop", "length", "context"):
                    self.prompt_tokens += len(r.prompt)
                    self.completion_tokens += len(r.tokens)
            if n:
                now = time.monotonic()
                self._recent.append((now, n))
                while self._recent and self._recent[0][0] < now - 10:
                    self._recent.popleft()
        # shutting down: every request still queued or running ends now
        with self.model._lock:
            left = list(self.sched.waiting) + [s.req for s in self.sched.slots if s.req is not None]
            self.sched.release(left)
        for r in left:
            if r.on_update is not None:
                r.on_update(r)
        self._flush()

    def _flush(self):
        outbox, self._outbox = self._outbox, {}
        for loop, items in outbox.items():
            try:
                loop.call_soon_threadsafe(_deliver, items)
            except RuntimeError:  # that loop has closed: nobody is waiting any more
                pass

    def shutdown(self, timeout=10):
        self._stop = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def tokens_per_second(self, window=10.0):
        now = time.monotonic()
        recent = [(t, n) for t, n in list(self._recent) if t >= now - window]
        return sum(n for _, n in recent) / window
