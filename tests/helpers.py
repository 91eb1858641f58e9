"""Constants shared by the tests."""

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
