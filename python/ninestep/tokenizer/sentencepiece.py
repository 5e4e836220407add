"""SentencePiece BPE as GGUF `tokenizer.ggml.model = llama` stores it: merges chosen by piece score.

Spaces are '\u2581'; starting from single characters, the adjacent pair whose concatenation is a
piece with the highest score merges first (ties: leftmost), as sentencepiece's bpe_model does.
Characters left without a piece fall back to their UTF-8 bytes (<0xNN> pieces) or to unk.
"""
import heapq

import regex

SPACE = "\u2581"
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
_CACHE_MAX = 200_000


class SentencePieceBPE:
    def __init__(self, tokens, scores, types, unk_id=None):
        # only normal and user-defined pieces are merge targets (sentencepiece skips the rest)
        self.score = {}
        self.ids = {}
        for i, (t, s, ty) in enumerate(zip(tokens, scores, types)):
            if ty in (NORMAL, USER_DEFINED) and t not in self.ids:
                self.ids[t] = i
                self.score[t] = s
        self.byte_ids = {}
        for i, (t, ty) in enumerate(zip(tokens, types)):
            if ty == BYTE:
                self.byte_ids[int(t[3:5], 16)] = i
        self.unk_id = unk_id
        # Encoding word by word (with a cache) is only exact if no piece glues a '\u2581' onto a
        # preceding non-space char; sentencepiece's default split_by_whitespace guarantees that.
        glued = regex.compile("[^" + SPACE + "]" + SPACE)
        self.word_re = None if any(glued.search(t) for t in self.ids) else regex.compile(
            SPACE + "*[^" + SPACE + "]*")
        self.cache = {}

    def encode(self, text, out):
        """text: already normalized (spaces as '\u2581', prefix added). Appends ids to `out`."""
        if self.word_re is None:
            out.extend(self.encode_word(text))
            return
        cache = self.cache
        for w in self.word_re.findall(text):
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
        syms = list(word)
        n = len(syms)
        nxt = list(range(1, n)) + [-1]
        prv = list(range(-1, n - 1))
        score = self.score
        heap = []  # (-score, left position, left text, right text)

        def push(i, j):
            s = score.get(syms[i] + syms[j])
            if s is not None:
                heapq.heappush(heap, (-s, i, syms[i], syms[j]))

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
        ids = []
        for s in syms:
            if s is None:
                continue
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
