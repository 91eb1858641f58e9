"""python -m persistaudit: the same as the persistaudit command."""

from persistaudit.cli import main

main()
