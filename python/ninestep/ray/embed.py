"""Embed: sentence embeddings over a column of texts, for `Dataset.map_batches`."""
import numpy as np

from .batch import assigned_cpus, check_free, column_name, texts, with_columns


class Embed:
    """Adds an embedding to every row: `ds.map_batches(Embed, fn_constructor_args=(folder,),
    batch_size=256, num_cpus=C, compute=ray.data.ActorPoolStrategy(size=N))`.

    model_folder: an encoder folder (all-MiniLM-L6-v2 and the like) that `ninestep.load` reads as an
    EncoderModel; loaded once per actor. The output column holds float32 vectors of the model's
    dim (a 2-d array in a NumPy batch, one array per row in pandas, a fixed-size list in pyarrow).
    normalize, batch_size (texts per forward pass) and truncate are `EncoderModel.embed`'s.
    n_threads: None = the CPUs Ray assigned to this actor, else the CPUs this process may use."""

    def __init__(self, model_folder, *, text_column="text", output_column="embedding", normalize=None,
                 batch_size=32, truncate=True, n_threads=None):
        import ninestep
        from .._checks import flag, positive_int

        self.text_column = column_name(text_column, "text_column")
        self.output_column = column_name(output_column, "output_column")
        self.kwargs = dict(batch_size=positive_int(batch_size, "batch_size"), truncate=flag(truncate, "truncate"),
                           normalize=None if normalize is None else flag(normalize, "normalize"))
        if model_folder is None:
            raise ValueError("model_folder: expected an encoder folder (e.g. all-MiniLM-L6-v2), got None")
        self.n_threads = assigned_cpus() if n_threads is None else positive_int(n_threads, "n_threads")
        self.model = ninestep.load(model_folder, n_threads=self.n_threads)
        if not hasattr(self.model, "embed"):
            self.model.close()
            raise ValueError(f"model_folder: {self.model.path} is a decoder, not an encoder: use ninestep.ray.Generate for it")
        self.dim = self.model.dim

    def __repr__(self):
        return (f"Embed({str(self.model.path)!r}, {self.text_column!r} -> {self.output_column!r}, dim {self.dim}, "
                f"n_threads {self.n_threads})")

    def __call__(self, batch):
        values = texts(batch, self.text_column, "text_column")
        check_free(batch, (self.output_column,))
        for i, t in enumerate(values):
            if not t.strip():
                raise ValueError(f"{self.text_column}: row {i} of this batch is empty or only whitespace (nothing to embed)")
        if values:
            vectors = self.model.embed(values, **self.kwargs)
        else:
            vectors = np.empty((0, self.dim), dtype=np.float32)
        return with_columns(batch, {self.output_column: vectors})
