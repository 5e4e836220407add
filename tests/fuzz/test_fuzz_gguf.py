"""GGUF reader fuzz: mutated copies of a complete tiny model file are read, their tensors viewed
and dequantized, and the model loaded and run. Only ValueError (FormatError) may come out."""
import collections

from hypothesis import given

from fuzz import mutate, readers
from fuzz.conftest import LAST, fuzz_settings


def test_fuzz_gguf(gguf_seed):
    seed, header = gguf_seed
    LAST.mkdir(exist_ok=True)
    target = LAST / "gguf"
    outcomes = collections.Counter()

    @fuzz_settings(150)
    @given(mutate.mutations(len(seed), header))
    def run(muts):
        target.write_bytes(mutate.apply(seed, muts))
        outcomes[readers.read_gguf(target)] += 1

    run()
    print(f"\nGGUF fuzz: {sum(outcomes.values())} inputs, {dict(outcomes)}")
    assert outcomes["rejected"] and outcomes["ran"]  # the mutations reach both ends
