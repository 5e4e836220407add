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
    def __init__(self, vocab, merges, *, byte_level, byte_fallback=False, unk_id=None,
                 fuse_unk=False, ignore_merges=False):
        """vocab: {token: id}; merges: [(left, right)] in priority order (first merges first)."""
        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.byte_level, self.byte_fallback = byte_level, byte_fallback
        self.unk_id, self.fuse_unk, self.ignore_merges = unk_id, fuse_unk, ignore_merges
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
        syms = merge(list(word), self.ranks) if len(word) <= _SHORT else merge_long(list(word), self.ranks)
        ids = []
        for s in syms:
            i = vocab.get(s)
            if i is not None:
                ids.append(i)
            else:
                self._unknown(s, ids)
        return tuple(ids)

    def _unknown(self, sym, ids):
        # HF: a char missing from the vocab becomes its UTF-8 bytes as <0xNN> tokens (byte_fallback)
        # or the unk token; fuse_unk collapses runs of unk into one.
        if self.byte_fallback:
            byte_ids = [self.vocab.get(f"<0x{b:02X}>") for b in sym.encode("utf-8")]
            if None not in byte_ids:
                ids.extend(byte_ids)
                return
        if self.unk_id is None:
            raise ValueError(f"encode: {sym!r} is not in the vocabulary and the model has no unk token")
        if not (self.fuse_unk and ids and ids[-1] == self.unk_id):
            ids.append(self.unk_id)


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
