"""Writes tests/data/tiny-{llama,qwen2,mistral}/: a tiny random HF model (config.json + f32
model.safetensors, saved by transformers) and goldens.npz with transformers' logits for a fixed
id sequence. Needs torch + transformers (never test deps):
    python3 tests/data/make_tiny_models.py

Weights are redrawn at O(1) scale (HF's init is std 0.02, zero biases, unit norms), so biases, norm
weights and RoPE all move the logits visibly and a mistake in any of them shows.
"""
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, MistralConfig, Qwen2Config

HERE = Path(__file__).parent
N_IDS = 20

COMMON = dict(num_hidden_layers=2, hidden_size=64, num_attention_heads=4, num_key_value_heads=2,
              head_dim=16, intermediate_size=128, attn_implementation="eager")
MODELS = {
    "llama": LlamaConfig(vocab_size=256, rope_theta=10000.0, rms_norm_eps=1e-5, tie_word_embeddings=False, **COMMON),
    "qwen2": Qwen2Config(vocab_size=384, rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=True, **COMMON),
    "mistral": MistralConfig(vocab_size=512, rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                             sliding_window=6, **COMMON),  # 20 ids outrun the window
}


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "norm" in name:
                p.copy_(1 + 0.2 * noise)
            elif name.endswith("bias"):
                p.copy_(0.5 * noise)
            elif p.ndim == 2 and "embed" not in name and "lm_head" not in name:
                p.copy_(noise / p.shape[1] ** 0.5)  # [out, in]: unit-variance outputs
            else:
                p.copy_(0.5 * noise)


def main():
    for i, (arch, config) in enumerate(MODELS.items()):
        gen = torch.Generator().manual_seed(1000 + i)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
        randomize(model, gen)
        out = HERE / f"tiny-{arch}"
        model.save_pretrained(out, safe_serialization=True)
        ids = torch.randint(0, config.vocab_size, (N_IDS,), generator=gen)
        with torch.no_grad():
            logits = model(ids[None]).logits[0].numpy()
        np.savez_compressed(out / "goldens.npz", ids=ids.numpy().astype(np.int32), logits=logits.astype(np.float32))
        print(arch, sorted(p.name for p in out.iterdir()), f"logit std {logits.std():.2f}")


if __name__ == "__main__":
    main()
