"""safetensors fuzz: a copy of the tiny HF llama folder with its model.safetensors mutated (mostly in
the JSON header) or its config.json values replaced, read and run. Only ValueError may come out."""
import collections
import json
import shutil
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from fuzz import mutate, readers
from fuzz.conftest import LAST, fuzz_settings

SEED = Path(__file__).parent.parent / "data" / "tiny-llama"  # f32 weights, no tokenizer
ST = (SEED / "model.safetensors").read_bytes()
HEADER = 8 + int.from_bytes(ST[:8], "little")
ENTRIES = json.loads(ST[8:HEADER])
CONFIG = json.loads((SEED / "config.json").read_text())

json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-2**64, 2**64), st.floats(),
                                     st.text(max_size=8)),
                           lambda v: st.lists(v, max_size=3) | st.dictionaries(st.text(max_size=8), v, max_size=3),
                           max_leaves=6)


def _with_header(entries):
    """The seed's data under a new JSON header."""
    h = json.dumps(entries).encode()
    return len(h).to_bytes(8, "little") + h + ST[HEADER:]


# Edits of one header entry's field: plausible numbers around the real ones and arbitrary JSON.
field_edits = st.tuples(st.sampled_from(sorted(ENTRIES)), st.sampled_from(["dtype", "shape", "data_offsets"]),
                        st.one_of(json_values, st.sampled_from(["F32", "F16", "BF16", "I8", "F64", "U8", "Q4"]),
                                  st.lists(st.integers(-1, 2**64), max_size=3)))


def _folder():
    LAST.mkdir(exist_ok=True)
    folder = LAST / "hf_folder"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(SEED, folder, ignore=shutil.ignore_patterns("golden*"))
    return folder


def test_fuzz_safetensors_file():
    folder, outcomes = _folder(), collections.Counter()

    @fuzz_settings(100)
    @given(st.one_of(mutate.mutations(len(ST), HEADER).map(lambda m: ("bytes", m)),
                     st.lists(field_edits, min_size=1, max_size=3).map(lambda e: ("header", e))))
    def run(case):
        kind, edits = case
        if kind == "bytes":
            data = mutate.apply(ST, edits)
        else:
            entries = json.loads(json.dumps(ENTRIES))
            for name, field, value in edits:
                if isinstance(entries[name], dict):
                    entries[name][field] = value
            data = _with_header(entries)
        (folder / "model.safetensors").write_bytes(data)
        outcomes[readers.read_safetensors_folder(folder)] += 1

    run()
    print(f"\nsafetensors fuzz: {sum(outcomes.values())} inputs, {dict(outcomes)}")
    assert outcomes["rejected"] and outcomes["ran"]


def test_fuzz_hf_config():
    folder, outcomes = _folder(), collections.Counter()

    @fuzz_settings(100)
    @given(st.dictionaries(st.sampled_from(sorted(CONFIG)), json_values, min_size=1, max_size=3),
           st.lists(st.sampled_from(sorted(CONFIG)), max_size=2))
    def run(changed, dropped):
        cfg = {k: v for k, v in dict(CONFIG, **changed).items() if k not in dropped}
        (folder / "config.json").write_text(json.dumps(cfg))
        outcomes[readers.read_safetensors_folder(folder)] += 1

    run()
    print(f"\nconfig.json fuzz: {sum(outcomes.values())} inputs, {dict(outcomes)}")
    assert outcomes["read, model rejected"] and outcomes["ran"]
