"""Atomic file writes: a temporary file in the target's folder, fsync, then rename, so a crash
never leaves a half-written checkpoint, figure, metrics file or data file behind.

The temporary file is created with mode 0o666 and ``O_EXCL``, so the kernel applies the user's
umask exactly as for a file opened normally (``tempfile.mkstemp`` would make it 0o600).
"""
from __future__ import annotations

import json
import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Iterator


@contextmanager
def atomic_open(path: str | Path) -> Iterator[BinaryIO]:
    """``with atomic_open(path) as f: f.write(...)``: ``path`` appears whole or not at all.

    The parent directory is created; on any error inside the block the temporary file is
    removed and an existing ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.part")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    with atomic_open(path) as f:
        f.write(data)


def atomic_write_json(path: str | Path, obj: Any) -> None:
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def replace_between(path: str | Path, start: str, end: str, text: str) -> None:
    """Rewrite, atomically, what lies between the first ``start`` marker of a text file and the
    first ``end`` marker after it (both kept): how the README's generated tables (figures,
    benchmark) are refreshed without touching the prose around them."""
    path = Path(path)
    content = path.read_text()
    head, found, rest = content.partition(start)
    _, found_end, tail = rest.partition(end)
    if not (found and found_end):
        raise ValueError(f"{path} has no {start} ... {end} section to refresh")
    atomic_write_bytes(path, (head + start + text + end + tail).encode())
