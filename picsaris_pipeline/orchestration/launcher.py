"""Launching a photo's run through the Dagster webserver's GraphQL API (what the upload API does).

DagsterGraphQLClient has no partition helpers, so this speaks the two mutations directly:
`addDynamicPartition` (an existing partition is fine) and `launchRun` of job `process_photo` with
the `dagster/partition` tag. Before launching it asks for runs already tagged with the photo, so a
repeated "upload complete" launches nothing twice. The contract is written out in the README for
services in other languages.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from picsaris_pipeline.domain.model import Attendee, Photo
from picsaris_pipeline.errors import ConfigurationError, PicsarisError, RetryableError
from picsaris_pipeline.orchestration.partitions import (
    ATTENDEE_JOB,
    ATTENDEE_PARTITIONS,
    ATTENDEE_TAG,
    PARTITION_TAG,
    PHOTO_JOB,
    PHOTO_PARTITIONS,
    PHOTO_TAG,
    run_tags,
)

LOCATION_NAME = "picsaris_pipeline"  # workspace.yaml location_name
REPOSITORY_NAME = "__repository__"  # what Dagster names the repository of a Definitions object

ADD_PARTITION = """
mutation AddPartition($repositorySelector: RepositorySelector!, $partitionsDefName: String!, $partitionKey: String!) {
  addDynamicPartition(repositorySelector: $repositorySelector, partitionsDefName: $partitionsDefName,
                      partitionKey: $partitionKey) {
    __typename
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}
"""

EXISTING_RUNS = """
query ExistingRuns($filter: RunsFilter!) {
  runsOrError(filter: $filter, limit: 1) {
    __typename
    ... on Runs { results { runId status } }
    ... on PythonError { message }
  }
}
"""

LAUNCH_RUN = """
mutation LaunchRun($executionParams: ExecutionParams!) {
  launchRun(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
    ... on PipelineNotFoundError { message }
    ... on UnauthorizedError { message }
  }
}
"""

LAUNCH_BACKFILL = """
mutation LaunchBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on PartitionSetNotFoundError { message }
    ... on PartitionKeysNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on InvalidSubsetError { message }
  }
}
"""

# Runs in these states mean the photo is handled already; a FAILURE or CANCELED run may be retried.
ACTIVE_OR_DONE = ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "SUCCESS"]


@dataclass(frozen=True)
class LaunchResult:
    run_id: str
    launched: bool  # False: an existing run for this photo was found and nothing new was launched


class DagsterLauncher:
    def __init__(self, url: str, timeout: float = 15.0) -> None:
        self.endpoint = url.rstrip("/") + "/graphql"
        self.timeout = timeout

    def _call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables}).encode()
        request = urllib.request.Request(self.endpoint, data=body, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                payload = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code >= 500:
                raise RetryableError(f"Dagster webserver answered {error.code}") from error
            raise ConfigurationError(f"Dagster webserver refused the request ({error.code})") from error
        except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
            raise RetryableError(f"Dagster webserver unreachable at {self.endpoint}: {error}") from error
        if payload.get("errors"):
            raise PicsarisError(f"GraphQL error: {payload['errors'][0].get('message')}")
        return payload["data"]

    def launch_photo(self, photo: Photo) -> LaunchResult:
        """The photo's run of `process_photo`, tagged for fairness (uploader) and de-duplication."""
        tags = run_tags("intake", event=photo.event_id, uploader=photo.uploader_id)
        return self._launch(PHOTO_PARTITIONS, PHOTO_JOB, PHOTO_TAG, photo.id, tags)

    def announce_photo(self, photo: Photo) -> None:
        """Add the photo's partition without launching a run: for a photo intake queued for the
        batch sensor (the bucket sensor then knows it is on its way and leaves it alone)."""
        self.add_partitions(PHOTO_PARTITIONS, [photo.id])

    def launch_attendee(self, attendee: Attendee) -> LaunchResult:
        """The attendee's run of `process_attendee` (reference from the selfie, then late-joiner matches)."""
        tags = run_tags("intake", event=attendee.event_id)
        return self._launch(ATTENDEE_PARTITIONS, ATTENDEE_JOB, ATTENDEE_TAG, attendee.id, tags)

    def _launch(self, partitions: str, job: str, key_tag: str, key: str, tags: dict[str, str]) -> LaunchResult:
        selector = {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME}
        self.add_partitions(partitions, [key])
        existing = self._call(
            EXISTING_RUNS, {"filter": {"tags": [{"key": key_tag, "value": key}], "statuses": ACTIVE_OR_DONE}}
        )["runsOrError"]
        if existing["__typename"] == "Runs" and existing["results"]:
            return LaunchResult(existing["results"][0]["runId"], launched=False)
        all_tags = {PARTITION_TAG: key, key_tag: key, **tags}
        params = {
            "selector": {**selector, "jobName": job},
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in all_tags.items()]},
        }
        launched = self._call(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if launched["__typename"] != "LaunchRunSuccess":
            detail = launched.get("message") or json.dumps(launched.get("errors", launched["__typename"]))
            raise PicsarisError(f"could not launch the {job} run of {key}: {detail}")
        return LaunchResult(launched["run"]["runId"], launched=True)

    def launch_backfill(
        self, asset_names: Sequence[str], partition_keys: Sequence[str], title: str, tags: dict[str, str]
    ) -> str:
        """An asset backfill of these assets over these partitions (run by the daemon, listed under
        Backfills in the UI); returns its id. Partitions must exist already."""
        params = {
            "assetSelection": [{"path": [name]} for name in asset_names],
            "partitionNames": list(partition_keys),
            "title": title,
            "tags": [{"key": k, "value": v} for k, v in tags.items()],
        }
        launched = self._call(LAUNCH_BACKFILL, {"backfillParams": params})["launchPartitionBackfill"]
        if launched["__typename"] != "LaunchBackfillSuccess":
            raise PicsarisError(
                f"could not launch backfill {title!r}: {launched.get('message', launched['__typename'])}"
            )
        return str(launched["backfillId"])

    def add_partitions(self, partitions: str, keys: Sequence[str]) -> None:
        """Make sure dynamic partitions exist (existing ones are fine)."""
        selector = {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME}
        for key in keys:
            added = self._call(
                ADD_PARTITION, {"repositorySelector": selector, "partitionsDefName": partitions, "partitionKey": key}
            )["addDynamicPartition"]
            if added["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
                raise PicsarisError(f"could not add partition {key}: {added.get('message', added['__typename'])}")
