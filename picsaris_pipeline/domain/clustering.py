"""Unknown-face clusters: an event's unmatched faces grouped by person. Pure numpy, no I/O.

Average-linkage agglomerative clustering on face vectors (Euclidean distance, as matching.py): two
clusters merge while the mean distance between their members is at most `max_distance`. The
threshold is stricter than matching's (0.55): a cluster is shown to ops as one person and a late
joiner claims it whole, so a wrong merge costs more than a person split over two clusters
(bench/clusters.py measures both on lfw-dev).

Average-linkage clusters at a threshold never straddle two single-linkage components at that
threshold (a mean distance <= t needs some pair <= t), so the faces are first split into components
with a cheap union-find over the close pairs and each component is clustered on its own.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from picsaris_pipeline.domain.matching import similarities

# On lfw-dev (bench/clusters.py) 0.45 keeps clusters ~99% pure; the matching threshold 0.55 merges
# look-alikes noticeably more often.
DEFAULT_CLUSTER_MAX_DISTANCE = 0.45
# Clusters with at least this many photos are listed in the event summary and the report.
DEFAULT_MIN_PHOTOS = 3


def distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(len(a), len(b)) Euclidean distances."""
    return (1.0 - similarities(a, b)).astype(np.float64)


def cluster(vectors: np.ndarray, max_distance: float = DEFAULT_CLUSTER_MAX_DISTANCE) -> np.ndarray:
    """A cluster label (0..k-1) per vector; labels are numbered by first appearance."""
    n = len(vectors)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    labels = np.full(n, -1, dtype=np.int64)
    next_label = 0
    for component in _components(vectors, max_distance):
        if len(component) == 1:
            labels[component] = next_label
            next_label += 1
            continue
        inner = distances(vectors[component], vectors[component])
        for members in _average_linkage(inner, max_distance):
            labels[component[members]] = next_label
            next_label += 1
    return _renumber(labels)


# Rows of the distance matrix computed at a time: an event's 20,000 unmatched faces never need the
# whole 20,000 x 20,000 matrix (3 GB), only its close pairs and each component's own block.
_CHUNK = 1024


def _components(vectors: np.ndarray, max_distance: float) -> list[np.ndarray]:
    """Connected components of the graph joining faces at most max_distance apart (union-find)."""
    n = len(vectors)
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = int(parent[i])
        return i

    for start in range(0, n, _CHUNK):
        block = distances(vectors[start : start + _CHUNK], vectors)
        rows, columns = np.nonzero(block <= max_distance)
        for i, j in zip(rows + start, columns, strict=True):
            if j <= i:
                continue
            ri, rj = root(int(i)), root(int(j))
            if ri != rj:
                parent[max(ri, rj)] = min(ri, rj)
    roots = np.array([root(i) for i in range(n)])
    order = np.argsort(roots, kind="stable")
    _, starts = np.unique(roots[order], return_index=True)
    return [np.sort(part) for part in np.split(order, starts[1:])]


def _average_linkage(pairwise: np.ndarray, max_distance: float) -> list[np.ndarray]:
    """Index arrays of the clusters of one component (Lance-Williams update for average linkage)."""
    n = len(pairwise)
    members: list[list[int]] = [[i] for i in range(n)]
    sizes = np.ones(n)
    between = pairwise.astype(np.float64, copy=True)
    np.fill_diagonal(between, np.inf)
    alive = np.ones(n, dtype=bool)
    while alive.sum() > 1:
        flat = int(np.argmin(between))
        i, j = divmod(flat, n)
        if between[i, j] > max_distance:
            break
        # Merge j into i: the mean distance to the union is the size-weighted mean of both.
        merged = (sizes[i] * between[i] + sizes[j] * between[j]) / (sizes[i] + sizes[j])
        between[i, :] = merged
        between[:, i] = merged
        between[i, i] = np.inf
        between[j, :] = np.inf
        between[:, j] = np.inf
        sizes[i] += sizes[j]
        members[i].extend(members[j])
        members[j] = []
        alive[j] = False
    return [np.array(sorted(m)) for m in members if m]


def _renumber(labels: np.ndarray) -> np.ndarray:
    _, first = np.unique(labels, return_index=True)
    order = labels[np.sort(first)]
    mapping = {int(old): new for new, old in enumerate(order)}
    return np.array([mapping[int(label)] for label in labels], dtype=np.int64)


def place(
    vector: np.ndarray,
    members: np.ndarray,
    labels: Sequence[str],
    max_distance: float = DEFAULT_CLUSTER_MAX_DISTANCE,
) -> str | None:
    """The cluster one new face joins: the one at the smallest mean distance from it, if that is at
    most max_distance (the average-linkage rule applied to a single face); None for a new cluster."""
    if len(members) == 0:
        return None
    to_members = distances(vector[None, :], members)[0]
    names, codes = np.unique(np.asarray(labels), return_inverse=True)
    means = np.bincount(codes, weights=to_members) / np.bincount(codes)
    best = int(np.argmin(means))
    return str(names[best]) if means[best] <= max_distance else None


def claimable(
    reference: np.ndarray,
    members: np.ndarray,
    labels: Sequence[str],
    min_similarity: float,
    rule: str = "mean",
) -> list[str]:
    """The clusters a guest's selfie claims, sorted by label. rule "mean" (the default): the
    cluster's mean similarity to the selfie passes the matching threshold, the average-linkage rule
    with the selfie as one more face; "any": at least one face passes it (bench/clusters.py shows
    it brings in more photos of other people: one false accept brings its whole cluster)."""
    if len(members) == 0:
        return []
    scores = similarities(members, reference[None, :])[:, 0].astype(np.float64)
    names, codes = np.unique(np.asarray(labels), return_inverse=True)
    if rule == "mean":
        passed = np.bincount(codes, weights=scores) / np.bincount(codes) >= min_similarity
    elif rule == "any":
        passed = np.bincount(codes, weights=(scores >= min_similarity).astype(np.float64)) > 0
    else:
        raise ValueError(f"unknown claim rule {rule!r}")
    return sorted(str(name) for name in names[passed])


def stable_labels(new_labels: np.ndarray, old_labels: Sequence[str | None], fresh: Sequence[str]) -> list[str]:
    """Names for a recluster's clusters: each new cluster keeps the old name most of its faces had
    (each old name used once, biggest clusters first), else takes the next of `fresh`, so the ids
    ops saw in the last summary survive a recluster."""
    sizes = np.bincount(new_labels) if len(new_labels) else np.zeros(0, dtype=np.int64)
    names: dict[int, str] = {}
    used: set[str] = set()
    fresh_iter = iter(fresh)
    for label in sorted(range(len(sizes)), key=lambda k: (-sizes[k], k)):
        votes: dict[str, int] = {}
        for index in np.nonzero(new_labels == label)[0]:
            old = old_labels[int(index)]
            if old is not None and old not in used:
                votes[old] = votes.get(old, 0) + 1
        name = max(sorted(votes), key=lambda key: votes[key]) if votes else next(fresh_iter)
        used.add(name)
        names[label] = name
    return [names[int(label)] for label in new_labels]


def purity(labels: Sequence[object], truth: Sequence[object]) -> float:
    """Share of items whose cluster's majority identity is their own (1.0 = every cluster one person)."""
    if not labels:
        return 1.0
    correct = 0
    for label in set(labels):
        people = [p for lab, p in zip(labels, truth, strict=True) if lab == label]
        correct += max(people.count(p) for p in set(people))
    return correct / len(labels)


def completeness(labels: Sequence[object], truth: Sequence[object]) -> float:
    """Share of items in their person's largest cluster (1.0 = every person in one cluster): purity
    with the roles of cluster and person swapped."""
    return purity(truth, labels)
