"""The group sparse model's section of the cohort report: its cross-validation
curve, the support it shares across subjects, and each subject's graph."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._html import esc, kv_table, png_img
from ._scale import matrix_figure

__all__ = ["group_model_section"]

#: Subjects drawn one by one; beyond, the page would grow with the cohort.
MAX_SUBJECT_PANELS = 24


def _cv_curve(alphas: np.ndarray, scores: np.ndarray, alpha: float) -> Any:
    # matplotlib is imported when a report is drawn, not with the package (~0.4 s).
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    order = np.argsort(alphas)
    mean = np.nanmean(np.where(np.isfinite(scores), scores, np.nan), axis=1)
    for fold in scores.T:
        ax.plot(alphas[order], fold[order], color="#9aa5b1", linewidth=0.8)
    ax.plot(alphas[order], mean[order], color="#1f77b4", marker="o", markersize=3,
            label="mean held-out score")
    ax.axvline(alpha, color="#d62728", linestyle="--", label=f"chosen alpha = {alpha:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("alpha (group penalty)")
    ax.set_ylabel("held-out log-likelihood")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Group sparse model: cross-validation", fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def _stability_curve(alphas: np.ndarray, instability: np.ndarray, beta: float,
                     alpha: float) -> Any:
    # matplotlib is imported when a report is drawn, not with the package (~0.4 s).
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 3.6))
    shown = np.isfinite(instability)
    ax.plot(alphas[shown], instability[shown], color="#1f77b4", marker="o", markersize=3,
            label="edge instability (monotone)")
    ax.axhline(beta, color="#9aa5b1", linestyle=":", label=f"beta = {beta:g}")
    ax.axvline(alpha, color="#d62728", linestyle="--", label=f"chosen alpha = {alpha:.3g}")
    ax.set_xscale("log")
    ax.set_xlabel("alpha (group penalty)")
    ax.set_ylabel("instability of the shared support")
    ax.legend(fontsize=8, frameon=False)
    ax.set_title("Group sparse model: stability selection (StARS)", fontsize=11, loc="left")
    fig.tight_layout()
    return fig


def _support_figure(support: np.ndarray, labels: list[str],
                    networks: Sequence[str] | None = None) -> Any:
    return matrix_figure(support.astype(float), labels, networks,
                         "Shared support (edges of the group model)", vmin=0, vmax=1,
                         cmap="Greys")


def _subject_panels(precisions: np.ndarray, names: Sequence[str]) -> Any:
    # matplotlib is imported when a report is drawn, not with the package (~0.4 s).
    import matplotlib.pyplot as plt

    k = min(precisions.shape[2], MAX_SUBJECT_PANELS)
    cols = min(k, 6)
    rows = math.ceil(k / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(2.0 * cols, 2.1 * rows), squeeze=False)
    for index, ax in enumerate(axes.ravel()):
        ax.axis("off")
        if index >= k:
            continue
        matrix = -precisions[:, :, index].copy()
        np.fill_diagonal(matrix, 0)
        bound = float(np.max(np.abs(matrix))) or 1.0
        ax.imshow(matrix, cmap="RdBu_r", vmin=-bound, vmax=bound, interpolation="nearest")
        ax.set_title(str(names[index]), fontsize=7)
    fig.suptitle("Each subject's negated precision (group sparse model)", fontsize=10)
    fig.tight_layout()
    return fig


def group_model_section(model: Mapping[str, Any], labels: Sequence[str],
                        networks: Sequence[str] | None = None) -> str:
    """The HTML section of a group sparse model fitted on a cohort.

    Parameters
    ----------
    model : mapping
        ``alpha``, ``cv_alphas`` (n_alphas,), ``cv_scores`` (n_alphas, n_folds) -- or,
        for a penalty chosen by stability, ``alphas``, ``monotone_instability`` and
        ``beta`` -- ``precisions`` (p, p, K), ``names`` (K run names), ``duality_gap``,
        ``converged``, and optionally ``f1`` (mean support F1 against a known truth).
    labels : sequence of str
        Region names.
    networks : sequence of str, optional
        Network of each region: the support matrix shows network bands once
        region labels would be thinned.

    Examples
    --------
    >>> import numpy as np
    >>> precisions = np.stack([np.eye(3) + 0.2 * (1 - np.eye(3))] * 2, axis=2)
    >>> html = group_model_section({"alpha": 0.1, "cv_alphas": [0.3, 0.1],
    ...                             "cv_scores": [[-5.0, -5.1], [-4.9, -5.0]],
    ...                             "precisions": precisions, "names": ["sub-01", "sub-02"],
    ...                             "duality_gap": 1e-6, "converged": True},
    ...                            ["A", "B", "C"])
    >>> html.count("<img"), "shared edges" in html
    (3, True)
    """
    labels = [str(v) for v in labels]
    precisions = np.asarray(model["precisions"], dtype=float)
    support = np.any(precisions != 0, axis=2)
    np.fill_diagonal(support, False)
    n_edges = int(np.count_nonzero(np.triu(support, 1)))
    rows = [("chosen alpha", float(model["alpha"])), ("subjects", precisions.shape[2]),
            ("shared edges", n_edges), ("duality gap", float(model["duality_gap"])),
            ("converged", bool(model["converged"]))]
    if model.get("f1") is not None:
        rows.append(("mean support F1 (ground truth)", f"{float(model['f1']):.3f}"))
    names = [str(v) for v in model["names"]]
    shown = ("" if precisions.shape[2] <= MAX_SUBJECT_PANELS else
             f"<p class='note'>the first {MAX_SUBJECT_PANELS} of {precisions.shape[2]} "
             "subjects are drawn; every subject's matrix is in its folder "
             "(<code>desc-groupsparse</code>).</p>")
    if "monotone_instability" in model:
        curve = png_img(_stability_curve(np.asarray(model["alphas"], dtype=float),
                                         np.asarray(model["monotone_instability"], dtype=float),
                                         float(model["beta"]), float(model["alpha"])),
                        "group model stability selection")
        how = "penalty chosen by stability (StARS)"
    else:
        curve = png_img(_cv_curve(np.asarray(model["cv_alphas"], dtype=float),
                                  np.asarray(model["cv_scores"], dtype=float),
                                  float(model["alpha"])), "group model cross-validation")
        how = "penalty chosen by cross-validation"
    return ("<h2 id='groupmodel'>Group sparse model</h2><p class='note'>All subjects fitted "
            "at once with one shared support (Varoquaux et al. 2010), "
            f"{how}; {esc(len(names))} runs.</p>" + kv_table(rows) + curve
            + png_img(_support_figure(support, labels, networks), "shared support")
            + png_img(_subject_panels(precisions, names), "per-subject graphs") + shown)
