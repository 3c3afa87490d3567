"""The pipeline's own match errors, replayed offline: reads the SQLite database that
`bench/quality.py --keep-logs DIR --keep-db` kept (the faces the pipeline found, their vectors and
quality verdicts, the guests' references) and applies other match policies to exactly those faces,
so a policy change is measured on what the pipeline sees (every face of a photo, bystanders cut by
the frame included), not on the centred faces of a descriptor cache.

    .venv/bin/python bench/quality.py --seed 3 --keep-logs /tmp/q3/keep --keep-db    # ~7 min a seed
    .venv/bin/python bench/pipeline_replay.py --seed 3 /tmp/q3/keep [--seed 4 /tmp/q4/keep ...]
        [--bars 0.5:0.575:0.0125] [--margins 0.06:0.14:0.02] [--weights 0,0.25,0.5,0.75]
        [--neighbours 10] [--gates pipeline,...] [--chosen BAR,MARGIN,WEIGHT[,GATE]]

Each kept run is given with the seed it was built with (the seed rebuilds who is in which photo).
First the replay is checked against the run itself: the policy the run used must give exactly the
matches the run stored, or the replay is not measuring the pipeline and the bench stops. Then a
grid of (crowding weight and neighbours, confident bar, margin), optionally under stricter quality
gates, is printed with precision and recall per seed, the worst seed's precision, and pooled
precision, recall and strangers matched, the recall once every right candidate is confirmed and
the candidates proposed to the wrong guest; then the wrong matches of the chosen point.
"""

from __future__ import annotations

import argparse
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import _support as bench
import numpy as np
from quality import LFW, build_wedding

from picsaris_pipeline.domain import match_policy as rules
from picsaris_pipeline.domain.match_policy import DEFAULT_POLICY, MatchPolicy


@dataclass(frozen=True)
class PhotoFaces:
    file_name: str
    scores: np.ndarray  # (faces, attendees): each face to each guest's nearest reference
    matchable: np.ndarray  # (faces,) bool: the quality gate's verdict
    size_px: np.ndarray  # (faces,) the box's shorter side
    cut_by_frame: np.ndarray  # (faces,) bool: the box touches the photo's edge


@dataclass(frozen=True)
class KeptRun:
    seed: int
    names: list[str]  # attendee index -> display name
    selfies: np.ndarray  # (attendees, dimension): the sign-up selfies, for the crowding correction
    photos: list[PhotoFaces]
    stored: set[tuple[str, str]]  # (file name, attendee name) the run matched
    policy_id: str
    person_of: dict[str, str]
    guest_photos: dict[str, list[str]]
    stranger_photos: list[str]


def _vector(blob: bytes) -> np.ndarray:
    return np.frombuffer(blob, dtype="<f4")


def load(keep: Path, seed: int, guests: int, strangers: int, lfw: Path) -> KeptRun:
    databases = sorted(keep.rglob("picsaris.db"))
    if not databases:
        raise SystemExit(f"{keep}: no picsaris.db (run bench/quality.py with --keep-logs {keep} --keep-db)")
    db = sqlite3.connect(f"file:{databases[0]}?mode=ro", uri=True)
    names: list[str] = []
    index_of: dict[str, int] = {}
    for attendee_id, name in db.execute("SELECT id, name FROM attendees ORDER BY id"):
        index_of[attendee_id] = len(names)
        names.append(name)
    refs: list[np.ndarray] = []
    owners: list[int] = []
    # Selfies first, in attendee order, as Repository.event_reference_sets lists them.
    for table in ("attendee_vectors", "attendee_references"):
        for attendee_id, blob in db.execute(f"SELECT attendee_id, vector FROM {table} ORDER BY attendee_id"):
            refs.append(_vector(blob))
            owners.append(index_of[attendee_id])
    if owners[: len(names)] != list(range(len(names))):
        raise SystemExit(f"{keep}: a signed-up guest has no selfie vector; the replay expects one each")
    references = np.stack(refs)
    faces: dict[str, list[tuple]] = {}
    photo_rows = {row[0]: row[1:] for row in db.execute("SELECT id, file_name, width, height FROM photos")}
    for photo_id, face_index, blob, matchable, size, *box in db.execute(
        "SELECT f.photo_id, f.face_index, v.vector, COALESCE(q.matchable, 1), COALESCE(q.size_px, 0),"
        " f.left, f.top, f.right, f.bottom FROM faces f"
        " JOIN face_vectors v ON v.face_id = f.id LEFT JOIN face_quality q ON q.face_id = f.id"
    ):
        _, width, height = photo_rows[photo_id]
        left, top, right, bottom = box
        cut = left <= 0 or top <= 0 or right >= width - 1 or bottom >= height - 1
        faces.setdefault(photo_id, []).append((face_index, _vector(blob), bool(matchable), size, cut))
    photos = []
    for photo_id, rows in sorted(faces.items()):
        rows.sort(key=lambda row: row[0])
        vectors = np.stack([r[1] for r in rows])
        photos.append(
            PhotoFaces(
                file_name=photo_rows[photo_id][0],
                scores=rules.attendee_scores(vectors, references, owners, len(names)),
                matchable=np.array([r[2] for r in rows], dtype=bool),
                size_px=np.array([r[3] for r in rows]),
                cut_by_frame=np.array([r[4] for r in rows], dtype=bool),
            )
        )
    stored = {
        (file_name, name)
        for file_name, name in db.execute(
            "SELECT p.file_name, a.name FROM matches m JOIN photos p ON p.id = m.photo_id"
            " JOIN attendees a ON a.id = m.attendee_id"
        )
    }
    policies = {row[0] for row in db.execute("SELECT DISTINCT policy_id FROM photo_match_policies")}
    if len(policies) != 1:
        raise SystemExit(f"{keep}: photos matched under {sorted(policies)}; the replay needs one policy")
    wedding = build_wedding(lfw, guests, strangers, seed)  # who is really in each photo
    return KeptRun(
        seed=seed,
        names=names,
        selfies=references[: len(names)],
        photos=photos,
        stored=stored,
        policy_id=policies.pop(),
        person_of=wedding.person_of,
        guest_photos=wedding.guest_photos,
        stranger_photos=wedding.stranger_photos,
    )


# Gates tried on top of the pipeline's own quality verdict: which faces may be matched at all.
GATES = {
    "pipeline": lambda photo: photo.matchable,
    "not cut by the frame": lambda photo: photo.matchable & ~photo.cut_by_frame,
    ">= 48 px": lambda photo: photo.matchable & (photo.size_px >= 48),
    ">= 64 px": lambda photo: photo.matchable & (photo.size_px >= 64),
}


Pairs = set[tuple[str, str]]  # (file name, guest name)


def replay_decisions(run: KeptRun, policy: MatchPolicy, gate: str = "pipeline") -> tuple[Pairs, Pairs]:
    """(matched, proposed): what the policy matches and proposes on the run's faces (no
    confirmations, no references learned: the benchmark's event has neither)."""
    matched: Pairs = set()
    proposed: Pairs = set()
    bias = rules.crowding_bias(rules.guest_crowding(run.selfies, policy.crowding_neighbours), policy)
    for photo in run.photos:
        decision = rules.decide(photo.scores, policy, matchable=GATES[gate](photo), bias=bias)
        matched.update((photo.file_name, run.names[a.attendee_index]) for a in decision.matches)
        proposed.update((photo.file_name, run.names[a.attendee_index]) for a in decision.candidates)
    return matched, proposed


def replay(run: KeptRun, policy: MatchPolicy, gate: str = "pipeline") -> Pairs:
    return replay_decisions(run, policy, gate)[0]


@dataclass(frozen=True)
class Score:
    correct: int
    matches: int
    found: int
    guest_photos: int
    wrong_guest: int
    stranger_hits: int
    strangers: int
    found_or_proposed: int  # guest photos where the guest is matched, or proposed and would confirm
    wrong_proposals: int  # proposals to a guest who is not the photo's person
    photos: int

    def __add__(self, other: Score) -> Score:
        return Score(*(a + b for a, b in zip(self.__dict__.values(), other.__dict__.values(), strict=True)))

    @property
    def precision(self) -> float:
        return self.correct / self.matches if self.matches else 1.0

    @property
    def recall(self) -> float:
        return self.found / self.guest_photos if self.guest_photos else 0.0

    @property
    def recall_confirmed(self) -> float:
        return self.found_or_proposed / self.guest_photos if self.guest_photos else 0.0


def score(run: KeptRun, matched: Pairs, proposed: Pairs = frozenset()) -> Score:
    """The figures bench/quality.py prints, on a replayed set of matches; with the proposals, also
    the recall once every right proposal is confirmed, and the proposals that went to the wrong guest."""
    guests = set(run.names)
    correct = sum(1 for f, name in matched if run.person_of.get(f) == name)
    by_photo: dict[str, set[str]] = {}
    for f, name in matched:
        by_photo.setdefault(f, set()).add(name)
    guest_photos = [(name, f) for name in guests for f in run.guest_photos.get(name, [])]
    found = sum(1 for name, f in guest_photos if name in by_photo.get(f, set()))
    wrong = sum(1 for name, f in guest_photos if by_photo.get(f, set()) - {name})
    strangers = sum(1 for f in run.stranger_photos if by_photo.get(f))
    settled = matched | {(f, name) for f, name in proposed if run.person_of.get(f) == name}
    found_or_proposed = sum(1 for name, f in guest_photos if (f, name) in settled)
    wrong_proposals = sum(1 for f, name in proposed if run.person_of.get(f) != name)
    return Score(
        correct,
        len(matched),
        found,
        len(guest_photos),
        wrong,
        strangers,
        len(run.stranger_photos),
        found_or_proposed,
        wrong_proposals,
        len(run.photos),
    )


def grid(
    bars: list[float], margins: list[float], weights: list[float], neighbours: list[int] | None = None
) -> Iterator[MatchPolicy]:
    for k in neighbours or [DEFAULT_POLICY.crowding_neighbours]:
        for weight in weights:
            for bar in bars:
                for margin in margins:
                    yield replace(
                        DEFAULT_POLICY, min_similarity=bar, margin=margin, crowding_weight=weight, crowding_neighbours=k
                    )


def frange(spec: str) -> list[float]:
    start, stop, step = (float(x) for x in spec.split(":"))
    return [round(start + i * step, 4) for i in range(round((stop - start) / step) + 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", nargs=2, action="append", metavar=("SEED", "KEEP_DIR"), required=True)
    parser.add_argument("--guests", type=int, default=400)
    parser.add_argument("--strangers", type=int, default=800)
    parser.add_argument("--lfw", type=Path, default=LFW)
    parser.add_argument("--bars", default="0.5:0.575:0.0125", help="START:STOP:STEP of the confident bar")
    parser.add_argument("--margins", default="0.06:0.14:0.02", help="START:STOP:STEP of the margin")
    parser.add_argument("--weights", default="0,0.25,0.5,0.75", help="crowding weights, comma-separated")
    parser.add_argument("--neighbours", default="10", help="crowding neighbour counts, comma-separated")
    parser.add_argument("--gates", default="pipeline", help=f"comma-separated, of: {', '.join(GATES)}")
    parser.add_argument(
        "--chosen",
        default=None,
        help="BAR,MARGIN,WEIGHT[,GATE] whose wrong matches to list (default: the default policy)",
    )
    options = parser.parse_args()
    weights = [float(w) for w in options.weights.split(",")]
    gates = options.gates.split(",")
    neighbours = [int(k) for k in options.neighbours.split(",")]
    runs = [load(Path(keep), int(seed), options.guests, options.strangers, options.lfw) for seed, keep in options.seed]
    for run in runs:
        own = next((p for p in grid([run_bar(run)], [run_margin(run)], [0.0, *weights]) if p.id == run.policy_id), None)
        if own is None:
            raise SystemExit(f"seed {run.seed}: ran under {run.policy_id}, which the replay cannot rebuild")
        if replay(run, own) != run.stored:
            raise SystemExit(f"seed {run.seed}: replaying {own.id} does not give the stored matches")
    bench.note(f"replay checked: each run's own policy gives exactly its stored matches ({len(runs)} runs)")
    rows = []
    for gate, policy in (
        (g, p) for g in gates for p in grid(frange(options.bars), frange(options.margins), weights, neighbours)
    ):
        scores = [score(run, *replay_decisions(run, policy, gate)) for run in runs]
        pooled = scores[0]
        for s in scores[1:]:
            pooled = pooled + s
        per_seed = " ".join(f"{s.precision:.3f}/{s.recall:.3f}" for s in scores)
        rows.append(
            (
                gate,
                f"{policy.crowding_weight:g}k{policy.crowding_neighbours}",
                f"{policy.min_similarity:g}",
                f"{policy.margin:g}",
                per_seed,
                f"{min(s.precision for s in scores):.3f}",
                f"{pooled.precision:.4f} ({pooled.matches - pooled.correct} wrong/{pooled.matches})",
                f"{pooled.recall:.3f}",
                f"{pooled.stranger_hits}/{pooled.strangers}",
                f"{pooled.recall_confirmed:.3f}",
                f"{pooled.wrong_proposals / pooled.photos:.1%}",
            )
        )
    seeds = " ".join(str(run.seed) for run in runs)
    print(f"Pipeline replay, seeds {seeds}; tree {bench.git_state()}")
    header = (
        "gate",
        "crowding",
        "bar",
        "margin",
        f"precision/recall per seed ({seeds})",
        "worst precision",
        "pooled precision",
        "pooled recall",
        "strangers matched",
        "recall+confirm",
        "wrong proposals (of photos)",
    )
    print(bench.table(header, rows))
    chosen, chosen_gate = DEFAULT_POLICY, "pipeline"
    if options.chosen:
        bar, margin, weight, *rest = options.chosen.split(",")
        chosen = replace(DEFAULT_POLICY, min_similarity=float(bar), margin=float(margin), crowding_weight=float(weight))
        chosen_gate = rest[0] if rest else chosen_gate
    errors = []
    for run in runs:
        for f, name in sorted(replay(run, chosen, chosen_gate)):
            if run.person_of.get(f) != name:
                errors.append((str(run.seed), f, run.person_of.get(f, "?"), name))
    print(f"wrong matches under {chosen.id}, gate {chosen_gate}:")
    print(bench.table(("seed", "photo", "person in it", "matched to"), errors or [("-", "-", "-", "-")]))


def run_bar(run: KeptRun) -> float:
    return float(run.policy_id.split("-")[0][1:])


def run_margin(run: KeptRun) -> float:
    return float(run.policy_id.split("-")[1][1:])


if __name__ == "__main__":
    main()
