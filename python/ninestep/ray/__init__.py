"""Batch jobs on Ray Data: callable classes for `Dataset.map_batches`, one model per actor.

    import ray
    from ninestep.ray import Generate

    ds = ray.data.read_parquet("prompts.parquet")            # a "prompt" column of str
    out = ds.map_batches(Generate, fn_constructor_args=("smollm2-135m",),
                         fn_constructor_kwargs={"max_new_tokens": 64, "temperature": 0},
                         batch_size=64, num_cpus=1, compute=ray.data.ActorPoolStrategy(size=2))
    out.write_parquet("completions/")                       # + "completion", "finish_reason", ...

Each actor loads the model once, in its constructor (memory-mapped, so the actors of one node share
the file's pages), runs `n_threads` = the CPUs Ray gave it (`num_cpus`), and decodes the rows of a
batch together through the multi-sequence engine. `Embed` does the same for an encoder folder's
`embed()`. Needs `pip install "ninestep[ray]"`.

Leave the reads room: an actor pool that holds every CPU of the cluster leaves none for the read
tasks (seen with Ray 2.60: read_parquet + 2 actors x 1 CPU on a 2-CPU cluster waited with no end),
so `materialize()` the input first or keep the pool's CPUs below the cluster's.
"""
try:
    import ray as _ray  # noqa: F401  (the top-level Ray package: absolute import)
    import ray.data as _ray_data  # noqa: F401
except ImportError as e:  # Ray absent, or Ray without its Data extra (pyarrow, pandas)
    raise ImportError(f'ninestep.ray needs Ray Data ({e}): pip install "ninestep[ray]"') from e

from .embed import Embed  # noqa: E402
from .generate import Generate  # noqa: E402

__all__ = ["Embed", "Generate"]
