"""Assets: per photo verified_upload -> faces_detected -> embeddings_stored -> matches_published;
per attendee attendee_reference -> attendee_matches."""

from picsaris_pipeline.assets.attendees import attendee_matches, attendee_reference
from picsaris_pipeline.assets.photos import embeddings_stored, faces_detected, matches_published, verified_upload

PHOTO_ASSETS = [verified_upload, faces_detected, embeddings_stored, matches_published]
ATTENDEE_ASSETS = [attendee_reference, attendee_matches]

__all__ = ["ATTENDEE_ASSETS", "PHOTO_ASSETS"]
