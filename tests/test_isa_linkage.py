"""Headers that files built with different ISA flags share (cpp/, per-file -mavx2 / -mavx512f /
VNNI flags, see CMakeLists.txt) must not hand the linker two bodies of one function compiled for
different ISAs: it keeps one for every caller. That happened to the decode attention walk
(attention_decode_items.h): its instantiations had one mangled name in the AVX2 and the AVX-512 file,
and the AVX-512 entry ran the AVX2 kernels (the reverse would have run AVX-512 code on AVX2 CPUs).
So a shared header either gives its definitions internal linkage (an unnamed namespace), or its
function bodies do no floating-point or SIMD work (integer helpers, the same code under any flags)."""
import re
from pathlib import Path

import pytest

CPP = Path(__file__).resolve().parents[1] / "cpp"


def isa_of(src):
    name = src.stem
    if name in ("quant_packed_avx512", "quant_gemv_avx512"):
        return "avx512vnni"
    return next((s for s in ("avx512", "avx2", "neon") if name.endswith("_" + s)), "base")


def includes(path):
    return re.findall(r'#include "([^"]+)"', path.read_text())


def shared_headers():
    """header -> the ISA classes of the sources that include it, directly or through other headers."""
    users = {}
    for src in CPP.rglob("*.cpp"):
        seen, todo = set(), includes(src)
        while todo:
            h = todo.pop()
            if h in seen or not (CPP / h).exists():
                continue
            seen.add(h)
            users.setdefault(h, set()).add(isa_of(src))
            todo += includes(CPP / h)
    return {h: isas for h, isas in users.items() if len(isas - {"neon"}) >= 2}  # NEON never links with x86


def function_bodies(text):
    """The bodies of the functions (inline ones and templates) defined at namespace scope in text."""
    text = re.sub(r"//[^\n]*", "", text)
    for m in re.finditer(r"\b(inline\b|template\s*<)", text):
        i = m.end()
        while i < len(text) and text[i] not in "{;":
            i += 1
        if i >= len(text) or text[i] == ";" or "(" not in text[m.end():i]:
            continue  # a declaration, a variable, a class template
        depth, j = 0, i
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
            if depth == 0:
                break
        yield text[m.start():j]


def test_the_walk_finds_the_shared_headers():
    shared = shared_headers()
    assert {"avx2", "avx512"} <= shared["kernels/attention_decode_items.h"]
    assert "kernels/quant_packed_x86.h" in shared and "core/fp16.h" in shared


@pytest.mark.parametrize("header", sorted(shared_headers()))
def test_a_header_shared_across_isa_flags_keeps_float_code_internal(header):
    text = (CPP / header).read_text()
    if re.search(r"^namespace \{", text, re.M):
        return
    float_work = [b.split("{", 1)[0].strip() for b in function_bodies(text)
                  if re.search(r"\b(float|double|__m128\w*|__m256\w*|__m512\w*|float32x4_t)\b", b)]
    assert not float_work, (f"{header} is built into files with different ISA flags "
                            f"({', '.join(sorted(shared_headers()[header]))}) and defines float / SIMD code with "
                            f"external linkage: put it in an unnamed namespace. Definitions: {float_work}")
