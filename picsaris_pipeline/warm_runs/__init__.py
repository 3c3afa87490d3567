"""Warm run workers: Dagster runs forked from a process that has already imported the code
location and loaded the face models (see launcher.py)."""
