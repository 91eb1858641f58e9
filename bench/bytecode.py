"""Compile a checkout's persistaudit to bytecode before it is timed, as an installed wheel is.

A shell with PYTHONDONTWRITEBYTECODE=1 (this project's CI machine has it) never writes .pyc
files, so every timed process would compile every module of persistaudit again: a cost an
installed persistaudit does not have (pip compiles a wheel when it installs it). Python still
reads .pyc files in such a shell.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def compile_bytecode(*checkouts: Path) -> None:
    """Write the .pyc files of each checkout's src/."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for checkout in checkouts:
        src = str(checkout.resolve() / "src")
        subprocess.run([sys.executable, "-m", "compileall", "-q", src], check=True, env=env)
