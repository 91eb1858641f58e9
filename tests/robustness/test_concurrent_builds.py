"""Two builds of targets with the same name, audited at once on one engine (a shared CI runner).

Each audit must run the image it built itself. Before, both builds tagged the same image name
and every container was started from that tag, so whichever build tagged last was what both
audits ran: the good service got a false FAIL (or the defect a false PASS).
"""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker
import pytest
import yaml

from tests.e2e.conftest import config_variant, leftovers, persistaudit
from tests.helpers import NOTES_APP

pytestmark = pytest.mark.docker


def build(defect: str, tag: str) -> dict[str, Any]:
    return {"context": str(NOTES_APP), "args": {"DEFECT": defect}, "tag": tag}


def test_same_name_different_builds_each_get_their_own_verdict(tmp_path: Path) -> None:
    engine = docker.from_env()
    # The same name gives the same default tag. A tag of the test's own stands in for it, so
    # that the defect build never lands on the tag that other audits on this engine use.
    tag = f"persistaudit-test/same-name-{os.getpid()}:audit"
    good = config_variant(tmp_path, NOTES_APP / "audit.yaml", "good", build=build("none", tag))
    bad = config_variant(
        tmp_path,
        NOTES_APP / "defects" / "ephemeral-db.yaml",
        "bad",
        build=build("ephemeral-db", tag),
    )
    config = yaml.safe_load(bad.read_text())
    config["name"] = "notes-app"  # the same name as the good one
    bad.write_text(yaml.safe_dump(config))
    outs = {"good": tmp_path / "out-good", "bad": tmp_path / "out-bad"}
    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            runs = dict(
                zip(
                    outs,
                    pool.map(
                        lambda args: persistaudit("run", str(args[0]), "--out", str(args[1])),
                        [(good, outs["good"]), (bad, outs["bad"])],
                    ),
                    strict=True,
                )
            )
        results = {k: json.loads((outs[k] / "results.json").read_text()) for k in outs}
        # Which build each audit says it ran, read before the test's tag goes.
        ids = {k: r["target"]["image_id"] for k, r in results.items()}
        defects = {k: _defect_of(engine, image_id) for k, image_id in ids.items()}
    finally:
        with contextlib.suppress(docker.errors.ImageNotFound):
            engine.images.remove(tag, noprune=True)  # the test's tag; other tags keep the cache
    statuses = {k: {c["id"]: c["status"] for c in r["checks"]} for k, r in results.items()}

    assert runs["good"].returncode == 0, (statuses["good"], runs["good"].stderr[-3000:])
    assert results["good"]["verdict"] == "PASS"
    assert runs["bad"].returncode == 1, runs["bad"].stderr[-3000:]
    failing = {k for k, v in statuses["bad"].items() if v != "passed"}
    assert failing == {"volume.mount", "recreate.retention"}, statuses["bad"]
    assert all(statuses["bad"][k] == "failed" for k in failing)

    # Each report names the shared tag and the id of the image it really ran.
    assert results["good"]["target"]["image"] == results["bad"]["target"]["image"] == tag
    assert ids["good"] != ids["bad"]
    assert defects == {"good": "none", "bad": "ephemeral-db"}
    startup = {k: (outs[k] / "evidence" / "startup.log").read_text() for k in outs}
    assert "database /data/notes.db" in startup["good"]
    assert "database /app/state/notes.db" in startup["bad"]
    for run in runs.values():
        assert leftovers(engine, run.pid) == []  # type: ignore[attr-defined]


def _defect_of(engine: docker.DockerClient, image_id: str) -> str:
    env = engine.images.get(image_id).attrs["Config"]["Env"]
    return next(e.split("=", 1)[1] for e in env if e.startswith("NOTES_DEFECT="))
