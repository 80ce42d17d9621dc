#!/usr/bin/env python
"""Merging 500 protopipe outputs: ``collect.merge`` vs the original tool and ``cat``, in one run.

    python bench/merge_bench.py                  # 500 DL2 + 500 TRAINING files (~0.4 GB, ~4 min)
    python bench/merge_bench.py --files 100      # quicker
    python bench/merge_bench.py --profile        # the C-level floor even if targets are met

For each set (DL2, TRAINING), generated here (seeded, in a temporary folder) with the real
protopipe 0.5.0 layouts, and measured in the same run on the same files:

- **ours**: ``protopipe_grid_interface.workflow.collect.merge`` (payload/merge_tables.py: inputs
  read with h5py's low-level API, output written with PyTables);
- **original**: protopipe-grid-interface v0.4 ``merge_tables.py`` re-implemented (open the output
  ``'w'``, ``copy_node`` the first file's tables, ``append_where`` every later file's);
- **cat**: ``cat`` of the same files to ``/dev/null`` (the I/O floor);
- a what-if: ours without h5py (``--engine tables``: every input read with PyTables, as before
  h5py).

Every input file is read once before any timing, so all read from the page cache; ``os.sync``
runs (untimed) before each run so no method pays for another's dirty pages. Ours and cat run
three times and the fastest counts; the original (~1 min) and ours without h5py once. Every
output is checked against the generated truth: rows per table, a SHA-256 of all rows in merge
order, and the summed ``num_showers``. When ours misses a target (>= 5x the original, >= 25 % of
cat) or with ``--profile``, the floor is measured on the same files: HDF5's C calls alone
(through ctypes) reading what ours reads, and one write of the merged bytes.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import tables

TARGET_VS_ORIGINAL = 5.0
TARGET_VS_CAT = 0.25
POOL_ROWS = 12_000  # rows generated once per table, sliced into the files
SHOWER_REUSE = 20
RUNS = 3  # the fast methods run this many times, the fastest counts

# --- the real layouts (protopipe 0.5.0) ---------------------------------------------------------
# write_dl2.py, class RecoEvent: 31 columns, one row per array event (failed ones included)
I2, I4, F4, F8 = tables.Int16Col, tables.Int32Col, tables.Float32Col, tables.FloatCol
B = tables.BoolCol
DL2_COLUMNS: dict[str, Any] = {
    "obs_id": I2(dflt=-1, pos=0), "event_id": I4(dflt=-1, pos=1),
    "NTels_trig": I2(dflt=-1, pos=2), "NTels_reco": I2(dflt=-1, pos=3),
    "N_reco_LST": I2(dflt=-1, pos=4), "N_reco_MST": I2(dflt=-1, pos=5),
    "N_reco_SST": I2(dflt=-1, pos=6),
    "pointing_az": F4(dflt=np.nan, pos=7), "pointing_alt": F4(dflt=np.nan, pos=8),
    "true_az": F4(dflt=np.nan, pos=9), "true_alt": F4(dflt=np.nan, pos=10),
    "true_energy": F4(dflt=np.nan, pos=11), "reco_energy": F4(dflt=np.nan, pos=12),
    "reco_alt": F4(dflt=np.nan, pos=13), "reco_az": F4(dflt=np.nan, pos=14),
    "offset": F4(dflt=np.nan, pos=15), "xi": F4(dflt=np.nan, pos=16),
    "ErrEstPos": F4(dflt=np.nan, pos=17), "ErrEstDir": F4(dflt=np.nan, pos=18),
    "gammaness": F4(dflt=np.nan, pos=19), "success": B(dflt=False, pos=20),
    "score": F4(dflt=np.nan, pos=21), "h_max": F4(dflt=np.nan, pos=22),
    "reco_core_x": F4(dflt=np.nan, pos=23), "reco_core_y": F4(dflt=np.nan, pos=24),
    "true_core_x": F4(dflt=np.nan, pos=25), "true_core_y": F4(dflt=np.nan, pos=26),
    "is_valid": B(dflt=False, pos=27),
    "N_LST": I2(dflt=-1, pos=28), "N_MST": I2(dflt=-1, pos=29), "N_SST": I2(dflt=-1, pos=30),
}
# data_training.py, DataTrainingOutput: 67 columns, one row per image, one table per camera
# (positions as in protopipe, including its two columns at pos=64)
_TRAINING_SPEC = (
    "obs_id I2 event_id I4 tel_id I2 N_LST I2 N_MST I2 N_SST I2 n_tel_reco F8 n_tel_discri F8 "
    "hillas_intensity_reco F4 hillas_intensity F4 hillas_x_reco F4 hillas_y_reco F4 hillas_x F4 "
    "hillas_y F4 hillas_r_reco F4 hillas_r F4 hillas_phi_reco F4 hillas_phi F4 "
    "hillas_length_reco F4 hillas_length F4 hillas_width_reco F4 hillas_width F4 "
    "hillas_psi_reco F4 hillas_psi F4 hillas_skewness_reco F4 hillas_skewness F4 "
    "hillas_kurtosis F4 hillas_kurtosis_reco F4 leakage_intensity_width_1_reco F4 "
    "leakage_intensity_width_2_reco F4 leakage_intensity_width_1 F4 leakage_intensity_width_2 F4 "
    "concentration_cog F4 concentration_core F4 concentration_pixel F4 "
    "hillas_ellipticity_reco F8 hillas_ellipticity F8 max_signal_cam F4 pixels I2 clusters I2 "
    "impact_dist F4 h_max F4 alt F4 az F4 err_est_pos F4 err_est_dir F4 xi F4 offset F4 "
    "mc_core_x F8 mc_core_y F8 reco_core_x F8 reco_core_y F8 mc_h_first_int F8 mc_x_max F4 "
    "is_valid B good_image I2 true_az F4 true_alt F4 pointing_az F4 pointing_alt F4 "
    "true_energy F8 reco_energy F8 reco_energy_tel F4 N_reco_LST I2 N_reco_MST I2 "
    "N_reco_SST I2 image_extraction I2"
).split()
_KINDS = {"I2": I2, "I4": I4, "F4": F4, "F8": F8, "B": B}
TRAINING_COLUMNS: dict[str, Any] = {
    _TRAINING_SPEC[2 * i]: _KINDS[_TRAINING_SPEC[2 * i + 1]](pos=i if i <= 64 else i - 1)
    for i in range(len(_TRAINING_SPEC) // 2)
}
assert len(DL2_COLUMNS) == 31 and len(TRAINING_COLUMNS) == 67


@dataclass
class Layout:
    """One kind of protopipe output: its tables, their columns, rows per file."""

    kind: str
    prefix: str
    columns: dict[str, Any]
    rows: dict[str, tuple[int, int]]  # table name -> (min, max) rows per file
    first_obs_id: int


LAYOUTS = {
    "DL2": Layout("DL2", "DL2_gamma_tail_run", DL2_COLUMNS, {"reco_events": (1000, 5000)}, 1000),
    "TRAINING": Layout("TRAINING", "TRAINING_energy_gamma_tail_run", TRAINING_COLUMNS,
                       {"LSTCam": (100, 600), "NectarCam": (300, 1500)}, 5000),
}


@dataclass
class Truth:
    """What a correct merge of a set must contain."""

    paths: list[Path]
    nbytes: int
    rows: dict[str, int] = field(default_factory=dict)
    digests: dict[str, Any] = field(default_factory=dict)  # table -> hashlib object
    num_showers: int = 0


# --- generating the inputs ----------------------------------------------------------------------
def make_pool(layout: Layout, rng: np.random.Generator) -> np.ndarray:
    """POOL_ROWS rows of plausible values for every column of ``layout``."""
    dtype = tables.Description(layout.columns)._v_dtype
    pool = np.zeros(POOL_ROWS, dtype)
    n = POOL_ROWS
    energy = 10 ** rng.uniform(-2.0, 2.5, n)  # TeV
    ok = rng.random(n) < 0.85
    for name in dtype.names:
        kind = dtype[name]
        if name in ("true_energy",):
            pool[name] = energy
        elif "energy" in name:
            pool[name] = np.where(ok, energy * rng.lognormal(0, 0.2, n), np.nan)
        elif name.endswith(("_alt", "alt")):
            pool[name] = 70 + rng.normal(0, 1.5, n)
        elif name.endswith(("_az", "az")):
            pool[name] = 180 + rng.normal(0, 1.5, n)
        elif name in ("gammaness", "score"):
            pool[name] = np.where(ok, rng.random(n), np.nan)
        elif kind == np.bool_:
            pool[name] = ok
        elif kind.kind == "i":
            pool[name] = rng.integers(0, 30, n)
        else:
            pool[name] = np.where(ok, rng.normal(0, 100, n), np.nan)
    return pool


def write_file(kind: str, path: Path, contents: list[tuple[str, np.ndarray]],
               num_showers: int) -> None:
    """Write one protopipe output the way protopipe does (default filters and chunk shapes)."""
    columns = LAYOUTS[kind].columns
    with tables.open_file(str(path), mode="w") as h5:
        h5.root._v_attrs["status"] = "incomplete"  # as protopipe does until it finishes
        for table, rows in contents:
            h5.create_table("/", table, columns).append(rows)
        h5.root._v_attrs["status"] = "complete"
        h5.root._v_attrs["num_showers"] = num_showers
        h5.root._v_attrs["shower_reuse"] = SHOWER_REUSE


def generate(layout: Layout, folder: Path, files: int, rng: np.random.Generator) -> Truth:
    """Write ``files`` outputs of ``layout`` into ``folder``; return what their merge must hold.

    Rows are drawn here, in order (so the result depends on the seed only); the files are
    written by one process per core, because creating 67-column tables costs PyTables ~30 ms each.
    """
    folder.mkdir(parents=True)
    pools = {table: make_pool(layout, rng) for table in layout.rows}
    step = 0 if "tel_id" in layout.columns else 1  # one row per image / one per event
    truth = Truth([], 0)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as writers:
        pending = []
        for i in range(files):
            path = folder / f"{layout.prefix}{layout.first_obs_id + i:05d}.h5"
            num_showers = int(rng.integers(5_000, 50_000))
            contents = []
            for table, (low, high) in layout.rows.items():
                n = int(rng.integers(low, high + 1))
                start = int(rng.integers(0, POOL_ROWS - n))
                rows = pools[table][start:start + n].copy()
                rows["obs_id"] = layout.first_obs_id + i
                rows["event_id"] = np.cumsum(rng.integers(step, 200, n))
                contents.append((table, rows))
                truth.rows[table] = truth.rows.get(table, 0) + n
                truth.digests.setdefault(table, hashlib.sha256()).update(rows.tobytes())
            pending.append(writers.submit(write_file, layout.kind, path, contents, num_showers))
            truth.num_showers += num_showers
            truth.paths.append(path)
        for future in pending:
            future.result()
    truth.nbytes = sum(p.stat().st_size for p in truth.paths)
    return truth


def warm(paths: Sequence[Path]) -> None:
    """Read every file once, so every method then reads from the page cache."""
    for path in paths:
        with open(path, "rb") as stream:
            while stream.read(1 << 22):
                pass


# --- the methods -------------------------------------------------------------------------------
def merge_ours(paths: Sequence[Path], out: Path) -> None:
    """What the CLI runs: inputs read with h5py's low-level API, output written by PyTables."""
    from protopipe_grid_interface.workflow import collect

    collect.merge(list(paths), out)


def merge_ours_tables(paths: Sequence[Path], out: Path) -> None:
    """Ours where h5py is missing: every input read with PyTables (merge_tables --engine tables)."""
    from protopipe_grid_interface.payload import merge_tables

    merge_tables.merge(str(out), [str(p) for p in paths], note=lambda _: None, engine="tables")


def merge_original(paths: Sequence[Path], out: Path) -> None:
    """protopipe-grid-interface v0.4 ``merge_list_of_pytables`` (logging and messages left out)."""
    merged_tables: dict[str, Any] = {}
    outfile = tables.open_file(str(out), mode="w")
    all_previous_files_were_empty = True
    for idx, filename in enumerate(sorted(paths)):
        try:
            infile = tables.open_file(str(filename), mode="r")
        except tables.exceptions.HDF5ExtError:
            continue
        table_name_list = [table.name for table in infile.root]
        empty_file = len(table_name_list) == 0
        if (idx == 0 or all_previous_files_were_empty) and not empty_file:
            for name in table_name_list:
                merged_tables[name] = infile.copy_node(where="/", name=name,
                                                       newparent=outfile.root)
            all_previous_files_were_empty = False
        elif all_previous_files_were_empty or empty_file:
            infile.close()
            continue
        else:
            for name in table_name_list:
                infile.get_node("/" + name).append_where(dstTable=merged_tables[name])
        infile.close()
    outfile.close()


def cat(paths: Sequence[Path], out: Path) -> None:
    subprocess.run(["cat", *map(str, paths)], stdout=subprocess.DEVNULL, check=True)


# --- measuring ----------------------------------------------------------------------------------
def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def measure(function: Callable[[], None]) -> tuple[float, float]:
    """(wall s, cpu s) of one call, after an (untimed) os.sync()."""
    os.sync()
    cpu, wall = cpu_seconds(), time.perf_counter()
    function()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def check(out: Path, truth: Truth) -> tuple[bool, str]:
    """Compare a merged file with the truth: (all good, one-line summary)."""
    problems, parts = [], []
    with tables.open_file(str(out)) as h5:
        for table, expected in truth.rows.items():
            node = h5.get_node("/" + table)
            digest = hashlib.sha256()
            for start in range(0, node.nrows, 500_000):
                digest.update(node.read(start, min(start + 500_000, node.nrows)).tobytes())
            parts.append(f"{table}={node.nrows:,}")
            if node.nrows != expected:
                problems.append(f"{table}: {node.nrows} rows, expected {expected}")
            elif digest.digest() != truth.digests[table].digest():
                problems.append(f"{table}: rows differ from the inputs")
        showers = h5.root._v_attrs["num_showers"] if "num_showers" in h5.root._v_attrs else None
    parts.append(f"num_showers={showers:,}" if showers is not None else "num_showers=absent")
    if showers is not None and showers != truth.num_showers:
        problems.append(f"num_showers {showers}, expected {truth.num_showers}")
    ok = not problems
    return ok, " ".join(parts) + ("" if ok else "  PROBLEM: " + "; ".join(problems))


# --- the floor: what any merge that reads through HDF5 and writes the output must spend -------
def libhdf5() -> Any:
    """ctypes handle on the HDF5 library h5py uses (the one ours reads with), or None."""
    import ctypes
    import importlib.util

    if importlib.util.find_spec("h5py") is None:
        return None
    import h5py

    if h5py.version.hdf5_version_tuple < (1, 10):  # hid_t is 64 bits from 1.10 on
        return None
    libs = sorted((Path(h5py.__file__).parent.parent / "h5py.libs").glob("libhdf5-*.so*"))
    if not libs:  # h5py linked to a system or conda HDF5: the one mapped in this process
        maps = Path("/proc/self/maps")
        mapped = maps.read_text().split() if maps.exists() else []
        libs = [Path(w) for w in mapped if "/libhdf5.so" in w or "/libhdf5-" in w]
    libs = [lib for lib in libs if "_hl" not in lib.name]
    return ctypes.CDLL(str(libs[0])) if libs else None


def hdf5_floor(paths: Sequence[Path]) -> dict[str, float] | None:
    """Seconds HDF5's C calls alone take to read what ours reads from the inputs, or None.

    Through ctypes (~1 us a call), per file: H5Fopen; H5Aopen + H5Aread of status,
    num_showers and shower_reuse; the root group's links; per table H5Dopen2, its type and
    dataspace, then all rows: with one H5Dread in the file's own type ("read"), or chunk by
    chunk with H5Dread_chunk as ours does ("chunks"); H5Fclose. Also H5Fopen + H5Fclose alone.
    Nothing ours checks on top (CLASS, the type against the output's) is counted.
    """
    import ctypes

    lib = libhdf5()
    if lib is None:
        return None
    hid, herr, size = ctypes.c_int64, ctypes.c_int, ctypes.c_size_t
    text, void, u64 = ctypes.c_char_p, ctypes.c_void_p, ctypes.c_uint64

    class GroupInfo(ctypes.Structure):
        _fields_ = [("storage_type", ctypes.c_int), ("nlinks", u64),
                    ("max_corder", ctypes.c_int64), ("mounted", ctypes.c_bool)]

    signatures: dict[str, tuple[Any, list[Any]]] = {
        "H5Fopen": (hid, [text, ctypes.c_uint, hid]), "H5Fclose": (herr, [hid]),
        "H5Aopen": (hid, [hid, text, hid]), "H5Aget_type": (hid, [hid]),
        "H5Aread": (herr, [hid, hid, void]), "H5Aclose": (herr, [hid]),
        "H5Gopen2": (hid, [hid, text, hid]), "H5Gclose": (herr, [hid]),
        "H5Gget_info": (herr, [hid, ctypes.POINTER(GroupInfo)]),
        "H5Lget_name_by_idx": (ctypes.c_ssize_t, [hid, text, ctypes.c_int, ctypes.c_int,
                                                  u64, void, size, hid]),
        "H5Dopen2": (hid, [hid, text, hid]), "H5Dget_type": (hid, [hid]),
        "H5Dget_space": (hid, [hid]), "H5Dclose": (herr, [hid]),
        "H5Dget_create_plist": (hid, [hid]), "H5Pget_chunk": (ctypes.c_int, [hid, ctypes.c_int,
                                                                              void]),
        "H5Pclose": (herr, [hid]),
        "H5Sget_simple_extent_dims": (ctypes.c_int, [hid, void, void]),
        "H5Sclose": (herr, [hid]), "H5Tget_size": (size, [hid]), "H5Tclose": (herr, [hid]),
        "H5Dread": (herr, [hid, hid, hid, hid, hid, void]),
        "H5Dread_chunk": (herr, [hid, hid, void, void, void]),
    }
    c = {}
    for name, (restype, argtypes) in signatures.items():
        try:
            function = getattr(lib, name)
        except AttributeError:  # HDF5 2.0 keeps the 1.x signature under ...1
            function = getattr(lib, name + "1")
        function.restype, function.argtypes = restype, argtypes
        c[name] = function
    names = [str(p).encode() for p in paths]
    value = ctypes.create_string_buffer(256)
    name = ctypes.create_string_buffer(256)
    info, dims, chunk, offset = GroupInfo(), (u64 * 1)(), (u64 * 1)(), (u64 * 1)()
    mask = ctypes.c_uint32()
    buffer = (ctypes.c_char * (64 << 20))()
    base = ctypes.addressof(buffer)
    clock = time.perf_counter
    spent = {}
    start = clock()
    for path in names:
        c["H5Fclose"](c["H5Fopen"](path, 0, 0))
    spent["open_close"] = clock() - start
    for how in ("read", "chunks"):
        start = clock()
        for path in names:
            f = c["H5Fopen"](path, 0, 0)
            for attribute in (b"status", b"num_showers", b"shower_reuse"):
                a = c["H5Aopen"](f, attribute, 0)
                t = c["H5Aget_type"](a)
                c["H5Aread"](a, t, value)
                c["H5Tclose"](t)
                c["H5Aclose"](a)
            g = c["H5Gopen2"](f, b"/", 0)
            c["H5Gget_info"](g, ctypes.byref(info))
            links = []
            for k in range(info.nlinks):
                c["H5Lget_name_by_idx"](g, b".", 0, 0, k, name, 256, 0)
                links.append(name.value)
            c["H5Gclose"](g)
            for link in links:
                d = c["H5Dopen2"](f, link, 0)
                t = c["H5Dget_type"](d)
                space = c["H5Dget_space"](d)
                c["H5Sget_simple_extent_dims"](space, dims, None)
                c["H5Sclose"](space)
                rowsize = c["H5Tget_size"](t)
                if how == "read":
                    if dims[0] * rowsize > len(buffer) or c["H5Dread"](d, t, 0, 0, 0, buffer) < 0:
                        raise RuntimeError(f"{path!r}: H5Dread failed")
                else:
                    plist = c["H5Dget_create_plist"](d)
                    c["H5Pget_chunk"](plist, 1, chunk)
                    c["H5Pclose"](plist)
                    for k, row in enumerate(range(0, dims[0], chunk[0])):
                        offset[0] = row
                        at = base + k * chunk[0] * rowsize
                        if (k + 1) * chunk[0] * rowsize > len(buffer) or c["H5Dread_chunk"](
                                d, 0, offset, ctypes.byref(mask), at) < 0:
                            raise RuntimeError(f"{path!r}: H5Dread_chunk failed")
                c["H5Tclose"](t)
                c["H5Dclose"](d)
            c["H5Fclose"](f)
        spent[how] = clock() - start
    return spent


def write_floor(nbytes: int, folder: Path) -> float:
    """Seconds to write ``nbytes`` to a new file in 8 MiB writes (no fsync, like ours)."""
    block = bytes(8 << 20)
    target = folder / "write_floor.bin"
    os.sync()
    start = time.perf_counter()
    with open(target, "wb") as stream:
        for offset in range(0, nbytes, len(block)):
            stream.write(block[: min(len(block), nbytes - offset)])
    seconds = time.perf_counter() - start
    target.unlink()
    return seconds


# --- the report ---------------------------------------------------------------------------------
def mb(nbytes: float) -> float:
    return nbytes / 1e6


def bench_set(layout: Layout, truth: Truth, work: Path, args: argparse.Namespace) -> bool:
    paths = truth.paths
    tables_per_file = len(layout.rows)
    print(f"\n{layout.kind}: {len(paths)} files, {mb(truth.nbytes):.1f} MB, "
          f"{tables_per_file} table(s) of {len(layout.columns)} columns, "
          f"{sum(truth.rows.values()):,} rows, uncompressed (protopipe's default filters)")
    warm(paths)
    methods: tuple[tuple[str, Callable[[Sequence[Path], Path], None], int], ...] = (
        ("ours (collect.merge)", merge_ours, RUNS),
        ("original (append_where)", merge_original, 1),  # ~1 min: once
        ("cat > /dev/null", cat, RUNS),
        ("ours without h5py", merge_ours_tables, 1),
    )
    results: dict[str, tuple[float, float, str]] = {}
    good = True
    for label, method, runs in methods:
        out = work / f"{layout.kind}_merged.h5"
        timings, summary = [], f"(best of {runs})" if runs > 1 else ""
        for _ in range(runs):
            timings.append(measure(lambda m=method, o=out: m(paths, o)))  # type: ignore[misc]
            if method is not cat:
                ok, summary = check(out, truth)
                good = good and ok
                out.unlink()
        if method is not cat and runs > 1:
            summary = f"{summary} (best of {runs})"
        wall, cpu = min(timings)
        results[label] = (wall, cpu, summary)
    print(f"{'method':<26}{'wall s':>8}{'cpu s':>8}{'MB/s':>9}  output check")
    for label, (wall, cpu, summary) in results.items():
        print(f"{label:<26}{wall:>8.2f}{cpu:>8.2f}{mb(truth.nbytes) / wall:>9.1f}  {summary}")
    print(f"{'expected':<51}  " + " ".join(f"{t}={n:,}" for t, n in truth.rows.items())
          + f" num_showers={truth.num_showers:,}")
    ours, ours_cpu, _ = results["ours (collect.merge)"]
    original, original_cpu, _ = results["original (append_where)"]
    floor, floor_cpu, _ = results["cat > /dev/null"]
    vs_original, vs_cat = original / ours, floor / ours
    print(f"ratio ours/original (speed-up): {vs_original:6.2f}x   "
          f"target >= {TARGET_VS_ORIGINAL:g}x  "
          f"{'met' if vs_original >= TARGET_VS_ORIGINAL else 'MISSED'}   "
          f"(in cpu s: {original_cpu / ours_cpu:.2f}x)")
    print(f"ratio ours/cat (throughput):    {vs_cat:6.1%}    target >= {TARGET_VS_CAT:.0%}   "
          f"{'met' if vs_cat >= TARGET_VS_CAT else 'MISSED'}   "
          f"(in cpu s: {floor_cpu / ours_cpu:.1%})")
    fallback, _, _ = results["ours without h5py"]
    print(f"what-if: without h5py {original / fallback:.2f}x the original")
    missed = vs_original < TARGET_VS_ORIGINAL or vs_cat < TARGET_VS_CAT
    if missed or args.profile:
        explain(paths, truth, work, ours, floor)
    return good


def explain(paths: list[Path], truth: Truth, work: Path, ours: float, floor: float) -> None:
    """The least any merge reading through HDF5 and writing the output spends, against cat."""
    os.sync()
    runs = [hdf5_floor(paths) for _ in range(RUNS)]
    if runs[0] is None:
        print("  (no HDF5 library found for the C-level floor)")
        return
    spent = {key: min(run[key] for run in runs if run is not None) for key in runs[0]}
    write = min(write_floor(truth.nbytes, work) for _ in range(RUNS))
    n = len(paths)
    print(f"the floor (HDF5's C calls through ctypes, no Python work between them, best of "
          f"{RUNS}; cat: {1e3 * floor / n:.2f} ms/file):")
    print(f"  {'HDF5 open + close only':<52}{1e3 * spent['open_close'] / n:>7.2f} ms/file"
          f"{spent['open_close']:>8.2f} s")
    for how, label in (("read", "HDF5 open, 3 attributes, tables (H5Dread), close"),
                       ("chunks", "the same, tables chunk by chunk (as ours)")):
        print(f"  {label:<52}{1e3 * spent[how] / n:>7.2f} ms/file{spent[how]:>8.2f} s")
    print(f"  {'writing the merged bytes once (8 MiB writes)':<52}{'':>15}{write:>8.2f} s")
    least = min(spent["read"], spent["chunks"]) + write
    print(f"  {'floor: the faster read + the write, one process':<52}{'':>15}{least:>8.2f} s = "
          f"{floor / least:.0%} of cat at best; ours {ours:.2f} s = {least / ours:.0%} of "
          "the floor's speed")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=500, help="files per set (default 500)")
    parser.add_argument("--sets", default="DL2,TRAINING", help="comma-separated: DL2,TRAINING")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temporary folder")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--profile", action="store_true",
                        help="the C-level floor even if the targets are met")
    args = parser.parse_args(argv)
    logging.disable(logging.WARNING)  # ours logs skipped inputs; there are none here
    rng = np.random.default_rng(args.seed)
    work = Path(tempfile.mkdtemp(prefix="merge_bench_", dir=args.workdir))
    print(f"merging {args.files} protopipe files per set (python {sys.version.split()[0]}, "
          f"PyTables {tables.__version__}, HDF5 {tables.hdf5_version}, {os.cpu_count()} cpus, "
          f"in {work})")
    print("inputs read once before timing (page cache warm for all); os.sync() before each run")
    good = True
    try:
        for kind in args.sets.split(","):
            layout = LAYOUTS[kind.strip().upper()]
            start = time.perf_counter()
            truth = generate(layout, work / layout.kind, args.files, rng)
            print(f"(generated {layout.kind} set in {time.perf_counter() - start:.1f} s)")
            good = bench_set(layout, truth, work, args) and good
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\nall merged outputs match the inputs: {'yes' if good else 'NO'}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
