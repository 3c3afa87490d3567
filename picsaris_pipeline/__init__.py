"""picsaris-pipeline: guests' photo uploads in, "this guest appears in this photo" records out."""

__version__ = "0.1.0"
