"""Read back the JSON documents persistaudit writes: results.json and signature.json.

They come from disk, where anyone may have edited them, so they are read strictly: a size
bound, strict JSON (no duplicate keys, NaN or Infinity), then the bundled JSON Schema
(schemas/*.json, the one published definition of each format). Every later step relies on
that shape; every problem is one line naming the file and the field.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from persistaudit.exceptions import DocumentError, clip_value

SCHEMAS = Path(__file__).resolve().parent / "schemas"
RESULTS_SCHEMA_FILE = "results-v1.json"
SIGNATURE_SCHEMA_FILE = "signature-v1.json"
MAX_BYTES = 64 * 1024 * 1024  # a results.json holds excerpts; whole files are evidence/*


def read_json(path: Path, max_bytes: int = MAX_BYTES) -> Any:
    """Strict JSON from a file of at most max_bytes."""
    try:
        with path.open("rb") as fh:
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise DocumentError(f"{path}: file not found") from None
    except OSError as exc:
        raise DocumentError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except ValueError as exc:  # a NUL byte in the path
        raise DocumentError(f"{path}: cannot read: {exc}") from None
    if len(data) > max_bytes:
        raise DocumentError(f"{path}: larger than {max_bytes // 2**20} MiB: refused")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DocumentError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant)
    except RecursionError:
        raise DocumentError(f"{path}: not valid JSON: nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, the hooks', and Python's integer digit limit
        raise DocumentError(f"{path}: not valid JSON: {str(exc).splitlines()[0]}") from None
    try:  # an escaped lone surrogate ("\ud800") is valid JSON but no text: nothing can write it
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DocumentError(
            f"{path}: not valid JSON: {exc.reason} ({exc.object[exc.start : exc.end]!r})"
        ) from None
    return doc


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {clip_value(key)}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


@functools.cache
def _validator(schema_file: str) -> Any:
    import jsonschema_rs  # imported on first use: most commands never read a document back

    schema = json.loads((SCHEMAS / schema_file).read_text(encoding="utf-8"))
    return jsonschema_rs.Draft202012Validator(schema)


def field_path(parts: Any) -> str:
    """checks[3].evidence[0].kind, from a JSON Schema error's path."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out


def _enum_message(error: Any) -> str:
    """For a short enum, every allowed value: the validator names two and counts the rest."""
    options = getattr(error.kind, "options", None)
    if type(error.kind).__name__ != "Enum" or not isinstance(options, list) or len(options) > 8:
        return ""
    shown = [json.dumps(o) for o in options]
    allowed = shown[0] if len(shown) == 1 else ", ".join(shown[:-1]) + " or " + shown[-1]
    return f"{json.dumps(error.instance)[:60]} is not one of {allowed}"


def validate(path: Path, doc: Any, schema_file: str) -> None:
    """Raise DocumentError naming the file and field of the first schema error."""
    try:
        error = next(iter(_validator(schema_file).iter_errors(doc)), None)
    except ValueError as exc:  # nested deeper than the validator goes
        raise DocumentError(f"{path}: cannot be checked against its schema: {exc}") from None
    if error is None:
        return
    message = _enum_message(error) or error.message
    message = message if len(message) <= 200 else message[:200] + "..."
    field = field_path(error.instance_path)
    raise DocumentError(f"{path}: {field + ': ' if field else ''}{message}")


def read_results(path: Path) -> dict[str, Any]:
    """A results.json, checked against the results schema."""
    doc = read_json(path)
    if not isinstance(doc, dict) or "schema" not in doc:
        raise DocumentError(f"{path}: not a persistaudit results.json (no schema key)")
    validate(path, doc, RESULTS_SCHEMA_FILE)
    return doc
