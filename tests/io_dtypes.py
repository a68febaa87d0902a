"""The dtype matrix of the I/O reading tests (tests/test_io.py and the serial-h5py case
tests/cases/io_fallback_dtypes.py): every supported dtype as stored by another program in
either byte order, values reaching each type's extremes, and the numpy oracle of a read."""

import numpy as np

from pympc.array import SUPPORTED_DTYPES


def stored_dtypes() -> list:
    """Every supported dtype in native order, and swapped for those of more than one byte
    (big-endian on the usual little-endian machine: what plain h5py writes for '>f8')."""
    return list(SUPPORTED_DTYPES) + [dt.newbyteorder("S") for dt in SUPPORTED_DTYPES if dt.itemsize > 1]


def dataset_name(dt) -> str:
    dt = np.dtype(dt)
    return dt.newbyteorder("=").name + ("" if dt.isnative else "_swapped")


def values(dt, shape, seed=0) -> np.ndarray:
    """An array of ``dt`` (in its byte order) with the type's extremes in its first cells."""
    dt = np.dtype(dt)
    native = dt.newbyteorder("=")
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    if native.kind == "b":
        x = rng.integers(0, 2, n).astype(bool)
    elif native.kind in "iu":
        info = np.iinfo(native)
        x = rng.integers(info.min, info.max, n, endpoint=True, dtype=native)
        x[:2] = info.min, info.max
    elif native.kind == "f":
        info = np.finfo(native)
        x = (rng.standard_normal(n) * 100).astype(native)
        x[:4] = info.max, -info.max, info.tiny, info.smallest_subnormal
    else:
        part = np.dtype(f"f{native.itemsize // 2}")
        re, im = values(part, (n,), seed), values(part, (n,), seed + 1)[::-1]
        x = (re + 1j * im).astype(native)
    return x.reshape(shape).astype(dt)


def expected(stored: np.ndarray, want) -> np.ndarray:
    """What a read of ``stored`` as ``want`` (None: the stored type) gives: native order."""
    dt = stored.dtype.newbyteorder("=") if want is None else np.dtype(want)
    return stored.astype(dt)


def is_safe(stored_dt, want) -> bool:
    return want is None or np.can_cast(np.dtype(stored_dt).newbyteorder("="), np.dtype(want), "safe")


def write_all(path, shape, components=()):
    """Serial h5py (one process): one dataset per stored dtype; returns {name: array}."""
    import h5py

    data = {}
    with h5py.File(path, "w") as f:
        for i, dt in enumerate(stored_dtypes()):
            x = values(dt, tuple(shape) + tuple(components), seed=i)
            f.create_dataset(dataset_name(dt), data=x)
            assert f[dataset_name(dt)].dtype == dt  # stored as given, byte order included
            data[dataset_name(dt)] = x
    return data


def wanted(stored_dt, full=True) -> list:
    """The dtypes a test reads ``stored_dt`` as: None (the stored type) and every
    supported dtype, or (``full=False``) None, the stored type, one safe conversion of
    another type and one unsafe one where there is any."""
    from pympc.array import SUPPORTED_DTYPES

    if full:
        return [None] + list(SUPPORTED_DTYPES)
    m = np.dtype(stored_dt).newbyteorder("=")
    safe = [w for w in reversed(SUPPORTED_DTYPES) if w != m and is_safe(m, w)][:1]
    unsafe = [w for w in SUPPORTED_DTYPES if not is_safe(m, w)][:1]
    return [None, m] + safe + unsafe


def check_reads(f, d, data, owned, full=True):
    """Read every dataset of ``data`` through ``f`` (a pympc.io.File) on ``d`` with every
    dtype (and none): into a new array, into ``out=``, and with ``read_array``. Returns
    this rank's list of failures, and the InputError messages of the unsafe reads (they
    must be identical on every rank). ``owned``: this rank's owned block as slices of the
    global array; ``full``: see :func:`wanted`."""
    import pympc

    fails, messages = [], []
    for name, x in data.items():
        for want in wanted(x.dtype, full):
            tag = f"{name} as {want}"
            if is_safe(x.dtype, want):
                exp = expected(x, want)
                a = f.read(name, d, dtype=want)
                if a.dtype != exp.dtype or not a.dtype.isnative or not np.array_equal(a.owned, exp[owned]):
                    fails.append(f"read {tag}: got {a.dtype}")
                b = pympc.DistArray(d, exp.dtype, x.shape[d.ndim:])
                b.data[...] = 0
                if f.read(name, None, out=b) is not b or not np.array_equal(b.owned, exp[owned]):
                    fails.append(f"read out= {tag}")
                r = f.read_array(name, dtype=want)
                if r.dtype != exp.dtype or not r.dtype.isnative or not np.array_equal(r, exp):
                    fails.append(f"read_array {tag}: got {r.dtype}")
                continue
            calls = [lambda: f.read(name, d, dtype=want),
                     lambda: f.read(name, None, out=pympc.DistArray(d, want, x.shape[d.ndim:])),
                     lambda: f.read_array(name, dtype=want)]
            for call in calls:
                try:
                    call()
                    fails.append(f"no error for unsafe {tag}")
                except pympc.InputError as e:
                    msg = str(e)
                    messages.append(msg)
                    stored = str(x.dtype.newbyteorder("="))
                    if not all(s in msg for s in (f.path, repr(name), stored, str(np.dtype(want)),
                                                  "does not convert safely")):
                        fails.append(f"unclear error for {tag}: {msg}")
    return fails, messages
