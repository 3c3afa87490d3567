"""Match quality at the size of a real event: a wedding built from ../shared/lfw-dev, run through
the real pipeline on the embedded default, scored against who is really in each photo.

    .venv/bin/python bench/quality.py [--guests 400] [--strangers 800] [--seed 1] [--env KEY=VALUE]...
    .venv/bin/python bench/quality.py --guests 40 --strangers 80      # the small size, a few minutes
    .venv/bin/python bench/quality.py --groups [--photos 60]    # composed group photos (bench/quality_groups.py)

The event: --guests people drawn (with --seed) from those with two or more LFW photos; a guest's
first photo is their sign-up selfie and up to two more of their photos are uploaded. --strangers
people (those with a single photo first) appear in one uploaded photo each and never sign up. Every
step is the real command line as subprocesses in a temporary PICSARIS_HOME: `picsaris attendee
import` of a folder of selfies named after the guests, one `picsaris upload` of every photo (by the
first guest), `picsaris process`, then `picsaris matches` and `picsaris photos` are read back.

Printed (an LFW photo is of one person, centred; other faces in it are unlabelled bystanders):
  precision             matches naming the photo's person / all matches
  recall                guest photos where that guest is matched / guest photos
  wrong-guest rate      guest photos where a different guest is matched / guest photos
  stranger false-match  stranger photos with any match / stranger photos
  faces found           photos with a face, faces in all, and the selfies the import refused (why)
  seconds per stage     wall time of import, upload and process, and per guest or photo
A guest whose selfie is refused never signs up: their photos count for precision (any match on
them is wrong) but not for recall.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import _support as bench

LFW = bench.REPO.parent / "shared" / "lfw-dev"
PICSARIS = str(bench.BIN / "picsaris")


@dataclass(frozen=True)
class Wedding:
    selfies: dict[str, Path]  # guest's display name -> their selfie
    uploads: list[Path]
    person_of: dict[str, str]  # uploaded file name -> display name of the person in it
    guest_photos: dict[str, list[str]]  # display name -> file names of their uploaded photos
    stranger_photos: list[str]


def display_name(person: str) -> str:
    """LFW's `AJ_Cook` is the guest "AJ Cook", as the import names `AJ_Cook.jpg`."""
    return " ".join(person.replace("_", " ").split())


def build_wedding(lfw: Path, guests: int, strangers: int, seed: int) -> Wedding:
    if not (lfw / "MANIFEST.csv").exists():
        raise SystemExit(f"no faces: {lfw}/MANIFEST.csv is missing (give --lfw)")
    photos: dict[str, list[str]] = {}
    with open(lfw / "MANIFEST.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            photos.setdefault(row["person"], []).append(row["file"])
    for files in photos.values():
        files.sort()
    rng = random.Random(seed)
    several = sorted(p for p, files in photos.items() if len(files) >= 2)
    if guests > len(several):
        raise SystemExit(f"--guests {guests}: only {len(several)} people have two or more photos")
    chosen = rng.sample(several, guests)
    # Strangers: people with one photo first (they never sign up anyway), then unchosen others.
    single = sorted(p for p, files in photos.items() if len(files) == 1)
    rest = sorted(set(several) - set(chosen))
    pool = rng.sample(single, min(strangers, len(single)))
    pool += rng.sample(rest, min(strangers - len(pool), len(rest)))
    if len(pool) < strangers:
        raise SystemExit(f"--strangers {strangers}: only {len(pool)} people are left")
    selfies, uploads, person_of, guest_photos = {}, [], {}, {}
    for person in chosen:
        name = display_name(person)
        selfies[name] = lfw / photos[person][0]
        guest_photos[name] = []
        for file in photos[person][1:3]:
            uploads.append(lfw / file)
            person_of[Path(file).name] = name
            guest_photos[name].append(Path(file).name)
    stranger_photos = []
    for person in pool:
        file = photos[person][0]
        uploads.append(lfw / file)
        person_of[Path(file).name] = display_name(person)
        stranger_photos.append(Path(file).name)
    rng.shuffle(uploads)  # guests' and strangers' photos arrive mixed, as at a party
    return Wedding(selfies, uploads, person_of, guest_photos, stranger_photos)


def picsaris(env: dict[str, str], *args: str, ok_codes: tuple[int, ...] = (0,)) -> tuple[str, str, float]:
    """(stdout, stderr, wall seconds) of one real `picsaris` process."""
    started = time.perf_counter()
    result = subprocess.run([PICSARIS, *args], env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if result.returncode not in ok_codes:
        raise SystemExit(f"picsaris {' '.join(args[:3])} ... failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result.stdout, result.stderr, elapsed


def refusal_reasons(stderr: str) -> Counter[str]:
    """The import's `refused FILE: NAME: reason[: detail]` lines, counted by reason."""
    reasons: Counter[str] = Counter()
    for line in stderr.splitlines():
        parts = line.strip().split(": ")
        if parts[0].startswith("refused ") and len(parts) > 2:
            reasons[parts[2]] += 1
    return reasons


def ratio(part: int, whole: int) -> str:
    return f"{part / whole:.3f} ({part}/{whole})" if whole else "-"


def main() -> None:
    if "--groups" in sys.argv[1:]:
        # The second mode: composed group photos, detection recall by face size (bench/quality_groups.py).
        from quality_groups import main as groups_main

        sys.argv.remove("--groups")
        groups_main()
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=400)
    parser.add_argument("--strangers", type=int, default=800)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for every picsaris process")
    parser.add_argument(
        "--keep-logs", dest="keep", type=Path, default=None, help="copy the run's home (logs, no images) here"
    )
    parser.add_argument(
        "--keep-db",
        action="store_true",
        help="with --keep-logs, keep the SQLite database too (faces, boxes, quality) to study the errors",
    )
    options = parser.parse_args()
    wedding = build_wedding(options.lfw, options.guests, options.strangers, options.seed)
    bench.note(
        f"{len(wedding.selfies)} guests, {len(wedding.stranger_photos)} strangers, {len(wedding.uploads)} photos; "
        f"{bench.git_state()}; {bench.machine()}"
    )
    with tempfile.TemporaryDirectory(prefix="picsaris-quality-") as work:
        root = Path(work)
        with bench.home(root / "home", extra_env=bench.parse_env(options.env)) as h:
            figures = run_event(h.env, root, wedding)
            bench.keep_dir(root, options.keep, with_databases=options.keep_db)
    report(options, wedding, figures)


@dataclass
class Figures:
    refused: Counter[str]
    signed_up: dict[str, str]  # display name -> attendee id
    matches: list[dict]
    photos: list[dict]
    seconds: dict[str, float]
    uploads_refused: int


def run_event(env: dict[str, str], root: Path, wedding: Wedding) -> Figures:
    selfies = root / "selfies"
    selfies.mkdir()
    for name, path in wedding.selfies.items():
        (selfies / f"{name.replace(' ', '_')}{path.suffix}").symlink_to(path)
    event_id = picsaris(env, "event", "create", "Wedding benchmark")[0].strip()
    bench.note("picsaris attendee import ...")
    out, err, import_s = picsaris(env, "attendee", "import", event_id, str(selfies))
    signed_up = {row["name"]: row["attendee_id"] for row in csv.DictReader(out.splitlines())}
    uploader = next(iter(signed_up.values()))
    bench.note(f"imported {len(signed_up)}; picsaris upload of {len(wedding.uploads)} photos ...")
    # upload exits 1 when it refused a file; the refusals are counted, the rest were uploaded.
    paths = map(str, wedding.uploads)
    _, upload_err, upload_s = picsaris(env, "upload", event_id, "--uploader", uploader, *paths, ok_codes=(0, 1))
    bench.note("picsaris process ...")
    _, _, process_s = picsaris(env, "process", "--event", event_id)
    matches = json.loads(picsaris(env, "matches", event_id, "--format", "json")[0])
    photos = json.loads(picsaris(env, "photos", event_id, "--format", "json")[0])
    seconds = {"import": import_s, "upload": upload_s, "process": process_s}
    uploads_refused = sum(1 for line in upload_err.splitlines() if line.startswith("refused "))
    return Figures(refusal_reasons(err), signed_up, matches, photos, seconds, uploads_refused)


def report(options: argparse.Namespace, wedding: Wedding, figures: Figures) -> None:
    guests = set(figures.signed_up)
    correct = sum(1 for m in figures.matches if wedding.person_of.get(m["file_name"]) == m["attendee_name"])
    matched_in: dict[str, set[str]] = {}
    for m in figures.matches:
        matched_in.setdefault(m["file_name"], set()).add(m["attendee_name"])
    guest_photos = [(name, f) for name in guests for f in wedding.guest_photos[name]]
    found = sum(1 for name, f in guest_photos if name in matched_in.get(f, set()))
    wrong_guest = sum(1 for name, f in guest_photos if matched_in.get(f, set()) - {name})
    stranger_hits = sum(1 for f in wedding.stranger_photos if matched_in.get(f))
    with_face = sum(1 for p in figures.photos if int(p["faces"] or 0) > 0)
    faces = sum(int(p["faces"] or 0) for p in figures.photos)
    statuses = Counter(p["status"] for p in figures.photos)
    refused = sum(figures.refused.values())
    print(
        f"Match quality at event scale: --guests {options.guests} --strangers {options.strangers} "
        f"--seed {options.seed} {' '.join('--env ' + e for e in options.env)}".rstrip()
    )
    print(f"tree {bench.git_state()}; {bench.machine()}")
    rows = [
        ("precision", ratio(correct, len(figures.matches))),
        ("recall", ratio(found, len(guest_photos))),
        ("wrong-guest rate", ratio(wrong_guest, len(guest_photos))),
        ("stranger false-match rate", ratio(stranger_hits, len(wedding.stranger_photos))),
        ("photos with a face", ratio(with_face, len(figures.photos))),
        ("faces found", str(faces)),
        ("uploads refused", str(figures.uploads_refused)),
        ("photo statuses", ", ".join(f"{s} {n}" for s, n in sorted(statuses.items()))),
        ("guests signed up", ratio(len(guests), len(wedding.selfies))),
        ("selfies refused", f"{refused}: " + ", ".join(f"{r} {n}" for r, n in figures.refused.most_common())),
    ]
    print(bench.table(("figure", "value"), rows))
    # What went wrong, one line each: the cases a threshold or policy change should fix.
    faces_in = {p["file_name"]: int(p["faces"] or 0) for p in figures.photos}
    wrong = [
        (m["file_name"], wedding.person_of.get(m["file_name"], "?"), m["attendee_name"], float(m["similarity"]))
        for m in figures.matches
        if wedding.person_of.get(m["file_name"]) != m["attendee_name"]
    ]
    missed = [(f, name, "-", faces_in.get(f, 0)) for name, f in guest_photos if name not in matched_in.get(f, set())]
    if wrong or missed:
        errors = [(f, who, f"matched {guest} ({sim:.2f})") for f, who, guest, sim in sorted(wrong)]
        errors += [(f, who, f"missed ({faces} face(s) found)") for f, who, _, faces in sorted(missed)]
        print(bench.table(("photo", "person in it", "error"), errors))
    per = {"import": len(wedding.selfies), "upload": len(wedding.uploads), "process": len(wedding.uploads)}
    unit = {"import": "guest", "upload": "photo", "process": "photo"}
    stage_rows = [
        (stage, seconds, f"{seconds / per[stage]:.3f} s/{unit[stage]}") for stage, seconds in figures.seconds.items()
    ]
    print(bench.table(("stage", "seconds", "per item"), stage_rows))


if __name__ == "__main__":
    sys.exit(main())
