"""The agent-memory demo's own logic, run on the host: recall must find every canary.

A demo whose recall misses a record it holds would make the good service FAIL an audit
(a false verdict in persistaudit's own tests), so recall is proven on many runs' markers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

from tests.helpers import REPO

SERVICE = REPO / "fixtures" / "targets" / "agent-memory" / "agent_memory.py"


def load(data: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setenv("AGENT_MEMORY_DATA", str(data))
    monkeypatch.setenv("AGENT_MEMORY_CONFIG", str(data / "no-such-config.toml"))
    monkeypatch.delenv("AGENT_MEMORY_DEFECT", raising=False)
    spec = importlib.util.spec_from_file_location(f"agent_memory_{data.name}", SERVICE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# Run ids 0..15: with signed hashing in 256 dimensions, runs 0, 4, 5, 7 and 9 each lost one
# canary (a word of the canary's text cancelled its marker's bucket).
@pytest.mark.parametrize("run", [f"{n:08x}" for n in range(16)])
def test_recall_finds_every_remembered_canary(
    run: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = load(tmp_path / run, monkeypatch)
    memory = service.Memory(*service.install())
    markers = [f"pa-{run}-{i:06d}" for i in range(1, 21)]
    for i, marker in enumerate(markers, 1):
        memory.remember(f"{marker} canary {i} of run {run}")
    missed = [m for m in markers if m not in {r["text"].split()[0] for r in memory.recall(m)}]
    assert missed == []
    memory.main.close()
    memory.vectors.close()


def test_stdio_answers_each_request_and_counts_the_failures(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io
    import json

    service = load(tmp_path / "stdio", monkeypatch)
    memory = service.Memory(*service.install())
    monkeypatch.setenv("AGENT_MEMORY_MAX_MEMORIES", "1")
    requests = [
        {
            "id": 1,
            "method": "tools/call",
            "params": {"name": "remember", "arguments": {"text": "a b"}},
        },
        {
            "id": 2,
            "method": "tools/call",
            "params": {"name": "remember", "arguments": {"text": "c"}},
        },
        {
            "id": 3,
            "method": "tools/call",
            "params": {"name": "recall", "arguments": {"query": "b"}},
        },
    ]
    out = io.StringIO()
    failed = memory.serve([json.dumps(r) + "\n" for r in requests], out)
    answers = [json.loads(line) for line in out.getvalue().splitlines()]
    assert failed == 1
    assert answers[0]["result"] == {"id": 1, "text": "a b"}
    assert "memory quota of 1 reached" in answers[1]["error"]["message"]
    assert [m["text"] for m in answers[2]["result"]] == ["a b"]
    memory.main.close()
    memory.vectors.close()
