"""What the tests and the benchmarks share: the repository's paths and the machine's Postgres
(environment), raw SQL for state the repository has no method for (db_helpers), real
dagster-webserver and dagster-daemon processes (dagster_processes), uploads the way a phone makes
them and waiting for photos to settle (phone_uploads), the pipeline wired on a test instance
(pipeline_helpers), the `picsaris` CLI in-process (cli_runner), the local Rekognition and Supabase
Realtime servers, S3 stores on moto (object_stores), a headless Chromium (browser), EXIF
orientation builders (exif), encoded test images (image_bytes) and the photo sets several tests
build events from (photo_sets).

bench/_support/ imports from here too, outside pytest: nothing in this package imports pytest at
import time.
"""
