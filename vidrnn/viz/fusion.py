"""Figures of a fusion template's learned unit preferences (Zhou et al. 2020, figure 4 style):
per-layer bars of each unit's marginal probability ``1 - sqrt(p)``, a layer x unit heat map, and
the bars of several templates (e.g. trained on different tasks) side by side."""

from __future__ import annotations

from pathlib import Path

__all__ = ["fusion_bars", "fusion_heatmap", "fusion_compare"]


def _units(marginals: list[dict]) -> list[str]:
    seen: list[str] = []
    for m in marginals:
        seen += [u for u in m["units"] if u not in seen]
    return seen


def _save(fig, path) -> Path:
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def fusion_bars(marginals: list[dict], path: str | Path, title: str = "") -> Path:
    """Grouped bars: for every layer, the marginal probability of each unit (PNG at ``path``).

    Args:
        marginals: :meth:`vidrnn.models.fusion_template.FusionTemplate.marginals`.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    units, L = _units(marginals), len(marginals)
    width = 0.8 / max(1, len(units))
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * L + 2), 3.2))
    x = np.arange(L)
    for k, u in enumerate(units):
        ax.bar(x + (k - (len(units) - 1) / 2) * width, [m["units"].get(u, np.nan) for m in marginals], width, label=u)
    ax.set_xticks(x, [f"layer {m['layer']}" for m in marginals], fontsize=8)
    ax.set_ylim(0, 1)
    ax.set_ylabel("P(unit used) = 1 - sqrt(p)")
    ax.legend(fontsize=8, ncol=len(units))
    ax.set_title(title or "learned fusion-unit probabilities per layer", fontsize=10)
    return _save(fig, path)


def fusion_heatmap(marginals: list[dict], path: str | Path, title: str = "") -> Path:
    """Layer x unit heat map of the marginal probabilities, the values written in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    units = _units(marginals)
    grid = np.array([[m["units"].get(u, np.nan) for u in units] for m in marginals])
    fig, ax = plt.subplots(figsize=(1.0 * len(units) + 2.2, 0.45 * len(marginals) + 1.4))
    im = ax.imshow(grid, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(grid.shape[0]):
        for j in range(grid.shape[1]):
            ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if grid[i, j] < 0.6 else "black")
    ax.set_xticks(range(len(units)), units)
    ax.set_yticks(range(len(marginals)), [f"layer {m['layer']}" for m in marginals], fontsize=8)
    fig.colorbar(im, ax=ax, label="1 - sqrt(p)")
    ax.set_title(title or "unit preferences (low layers at the top)", fontsize=10)
    return _save(fig, path)


def fusion_compare(marginals: dict[str, list[dict]], path: str | Path, title: str = "") -> Path:
    """One panel per unit; in each, every layer's marginal probability of that unit for each
    template (``{label: marginals}``), bars side by side (PNG at ``path``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(marginals)
    units = _units(next(iter(marginals.values())))
    L = len(next(iter(marginals.values())))
    width = 0.8 / max(1, len(labels))
    fig, axes = plt.subplots(1, len(units), figsize=(max(4.0, 0.7 * L + 1.5) * len(units), 3.2), sharey=True,
                             squeeze=False)
    x = np.arange(L)
    for ax, u in zip(axes[0], units):
        for k, label in enumerate(labels):
            ax.bar(x + (k - (len(labels) - 1) / 2) * width, [m["units"].get(u, np.nan) for m in marginals[label]],
                   width, label=label)
        ax.set_xticks(x, [f"L{m['layer']}" for m in marginals[labels[0]]], fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_title(f"unit {u}", fontsize=10)
    axes[0][0].set_ylabel("P(unit used) = 1 - sqrt(p)")
    axes[0][-1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the bars, not on them
    fig.suptitle(title or "learned unit preferences per layer, by template", fontsize=10)
    return _save(fig, path)
