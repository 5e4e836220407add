"""Tokenizer: text <-> ids for GGUF metadata or an HF tokenizer.json, matching HF `tokenizers`."""
import operator

from .added import AddedToken, Matcher

# end-of-turn markers of common chat formats, most specific first
EOT_CANDIDATES = ("<|im_end|>", "<|eot_id|>", "<|end_of_turn|>", "<end_of_turn>", "<|end|>", "<|eot|>")


class Tokenizer:
    """Build with Tokenizer.from_gguf_metadata(meta) or Tokenizer.from_hf(path)."""

    def __init__(self, *, tokens, model, pre, normalizer, added, decoder, bos_id=None, eos_id=None,
                 eot_id=None, prefix_ids=(), suffix_ids=(), chat_template=None, special_strings=None,
                 raw_normalizer=None):
        self._tokens = tokens                      # [n_vocab] token text by id (None for holes)
        self._added_ids = {t.content: t.id for t in added}
        self._ids_dict = None                      # text -> id, built on first token_to_id()
        self._model, self._pre, self._norm, self._decoder = model, pre, normalizer, decoder
        self._raw_norm = raw_normalizer            # applied before added tokens are split out
        self._raw_added = Matcher([t for t in added if not t.normalized])
        norm_added = [t for t in added if t.normalized]
        self._norm_added = Matcher(norm_added) if norm_added else None
        self._special = frozenset(t.id for t in added if t.special)
        self.bos_id, self.eos_id = bos_id, eos_id
        self.eot_id = eot_id if eot_id is not None else find_eot(self._find, eos_id)
        self._prefix, self._suffix = list(prefix_ids), list(suffix_ids)
        self.chat_template = chat_template
        self.special_strings = dict(special_strings or {})  # bos_token, eos_token, ... for templates

    @classmethod
    def from_gguf_metadata(cls, meta):
        """From GGUF metadata as a dict of key -> Python value (tokenizer.ggml.* keys)."""
        from .loaders import from_gguf_metadata

        return from_gguf_metadata(cls, meta)

    @classmethod
    def from_hf(cls, tokenizer_json_path, tokenizer_config_path=None):
        """From an HF tokenizer.json (+ tokenizer_config.json for BOS/EOS names and the chat
        template; a chat_template.jinja beside either file is used too)."""
        from .loaders import from_hf

        return from_hf(cls, tokenizer_json_path, tokenizer_config_path)

    @property
    def kind(self):
        """'byte-level BPE', 'SentencePiece BPE' or 'BPE'."""
        from .sentencepiece import SentencePieceBPE

        if isinstance(self._model, SentencePieceBPE):
            return "SentencePiece BPE"
        return "byte-level BPE" if getattr(self._model, "byte_level", False) else "BPE"

    @property
    def vocab_size(self):
        return len(self._tokens)

    @property
    def add_bos(self):
        return self.bos_id is not None and self.bos_id in self._prefix

    def encode(self, text, add_special=True):
        """Text -> ids. Added/special tokens written in the text become their ids; add_special adds
        the BOS/EOS the model asks for (GGUF add_bos_token / HF post-processor)."""
        if not isinstance(text, str):
            raise ValueError(f"text: expected a str, got {type(text).__name__}")
        if not isinstance(add_special, bool):
            raise TypeError(f"add_special: expected True or False, got {add_special!r}")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"text: not valid Unicode (lone surrogate {text[e.start]!r} at index {e.start})") from None
        out = list(self._prefix) if add_special else []
        first = True
        if self._raw_norm is not None:
            text = self._raw_norm(text)
        for seg in self._raw_added.split(text):
            if isinstance(seg, AddedToken):
                out.append(seg.id)
            else:
                self._encode_segment(seg, first, out)
            first = False
        if add_special:
            out.extend(self._suffix)
        return out

    def _encode_segment(self, text, first, out):
        if self._norm is not None:
            text = self._norm(text)
        parts = self._norm_added.split(text) if self._norm_added is not None else [text]
        for part in parts:
            if isinstance(part, AddedToken):
                out.append(part.id)
            elif self._pre is None:
                self._model.encode(part, out)
            else:
                self._model.encode(self._pre(part, first), out)
            first = False

    def decode(self, ids, skip_special=False):
        """ids -> text; invalid UTF-8 from byte tokens becomes U+FFFD as in HF."""
        return self._decoder.decode(self._check_ids(ids), skip_special)

    def stream_decoder(self, skip_special=False):
        """Incremental decoder: .push(id) -> str of whole characters, .flush() -> the rest."""
        return _CheckedStream(self._decoder.stream(skip_special), self._tokens)

    def id_to_token(self, i):
        return self._tokens[_token_id(i, self._tokens)]

    def token_to_id(self, s):
        """Id of the token spelled `s` (GPT-2 byte chars for byte-level vocabularies), or None."""
        return self._ids.get(s)

    @property
    def _ids(self):
        if self._ids_dict is None:  # 262k entries: only when asked (loading stays fast)
            d = dict(zip(self._tokens, range(len(self._tokens))))  # the last of same-text tokens
            d.pop(None, None)
            d.update(self._added_ids)              # added tokens win over a same-text vocab entry
            self._ids_dict = d
        return self._ids_dict

    def _find(self, s):
        """token_to_id without building the dict: added tokens, else the last same-text token."""
        i = self._added_ids.get(s)
        if i is not None or self._ids_dict is not None:
            return i if i is not None else self._ids_dict.get(s)
        n = len(self._tokens)
        try:
            return n - 1 - self._tokens[::-1].index(s)
        except ValueError:
            return None

    def is_special(self, i):
        return _token_id(i, self._tokens) in self._special

    def apply_chat_template(self, messages, add_generation_prompt=True, **extra):
        from ..chat import apply_chat_template

        if self.chat_template is None:
            raise ValueError("apply_chat_template: this tokenizer has no chat template")
        kwargs = {**self.special_strings, **extra}
        return apply_chat_template(self.chat_template, messages, add_generation_prompt, **kwargs)

    def _check_ids(self, ids):
        if isinstance(ids, (str, bytes)) or not hasattr(ids, "__iter__"):
            raise TypeError(f"ids: expected a sequence of token ids, got {type(ids).__name__}")
        return [_token_id(i, self._tokens) for i in ids]


class _CheckedStream:
    def __init__(self, stream, tokens):
        self._s, self._tokens = stream, tokens

    def push(self, i):
        return self._s.push(_token_id(i, self._tokens))

    def flush(self):
        return self._s.flush()


def _token_id(i, tokens):
    """i as a Python int if it names a token (NumPy integers welcome), else ValueError."""
    try:
        j = operator.index(i)
    except TypeError:
        j = None
    if j is None or isinstance(i, bool) or not 0 <= j < len(tokens) or tokens[j] is None:
        raise ValueError(f"ids: {i!r} is not a token id of this vocabulary (size {len(tokens)})")
    return j


def find_eot(lookup, eos_id):
    """The end-of-turn id: the first known end-of-turn token `lookup` (text -> id or None) finds,
    else EOS. Shared by the tokenizer and ModelConfig so both agree."""
    for t in EOT_CANDIDATES:
        i = lookup(t)
        if i is not None:
            return i
    return eos_id

