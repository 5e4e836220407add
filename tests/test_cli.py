"""The `ninestep` command, run as users run it (python -m ninestep) in a subprocess."""
import os
import re
import subprocess
import sys

import pytest

import ninestep as ninestep_api
from helpers.models import smollm2_path
from helpers.sanitized import impossible_allocation


def ninestep(*args, stdin=None, env=None, **kw):
    """args may be str or bytes (bytes reach argv undecoded, as a shell passes them)."""
    argv = [sys.executable, "-m", "ninestep", *args]
    if any(isinstance(x, bytes) for x in args):
        argv = [os.fsencode(x) for x in argv]
    inp = stdin.encode() if isinstance(stdin, str) else stdin
    kw.setdefault("stdout", subprocess.PIPE)
    r = subprocess.run(argv, stderr=subprocess.PIPE, input=inp, timeout=300, env={**os.environ, **(env or {})}, **kw)
    r.stdout = r.stdout.decode(errors="replace") if r.stdout is not None else None
    r.stderr = r.stderr.decode(errors="replace")
    return r


@pytest.fixture(scope="module", autouse=True)
def _model_installed():
    smollm2_path()  # skips (or fails under CI) without the default model


def test_run_answers_as_a_chat_by_default():
    # The reply is what model.chat gives for the same messages (the first reply token is a near-tie
    # here, "The" 24.05 vs "La" 23.93, so a kernel's rounding may pick either): only the reply, no
    # prompt, no template tokens.
    system, user = "You are a helpful assistant.", "What is the capital of France?"
    r = ninestep("run", "-n", "24", "--temp", "0", "--system", system, user)
    assert r.returncode == 0, r.stderr
    with ninestep_api.load(smollm2_path()) as m:
        want = m.chat([{"role": "system", "content": system}, {"role": "user", "content": user}],
                      max_new_tokens=24, temperature=0).text
    assert r.stdout == want + "\n"
    assert "<|im_start|>" not in r.stdout and user not in r.stdout


def test_raw_continues_the_text_and_echoes_it():
    r = ninestep("run", "--raw", "-n", "12", "--temp", "0", "The capital of France is")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("The capital of France is")
    assert "Paris" in r.stdout
    assert ninestep("run", "--no-chat", "-n", "12", "--temp", "0", "The capital of France is").stdout == r.stdout


def test_run_chat_verbose_reports_speed_on_stderr():
    r = ninestep("run", "-n", "16", "--temp", "0", "-v", "How much is 2 + 2?")
    assert r.returncode == 0, r.stderr
    assert "4" in r.stdout
    assert "tok/s" in r.stderr and "tok/s" not in r.stdout


def test_prompt_from_stdin():
    r = ninestep("run", "--raw", "-n", "4", "--temp", "0", stdin="The capital of France is")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("The capital of France is") and "Paris" in r.stdout


def test_version():
    import ninestep as ns

    r = ninestep("--version")
    assert r.returncode == 0 and r.stdout.startswith(f"ninestep {ns.__version__} (kernels: ")


@pytest.mark.parametrize("cmd", ["run", "chat", "info", "bench", "perplexity"])
def test_every_subcommand_help_has_a_description_defaults_and_m(cmd):
    r = ninestep(cmd, "--help")
    assert r.returncode == 0, r.stderr
    text = r.stdout
    assert "-m MODEL, --model MODEL" in text and "known name" in text
    usage, _, rest = text.partition("\n\n")
    assert len(rest.split("\n\n")[0]) > 40  # a description paragraph, not just the usage line
    # every option line carries a help text (the option and its help are never alone on a line)
    options = re.findall(r"^  (-\S.*?)(?:\n(?=  -)|\n\n|\Z)", text.split("options:")[1], re.S | re.M)
    for o in options:
        assert re.search(r"\s{2,}\S", o.strip().split("\n")[0]) or "\n" in o, f"no help for {o!r}"
    defaults = {"run": ["-n", "--temp", "--top-k", "--top-p", "--min-p", "--repeat-penalty"],
                "chat": ["-n", "--temp", "--top-k"], "bench": ["--prompt-tokens", "--new-tokens", "--rounds"],
                "perplexity": ["--ctx", "--stride"], "info": []}[cmd]
    for opt in defaults:
        opts = text.split("options:")[1]
        block = opts[re.search(rf"(^  |, ){re.escape(opt)} ", opts, re.M).end():]
        block = block[:block.index("\n  -")] if "\n  -" in block else block
        assert "default" in block, f"{cmd} {opt}: no default in {block!r}"


def test_chat_repl_keeps_history_in_the_kv_cache():
    r = ninestep("chat", "-n", "24", "--temp", "0", "-v", stdin="My name is Ada.\nWhat is my name?\n")
    assert r.returncode == 0, r.stderr
    cached = [int(m) for m in re.findall(r"\((\d+) cached\)", r.stderr)]
    assert len(cached) == 2 and cached[0] == 0
    assert cached[1] > 30  # the second turn re-reads only what the first did not leave in the cache


def test_chat_repl_commands():
    r = ninestep("chat", "-n", "24", "--temp", "0", "-v", "--system", "You are a helpful assistant.",
                 stdin="/help\nMy name is Ada.\n/reset\n/nonsense\nWhat is my name?\n/exit\nnever sent\n")
    assert r.returncode == 0, r.stderr
    assert "/reset" in r.stderr and "/exit" in r.stderr  # the help text
    assert "[conversation reset: system prompt kept]" in r.stderr
    assert "[unknown command /nonsense; /help lists them]" in r.stderr
    cached = [int(m) for m in re.findall(r"\((\d+) cached\)", r.stderr)]
    assert len(cached) == 2  # "never sent" after /exit is not sent, /help, /reset, /nonsense are not turns
    prompts = [int(m) for m in re.findall(r"prompt (\d+) tokens", r.stderr)]
    assert prompts[1] < prompts[0] + 10  # after /reset the second turn does not carry the first


def test_chat_drops_the_oldest_turns_when_the_context_fills():
    lines = [f"Tell me fact number {i} about the sea." for i in range(8)]
    r = ninestep("chat", "-c", "160", "-n", "40", "--temp", "0", "-v", "--system", "Answer briefly.",
                 stdin="\n".join(lines) + "\n")
    assert r.returncode == 0, r.stderr
    assert "[context full: dropped the oldest" in r.stderr and "(system prompt kept)" in r.stderr
    assert len(re.findall(r"prompt \d+ tokens", r.stderr)) == 8  # every turn answered, none lost
    assert max(int(m) for m in re.findall(r"prompt (\d+) tokens", r.stderr)) <= 160 - 40


def test_chat_says_when_a_reply_is_cut_by_the_context():
    r = ninestep("chat", "-c", "80", "-n", "200", "--temp", "0", "-v",
                 stdin="Write a very long story about a dragon.\n")
    assert r.returncode == 0, r.stderr
    assert "finish: context" in r.stderr
    assert "[reply cut: the context of 80 tokens is full" in r.stderr


def test_info_describes_the_model():
    for args in ((), ("-m", "smollm2-135m"), (str(smollm2_path()),)):
        r = ninestep("info", *args)
        assert r.returncode == 0, r.stderr
        for text in ("llama", "layers 30", "q4_1", "q8_0", "byte-level BPE", "<|im_start|>", "isa"):
            assert text in r.stdout


def test_bench_prints_both_speeds():
    r = ninestep("bench", "-m", "smollm2-135m", "--prompt-tokens", "32", "--new-tokens", "8", "--rounds", "1")
    assert r.returncode == 0, r.stderr
    assert "prefill:" in r.stdout and "decode:" in r.stdout and "tokens/s" in r.stdout


@pytest.mark.parametrize("args, text", [
    (("run", "-m", "/no/such/model.gguf", "hi"), "/no/such/model.gguf"),
    (("run", "-m", "no-such-name", "hi"), "known model name: smollm2-135m, gemma3-270m"),
    (("run", "--temp", "-1", "hi"), "temperature"),
    (("run", "-n", "-5", "hi"), "-n/--max-tokens: must be >= 0, got -5"),
    (("run", "--top-p", "0", "hi"), "top_p"),
    (("run", "--seed", "-3", "--raw", "hi"), None),  # a negative seed is fine: it is taken mod 2^64
    (("run", "--raw", "--system", "be nice", "hi"), "--raw gives plain completion"),
    (("run", "--raw", "--chat", "hi"), "--raw gives plain completion"),
    (("run", "-t", "0", "hi"), "-t/--threads: must be >= 1"),
    (("run", "-c", "100000", "hi"), "n_ctx: 100000 is beyond the 8192 positions"),
    pytest.param(("run", "-c", "2000000000", "--ctx-override", "hi"), "n_ctx: a KV cache of 2000000000 positions needs",
                 marks=impossible_allocation),
    (("info", "-m", "a.gguf", "b.gguf"), "give the model once"),
    (("bench", "--rounds", "0"), "--rounds: must be >= 1"),
    (("perplexity", "/no/such/file.txt"), "/no/such/file.txt: No such file"),
])
def test_errors_are_one_line_exit_2_and_come_before_any_output(args, text):
    r = ninestep(*args, "-n", "2") if args[0] == "run" and "-n" not in args else ninestep(*args)
    if text is None:
        assert r.returncode == 0, r.stderr
        return
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""  # nothing printed first (the prompt used to be echoed before the error)
    assert r.stderr.strip().splitlines() == [r.stderr.strip()] and r.stderr.startswith("ninestep: error: ")
    assert text in r.stderr and "Traceback" not in r.stderr


@impossible_allocation
def test_kv_cache_error_names_n_ctx_and_bytes_from_python():
    import ninestep as ns

    # the default cache of a quantized model is f16: 30 layers x 2 x 192 values x 2 bytes per position
    with pytest.raises(ValueError, match=r"n_ctx: a KV cache of 2000000000 positions needs 46080000000000 bytes"):
        ns.load(smollm2_path(), n_ctx=2_000_000_000, ctx_override=True)
    with pytest.raises(ValueError, match=r"n_ctx: a KV cache of 2000000000 positions needs 92160000000000 bytes"):
        ns.load(smollm2_path(), n_ctx=2_000_000_000, ctx_override=True, kv_cache="f32")  # 4 bytes a value


def test_ctx_beyond_training_needs_the_override():
    import ninestep as ns

    with pytest.raises(ValueError, match="ctx_override"):
        ns.load(smollm2_path(), n_ctx=8193)
    with ns.load(smollm2_path(), n_ctx=8193, ctx_override=True) as m:
        assert m.n_ctx == 8193


def test_system_without_a_template_is_an_error(tmp_path):
    # the tiny HF Llama folder (letters a-z) with a decoder added: a tokenizer, no chat template
    import json
    import shutil

    folder = tmp_path / "tiny"
    shutil.copytree(os.path.join(os.path.dirname(__file__), "data", "tiny_llama"), folder)
    tj = json.loads((folder / "tokenizer.json").read_text())
    tj["decoder"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    (folder / "tokenizer.json").write_text(json.dumps(tj))
    folder = str(folder)
    r = ninestep("run", "-m", folder, "--system", "x", "-n", "2", "hi")
    assert r.returncode == 2 and r.stdout == ""
    assert "--system needs a chat template" in r.stderr
    r = ninestep("run", "-m", folder, "-n", "2", "--temp", "0", "hi")  # plain completion is its default
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("hi") and len(r.stdout) == len("hi") + 2 + 1
    r = ninestep("run", "-m", folder, "--chat", "-n", "2", "hi")
    assert r.returncode == 2 and "--chat needs a chat template" in r.stderr
    r = ninestep("chat", "-m", folder, stdin="hi\n")
    assert r.returncode == 2 and "has no chat template, so it cannot chat" in r.stderr


@pytest.mark.parametrize("how", ["stdin", "argv"])
def test_non_utf8_input_names_the_byte_offset_of_the_users_text(how):
    bad = "café ".encode() + b"\xff rest"  # é is two bytes: the bad byte is at offset 6
    r = ninestep("run", "-n", "2", stdin=bad) if how == "stdin" else ninestep("run", "-n", "2", bad)
    assert r.returncode == 2 and r.stdout == ""
    where = "stdin" if how == "stdin" else "prompt"
    assert r.stderr.strip() == f"ninestep: error: {where}: not valid UTF-8 at byte offset 6 (byte 0xff)"
    assert "surrogate" not in r.stderr


def test_non_utf8_chat_line_is_refused_and_the_chat_goes_on():
    r = ninestep("chat", "-n", "8", "--temp", "0", "-v", stdin=b"ab\xfe\nWhat is 2 + 2?\n")
    assert r.returncode == 0, r.stderr
    assert "[your message: not valid UTF-8 at byte offset 2 (byte 0xfe); not sent]" in r.stderr
    assert len(re.findall(r"prompt \d+ tokens", r.stderr)) == 1


def test_threads_above_the_usable_cores_are_capped_with_a_warning():
    cores = len(os.sched_getaffinity(0))
    r = ninestep("run", "-t", str(cores + 7), "-n", "1", "-v", "--temp", "0", "hi")
    assert r.returncode == 0, r.stderr
    assert f"-t {cores + 7} is more than the {cores} cores this process may use; using {cores}" in r.stderr
    assert f"'threads': {cores}" in r.stderr
    r = ninestep("run", "-t", str(cores + 1), "--threads-override", "-n", "1", "-v", "--temp", "0", "hi")
    assert "warning" not in r.stderr and f"'threads': {cores + 1}" in r.stderr


def test_closed_stdout_ends_quietly():
    p = subprocess.Popen([sys.executable, "-m", "ninestep", "run", "--raw", "-n", "300", "--temp", "0", "Once upon"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(5)
    p.stdout.close()  # as `| head -c 5` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == -13  # killed by SIGPIPE, as cat would be: the shell shows 141
    assert err == ""


def test_full_stdout_is_one_line_exit_1():
    with open("/dev/full", "w") as full:
        r = ninestep("run", "--raw", "-n", "20", "--temp", "0", "hi", stdout=full)
    assert r.returncode == 1
    assert r.stderr.strip() == "ninestep: error: writing to stdout: No space left on device"
