"""Make docs/figures/blocking_k.png from benchmarks/results/blocking.json (no MPI, no
timing: it plots the figures of the last `./run bench blocking`):

    .venv/bin/python docs/figures/make_blocking.py

Mcell/s of the heat step on 4096² against the steps per exchange k, at each rank count
of the results file: temporal blocking (tiles in cache) and deep halo (whole-block
sweeps), with the copy-bandwidth roofline measured in the same run as a line.
"""

import json
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "..", "..", "benchmarks", "results", "blocking.json")


def main():
    with open(RESULTS) as f:
        runs = json.load(f)["runs"]
    fig, axes = plt.subplots(1, len(runs), figsize=(5.2 * len(runs), 4), sharey=True, squeeze=False)
    for ax, r in zip(axes[0], runs):
        for key, label, style in (("blocked_by_k", "temporal blocking (in cache)", "o-"),
                                  ("deep_by_k", "deep halo (whole-block sweeps)", "s--")):
            ks = [t["k"] for t in r[key]]
            ax.plot(ks, [t["Mcells"] for t in r[key]], style, label=label)
        ax.axhline(r["roofline_Mcells"], color="k", lw=1, label="roofline (copy bandwidth / 16 B)")
        ax.axhline(1.5 * r["roofline_Mcells"], color="k", lw=1, ls=":", label="1.5 x roofline")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("steps per halo exchange k")
        ax.set_title(f"heat {r['size']}², {r['ranks']} rank(s)")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("Mcell/s")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    out = os.path.join(HERE, "blocking_k.png")
    fig.savefig(out, dpi=110)
    print("wrote", out)


if __name__ == "__main__":
    main()
