"""Makes gguf_goldens.json: token ids of the Gemma 3 and Qwen2.5 GGUFs' tokenizers for a varied
corpus, from two independent implementations, plus Qwen's chat template rendered by transformers.
Run from the repo root (needs transformers, tokenizers, and llama.cpp's libllama built in the
llama-cpp-python source tree; takes ~2 minutes, mostly transformers building the Gemma tokenizer):

    python3 tests/goldens/tokenizer/make_gguf_goldens.py

For each model and each corpus string:
  hf:    HF `tokenizers` ids (add_special_tokens=True) of the tokenizer transformers builds from
         the GGUF (AutoTokenizer.from_pretrained(folder, gguf_file=...)).
  llama: llama.cpp's llama_tokenize(add_special=True, parse_special=True) through ctypes, with
         the vocabulary loaded from the same GGUF (vocab_only).
  spm:   (Gemma) the `sentencepiece` library itself, on a ModelProto built from the GGUF's pieces,
         scores and types (BPE, byte fallback, identity normalizer, no dummy prefix; user-defined
         pieces spelled with '\u2581' as in the original model); the text is cut at control tokens
         first, as sentencepiece does not parse them, and BOS put in front.
expected: Qwen: hf == llama (asserted). Gemma: spm, the model's own tokenizer; the script prints
where hf and llama differ from it (hf_where_different, llama_where_different: their ids there).
Known: transformers respells the space-run tokens as '\u2581' runs and merges them by BPE, so a run
of more than 31 spaces splits differently; llama.cpp matches those tokens (real spaces in the GGUF)
before mapping spaces, so a '\u2581' typed in the text is not a space to it. decoded: HF decode of the
expected ids;
random_ids: random id sequences (byte tokens, specials, anything) with HF decode, with and without
skip_special_tokens. chat: Qwen conversations (system / no system / tools / tool calls) with
transformers' apply_chat_template(..., tokenize=False).
"""
import ctypes
import json
import random
import sys
import types
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from make_goldens import CORPUS as BASE_CORPUS  # noqa: E402

MODELS = {"gemma3": "gemma3-270m", "qwen2": "qwen2.5-coder-0.5b"}  # ninestep.hub names
LLAMA_CPP_PY = Path("/work/peers/llama_cpp_python-0.3.36")
LIB = LLAMA_CPP_PY / "vendor" / "llama.cpp" / "build" / "bin"

CODE = '''import json
from pathlib import Path


def load(path: Path) -> dict:
    """Read a JSON file."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


class Box:
    def __init__(self, w=1.5, h=2):
        self.area = w * h  # m²

    def __repr__(self):
        return f"Box({self.area:.2f})"
'''
JS = "const f = (x) => { if (x === null) return []; return x.map((y, i) => y ** 2 + i); };\n// done\n"
HTML = "<html><body><div class=\"a\"><b>bold</b> <i>it</i> <table><tr><td>1</td></tr></table></div></body></html>"

EXTRA = [
    # spaces: runs, leading, trailing, between words
    *("a" + " " * n + "b" for n in (1, 2, 3, 4, 7, 8, 15, 16, 31, 32, 33, 40)),
    " hello", "  hello", "   hello world", "hello ", "hello  ", "  ", "   ", " " * 31, " " * 32, " " * 70,
    " a b  c   d    e     f", "word\u00a0word", "x \u3000 y",
    # newlines and tabs
    *("x" + "\n" * n + "y" for n in (1, 2, 3, 5, 31, 32, 40)),
    "\n\n", "\r\n", "a\r\nb\r\n\r\nc", "\n \n  \n", "\t", "\t\t", "a\tb\t\tc\t\t\td", "\t" * 35, " \t \n \t\n",
    "line\n    indented\n\tTabbed\n  \t mixed",
    # byte fallback / unusual characters
    "\x00\x01\x07\x1b\x7f", "\x1c\x1d\x1e\x1f", "\u0085\u2028\u2029", "\ue000\uf8ff", "\U000f0000\U0010fffd",
    "\U0002a6d6\U0002b734\U0003134a", "\ufffd", "\U0001fae8\U0001fabf", "\u0f00\u0fbe", "\u2e80\u31e3",
    "\U00011de0 \U000323b0", "a\u200bb\u200cc\u200dd\ufeffe",
    # added / special tokens written in text (Gemma and Qwen)
    "<start_of_turn>user\nWrite a poem.<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text<eos>", "<pad><mask><unk>", "<unused0><unused99><unused6241>", "<start_of_image><end_of_image>",
    "[multimodal]", "<table><tr><td>x</td></tr></table>", "<h1>Title</h1><h2>Sub</h2>", "<b> </b>",
    "a> </a", "x > </y>", "<0x41><0xE4><0xB8>", "<start_of_turn", "start_of_turn>", "<<bos>>", "<b><b><b>",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n",
    "<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>", "<|fim_prefix|>def f(<|fim_suffix|>)<|fim_middle|>",
    "<|endoftext|><|file_sep|><|repo_name|>x", "<|im_start <|im_end| |im_end|>",
    # digits
    *("".join(str((k * 7 + 3) % 10) for k in range(n)) for n in range(1, 14)),
    "3.14159 2.71828 6.022e23 -42 +7 0x1F 0b1010 1_000_000 1,234,567.89", "١٢٣٤ ٥٦ ①②③ ²³ ½ ⅓ Ⅻ 〇一二三",
    # scripts
    "नमस्ते दुनिया, यह एक परीक्षण है।", "สวัสดีชาวโลก นี่คือการทดสอบ", "שלום עולם, זה מבחן.",
    "Γειά σου Κόσμε! Ελληνικά.", "Բարեւ աշխարհ", "გამარჯობა მსოფლიო", "Xin chào thế giới, đây là bài kiểm tra.",
    "漢字かな交じり文、カタカナ、ﾊﾝｶｸ、한글 조합 ㄱㄴㄷ", "繁體中文測試：「你好」『世界』……", "e\u0301 e\u0300\u0323 ǅ ﬁ ﬀ Å Å",
    "Ünïcödé ßtraße İı ǈ ﬃ", "👍🏽👩🏾‍💻👨‍👩‍👧‍👦🏳️‍🌈🇯🇵❤️‍🔥 😀😃😄😁", "☃★♠♣♥♦ ∀x∈ℝ: x²≥0 ⇒ √(x²)=|x|",
    # contractions
    "I'm you're he's she'll we'd they've it's can't won't Y'ALL'D 'tis ſ's", "don ' t , I 'M",
    # code and markup
    CODE, JS, HTML, "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;", "#include <stdio.h>\nint main(void){return 0;}\n",
    "$ ls -la | grep '^d' && echo \"done\" > /dev/null 2>&1", "http://x.org/a?b=c&d=%20e#f",
    # long
    "a" * 600, "ab" * 300, "😀" * 40, " " * 120 + "x", "\n" * 70, "-" * 200, "The quick brown fox. " * 40,
]

FRAGMENTS = ["<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<|im_start|>", "<|im_end|>", "<b>", "</b>",
             "<unused3>", "'s", "'S", "'ll", "'re", " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u3000",
             "0", "7", "12", "123", "1234", "١", "²", "a", "Z", "é", "ß", "я", "中", "文", "ا", "😀", "👍🏽",
             "\u200d", "\ufe0f", "e\u0301", "_", "-", "...", "$", "{", "}", "()", ">", " </", "\x00", "\U0002a6d6",
             "the", " the", "The", " quick", "ing", " 2024", "def", " return", "\u2581", "▁▁"]


def random_corpus(n, seed):
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randrange(1, 15)):
            if rng.random() < 0.8:
                parts.append(rng.choice(FRAGMENTS))
            else:
                parts.append("".join(chr(rng.choice([rng.randrange(32, 0x250), rng.randrange(0x250, 0x3000),
                                                     rng.randrange(0x3000, 0xD800), rng.randrange(0xE000, 0x30000)]))
                                     for _ in range(rng.randrange(1, 5))))
        out.append("".join(parts))
    return out


CORPUS = BASE_CORPUS + EXTRA + random_corpus(250, 1234)

TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. Paris"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}},
    {"type": "function", "function": {"name": "now", "description": "The time.", "parameters": {"type": "object", "properties": {}}}},
]
CONVERSATIONS = [
    ({"messages": [{"role": "user", "content": "Hello! 2+2?"}]}, True),
    ({"messages": [{"role": "user", "content": "Hello! 2+2?"}]}, False),
    ({"messages": [{"role": "system", "content": "You are a pirate."}, {"role": "user", "content": "Hi"}]}, True),
    ({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"},
                   {"role": "assistant", "content": "Paris."}, {"role": "user", "content": "Germany?"}]}, True),
    ({"messages": [{"role": "user", "content": "Weather in Paris?"}], "tools": TOOLS}, True),
    ({"messages": [{"role": "system", "content": "You help with weather."},
                   {"role": "user", "content": "Weather in Paris?"}], "tools": TOOLS}, True),
    ({"messages": [{"role": "user", "content": "Weather in Paris and the time?"},
                   {"role": "assistant", "content": "",
                    "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}},
                                   {"type": "function", "function": {"name": "now", "arguments": {}}}]},
                   {"role": "tool", "content": "{\"temp\": 21, \"sky\": \"clear\"}"},
                   {"role": "tool", "content": "12:00"},
                   {"role": "assistant", "content": "It is 21°C and clear; the time is 12:00."},
                   {"role": "user", "content": "Thanks 😀"}], "tools": TOOLS}, True),
    ({"messages": [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Привет\nмир"},
                   {"role": "assistant", "content": "你好"}], "tools": TOOLS}, False),
]

class LlamaCpp:
    """llama.cpp's tokenizer through the ctypes bindings of the llama-cpp-python source tree."""

    def __init__(self, path):
        import os

        os.environ["LLAMA_CPP_LIB_PATH"] = str(LIB)
        pkg = types.ModuleType("llama_cpp")  # the bindings module alone, not the package's extras
        pkg.__path__ = [str(LLAMA_CPP_PY / "llama_cpp")]
        sys.modules.setdefault("llama_cpp", pkg)
        import llama_cpp.llama_cpp as L

        self.L = L
        params = L.llama_model_default_params()
        params.vocab_only = True
        self.model = L.llama_model_load_from_file(str(path).encode(), params)
        assert self.model, path
        self.vocab = L.llama_model_get_vocab(self.model)

    def encode(self, text):
        b = text.encode("utf-8")
        n = len(b) + 16
        buf = (self.L.llama_token * n)()
        k = self.L.llama_tokenize(self.vocab, b, len(b), buf, n, True, True)
        assert k >= 0, (text, k)
        return list(buf[:k])


class SentencePiece:
    """The sentencepiece library on the GGUF's vocabulary (SentencePiece GGUFs only)."""

    def __init__(self, path):
        import re

        import sentencepiece as spm
        from gguf import GGUFReader
        from sentencepiece import sentencepiece_model_pb2 as pb

        f = GGUFReader(str(path)).fields
        tokens, scores, types = (f["tokenizer.ggml." + k].contents() for k in ("tokens", "scores", "token_type"))
        mp = pb.ModelProto()
        mp.trainer_spec.model_type = pb.TrainerSpec.BPE
        mp.trainer_spec.byte_fallback = True
        for k in ("unk", "bos", "eos", "pad"):
            key = "tokenizer.ggml." + ("unknown" if k == "unk" else "padding" if k == "pad" else k) + "_token_id"
            setattr(mp.trainer_spec, k + "_id", int(f[key].contents()))
        mp.normalizer_spec.name = "identity"
        mp.normalizer_spec.add_dummy_prefix = bool(f["tokenizer.ggml.add_space_prefix"].contents())
        mp.normalizer_spec.remove_extra_whitespaces = False
        mp.normalizer_spec.escape_whitespaces = True
        for t, s, y in zip(tokens, scores, types):
            p = mp.pieces.add()
            p.piece, p.score, p.type = (t.replace(" ", "\u2581") if y == 4 else t), s, y
        self.sp = spm.SentencePieceProcessor(model_proto=mp.SerializeToString())
        self.bos = mp.trainer_spec.bos_id
        control = sorted((t for t, y in zip(tokens, types) if y == 3), key=len, reverse=True)
        self.ids = {t: i for i, t in enumerate(tokens)}
        self.control = re.compile("|".join(map(re.escape, control)))

    def encode(self, text):
        out, pos = [self.bos], 0
        for m in self.control.finditer(text):
            out += self.sp.encode(text[pos:m.start()]) if pos < m.start() else []
            out.append(self.ids[m.group()])
            pos = m.end()
        return out + (self.sp.encode(text[pos:]) if pos < len(text) else [])


def model_goldens(name, path):
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    fast = hf.backend_tokenizer
    lc = LlamaCpp(path)
    sp = SentencePiece(path) if name == "gemma3" else None
    expected, disagree, disagree_llama = [], {}, {}
    for i, s in enumerate(CORPUS):
        a, b = fast.encode(s).ids, lc.encode(s)
        want = sp.encode(s) if sp else b
        assert sp or a == b, (s, a, b)
        expected.append(want)
        for ids, who, d in ((a, "hf", disagree), (b, "llama", disagree_llama)):
            if ids != want:
                d[i] = ids
                print(f"{name}: {who} differs on {s!r}:\n  {who} {ids}\n  want {want}")
    rng = random.Random(7)
    n = fast.get_vocab_size()
    rand = [[rng.randrange(n) if rng.random() < 0.5 else rng.randrange(min(n, 600)) for _ in range(rng.randrange(1, 10))]
            for _ in range(150)]
    return hf, {
        "expected": expected,
        "hf_where_different": {str(k): v for k, v in disagree.items()},
        "llama_where_different": {str(k): v for k, v in disagree_llama.items()},
        "decoded": [fast.decode(x, skip_special_tokens=False) for x in expected],
        "random_ids": [{"ids": x, "text": fast.decode(x, skip_special_tokens=False),
                        "text_skip": fast.decode(x, skip_special_tokens=True)} for x in rand],
    }


def main():
    out = {"corpus": CORPUS}
    from ninestep import hub

    for name, model in MODELS.items():
        hf, g = model_goldens(name, hub.path(model))
        out[name] = g
        print(f"{name}: {len(CORPUS)} strings; differ from expected: HF {len(g['hf_where_different'])}, "
              f"llama.cpp {len(g['llama_where_different'])}")
        if name == "qwen2":
            out["qwen2_chat"] = [{**conv, "add_generation_prompt": gen,
                                  "text": hf.apply_chat_template(conv["messages"], tools=conv.get("tools"),
                                                                 add_generation_prompt=gen, tokenize=False)}
                                 for conv, gen in CONVERSATIONS]
    (HERE / "gguf_goldens.json").write_text(json.dumps(out, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    print("wrote", HERE / "gguf_goldens.json", (HERE / "gguf_goldens.json").stat().st_size, "bytes")


if __name__ == "__main__":
    main()
