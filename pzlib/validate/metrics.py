"""Photo-z point-estimate metrics against true (spec-z) redshifts.

Definitions follow the photo-z literature and RAIL's evaluation: Δz = (z_phot − z_true) / (1 + z_true);
σ_NMAD = 1.4826 · median(|Δz − median(Δz)|); outliers are |Δz| > 0.15; bias is median(Δz).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

OUTLIER_CUT = 0.15
"""Catastrophic-outlier threshold on |Δz|/(1+z)."""


@dataclass(frozen=True)
class PointMetrics:
    """Summary of a point estimate against the truth."""

    n_objects: int
    sigma_nmad: float
    outlier_rate: float
    bias: float

    def as_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        return (
            f"σ_NMAD {self.sigma_nmad:.4f}  outliers {100 * self.outlier_rate:.1f}%  "
            f"bias {self.bias:+.4f}  (n={self.n_objects:,})"
        )


def point_metrics(z_phot: np.ndarray, z_true: np.ndarray) -> PointMetrics:
    """σ_NMAD, outlier rate and bias of ``z_phot`` against ``z_true``.

    Examples
    --------
    >>> point_metrics(np.array([0.5, 1.0]), np.array([0.5, 1.0])).sigma_nmad
    0.0
    """
    z_phot = np.asarray(z_phot, dtype=np.float64)
    z_true = np.asarray(z_true, dtype=np.float64)
    if z_phot.shape != z_true.shape:
        raise ValueError(f"z_phot has {z_phot.shape} values but z_true has {z_true.shape}")
    if z_phot.size == 0:
        raise ValueError("cannot compute metrics of an empty sample")
    dz = (z_phot - z_true) / (1.0 + z_true)
    median_dz = float(np.median(dz))
    return PointMetrics(
        n_objects=int(dz.size),
        sigma_nmad=float(1.4826 * np.median(np.abs(dz - median_dz))),
        outlier_rate=float(np.mean(np.abs(dz) > OUTLIER_CUT)),
        bias=median_dz,
    )
