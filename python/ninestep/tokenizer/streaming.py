"""ids -> text, whole or one token at a time. Two decoders cover the supported models:

- ByteLevel (GPT-2 style): every token is bytes; the text is their concatenation read as UTF-8
  with U+FFFD for invalid sequences (Rust's from_utf8_lossy and Python's 'replace' agree).
- SentencePiece (HF Replace('\u2581',' ') + ByteFallback + Fuse + Strip): pieces are text with
  '\u2581' as space; a run of <0xNN> byte pieces is decoded as one UTF-8 string, or if it is not
  valid UTF-8, one U+FFFD per byte; one leading space of the whole text is dropped.

Streaming never emits half a character and joins to exactly what decode() returns.
"""
import codecs

SPACE = "\u2581"


class ByteLevelDecoder:
    def __init__(self, token_bytes, special):
        self.token_bytes = token_bytes  # [n_vocab] bytes of each token
        self.special = special          # set of ids dropped by skip_special

    def decode(self, ids, skip_special=False):
        tb, sp = self.token_bytes, self.special
        return b"".join(tb[i] for i in ids if not (skip_special and i in sp)).decode("utf-8", "replace")

    def stream(self, skip_special=False):
        return ByteLevelStream(self, skip_special)


class ByteLevelStream:
    """Holds back the bytes of an unfinished character until the tokens that complete it arrive."""

    def __init__(self, dec, skip_special):
        self.dec, self.skip = dec, skip_special
        self.utf8 = codecs.getincrementaldecoder("utf-8")("replace")

    def push(self, i):
        if self.skip and i in self.dec.special:
            return ""
        return self.utf8.decode(self.dec.token_bytes[i])

    def flush(self):
        return self.utf8.decode(b"", final=True)


class SentencePieceDecoder:
    def __init__(self, pieces, special, strip_space):
        self.pieces = pieces            # [n_vocab] str text, or int byte value for <0xNN> pieces
        self.special = special
        self.strip_space = strip_space  # drop one leading ' ' of the output (dummy prefix)

    def decode(self, ids, skip_special=False):
        s = self.stream(skip_special)
        return "".join([s.push(i) for i in ids]) + s.flush()

    def stream(self, skip_special=False):
        return SentencePieceStream(self, skip_special)


class SentencePieceStream:
    """A run of byte pieces is only decodable once it ends (HF turns the whole run into U+FFFDs if
    any of it is invalid), so it is held until a text piece or flush()."""

    def __init__(self, dec, skip_special):
        self.dec, self.skip = dec, skip_special
        self.run = bytearray()
        self.started = False

    def push(self, i):
        if self.skip and i in self.dec.special:
            return ""
        p = self.dec.pieces[i]
        if isinstance(p, int):
            self.run.append(p)
            return ""
        return self._emit(self._end_run() + p.replace(SPACE, " "))

    def flush(self):
        return self._emit(self._end_run())

    def _end_run(self):
        if not self.run:
            return ""
        try:
            s = self.run.decode("utf-8")
        except UnicodeDecodeError:
            s = "\ufffd" * len(self.run)
        self.run.clear()
        return s

    def _emit(self, s):
        if s and not self.started:
            self.started = True
            if self.dec.strip_space and s[0] == " ":
                s = s[1:]
        return s
