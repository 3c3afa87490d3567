"""The pipeline's steps as plain functions over the repository, object store and face engine.

Assets and the CLI call these; nothing here imports Dagster, so every step is testable directly.
"""
