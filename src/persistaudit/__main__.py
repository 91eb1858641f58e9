"""Entry point of the persistaudit command (and python -m persistaudit).

Installs the signal handlers first and stays import-light, so that an interrupt even during
start-up is one line and exit code 128 + N (130 for Ctrl-C), not a traceback from deep
inside an import.
"""

import sys

from persistaudit import signals


def main() -> None:
    signals.install()
    try:
        from persistaudit.cli import main as cli
    except KeyboardInterrupt:
        signals.note_interrupt()
        signals.settle()
        sys.stderr.write(
            f"persistaudit: interrupted by {signals.name()} while starting: nothing was created\n"
        )
        sys.exit(signals.exit_code())
    cli()


if __name__ == "__main__":
    main()
