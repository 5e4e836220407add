"""SentencePiece BPE as GGUF `tokenizer.ggml.model = llama` stores it: merges chosen by piece score.

Spaces are '\u2581'; starting from single characters, the adjacent pair whose concatenation is a
piece with the highest score merges first (ties: leftmost), as sentencepiece's bpe_model does.
Characters left without a piece fall back to their UTF-8 bytes (<0xNN> pieces) or to unk.
"""
import heapq

import numpy as np
import regex

SPACE = "\u2581"
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_CACHE_MAX = 200_000
_SHORT = 256  # words up to this many chars use the rescan merge, longer ones the heap
_NONE = float("inf")


class SentencePieceBPE:
    def __init__(self, tokens, scores, types, unk_id=None):
        # only normal and user-defined pieces are merge targets (sentencepiece skips the rest);
        # reversed so the first of two same-text pieces wins
        ty = np.asarray(types)
        mergeable = np.flatnonzero((ty == NORMAL) | (ty == USER_DEFINED))[::-1].tolist()
        self.ids = dict(zip(map(tokens.__getitem__, mergeable), mergeable))
        self.scores = scores  # [n_vocab] by id (one dict of 262k pieces is enough)
        self.byte_ids = {int(tokens[i][3:5], 16): i for i in np.flatnonzero(ty == BYTE).tolist()}
        self.unk_id = unk_id
        # Word by word (with a cache) is exact where no piece spans the cut: text is cut before a
        # '\u2581' run unless the char before it ends some piece's "c\u2581" (Gemma has '>\u2581</').
        ends = set(regex.findall("([^" + SPACE + "\0])" + SPACE, "\0".join(self.ids)))
        keep = "".join(regex.escape(c) for c in sorted(ends))
        self.cut_re = regex.compile("(?<![" + SPACE + keep + "])(?=" + SPACE + ")")
        self.cache = {}

    def encode(self, text, out):
        """text: already normalized (spaces as '\u2581', prefix added). Appends ids to `out`."""
        cache = self.cache
        for w in self.cut_re.split(text):
            if not w:
                continue
            ids = cache.get(w)
            if ids is None:
                ids = self.encode_word(w)
                if len(cache) >= _CACHE_MAX:
                    cache.clear()
                cache[w] = ids
            out.extend(ids)

    def encode_word(self, word):
        syms = self._merge_short(list(word)) if len(word) <= _SHORT else self._merge_long(list(word))
        ids = []
        for s in syms:
            i = self.ids.get(s)
            if i is not None:
                ids.append(i)
                continue
            bs = [self.byte_ids.get(b) for b in s.encode("utf-8")]
            if self.byte_ids and None not in bs:
                ids.extend(bs)
            elif self.unk_id is not None:
                ids.append(self.unk_id)
            # else: dropped, as HF does without an unk token
        return tuple(ids)

    def _merge_short(self, syms):
        """Best-scoring pair first (leftmost on ties) by rescanning one rank per adjacent pair; only
        the two neighbours of a merge are re-ranked (C-level min/index over a short list)."""
        get, scores = self.ids.get, self.scores

        def rank(a, b):
            t = get(a + b)
            return _NONE if t is None else -scores[t]

        rk = [rank(a, b) for a, b in zip(syms, syms[1:])]
        while rk:
            best = min(rk)
            if best == _NONE:
                break
            i = rk.index(best)
            syms[i] += syms.pop(i + 1)
            del rk[i]
            if i < len(rk):
                rk[i] = rank(syms[i], syms[i + 1])
            if i > 0:
                rk[i - 1] = rank(syms[i - 1], syms[i])
        return syms

    def _merge_long(self, syms):
        """_merge_short in O(n log n): a heap of (-score, position) over a linked list."""
        n = len(syms)
        nxt = list(range(1, n)) + [-1]
        prv = list(range(-1, n - 1))
        ids, scores = self.ids, self.scores
        heap = []  # (-score, left position, left text, right text)

        def push(i, j):
            t = ids.get(syms[i] + syms[j])
            if t is not None:
                heapq.heappush(heap, (-scores[t], i, syms[i], syms[j]))

        for i in range(n - 1):
            push(i, i + 1)
        while heap:
            _, i, a, b = heapq.heappop(heap)
            j = nxt[i]
            if syms[i] != a or j < 0 or syms[j] != b:
                continue  # stale: one side has merged since
            syms[i], syms[j] = a + b, None
            k = nxt[j]
            nxt[i] = k
            if k >= 0:
                prv[k] = i
                push(i, k)
            if prv[i] >= 0:
                push(prv[i], i)
        return [s for s in syms if s is not None]
