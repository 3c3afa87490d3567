"""Pure domain logic: records and the photo status machine (model.py), ids and object keys, matching
and the match policy, clustering, near-duplicate hashes, image decoding and the pictures of what was
found. No I/O, no Dagster, nothing of the package but this and errors.py.
"""
