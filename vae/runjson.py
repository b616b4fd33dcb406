"""Reading the files of a run folder safely: regular files only, size-capped, strict JSON.

    data = read_regular(path, MAX_JSON_BYTES)   # bytes; a FIFO, folder or device is refused
    obj = parse_json(data, "config.json")       # UTF-8, no duplicate keys, bounded nesting
    obj = read_json_object(path)                # both, and the top level must be an object
    recs = read_jsonl(path)                     # the complete object lines of a log

A run folder may come from a stranger (an uploaded zip), so nothing here trusts it: a file is
opened without blocking and checked to be a regular file before a byte is read, its size is
bounded before it is parsed, and every failure is a `RecordError` whose message names the file
inside the run folder, never a path on the server. Nothing here imports torch or Streamlit.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import IO, Any

from vae.errors import ExplorerError

MAX_CONFIG_BYTES = 1 << 20  # config.json
MAX_JSON_BYTES = 4 << 20  # metrics.json and the other JSON files of a run
MAX_LOG_BYTES = 64 << 20  # metrics.jsonl, steps.jsonl (one line per 20 steps: ~300k lines)
MAX_DEPTH = 20  # nesting of objects and arrays (a run's files use 4)
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


class RecordError(ExplorerError, ValueError):
    """A run folder's file is missing, unreadable, malformed or of the wrong kind."""


def os_reason(e: OSError) -> str:
    """An OSError's reason without the file name it carries (which may be a server path)."""
    return (e.strerror or type(e).__name__).lower()


def open_regular(path: str | os.PathLike, limit: int, name: str | None = None) -> IO[bytes]:
    """`path` opened for reading, once it is known to be a regular file of at most `limit`
    bytes. Opened non-blocking, so a FIFO never hangs the caller. Raises RecordError."""
    name = name or Path(path).name
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise RecordError(f"{name} does not exist") from None
    except IsADirectoryError:
        raise RecordError(f"{name} is a folder, not a file") from None
    except OSError as e:
        raise RecordError(f"{name} cannot be opened: {os_reason(e)}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise RecordError(f"{name} is a folder, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise RecordError(f"{name} is not a regular file (a pipe, socket or device)")
        if st.st_size > limit:
            raise RecordError(f"{name} is {st.st_size:,} bytes, over the limit of {_size(limit)}")
        if _OPEN_FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | os.PathLike, limit: int, name: str | None = None) -> bytes:
    """The bytes of the regular file `path`, at most `limit` of them. Raises RecordError."""
    name = name or Path(path).name
    with open_regular(path, limit, name) as f:
        try:
            data = f.read(limit + 1)
        except OSError as e:
            raise RecordError(f"{name} cannot be read: {os_reason(e)}") from None
    if len(data) > limit:  # it grew after the check
        raise RecordError(f"{name} is larger than {_size(limit)}")
    return data


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{n:,} bytes"


class _Refused(Exception):
    """Raised inside the JSON parser's hooks; becomes a RecordError with the file's name."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise _Refused(f"the key {_short(k)} appears twice in one object")
        out[k] = v
    return out


def _constant(text: str) -> float:
    raise _Refused(f"{text} is not a number JSON allows")


def _short(v: Any, n: int = 40) -> str:
    text = repr(v)
    return text if len(text) <= n else text[: n - 1] + "…"


def parse_json(data: bytes, name: str, *, allow_nan: bool = False) -> Any:
    """Strict JSON from `data`: UTF-8 (a BOM is allowed), no duplicate keys, at most MAX_DEPTH
    levels, text without lone surrogates, and, unless `allow_nan`, only finite numbers (no NaN,
    Infinity or 1e309). Raises RecordError naming `name`."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise RecordError(f"{name} is not UTF-8 text (a bad byte at offset {e.start})") from None
    hooks: dict[str, Any] = {"object_pairs_hook": _pairs}
    if not allow_nan:
        hooks["parse_constant"] = _constant
        hooks["parse_float"] = _finite_float
    try:
        obj = json.loads(text, **hooks)
    except _Refused as e:
        raise RecordError(f"{name} is not valid JSON here: {e}") from None
    except json.JSONDecodeError as e:
        where = f"line {e.lineno}, column {e.colno}"
        raise RecordError(f"{name} is not valid JSON: {e.msg} ({where})") from None
    except RecursionError:
        raise RecordError(f"{name} is not valid JSON: it is nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4300 digits
        raise RecordError(f"{name} is not valid JSON: {_short(str(e), 120)}") from None
    problem = _walk(obj)
    if problem:
        raise RecordError(f"{name} is not valid JSON here: {problem}")
    return obj


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise _Refused(f"the number {_short(text)} is out of range")
    return v


def _walk(obj: Any) -> str:
    """Why `obj` is refused (too deep, a lone surrogate in a string), or ''."""
    todo: list[tuple[Any, int]] = [(obj, 1)]
    while todo:
        v, depth = todo.pop()
        if isinstance(v, str):
            if not _utf8(v):
                return "a string holds a lone surrogate (\\ud800-\\udfff), which is not text"
        elif isinstance(v, (dict, list)):
            if depth > MAX_DEPTH:
                return f"it is nested more than {MAX_DEPTH} levels deep"
            items = v.items() if isinstance(v, dict) else enumerate(v)
            for k, x in items:
                if isinstance(k, str) and not _utf8(k):
                    return "a key holds a lone surrogate (\\ud800-\\udfff), which is not text"
                todo.append((x, depth + 1))
    return ""


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_json_object(
    path: str | os.PathLike, limit: int = MAX_JSON_BYTES, *, name: str | None = None
) -> dict[str, Any]:
    """A run file holding one JSON object (finite numbers only). Raises RecordError."""
    name = name or Path(path).name
    obj = parse_json(read_regular(path, limit, name), name)
    if not isinstance(obj, dict):
        raise RecordError(f"{name} must hold a JSON object, not {_kind(obj)}")
    return obj


def _kind(v: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "true/false"}
    if v is None:
        return "null"
    return names.get(type(v), "a number")


def jsonl_lines(data: bytes, name: str) -> list[tuple[int, dict[str, Any] | None, str]]:
    """(line number, the object or None, why not) for each non-blank line of a JSON-lines log.
    A log may hold NaN (a diverged loss is logged as it was)."""
    out: list[tuple[int, dict[str, Any] | None, str]] = []
    for i, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        try:
            rec = parse_json(line, f"{name} line {i}", allow_nan=True)
        except RecordError as e:
            out.append((i, None, str(e)))
            continue
        if isinstance(rec, dict):
            out.append((i, rec, ""))
        else:
            out.append((i, None, f"{name} line {i} is {_kind(rec)}, not an object"))
    return out


def read_jsonl(path: str | os.PathLike, limit: int = MAX_LOG_BYTES) -> list[dict[str, Any]]:
    """All complete JSON object lines of a log; a missing log is empty, a torn or bad line is
    skipped. A log that is not a regular file, or is over `limit`, is a RecordError."""
    name = Path(path).name
    try:
        data = read_regular(path, limit, name)
    except RecordError:
        if not os.path.lexists(path):
            return []
        raise
    return [rec for _, rec, _ in jsonl_lines(data, name) if rec is not None]
