"""The application database: SQLAlchemy Core tables (schema.py), Alembic migrations (migrate.py,
migrations/) and the repository (repository/), the one door to it.

Nothing is imported here: the repository imports schema.py, so a package that re-exported the
repository would import itself back.
"""
