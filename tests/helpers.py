"""Constants and small helpers shared by the tests."""

import sqlite3
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NOTES_APP = REPO / "fixtures" / "targets" / "notes-app"

GOOD_CONFIG = """\
name: demo
image: example/demo:1
env:
  API_TOKEN: hunter2
database:
  path: /data/app.db
volume:
  mount: /data
readiness:
  http: {path: /health, port: 8080}
canary:
  records: 3
  write:
    - {method: POST, path: /items, port: 8080, json: {name: "{marker}"}, expect_status: 201}
  read:
    - {path: "/items?name={marker}", port: 8080, expect_body_contains: "{marker}"}
expect:
  manifest: manifest.yaml
"""

MANIFEST = """\
manifest_version: 1
tables:
  items: {}
  owners: {}
"""


def write_sql(db: Path, sql: str) -> None:
    """Run sql on the database file at db (created if missing) and commit, as a service would."""
    conn = sqlite3.connect(db)
    try:
        conn.executescript(sql)
        conn.commit()
    finally:
        conn.close()
