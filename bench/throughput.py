"""Throughput: the bare face work in a plain loop against the pipeline (`picsaris process`), side by
side in one run on the same photos, so the ratio holds on a shared, noisy machine.

    .venv/bin/python bench/throughput.py [--photos N] [--shared ../shared/faces]

Photos come from ../shared/faces, repeated with a small re-encoding (quality and a 1-px crop) so
that none is a byte-identical duplicate. Prints photos/s for each path and the ratio pipeline/bare.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def make_photos(shared: Path, count: int, folder: Path) -> list[Path]:
    sources = sorted(p for p in shared.iterdir() if p.suffix.lower() in (".jpg", ".png"))
    paths = []
    for i in range(count):
        source = sources[i % len(sources)]
        image = Image.open(source).convert("RGB")
        round_ = i // len(sources)
        if round_:
            image = image.crop((round_, 0, image.width, image.height))  # a different photo, same faces
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90 - round_)
        path = folder / f"{i:05d}_{source.stem}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(path)
    return paths


def bare(paths: list[Path]) -> float:
    """Decode, resize, detect and embed each photo in a plain loop: the face work and nothing else."""
    from picsaris_pipeline.faces import get_engine
    from picsaris_pipeline.imaging import decode_photo, encode_jpeg, load_rgb

    engine = get_engine("dlib")
    start = time.perf_counter()
    for path in paths:
        image = load_rgb(encode_jpeg(decode_photo(path.read_bytes()).image))
        engine.embed(image, engine.detect(image))
    return time.perf_counter() - start


def pipeline(paths: list[Path], shared: Path, home: Path) -> tuple[float, float]:
    """Upload through intake, then time `picsaris process` (a separate process, as a user runs it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PICSARIS_") and k != "DAGSTER_HOME"}
    env["PICSARIS_HOME"] = str(home)

    def run(*args: str) -> str:
        return subprocess.run(
            [str(BIN / "picsaris"), *args], env=env, check=True, capture_output=True, text=True
        ).stdout

    event = run("event", "create", "bench").strip()
    guest = run("attendee", "add", event, "--name", "Obama", "--selfie", str(shared / "obama_1.jpg")).strip()
    run("upload", event, "--uploader", guest, *map(str, paths))
    start = time.perf_counter()
    run("process")
    elapsed = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return elapsed, peak_kib / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=34)
    parser.add_argument("--shared", type=Path, default=REPO.parent / "shared" / "faces")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "photos"
        folder.mkdir()
        paths = make_photos(args.shared, args.photos, folder)
        bare_s = bare(paths)
        pipe_s, rss_mib = pipeline(paths, args.shared, Path(tmp) / "home")
    n = len(paths)
    print(f"photos: {n}")
    print(
        f"bare face work, one core, plain loop: {bare_s:7.2f} s  {n / bare_s:6.2f} photos/s  {bare_s / n:.3f} s/photo"
    )
    print(
        f"pipeline, picsaris process:           {pipe_s:7.2f} s  {n / pipe_s:6.2f} photos/s  {pipe_s / n:.3f} s/photo"
    )
    print(f"ratio pipeline/bare: {pipe_s / bare_s:.2f}x   peak RSS of the process run: {rss_mib:.0f} MiB")


if __name__ == "__main__":
    main()
