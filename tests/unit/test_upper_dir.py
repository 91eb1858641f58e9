"""upper_dir: the container layer listed from overlay folders, as docker diff lists it.

The same listing against the engine's own, on a real container: tests/e2e/test_layer_listing.py.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from persistaudit import upper_dir
from persistaudit.upper_dir import Layer, changed_paths


def layer(tmp_path: Path) -> tuple[Layer, Path, Path]:
    upper, lower = tmp_path / "upper", tmp_path / "lower"
    for folder in ("etc", "var/lib", "srv", "opt"):
        (lower / folder).mkdir(parents=True)
    (lower / "etc" / "issue").write_text("Debian\n")
    upper.mkdir()
    return Layer(str(upper), (str(lower),)), upper, lower


def whiteout(path: Path) -> None:
    try:
        os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))
    except PermissionError:
        pytest.skip("making a whiteout (a 0:0 character device) needs root")


def test_files_their_folders_and_deletions_are_listed_as_docker_diff_does(tmp_path: Path) -> None:
    found, upper, _ = layer(tmp_path)
    (upper / "var" / "lib" / "app").mkdir(parents=True)
    (upper / "var" / "lib" / "app" / "app.db").write_text("x")
    (upper / "etc").mkdir()
    whiteout(upper / "etc" / "issue")
    (upper / "srv").mkdir()  # copied up, what was made in it since removed: not a change
    (upper / "new").mkdir()  # not in the image: added, even empty
    (upper / "root").mkdir()
    (upper / "root" / "link").symlink_to("/etc")  # a link, never followed
    assert changed_paths(found) == [
        "/etc",
        "/new",
        "/root",
        "/root/link",
        "/var",
        "/var/lib",
        "/var/lib/app",
        "/var/lib/app/app.db",
    ]


def test_a_folder_whose_mode_changed_is_listed(tmp_path: Path) -> None:
    found, upper, _ = layer(tmp_path)
    (upper / "opt").mkdir()
    (upper / "opt").chmod(0o700)
    assert changed_paths(found) == ["/opt"]


def test_too_many_entries_or_levels_are_left_to_the_engine(tmp_path: Path) -> None:
    found, upper, _ = layer(tmp_path)
    for i in range(5):
        (upper / f"f{i}").write_text("x")
    assert changed_paths(found, limit=5) is not None
    assert changed_paths(found, limit=4) is None
    deep = upper
    for _ in range(upper_dir.MAX_DEPTH + 2):
        deep = deep / "d"
    deep.mkdir(parents=True)
    assert changed_paths(found) is None


def test_a_layer_gone_meanwhile_is_left_to_the_engine(tmp_path: Path) -> None:
    found, upper, _ = layer(tmp_path)
    upper.rmdir()
    assert changed_paths(found) is None


def attrs(upper: Path, lower: Path, driver: str = "overlay2") -> dict[str, object]:
    return {
        "GraphDriver": {"Name": driver, "Data": {"UpperDir": str(upper), "LowerDir": str(lower)}}
    }


def test_the_folders_are_used_only_for_a_local_overlay_engine(tmp_path: Path) -> None:
    _, upper, lower = layer(tmp_path)
    local = upper_dir.LOCAL_SOCKET
    assert upper_dir.upper_dir(attrs(upper, lower), local) == Layer(str(upper), (str(lower),))
    assert upper_dir.upper_dir(attrs(upper, lower), "http+docker://ssh") is None
    assert upper_dir.upper_dir(attrs(upper, lower), "http://10.0.0.5:2375") is None
    assert upper_dir.upper_dir(attrs(upper, lower, "btrfs"), local) is None
    assert upper_dir.upper_dir(attrs(tmp_path / "absent", lower), local) is None
    assert upper_dir.upper_dir(attrs(upper, tmp_path / "absent"), local) is None
    assert upper_dir.upper_dir(attrs(Path("relative"), lower), local) is None
    assert upper_dir.upper_dir({}, local) is None
