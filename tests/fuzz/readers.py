"""What the fuzz targets do with one input, in-process: read it the way ninestep would and use the
result (tensor views, dequantize, a model load, a short generation). Damaged input may raise
ValueError (FormatError is one); anything else escapes as a finding."""
import numpy as np

import ninestep
from ninestep.formats.gguf import GGUFFile
from ninestep.formats.safetensors import SafetensorsFile


def use_model(path):
    """Loads `path` (file or folder) and runs it: a short greedy generation from token ids, and a
    text round trip when it has a tokenizer."""
    with ninestep.load(path, n_ctx=16) as m:
        v = m.config.vocab_size
        c = m.generate([0, v - 1, v // 2], max_new_tokens=2, temperature=0, ignore_eos=True)
        assert len(c.tokens) == 2 and all(0 <= t < v for t in c.tokens)
        logits = m.logits([1, 2])
        assert logits.shape == (2, v)
        if m.tokenizer is not None:
            m.tokenizer.decode(m.tokenizer.encode("the cat"))


@np.errstate(all="ignore")  # damaged data makes NaNs and infinities; that is not an error
def read_gguf(path):
    try:
        f = GGUFFile(path)
    except ValueError:
        return "rejected"
    with f:
        for name in list(f.tensors):
            for get in (f.tensor, f.dequantize):
                try:
                    a = get(name)
                    np.asarray(a.data if hasattr(a, "data") else a).sum()  # touch the bytes
                except ValueError:
                    pass
    try:
        use_model(path)
    except ValueError:
        return "read, model rejected"
    return "ran"


@np.errstate(all="ignore")
def read_safetensors_folder(folder):
    try:
        with SafetensorsFile(folder / "model.safetensors") as f:
            for name in list(f.tensors):
                try:
                    a = f.tensor(name)
                    np.asarray(a.data if hasattr(a, "data") else a).sum()
                except ValueError:
                    pass
    except ValueError:
        return "rejected"
    try:
        use_model(folder)
    except ValueError:
        return "read, model rejected"
    return "ran"
