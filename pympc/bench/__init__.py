"""``pympc bench``: measure the machine's BSP and LogP parameters.

* :mod:`pympc.bench.workloads`: the h-relations (:class:`HRelation`, :class:`HaloRelation`,
  per halo pattern :class:`PatternRelation`) and the compute phase (:class:`Stream`) that
  are timed;
* :mod:`pympc.bench.timing`: timing them (:func:`time_hrelations`, :func:`time_patterns`,
  :func:`after_compute`, :func:`empty_sync`, :func:`logp`, :func:`compute_rate`);
* :mod:`pympc.bench.fits`: ``T(h) = g*h + l`` (:func:`fit`, :func:`fit_method`);
* :mod:`pympc.bench.command`: :func:`measure` (a :class:`~pympc.bsp.model.MachineParams`,
  the machine file ``pympc report --machine`` reads), :func:`summary` and the command.

The BSP parameters come from **h-relations** measured the way Bisseling's ``bspbench``
does: the superstep time ``T(h)``, timed to the slowest rank, for ``h = 0..H`` in a
random order, fitted to ``T(h) = g*h + l``; ``g`` and ``l`` are reported in seconds and
in flops (times ``r``). The same h-relations are timed through every communication path
and through the decomposition layer, each with its own fit, back to back and after a
compute phase: the profile report predicts a superstep with the parameters of the layer
it communicates through (:meth:`MachineParams.choose
<pympc.bsp.model.MachineParams.choose>`), since after a long compute phase most of a
small superstep's cost is fetching that layer's code and data back into the emptied
caches, which differs from layer to layer.
"""

from ..bsp.model import FORMAT
from .command import main, measure, summary
from .fits import fit, fit_method
from .timing import after_compute, compute_rate, empty_sync, logp, stream_seconds, time_hrelations, time_patterns
from .workloads import (ALL, METHODS, PATTERN_SIDES, PATTERNS, HaloRelation, HRelation, PatternRelation, Stream,
                        cache_bytes, check_methods, counts, default_compute_bytes, h_values, private_cache_bytes, words)

__all__ = ["ALL", "FORMAT", "METHODS", "PATTERN_SIDES", "PATTERNS", "HaloRelation", "HRelation",
           "PatternRelation", "Stream", "after_compute", "cache_bytes",
           "check_methods", "compute_rate", "counts", "default_compute_bytes", "empty_sync", "fit", "fit_method",
           "h_values", "logp", "main", "measure", "private_cache_bytes", "stream_seconds", "summary",
           "time_hrelations", "time_patterns", "words"]
