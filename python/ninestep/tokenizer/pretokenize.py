"""Normalizers and pre-tokenizers: text -> the pieces a BPE model encodes one by one.

Pieces stay in the original text's characters; byte-level models map them to GPT-2 byte chars
themselves (so the word cache is keyed by the raw piece). Each step mirrors the HF `tokenizers`
component of the same name; GGUF `tokenizer.ggml.pre` names map onto the same steps.
"""
import unicodedata

import regex

from . import unicode_compat
from .gguf_pre import GGUF_PRE, GPT2

GPT2_PATTERN = GPT2
# SmolLM2 / StarCoder = Digits(individual) then the GPT-2 rule on the rest. Fused into one pattern
# (a digit ends a whitespace run just as the end of a piece does), which is what makes it fast; the
# tests check it against the two-step HF pipeline.
SMOLLM_PATTERN = r"\p{N}|'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?[^\s\p{L}\p{N}]+|\s+(?![^\s\p{N}])|\s+"
_FUSED = {(r"\p{N}", GPT2): SMOLLM_PATTERN}  # its \p{N} are the Digits step's (native)
# Unicode properties the patterns use whose code points differ between `regex` and Oniguruma
_PROPS = ("L", "N", "M", "P", "S", "Lu", "Ll", "Lt", "Lm", "Lo", "Han")


def compile_hf(pattern, native=()):
    """Compile a pattern as HF's Oniguruma reads it: each \\p{X} with the Unicode of Oniguruma's
    tables (unicode_compat: what `regex` counts in or out of X that Oniguruma does not; V1 sets).
    Properties in `native` keep `regex`'s own Unicode, which is Rust's: HF's Digits step uses Rust's
    char::is_numeric, not Oniguruma."""
    for name in _PROPS:
        if name in native:
            continue
        prop = r"\p{" + name + "}"
        if prop not in pattern:
            continue
        drop, add = unicode_compat.DIFF.get(name, ("", ""))
        if drop or add:
            cls = "[" + prop + ("--[" + drop + "]" if drop else "") + "]"
            pattern = pattern.replace(prop, "[" + cls + add + "]" if add else cls)
    return regex.compile(pattern, regex.V1)


def bytes_to_unicode():
    """GPT-2's reversible map byte -> printable char (printable Latin-1 bytes map to themselves)."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[b] = chr(b)
        else:
            chars[b] = chr(256 + extra)
            extra += 1
    return chars


class RegexSplit:
    """HF Split(pattern, behavior, invert): where the pattern's matches (the delimiters) go."""

    def __init__(self, pattern, behavior="Isolated", invert=False, native=()):
        if behavior not in ("Isolated", "Removed", "MergedWithPrevious", "MergedWithNext", "Contiguous"):
            raise ValueError(f"pre_tokenizer Split: unsupported behavior {behavior!r}")
        self.pattern, self.re = pattern, compile_hf(pattern, native)
        self.behavior, self.invert = behavior, invert
        # Isolated: where the matches cover every char (GPT-style patterns do), a findall is the
        # whole split; split_one checks that by length and otherwise keeps the text between matches.
        self.fast = behavior == "Isolated" and not invert
        self._findall = self.re.findall

    def split_one(self, p):
        if self.fast:
            found = self._findall(p)
            if sum(map(len, found)) == len(p):
                return found
        return _apply_behavior(p, [m.span() for m in self.re.finditer(p)], self.behavior, self.invert)

    def __call__(self, pieces):
        out = []
        for p in pieces:
            out.extend(self.split_one(p))
        return out


def _apply_behavior(text, spans, behavior, invert):
    # Cut `text` into (run, is_delimiter) runs, then combine them as HF SplitDelimiterBehavior does.
    runs, pos = [], 0
    for s, e in spans:
        if s == e:
            continue
        if pos < s:
            runs.append([text[pos:s], invert])
        runs.append([text[s:e], not invert])
        pos = e
    if pos < len(text):
        runs.append([text[pos:], invert])
    if behavior == "Isolated":
        return [r for r, _ in runs]
    if behavior == "Removed":
        return [r for r, delim in runs if not delim]
    if behavior == "MergedWithNext":
        return [r[::-1] for r in _merge_delims([[r[::-1], d] for r, d in reversed(runs)])][::-1]
    if behavior == "MergedWithPrevious":
        return _merge_delims(runs)
    out = []  # Contiguous: consecutive runs of one kind (e.g. adjacent matches) become one piece
    for run in runs:
        if out and out[-1][1] == run[1]:
            out[-1][0] += run[0]
        else:
            out.append(run)
    return [r for r, _ in out]


def _merge_delims(runs):
    # a delimiter joins the piece before it unless that piece already ends in a delimiter
    out = []
    for r, delim in runs:
        if delim and out and not out[-1][1]:
            out[-1] = [out[-1][0] + r, True]
        else:
            out.append([r, delim])
    return [r for r, _ in out]


class Digits:
    """HF Digits: runs of numeric chars isolated (individual=True: each digit alone)."""

    def __init__(self, individual):
        self.individual = individual
        self.re = compile_hf(r"\p{N}" if individual else r"\p{N}+", native=("N",))

    def __call__(self, pieces):
        out = []
        for p in pieces:
            out.extend(_apply_behavior(p, [m.span() for m in self.re.finditer(p)], "Isolated", False))
        return out


class Metaspace:
    """HF Metaspace pre-tokenizer: ' ' -> replacement, optional prefix, optional split before it."""

    def __init__(self, replacement="\u2581", prepend_scheme="always", split=True):
        self.rep, self.scheme, self.split = replacement, prepend_scheme, split

    def __call__(self, pieces, first=True):
        out = []
        for p in pieces:
            p = p.replace(" ", self.rep)
            if (self.scheme == "always" or (self.scheme == "first" and first)) and not p.startswith(self.rep):
                p = self.rep + p
            if self.split:
                out.extend(x for x in regex.split("(?=" + regex.escape(self.rep) + ")", p) if x)
            else:
                out.append(p)
        return out


class PreTokenizer:
    """A chain of split steps over the raw text; `byte_level` says the model maps pieces to GPT-2
    byte chars (HF ByteLevel). `prefix_space`: HF ByteLevel(add_prefix_space=True)."""

    def __init__(self, steps, byte_level=False, prefix_space=False):
        self.steps, self.byte_level, self.prefix_space = steps, byte_level, prefix_space
        # Single-regex chains (most GGUF pre names) skip the list plumbing.
        self.single = steps[0].split_one if len(steps) == 1 and isinstance(steps[0], RegexSplit) else None

    def __call__(self, text, first=True):
        if self.prefix_space and not text.startswith(" "):
            text = " " + text
        if self.single is not None:
            return self.single(text)
        pieces = [text]
        for step in self.steps:
            pieces = step(pieces, first) if isinstance(step, Metaspace) else step(pieces)
        return pieces


def from_gguf_pre(name):
    """(PreTokenizer, PreRule) for a GGUF `tokenizer.ggml.pre` name (gguf_pre.GGUF_PRE)."""
    name = name or "default"
    rule = GGUF_PRE.get(name)
    if rule is None:
        raise ValueError(f"tokenizer.ggml.pre: unsupported pre-tokenizer {name!r}; supported: {', '.join(sorted(GGUF_PRE))}")
    regexes = rule.regexes
    if regexes in _FUSED:
        return PreTokenizer([RegexSplit(_FUSED[regexes], native=("N",))], byte_level=True), rule
    return PreTokenizer([RegexSplit(r) for r in regexes], byte_level=True), rule


def pre_from_hf(spec):
    """PreTokenizer from a tokenizer.json `pre_tokenizer` object (None -> no split)."""
    if spec is None:
        return PreTokenizer([])
    items = spec["pretokenizers"] if spec["type"] == "Sequence" else [spec]
    steps, byte_level, prefix_space = [], False, False
    for i, it in enumerate(items):
        kind = it["type"]
        if byte_level:
            raise ValueError(f"pre_tokenizer: {kind} after ByteLevel is not supported")
        if kind == "ByteLevel":
            byte_level, prefix_space = True, bool(it.get("add_prefix_space", False))
            if it.get("use_regex", True):
                steps.append(RegexSplit(GPT2_PATTERN))
            if prefix_space and i > 0:
                raise ValueError("pre_tokenizer: ByteLevel(add_prefix_space) after other steps is not supported")
        elif kind == "Split":
            pat = it["pattern"]
            pattern = pat["Regex"] if "Regex" in pat else regex.escape(pat["String"])
            steps.append(RegexSplit(pattern, it.get("behavior", "Isolated"), it.get("invert", False)))
        elif kind == "Digits":
            steps.append(Digits(it.get("individual_digits", False)))
        elif kind == "Metaspace":
            scheme = it.get("prepend_scheme", "always" if it.get("add_prefix_space", True) else "never")
            steps.append(Metaspace(it.get("replacement", "\u2581"), scheme, it.get("split", True)))
        else:
            raise ValueError(f"pre_tokenizer: unsupported type {kind!r}")
    # SmolLM2/StarCoder's Digits(individual) + GPT-2 rule: the fused single pattern splits the same
    if (len(steps) == 2 and isinstance(steps[0], Digits) and steps[0].individual
            and isinstance(steps[1], RegexSplit) and steps[1].pattern == GPT2_PATTERN):
        steps = [RegexSplit(SMOLLM_PATTERN, native=("N",))]
    return PreTokenizer(steps, byte_level, prefix_space)


class Normalizer:
    """A list of (op, args...) applied in order: nfc/nfd/nfkc/nfkd, lowercase, prepend, replace."""

    def __init__(self, ops):
        self.ops = ops

    def __call__(self, text):
        for op in self.ops:
            if op[0] == "replace":
                text = text.replace(op[1], op[2]) if op[3] is None else op[3].sub(op[2], text)
            elif op[0] == "prepend":
                text = op[1] + text if text else text
            elif op[0] == "lowercase":
                text = text.lower()
            else:
                text = unicodedata.normalize(op[0].upper(), text)
        return text


def normalizer_from_hf(spec):
    if spec is None:
        return None
    items = spec["normalizers"] if spec["type"] == "Sequence" else [spec]
    ops = []
    for it in items:
        kind = it["type"]
        if kind in ("NFC", "NFD", "NFKC", "NFKD"):
            ops.append((kind.lower(),))
        elif kind == "Lowercase":
            ops.append(("lowercase",))
        elif kind == "Prepend":
            ops.append(("prepend", it["prepend"]))
        elif kind == "Replace":
            pat = it["pattern"]
            if "String" in pat:
                ops.append(("replace", pat["String"], it["content"], None))
            else:
                ops.append(("replace", None, it["content"], regex.compile(pat["Regex"])))
        else:
            raise ValueError(f"normalizer: unsupported type {kind!r}")
    return Normalizer(ops)
