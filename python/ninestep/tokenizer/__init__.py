"""Tokenizers: byte-level BPE (GPT-2, SmolLM2, Llama 3, Qwen2) and SentencePiece BPE with byte
fallback, built from GGUF metadata or an HF tokenizer.json, matching HF `tokenizers` ids."""
from .core import Tokenizer

__all__ = ["Tokenizer"]
