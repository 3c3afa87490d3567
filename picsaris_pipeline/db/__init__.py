"""The application database: SQLAlchemy Core tables, Alembic migrations and one repository."""

from picsaris_pipeline.db.repository import Repository, connect

__all__ = ["Repository", "connect"]
