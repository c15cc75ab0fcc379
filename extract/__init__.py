"""Branch sources, the backup package and staging. Importing it registers ``postgresql+pyodbc``."""

from extract import dialects as _dialects  # noqa: F401  (registers the dialect with SQLAlchemy)
