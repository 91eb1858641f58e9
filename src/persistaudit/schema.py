"""Read a SQLite database's schema into a Manifest: from a file, DDL, or SQLAlchemy models."""

from __future__ import annotations

import importlib
import sqlite3
import tempfile
from pathlib import Path
from typing import Any

from persistaudit import sqltext
from persistaudit.exceptions import ConfigError, LimitExceeded, SnapshotError
from persistaudit.manifest import (
    Column,
    ForeignKey,
    Index,
    Manifest,
    Table,
    Trigger,
    UniqueCollation,
    View,
    replace,
)
from persistaudit.sqlite_files import copy_database
from persistaudit.sqlite_guard import Limits, open_memory, reading
from persistaudit.sqltext import fold

_GENERATED = {2: "virtual", 3: "stored"}


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def read_schema(conn: sqlite3.Connection, name: str | None = None) -> Manifest:
    """The schema of an open database, as a manifest (options at their defaults)."""
    objects = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE sql IS NOT NULL ORDER BY name"
    ).fetchall()
    tables: dict[str, Table] = {}
    indexes: dict[str, Index] = {}
    views: dict[str, View] = {}
    triggers: dict[str, Trigger] = {}
    table_sql = {n: sql for kind, n, _, sql in objects if kind == "table"}
    for kind, obj, _table_name, sql in objects:
        if kind == "table" and not obj.startswith("sqlite_"):
            tables[obj] = _table(conn, obj, sql, table_sql)
    collations = {
        fold(n): {fold(c.name): c.collation for c in t.columns} for n, t in tables.items()
    }
    for kind, obj, table, sql in objects:
        if obj.startswith("sqlite_"):
            continue
        if kind == "index":
            columns, where = sqltext.index_parts(sql)
            own = collations.get(fold(table), {})
            unique = sqltext.tokens(sql)[1].keyword("unique")
            indexes[obj] = Index(
                table=table,
                columns=[sqltext.index_key(c, own) for c in columns],
                unique=unique,
                where=where,
            )
        elif kind == "view":
            views[obj] = View(sql=sqltext.view_body(sql))
        elif kind == "trigger":
            triggers[obj] = Trigger(table=table, sql=sqltext.trigger_body(sql))
    revision = None
    if "alembic_version" in tables:
        row = conn.execute("SELECT version_num FROM alembic_version LIMIT 1").fetchone()
        revision = str(row[0]) if row else None
    return Manifest(
        manifest_version=1,
        name=name,
        tables=tables,
        indexes=indexes,
        views=views,
        triggers=triggers,
        user_version=int(conn.execute("PRAGMA user_version").fetchone()[0]),
        alembic_revision=revision,
    )


def _table(conn: sqlite3.Connection, name: str, sql: str, table_sql: dict[str, str]) -> Table:
    q = _quote(name)
    # hidden == 1: the hidden columns of virtual tables
    rows = [r for r in conn.execute(f"PRAGMA table_xinfo({q})") if int(r[6]) != 1]
    collations = _collations(name, sql, len(rows))
    columns = [
        Column(
            name=str(cname),
            type=sqltext.normalize_type(ctype or ""),
            not_null=bool(notnull),
            default=sqltext.normalize_default(dflt),
            collation=collation,
            pk=int(pk),
            generated=_GENERATED.get(int(hidden)),  # type: ignore[arg-type]
        )
        for (_cid, cname, ctype, notnull, dflt, pk, hidden), collation in zip(
            rows, collations, strict=True
        )
    ]
    own = {fold(c.name): c.collation for c in columns}
    unique = []
    for _seq, index, is_unique, origin, _partial in conn.execute(f"PRAGMA index_list({q})"):
        if is_unique and origin == "u":
            keys = [r for r in conn.execute(f"PRAGMA index_xinfo({_quote(index)})") if r[5]]
            cols = [str(r[2]) for r in keys]
            differ = {
                str(r[2]): sqltext.normalize_collation(r[4])
                for r in keys
                if sqltext.normalize_collation(r[4]) != own.get(fold(str(r[2])))
            }
            unique.append((cols, differ))
    unique.sort(key=lambda u: (u[0], sorted(u[1].items())))
    fks: dict[int, dict[str, Any]] = {}
    for fid, _seq, parent, src, dst, on_update, on_delete, _match in conn.execute(
        f"PRAGMA foreign_key_list({q})"
    ):
        fk = fks.setdefault(
            fid,
            {
                "columns": [],
                "table": parent,
                "to": [],
                "on_delete": on_delete,
                "on_update": on_update,
            },
        )
        fk["columns"].append(src)
        if dst is not None:
            fk["to"].append(dst)
    for fk in fks.values():
        if not fk["to"] and fk["table"] in table_sql:
            # REFERENCES parent with no columns means the parent's primary key.
            pk = conn.execute(f"PRAGMA table_info({_quote(fk['table'])})").fetchall()
            fk["to"] = [r[1] for r in sorted(pk, key=lambda r: r[5]) if r[5]]
    options = sqltext.table_options(sql)
    return Table(
        columns=columns,
        primary_key=[c.name for c in sorted(columns, key=lambda c: c.pk) if c.pk],
        unique=[cols for cols, _ in unique],
        unique_collations=[
            UniqueCollation(columns=cols, collations=differ) for cols, differ in unique if differ
        ],
        checks=sorted(sqltext.table_checks(sql)),
        foreign_keys=sorted(
            (ForeignKey(**fk) for fk in fks.values()), key=lambda f: (f.columns, f.table)
        ),
        without_rowid="without rowid" in options,
        strict="strict" in options,
        autoincrement="autoincrement" in options,
    )


def from_copy(path: Path, name: str | None = None, limits: Limits | None = None) -> Manifest:
    """The schema of persistaudit's own copy of a database (a snapshot), read in place.

    Raises SnapshotError when it cannot be read, LimitExceeded when a limit stops it.
    """
    with reading(path, "the schema", limits) as conn:
        return read_schema(conn, name)


def _collations(table: str, create_table: str, count: int) -> list[str]:
    """Each column's collation, from the CREATE TABLE (PRAGMA table_info does not say).

    The definitions come in the same order as the columns; virtual tables have none.
    """
    if sqltext.tokens(create_table)[1].keyword("virtual"):
        return [sqltext.DEFAULT_COLLATION] * count
    found = sqltext.column_collations(create_table)
    if len(found) != count:
        # SQLite parsed this SQL itself, so a disagreement is a bug of our parser: an ERROR
        # (RuntimeError), never a finding about the database (a false FAIL).
        raise RuntimeError(
            f"table {table!r}: its CREATE TABLE reads as {len(found)} column definitions, "
            f"PRAGMA table_info lists {count} columns"
        )
    return found


def from_file(path: Path, name: str | None = None) -> Manifest:
    """Snapshot a database file without touching it: a copy (with its companions) is read.

    Opening the file itself could replay its WAL or roll back a hot journal, which writes.
    """
    if not path.is_file():
        raise ConfigError(f"{path}: file not found")
    with tempfile.TemporaryDirectory(prefix="persistaudit-read-") as tmp:
        copy = Path(tmp) / "copy.db"
        try:
            copy_database(path, copy)
            return from_copy(copy, name)
        except LimitExceeded as exc:
            raise type(exc)(str(exc).replace(str(copy), str(path))) from None
        except SnapshotError as exc:
            raise ConfigError(str(exc).replace(str(copy), str(path))) from None


def keep_annotations(new: Manifest, old: Manifest) -> Manifest:
    """A regenerated manifest keeps what people wrote by hand: name, options, json_valid marks."""
    tables = {}
    old_tables = {fold(n): t for n, t in old.tables.items()}
    for name, table in new.tables.items():
        before = old_tables.get(fold(name))
        marked = {fold(c.name) for c in before.columns if c.json_valid} if before else set()
        columns = [replace(c, json_valid=fold(c.name) in marked) for c in table.columns]
        tables[name] = replace(table, columns=columns)
    return replace(new, tables=tables, options=old.options, name=old.name or new.name)


def from_sql(path: Path, name: str | None = None) -> Manifest:
    """Execute DDL into an in-memory database and snapshot it."""
    try:
        script = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    conn = open_memory()
    try:
        conn.executescript(script)
    except LimitExceeded as exc:
        raise ConfigError(f"{path}: the SQL does not run: {exc}") from None
    except sqlite3.Error as exc:
        raise ConfigError(f"{path}: the SQL does not run: {exc}") from None
    try:
        return read_schema(conn, name)
    finally:
        conn.close()


def from_sqlalchemy(spec: str, name: str | None = None) -> Manifest:
    """Snapshot the tables SQLAlchemy models declare: package.module:metadata (or a Base)."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"--from-sqlalchemy {spec}: expected package.module:attribute")
    try:
        import sqlalchemy
    except ImportError:
        raise ConfigError(
            "--from-sqlalchemy needs SQLAlchemy: pip install 'persistaudit[sqlalchemy]'"
        ) from None
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"--from-sqlalchemy {spec}: cannot import {module_name}: {exc}") from None
    for part in attr.split("."):
        if not hasattr(target, part):
            raise ConfigError(f"--from-sqlalchemy {spec}: {module_name} has no attribute {attr}")
        target = getattr(target, part)
    metadata = getattr(target, "metadata", target)
    if not isinstance(metadata, sqlalchemy.MetaData):
        raise ConfigError(f"--from-sqlalchemy {spec}: not a MetaData or declarative Base")
    engine = sqlalchemy.create_engine("sqlite://")
    with engine.connect() as connection:
        metadata.create_all(connection)
        connection.commit()
        raw = connection.connection.dbapi_connection
        assert isinstance(raw, sqlite3.Connection)
        return read_schema(raw, name)
