"""Entry point of the persistaudit command (and python -m persistaudit).

Kept import-light so that Ctrl-C during start-up is a message and exit code 130, not a
traceback from deep inside an import.
"""

import sys


def main() -> None:
    try:
        from persistaudit.cli import main as cli
    except KeyboardInterrupt:
        sys.stderr.write("persistaudit: error: interrupted while starting: nothing was created\n")
        sys.exit(130)
    cli()


if __name__ == "__main__":
    main()
