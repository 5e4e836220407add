"""Rank-based BPE (GPT-2 / HF `BPE` model): byte-level or char-level with byte fallback.

Pieces come from the pre-tokenizer in the original text's characters; a word cache keyed by the
raw piece makes repeated words one dict lookup, which is what makes pure Python fast enough.
"""
import heapq
from itertools import chain

from .pretokenize import bytes_to_unicode

_CACHE_MAX = 200_000
_SHORT = 256  # words up to this many symbols use the list rescan; longer ones a heap
_NO_RANK = 1 << 62


class BPE:
    def __init__(self, vocab, merges, *, byte_level, byte_fallback=False, unk=None,
                 fuse_unk=False, ignore_merges=False):
        """vocab: {token: id}; merges: [(left, right)] in priority order (first merges first);
        unk: the unk token's text or None."""
        self.vocab = vocab
        # a merge whose result is not a token could never be emitted; HF refuses such files
        self.ranks = {(a, b): i for i, (a, b) in enumerate(merges) if a + b in vocab}
        self.byte_level, self.byte_fallback = byte_level, byte_fallback
        self.unk = unk if unk in vocab else None
        self.fuse_unk, self.ignore_merges = fuse_unk, ignore_merges
        # raw bytes (as latin-1 chars) -> GPT-2 byte chars, one str.translate per word
        self.table = str.maketrans({b: c for b, c in bytes_to_unicode().items()}) if byte_level else None
        self.cache = {}

    def encode(self, pieces, out):
        """Appends the ids of every piece to `out`."""
        cache = self.cache
        missing = set(pieces).difference(cache)
        if len(cache) + len(missing) > _CACHE_MAX:
            cache.clear()
            missing = set(pieces)
        for p in missing:
            cache[p] = self.encode_word(p)
        # the per-piece loop runs in C: map + chain over cached tuples
        out.extend(chain.from_iterable(map(cache.__getitem__, pieces)))

    def encode_word(self, piece):
        word = piece.encode("utf-8").decode("latin-1").translate(self.table) if self.byte_level else piece
        vocab = self.vocab
        if self.ignore_merges and word in vocab:
            return (vocab[word],)
        syms = list(word)
        if not all(c in vocab for c in syms):
            syms = self._spell(syms)
        syms = merge(syms, self.ranks) if len(syms) <= _SHORT else merge_long(syms, self.ranks)
        return tuple(vocab[s] for s in syms)

    def _spell(self, chars):
        # As HF, before any merge: a char missing from the vocab becomes its UTF-8 bytes as <0xNN>
        # tokens (byte_fallback) or the unk token (one per run with fuse_unk), or is dropped when
        # there is no unk token (SmolLM2 has no token for byte 0xF1). Neighbours then merge across it.
        out = []
        for c in chars:
            if c in self.vocab:
                out.append(c)
                continue
            if self.byte_fallback:
                byte_toks = [f"<0x{b:02X}>" for b in c.encode("utf-8")]
                if all(t in self.vocab for t in byte_toks):
                    out.extend(byte_toks)
                    continue
            if self.unk is not None and not (self.fuse_unk and out and out[-1] == self.unk):
                out.append(self.unk)
        return out


def merge(syms, ranks):
    """Merge the lowest-rank adjacent pair (leftmost on ties) until none is left, as HF does.
    Keeps one rank per adjacent pair and updates only the two neighbours of each merge, so the
    scans are C-level min()/index() over a short list of ints."""
    get = ranks.get
    rk = [get(p, _NO_RANK) for p in zip(syms, syms[1:])]
    while rk:
        best = min(rk)
        if best == _NO_RANK:
            break
        i = rk.index(best)
        syms[i] += syms.pop(i + 1)
        del rk[i]
        if i < len(rk):
            rk[i] = get((syms[i], syms[i + 1]), _NO_RANK)
        if i > 0:
            rk[i - 1] = get((syms[i - 1], syms[i]), _NO_RANK)
    return syms


def merge_long(syms, ranks):
    """merge() in O(n log n) for very long words: a heap of (rank, position) over a linked list, ties
    broken leftmost first as HF does; stale heap entries are recognised by their symbol text."""
    n = len(syms)
    nxt = list(range(1, n)) + [-1]
    prv = list(range(-1, n - 1))
    heap = []
    for i in range(n - 1):
        r = ranks.get((syms[i], syms[i + 1]))
        if r is not None:
            heap.append((r, i, syms[i], syms[i + 1]))
    heapq.heapify(heap)
    while heap:
        r, i, a, b = heapq.heappop(heap)
        j = nxt[i]
        if syms[i] != a or j < 0 or syms[j] != b:
            continue
        syms[i], syms[j] = a + b, None
        k = nxt[j]
        nxt[i] = k
        if k >= 0:
            prv[k] = i
            rk = ranks.get((syms[i], syms[k]))
            if rk is not None:
                heapq.heappush(heap, (rk, i, syms[i], syms[k]))
        p = prv[i]
        if p >= 0:
            rp = ranks.get((syms[p], syms[i]))
            if rp is not None:
                heapq.heappush(heap, (rp, p, syms[p], syms[i]))
    return [s for s in syms if s is not None]
