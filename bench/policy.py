"""The matching policy at event scale on lfw-dev: the old rule against the chosen policy, tuned on one
seed and reported on others, with the candidate tier's confirmations, and the precision/recall
curve of the policy's main knob (its confident bar) saved as docs/quality-curve.png.

    nice -n 10 .venv/bin/python bench/lfw_cache.py [--model M]  # first: dlib descriptors, cached
    nice -n 10 .venv/bin/python bench/policy.py [--model M] [--tune-seed 1] [--seeds 2,3,4]
        [--guests 400] [--strangers 800]

An event per seed (docs/QUALITY.md): --guests people with 3 or more cached photos sign up with one
photo each (the selfie); two further photos of each are the guest photos (800); one photo each of
--strangers people who are not guests are the strangers' photos. Each photo is one LFW face (the
detected face nearest the centre; photos where the detector finds none are left out and counted; a
face the pipeline's quality gate refuses (faces/quality.py: small, blurred, turned away) is counted
but never matched, as in the pipeline, where the cache recorded its quality). The photos
arrive in a random order and go through picsaris_pipeline.domain.match_policy.decide one by one; under the
policy, matches close enough become references for later photos (as the pipeline does), and a
candidate shown to its guest is confirmed if it is truly them (ground truth) and refused otherwise.

Figures: precision (correct guest among all matches), recall (guest photos given to their guest),
wrong guest (guest photos given to another guest, % of guest photos), strangers matched (% of
strangers' photos given to a guest), and for the candidate tier: recall once true candidates are
confirmed, and wrong proposals (photos of someone else shown privately to a guest) per 100 photos.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from dataclasses import dataclass, replace
from pathlib import Path

import lfw_cache
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from picsaris_pipeline.domain.match_policy import (  # noqa: E402
    DEFAULT_POLICY,
    LEGACY_POLICY,
    MatchPolicy,
    attendee_scores,
    decide,
)
from picsaris_pipeline.faces.quality import FaceQuality  # noqa: E402
from picsaris_pipeline.services.face_quality import gate_scores  # noqa: E402

CURVE = REPO / "docs" / "quality-curve.png"


def centre_face(faces: list[dict], side: int = 250) -> tuple[np.ndarray, bool] | None:
    """The LFW subject: the detected face whose box centre is nearest the image centre, with whether
    the quality gate lets it be matched (True where the cache has no quality: built before it)."""
    if not faces:
        return None

    def off_centre(face: dict) -> float:
        left, top, right, bottom = face["box"][:4]
        return float(np.hypot((left + right) / 2 - side / 2, (top + bottom) / 2 - side / 2))

    face = min(faces, key=off_centre)
    matchable = True
    if "quality" in face:
        size_px, sharpness, yaw = face["quality"]
        matchable = FaceQuality(int(size_px), float(sharpness), float(yaw)).matchable
    return np.asarray(face["descriptor"], dtype=np.float32), matchable


@dataclass(frozen=True)
class Face:
    vector: np.ndarray
    matchable: bool  # as a photo's face; a selfie is used whatever its quality (sign-up does not gate)


@dataclass
class Event:
    seed: int
    selfies: np.ndarray  # (guests, 128)
    extra_selfies: dict[int, np.ndarray]  # guest -> a second sign-up photo, where the person has 4+
    photos: np.ndarray  # (n, 128) guest photos then strangers' photos, in arrival order
    truth: np.ndarray  # guest index, or -1 for a stranger
    matchable: np.ndarray  # per photo: False where the quality gate refuses its face (never matched)


def make_event(by_person: dict[str, list[Face]], seed: int, guests: int, strangers: int) -> Event:
    rng = np.random.default_rng(seed)
    people = sorted(by_person)
    eligible = [p for p in people if len(by_person[p]) >= 3]
    if len(eligible) < guests:
        raise SystemExit(f"only {len(eligible)} people have 3+ cached photos; run bench/lfw_cache.py longer")
    chosen = [eligible[i] for i in rng.choice(len(eligible), size=guests, replace=False)]
    others = [p for p in people if p not in set(chosen)]
    if len(others) < strangers:
        raise SystemExit(f"only {len(others)} people left for {strangers} strangers; cache more photos")
    selfies, extra, photos, truth = [], {}, [], []
    gate: list[bool] = []
    for g, person in enumerate(chosen):
        vectors = by_person[person]
        order = rng.permutation(len(vectors))
        selfies.append(vectors[order[0]].vector)
        photos += [vectors[order[1]].vector, vectors[order[2]].vector]
        gate += [vectors[order[1]].matchable, vectors[order[2]].matchable]
        truth += [g, g]
        if len(order) >= 4:
            extra[g] = vectors[order[3]].vector
    for person in [others[i] for i in rng.choice(len(others), size=strangers, replace=False)]:
        vectors = by_person[person]
        face = vectors[int(rng.integers(len(vectors)))]
        photos.append(face.vector)
        gate.append(face.matchable)
        truth.append(-1)
    arrival = rng.permutation(len(photos))
    return Event(
        seed,
        np.asarray(selfies),
        extra,
        np.asarray(photos)[arrival],
        np.asarray(truth)[arrival],
        np.asarray(gate, dtype=bool)[arrival],
    )


@dataclass
class Outcome:
    correct: int = 0
    wrong_guest: int = 0
    strangers_matched: int = 0
    confirmed: int = 0  # true candidates, confirmed by their guest
    wrong_proposals: int = 0  # candidates shown to a guest who is not in the photo
    guest_photos: int = 0
    stranger_photos: int = 0

    @property
    def precision(self) -> float:
        matched = self.correct + self.wrong_guest + self.strangers_matched
        return self.correct / matched if matched else 1.0

    @property
    def recall(self) -> float:
        return self.correct / self.guest_photos

    @property
    def recall_confirmed(self) -> float:
        return (self.correct + self.confirmed) / self.guest_photos

    def row(self, label: str) -> list[str]:
        photos = self.guest_photos + self.stranger_photos
        return [
            label,
            f"{self.precision:.3f}",
            f"{self.recall:.3f}",
            f"{100 * self.wrong_guest / self.guest_photos:.1f}",
            f"{100 * self.strangers_matched / self.stranger_photos:.1f}",
            f"{self.recall_confirmed:.3f}",
            f"{100 * self.wrong_proposals / photos:.1f}",
        ]


def run(event: Event, policy: MatchPolicy, extra_selfies: bool = False) -> Outcome:
    """The event's photos through decide(), one by one, references growing as the pipeline grows them."""
    references = list(event.selfies)
    owners = list(range(len(event.selfies)))
    if extra_selfies:
        for guest, vector in event.extra_selfies.items():
            references.append(vector)
            owners.append(guest)
    per_guest = defaultdict(int, {g: owners.count(g) for g in set(owners)})
    out = Outcome(guest_photos=int((event.truth >= 0).sum()), stranger_photos=int((event.truth < 0).sum()))
    guests = len(event.selfies)
    refs = np.asarray(references, dtype=np.float32)
    for vector, truth, matchable in zip(event.photos, event.truth, event.matchable, strict=True):
        scores = attendee_scores(vector[None, :], refs, owners, guests)
        decision = decide(scores, policy, matchable=np.asarray([matchable]))
        for match in decision.matches:
            if match.attendee_index == truth:
                out.correct += 1
            elif truth >= 0:
                out.wrong_guest += 1
            else:
                out.strangers_matched += 1
        new = [(m.attendee_index, m.face_index) for m in decision.references]
        for candidate in decision.candidates:
            if candidate.attendee_index == truth:
                out.confirmed += 1
                new.append((candidate.attendee_index, candidate.face_index))  # a confirmed face is a reference
            else:
                out.wrong_proposals += 1
        if policy.max_references > 1:
            for guest, _ in new:
                if per_guest[guest] < policy.max_references:
                    references.append(vector)
                    owners.append(guest)
                    per_guest[guest] += 1
            if new:
                refs = np.asarray(references, dtype=np.float32)
    return out


def static_scores(event: Event) -> tuple[np.ndarray, np.ndarray]:
    """Best and second-best similarity of each photo to the guests' selfies (no learning): for the grid."""
    scores = attendee_scores(event.photos, event.selfies, list(range(len(event.selfies))), len(event.selfies))
    scores = gate_scores(scores, event.matchable)
    order = np.argsort(-scores, axis=1)
    best = scores[np.arange(len(scores)), order[:, 0]]
    second = scores[np.arange(len(scores)), order[:, 1]]
    return np.stack([best, second, order[:, 0]], axis=1), event.truth


def grid(event: Event, target: float) -> tuple[float, float, list[tuple[float, float, float, float]]]:
    """Confident bar and margin with the most recall at precision >= target (no learning, no candidates)."""
    table, truth = static_scores(event)
    best, second, nearest = table[:, 0], table[:, 1], table[:, 2].astype(int)
    guest_photos = int((truth >= 0).sum())
    found: list[tuple[float, float, float, float]] = []
    for s in np.arange(0.45, 0.58, 0.005):  # never looser than the old rule's bar
        for m in np.arange(0.0, 0.161, 0.01):
            chosen = (best >= s) & (best - second >= m)
            correct = int((chosen & (nearest == truth)).sum())
            precision = correct / max(1, int(chosen.sum()))
            found.append((round(float(s), 3), round(float(m), 2), precision, correct / guest_photos))
    ok = [f for f in found if f[2] >= target]
    s, m, _, _ = max(ok, key=lambda f: (f[3], f[2]))
    return s, m, found


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(headers, widths, strict=True)) for c in [headers]]
    lines += [
        "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    return "\n".join(lines)


HEADERS = ["", "precision", "recall", "wrong guest %", "strangers %", "recall+confirm", "wrong proposals %"]


def tune_policy(event: Event, target: float, proposal_budget: float) -> tuple[MatchPolicy, list[str]]:
    """Stage by stage on the tuning seed: (1) confident bar and margin, the most recall at precision
    >= target, on selfies only; (2) the reference bar, kept only if it adds recall at that precision;
    (3) candidate bar and margin, the most recall after confirmations with wrong proposals within the
    budget (% of photos)."""
    notes = []
    s, m, _ = grid(event, target)
    policy = replace(DEFAULT_POLICY, min_similarity=s, margin=m, candidate_similarity=2.0, reference_similarity=2.0)
    base = run(event, policy)
    notes.append(f"(1) s={s} m={m}: precision {base.precision:.3f}, recall {base.recall:.3f}")
    best_r, best = 2.0, base
    for r in (0.52, 0.55, 0.58, 0.6, 0.65):
        if r < s:
            continue
        out = run(event, replace(policy, reference_similarity=r))
        notes.append(f"(2) r={r}: precision {out.precision:.3f}, recall {out.recall:.3f}")
        if out.precision >= target and out.recall >= best.recall + 0.01:  # a point of recall, or not worth it
            best_r, best = r, out
    policy = replace(policy, reference_similarity=best_r)
    photos = len(event.photos)
    choice = (2.0, 0.0, best)
    frontier: dict[float, tuple[float, float, float]] = {}  # budget -> (recall+confirm, c, cm)
    for c in np.arange(0.42, s + 0.001, 0.01):
        for cm in (0.0, 0.02, 0.04, 0.06, 0.08):
            out = run(event, replace(policy, candidate_similarity=round(float(c), 3), candidate_margin=cm))
            wrong = 100 * out.wrong_proposals / photos
            if wrong <= proposal_budget and out.recall_confirmed > choice[2].recall_confirmed:
                choice = (round(float(c), 3), cm, out)
            for budget in (0.5, 1.0, 2.0, 3.0, 5.0, 10.0):
                if wrong <= budget and out.recall_confirmed > frontier.get(budget, (0.0, 0.0, 0.0))[0]:
                    frontier[budget] = (out.recall_confirmed, round(float(c), 3), cm)
    for budget, (recall, fc, fcm) in sorted(frontier.items()):
        notes.append(f"(3) wrong proposals <= {budget}%: recall after confirmations {recall:.3f} (c={fc} cm={fcm})")
    c, cm, out = choice
    notes.append(
        f"(3) c={c} cm={cm}: recall after confirmations {out.recall_confirmed:.3f}, "
        f"wrong proposals {100 * out.wrong_proposals / photos:.1f}% of photos (budget {proposal_budget}%)"
    )
    return replace(policy, candidate_similarity=c, candidate_margin=cm), notes


def gallery_normalised(event: Event, target: float) -> str:
    """The alternative to a margin: the nearest guest's score normalised against the face's scores
    to the rest of the event's guest list, z = (s1 - mean) / std; grid over (s, z) as for (s, m)."""
    scores = attendee_scores(event.photos, event.selfies, list(range(len(event.selfies))), len(event.selfies))
    scores = gate_scores(scores, event.matchable)
    order = np.argsort(-scores, axis=1)
    rows = np.arange(len(scores))
    best = scores[rows, order[:, 0]]
    rest = np.sort(scores, axis=1)[:, :-1]
    z = (best - rest.mean(axis=1)) / rest.std(axis=1)
    right = order[:, 0] == event.truth
    guest_photos = int((event.truth >= 0).sum())
    found = []
    for s in np.arange(0.40, 0.58, 0.005):
        for zt in np.arange(2.0, 8.01, 0.25):
            chosen = (best >= s) & (z >= zt)
            precision = int((chosen & right).sum()) / max(1, int(chosen.sum()))
            found.append(
                (round(float(s), 3), round(float(zt), 2), precision, int((chosen & right).sum()) / guest_photos)
            )
    ok = [f for f in found if f[2] >= target]
    s, zt, precision, recall = max(ok, key=lambda f: (f[3], f[2]))
    return f"s={s} z={zt}: precision {precision:.3f}, recall {recall:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tune-seed", type=int, default=1)
    parser.add_argument("--seeds", default="2,3,4", help="seeds reported on (not tuned on)")
    parser.add_argument("--guests", type=int, default=400)
    parser.add_argument("--strangers", type=int, default=800)
    parser.add_argument(
        "--target", type=float, default=0.993, help="precision aimed for on the tuning seed (0.993: headroom over 0.99)"
    )
    parser.add_argument("--proposal-budget", type=float, default=2.0, help="wrong proposals, %% of photos (2.0)")
    parser.add_argument("--no-curve", action="store_true")
    parser.add_argument("--model", default=None, help="cached face model (default: the pipeline's default)")
    args = parser.parse_args()

    model = args.model or lfw_cache.default_model()
    cached = lfw_cache.load(model)
    rows = lfw_cache.manifest()
    person_of = dict(rows)
    by_person: dict[str, list[Face]] = defaultdict(list)
    no_face = gated = 0
    for file, faces in sorted(cached.items()):
        found = centre_face(faces)
        if found is None:
            no_face += 1
            continue
        face = Face(*found)
        gated += not face.matchable
        by_person[person_of[file]].append(face)
    print(
        f"lfw-dev ({model}): {len(cached)} of {len(rows)} photos cached, {no_face} without a detected face "
        f"(left out), {gated} refused by the quality gate (never matched); "
        f"{len(by_person)} people, {sum(len(v) >= 3 for v in by_person.values())} with 3+ photos"
    )
    tune = make_event(by_person, args.tune_seed, args.guests, args.strangers)
    tuned, notes = tune_policy(tune, args.target, args.proposal_budget)
    print(f"tuning seed {args.tune_seed} (precision target {args.target}):")
    for line in notes:
        print(f"  {line}")
    print(f"  gallery-normalised score instead of a margin: {gallery_normalised(tune, args.target)}")
    print(f"tuned here: {tuned.id}; in code (match_policy.DEFAULT_POLICY): {DEFAULT_POLICY.id}")

    variants: list[tuple[str, MatchPolicy, bool]] = [
        ("old rule (distance <= 0.55)", LEGACY_POLICY, False),
        ("old rule at 0.50", replace(LEGACY_POLICY, min_similarity=0.5, candidate_similarity=0.5), False),
        ("margin only", replace(DEFAULT_POLICY, candidate_similarity=2.0, reference_similarity=2.0), False),
        (
            "+ references from strong matches (r=0.6)",
            replace(DEFAULT_POLICY, candidate_similarity=2.0, reference_similarity=0.6),
            False,
        ),
        (f"policy {DEFAULT_POLICY.id}", DEFAULT_POLICY, False),
        ("policy + a 2nd selfie where the guest has one", DEFAULT_POLICY, True),
    ]
    if tuned != DEFAULT_POLICY:
        variants.append((f"tuned here {tuned.id}", tuned, False))
    seeds = [int(x) for x in args.seeds.split(",") if x]
    for seed in [args.tune_seed, *seeds]:
        event = tune if seed == args.tune_seed else make_event(by_person, seed, args.guests, args.strangers)
        print()
        role = "tuning seed" if seed == args.tune_seed else "held-out seed"
        print(
            f"{role} {seed}: {args.guests} guests, {len(event.photos)} photos "
            f"({len(event.extra_selfies)} guests have a 2nd selfie)"
        )
        print(table(HEADERS, [run(event, p, extra).row(label) for label, p, extra in variants]))

    # The guest list's size: two strangers' photos per guest at every size, so only the size changes.
    print()
    print(f"guest-list size, 2 guest photos + 2 strangers' photos per guest (seed {seeds[0]}):")
    size_rows = []
    for guests in (50, 100, 200, 400):
        if guests > args.guests:
            continue
        event = make_event(by_person, seeds[0], guests, 2 * guests)
        size_rows.append(run(event, LEGACY_POLICY).row(f"{guests} guests, old rule"))
        size_rows.append(run(event, DEFAULT_POLICY).row(f"{guests} guests, policy"))
    print(table(HEADERS, size_rows))
    print(f"best (confident bar, margin) at precision >= {args.target} by guest-list size (seed {args.tune_seed}):")
    for guests in (50, 100, 200, 400):
        if guests <= args.guests:
            bs, bm, found = grid(make_event(by_person, args.tune_seed, guests, 2 * guests), args.target)
            recall = next(f[3] for f in found if f[0] == bs and f[1] == bm)
            print(f"  {guests} guests: s={bs} m={bm} (recall {recall:.3f}, selfies only)")

    if not args.no_curve:
        curve(by_person, seeds, args)


def bars_old() -> np.ndarray:
    return np.round(np.arange(0.42, 0.58, 0.01), 3)


def margins() -> np.ndarray:
    return np.round(np.arange(0.0, 0.161, 0.01), 3)


def curve(by_person: dict[str, list[Face]], seeds: list[int], args: argparse.Namespace) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    event = make_event(by_person, seeds[0], args.guests, args.strangers)
    fig, ax = plt.subplots(figsize=(7, 5))
    # The old rule's only knob is its bar; the policy's main knob is its margin (at its own bar).
    knobs = [
        ("old rule: bar s, no margin", "o-", [replace(LEGACY_POLICY, min_similarity=float(b)) for b in bars_old()]),
        (
            f"policy: margin m at s={DEFAULT_POLICY.min_similarity:g}",
            "s-",
            [replace(DEFAULT_POLICY, margin=float(m), candidate_similarity=2.0) for m in margins()],
        ),
    ]
    for label, style, policies in knobs:
        points = [run(event, policy) for policy in policies]
        ax.plot([p.recall for p in points], [p.precision for p in points], style, label=label)
        for policy, point in list(zip(policies, points, strict=True))[::3]:
            value = policy.margin if policy.margin else policy.min_similarity
            ax.annotate(
                f"{value:g}", (point.recall, point.precision), textcoords="offset points", xytext=(4, -10), fontsize=7
            )
    ax.axhline(0.99, color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("recall (guest photos given to their guest)")
    ax.set_ylabel("precision (matches that are the right guest)")
    ax.set_title(f"lfw-dev, {args.guests} guests + {args.strangers} strangers' photos, seed {seeds[0]}", fontsize=10)
    ax.legend(loc="lower left")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(CURVE, dpi=110)
    print(f"\nprecision/recall of the old rule's bar and of the policy's margin saved to {CURVE.relative_to(REPO)}")


if __name__ == "__main__":
    sys.exit(main())
