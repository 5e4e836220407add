"""The parts of a Ray Data batch the callables need, in any batch format: a dict of NumPy arrays
(batch_format "default"/"numpy"), a pandas DataFrame ("pandas") or a pyarrow Table ("pyarrow")."""
import math
import os

import numpy as np


def column_name(v, name):
    if not isinstance(v, str) or not v:
        raise ValueError(f"{name}: expected a non-empty column name (str), got {v!r}")
    return v


def columns(batch):
    """The batch's column names, in order."""
    if isinstance(batch, dict):
        return list(batch)
    if hasattr(batch, "column_names"):  # pyarrow.Table
        return list(batch.column_names)
    if hasattr(batch, "columns") and hasattr(batch, "iloc"):  # pandas.DataFrame
        return [str(c) for c in batch.columns]
    raise TypeError(f"batch: expected a dict of NumPy arrays, a pandas DataFrame or a pyarrow Table "
                    f"(map_batches' batch formats), got {type(batch).__name__}")


def n_rows(batch):
    if isinstance(batch, dict):
        return len(next(iter(batch.values()))) if batch else 0
    return batch.num_rows if hasattr(batch, "num_rows") else len(batch)


def _missing(v):
    return v is None or (isinstance(v, float) and math.isnan(v)) or type(v).__name__ in ("NAType", "NaTType")


def texts(batch, name, arg):
    """The str values of column `name` (argument `arg` named it): ValueError naming the column and
    the columns present when it is absent, and the row when a value is not a str."""
    have = columns(batch)
    if name not in have:
        raise ValueError(f"{arg}: the batch has no column {name!r}; its columns: {', '.join(map(repr, have)) or 'none'}")
    col = batch[name]
    if hasattr(col, "to_pylist"):  # pyarrow ChunkedArray
        values = col.to_pylist()
    elif isinstance(col, np.ndarray):
        values = col.tolist() if col.ndim == 1 else [col[i] for i in range(len(col))]
    else:  # pandas Series
        values = list(col)
    for i, v in enumerate(values):
        if not isinstance(v, str):
            what = "a missing value (null)" if _missing(v) else f"{type(v).__name__} {_short(v)}"
            raise ValueError(f"{name}: row {i} of this batch is {what}, not a str")
    return values


def _short(v):
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def check_free(batch, names):
    """ValueError when one of the output columns `names` is already in the batch."""
    have = columns(batch)
    clash = [k for k in names if k in have]
    if clash:
        raise ValueError(f"output column {clash[0]!r} is already in the batch (its columns: "
                         f"{', '.join(map(repr, have))}): pick another name (output_column=...)")


def with_columns(batch, new):
    """`batch` (same format) with the columns of `new` (name -> NumPy array of one value per row;
    a 2-d array is one vector per row) added."""
    check_free(batch, new)
    if isinstance(batch, dict):
        return {**batch, **new}
    if hasattr(batch, "append_column"):  # pyarrow.Table
        import pyarrow as pa

        for k, v in new.items():
            if v.ndim == 2:
                arr = pa.FixedSizeListArray.from_arrays(pa.array(v.reshape(-1)), v.shape[1])
            else:
                arr = pa.array(v.tolist() if v.dtype == object else v)
            batch = batch.append_column(k, arr)
        return batch
    out = batch.copy(deep=False)
    for k, v in new.items():
        out[k] = list(v) if v.ndim == 2 else v
    return out


def assigned_cpus():
    """The CPUs Ray assigned to this actor or task (at least 1), else the CPUs this process may use."""
    try:
        import ray

        if ray.is_initialized():
            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
            if cpus:
                return max(1, int(cpus))
    except Exception:  # outside a worker, an old Ray: the process's own CPUs
        pass
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1
