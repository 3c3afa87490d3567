"""The Dagster UI shows what the CLI did: a real dagster-webserver on the embedded default's
instance, asked over GraphQL (what the UI itself reads) for partitions, materializations and runs."""

import json
import os

from tests.support.cli_runner import picsaris
from tests.support.dagster_processes import dagster_services, graphql

QUERY = """
{
  assetNodeOrError(assetKey: {path: ["matches_published"]}) {
    ... on AssetNode {
      partitionKeys
      assetMaterializations(limit: 20) {
        partition
        metadataEntries { label ... on TextMetadataEntry { text } ... on JsonMetadataEntry { jsonString } }
      }
    }
  }
  runsOrError { ... on Runs { results { jobName status } } }
}
"""


def test_the_ui_shows_the_photos_processed_by_the_cli(picsaris_home, shared_photos, tmp_path):
    event = picsaris("event", "create", "UI check").strip()
    obama = picsaris(
        "attendee", "add", event, "--name", "Barack Obama", "--selfie", str(shared_photos["obama_1.jpg"].path)
    ).strip()
    photo_ids = picsaris(
        "upload",
        event,
        "--uploader",
        obama,
        str(shared_photos["obama_2.jpg"].path),
        str(shared_photos["noface_eagle.jpg"].path),
    ).split()
    picsaris("process")

    env = {**os.environ, "DAGSTER_HOME": str(picsaris_home / "dagster")}
    with dagster_services(env, tmp_path) as port:
        data = graphql(port, QUERY)
    node = data["assetNodeOrError"]
    assert sorted(node["partitionKeys"]) == sorted(photo_ids)
    matched = {
        m["partition"]: {e["label"]: e.get("text") or e.get("jsonString") for e in m["metadataEntries"]}
        for m in node["assetMaterializations"]
    }
    assert json.loads(matched[photo_ids[0]]["matched_attendee_ids"]) == [obama]
    assert json.loads(matched[photo_ids[1]]["matched_attendee_ids"]) == []
    runs = data["runsOrError"]["results"]
    assert sorted(r["jobName"] for r in runs) == [
        "ops_health_checks",
        "process_attendee",
        "process_photo",
        "process_photo",
        "summarize_event",
    ]
    assert {r["status"] for r in runs} == {"SUCCESS"}
