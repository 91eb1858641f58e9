"""A Docker-free runtime, so that audit stages can be unit-tested on real SQLite files.

FakeRuntime satisfies runtime.Runtime and hands out a FakeHandle, which satisfies
runtime.ContainerHandle: a host folder stands for the volume (get_archive returns a real tar
stream of the files a test or the fake service wrote there), states and logs are scripted,
and ItemsService is a small HTTP service writing canaries to a real SQLite file in that folder,
with a command-line face (`items add|get`) that exec canaries reach through FakeHandle.exec.
tests/unit/test_protocol_compliance.py proves the fakes keep to the protocol.
"""

from __future__ import annotations

import contextlib
import io
import json
import sqlite3
import tarfile
import threading
import urllib.parse
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath

from persistaudit.cleanup import Removal
from persistaudit.config import HttpStep, TargetConfig
from persistaudit.readiness import LOG_TAIL, ContainerState, strategy_for, wait_ready
from persistaudit.runtime import Mount, Runtime, TargetInfo

ARCHIVE_CHUNK = 4096  # the engine streams an archive in pieces: so does the fake

Program = Callable[[list[str], "bytes | None"], tuple[int, str]]  # exec's (argv, stdin) -> answer


class FakeHandle:
    """A scripted container whose volume is a host folder mounted at mount."""

    def __init__(self, name: str, volume: Path, mount: str) -> None:
        self.name = name
        self.id = f"fake-{name}"
        self.volume = volume
        self.mount = mount
        self.status = "running"
        self.exit_code = 0
        self.restart_count = 0
        self.states: list[ContainerState] = []  # scripted: one per state() call, the last stays
        self.lines: list[str] = []  # every log line; those of the current run from run_start
        self.run_start = 0
        self.commands: dict[tuple[str, ...], tuple[int, str]] = {}  # fixed exec answers
        # argv[0] -> a program run by exec with (argv, stdin): what the container has installed
        self.programs: dict[str, Program] = {}
        self.execs: list[tuple[list[str], bytes | None]] = []  # every exec's argv and stdin
        self.ports: dict[int, str] = {}  # container port -> base URL
        self.pauses = 0  # how many times paused() froze the container
        self.is_paused = False
        self.layer: dict[str, bytes] = {}  # files written in the container layer, by path

    def state(self) -> ContainerState:
        if self.states:
            return self.states.pop(0) if len(self.states) > 1 else self.states[0]
        status = "paused" if self.is_paused else self.status
        return ContainerState(status, self.exit_code, self.restart_count, "")

    def logs(self, tail: int = LOG_TAIL, current_run: bool = False) -> list[str]:
        lines = self.lines[self.run_start :] if current_run else self.lines
        return lines[-tail:] if tail else []

    def exec(
        self, command: list[str], timeout: float | None = None, stdin: bytes | None = None
    ) -> tuple[int, str]:
        self.execs.append((list(command), stdin))
        if tuple(command) in self.commands:
            return self.commands[tuple(command)]
        if command and command[0] in self.programs:
            return self.programs[command[0]](command, stdin)
        return 127, f"{command[0] if command else ''}: not found\n"

    def url(self, port: int, path: str) -> str:
        if port not in self.ports:
            raise LookupError(f"port {port} of {self.name} is not published")
        return self.ports[port] + path

    def mounts(self) -> list[Mount]:
        return [Mount("bind", str(self.volume), self.mount, "", True, False)]

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        was_running = self.state().status == "running"
        if was_running:
            self.is_paused, self.pauses = True, self.pauses + 1
        try:
            yield
        finally:
            if was_running:
                self.is_paused = False

    def get_archive(self, path: str) -> Iterator[bytes] | None:
        """A tar stream of the file at path, under the mount or in the layer, as the engine
        sends it."""
        buffer = io.BytesIO()
        if path in self.layer:
            with tarfile.open(fileobj=buffer, mode="w") as tar:
                info = tarfile.TarInfo(PurePosixPath(path).name)
                info.size = len(self.layer[path])
                tar.addfile(info, io.BytesIO(self.layer[path]))
            return _chunks(buffer.getvalue())
        try:
            relative = PurePosixPath(path).relative_to(self.mount)
        except ValueError:
            return None  # nothing in the layer there
        host = self.volume.joinpath(*relative.parts)
        if not host.is_file():
            return None
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            tar.add(host, arcname=host.name)
        return _chunks(buffer.getvalue())

    def changed_files(self) -> list[str]:
        """The layer's files and the folders above them, as docker diff lists them."""
        paths = set(self.layer)
        for path in self.layer:
            paths.update(str(p) for p in PurePosixPath(path).parents if str(p) != "/")
        return sorted(paths)


def _chunks(data: bytes) -> Iterator[bytes]:
    return iter([data[i : i + ARCHIVE_CHUNK] for i in range(0, len(data), ARCHIVE_CHUNK)])


class ItemsService:
    """The service behind the fake: POST /items {"name": ...}, GET /items?name=..., GET /health.

    It keeps items in a real SQLite file (WAL) at database, connecting per request as a
    service that holds no connection would; stop() ends it.
    """

    SCHEMA = "CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT NOT NULL)"

    def __init__(self, database: Path) -> None:
        self.database = database
        self.refuse_adds = ""  # why `items add` refuses writes; "" accepts them
        self.discard_writes = False  # POST answers 201 and stores nothing
        service = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, body: object) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                name = json.loads(self.rfile.read(length))["name"]
                if not service.discard_writes:
                    with service.connect() as conn:
                        conn.execute("INSERT INTO items (name) VALUES (?)", (name,))
                self._answer(201, {"name": name})

            def do_GET(self) -> None:
                if self.path == "/health":
                    return self._answer(200, {"ok": True})
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                with service.connect() as conn:
                    rows = conn.execute(
                        "SELECT name FROM items WHERE name = ?", (query["name"][0],)
                    ).fetchall()
                self._answer(200, [{"name": r[0]} for r in rows])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @contextlib.contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.database)
        try:
            with conn:
                yield conn
        finally:
            conn.close()

    def command(self, argv: list[str], stdin: bytes | None) -> tuple[int, str]:
        """`items add NAME` (NAME `-`: read it from stdin) and `items get NAME`, as exec runs
        them: exit code and output. `items add` exits 75 once refuse_adds is set."""
        if len(argv) != 3 or argv[1] not in ("add", "get"):
            return 64, "usage: items add|get NAME\n"
        name = (stdin or b"").decode().strip() if argv[2] == "-" else argv[2]
        if argv[1] == "add":
            if self.refuse_adds:
                return 75, f"refusing write: {self.refuse_adds}\n"
            with self.connect() as conn:
                conn.execute("INSERT INTO items (name) VALUES (?)", (name,))
            return 0, json.dumps({"name": name}) + "\n"
        with self.connect() as conn:
            rows = conn.execute("SELECT name FROM items WHERE name = ?", (name,)).fetchall()
        return (0 if rows else 1), "".join(json.dumps({"name": r[0]}) + "\n" for r in rows)

    def boot(self) -> None:
        """What the service does on each start: create its schema where it is missing."""
        self.database.parent.mkdir(parents=True, exist_ok=True)
        with self.connect() as conn:
            conn.execute("PRAGMA journal_mode = wal")
            conn.execute(self.SCHEMA)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


class FakeRuntime(Runtime):
    """A target run in-process on a host folder: the driver for unit tests of audit stages.

    The config's database path must lie under its volume.mount. Each start, restart and
    re-create calls the hook of that name with the volume folder first (a test makes it lose
    or damage files), then boots the service and waits for the config's readiness as the
    image driver does, so scripted states (FakeHandle.states) block it the same way. stop()
    and kill() end the service: its port is no longer published.
    """

    NAME = "fake"

    def __init__(self, config: TargetConfig, volume: Path, *, port: int | None = None) -> None:
        self.config = config
        self.volume = volume
        self.port = port if port is not None else _canary_port(config)
        first = config.declared_databases[0].path
        db = PurePosixPath(first).relative_to(config.volume.mount)
        self.service = ItemsService(volume.joinpath(*db.parts))
        self.strategy = strategy_for(config.readiness)
        self.hooks: dict[str, Callable[[Path], None]] = {}
        self.programs: dict[str, Program] = {"items": self.service.command}  # on every handle
        self.calls: list[str] = []  # the lifecycle calls made, in order
        self.gone: list[str] = []  # what missing() reports
        self.generation = 0
        self._container: FakeHandle | None = None
        self._closed = False

    @property
    def container(self) -> FakeHandle:
        if self._container is None:
            raise RuntimeError("the target has not been started")
        return self._container

    def _boot(self, step: str, handle: FakeHandle) -> float:
        self.calls.append(step)
        if step in self.hooks:
            self.hooks[step](self.volume)
        self.service.boot()
        handle.status, handle.exit_code = "running", 0
        handle.run_start = len(handle.lines)
        handle.lines.append(f"{step}: serving on {self.service.base_url}")
        if self.port:
            handle.ports[self.port] = self.service.base_url
        spec = self.config.readiness
        return wait_ready(handle, self.strategy, timeout=spec.timeout, interval=spec.interval)

    def _new_handle(self) -> FakeHandle:
        self.generation += 1
        self.volume.mkdir(parents=True, exist_ok=True)
        handle = FakeHandle(
            f"{self.config.name}-{self.generation}", self.volume, self.config.volume.mount
        )
        handle.programs = self.programs
        return handle

    def start(self) -> float:
        self._container = self._new_handle()
        return self._boot("start", self._container)

    def restart(self) -> float:
        return self._boot("restart", self.container)

    def recreate(self) -> float:
        self._container = self._new_handle()
        return self._boot("recreate", self._container)

    def stop(self, timeout: float = 10) -> None:
        self.calls.append("stop")
        self.container.status, self.container.exit_code = "exited", 0
        self.container.ports.clear()

    def kill(self, signal: str = "SIGKILL") -> None:
        self.calls.append(f"kill {signal}")
        self.container.status, self.container.exit_code = "exited", 137
        self.container.ports.clear()

    def describe(self) -> TargetInfo:
        return TargetInfo(
            name=self.config.name,
            driver=self.NAME,
            image=self.config.image_ref,
            image_id="sha256:" + "0" * 64 if self.generation else "",
            repo_digests=[],
            volume=str(self.volume),
            mount=self.config.volume.mount,
            databases=[d.path for d in self.config.declared_databases],
            restart_policy=self.config.restart_policy,
        )

    def missing(self) -> list[str]:
        return list(self.gone)

    def close(self) -> Removal:
        if self._closed:
            return Removal()
        self._closed = True
        self.service.stop()
        removed = [f"container {self._container.name}"] if self._container else []
        self._container = None
        return Removal(removed=removed)


def _canary_port(config: TargetConfig) -> int:
    """The HTTP canary's port; 0 (nothing published) for exec canaries."""
    return next((s.port for s in config.canary.write if isinstance(s, HttpStep)), 0)
