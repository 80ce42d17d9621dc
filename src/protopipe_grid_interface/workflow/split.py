"""Dataset lists: read and validate ``.list`` files, split them by fractions like the original.

Counts follow ``protopipe-SPLIT_DATASET`` exactly: every fraction but the last takes
``int(p / 100 * N + 0.5)`` lines, the last takes the rest. Each particle has fixed stages
(gammas: energy training, classification training, performance; protons: the last two;
electrons: performance), so omitting a particle never shifts another's labels. A split checks
every input and every file it would replace before it writes anything.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..atomic import write_lines
from ..config import read_text
from ..exceptions import InputError
from ..models import Particle, Stage
from ..paths import split_list_name, validate_lfn

#: the stages each particle's list is split into, in order
SPLIT_STAGES = {
    Particle.GAMMA: (Stage.TRAINING_ENERGY, Stage.TRAINING_CLASSIFICATION, Stage.DL2),
    Particle.PROTON: (Stage.TRAINING_CLASSIFICATION, Stage.DL2),
    Particle.ELECTRON: (Stage.DL2,),
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
    lfns: list[str] = []
    seen: dict[str, int] = {}
    for number, line in enumerate(read_text(path, "list file").splitlines(), start=1):
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
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        lfn, tab, ses = line.partition("\t")
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
                         f"have only {len(stages)} stages ({', '.join(stages)})")
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
) -> dict[Stage, list[str]]:
    """Map each stage of the particle to its lines; with ``seed``, shuffle first
    (reproducibly)."""
    ordered = list(lines)
    if seed is not None:
        random.Random(seed).shuffle(ordered)
    chunks: dict[Stage, list[str]] = {}
    start = 0
    for stage, count in zip(SPLIT_STAGES[particle], split_counts(len(ordered), fractions),
                            strict=False):
        chunks[stage] = ordered[start:start + count]
        start += count
    return chunks


@dataclass(frozen=True)
class SplitInput:
    """A list file to split: its particle, its percentages, and the option that gave them
    (named in errors)."""

    particle: Particle
    path: Path
    fractions: Sequence[int]
    option: str = "percentages"


@dataclass(frozen=True)
class StageList:
    """A list a split writes: one particle's files for one stage (and their replica sites)."""

    particle: Particle
    stage: Stage
    path: Path
    lfns: tuple[str, ...]
    sites: Mapping[str, tuple[str, ...]] | None = None


def plan_split(inputs: Sequence[SplitInput], outdir: Path, seed: int | None = None,
               overwrite: bool = False, require_lfn: bool = True) -> list[StageList]:
    """The lists splitting ``inputs`` into ``outdir`` gives (empty ones left out, as in the
    original); every input is read and checked, and a list file that exists with another
    content is refused without ``overwrite``, before anything is written."""
    if not inputs:
        raise InputError("no list given")
    planned: dict[Path, StageList] = {}
    for given in inputs:
        check_fractions(given.particle, given.fractions, given.option)
        lfns = read_list(given.path, require_lfn=require_lfn)
        sites = read_replicas(given.path)
        stem = Path(given.path).name.split(".list")[0]
        chunks = split_list(lfns, given.particle, given.fractions, seed)
        for stage, chunk in chunks.items():
            if not chunk:
                continue
            target = outdir / split_list_name(stem, stage)
            if target in planned:
                raise InputError(f"{target}: two input lists would be split into this file",
                                 "give the list files different names")
            if not overwrite and target.exists() and read_list(target, False) != chunk:
                raise InputError(f"{target} already exists with a different content",
                                 "use --overwrite to replace it")
            planned[target] = StageList(given.particle, stage, target, tuple(chunk), sites)
    return list(planned.values())


def write_split(lists: Sequence[StageList]) -> None:
    """Write each list (and, when its input had them, its replica sites) whole."""
    for stage_list in lists:
        write_lines(stage_list.path, stage_list.lfns)
        if stage_list.sites is not None:
            write_lines(replicas_file(stage_list.path), [
                f"{lfn}\t{','.join(stage_list.sites.get(lfn, ()))}" for lfn in stage_list.lfns])


def split_files(inputs: Sequence[SplitInput], outdir: Path, seed: int | None = None,
                overwrite: bool = False, require_lfn: bool = True) -> list[StageList]:
    """:func:`plan_split`, then :func:`write_split`; return the lists written."""
    lists = plan_split(inputs, outdir, seed, overwrite, require_lfn)
    write_split(lists)
    return lists
