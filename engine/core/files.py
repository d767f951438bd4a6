"""Opening files that may be hostile, and showing text that came from them.

Guarantees:
- `open_regular(path)` never blocks and never reads: the path is checked with `stat` first,
  and only a regular file is opened (a FIFO, a device, a socket or a directory is refused
  with its kind named); the file is opened non-blocking and checked again by `fstat`, so a
  file swapped for a FIFO in between cannot hang the caller either.
- `read_regular(path, limit)` also refuses a file larger than `limit` bytes before reading
  it, and reads at most `limit + 1` bytes, so a file that grows while it is read, or a
  /proc file that says it is empty, cannot slip past the limit.
- Every refusal is a `FileRefused` (a ValueError) whose message is the reason alone ("is a
  FIFO, not a regular file"); callers put the path and what they wanted in front. Operating
  system errors (no such file, permission, a symlink loop) stay `OSError`s; a NUL byte or an
  unencodable character in the path is a FileRefused.
- `shown(text)` is `text` made safe to print on a terminal: control characters (escape
  sequences, newlines, carriage returns), format characters (bidirectional overrides) and
  lone surrogates are written as Python escapes (`\\x1b`, `\\n`, `\\u202e`, `\\ud800`), so
  a file name, a CSV header or a label can neither drive the terminal nor split a line.

Pure: no torch, no numpy.
"""

from __future__ import annotations

import os
import stat
from typing import BinaryIO

_KINDS = ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
          (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISDIR, "a directory"))


class FileRefused(ValueError):
    """A path dprog will not read: its message is the reason, without the path."""


def file_kind(mode: int) -> str | None:
    """What a non-regular file is ("a FIFO"); None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _stat(path: str | os.PathLike) -> os.stat_result:
    try:
        return os.stat(path)
    except ValueError as e:   # a NUL byte, or a lone surrogate that no file name can hold
        raise FileRefused(f"cannot be used as a file name ({e})") from None


def open_regular(path: str | os.PathLike, limit: int | None = None) -> BinaryIO:
    """`path` opened for binary reading, once it is known to be a regular file (of at most
    `limit` bytes when given). The caller closes it."""
    before = _stat(path)
    kind = file_kind(before.st_mode)
    if kind is not None:
        raise FileRefused(f"is {kind}, not a regular file")
    if limit is not None and before.st_size > limit:
        raise FileRefused(f"is larger than {size_text(limit)} ({before.st_size:,} bytes)")
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        now = os.fstat(fd)
        kind = file_kind(now.st_mode)
        if kind is not None:   # swapped between the stat and the open
            raise FileRefused(f"is {kind}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int) -> bytes:
    """The bytes of a regular file of at most `limit` bytes (see the module docstring)."""
    with open_regular(path, limit) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise FileRefused(f"is larger than {size_text(limit)}")
    return data


def size_text(n: int) -> str:
    """1 << 26 -> '64 MiB'."""
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            value = n / (1 << shift)
            return f"{value:.3g} {unit}" if value != int(value) else f"{int(value)} {unit}"
    return f"{n} bytes"


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(c: str) -> str:
    n = ord(c)
    if c in _NAMED:
        return _NAMED[c]
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def shown(text: object) -> str:
    """`str(text)` with every character a terminal would act on, or could not encode,
    escaped (see the module docstring). Printable text, any script, is unchanged."""
    text = str(text)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)
