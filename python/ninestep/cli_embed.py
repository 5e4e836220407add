"""`ninestep embed -m FOLDER [FILE|-]`: one text per input line -> one JSON array per line (or .npy)."""
import json
import sys


def add_parser(sub):
    e = sub.add_parser("embed", help="sentence embeddings of the lines of FILE (or stdin) with an encoder folder")
    e.add_argument("file", nargs="?", default="-", help="text file, one text per line (default or '-': stdin)")
    e.add_argument("-m", "--model", required=True, help="a BERT / sentence-transformers folder (e.g. all-MiniLM-L6-v2)")
    e.add_argument("-o", "--output", help="write here instead of stdout; a name ending in .npy gets a float32 array")
    e.add_argument("-b", "--batch-size", type=int, default=32, help="texts per forward pass (default 32)")
    e.add_argument("--normalize", dest="normalize", action="store_const", const=True, default=None,
                   help="L2-normalise (default: as the folder's modules.json says)")
    e.add_argument("--no-normalize", dest="normalize", action="store_const", const=False)
    e.add_argument("--no-truncate", action="store_true", help="refuse texts over max_seq_length instead of cutting them")
    e.add_argument("-q", "--quiet", action="store_true", help="no progress line on stderr")
    e.add_argument("-t", "--threads", type=int, help="threads (default: the cores this process may use)")
    e.set_defaults(func=cmd_embed)


def _read_lines(name):
    if name == "-":
        return sys.stdin.read().splitlines()
    with open(name, encoding="utf-8") as f:
        return f.read().splitlines()


def cmd_embed(a):
    import numpy as np

    import ninestep
    from ninestep.encoder import EncoderModel

    lines = _read_lines(a.file)
    if not lines:
        raise ValueError(f"{a.file}: no lines to embed")
    empty = next((i for i, t in enumerate(lines) if not t.strip()), None)
    if empty is not None:
        raise ValueError(f"{a.file}: line {empty + 1} is empty (one text per line)")
    model = ninestep.load(a.model, n_threads=a.threads)
    if not isinstance(model, EncoderModel):
        raise ValueError(f"{a.model}: is a {model.config.architecture} decoder, not an encoder (BERT) folder")
    with model:
        e = model.embed(lines, batch_size=a.batch_size, normalize=a.normalize, truncate=not a.no_truncate,
                        progress=not a.quiet)
    if a.output and a.output.endswith(".npy"):
        np.save(a.output, e)
        return 0
    out = open(a.output, "w", encoding="utf-8") if a.output else sys.stdout
    try:
        for row in e.tolist():
            out.write(json.dumps(row) + "\n")
    finally:
        if out is not sys.stdout:
            out.close()
    return 0
