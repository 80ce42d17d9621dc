"""Dataset lists: read and validate ``.list`` files, split them by fractions like the original.

Counts follow ``protopipe-SPLIT_DATASET`` exactly: every fraction but the last takes
``int(p / 100 * N + 0.5)`` lines, the last takes the rest. Each particle has fixed stages
(gammas: energy training, classification training, performance; protons: the last two;
electrons: performance), so omitting a particle never shifts another's labels.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from pathlib import Path

from ..atomic import write_lines
from ..exceptions import InputError
from ..models import Particle
from ..paths import validate_lfn

SPLIT_STAGES = {
    Particle.GAMMA: ("_TRAINING_ENERGY", "_TRAINING_CLASSIFICATION", "_PERFORMANCE"),
    Particle.PROTON: ("_TRAINING_CLASSIFICATION", "_PERFORMANCE"),
    Particle.ELECTRON: ("_PERFORMANCE",),
}
DEFAULT_FRACTIONS = {
    Particle.GAMMA: (10, 10, 80),
    Particle.PROTON: (40, 60),
    Particle.ELECTRON: (100,),
}


def read_list(path: Path, require_lfn: bool = True) -> list[str]:
    """Entries of a ``.list`` file, one per line; blank lines and ``#`` comments are ignored.

    Every entry must be an absolute LFN, or with ``require_lfn=False`` at least a name made of
    safe characters (no spaces, quotes or shell metacharacters).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: list file not found")
    lfns: list[str] = []
    seen: dict[str, int] = {}
    with open(path) as stream:
        for number, line in enumerate(stream, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            if text.startswith("LFN:"):
                text = text[4:]
            if require_lfn:
                validate_lfn(text, f"{path}:{number}")
            elif not SAFE_ENTRY.match(text):
                raise InputError(f"{path}:{number}: invalid entry {text!r}",
                                 "expected letters, digits and . _ - + = : @ % , /")
            if text in seen:
                raise InputError(f"{path}:{number}: duplicate LFN {text}",
                                 f"first seen on line {seen[text]}")
            seen[text] = number
            lfns.append(text)
    if not lfns:
        raise InputError(f"{path}: list file has no LFNs")
    return lfns


SAFE_ENTRY = re.compile(r"^[A-Za-z0-9_.+=:@%,/-]+$")
REPLICAS_SUFFIX = ".replicas"


def replicas_file(list_file: Path) -> Path:
    """``gamma.list.replicas``: the storage elements of each LFN of ``gamma.list``, written by
    ``dataset dump`` (``LFN<TAB>SE1,SE2`` per line) and carried along by ``dataset split``."""
    return list_file.with_name(list_file.name + REPLICAS_SUFFIX)


def read_replicas(list_file: Path) -> dict[str, tuple[str, ...]] | None:
    """The storage elements of each LFN of ``list_file``, or None without a replicas file."""
    path = replicas_file(Path(list_file))
    if not path.is_file():
        return None
    sites: dict[str, tuple[str, ...]] = {}
    with open(path) as stream:
        for number, line in enumerate(stream, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            lfn, tab, ses = line.rstrip("\n").partition("\t")
            if not tab or not lfn.strip():
                raise InputError(f"{path}:{number}: expected 'LFN<TAB>SE,SE,...'")
            sites[lfn.strip().removeprefix("LFN:")] = tuple(
                sorted(se.strip() for se in ses.split(",") if se.strip()))
    return sites


def check_fractions(particle: Particle, fractions: Sequence[int], option: str) -> None:
    """Percentages: one per stage of the particle at most, each >= 0, summing to 100."""
    stages = SPLIT_STAGES[particle]
    if not fractions:
        raise InputError(f"{option}: expected at least one percentage")
    if len(fractions) > len(stages):
        raise InputError(f"{option}: {len(fractions)} percentages given, but {particle.value}s "
                         f"have only {len(stages)} stages ({', '.join(s[1:] for s in stages)})")
    if any(f < 0 for f in fractions):
        raise InputError(f"{option}: percentages must not be negative, got {list(fractions)}")
    if sum(fractions) != 100:
        raise InputError(f"{option}: percentages must sum to 100, got {sum(fractions)}")


def split_counts(total: int, fractions: Sequence[int]) -> list[int]:
    """How many lines each chunk gets (the original's rounding; the last takes the rest)."""
    bounds = [0]
    for percentage in fractions[:-1]:
        bounds.append(min(total, bounds[-1] + int(percentage / 100.0 * total + 0.5)))
    counts = [b - a for a, b in zip(bounds, bounds[1:], strict=False)]
    return [*counts, total - bounds[-1]]


def split_list(
    lines: Sequence[str], particle: Particle, fractions: Sequence[int], seed: int | None = None
) -> dict[str, list[str]]:
    """Map each stage suffix to its lines; with ``seed``, shuffle first (reproducibly)."""
    ordered = list(lines)
    if seed is not None:
        random.Random(seed).shuffle(ordered)
    chunks: dict[str, list[str]] = {}
    start = 0
    for suffix, count in zip(SPLIT_STAGES[particle], split_counts(len(ordered), fractions),
                             strict=False):
        chunks[suffix] = ordered[start:start + count]
        start += count
    return chunks


def write_split(
    input_list: Path,
    particle: Particle,
    fractions: Sequence[int],
    outdir: Path,
    seed: int | None = None,
) -> dict[Path, int]:
    """Split one list file into ``<name>_<STAGE>.list`` files in ``outdir``; return their sizes.

    Empty chunks are not written (as in the original). Files are written whole or not at all.
    """
    check_fractions(particle, fractions, f"{particle.value} percentages")
    lfns = read_list(input_list, require_lfn=False)
    sites = read_replicas(input_list)
    stem = Path(input_list).name.split(".list")[0]
    written: dict[Path, int] = {}
    outdir.mkdir(parents=True, exist_ok=True)
    for suffix, chunk in split_list(lfns, particle, fractions, seed).items():
        if not chunk:
            continue
        target = outdir / f"{stem}{suffix}.list"
        write_lines(target, chunk)
        if sites is not None:  # the chunk's replica sites go along with it
            write_lines(replicas_file(target),
                        [f"{lfn}\t{','.join(sites.get(lfn, ()))}" for lfn in chunk])
        written[target] = len(chunk)
    return written
