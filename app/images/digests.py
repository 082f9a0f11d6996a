"""Content digests: what a blob or manifest is called, checked while its bytes stream past."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class HashingReader:
    """A file-like view of ``chunks`` for an HTTP body: counts and hashes what is read, so the
    copy knows it sent exactly the blob it named."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._current = b""
        self._offset = 0
        self._hash = hashlib.sha256()
        self.sent = 0

    def read(self, size: int = -1, /) -> bytes:
        """Up to ``size`` bytes (all that is left for -1); b"" at the end."""
        parts: list[bytes] = []
        wanted = size if size >= 0 else None
        while wanted is None or wanted > 0:
            if self._offset >= len(self._current):
                self._current, self._offset = next(self._chunks, b""), 0
                if not self._current:
                    break
            end = len(self._current) if wanted is None else self._offset + wanted
            part = self._current[self._offset:end]
            self._offset += len(part)
            parts.append(part)
            if wanted is not None:
                wanted -= len(part)
        data = b"".join(parts)
        self._hash.update(data)
        self.sent += len(data)
        return data

    @property
    def digest(self) -> str:
        return "sha256:" + self._hash.hexdigest()
