"""A picture of a 2D run's final field (``[output] png = true``): ``final.png`` in the
run directory, drawn on rank 0 with matplotlib (imported only here)."""

from __future__ import annotations

import os


def draw(field, grid: dict, path: str, title: str) -> None:
    """Local. Draw a global 2D ``field`` (axis 0 is x) on the job's ``grid`` into
    ``path``: x to the right, y up, a colour bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (x0, y0), (hx, hy), (nx, ny) = grid["origin"], grid["spacing"], grid["shape"]
    shift = 0.5 if grid["centring"] == "cell" else 0.0
    extent = (x0 + shift * hx, x0 + (nx - 1 + shift) * hx, y0 + shift * hy, y0 + (ny - 1 + shift) * hy)
    fig, ax = plt.subplots(figsize=(5.5, 4.5), dpi=100)
    im = ax.imshow(field.T, origin="lower", extent=extent, cmap="inferno")
    fig.colorbar(im, ax=ax)
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
