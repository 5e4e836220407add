"""Makes tests/data/tiny-bert and tests/data/tiny-gpt2 (committed output).

    python3 tests/data/make_tiny_encoders.py

Uses transformers + torch + tokenizers + sentence-transformers (never test dependencies):

tiny-bert: a random BertModel (vocab ~500, hidden 32, 2 layers, 4 heads, FFN 64, 64 positions,
  2 token types, LayerNorm weights and biases randomised) saved with save_pretrained, a WordPiece
  tokenizer.json trained on SENTENCES (BertNormalizer, BertPreTokenizer, [CLS] $A [SEP]) and the
  sentence-transformers files (modules.json, 1_Pooling, 2_Normalize; max_seq_length 24, so that
  truncation is exercised, lands in tokenizer_config.json's model_max_length: the format
  sentence-transformers 6 writes), written by SentenceTransformer.save.
  goldens.npz: ids [n, 64] (-1 padded, as sentence-transformers tokenizes), hidden [n, 64, 32]
  (BertModel last_hidden_state of each sentence alone, token types 0), hidden_tt (token types
  alternating 0/1), emb_<mode> [n, 32] sentence-transformers embeddings for each pooling mode
  (mean+Normalize is the folder's own; the others are unnormalised).
tiny-gpt2: a random GPT2LMHeadModel (vocab 300, n_embd 32, 2 layers, 4 heads, 64 positions,
  gelu_new, tied head), saved with save_pretrained, a byte-level BPE tokenizer.json trained on
  SENTENCES. goldens.npz: ids [k, 20], logits [k, 20, 300], last hidden states hidden [k, 20, 32].
"""
import json
import os

import numpy as np
import torch
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

HERE = os.path.dirname(os.path.abspath(__file__))
SENTENCES = [
    "A man is eating food.", "The girl is carrying a baby.", "Café au lait and crème brûlée!",
    "東京は日本の首都です。", "The price rose from $3.50 to $1,299.99 on 2024-02-29.",
    "I can't believe it's not butter; they've said you're wrong.", "hi", "Why?",
    "Supercalifragilisticexpialidocious words are unknown: zxqvbnm.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief.",
    "Sentence embeddings map text to vectors so that similar meanings are close together.",
    "The cat sat on the mat.", "def f(x): return x * 2  # code", "Müller, Straße, Ärger, Öl.",
]
POOLINGS = ["mean", "cls", "lasttoken", "max", "mean_sqrt_len_tokens", "weightedmean"]


def bert_tokenizer():
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", max_input_chars_per_word=30))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(SENTENCES * 4, trainers.WordPieceTrainer(vocab_size=500, special_tokens=specials))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.decoder = decoders.WordPiece()
    return tok


def randomise_norms(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name or "ln_" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn_like(p))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn_like(p))


def make_bert():
    out = os.path.join(HERE, "tiny-bert")
    tok = bert_tokenizer()
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=64, type_vocab_size=2, hidden_act="gelu",
                        layer_norm_eps=1e-12, initializer_range=0.2, pad_token_id=0)
    bert = BertModel(config, add_pooling_layer=False).eval()
    randomise_norms(bert)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                   pad_token="[PAD]", mask_token="[MASK]")
    stage = os.path.join(out, "_hf")
    bert.save_pretrained(stage, safe_serialization=True)
    fast.save_pretrained(stage)
    st = SentenceTransformer(modules=[Transformer(stage, max_seq_length=24), Pooling(32, "mean"), Normalize()],
                             device="cpu")
    st.save(out)
    for f in os.listdir(stage):
        os.remove(os.path.join(stage, f))
    os.rmdir(stage)
    os.remove(os.path.join(out, "README.md"))  # the generated model card

    feats = st.tokenize(SENTENCES)
    ids = np.full((len(SENTENCES), 64), -1, dtype=np.int32)
    for i, (row, mask) in enumerate(zip(feats["input_ids"], feats["attention_mask"])):
        r = row[mask.bool()].numpy()
        ids[i, :len(r)] = r
    full = [tok.encode(s).ids for s in SENTENCES]  # untruncated, for the hidden states
    hidden = np.zeros((len(SENTENCES), 64, 32), np.float32)
    hidden_tt = np.zeros_like(hidden)
    full_ids = np.full((len(SENTENCES), 64), -1, dtype=np.int32)
    with torch.no_grad():
        for i, f in enumerate(full):
            f = f[:64]
            full_ids[i, :len(f)] = f
            x = torch.tensor([f])
            hidden[i, :len(f)] = bert(input_ids=x).last_hidden_state[0].numpy()
            tt = torch.tensor([[j % 2 for j in range(len(f))]])
            hidden_tt[i, :len(f)] = bert(input_ids=x, token_type_ids=tt).last_hidden_state[0].numpy()
    embs = {"emb_mean_normalized": st.encode(SENTENCES, convert_to_numpy=True)}
    for mode in POOLINGS:
        m = SentenceTransformer(modules=[st[0], Pooling(32, mode)], device="cpu")
        embs["emb_" + mode] = m.encode(SENTENCES, convert_to_numpy=True)
    np.savez_compressed(os.path.join(out, "goldens.npz"), sentences=np.array(SENTENCES), ids=ids, full_ids=full_ids,
                        hidden=hidden, hidden_tt=hidden_tt, **{k: v.astype(np.float32) for k, v in embs.items()})


def make_gpt2():
    out = os.path.join(HERE, "tiny-gpt2")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(SENTENCES * 4, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    n_vocab = tok.get_vocab_size()
    config = GPT2Config(vocab_size=n_vocab, n_positions=64, n_embd=32, n_layer=2, n_head=4, n_inner=None,
                        activation_function="gelu_new", layer_norm_epsilon=1e-5, initializer_range=0.2,
                        bos_token_id=0, eos_token_id=0, tie_word_embeddings=True)
    gpt2 = GPT2LMHeadModel(config).eval()
    randomise_norms(gpt2)
    gpt2.save_pretrained(out, safe_serialization=True)
    PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                            unk_token="<|endoftext|>").save_pretrained(out)
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, n_vocab, (4, 20), generator=g)
    with torch.no_grad():
        r = gpt2(input_ids=ids, output_hidden_states=True)
    np.savez_compressed(os.path.join(out, "goldens.npz"), ids=ids.numpy().astype(np.int32),
                        logits=r.logits.numpy().astype(np.float32),
                        hidden=r.hidden_states[-1].numpy().astype(np.float32))


def main():
    torch.manual_seed(0)
    make_bert()
    make_gpt2()
    for name in ("tiny-bert", "tiny-gpt2"):
        folder = os.path.join(HERE, name)
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(folder) for f in fs)
        print(name, sorted(os.listdir(folder)), f"{size / 1e3:.0f} KB")
        with open(os.path.join(folder, "config.json")) as f:
            print(" ", json.load(f).get("architectures"))


if __name__ == "__main__":
    main()
