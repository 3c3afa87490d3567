"""A real face-model switch on ../shared/faces, on the embedded default, with its figures.

Signs up the named people (one without consent), uploads every other shared photo, processes them
under the first model, then switches PICSARIS_FACE_MODEL and runs `picsaris reembed`. Prints the
wall time of each phase, the matches before and after, what changed between the versions, and
when the event cut over.

    .venv/bin/python bench/model_switch.py [--from dlib-resnet-v1-5pt-j0] [--to dlib-resnet-v1-5pt-j4]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _support as bench

FACES = bench.FACES
PICSARIS = str(Path(sys.executable).parent / "picsaris")


def run(env: dict[str, str], *args: str) -> tuple[str, float]:
    started = time.perf_counter()
    result = subprocess.run([PICSARIS, *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        sys.exit(f"picsaris {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout, time.perf_counter() - started


def pairs(rows: list[dict]) -> dict[tuple[str, str], float]:
    return {(row["attendee_name"], row["file_name"]): row["similarity"] for row in rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--from", dest="old", default="dlib-resnet-v1-5pt-j0")
    parser.add_argument("--to", dest="new", default="dlib-resnet-v1-5pt-j4")
    options = parser.parse_args()
    with open(FACES / "MANIFEST.csv", newline="") as handle:
        manifest = [row["file"] for row in csv.DictReader(handle)]
    selfies = {selfie for selfie, _ in bench.SELFIES.values()}
    uploads = [str(FACES / name) for name in manifest if name not in selfies]

    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PICSARIS_") and k != "DAGSTER_HOME"}
        env |= {"PICSARIS_HOME": home, "PICSARIS_FACE_MODEL": options.old}
        event = run(env, "event", "create", "Model switch benchmark")[0].strip()
        ids = {}
        for name, (selfie, consent) in bench.SELFIES.items():
            flags = [] if consent else ["--no-consent"]
            ids[name] = run(env, "attendee", "add", event, "--name", name, "--selfie", str(FACES / selfie), *flags)[0]
        run(env, "upload", event, "--uploader", ids["Kit Harington"].strip(), *uploads)
        _, process_s = run(env, "process")
        before = json.loads(run(env, "matches", event, "--format", "json")[0])

        env["PICSARIS_FACE_MODEL"] = options.new
        shown_during = json.loads(run(env, "matches", event, "--format", "json")[0])
        _, reembed_s = run(env, "reembed")
        after = json.loads(run(env, "matches", event, "--format", "json")[0])
        versions = run(env, "event", "versions", event)[0]

    old, new = pairs(before), pairs(after)
    common = sorted(set(old) & set(new))
    deltas = [new[key] - old[key] for key in common]
    print(f"photos: {len(uploads)} uploaded, {len(bench.SELFIES)} selfies ({len(bench.SELFIES) - 1} with consent)")
    print(
        f"process under {options.old}: {process_s:.1f} s ({process_s / len(uploads):.2f} s/photo, models loaded once)"
    )
    print(f"reembed under {options.new}: {reembed_s:.1f} s ({reembed_s / len(uploads):.2f} s/photo)")
    print(f"matches under {options.old}: {len(old)}; under {options.new}: {len(new)}; in both: {len(common)}")
    print(f"only under {options.old}: {sorted(set(old) - set(new)) or 'none'}")
    print(f"only under {options.new}: {sorted(set(new) - set(old)) or 'none'}")
    if deltas:
        print(
            f"similarity change on common matches: mean {statistics.mean(deltas):+.4f}, "
            f"min {min(deltas):+.4f}, max {max(deltas):+.4f}"
        )
    print(
        f"after the switch, before the re-embedding, guests still saw the {options.old} matches: "
        f"{pairs(shown_during) == old}"
    )
    print(versions.strip())


if __name__ == "__main__":
    main()
