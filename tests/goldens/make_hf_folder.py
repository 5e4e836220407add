"""Converts the SmolLM2 GGUF to an HF folder (config.json, model.safetensors, tokenizer) and writes
transformers' logits on that folder for a short text to tests/goldens/smollm2_hf_<dtype>_goldens.npz.

The folder is big (~540 MB f32, ~270 MB bf16) and is never committed; tests that want it read its
path from NINESTEP_HF_FOLDER (f32) / NINESTEP_HF_FOLDER_BF16. Its Q/K rows are in HF order (transformers
un-permutes them when it reads a GGUF), so RoPE rotates (i, i + d/2) pairs. Needs torch, transformers,
gguf, accelerate (never test deps):
    python3 tests/goldens/make_hf_folder.py /tmp/smollm2-hf [--dtype bfloat16]
"""
import argparse
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from load_gguf_for_reference import smollm2_path
from metrics import topk_goldens

HERE = Path(__file__).parent
TEXT = ("<|im_start|>user\nWrite one sentence about the sea.<|im_end|>\n<|im_start|>assistant\n"
        "The sea covers 71% of the planet, and its tides follow the Moon.")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    args = ap.parse_args()

    path = smollm2_path()
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=getattr(torch, args.dtype))
    # the weights are already dequantized; drop the GGUF "quantizer" so save_pretrained accepts them
    model.hf_quantizer = None
    del model.config.quantization_config
    model.save_pretrained(args.folder, safe_serialization=True)
    tok.save_pretrained(args.folder)

    # Goldens from the folder as saved, computed in f32 (what ninestep does with bf16 weights too).
    model = AutoModelForCausalLM.from_pretrained(args.folder, dtype=torch.float32, attn_implementation="eager").eval()
    ids = AutoTokenizer.from_pretrained(args.folder)(TEXT, add_special_tokens=False).input_ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].double().numpy()
    out = HERE / f"smollm2_hf_{args.dtype}_goldens.npz"
    np.savez_compressed(out, ids=np.array(ids, np.int32), **topk_goldens(logits))
    print(f"folder {args.folder}, {len(ids)} tokens -> {out}")


if __name__ == "__main__":
    main()
