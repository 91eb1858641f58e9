"""Write an audit's outputs into its folder, and only there."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from persistaudit.exceptions import PersistauditError
from persistaudit.junit import render_junit
from persistaudit.redact import Redactor
from persistaudit.report import render_markdown

EVIDENCE_DIR = "evidence"


def safe_name(name: str) -> str:
    """A file name that cannot leave the evidence folder."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    return cleaned or "evidence"


def write_outputs(
    out: Path, results: dict[str, Any], files: dict[str, str], redactor: Redactor
) -> list[Path]:
    """evidence/*, then results.json (with their digests), report.md and junit.xml.

    Everything is redacted here, before the digests are taken, so that nothing written
    escapes the redactor and every digest matches its file. Returns the paths written.
    """
    results = redactor.deep(results)
    files = {name: redactor.text(text) for name, text in files.items()}
    out.mkdir(parents=True, exist_ok=True)
    results["evidence_files"] = {
        f"{EVIDENCE_DIR}/{safe_name(name)}": hashlib.sha256(text.encode()).hexdigest()
        for name, text in sorted(files.items())
    }
    written = []
    evidence = out / EVIDENCE_DIR
    for name, content in sorted(files.items()):
        target = evidence / safe_name(name)
        if target.resolve().parent != evidence.resolve():
            raise PersistauditError(f"evidence file name {name!r} leaves {evidence}")
        evidence.mkdir(exist_ok=True)
        target.write_text(content, encoding="utf-8")
        written.append(target)
    for name, text in (
        ("results.json", json.dumps(results, indent=2, sort_keys=False) + "\n"),
        ("report.md", render_markdown(results)),
        ("junit.xml", render_junit(results)),
    ):
        (out / name).write_text(text, encoding="utf-8")
        written.append(out / name)
    return written
