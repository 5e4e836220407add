"""Build a Tokenizer from GGUF metadata or from HF tokenizer.json / tokenizer_config.json."""
import json
from pathlib import Path

import numpy as np

from .added import AddedToken
from .bpe import BPE
from .pretokenize import Normalizer, bytes_to_unicode, from_gguf_pre, normalizer_from_hf, pre_from_hf
from .sentencepiece import BYTE, CONTROL, NORMAL, SPACE, UNKNOWN, USER_DEFINED, SentencePieceBPE
from .streaming import ByteLevelDecoder, SentencePieceDecoder

K = "tokenizer.ggml."


def from_gguf_metadata(cls, meta):
    if not isinstance(meta, dict):
        raise ValueError(f"meta: expected a dict of GGUF key -> value, got {type(meta).__name__}")
    kind = _get(meta, K + "model", str)
    tokens = _texts(_get(meta, K + "tokens", list), K + "tokens")
    n = len(tokens)
    types = _numbers(_get(meta, K + "token_type", list, [NORMAL] * n), int, K + "token_type")
    if len(types) != n:
        raise ValueError(f"meta: {K}token_type has {len(types)} entries for {n} tokens")
    ids = {name: _token_id(meta, K + name + "_token_id", n)
           for name in ("bos", "eos", "unknown", "padding", "eot")}
    ty = np.asarray(types, dtype=np.int64)  # index selections over 262k types in NumPy
    special = frozenset(np.flatnonzero((ty == UNKNOWN) | (ty == CONTROL)).tolist())
    added = [AddedToken(i, tokens[i], special=i in special)
             for i in np.flatnonzero((ty == UNKNOWN) | (ty == CONTROL) | (ty == USER_DEFINED)).tolist() if tokens[i]]
    raw_norm = None
    if kind == "gpt2":
        pre, rule = from_gguf_pre(_get(meta, K + "pre", str, "default"))
        # No normalizer: llama.cpp has none, nor transformers' tokenizer built from a GGUF (an
        # upstream Qwen2 tokenizer.json has NFC; the two differ only on text that is not NFC).
        norm = None
        merges = [tuple(m.split(" ")) for m in _texts(_get(meta, K + "merges", list), K + "merges")]
        bad = next((m for m in merges if len(m) != 2), None)
        if bad is not None:
            raise ValueError(f"meta: {K}merges entry {' '.join(bad)!r} is not two tokens separated by one space")
        vocab = dict(zip(tokens, range(n)))
        model = BPE(vocab, merges, byte_level=True, ignore_merges=rule.ignore_merges)
        default_bos = rule.add_bos
        decoder = byte_level_decoder(tokens, special)
    elif kind == "llama":
        scores = _numbers(_get(meta, K + "scores", list), float, K + "scores")
        if len(scores) != n:
            raise ValueError(f"meta: {K}scores has {len(scores)} entries for {n} tokens")
        prefix = bool(meta.get(K + "add_space_prefix", True))
        pre = None
        # as HF's Llama normalizer (and llama.cpp): the dummy prefix starts every text segment
        norm = Normalizer(([("prepend", SPACE)] if prefix else []) + [("replace", " ", SPACE, None)])
        model = SentencePieceBPE(tokens, scores, ty, ids["unknown"])
        default_bos = True
        # sentencepiece reads a '\u2581' in the text as a space; GGUF spells user-defined pieces
        # with real spaces (Gemma's "  ".. runs), so they must see it as one too
        if any(" " in a.content for a in added) and not any(SPACE in a.content for a in added):
            raw_norm = Normalizer([("replace", SPACE, " ", None)])
        decoder = spm_decoder(tokens, np.flatnonzero(ty == BYTE).tolist(), special, prefix)
    else:
        raise ValueError(f"meta: {K}model {kind!r} is not supported (supported: 'gpt2', 'llama')")
    add_bos = bool(meta.get(K + "add_bos_token", default_bos))  # llama.cpp's defaults
    add_eos = bool(meta.get(K + "add_eos_token", False))
    for flag, name in ((add_bos, "bos"), (add_eos, "eos")):
        if flag and ids[name] is None:
            raise ValueError(f"meta: {K}add_{name}_token is set but {K}{name}_token_id is missing")
    strings = {f"{k}_token": tokens[ids[name]] for k, name in
               (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")) if ids[name] is not None}
    template = meta.get("tokenizer.chat_template")
    return cls(tokens=tokens, model=model, pre=pre, normalizer=norm, added=added, decoder=decoder,
               bos_id=ids["bos"], eos_id=ids["eos"], eot_id=ids["eot"],
               prefix_ids=[ids["bos"]] if add_bos else [], suffix_ids=[ids["eos"]] if add_eos else [],
               chat_template=template if isinstance(template, str) else None, special_strings=strings,
               raw_normalizer=raw_norm)


def _get(meta, key, typ, default=None):
    v = meta.get(key, default)
    if v is None:
        raise ValueError(f"meta: missing {key}")
    if typ is list and not isinstance(v, (str, bytes, dict)) and hasattr(v, "__len__"):
        return list(v)
    if typ is str:
        return _text(v, key)
    if not isinstance(v, typ):
        raise ValueError(f"meta: {key} should be a {typ.__name__}, got {type(v).__name__}")
    return v


def _numbers(values, typ, key):
    """A metadata array as ints or floats, refusing entries of any other kind."""
    ok = {int} if typ is int else {int, float}
    kinds = set(map(type, values))  # one C-level pass; the readers give plain ints / floats
    if kinds <= ok:
        return values if kinds <= {typ} else list(map(typ, values))
    for v in values:
        if isinstance(v, bool) or not isinstance(v, tuple(ok) + (np.number,)):
            raise ValueError(f"meta: {key} should hold numbers, got {v!r}")
    return [typ(v) for v in values]


def _text(v, key):
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if not isinstance(v, str):
        raise ValueError(f"meta: {key} holds a {type(v).__name__}, expected str")
    return v


def _texts(values, key):
    """A list of str (bytes decoded as UTF-8); the all-str case, which readers give, in one pass."""
    if set(map(type, values)) <= {str}:
        return list(values)
    return [_text(v, key) for v in values]


def _token_id(meta, key, n):
    v = meta.get(key)
    if v is None:
        return None
    try:
        i = int(v)
    except (TypeError, ValueError):
        raise ValueError(f"meta: {key} should be an int, got {v!r}") from None
    if not 0 <= i < n:
        raise ValueError(f"meta: {key} = {i} is outside the vocabulary (size {n})")
    return i


def byte_level_decoder(tokens, special):
    """Token bytes as HF's ByteLevel decoder sees them: GPT-2 byte chars back to bytes; a token
    with any other char (e.g. an added token with a real space) is taken as its UTF-8 text."""
    b2u = bytes_to_unicode()
    to_latin1 = str.maketrans({c: chr(b) for b, c in b2u.items()})  # GPT-2 char -> its byte
    strip = str.maketrans(dict.fromkeys(b2u.values()))  # deletes every GPT-2 char
    tb = []
    for t in tokens:
        t = t or ""
        tb.append(t.translate(to_latin1).encode("latin-1") if not t.translate(strip) else t.encode("utf-8"))
    return ByteLevelDecoder(tb, special)


def spm_decoder(tokens, byte_ids, special, strip_space):
    pieces = [t or "" for t in tokens]
    for i in byte_ids:
        pieces[i] = int(tokens[i][3:5], 16)
    return SentencePieceDecoder(pieces, special, strip_space)


# ---- HF tokenizer.json ----

def from_hf(cls, tokenizer_json_path, tokenizer_config_path=None):
    path = Path(tokenizer_json_path)
    j = _read_json(path)
    m = j.get("model") or {}
    if m.get("type", "BPE") != "BPE" or "merges" not in m:
        raise ValueError(f"{path}: model type {m.get('type')!r} is not supported (only BPE)")
    if m.get("continuing_subword_prefix") or m.get("end_of_word_suffix") or m.get("dropout"):
        raise ValueError(f"{path}: BPE with subword prefix/suffix or dropout is not supported")
    vocab = dict(m["vocab"])
    merges = [tuple(x.split(" ", 1)) if isinstance(x, str) else tuple(x) for x in m["merges"]]
    added = [AddedToken(a["id"], a["content"], special=a.get("special", False),
                        single_word=a.get("single_word", False), lstrip=a.get("lstrip", False),
                        rstrip=a.get("rstrip", False), normalized=a.get("normalized", True))
             for a in j.get("added_tokens") or []]
    n = max([*vocab.values(), *(a.id for a in added)], default=-1) + 1
    tokens = [None] * n
    for t, i in vocab.items():
        tokens[i] = t
    for a in added:
        tokens[a.id] = a.content
    pre = pre_from_hf(j.get("pre_tokenizer"))
    norm = normalizer_from_hf(j.get("normalizer"))
    model = BPE(vocab, merges, byte_level=pre.byte_level, byte_fallback=m.get("byte_fallback", False),
                unk=m.get("unk_token"), fuse_unk=m.get("fuse_unk", False),
                ignore_merges=m.get("ignore_merges", False))
    special = frozenset(a.id for a in added if a.special)
    decoder = _decoder_from_hf(j.get("decoder"), tokens, special, path)
    prefix, suffix = _post_from_hf(j.get("post_processor"), path)

    cfg_path = Path(tokenizer_config_path) if tokenizer_config_path else path.with_name("tokenizer_config.json")
    cfg = _read_json(cfg_path) if tokenizer_config_path or cfg_path.exists() else {}
    strings = {}
    for key in ("bos_token", "eos_token", "unk_token", "pad_token"):
        v = cfg.get(key)
        v = v.get("content") if isinstance(v, dict) else v
        if isinstance(v, str):
            strings[key] = v
    ids = {t.content: t.id for t in added}
    find = lambda key: ids.get(strings.get(key), vocab.get(strings.get(key)))  # noqa: E731
    return cls(tokens=tokens, model=model, pre=pre, normalizer=norm, added=added, decoder=decoder,
               # without a tokenizer_config, the post-processor's own BOS/EOS are the best guess
               bos_id=_first(find("bos_token"), prefix[:1]), eos_id=_first(find("eos_token"), suffix[-1:]),
               prefix_ids=prefix, suffix_ids=suffix,
               chat_template=_chat_template(cfg, [cfg_path.parent, path.parent]), special_strings=strings)


def _first(found, fallback):
    return found if found is not None else (fallback[0] if fallback else None)


def _read_json(path):
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"{path}: cannot read tokenizer file: {e}") from None


def _chat_template(cfg, folders):
    t = cfg.get("chat_template")
    if isinstance(t, list):  # named templates: HF uses "default"
        t = next((x["template"] for x in t if x.get("name") == "default"), None)
    if isinstance(t, str):
        return t
    for folder in folders:
        f = folder / "chat_template.jinja"
        if f.exists():
            return f.read_text(encoding="utf-8")
    return None


def _decoder_from_hf(spec, tokens, special, path):
    if spec is None:
        raise ValueError(f"{path}: a tokenizer without a decoder is not supported")
    if spec["type"] == "ByteLevel":
        return byte_level_decoder(tokens, special)
    items = spec["decoders"] if spec["type"] == "Sequence" else [spec]
    byte_fallback, strip = False, False
    for d in items:
        kind = d["type"]
        if kind == "Replace" and d["pattern"].get("String") == SPACE and d["content"] == " ":
            continue
        if kind == "ByteFallback":
            byte_fallback = True
        elif kind == "Strip" and d.get("content") == " " and d.get("stop", 0) == 0:
            strip = d.get("start", 0) > 0
        elif kind == "Metaspace":
            strip = d.get("prepend_scheme", "always" if d.get("add_prefix_space", True) else "never") != "never"
        elif kind != "Fuse":
            raise ValueError(f"{path}: decoder {kind} {d} is not supported")
    byte_ids = set()
    if byte_fallback:
        byte_ids = {i for i, t in enumerate(tokens) if t and len(t) == 6 and t.startswith("<0x")
                    and t.endswith(">") and all(c in "0123456789ABCDEFabcdef" for c in t[3:5])}
    return spm_decoder(tokens, byte_ids, special, strip)


def _post_from_hf(spec, path):
    if spec is None:
        return [], []
    items = spec["processors"] if spec["type"] == "Sequence" else [spec]
    prefix, suffix = [], []
    for p in items:
        kind = p["type"]
        if kind == "ByteLevel":
            continue
        if kind == "TemplateProcessing":
            seen_seq = False
            for piece in p["single"]:
                if "Sequence" in piece:
                    seen_seq = True
                else:
                    ids = p["special_tokens"][piece["SpecialToken"]["id"]]["ids"]
                    (suffix if seen_seq else prefix).extend(ids)
        elif kind in ("BertProcessing", "RobertaProcessing"):
            prefix.append(p["cls"][1])
            suffix.append(p["sep"][1])
        else:
            raise ValueError(f"{path}: post_processor {kind} is not supported")
    return prefix, suffix
