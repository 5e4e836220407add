"""A read-only memory-mapped file whose views outlive close() while someone holds them."""
import mmap
import os

import numpy as np

from .._checks import path_arg
from ..errors import FormatError


class MappedFile:
    def __init__(self, path, min_size, what):
        """Maps `path` (FileNotFoundError if missing; FormatError if under min_size bytes), then
        calls self._parse(size); the map is closed again if parsing fails."""
        self.path = path_arg(path)
        self._mm = None
        with open(self.path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < min_size:
                raise FormatError(f"truncated: {size} bytes, the {what} alone needs {min_size}",
                                  path=self.path, field=what, offset=0)
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        try:
            self._bytes = np.frombuffer(self._mm, dtype=np.uint8)
            self._parse(size)
        except BaseException:
            self.close()
            raise

    def _parse(self, size):
        raise NotImplementedError

    def close(self):
        self._bytes = None
        if self._mm is not None:
            try:
                self._mm.close()
            except BufferError:
                pass  # views handed out still use the map; it closes when the last one goes
            self._mm = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
