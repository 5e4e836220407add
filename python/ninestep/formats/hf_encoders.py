"""HF tensor names of BERT (BertModel) and GPT-2 checkpoints -> llama.cpp's GGUF names.

BERT: embeddings.{word,position,token_type}_embeddings -> token_embd / position_embd / token_types,
embeddings.LayerNorm -> token_embd_norm; per layer attention.self.{query,key,value} -> attn_q/k/v,
attention.output.dense -> attn_output, attention.output.LayerNorm -> attn_output_norm,
intermediate.dense -> ffn_up, output.dense -> ffn_down, output.LayerNorm -> layer_output_norm.
A `bert.` prefix (BertFor... checkpoints) is dropped; pooler and heads keep their HF names.

GPT-2: wte / wpe -> token_embd / position_embd, h.N.ln_1 -> attn_norm, attn.c_attn -> attn_qkv
(fused [3 d_model, d_model], q then k then v), attn.c_proj -> attn_output, ln_2 -> ffn_norm,
mlp.c_fc -> ffn_up, mlp.c_proj -> ffn_down, ln_f -> output_norm, lm_head -> output. GPT-2's
Conv1D stores its weights [in, out]: they are transposed (copied) to [out, in] here.
"""
import re

import numpy as np

from ..tensor import QuantizedTensor

_BERT_TOP = {
    "embeddings.word_embeddings.weight": "token_embd.weight",
    "embeddings.position_embeddings.weight": "position_embd.weight",
    "embeddings.token_type_embeddings.weight": "token_types.weight",
    "embeddings.LayerNorm.weight": "token_embd_norm.weight", "embeddings.LayerNorm.bias": "token_embd_norm.bias",
}
_BERT_LAYER = {
    "attention.self.query": "attn_q", "attention.self.key": "attn_k", "attention.self.value": "attn_v",
    "attention.output.dense": "attn_output", "attention.output.LayerNorm": "attn_output_norm",
    "intermediate.dense": "ffn_up", "output.dense": "ffn_down", "output.LayerNorm": "layer_output_norm",
}
_BERT_RE = re.compile(r"encoder\.layer\.(\d+)\.(.+)\.(weight|bias)")

_GPT2_TOP = {"wte.weight": "token_embd.weight", "wpe.weight": "position_embd.weight",
             "ln_f.weight": "output_norm.weight", "ln_f.bias": "output_norm.bias"}
_GPT2_LAYER = {"ln_1": "attn_norm", "attn.c_attn": "attn_qkv", "attn.c_proj": "attn_output", "ln_2": "ffn_norm",
               "mlp.c_fc": "ffn_up", "mlp.c_proj": "ffn_down"}
_GPT2_CONV1D = {"attn_qkv", "attn_output", "ffn_up", "ffn_down"}
_GPT2_RE = re.compile(r"h\.(\d+)\.(.+)\.(weight|bias)")


def bert_name(hf):
    """-> GGUF name or None."""
    hf = hf.removeprefix("bert.")
    if hf in _BERT_TOP:
        return _BERT_TOP[hf]
    m = _BERT_RE.fullmatch(hf)
    if m and m.group(2) in _BERT_LAYER:
        return f"blk.{int(m.group(1))}.{_BERT_LAYER[m.group(2)]}.{m.group(3)}"
    return None


def gpt2_name(hf):
    """-> (GGUF name or None, whether the weight is a Conv1D one to transpose)."""
    if hf == "lm_head.weight":
        return "output.weight", False
    hf = hf.removeprefix("transformer.")
    if hf in _GPT2_TOP:
        return _GPT2_TOP[hf], False
    m = _GPT2_RE.fullmatch(hf)
    if m and m.group(2) in _GPT2_LAYER:
        short = _GPT2_LAYER[m.group(2)]
        return f"blk.{int(m.group(1))}.{short}.{m.group(3)}", short in _GPT2_CONV1D and m.group(3) == "weight"
    return None, False


def transposed(t, name):
    """A 2-d tensor [in, out] (float array or bf16 QuantizedTensor) as a C-contiguous [out, in] copy."""
    if isinstance(t, QuantizedTensor):
        if t.kind != "bf16":
            raise ValueError(f"{name}: cannot transpose a {t.kind} tensor")
        return QuantizedTensor.from_bf16(np.ascontiguousarray(t.data.view(np.uint16).reshape(t.shape).T))
    if t.ndim != 2:
        raise ValueError(f"{name}: a Conv1D weight should be 2-d, got shape {t.shape}")
    return np.ascontiguousarray(t.T)


def map_tensor(model_type, hf, st, default_name):
    """(name in the folder's tensor dict, tensor view or copy) for tensor `hf` of SafetensorsFile `st`."""
    if model_type == "bert":
        return bert_name(hf) or hf, st.tensor(hf)
    if model_type == "gpt2":
        name, conv = gpt2_name(hf)
        t = st.tensor(hf)
        return name or hf, transposed(t, hf) if conv else t
    return default_name(hf) or hf, st.tensor(hf)
