"""The bare face work: what the pipeline must do per photo, without the pipeline, on one or two cores."""

from __future__ import annotations

import multiprocessing as mp
import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any


# -- the bare face work -------------------------------------------------------------------------
def bare_one(engine: Any, path: Path) -> int:
    """Decode, normalise (as verification does), detect and embed one photo: the face work, nothing else."""
    from picsaris_pipeline.domain.imaging import decode_photo, encode_jpeg, load_rgb

    image = load_rgb(encode_jpeg(decode_photo(path.read_bytes()).image))
    return len(engine.embed(image, engine.detect(image)))


def bare_loop(paths: Sequence[Path]) -> float:
    """One core, a plain loop, in this process; the models load inside the timed part (as they would
    in any fresh process), imports do not."""
    from picsaris_pipeline.faces import get_engine

    # PICSARIS_FACE_MODEL as the pipeline reads it, so HOG and YuNet can be compared.
    engine = get_engine("dlib", os.environ.get("PICSARIS_FACE_MODEL") or None)
    start = time.perf_counter()
    for path in paths:
        bare_one(engine, path)
    return time.perf_counter() - start


def _bare_worker(paths: list[Path], work: Any, ready: Any, go: Any, done: Any) -> None:
    from picsaris_pipeline.domain.imaging import decode_photo  # noqa: F401  (imports before the clock starts)
    from picsaris_pipeline.faces import get_engine

    ready.put(os.getpid())
    go.wait()
    engine = get_engine("dlib", os.environ.get("PICSARIS_FACE_MODEL") or None)
    count = 0
    while True:
        index = work.get()
        if index is None:
            break
        bare_one(engine, paths[index])
        count += 1
    done.put((os.getpid(), count, time.perf_counter()))


def bare_parallel(paths: Sequence[Path], workers: int = 2) -> float:
    """The same face work split across `workers` fresh processes pulling from one queue (the best a
    plain program can do on that many cores). Timed from the moment every worker has imported
    everything until the last one finishes; each loads its own models inside that time."""
    ctx = mp.get_context("spawn")
    work, ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Queue(), ctx.Event()
    for i in range(len(paths)):
        work.put(i)
    for _ in range(workers):
        work.put(None)
    processes = [ctx.Process(target=_bare_worker, args=(list(paths), work, ready, go, done)) for _ in range(workers)]
    for process in processes:
        process.start()
    for _ in processes:
        ready.get(timeout=300)
    start = time.perf_counter()
    go.set()
    ends = [done.get(timeout=3600)[2] for _ in processes]
    for process in processes:
        process.join()
    return max(ends) - start
