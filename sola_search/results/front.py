"""The accuracy-versus-cost Pareto front: which trials are non-dominated, and the hypervolume they cover."""

from __future__ import annotations

import numpy as np


def pareto_mask(top1: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """True for points no other point dominates (top-1 ≥ and cost ≤, one strictly); ties all kept."""
    top1, cost = np.asarray(top1, float), np.asarray(cost, float)
    better_eq = (top1[None, :] >= top1[:, None]) & (cost[None, :] <= cost[:, None])
    strictly = (top1[None, :] > top1[:, None]) | (cost[None, :] < cost[:, None])
    return ~(better_eq & strictly).any(axis=1)


def hypervolume(top1: np.ndarray, cost: np.ndarray, ref: tuple[float, float]) -> float:
    """Area dominated by the points inside the reference box (top-1 above ref[0], cost below ref[1])."""
    top1, cost = np.asarray(top1, float), np.asarray(cost, float)
    keep = (top1 > ref[0]) & (cost < ref[1])
    top1, cost = top1[keep], cost[keep]
    if not len(top1):
        return 0.0
    front = pareto_mask(top1, cost)
    order = np.lexsort((-top1[front], cost[front]))
    c, t = cost[front][order], top1[front][order]
    widths = np.diff(np.append(c, ref[1]))
    return float(np.sum(widths * (np.maximum.accumulate(t) - ref[0])))
