"""Fuzzing harness settings and seed files.

Default: a few hundred inputs per target, seconds. Long run:
    NINESTEP_FUZZ_EXAMPLES=20000 python -m pytest tests/fuzz -q -s
(the count is per test function). Every input is written to a file (the readers take paths) and
read in-process; the last input of each target stays at tests/fuzz/last/<target> (or
$NINESTEP_FUZZ_LAST/<target>), so if the process
dies (a crash rather than an exception), `python tests/fuzz/replay.py tests/fuzz/last/<target>`
reproduces it in a fresh subprocess."""
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from ninestep.formats import write_gguf
from ninestep.tokenizer.pretokenize import bytes_to_unicode

EXAMPLES = int(os.environ.get("NINESTEP_FUZZ_EXAMPLES", "0")) or None
LAST = Path(os.environ.get("NINESTEP_FUZZ_LAST") or Path(__file__).parent / "last")


def fuzz_settings(default):
    """Hypothesis settings for one target: `default` examples, or NINESTEP_FUZZ_EXAMPLES."""
    # the default run is derandomized (the same inputs every time: no flaky CI); a long run explores
    return settings(max_examples=EXAMPLES or default, deadline=None, database=None, derandomize=EXAMPLES is None,
                    suppress_health_check=list(HealthCheck))


def tiny_gguf_model(path):
    """A complete 1-layer llama GGUF with a byte-level BPE tokenizer: every field the loader reads."""
    rng = np.random.default_rng(0)
    chars = list(bytes_to_unicode().values())
    tokens = chars + ["Ġt", "he", "Ġthe", "<|endoftext|>"]
    V, d, ff = len(tokens), 32, 64
    meta = {
        "general.architecture": "llama", "llama.block_count": 1, "llama.context_length": 64,
        "llama.embedding_length": d, "llama.feed_forward_length": ff, "llama.attention.head_count": 2,
        "llama.attention.head_count_kv": 1, "llama.attention.layer_norm_rms_epsilon": 1e-5,
        "llama.rope.freq_base": 10000.0, "tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": "smollm",
        "tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": [1] * (V - 1) + [3],
        "tokenizer.ggml.merges": ["Ġ t", "h e", "Ġt he"], "tokenizer.ggml.eos_token_id": V - 1,
        "tokenizer.ggml.bos_token_id": V - 1,
    }
    mat = lambda n, k: (rng.standard_normal((n, k)) / np.sqrt(k)).astype(np.float32)
    import ninestep
    t = {"token_embd.weight": mat(V, d), "output_norm.weight": np.ones(d, np.float32),
         "output.weight": ninestep.quantize(mat(V, d), "q8_0"),
         "blk.0.attn_norm.weight": np.ones(d, np.float32), "blk.0.ffn_norm.weight": np.ones(d, np.float16),
         "blk.0.attn_q.weight": ninestep.quantize(mat(d, d), "q4_0"),
         "blk.0.attn_k.weight": ninestep.quantize(mat(16, d), "q4_1"),
         "blk.0.attn_v.weight": mat(16, d).astype(np.float16), "blk.0.attn_output.weight": mat(d, d),
         "blk.0.ffn_gate.weight": ninestep.quantize(mat(ff, d), "q8_0"),
         "blk.0.ffn_up.weight": ninestep.quantize(mat(ff, d), "q8_0"),
         "blk.0.ffn_down.weight": ninestep.quantize(mat(d, ff), "q8_0")}
    write_gguf(path, meta, t)
    return path


@pytest.fixture(scope="session")
def gguf_seed(tmp_path_factory):
    """(file bytes, header length): mutations aim mostly at the header."""
    from ninestep.formats.gguf import GGUFFile

    path = tiny_gguf_model(tmp_path_factory.mktemp("seed") / "tiny.gguf")
    with GGUFFile(path) as f:
        return path.read_bytes(), f.data_offset
