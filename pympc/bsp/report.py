"""The profile report: what a gathered cost log (:mod:`pympc.costlog`) says, and what the
BSP cost model (:mod:`pympc.bsp.model`) predicts for it.

:func:`report` turns a gathered log (a dict, or the JSON file
:meth:`pympc.costlog.Log.save` writes) into a table: per label the measured ``w``,
``h``, communication and sync time, the predicted communication cost ``g*h + l`` (with
``g`` and ``l`` from ``pympc bench``, chosen by :meth:`MachineParams.choose
<pympc.bsp.model.MachineParams.choose>`), imbalance, idle fraction and the ranks
responsible; :func:`plot` draws it; :func:`fit_amdahl` and :func:`fit_gustafson` fit runs
at several rank counts. ``pympc report LOG.json [--machine M.json] [--png out.png]``
does all of it, in a process that is not a rank: this module starts no MPI.

Fits that are not physical (a negative or non-finite ``g`` or ``l``, as a machine
measured under load can give; a Gustafson serial fraction outside [0, 1]) are marked
"not physical" and predict nothing: their rows show no ``g*h+l``, no pred/meas, no
speedup. A halo pattern's fit is a line over the words it was measured on: a negative
``l`` there predicts inside that range (:func:`unphysical_at`).
"""

from __future__ import annotations

import json
import math

import numpy as np

from ..costlog import FORMAT, load
from .model import MachineParams


def unphysical(**values) -> str | None:
    """Local. Why machine parameters are not physical, or None: each of ``values``
    (``g=..., l=...``) must be a finite number >= 0 (a time per word, a time per
    superstep). A fit made on a loaded machine can give a negative slope or intercept."""
    bad = []
    for name, v in values.items():
        try:
            v = float(v)
        except (TypeError, ValueError):
            bad.append(f"{name} = {v!r} is not a number")
            continue
        if not math.isfinite(v):
            bad.append(f"{name} = {v} is not finite")
        elif v < 0:
            bad.append(f"{name} = {_t(v)} < 0")
    return ", ".join(bad) or None


def unphysical_at(g, l, span, h) -> str | None:
    """Local. Why the line ``T = g*h + l`` cannot predict an exchange of ``h`` words, or
    None: as :func:`unphysical`, except that a line fitted over ``span`` = ``(h_min,
    h_max)`` words (a halo pattern's fit, :func:`pympc.bench.fit`) may have ``l < 0`` for
    an ``h`` within its span where it is positive over all of it. Such a line is the
    chord of a cost that bends upwards with the grid (a strided exchange after a compute
    phase, whose grids outgrow the caches as ``h`` grows): it holds where it was measured,
    not at ``h = 0``. ``span`` None (older machine files): :func:`unphysical`."""
    why = unphysical(g=g, l=l)
    if why is None or span is None or unphysical(g=g) is not None or not _finite(l):
        return why
    lo, hi = span
    if not lo <= h <= hi:
        return f"{why} and h = {h:.0f} words lies outside the {lo:.0f}..{hi:.0f} it was fitted on"
    return None if g * lo + l > 0 else why


def _finite(v) -> bool:
    try:
        return math.isfinite(float(v))
    except (TypeError, ValueError):
        return False


def model_parameters(machine, kinds, w_step: float):
    """Local. The ``(g, l, name)`` that predict a superstep that recorded communication
    of ``kinds`` after ``w_step`` seconds of compute, from ``machine`` (a
    :class:`~pympc.bsp.model.MachineParams` or the dict of a ``pympc bench`` file):
    :meth:`MachineParams.choose <pympc.bsp.model.MachineParams.choose>` says how."""
    return MachineParams.from_json(machine).choose(kinds, w_step)


def summarise(data: dict, machine=None, allow_unphysical: bool = False) -> dict:
    """Local. The figures of the report, computed from a gathered log.

    Per label: ``steps``; ``w_max``/``w_mean`` (summed compute seconds of the slowest
    and the average rank), ``w_imbalance`` (max/mean) and ``w_rank`` (the slowest
    rank); ``h`` (the largest per-rank sum over the label's supersteps of max(sent,
    recv) words), ``h_imbalance`` and ``h_rank``; ``measured`` communication + sync
    seconds (the least of any rank: the rank that waited least); ``idle`` (seconds
    ranks spent waiting beyond that, summed) and ``idle_fraction`` (of all ranks' time
    in the label); with a machine (:class:`~pympc.bsp.model.MachineParams` or its
    dict), ``predicted = g*h + steps*l`` with the ``g`` and ``l`` of
    :func:`model_parameters` (named in ``model``) and ``ratio`` = predicted / measured.
    ``totals`` sums them. Where the chosen ``g`` or ``l`` is not physical
    (:func:`unphysical`), the row says why in ``not_physical`` and
    has no ``predicted`` or ``ratio``; the totals then have none either.
    ``allow_unphysical=True`` computes them anyway (still marked): for a benchmark that
    reports what its own fits predict, noise included.
    """
    if data.get("format") != FORMAT:
        from ..errors import InputError

        raise InputError(f"not a pympc profile log (format {data.get('format')!r})")
    machine = MachineParams.from_json(machine) if machine else None
    rows = [_row(lab, d, machine, allow_unphysical) for lab, d in data["labels"].items()]
    return {"ranks": data["ranks"], "elapsed": data["elapsed"], "rows": rows, "totals": _totals(rows, data),
            "machine": {"g": machine.g, "l": machine.l, "ranks": machine.ranks} if machine else None}


def _row(lab, d, machine, allow_unphysical):
    # one label's figures (summarise)
    w = np.asarray(d["w"], float)
    c = np.asarray(d["comm"], float) + np.asarray(d["sync"], float)
    h = np.asarray(d["h"], float)
    steps = int(max(d["count"]))
    measured = float(c.min())
    idle = float((c - measured).sum())
    busy = float((w + c).sum())
    row = {"label": lab, "steps": steps, "w_max": float(w.max()), "w_mean": float(w.mean()),
           "w_imbalance": float(w.max() / w.mean()) if w.mean() > 0 else 1.0, "w_rank": int(w.argmax()),
           "h": int(h.max()), "h_mean": float(h.mean()),
           "h_imbalance": float(h.max() / h.mean()) if h.mean() > 0 else 1.0, "h_rank": int(h.argmax()),
           "sent": int(np.sum(d["sent"])), "recv": int(np.sum(d["recv"])),
           "comm": float(np.min(d["comm"])), "sync": float(np.min(d["sync"])),
           "measured": measured, "idle": idle, "idle_fraction": idle / busy if busy > 0 else 0.0,
           "idle_rank": int(c.argmax()), "time": float((w + c).mean()),
           "kinds": sorted(d.get("kinds", {}))}
    row["patterns"] = _patterns(d)
    if machine is not None:
        _predict(row, machine, steps, measured, allow_unphysical)
    return row


def _patterns(d):
    # per halo pattern of a label: the exchanges (most on any rank) and h (the largest
    # per-rank sum of max(sent, recv) over them)
    out = {}
    for key, v in d.get("patterns", {}).items():
        h = [max(s, r) for s, r in zip(v["sent"], v["recv"])]
        out[key] = {"count": int(max(v["count"])), "h": int(max(h))}
    return out


def _predict(row, machine, steps, measured, allow_unphysical):
    # the row's predicted g*h + l and ratio: per halo pattern with that pattern's fit
    # where every pattern the label ran has one (and it moved no BSP data), else with the
    # layer's g and l (MachineParams.choose)
    w_step = row["w_max"] / max(1, steps)
    pats = row["patterns"]
    fits = {k: machine.choose_pattern(k, w_step) for k in pats} if "bsp" not in row["kinds"] else {}
    if pats and fits and all(fits.values()):
        n = sum(p["count"] for p in pats.values())
        # supersteps of the label without an exchange cost an empty sync
        l_rest = machine.details.get("l_empty", 0.0) * max(0, steps - n)
        terms = [(f[0], f[1], pats[k]["h"], pats[k]["count"]) for k, f in fits.items()]
        row["model"] = "; ".join(f[2] for f in fits.values())
        # a pattern's fit is a line over the words of one exchange: checked at the words
        # of one of the label's exchanges of that pattern
        why = "; ".join(filter(None, (unphysical_at(f[0], f[1], f[3], pats[k]["h"] / max(1, pats[k]["count"]))
                                      for k, f in fits.items())))
        predicted = sum(g * h + l * c for g, l, h, c in terms) + l_rest
    else:
        gg, ll, row["model"] = machine.choose(row["kinds"], w_step)
        why = unphysical(g=gg, l=ll)
        predicted = gg * row["h"] + ll * steps
    if why:
        row["not_physical"] = why
    if not why or allow_unphysical:
        row["predicted"] = predicted
        row["ratio"] = predicted / measured if measured > 0 else math.inf


def _totals(rows, data):
    # the "total" row (summarise)
    tot = {"label": "total", "steps": sum(r["steps"] for r in rows)}
    for k in ("w_max", "w_mean", "measured", "idle", "time", "predicted"):
        if rows and all(k in r for r in rows):
            tot[k] = sum(r[k] for r in rows)
    tot["h"] = sum(r["h"] for r in rows)
    busy = sum(r["time"] for r in rows) * data["ranks"]
    tot["idle_fraction"] = tot.get("idle", 0.0) / busy if busy > 0 else 0.0
    if "predicted" in tot and tot.get("measured"):
        tot["ratio"] = tot["predicted"] / tot["measured"]
    tot["elapsed"] = data["elapsed"]
    tot["accounted"] = tot.get("time", 0.0) / data["elapsed"] if data["elapsed"] > 0 else 0.0
    return tot


def _t(x):
    if x is None:
        return "-"
    x = float(x)
    for unit, f in (("s", 1.0), ("ms", 1e-3), ("µs", 1e-6)):
        if abs(x) >= f:
            return f"{x / f:.3g} {unit}"
    return f"{x / 1e-9:.3g} ns"


def report(data, machine=None, png=None, scaling=None) -> str:
    """Local. The profile report of a gathered log (dict or JSON path) as text.

    ``machine``: ``pympc bench`` results (:class:`~pympc.bsp.model.MachineParams`, its
    dict or its file) for the predicted ``g*h + l``; ``png``: also draw :func:`plot`
    into this file; ``scaling``: a list of gathered logs of the same program at 3 or
    more rank counts (or ``(ranks, seconds)`` pairs), fitted with :func:`fit_amdahl` and
    :func:`fit_gustafson` on their elapsed times.
    """
    if isinstance(data, (str, bytes)) or hasattr(data, "__fspath__"):
        data = load(data)
    if isinstance(machine, (str, bytes)) or hasattr(machine, "__fspath__"):
        machine = MachineParams.load(machine)
    elif machine:
        machine = MachineParams.from_json(machine)
    s = summarise(data, machine)
    out = [f"pympc profile: {s['ranks']} rank(s), elapsed {_t(s['elapsed'])}, "
           f"{s['totals']['accounted']:.0%} of it in logged supersteps"]
    if machine:
        out += _machine_lines(machine, s)
    out += _table(s)
    if scaling:
        out += _scaling_lines(scaling)
    if png:
        plot(s, png, scaling=scaling)
        out.append(f"plot: {png}")
    return "\n".join(out)


def _fit_note(f):
    # what the machine lines say after a fit that is not physical at every h
    if not unphysical(g=f["g"], l=f["l"]):
        return ""
    lo, hi = f.get("h_min"), f.get("h_max")
    if _finite(lo) and _finite(hi) and unphysical_at(f["g"], f["l"], (float(lo), float(hi)), float(lo)) is None:
        return f" (a line over h = {float(lo):.0f}..{float(hi):.0f} words only)"
    return " (not physical)"


def _machine_lines(machine, s):
    # what the report says about the machine model it predicts with
    why = unphysical(g=machine.g, l=machine.l)
    out = [f"machine: g = {_t(machine.g)}/word, l = {_t(machine.l)}"
           f" (measured at {machine.ranks or '?'} rank(s))" + (f": not physical ({why})" if why else "")]
    if machine.ranks not in (None, s["ranks"]):
        out.append(f"warning: g and l were measured at {machine.ranks} ranks, this run has "
                   f"{s['ranks']}: the prediction is indicative only")
    ac = machine.after_compute
    if ac:
        out.append(f"  after a compute phase streaming {ac['stream_bytes'] / 2**20:.0f} MiB "
                   f"({_t(ac['stream_seconds'])}): " + ", ".join(
                       f"{m} g = {_t(f['g'])}/word, l = {_t(f['l'])}" + _fit_note(f)
                       for m, f in ac["fit"].items()))
    bad = [r for r in s["rows"] if "not_physical" in r]
    if bad:
        outside = any("outside" in r["not_physical"] for r in bad)
        out.append(f"warning: the g and l chosen for {', '.join(r['label'] for r in bad)} are not physical "
                   f"(a fit measured under load?): no prediction is made from them; measure "
                   f"again with 'pympc bench' on an idle machine"
                   + (" (a halo pattern's fit outside its words: with --sides near this program's grid)"
                      if outside else ""))
    return out


def _table(s):
    # the per-label table, its legend and the model each row was predicted with
    head = (f"{'label':<16} {'steps':>6} {'w max':>10} {'w imb':>6} {'h words':>10} {'h imb':>6} "
            f"{'comm+sync':>10} {'g*h+l':>10} {'pred/meas':>9} {'idle':>6}  ranks (w, h, idle)")
    out = ["", head, "-" * len(head)]
    for r in s["rows"] + [s["totals"]]:
        total = r["label"] == "total"
        ranks = "" if total else f"  {r['w_rank']}, {r['h_rank']}, {r['idle_rank']}"
        out.append(f"{r['label'][:16]:<16} {r['steps']:>6} {_t(r.get('w_max')):>10} "
                   f"{'' if total else format(r['w_imbalance'], '.2f'):>6} {r['h']:>10} "
                   f"{'' if total else format(r['h_imbalance'], '.2f'):>6} {_t(r.get('measured')):>10} "
                   f"{'not phys.' if 'not_physical' in r else _t(r.get('predicted')):>10} "
                   f"{format(r['ratio'], '.2f') if 'ratio' in r else '-':>9} "
                   f"{r['idle_fraction']:>6.1%}{ranks}")
    out.append("")
    out.append("w: compute seconds of the slowest rank; h: largest per-rank words, max(sent, recv) "
               "per superstep, summed; comm+sync: seconds of the rank that waited least; idle: "
               "time ranks waited beyond that, as a share of all ranks' time in the label.")
    models = [(r["label"], r["model"] + (f" (not physical: {r['not_physical']}; no prediction)"
                                         if "not_physical" in r else "")) for r in s["rows"] if "model" in r]
    if models:
        out.append("g*h+l with: " + "; ".join(f"{lab}: {m}" for lab, m in models))
    return out


def _runs(scaling):
    # (ranks, elapsed seconds) of each run: gathered logs or pairs
    return [(x["ranks"], x["elapsed"]) if isinstance(x, dict) else tuple(x) for x in scaling]


def _scaling_lines(scaling):
    # the Amdahl and Gustafson fits over the runs' rank counts
    runs = _runs(scaling)
    ranks = [p for p, _ in runs]
    times = [t for _, t in runs]
    if len(set(ranks)) < 3:
        return ["scaling: needs runs at 3 or more rank counts"]
    a = fit_amdahl(ranks, times)
    gu = fit_gustafson(ranks, times)
    amdahl = (f"T1 = {_t(a['t1'])}, max speedup {a['max_speedup']:.1f}" if a["physical"] else
              "not physical (no finite T1 > 0): no T1 or speedup predicted from it")
    gustafson = ("" if gu["physical"] else
                 " (not physical: outside [0, 1]; these runs do not scale as Gustafson's law says)")
    return ["", "scaling over rank counts " + ", ".join(map(str, ranks)) + ":",
            f"  Amdahl (strong scaling, T = T1 (s + (1-s)/P)): serial fraction s = "
            f"{a['serial_fraction']:.3f}, {amdahl}, "
            f"rms relative residual {a['rms_rel_residual']:.1%}",
            f"  Gustafson (weak scaling, S = P - s (P-1)): serial fraction s = "
            f"{gu['serial_fraction']:.3f}{gustafson}, rms residual {gu['rms_residual']:.3g}"]


def plot(summary: dict, path, scaling=None) -> None:
    """Local. Draw a summary (:func:`summarise`) into a PNG: per label the slowest rank's
    compute, the measured communication + sync and the predicted ``g*h + l``; with
    ``scaling``, the elapsed times against rank count and the Amdahl fit."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summary["rows"]
    n = 2 if scaling else 1
    fig, axes = plt.subplots(1, n, figsize=(6 + 4 * (n - 1), 1.2 + 0.5 * max(3, len(rows))), squeeze=False)
    ax = axes[0][0]
    y = np.arange(len(rows))
    hgt = 0.27
    ax.barh(y - hgt, [r["w_max"] for r in rows], hgt, label="compute w (slowest rank)")
    ax.barh(y, [r["measured"] for r in rows], hgt, label="comm + sync (measured)")
    if any("predicted" in r for r in rows):  # rows whose fit is not physical draw no bar
        ax.barh(y + hgt, [r.get("predicted", 0.0) for r in rows], hgt, label="g*h + l (predicted)",
                hatch="//", fill=False)
    ax.set_yticks(y, [r["label"] for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("seconds (summed over the label's supersteps)")
    ax.set_title(f"pympc profile, {summary['ranks']} rank(s)")
    ax.legend(fontsize="small")
    if scaling:
        runs = sorted(_runs(scaling))
        ax2 = axes[0][1]
        P = np.array([p for p, _ in runs], float)
        T = np.array([t for _, t in runs], float)
        ax2.loglog(P, T, "o", label="measured")
        a = fit_amdahl(P, T) if len(set(P)) >= 3 else None
        if a and a["physical"]:
            Pf = np.geomspace(P.min(), P.max() * 2, 50)
            ax2.loglog(Pf, a["t1"] * (a["serial_fraction"] + (1 - a["serial_fraction"]) / Pf), "-",
                       label=f"Amdahl, s = {a['serial_fraction']:.3f}")
        ax2.set_xlabel("ranks")
        ax2.set_ylabel("elapsed seconds")
        ax2.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------------------------------
# scaling fits
# ---------------------------------------------------------------------------------------
def _check_runs(ranks, times):
    P = np.asarray(ranks, float)
    T = np.asarray(times, float)
    why = ("ranks and times must be two lists of one length" if P.shape != T.shape or P.ndim != 1 else
           f"a scaling fit needs runs at 3 or more rank counts, got {sorted(set(P.tolist()))}"
           if len(set(P.tolist())) < 3 else
           "rank counts must be >= 1 and times > 0" if (P < 1).any() or (T <= 0).any() else None)
    if why:
        from ..errors import InputError

        raise InputError(why)
    return P, T


def fit_amdahl(ranks, times) -> dict:
    """Local. Fit strong-scaling times (fixed problem) to Amdahl's law
    ``T(P) = T1 * (s + (1 - s) / P)``: least squares in ``a + b/P`` with ``a, b >= 0``.

    Returns ``serial_fraction`` s, ``t1``, ``max_speedup`` (1/s), ``speedup`` at each
    given P, the fitted ``times``, ``rms_rel_residual`` and ``physical``. The constraint
    keeps s in [0, 1] (superlinear runs give s = 0), so ``physical`` is false only when
    T1 is not a finite number > 0 (times too large for floats): the report then predicts
    nothing from the fit. Needs 3 or more rank counts.
    """
    P, T = _check_runs(ranks, times)
    A = np.stack([np.ones_like(P), 1.0 / P], axis=1)
    wgt = 1.0 / T  # relative residuals: every run counts alike
    (a, b), *_ = np.linalg.lstsq(A * wgt[:, None], T * wgt, rcond=None)
    if a < 0:
        a, b = 0.0, float(np.sum(T / P * wgt ** 2) / np.sum((wgt / P) ** 2))
    elif b < 0:
        a, b = float(np.sum(T * wgt ** 2) / np.sum(wgt ** 2)), 0.0
    t1 = a + b
    s = a / t1 if t1 > 0 else 1.0
    fitted = a + b / P
    return {"serial_fraction": float(s), "t1": float(t1),
            "physical": bool(math.isfinite(t1) and t1 > 0),
            "max_speedup": float(1 / s) if s > 0 else math.inf,
            "speedup": (t1 / fitted).tolist(), "times": fitted.tolist(),
            "rms_rel_residual": float(np.sqrt(np.mean(((T - fitted) / T) ** 2)))}


def fit_gustafson(ranks, times) -> dict:
    """Local. Fit weak-scaling times (work per rank fixed) to Gustafson's law: the
    scaled speedup ``S(P) = P * T(P0) / T(P)`` (P0 the smallest rank count, taken as
    perfectly efficient) against ``S = P - s (P - 1)``, least squares in s.

    Returns ``serial_fraction`` s, the measured ``scaled_speedup``, the fitted ones,
    ``rms_residual`` and ``physical`` (s in [0, 1]: a larger s, as runs slowing down
    more than a fully serial program give, is marked not physical in the report).
    Needs 3 or more rank counts.
    """
    P, T = _check_runs(ranks, times)
    t0 = T[P.argmin()]
    S = P * t0 / T
    x = P - 1
    s = float(np.sum((P - S) * x) / np.sum(x * x)) if np.sum(x * x) > 0 else 0.0
    fitted = P - s * x
    return {"serial_fraction": s, "physical": bool(0.0 <= s <= 1.0), "scaled_speedup": S.tolist(),
            "fitted": fitted.tolist(),
            "rms_residual": float(np.sqrt(np.mean((S - fitted) ** 2)))}


# ---------------------------------------------------------------------------------------
# pympc report
# ---------------------------------------------------------------------------------------
def main(argv=None) -> int:
    """Local. ``pympc report LOG.json [LOG2.json ...] [--machine M.json] [--png out.png]``.

    With several logs the first is reported and all of them (3 or more rank counts)
    feed the Amdahl/Gustafson fits.
    """
    import argparse

    ap = argparse.ArgumentParser(prog="pympc report", description="report a pympc profile log")
    ap.add_argument("logs", nargs="+", help="gathered log(s) written by Log.save")
    ap.add_argument("--machine", help="machine parameters written by 'pympc bench --json'")
    ap.add_argument("--png", help="also draw the report into this PNG file")
    ap.add_argument("--json", help="write the summary figures as JSON here")
    args = ap.parse_args(argv)
    try:
        logs = [load(p) for p in args.logs]
        machine = MachineParams.load(args.machine) if args.machine else None
        text = report(logs[0], machine, png=args.png, scaling=logs if len(logs) > 1 else None)
    except (OSError, ValueError, KeyError) as e:
        print(f"pympc report: {e}")
        return 1
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(summarise(logs[0], machine), f, indent=1)
    return 0
