#!/usr/bin/env python
"""Downloading N files from the local backend: ``collect.download`` vs a plain copy, in one run.

    python bench/download_bench.py                     # 200 files of 2 MB, 4 workers, 9 rounds
    python bench/download_bench.py --files 50 --size-mb 8 --rounds 9
    python bench/download_bench.py --profile           # also the steps of one download, timed

In a temporary folder, a ``LocalBackend`` gets ``--files`` files of random bytes (seeded) through
``put_file``; then, on the same replica files and each into an empty folder:

- **plain copy**: ``shutil.copyfile`` of every replica (in-kernel ``sendfile``), with W threads
  (the baseline) and serially;
- **copy to .part + rename**: the plain copy made atomic as ours is (written under a temporary
  name, renamed when complete): the cost of never showing a half-written file;
- **copy + fsync**: the same with an ``fsync`` per file: the cost of durability, for scale;
- **ours**: ``collect.download(backend, files, outdir, workers=W)`` in threads (as for the local
  backend); the same with a ``Store``, as ``protopipe-grid data download`` runs it (a manifest
  row per file, committed 100 at a time; the database is opened before the clock starts, as the
  command opens it before downloading); the same forced into W worker processes (as for DIRAC,
  whose client is not thread safe; spawning them is inside the timing);
- **what-if**: ours with the standard library's ``zlib.adler32`` (what a client without the
  ``fast`` extra gets), for comparison with the SIMD one the package picked.

Replicas are read once before any timing (page cache warm for all). The methods run ``--rounds``
times, interleaved (in a shuffled order each round), each after an untimed ``os.sync()``; the
table shows the median of each (a shared machine is noisy: the median resists outliers, and the
interleaving spreads slow moments over all methods), and the ratio ours / plain copy is also
given round by round (quartiles). CPU seconds are those of this process and its children. Ours'
outputs are checked against the catalog's adler32, untimed. Target: ours >= 80 % of the
parallel plain copy. See bench/README.md.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import resource
import shutil
import statistics
import sys
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import numpy as np

TARGET = 0.80
FOLDER = "/vo.cta.in2p3.fr/user/b/bench/analyses/bench_ana/data/DL2/gamma"


def cpu_seconds() -> float:
    """User + system CPU of this process (all threads) and its finished children."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        usage = resource.getrusage(who)
        total += usage.ru_utime + usage.ru_stime
    return total


def measure(function: Callable[[], object], setup: Callable[[], object] | None = None
            ) -> tuple[float, float]:
    """(wall s, cpu s) of one call, after ``setup`` and flushing earlier dirty pages (untimed)."""
    if setup is not None:
        setup()
    os.sync()
    cpu, wall = cpu_seconds(), time.perf_counter()
    function()
    return time.perf_counter() - wall, cpu_seconds() - cpu


def copy_all(pairs: Sequence[tuple[Path, Path]], workers: int, fsync: bool,
             rename: bool = False) -> None:
    def one(pair: tuple[Path, Path]) -> None:
        if rename:
            partial = pair[1].with_name(pair[1].name + ".part")
            shutil.copyfile(pair[0], partial)
            os.replace(partial, pair[1])
        else:
            shutil.copyfile(*pair)
        if fsync:
            fd = os.open(pair[1], os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)

    if workers <= 1:
        for pair in pairs:
            one(pair)
    else:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(one, pairs))


def profile_steps(backend: object, remotes: Sequence[object], work: Path, count: int) -> None:
    """The steps of ``fetch_one`` -> ``LocalBackend.get_file`` -> ``copy_into``, one by one."""
    from protopipe_grid_interface import checksums
    from protopipe_grid_interface.backends.local import LocalBackend
    from protopipe_grid_interface.models import RemoteFile
    from protopipe_grid_interface.store import Store
    from protopipe_grid_interface.workflow import collect

    assert isinstance(backend, LocalBackend)
    folder = work / "profile"
    folder.mkdir()
    store = Store(work / "profile.sqlite")
    steps: dict[str, float] = {}

    @contextmanager
    def clock(step: str) -> Iterator[None]:
        start = time.perf_counter()
        yield
        steps[step] = steps.get(step, 0.0) + time.perf_counter() - start

    os.sync()
    chosen = [r for r in remotes if isinstance(r, RemoteFile)][:count]
    for remote in chosen:
        target = folder / Path(remote.lfn).name
        partial = target.with_name(target.name + ".part")
        replica = backend.replica_path(remote.lfn, remote.replicas[0])
        with clock("is_intact (target absent)"):
            collect.is_intact(target, remote)
        with clock("copy: open both files"):
            open(replica, "rb").close()
            open(partial, "wb").close()
        with clock("copy: read + adler32 + write"):
            checksums.copy_into(replica, partial)
        with clock("adler32 alone (re-read)"):
            checksums.adler32(partial)
        with clock("size check (stat)"):
            partial.stat()
        with clock("rename to target"):
            partial.replace(target)
        with clock("manifest row (Store)"):
            store.record_downloads([(remote.lfn, target, remote.size, remote.checksum,
                                     "fetched")])
    store.close()
    total = sum(v for k, v in steps.items() if not k.startswith(("adler32 alone", "copy: open")))
    print(f"where one download goes ({len(chosen)} files, serially, steps timed one by one; "
          "'open' and 'adler32 alone' are inside the copy, shown apart):")
    print(f"  {'step':<32}{'ms/file':>8}")
    for step, seconds in steps.items():
        print(f"  {step:<32}{seconds / len(chosen) * 1e3:>8.3f}")
    print(f"  {'total':<32}{total / len(chosen) * 1e3:>8.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--size-mb", type=float, default=2.0)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=9, help="times each method runs")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--profile", action="store_true", help="time the steps of a download")
    parser.add_argument("--workdir", type=Path, default=None, help="parent of the temporary folder")
    args = parser.parse_args(argv)

    from protopipe_grid_interface import checksums
    from protopipe_grid_interface.backends.local import LocalBackend
    from protopipe_grid_interface.store import Store
    from protopipe_grid_interface.workflow import collect

    logging.disable(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="download_bench_", dir=args.workdir))
    size = int(args.size_mb * 1e6)
    total_mb = args.files * size / 1e6
    print(f"downloading {args.files} files of {args.size_mb:g} MB ({total_mb:.0f} MB) from the "
          f"local backend, {args.workers} workers, median of {args.rounds} rounds (python "
          f"{sys.version.split()[0]}, {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}, "
          f"adler32 from {checksums.ADLER32_IMPLEMENTATION}, in {work})")
    good = True
    try:
        backend = LocalBackend(work / "backend")
        rng = np.random.default_rng(args.seed)
        source = work / "source.h5"
        start = time.perf_counter()
        for i in range(args.files):
            source.write_bytes(rng.bytes(size))
            backend.put_file(source, f"{FOLDER}/DL2_gamma_tail_run{i:05d}.h5", "LOCAL-SE")
        source.unlink()
        remotes = backend.list_directory(FOLDER)
        replicas = [backend.replica_path(r.lfn, r.replicas[0]) for r in remotes]
        took = time.perf_counter() - start
        print(f"(registered {len(remotes)} files with put_file in {took:.1f} s)")
        for path in replicas:  # page cache warm for every method
            path.read_bytes()

        def pairs(name: str) -> list[tuple[Path, Path]]:
            folder = work / name
            folder.mkdir()
            return [(p, folder / p.name) for p in replicas]

        stores: dict[str, Store] = {}

        def open_store(name: str) -> Callable[[], object]:
            """The state database exists before a download (the CLI opens it first and closes
            it after)."""
            def setup() -> object:
                stores[name] = Store(work / f"{name}.sqlite")
                return stores[name]
            return setup

        def ours(name: str, with_store: bool = False, processes: bool = False,
                 stdlib: bool = False) -> Callable[[], object]:
            def run() -> object:
                store = stores[name] if with_store else None
                chosen = checksums._adler32
                if stdlib:
                    checksums._adler32 = zlib.adler32
                try:
                    report = collect.download(backend, remotes, work / name, store=store,
                                              workers=args.workers, processes=processes)
                finally:
                    checksums._adler32 = chosen
                return report
            return run

        w = args.workers
        baseline_label = f"plain copy, {w} threads"
        ours_label = f"ours, {w} threads"
        methods: list[tuple[str, str, Callable[[], object]]] = [
            ("plain copy, serial", "copy1", lambda: copy_all(pairs("copy1"), 1, False)),
            (baseline_label, "copyN", lambda: copy_all(pairs("copyN"), w, False)),
            (f"copy to .part + rename, {w} thr", "renameN",
             lambda: copy_all(pairs("renameN"), w, False, rename=True)),
            (f"copy + fsync, {w} threads", "syncN", lambda: copy_all(pairs("syncN"), w, True)),
            (ours_label, "ours", ours("ours")),
            (f"ours + Store, {w} threads", "ours_store", ours("ours_store", with_store=True)),
            (f"ours, {w} processes", "ours_proc", ours("ours_proc", processes=True)),
            ("what-if: ours, stdlib zlib", "ours_zlib", ours("ours_zlib", stdlib=True)),
        ]
        sums = {Path(r.lfn).name: r.checksum for r in remotes}
        results: dict[str, list[tuple[float, float]]] = {label: [] for label, _, _ in methods}
        order = random.Random(args.seed)
        for round_ in range(args.rounds):
            for label, name, run in order.sample(methods, len(methods)):
                setup = open_store(name) if name == "ours_store" else None
                results[label].append(measure(run, setup))
                got = sorted((work / name).glob("*.h5"))
                ok = len(got) == len(remotes) and all(p.stat().st_size == size for p in got)
                if name.startswith("ours") and round_ == 0:  # ours verified adler32 itself
                    ok = ok and all(checksums.adler32(p) == sums[p.name] for p in got)
                good = good and ok
                shutil.rmtree(work / name)
                if name in stores:  # closed (a WAL checkpoint) after the clock, as by the CLI
                    stores.pop(name).close()
                    (work / f"{name}.sqlite").unlink()
                if not ok:
                    print(f"  PROBLEM: {label}: {len(got)} files, not all complete and intact")

        def median(label: str, column: int) -> float:
            return statistics.median(r[column] for r in results[label])

        baseline = median(baseline_label, 0)
        print(f"{'method':<30}{'wall s':>8}{'cpu s':>8}{'MB/s':>9}{'vs plain copy':>15}"
              f"{'range wall s':>15}")
        for label in results:
            wall, cpu = median(label, 0), median(label, 1)
            walls = [r[0] for r in results[label]]
            print(f"{label:<30}{wall:>8.3f}{cpu:>8.3f}{total_mb / wall:>9.1f}"
                  f"{baseline / wall:>14.0%}{min(walls):>8.3f}-{max(walls):.3f}")
        ratio = baseline / median(ours_label, 0)
        cpu_ratio = median(baseline_label, 1) / median(ours_label, 1)
        paired = [b[0] / o[0] for b, o in zip(results[baseline_label], results[ours_label],
                                              strict=True)]
        quartiles = statistics.quantiles(paired, n=4) if len(paired) > 1 else paired * 3
        print(f"ratio ours / plain copy ({w} threads): {ratio:.0%} of its speed (CPU: "
              f"{cpu_ratio:.0%}; round by round: quartiles {quartiles[0]:.0%} / "
              f"{quartiles[1]:.0%} / {quartiles[2]:.0%}, range {min(paired):.0%}-"
              f"{max(paired):.0%})  target >= {TARGET:.0%}  "
              f"{'met' if ratio >= TARGET else 'MISSED'}")
        if args.profile or ratio < TARGET:
            profile_steps(backend, remotes, work, min(50, len(remotes)))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"every copy complete (ours: adler32 matches the catalog): {'yes' if good else 'NO'}")
    return 0 if good else 1


if __name__ == "__main__":
    sys.exit(main())
