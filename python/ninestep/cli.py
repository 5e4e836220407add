"""The `ninestep` command: run, chat, info, bench, perplexity, embed.

Every argument is checked before anything is printed; errors are one line on stderr and exit 2.
Writing to a closed pipe ends quietly (as `cat` does: SIGPIPE); a full disk is one line, exit 1."""
import argparse
import os
import signal
import sys
import time

from . import __version__

MODEL_HELP = ("a .gguf file, a Hugging Face folder or a known name: smollm2-135m, gemma3-270m, "
              "qwen2.5-coder-0.5b (default: $NINESTEP_MODEL, else smollm2-135m)")


class CLIError(Exception):
    """A problem with what the user typed or gave: one line, exit 2."""


class _Formatter(argparse.RawDescriptionHelpFormatter):
    pass


def _add_model_args(p, positional=False, ctx_default=None):
    if positional:  # `ninestep info MODEL` and `ninestep bench MODEL` as before; -m works too
        p.add_argument("model_pos", nargs="?", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("-m", "--model", help=MODEL_HELP)
    p.add_argument("-t", "--threads", type=int,
                   help="threads (default: the cores this process may use; more is capped unless --threads-override)")
    p.add_argument("--threads-override", action="store_true", help="use -t even if it exceeds the usable cores")
    if ctx_default is None:
        p.add_argument("-c", "--ctx", type=int, help="context length in tokens (default: min(the model's, 4096))")
    p.add_argument("--ctx-override", action="store_true",
                   help="allow a context longer than the model was trained on")
    p.add_argument("--kv-cache", choices=["auto", "f16", "q8_0", "f32"], default="auto",
                   help="KV cache element type (default auto: f16 for quantized weights, f32 for float weights)")


def _add_sampling_args(p):
    p.add_argument("-n", "--max-tokens", type=int, default=256, help="new tokens at most (default: 256)")
    p.add_argument("--temp", type=float, default=0.8, help="temperature; 0 = greedy (default: 0.8)")
    p.add_argument("--top-k", type=int, default=40, help="keep the K most likely tokens; 0 = off (default: 40)")
    p.add_argument("--top-p", type=float, default=0.95,
                   help="keep the smallest set with this much probability; 1 = off (default: 0.95)")
    p.add_argument("--min-p", type=float, default=0.05,
                   help="drop tokens below this fraction of the best one's probability; 0 = off (default: 0.05)")
    p.add_argument("--repeat-penalty", type=float, default=1.0,
                   help="divide the logits of the last 64 tokens by this; 1 = off (default: 1.0)")
    p.add_argument("--seed", type=int, help="random seed; the same seed gives the same text (default: random)")
    p.add_argument("-v", "--verbose", action="store_true", help="print load time and speed to stderr")


def _sampling_kwargs(a):
    """The sampling options, checked now (before any output) by the same rules generate() uses."""
    from .sampling import Sampler, SamplingParams

    if a.max_tokens < 0:
        raise CLIError(f"-n/--max-tokens: must be >= 0, got {a.max_tokens}")
    kw = dict(temperature=a.temp, top_k=a.top_k, top_p=a.top_p, min_p=a.min_p, repetition_penalty=a.repeat_penalty)
    try:
        Sampler(SamplingParams(**kw), a.seed)
    except ValueError as e:
        raise CLIError(str(e)) from None
    return dict(max_new_tokens=a.max_tokens, seed=a.seed, **kw)


def _utf8(data, what):
    """bytes -> str; a bad byte is named by its offset in the user's own text."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CLIError(f"{what}: not valid UTF-8 at byte offset {e.start} (byte 0x{data[e.start]:02x})") from None


def _arg_text(s, what):
    """A command-line string back to its bytes (POSIX hands undecodable bytes over escaped), checked."""
    return _utf8(os.fsencode(s), what) if s is not None else None


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def _threads(a):
    n = a.threads
    if n is None:
        return None
    if n < 1:
        raise CLIError(f"-t/--threads: must be >= 1, got {n}")
    cores = _usable_cores()
    if n > cores and not a.threads_override:
        print(f"ninestep: warning: -t {n} is more than the {cores} cores this process may use; using {cores} "
              f"(--threads-override to use {n})", file=sys.stderr)
        n = cores
    return n


def _model_name(a):
    pos = getattr(a, "model_pos", None)
    if pos is not None and a.model is not None:
        raise CLIError(f"give the model once: either MODEL ({pos}) or -m ({a.model})")
    return a.model if a.model is not None else pos


def _load(a, n_ctx=None):
    import ninestep

    threads = _threads(a)
    ctx = getattr(a, "ctx", None) if n_ctx is None else n_ctx
    t0 = time.perf_counter()
    model = ninestep.load(_model_name(a), n_ctx=ctx, n_threads=threads, ctx_override=a.ctx_override,
                          kv_cache=getattr(a, "kv_cache", "auto"))
    if a.verbose:
        print(f"[loaded {model.path} in {time.perf_counter() - t0:.2f} s; {ninestep.cpu_info()}]", file=sys.stderr)
    return model


class _StdoutFailed(Exception):
    """stdout refused a write (a full disk, /dev/full, an I/O error)."""


def _out(text):
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        raise
    except OSError as e:
        raise _StdoutFailed(e.strerror or str(e)) from None


def _stream(stream, verbose):
    for piece in stream:
        _out(piece)
    c = stream.completion
    if verbose:
        print(f"\n[{c.stats}; finish: {c.finish_reason}]", file=sys.stderr)
    return c


def _has_template(model):
    return model.tokenizer is not None and bool(model.tokenizer.chat_template)


def cmd_run(a):
    kw = _sampling_kwargs(a)
    system = _arg_text(a.system, "--system")
    if a.raw and (a.chat or system is not None):
        raise CLIError("--raw gives plain completion: it cannot be combined with " + ("--chat" if a.chat else "--system"))
    prompt = _arg_text(a.prompt, "prompt") if a.prompt is not None else _utf8(sys.stdin.buffer.read(), "stdin")
    model = _load(a)
    chat = not a.raw and _has_template(model)
    if not chat and not a.raw and (a.chat or system is not None):
        raise CLIError(f"{'--chat' if a.chat else '--system'} needs a chat template, and {model.path} has none "
                       f"(plain completion is the default for it)")
    if chat:
        messages = ([{"role": "system", "content": system}] if system is not None else []) + \
                   [{"role": "user", "content": prompt}]
        stream = model.chat(messages, stream=True, **kw)
    else:
        stream = model.generate(prompt, stream=True, **kw)  # validates and tokenizes: errors before the echo
        _out(prompt)
    c = _stream(stream, a.verbose)
    _out("\n")
    if c.finish_reason == "context":
        print(f"[stopped: the context of {model.n_ctx} tokens is full (-c to enlarge it)]", file=sys.stderr)
    return 0


CHAT_HELP = """commands:
  /help    this list
  /reset   forget the conversation (the system prompt stays)
  /exit    quit (also /quit or Ctrl-D)
anything else is sent to the model as your message"""


def cmd_chat(a):
    kw = _sampling_kwargs(a)
    system = _arg_text(a.system, "--system")
    model = _load(a)
    if not _has_template(model):
        raise CLIError(f"{model.path} has no chat template, so it cannot chat; use `ninestep run` for completion")
    base = [{"role": "system", "content": system}] if system is not None else []
    messages = list(base)
    print(f"ninestep chat with {model.path} (context {model.n_ctx} tokens): /help for commands, /exit or Ctrl-D "
          f"to quit", file=sys.stderr)
    while True:
        try:
            line = input("> " if sys.stdin.isatty() else "")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            print(file=sys.stderr)
            return 130
        try:
            line = _arg_text(line, "your message")
        except CLIError as e:
            print(f"[{e}; not sent]", file=sys.stderr)
            continue
        cmd = line.strip()
        if not cmd:
            continue
        if cmd in ("/exit", "/quit"):
            return 0
        if cmd == "/help":
            print(CHAT_HELP, file=sys.stderr)
            continue
        if cmd == "/reset":
            messages = list(base)
            print("[conversation reset" + (": system prompt kept]" if base else "]"), file=sys.stderr)
            continue
        if cmd.startswith("/") and " " not in cmd:
            print(f"[unknown command {cmd}; /help lists them]", file=sys.stderr)
            continue
        messages.append({"role": "user", "content": line})
        if not _fit(model, messages, base, a.max_tokens):
            messages.pop()
            continue
        try:
            reply = _stream(model.chat(messages, stream=True, **kw), a.verbose)
        except KeyboardInterrupt:
            print("\n[interrupted]", file=sys.stderr)
            messages.pop()
            continue
        _out("\n")
        if reply.finish_reason == "context":
            print(f"[reply cut: the context of {model.n_ctx} tokens is full; the oldest turns will be dropped "
                  f"next time]", file=sys.stderr)
        elif reply.finish_reason == "length":
            print(f"[reply cut at {a.max_tokens} tokens (-n)]", file=sys.stderr)
        messages.append({"role": "assistant", "content": reply.text})


def _prompt_tokens(model, messages):
    text = model.tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    return len(model.tokenizer.encode(text, add_special=False))


def _fit(model, messages, base, max_tokens):
    """Drops the oldest turns (never the system prompt or the new message) until the rendered
    history leaves room for a reply; says so. False if the new message alone does not fit."""
    room = max(1, min(max_tokens, model.n_ctx // 4))  # at least a quarter of the context for the reply
    dropped = 0
    while _prompt_tokens(model, messages) + room > model.n_ctx:
        if len(messages) <= len(base) + 1:
            n = _prompt_tokens(model, messages)
            print(f"[your message needs {n} tokens with the template; the context holds {model.n_ctx} with room "
                  f"for a reply of {room}: not sent]", file=sys.stderr)
            return False
        del messages[len(base)]  # the oldest user message, then its reply
        if len(messages) > len(base) + 1 and messages[len(base)]["role"] == "assistant":
            del messages[len(base)]
        dropped += 1
    if dropped:
        print(f"[context full: dropped the oldest {dropped} turn{'s' if dropped > 1 else ''}"
              f"{' (system prompt kept)' if base else ''}]", file=sys.stderr)
    return True


def cmd_info(a):
    import ninestep
    from .loader import describe

    _out(describe(_model_name(a)) + "\n")
    _out(f"cpu: {ninestep.cpu_info()}\n")
    return 0


def cmd_bench(a):
    from .benchmark import bench_model

    for name in ("prompt_tokens", "new_tokens", "rounds"):
        if getattr(a, name) < 1:
            raise CLIError(f"--{name.replace('_', '-')}: must be >= 1, got {getattr(a, name)}")
    if not 0 <= a.busy <= 64:
        raise CLIError(f"--busy: must be in [0, 64], got {a.busy}")
    model = _load(a)
    r = bench_model(model, prompt_tokens=a.prompt_tokens, new_tokens=a.new_tokens, rounds=a.rounds, busy=a.busy)
    _out(f"model:   {model.path}\n")
    _out(f"threads: {r['threads']}, isa: {r['isa']}, rounds: {a.rounds} (median)\n")
    if a.busy:
        load = "" if r["load"] is None else f", load average {r['load']:.2f} at the start"
        _out(f"busy:    {a.busy} competing busy-loop process{'es' if a.busy > 1 else ''}{load}\n")
    _out(f"prefill: {r['prefill_tps']:.1f} tokens/s  ({a.prompt_tokens}-token prompt)\n")
    _out(f"decode:  {r['decode_tps']:.1f} tokens/s  ({a.new_tokens} tokens)\n")
    return 0


def cmd_perplexity(a):
    if a.ctx < 4:
        raise CLIError(f"-c/--ctx: must be >= 4, got {a.ctx}")
    if a.stride is not None and not 1 <= a.stride <= a.ctx:
        raise CLIError(f"--stride: must be in [1, --ctx {a.ctx}], got {a.stride}")
    if a.file == "-":
        data, what = sys.stdin.buffer.read(), "stdin"
    else:
        try:
            with open(a.file, "rb") as f:
                data, what = f.read(), a.file
        except OSError as e:
            raise CLIError(f"{a.file}: {e.strerror}") from None
    text = _utf8(data, what)
    model = _load(a, n_ctx=a.ctx)
    r = model.perplexity(text, ctx=a.ctx, stride=a.stride, progress=True)
    windows = f"{r.windows} window{'s' if r.windows != 1 else ''}"
    _out(f"perplexity: {r.perplexity:.4f} over {r.scored_tokens} scored tokens ({windows} of {r.ctx}, "
         f"stride {r.stride}; {r.text_tokens} tokens in the text)\n")
    print(f"[{r.seconds:.1f} s, {r.tokens_per_second:.1f} tokens/s]", file=sys.stderr)
    return 0


def cmd_serve(a):
    from ninestep.server import serve

    return serve(_model_name(a), host=a.host, port=a.port, parallel=a.parallel, api_key=a.api_key, n_ctx=a.ctx,
                 n_threads=_threads(a), ctx_override=a.ctx_override, max_queue=a.max_queue, kv_cache=a.kv_cache)


def _add_serve(sub):
    s = sub.add_parser("serve", help="an OpenAI-compatible HTTP server (needs ninestep[server])")
    _add_model_args(s)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    s.add_argument("--port", type=int, default=8080, help="port (default 8080)")
    s.add_argument("--parallel", type=int, default=4, help="sequences decoded together (default 4)")
    s.add_argument("--api-key", help="require 'Authorization: Bearer KEY'")
    s.add_argument("--max-queue", type=int, default=64, help="requests waiting beyond the parallel ones before 503")
    s.set_defaults(func=cmd_serve)


def build_parser():
    import ninestep

    p = argparse.ArgumentParser(prog="ninestep", description="Run transformer language models on the CPU.",
                                formatter_class=_Formatter)
    p.add_argument("--version", action="version",
                   version=f"ninestep {__version__} (kernels: {ninestep.cpu_info()['isa']}; "
                           f"compiled: {', '.join(ninestep.cpu_info()['compiled'])})")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name, summary, description):
        return sub.add_parser(name, help=summary, description=description, formatter_class=_Formatter)

    r = command("run", "answer a prompt (a one-turn chat) or continue text (--raw), streamed to stdout",
                "Answer PROMPT with the model. A model with a chat template (SmolLM2, Qwen2.5) gets the prompt as a "
                "one-turn chat and prints only the reply; --raw continues the text as given and prints prompt and "
                "continuation.")
    r.add_argument("prompt", nargs="?", help="the prompt (default: read stdin)")
    _add_model_args(r)
    _add_sampling_args(r)
    r.add_argument("--raw", "--no-chat", action="store_true",
                   help="plain completion: no chat template (default for models without one)")
    r.add_argument("--chat", action="store_true", help="require chat mode (the default when the model has a template)")
    r.add_argument("--system", help="system message for the chat (chat mode only)")
    r.set_defaults(func=cmd_run)

    c = command("chat", "multi-turn chat in the terminal; the history stays in the KV cache",
                "A conversation in the terminal. Each turn reuses the KV cache of the previous ones; when the "
                "history outgrows the context the oldest turns are dropped (the system prompt stays).\n\n" + CHAT_HELP)
    _add_model_args(c)
    _add_sampling_args(c)
    c.add_argument("--system", help="system message (kept when old turns are dropped)")
    c.set_defaults(func=cmd_chat)

    i = command("info", "architecture, sizes, tensor types, tokenizer and chat template",
                "Describe a model file without running it, and the CPU's kernel variants.")
    i.add_argument("model_pos", nargs="?", metavar="MODEL", help=MODEL_HELP)
    i.add_argument("-m", "--model", help=MODEL_HELP)
    i.set_defaults(func=cmd_info)

    b = command("bench", "prefill and decode tokens/s", "Time a prefill of --prompt-tokens tokens and --new-tokens "
                "greedy decode steps; prints the medians of --rounds rounds.")
    _add_model_args(b, positional=True)
    b.add_argument("--prompt-tokens", type=int, default=512, help="prompt length for the prefill (default: 512)")
    b.add_argument("--new-tokens", type=int, default=128, help="decode steps (default: 128)")
    b.add_argument("--rounds", type=int, default=3, help="rounds; the median is printed (default: 3)")
    b.add_argument("--busy", type=int, default=0, metavar="N",
                   help="run N busy-loop processes beside the measurement, to see speed on a busy machine (default: 0)")
    b.add_argument("-v", "--verbose", action="store_true", help="print load time to stderr")
    b.set_defaults(func=cmd_bench)

    q = command("perplexity", "perplexity of a text file, chunked as llama.cpp's llama-perplexity",
                "Perplexity of FILE: windows of --ctx tokens every --stride tokens, each on a fresh context, "
                "scoring the second half of each window (as llama-perplexity does, so the figures compare).")
    q.add_argument("file", metavar="FILE", help="a UTF-8 text file (- for stdin)")
    _add_model_args(q, ctx_default=512)
    q.add_argument("-c", "--ctx", type=int, default=512, help="window length in tokens (default: 512)")
    q.add_argument("--stride", type=int,
                   help="distance between window starts (default: --ctx, llama-perplexity's chunks)")
    q.add_argument("-v", "--verbose", action="store_true", help="print load time to stderr")
    q.set_defaults(func=cmd_perplexity)
    _add_serve(sub)

    from .cli_embed import add_parser as add_embed  # sentence embeddings with an encoder folder
    add_embed(sub)
    return p


def _stdout_gone():
    """stdout cannot take more: send what is buffered to /dev/null so the exit flush is quiet."""
    try:
        fd = os.open(os.devnull, os.O_WRONLY)
        os.dup2(fd, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def main(argv=None):
    if hasattr(signal, "SIGPIPE") and argv is None:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `ninestep run ... | head` ends as `cat` would
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except CLIError as e:
        print(f"ninestep: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        _stdout_gone()
        return 141  # 128 + SIGPIPE, what a shell reports for a writer killed by the closed pipe
    except _StdoutFailed as e:
        _stdout_gone()
        print(f"ninestep: error: writing to stdout: {e}", file=sys.stderr)
        return 1
    except (ValueError, RuntimeError, OSError) as e:  # OSError: a missing model or package, a full cache disk
        print(f"ninestep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
