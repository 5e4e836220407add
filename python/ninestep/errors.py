"""Exceptions that are part of ninestep's API."""


class FormatError(ValueError):
    """A model file is damaged or unsupported. The message names the file, the field and the
    byte offset where reading went wrong."""

    def __init__(self, message, *, path=None, field=None, offset=None):
        self.path, self.field, self.offset = path, field, offset
        parts = [str(path)] if path is not None else []
        if field is not None:
            parts.append(f"field {field!r}")
        if offset is not None:
            parts.append(f"offset {offset}")
        prefix = ": ".join([", ".join(parts)]) + ": " if parts else ""
        super().__init__(prefix + message)
