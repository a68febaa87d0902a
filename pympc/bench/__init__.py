"""``pympc bench``: measure the machine's BSP and LogP parameters (:mod:`pympc.bench.machine`)."""

from .machine import (ALL, FORMAT, METHODS, HaloRelation, HRelation, Stream, after_compute, cache_bytes,
                      compute_rate, counts, default_compute_bytes, empty_sync, fit, fit_method, h_values,
                      logp, main, measure, stream_seconds, summary, time_hrelations, words)

__all__ = ["ALL", "FORMAT", "METHODS", "HaloRelation", "HRelation", "Stream", "after_compute", "cache_bytes",
           "compute_rate", "counts", "default_compute_bytes", "empty_sync", "fit", "fit_method", "h_values",
           "logp", "main", "measure", "stream_seconds", "summary", "time_hrelations", "words"]
