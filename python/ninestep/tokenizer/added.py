"""Added (special and control) tokens written in the text, split out before BPE as HF does.

HF matches all added tokens at once, leftmost-longest (Aho-Corasick). A regex built from the
tokens' trie does the same (at each position the text picks one branch per char and the greedy
`(...)?` of a node that ends a token prefers the longer continuation); with stdlib `re` it compiles
in ~0.1 s and scans ~50 MB/s for Gemma's 6,414 added tokens, where a flat alternation takes seconds. Flags: single_word (no word char may touch the match), lstrip /
rstrip (the token swallows the whitespace beside it). Tokens marked normalized are matched in a
second pass on the normalized text, after the non-normalized ones.
"""
import re
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
        self.re = re.compile(trie_pattern(self.by_content)) if self.by_content else None

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


def trie_pattern(words):
    """A regex matching any of `words`, longest first at each position (see the module doc)."""
    root = {}
    for w in words:
        node = root
        for c in w:
            node = node.setdefault(c, {})
        node[""] = None  # a token ends here
    # iterative post-order walk (tokens can be longer than the recursion limit)
    out = {}
    stack = [(root, False)]
    while stack:
        node, done = stack.pop()
        if not done:
            stack.append((node, True))
            stack.extend((n, False) for c, n in node.items() if c)
            continue
        by_body = {}  # children whose continuations are the same pattern share one char class
        for c, n in node.items():
            if c:
                by_body.setdefault(out.pop(id(n)), []).append(c)
        alts = sorted(_char_class(cs) + b for b, cs in by_body.items())
        body = "" if not alts else alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        out[id(node)] = f"(?:{body})?" if "" in node and body else body
    return out[id(root)]


def _char_class(chars):
    if len(chars) == 1:
        return re.escape(chars[0])
    return "[" + "".join("\\" + c if c in "\\]^-[" else c for c in sorted(chars)) + "]"
