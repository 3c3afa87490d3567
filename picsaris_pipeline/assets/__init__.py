"""Assets: per photo verified_upload -> faces_detected -> embeddings_stored -> matches_published;
per attendee attendee_reference -> attendee_matches; per event event_summary."""

from picsaris_pipeline.assets.attendees import attendee_matches, attendee_reference
from picsaris_pipeline.assets.events import event_summary
from picsaris_pipeline.assets.photos import embeddings_stored, faces_detected, matches_published, verified_upload

PHOTO_ASSETS = [verified_upload, faces_detected, embeddings_stored, matches_published]
ATTENDEE_ASSETS = [attendee_reference, attendee_matches]
EVENT_ASSETS = [event_summary]

__all__ = ["ATTENDEE_ASSETS", "EVENT_ASSETS", "PHOTO_ASSETS"]
