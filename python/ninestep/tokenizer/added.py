"""Added (special and control) tokens written in the text, split out before BPE as HF does.

HF matches all added tokens at once, leftmost-longest (Aho-Corasick); a regex alternation sorted
longest first does the same. Flags: single_word (no word char may touch the match), lstrip /
rstrip (the token swallows the whitespace beside it). Tokens marked normalized are matched in a
second pass on the normalized text, after the non-normalized ones.
"""
from dataclasses import dataclass

import regex

_WORD = regex.compile(r"\w")
_SPACE = regex.compile(r"\s")


@dataclass(frozen=True)
class AddedToken:
    id: int
    content: str
    special: bool = True
    single_word: bool = False
    lstrip: bool = False
    rstrip: bool = False
    normalized: bool = False


class Matcher:
    """Splits text into [str | AddedToken] for one set of added tokens."""

    def __init__(self, tokens):
        self.by_content = {}
        for t in tokens:
            if t.content:
                self.by_content.setdefault(t.content, t)
        alts = sorted(self.by_content, key=len, reverse=True)
        self.re = regex.compile("|".join(regex.escape(a) for a in alts)) if alts else None

    def split(self, text):
        if self.re is None or not text:
            return [text] if text else []
        out, pos = [], 0
        for m in self.re.finditer(text):
            tok = self.by_content[m.group()]
            start, stop = m.span()
            if tok.single_word and ((start > 0 and _WORD.match(text[start - 1]))
                                    or (stop < len(text) and _WORD.match(text[stop]))):
                continue
            if tok.lstrip:
                # whitespace already taken by the previous match stays there
                while start > pos and _SPACE.match(text[start - 1]):
                    start -= 1
            if tok.rstrip:
                while stop < len(text) and _SPACE.match(text[stop]):
                    stop += 1
            if pos < start:
                out.append(text[pos:start])
            out.append(tok)
            pos = stop
        if pos < len(text):
            out.append(text[pos:])
        return out
