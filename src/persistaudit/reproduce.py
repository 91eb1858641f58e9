"""What another auditor needs to reproduce an audit: the container's exact settings and every
step of the canary scenario, with secrets left out.

The settings come from the engine's record of the container the run last used (not from the
config), so what a compose file or the image added is there too. Every value is a candidate
secret: an environment variable, header, form field or JSON member whose name looks secret is
replaced here, and the results document is redacted again, as a whole, when it is written.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterable
from typing import Any

from persistaudit.config import CanarySpec, ExecStep, HttpStep, ReadinessSpec
from persistaudit.readiness import strategy_for
from persistaudit.redact import MARKER, is_secret_name

_PLACEHOLDER_ONLY = "{capture."


def _pairs(env: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in env or []:
        name, _, value = str(item).partition("=")
        out[name] = value
    return out


def container_settings(
    attrs: dict[str, Any], image_env: list[str] | None = None, run_env: Iterable[str] = ()
) -> dict[str, Any]:
    """The settings of a container, from the engine's inspect record, as results.json keeps
    them. image_env (the image's own Env) splits what the run set from what the image brings;
    a variable named in run_env (the config's) is the run's even where the image agrees.

    Values are not redacted here: the caller hides secret-named ones (Redactor.env).
    """
    config = attrs.get("Config") or {}
    host = attrs.get("HostConfig") or {}
    env = _pairs(config.get("Env"))
    inherited = {k: v for k, v in _pairs(image_env).items() if k not in set(run_env)}
    ports: list[str] = []
    for port, bindings in sorted(((attrs.get("NetworkSettings") or {}).get("Ports") or {}).items()):
        for binding in bindings or [{}]:
            host_ip, host_port = binding.get("HostIp", ""), binding.get("HostPort", "")
            ports.append(
                f"{port} published on {host_ip}:{host_port}"
                if host_port
                else f"{port} (not published)"
            )
    mounts = [
        {
            "type": str(m.get("Type", "")),
            "source": str(m.get("Name") or m.get("Source") or ""),
            "destination": str(m.get("Destination", "")),
            "rw": bool(m.get("RW", True)),
        }
        for m in attrs.get("Mounts") or []
    ]
    policy = host.get("RestartPolicy") or {}
    restart = str(policy.get("Name") or "no")
    if restart == "on-failure" and policy.get("MaximumRetryCount"):
        restart += f":{policy['MaximumRetryCount']}"
    health = config.get("Healthcheck") or {}
    return {
        "name": str(attrs.get("Name", "")).lstrip("/"),
        "image": str(config.get("Image", "")),
        "image_id": str(attrs.get("Image", "")),
        "entrypoint": [str(a) for a in config.get("Entrypoint") or []],
        "command": [str(a) for a in config.get("Cmd") or []],
        "user": str(config.get("User") or ""),
        "working_dir": str(config.get("WorkingDir") or ""),
        "env": {k: v for k, v in env.items() if inherited.get(k) != v},
        "image_env": sorted(k for k, v in env.items() if inherited.get(k) == v),
        "ports": ports,
        "mounts": mounts,
        "tmpfs": sorted(host.get("Tmpfs") or {}),
        "restart_policy": restart,
        "healthcheck": [str(a) for a in health.get("Test") or []],
        "network_mode": str(host.get("NetworkMode") or ""),
        "read_only": bool(host.get("ReadonlyRootfs")),
    }


def run_command(settings: dict[str, Any]) -> str:
    """The container as one `docker run` (the image driver's): what it ran with, for a reader
    who wants to start it by hand. A secret-named variable is passed as `-e NAME`: docker
    takes its value from the caller's environment."""
    if not settings:
        return ""
    words = ["docker", "run", "-d"]
    if settings["restart_policy"] != "no":
        words += ["--restart", settings["restart_policy"]]
    for name, value in settings["env"].items():
        words += ["-e", name if is_secret_name(name) else f"{name}={value}"]
    for mount in settings["mounts"]:
        mode = "" if mount["rw"] else ":ro"
        words += ["-v", f"{mount['source']}:{mount['destination']}{mode}"]
    for port in settings["ports"]:
        if " published on " in port:  # to a host port the engine chose
            words += ["-p", port.split("/", 1)[0]]
    if settings["user"]:
        words += ["--user", settings["user"]]
    if settings["read_only"]:
        words.append("--read-only")
    words += [w for path in settings["tmpfs"] for w in ("--tmpfs", path)]
    if settings["entrypoint"]:
        words += ["--entrypoint", settings["entrypoint"][0]]
    words.append(settings["image_id"] or settings["image"])
    words += settings["entrypoint"][1:] + settings["command"]
    return shlex.join(words)


def _hide(name: str, value: Any) -> Any:
    """A value under a secret-looking name, unless it is only a captured value's placeholder
    (the capture is redacted wherever it appears)."""
    if not is_secret_name(name):
        return _hidden(value)
    if isinstance(value, str) and value.startswith(_PLACEHOLDER_ONLY) and value.endswith("}"):
        return value
    return MARKER


def _hidden(value: Any) -> Any:
    """A JSON body with the values of secret-named members replaced, at any depth."""
    if isinstance(value, dict):
        return {k: _hide(str(k), v) for k, v in value.items()}
    if isinstance(value, list):
        return [_hidden(v) for v in value]
    return value


def _http(phase: str, step: HttpStep) -> dict[str, Any]:
    out: dict[str, Any] = {
        "phase": phase,
        "request": f"{step.method} :{step.port}{step.path}",
    }
    if step.headers:
        out["headers"] = {k: _hide(k, v) for k, v in step.headers.items()}
    if step.form is not None:
        out["form"] = {k: _hide(k, v) for k, v in step.form.items()}
    if step.json_body is not None:
        out["json"] = _hidden(step.json_body)
    expect = [f"status {step.expect_status}"]
    if step.expect_body_contains is not None:
        expect.append(f"body contains {step.expect_body_contains!r}")
    expect += [f"{path} = {json.dumps(v)}" for path, v in step.expect_json.items()]
    out["expect"] = ", ".join(expect)
    if step.capture:
        out["capture"] = ", ".join(
            f"{name} from {c.describe()}{' (secret)' if c.secret else ''}"
            for name, c in step.capture.items()
        )
    return out


def _exec(phase: str, step: ExecStep) -> dict[str, Any]:
    out: dict[str, Any] = {"phase": phase, "request": "exec " + shlex.join(step.argv)}
    if step.stdin is not None:
        out["stdin"] = f"{len(step.stdin.encode())} bytes (never shown: it may hold credentials)"
    expect = [f"exit {step.expect_exit}"]
    if step.expect_output_contains is not None:
        expect.append(f"output contains {step.expect_output_contains!r}")
    out["expect"] = ", ".join(expect)
    return out


def scenario(canary: CanarySpec) -> list[dict[str, Any]]:
    """Every canary step in the order a cycle runs them, secret-named values hidden.

    phase says when a step runs: setup once per session (before a cycle's writes, and again
    before its reads), write and read once per record.
    """
    steps: list[dict[str, Any]] = []
    blocks = (
        ("setup (per session)", canary.setup),
        (f"write (x {canary.records} records)", canary.write),
        (f"read (x {canary.records} records)", canary.read),
    )
    for phase, block in blocks:
        for step in block:
            steps.append(_http(phase, step) if isinstance(step, HttpStep) else _exec(phase, step))
    return steps


def readiness(spec: ReadinessSpec) -> str:
    """When the target is taken as ready, in words."""
    return f"{strategy_for(spec).describe()} (within {spec.timeout:g} s)"
