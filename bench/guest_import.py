"""Signing up a guest list: `picsaris attendee add` once per guest vs one `picsaris attendee import`,
side by side in one run, each in its own temporary PICSARIS_HOME on the embedded default.

    .venv/bin/python bench/guest_import.py [--guests 40] [--seed 1]

The guests are --guests people of ../shared/lfw-dev (drawn with --seed, as bench/quality.py draws
them), each with their first photo as the selfie. The import runs first, on a folder of selfies
named after the guests; then the guests it accepted are signed up again in a fresh home by one
`attendee add` process each, followed by the `picsaris process` that builds their references (the
import builds them itself, so that is the like-for-like total). Printed: wall seconds of each side,
seconds per guest and the ratio, and that both sides end with the same number of ready references.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import tempfile
from pathlib import Path

import _support as bench
from quality import LFW, build_wedding, picsaris


def ready(env: dict[str, str], event_id: str) -> int:
    rows = json.loads(picsaris(env, "attendee", "list", event_id, "--format", "json")[0])
    return sum(1 for row in rows if row["reference_status"] == "ready")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=40)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lfw", type=Path, default=LFW)
    options = parser.parse_args()
    selfies = build_wedding(options.lfw, options.guests, 0, options.seed).selfies
    bench.note(f"{len(selfies)} guests; {bench.git_state()}; {bench.machine()}")
    with tempfile.TemporaryDirectory(prefix="picsaris-guest-import-") as work:
        root = Path(work)
        folder = root / "selfies"
        folder.mkdir()
        for name, path in selfies.items():
            (folder / f"{name.replace(' ', '_')}{path.suffix}").symlink_to(path)
        with bench.home(root / "import") as h:
            event_id = picsaris(h.env, "event", "create", "Guest list")[0].strip()
            bench.note("one picsaris attendee import ...")
            out, _, import_s = picsaris(h.env, "attendee", "import", event_id, str(folder))
            accepted = [row["name"] for row in csv.DictReader(out.splitlines())]
            import_ready = ready(h.env, event_id)
        with bench.home(root / "add") as h:
            event_id = picsaris(h.env, "event", "create", "One at a time")[0].strip()
            bench.note(f"picsaris attendee add x {len(accepted)} ...")
            add_s = 0.0
            for name in accepted:
                add_s += picsaris(h.env, "attendee", "add", event_id, "--name", name, "--selfie", str(selfies[name]))[2]
            bench.note("picsaris process ...")
            process_s = picsaris(h.env, "process", "--event", event_id)[2]
            add_ready = ready(h.env, event_id)
    guests = len(accepted)
    print(f"Signing up {guests} guests ({len(selfies)} drawn, seed {options.seed}); tree {bench.git_state()}")
    rows = [
        ("attendee add x N", add_s, add_s / guests, "-"),
        ("  + picsaris process", add_s + process_s, (add_s + process_s) / guests, add_ready),
        ("attendee import", import_s, import_s / guests, import_ready),
    ]
    print(bench.table(("way", "seconds", "s/guest", "references ready"), rows))
    print(
        f"add x N + process / import: {(add_s + process_s) / import_s:.1f}x; add x N alone / import: "
        f"{add_s / import_s:.1f}x"
    )


if __name__ == "__main__":
    sys.exit(main())
