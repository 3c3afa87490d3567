"""Jobs the sensor, the CLI and the upload API launch (their names are part of the API contract)."""

import dagster as dg

from picsaris_pipeline.assets import ATTENDEE_ASSETS, PHOTO_ASSETS
from picsaris_pipeline.partitions import ATTENDEE_JOB, PHOTO_JOB

# In-process executor: a photo's four steps are short and sequential; one process per step would
# cost more than the face work itself.
photo_job = dg.define_asset_job(
    PHOTO_JOB,
    selection=PHOTO_ASSETS,
    executor_def=dg.in_process_executor,
    description="Verify, detect, embed and match one photo.",
)
attendee_job = dg.define_asset_job(
    ATTENDEE_JOB,
    selection=ATTENDEE_ASSETS,
    executor_def=dg.in_process_executor,
    description="Reference vector from one attendee's selfie, then match them in existing photos.",
)
