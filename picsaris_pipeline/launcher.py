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
from dataclasses import dataclass
from typing import Any

from picsaris_pipeline.domain import Photo
from picsaris_pipeline.errors import ConfigurationError, PicsarisError, RetryableError
from picsaris_pipeline.partitions import EVENT_TAG, PHOTO_JOB, PHOTO_PARTITIONS, PHOTO_TAG, UPLOADER_TAG

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
        selector = {"repositoryLocationName": LOCATION_NAME, "repositoryName": REPOSITORY_NAME}
        added = self._call(
            ADD_PARTITION,
            {"repositorySelector": selector, "partitionsDefName": PHOTO_PARTITIONS, "partitionKey": photo.id},
        )["addDynamicPartition"]
        if added["__typename"] not in ("AddDynamicPartitionSuccess", "DuplicateDynamicPartitionError"):
            raise PicsarisError(f"could not add partition {photo.id}: {added.get('message', added['__typename'])}")
        existing = self._call(
            EXISTING_RUNS, {"filter": {"tags": [{"key": PHOTO_TAG, "value": photo.id}], "statuses": ACTIVE_OR_DONE}}
        )["runsOrError"]
        if existing["__typename"] == "Runs" and existing["results"]:
            return LaunchResult(existing["results"][0]["runId"], launched=False)
        tags = {
            "dagster/partition": photo.id,
            PHOTO_TAG: photo.id,
            EVENT_TAG: photo.event_id,
            UPLOADER_TAG: photo.uploader_id,
            "picsaris/source": "intake",
        }
        params = {
            "selector": {**selector, "jobName": PHOTO_JOB},
            "runConfigData": {},
            "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
        }
        launched = self._call(LAUNCH_RUN, {"executionParams": params})["launchRun"]
        if launched["__typename"] != "LaunchRunSuccess":
            detail = launched.get("message") or json.dumps(launched.get("errors", launched["__typename"]))
            raise PicsarisError(f"could not launch the run of photo {photo.id}: {detail}")
        return LaunchResult(launched["run"]["runId"], launched=True)
