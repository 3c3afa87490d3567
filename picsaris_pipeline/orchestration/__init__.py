"""The orchestration layer, with assets/, sensors/, warm_runs/ and definitions.py the only code that
imports Dagster: resources, jobs, partitions and the launch contract, the runner behind `picsaris
process`, the webserver launcher, erasure (the app database, the bucket and Dagster's storage) and the
scrub of Dagster's storage.
"""
