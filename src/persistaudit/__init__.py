"""persistaudit: automated persistence audits of containerized services keeping state in SQLite."""

__version__ = "0.1.0"
