"""Makes the tiny Hugging Face model folders the safetensors tests read (committed output).

    python3 tests/data/make_tiny_hf.py

Uses transformers + torch + tokenizers (never test dependencies): a random llama (bf16, tied
embeddings, one model.safetensors) and a random qwen2 (fp16, untied, q/k/v biases, sharded with
an index), each saved with save_pretrained next to a small ChatML tokenizer, plus golden.json:
for every tensor its shape, dtype, float64 sum and first values, as torch sees them.
"""
import json
import os

import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def tokenizer(vocab_size):
    letters = [chr(ord("a") + i) for i in range(min(26, vocab_size - len(SPECIALS)))]
    vocab = {t: i for i, t in enumerate(SPECIALS + letters)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.add_special_tokens(SPECIALS)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   unk_token="<|endoftext|>")


def save(name, model, vocab_size, **kwargs):
    out = os.path.join(HERE, name)
    model.save_pretrained(out, safe_serialization=True, **kwargs)
    tokenizer(vocab_size).save_pretrained(out)
    golden = {n: {"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch."),
                  "sum": float(t.double().sum()), "first": t.reshape(-1)[:4].float().tolist()}
              for n, t in model.state_dict().items()
              if not (n == "lm_head.weight" and model.config.tie_word_embeddings)}
    with open(os.path.join(out, "golden.json"), "w") as f:
        json.dump(golden, f, indent=1, sort_keys=True)


def main():
    torch.manual_seed(0)
    llama = LlamaConfig(vocab_size=96, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                        rope_theta=100000.0, rms_norm_eps=1e-5, tie_word_embeddings=True,
                        bos_token_id=1, eos_token_id=2)
    save("tiny_llama", LlamaForCausalLM(llama).to(torch.bfloat16), 96)
    qwen = Qwen2Config(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=256,
                       rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                       bos_token_id=0, eos_token_id=2)
    save("tiny_qwen2", Qwen2ForCausalLM(qwen).to(torch.float16), 64, max_shard_size="20KB")


if __name__ == "__main__":
    main()
