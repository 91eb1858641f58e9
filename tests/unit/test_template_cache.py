"""The report's compiled templates are kept in a private cache folder, or not at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from persistaudit import report


def test_the_cache_is_a_private_folder_of_the_users_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = report._bytecode_cache()
    assert isinstance(cache, report._TemplateCache)
    folder = tmp_path / "persistaudit" / "templates"
    assert folder.stat().st_mode & 0o777 == 0o700


def test_a_folder_others_may_write_or_do_not_own_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    folder = tmp_path / "persistaudit" / "templates"
    folder.mkdir(parents=True)
    folder.chmod(0o777)
    assert report._bytecode_cache() is None
    folder.chmod(0o700)
    assert report._bytecode_cache() is not None
    if os.getuid() == 0:
        os.chown(folder, 65534, 65534)
        assert report._bytecode_cache() is None


def test_no_cache_folder_to_be_had_is_no_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    assert report._bytecode_cache() is None


def test_a_cached_template_renders_as_a_fresh_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    cache = report._bytecode_cache()
    assert cache is not None
    env = report.jinja2.Environment(bytecode_cache=cache)
    env.loader = report.jinja2.DictLoader({"t": "{{ x }} and {{ y }}"})
    first = env.get_template("t").render(x=1, y=2)
    assert list((tmp_path / "persistaudit" / "templates").iterdir())  # written
    again = report.jinja2.Environment(bytecode_cache=cache, loader=env.loader)
    assert again.get_template("t").render(x=1, y=2) == first == "1 and 2"
