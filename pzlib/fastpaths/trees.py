"""xgboost tree ensembles evaluated by compiled code, with xgboost's own float32 sums: the same predictions
bit for bit, without going through xgboost.

:class:`CompiledForest` reads the boosters' own JSON model (``Booster.save_raw("json")``) and lays each tree
out as a complete binary tree of its depth: node ``i``'s children are ``2i + 1`` and ``2i + 2``, a leaf above
the bottom is copied to every bottom slot under it. A row then walks down with no branch on the data (``i =
2i + 1 + (x[feature] >= threshold)``), and eight rows walk at once, which keeps the CPU busy while each one
waits for its loads. Trees are visited in xgboost's order and their leaves added in float32 to the
booster's base score, as xgboost's CPU predictor does, so a prediction is xgboost's to the last bit; a
feature that is NaN (xgboost's ``missing``) takes the node's default direction.

What this does not lay out — dart or linear boosters, categorical splits, vector leaves, a link function
other than the identity, a ``missing`` other than NaN, trees deeper than :data:`MAX_DEPTH` (their complete
layout would not fit in cache) — it refuses with :class:`UnsupportedModel`, naming it, so that a caller can
keep xgboost for it.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import math
import os
import tempfile
import zipfile
from pathlib import Path

import msgspec
import numba
import numpy as np

log = logging.getLogger(__name__)

MAX_DEPTH = 12
"""Deepest tree laid out complete (4,095 nodes; RAIL's FlexZBoost trains depth 8)."""
IDENTITY_OBJECTIVES = ("reg:squarederror",)
"""Objectives whose prediction is the raw sum (base score + leaves), with no link function."""
ROW_BLOCK = 1024
"""Rows evaluated through every tree before the next block: their features stay in L1 cache."""


class UnsupportedModel(ValueError):
    """A booster the compiled engine does not evaluate; the message says why (a caller may keep xgboost)."""


class CompiledForest:
    """The predictions of several single-output xgboost boosters (one column each) for a batch of rows.

    Laying out a few thousand trees from their JSON takes a second or two, so with ``cache_dir`` the layout is
    kept there as ``<key>.npz``, the key being the SHA-256 of the boosters' own binary models (and of this
    layout's version): every later process with the same model loads it instead. A file is written under a
    temporary name and renamed into place, so processes building it at once never read a partial file; one
    that does not load is built again.

    Parameters
    ----------
    boosters : list of (xgboost.Booster, (int, int), float)
        Each booster with the iteration range and ``missing`` value its ``XGBRegressor.predict`` uses.
    cache_dir : Path, optional
        Where layouts are kept (made if missing); None: built every time.

    Raises
    ------
    UnsupportedModel
        A booster this engine does not lay out (see the module's docstring); the message names what.

    Examples
    --------
    >>> forest = CompiledForest([(regressor.get_booster(), (0, 0), np.nan)])  # doctest: +SKIP
    >>> forest.predict(features)[:, 0]  # == regressor.predict(features), bit for bit  # doctest: +SKIP
    """

    def __init__(self, boosters: list[tuple], cache_dir: Path | None = None):
        path = None if cache_dir is None else Path(cache_dir) / f"{_layout_key(boosters)}.npz"
        layout = _load_layout(path) if path is not None and path.exists() else None
        if layout is None:
            layout = _build_layout(boosters)
            if path is not None:
                try:
                    _save_layout(path, layout)
                except OSError as error:  # a read-only or full cache only costs the next process the build
                    log.warning("could not keep the tree layout in %s: %s", path.parent, error)
        self.n_features = int(layout["n_features"])
        self.base_scores, self.tree_starts, self.depths = (layout[name] for name in ("base_scores", "tree_starts",
                                                                                     "depths"))
        self.features, self.thresholds, self.default_left, self.leaves = (
            layout[name] for name in ("features", "thresholds", "default_left", "leaves"))
        self.offsets = (self.features * ROW_BLOCK).astype(np.uint32)
        """Per inner slot: its feature's offset in a block of rows (feature × :data:`ROW_BLOCK`)."""

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(n_rows, n_boosters) float32 predictions for (n_rows, n_features) features (cast to float32 as
        xgboost does)."""
        features = np.asarray(features)
        if features.ndim != 2 or features.shape[1] != self.n_features:
            raise ValueError(f"features must be (rows, {self.n_features}), got shape {features.shape}")
        by_feature = np.ascontiguousarray(features.T, dtype=np.float32)
        out = np.empty((features.shape[0], self.base_scores.size), dtype=np.float32)
        if np.isnan(by_feature).any():
            _predict_missing(by_feature, self.base_scores, self.tree_starts, self.depths, self.features,
                             self.thresholds, self.default_left, self.leaves, out)
        else:
            _predict(by_feature, self.base_scores, self.tree_starts, self.depths, self.offsets, self.thresholds,
                     self.leaves, out)
        return out


LAYOUT_VERSION = 1
"""Part of a cached layout's key: raise it when the layout's arrays change meaning."""
_LAYOUT_ARRAYS = ("n_features", "base_scores", "tree_starts", "depths", "features", "thresholds", "default_left",
                  "leaves")


def _layout_key(boosters: list[tuple]) -> str:
    digest = hashlib.sha256(f"layout {LAYOUT_VERSION}".encode())
    for booster, iteration_range, missing in boosters:
        digest.update(bytes(booster.save_raw(raw_format="ubj")))
        digest.update(repr((tuple(iteration_range), missing)).encode())
    return digest.hexdigest()


def _load_layout(path: Path) -> dict | None:
    try:
        with np.load(path) as stored:
            return {name: stored[name] for name in _LAYOUT_ARRAYS}
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):  # damaged: built again and replaced
        return None


def _save_layout(path: Path, layout: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **layout)
        os.chmod(staging, 0o644)  # mkstemp's 0600 would keep other users' workers from reading it
        os.replace(staging, path)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


def _build_layout(boosters: list[tuple]) -> dict:
    """The arrays of :class:`CompiledForest` from the boosters' JSON models, read one booster at a time (a
    parsed model holds every node as Python objects)."""
    fields = {name: [] for name in ("left_children", "right_children", "split_indices", "split_conditions",
                                    "default_left")}
    tree_sizes, base_scores, tree_starts, n_features = [], [], [0], 0
    for booster, (begin, end), missing in boosters:
        model = _booster_model(booster)
        _check_booster(model, missing)
        n_features = int(model["learner"]["learner_model_param"]["num_feature"])
        gbtree = model["learner"]["gradient_booster"]["model"]
        bounds = [int(value) for value in gbtree["iteration_indptr"]]
        trees = gbtree["trees"][bounds[begin]:bounds[len(bounds) - 1 if end == 0 else end]]
        if any(any(tree["split_type"]) for tree in trees):
            raise UnsupportedModel(_problem("categorical splits"))
        if any(int(tree["tree_param"].get("size_leaf_vector", "1")) > 1 for tree in trees):
            raise UnsupportedModel(_problem("vector leaves (multi-target trees)"))
        for name, values in fields.items():
            values.append(np.array(list(itertools.chain.from_iterable(tree[name] for tree in trees)),
                                   dtype=np.float64 if name == "split_conditions" else np.int64))
        tree_sizes.extend(len(tree["left_children"]) for tree in trees)
        tree_starts.append(tree_starts[-1] + len(trees))
        base_scores.append(_base_score(model))
        del model, gbtree, trees
    left, right, split_indices, split_conditions, default_left = (np.concatenate(values) for values in fields.values())
    node_starts = np.cumsum([0, *tree_sizes])
    depths = _tree_depths(left, right, node_starts)
    if depths.size and depths.max() > MAX_DEPTH:
        raise UnsupportedModel(_problem(f"trees deeper than {MAX_DEPTH} levels"))
    max_depth = int(depths.max(initial=0))
    shape = (len(tree_sizes), max(2 ** max_depth - 1, 1))
    layout = {"n_features": np.array(n_features), "base_scores": np.array(base_scores, dtype=np.float32),
              "tree_starts": np.array(tree_starts, dtype=np.int64), "depths": depths,
              "features": np.zeros(shape, dtype=np.int32), "thresholds": np.zeros(shape, dtype=np.float32),
              "default_left": np.zeros(shape, dtype=np.uint8),
              "leaves": np.zeros((len(tree_sizes), 2 ** max_depth), dtype=np.float32)}
    # split_conditions are parsed as float64, then rounded: exact for the float32 values xgboost writes.
    _fill_complete(left, right, split_indices.astype(np.int32), split_conditions.astype(np.float32),
                   default_left.astype(np.uint8), node_starts, depths, layout["features"], layout["thresholds"],
                   layout["default_left"], layout["leaves"])
    return layout


def _booster_model(booster) -> dict:
    """An ``xgboost.Booster``'s own JSON model, as a dict."""
    return msgspec.json.decode(booster.save_raw(raw_format="json"))


def _problem(what: str) -> str:
    return f"the compiled tree engine cannot evaluate this model: {what}"


def _check_booster(model: dict, missing: float) -> None:
    """Refuse a booster whose prediction is not the identity of its trees' sum, or whose missing value is
    not NaN."""
    learner = model["learner"]
    booster = learner["gradient_booster"]
    if booster.get("name") != "gbtree":
        raise UnsupportedModel(_problem(f"a {booster.get('name')!r} booster (only 'gbtree')"))
    objective = learner["objective"]["name"]
    if objective not in IDENTITY_OBJECTIVES:
        raise UnsupportedModel(_problem(f"objective {objective!r} (only {', '.join(IDENTITY_OBJECTIVES)})"))
    if not (isinstance(missing, float) and math.isnan(missing)):
        raise UnsupportedModel(_problem(f"missing={missing!r} (only NaN)"))


def _base_score(model: dict) -> np.float32:
    """The booster's base score (the margin every prediction starts from), as xgboost stores it."""
    value = model["learner"]["learner_model_param"]["base_score"].strip("[]").split(",")
    if len(value) != 1:
        raise UnsupportedModel(_problem(f"{len(value)} base scores (one output per booster only)"))
    return np.float32(float(value[0]))


@numba.njit(cache=True)
def _tree_depths(left, right, node_starts):
    """Levels of splits on each tree's longest path from its root (0 for a single leaf); a tree's children
    are numbered within the tree."""
    depths = np.zeros(node_starts.size - 1, dtype=np.int64)
    for tree in range(depths.size):
        first = node_starts[tree]
        stack_node = np.empty(node_starts[tree + 1] - first + 1, dtype=np.int64)
        stack_depth = np.empty_like(stack_node)
        stack_node[0], stack_depth[0], size = 0, 0, 1
        while size:
            size -= 1
            node, depth = stack_node[size], stack_depth[size]
            if left[first + node] == -1:
                depths[tree] = max(depths[tree], depth)
                continue
            stack_node[size], stack_depth[size] = left[first + node], depth + 1
            stack_node[size + 1], stack_depth[size + 1] = right[first + node], depth + 1
            size += 2
    return depths


@numba.njit(cache=True)
def _fill_complete(left, right, split_feature, split_value, split_default_left, node_starts, depths, features,
                   thresholds, default_left, leaves):
    """Each tree, from xgboost's node arrays (a leaf holds its value in ``split_value``), as a complete tree of
    its own depth: a leaf above the bottom fills every bottom slot under it."""
    for tree in range(depths.size):
        first, depth = node_starts[tree], depths[tree]
        n_inner = 2 ** depth - 1
        stack_node = np.empty(2 * depth + 2, dtype=np.int64)
        stack_slot = np.empty(2 * depth + 2, dtype=np.int64)
        stack_node[0], stack_slot[0], size = 0, 0, 1
        while size:
            size -= 1
            node, slot = first + stack_node[size], stack_slot[size]
            if left[node] == -1:
                bottom, span = slot, 1
                while bottom < n_inner:
                    bottom, span = 2 * bottom + 1, 2 * span
                leaves[tree, bottom - n_inner:bottom - n_inner + span] = split_value[node]
                continue
            features[tree, slot] = split_feature[node]
            thresholds[tree, slot] = split_value[node]
            default_left[tree, slot] = split_default_left[node]
            stack_node[size], stack_slot[size] = left[node], 2 * slot + 1
            stack_node[size + 1], stack_slot[size + 1] = right[node], 2 * slot + 2
            size += 2


@numba.njit(cache=True, inline="always")
def _down(slot, offsets, thresholds, block, row):
    """One level down: right when the row's feature is >= the slot's threshold (unsigned indices, so that
    no negative-index wraparound is compiled in)."""
    return slot + slot + _ONE + _UNSIGNED(block[offsets[slot] + row] >= thresholds[slot])


_ONE = np.uint64(1)
_UNSIGNED = np.uint64


@numba.njit(cache=True, boundscheck=False)
def _predict(by_feature, base_scores, tree_starts, depths, offsets, thresholds, leaves, out):
    """Every booster on every row (no NaN among the features), eight rows walking each tree together; a
    block of rows is copied feature by feature into a small array the slots' offsets index directly."""
    n_features, n_rows = by_feature.shape
    block = np.zeros(n_features * ROW_BLOCK, dtype=np.float32)
    sums = np.empty(ROW_BLOCK, dtype=np.float32)
    for start in range(0, n_rows, ROW_BLOCK):
        stop = min(start + ROW_BLOCK, n_rows)
        n_block = stop - start
        for feature in range(n_features):
            block[feature * ROW_BLOCK:feature * ROW_BLOCK + n_block] = by_feature[feature, start:stop]
        for booster in range(base_scores.size):
            sums[:] = base_scores[booster]
            for tree in range(tree_starts[booster], tree_starts[booster + 1]):
                depth = depths[tree]
                first_leaf = _UNSIGNED(2 ** depth - 1)
                offset, threshold, leaf = offsets[tree], thresholds[tree], leaves[tree]
                row = _UNSIGNED(0)
                while row + _UNSIGNED(8) <= n_block:
                    s0 = s1 = s2 = s3 = s4 = s5 = s6 = s7 = _UNSIGNED(0)
                    for _ in range(depth):
                        s0 = _down(s0, offset, threshold, block, row)
                        s1 = _down(s1, offset, threshold, block, row + _UNSIGNED(1))
                        s2 = _down(s2, offset, threshold, block, row + _UNSIGNED(2))
                        s3 = _down(s3, offset, threshold, block, row + _UNSIGNED(3))
                        s4 = _down(s4, offset, threshold, block, row + _UNSIGNED(4))
                        s5 = _down(s5, offset, threshold, block, row + _UNSIGNED(5))
                        s6 = _down(s6, offset, threshold, block, row + _UNSIGNED(6))
                        s7 = _down(s7, offset, threshold, block, row + _UNSIGNED(7))
                    sums[row] += leaf[s0 - first_leaf]
                    sums[row + _UNSIGNED(1)] += leaf[s1 - first_leaf]
                    sums[row + _UNSIGNED(2)] += leaf[s2 - first_leaf]
                    sums[row + _UNSIGNED(3)] += leaf[s3 - first_leaf]
                    sums[row + _UNSIGNED(4)] += leaf[s4 - first_leaf]
                    sums[row + _UNSIGNED(5)] += leaf[s5 - first_leaf]
                    sums[row + _UNSIGNED(6)] += leaf[s6 - first_leaf]
                    sums[row + _UNSIGNED(7)] += leaf[s7 - first_leaf]
                    row += _UNSIGNED(8)
                while row < n_block:
                    slot = _UNSIGNED(0)
                    for _ in range(depth):
                        slot = _down(slot, offset, threshold, block, row)
                    sums[row] += leaf[slot - first_leaf]
                    row += _UNSIGNED(1)
            out[start:stop, booster] = sums[:n_block]


@numba.njit(cache=True)
def _predict_missing(by_feature, base_scores, tree_starts, depths, features, thresholds, default_left, leaves,
                     out):
    """:func:`_predict` for batches with NaN features: a NaN goes the node's default way, as in xgboost."""
    for row in range(by_feature.shape[1]):
        for booster in range(base_scores.size):
            total = base_scores[booster]
            for tree in range(tree_starts[booster], tree_starts[booster + 1]):
                slot = 0
                for _ in range(depths[tree]):
                    value = by_feature[features[tree, slot], row]
                    if value != value:
                        right = default_left[tree, slot] == 0
                    else:
                        right = value >= thresholds[tree, slot]
                    slot = 2 * slot + 1 + right
                total += leaves[tree, slot - (2 ** depths[tree] - 1)]
            out[row, booster] = total
