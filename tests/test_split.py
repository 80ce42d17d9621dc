"""Splitting dataset lists: the original tool's counts, fixed labels per particle, strict input."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest

from protopipe_grid_interface.exceptions import InputError
from protopipe_grid_interface.models import Particle, Stage
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.split import (
    DEFAULT_FRACTIONS,
    SplitInput,
    check_fractions,
    read_list,
    read_replicas,
    replicas_file,
    split_counts,
    split_files,
    split_list,
)
from protopipe_grid_interface.workflow.tree import create_analysis


def write_split(source: Path, particle: Particle, fractions: Sequence[int], outdir: Path,
                seed: int | None = None) -> dict[Path, int]:
    """Split one list file (entries need not be LFNs); {list written: its size}."""
    lists = split_files([SplitInput(particle, source, fractions)], outdir, seed,
                        require_lfn=False)
    return {stage_list.path: len(stage_list.lfns) for stage_list in lists}


def original_counts(total: int, fractions: Sequence[int]) -> list[int]:
    """protopipe-SPLIT_DATASET's arithmetic, transcribed: cumulative rounded boundaries, then
    list slices (so a boundary past the end just gives empty chunks)."""
    lines = list(range(total))
    numlines = [0]
    for prop in fractions[: len(fractions) - 1]:
        numlines.append(numlines[-1] + int(prop / 100.0 * len(lines) + 0.5))
    chunks = [lines[start:numlines[i + 1]] if i + 1 < len(numlines) else lines[start:]
              for i, start in enumerate(numlines)]
    return [len(c) for c in chunks]


def write_list(path: Path, lines: Sequence[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines))
    return path


def names(count: int, particle: str = "gamma") -> list[str]:
    return [f"/vo.cta.in2p3.fr/MC/PROD3/{particle}_20deg_0deg_run{n}___cta-prod3.simtel.gz"
            for n in range(1, count + 1)]


# --- counts -----------------------------------------------------------------------------------
def test_original_rule_on_the_documented_examples() -> None:
    assert split_counts(10, [10, 10, 80]) == [1, 1, 8]
    assert split_counts(7, [40, 60]) == [3, 4]
    assert split_counts(5, [100]) == [5]


@pytest.mark.parametrize("fractions", [(10, 10, 80), (40, 60), (100,), (33, 33, 34),
                                       (50, 50, 0), (0, 0, 100), (5, 95), (45, 10, 45)])
def test_counts_match_the_original_tool_for_every_size(fractions: tuple[int, ...]) -> None:
    for total in range(0, 250):
        counts = split_counts(total, fractions)
        assert counts == original_counts(total, fractions), total
        assert sum(counts) == total and min(counts) >= 0


# --- files ------------------------------------------------------------------------------------
def test_gamma_split_writes_one_file_per_stage_in_order(tmp_path: Path) -> None:
    lines = names(10)
    source = write_list(tmp_path / "gamma_prod3.list", lines)

    written = write_split(source, Particle.GAMMA, [10, 10, 80], tmp_path / "out")

    out = tmp_path / "out"
    assert written == {out / "gamma_prod3_TRAINING_ENERGY.list": 1,
                       out / "gamma_prod3_TRAINING_CLASSIFICATION.list": 1,
                       out / "gamma_prod3_PERFORMANCE.list": 8}
    assert read_list(out / "gamma_prod3_TRAINING_ENERGY.list") == lines[:1]
    assert read_list(out / "gamma_prod3_TRAINING_CLASSIFICATION.list") == lines[1:2]
    assert read_list(out / "gamma_prod3_PERFORMANCE.list") == lines[2:]
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)


def test_protons_alone_are_not_mislabelled(tmp_path: Path) -> None:
    # the original shifted labels by position: protons given without gammas became ENERGY
    lines = names(7, "proton")
    source = write_list(tmp_path / "proton.list", lines)

    written = write_split(source, Particle.PROTON, [40, 60], tmp_path)

    assert {p.name: n for p, n in written.items()} == {
        "proton_TRAINING_CLASSIFICATION.list": 3, "proton_PERFORMANCE.list": 4}
    assert not list(tmp_path.glob("*_TRAINING_ENERGY.list"))
    assert read_list(tmp_path / "proton_TRAINING_CLASSIFICATION.list") == lines[:3]


def test_electrons_go_to_performance_only(tmp_path: Path) -> None:
    source = write_list(tmp_path / "electron.list", names(4, "electron"))
    written = write_split(source, Particle.ELECTRON, [100], tmp_path)
    assert {p.name: n for p, n in written.items()} == {"electron_PERFORMANCE.list": 4}


def test_empty_chunks_are_not_written(tmp_path: Path) -> None:
    source = write_list(tmp_path / "g.list", names(3))
    written = write_split(source, Particle.GAMMA, [0, 0, 100], tmp_path / "out")
    assert [p.name for p in written] == ["g_PERFORMANCE.list"]
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["g_PERFORMANCE.list"]


def test_each_list_knows_its_particle_and_stage(tmp_path: Path) -> None:
    gammas = write_list(tmp_path / "g.list", names(10))
    protons = write_list(tmp_path / "p.list", names(10, "proton"))

    lists = split_files([SplitInput(Particle.GAMMA, gammas, [10, 10, 80]),
                         SplitInput(Particle.PROTON, protons, [40, 60])], tmp_path / "out")

    assert [(s.particle, s.stage, s.path.name) for s in lists] == [
        (Particle.GAMMA, Stage.TRAINING_ENERGY, "g_TRAINING_ENERGY.list"),
        (Particle.GAMMA, Stage.TRAINING_CLASSIFICATION, "g_TRAINING_CLASSIFICATION.list"),
        (Particle.GAMMA, Stage.DL2, "g_PERFORMANCE.list"),
        (Particle.PROTON, Stage.TRAINING_CLASSIFICATION, "p_TRAINING_CLASSIFICATION.list"),
        (Particle.PROTON, Stage.DL2, "p_PERFORMANCE.list")]


def test_a_list_with_other_content_is_refused_before_anything_is_written(
        tmp_path: Path) -> None:
    gammas = write_list(tmp_path / "g.list", names(10))
    protons = write_list(tmp_path / "p.list", names(10, "proton"))
    out = tmp_path / "out"
    split_files([SplitInput(Particle.PROTON, protons, [40, 60])], out)
    before = {path.name: path.read_bytes() for path in out.iterdir()}
    inputs = [SplitInput(Particle.GAMMA, gammas, [10, 10, 80]),
              SplitInput(Particle.PROTON, protons, [50, 50])]

    with pytest.raises(InputError, match=r"p_TRAINING_CLASSIFICATION\.list already exists "
                                         "with a different content.*--overwrite"):
        split_files(inputs, out)

    assert {path.name: path.read_bytes() for path in out.iterdir()} == before  # no gamma list
    split_files([SplitInput(Particle.PROTON, protons, [40, 60])], out)  # same content: fine
    written = split_files(inputs, out, overwrite=True)
    assert [len(s.lfns) for s in written] == [1, 1, 8, 5, 5]
    assert read_list(out / "p_PERFORMANCE.list") == names(10, "proton")[5:]


def test_two_inputs_into_one_file_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    gammas = write_list(tmp_path / "a" / "mc.list", names(3))
    protons = write_list(tmp_path / "mc.list", names(3, "proton"))
    with pytest.raises(InputError, match="mc_PERFORMANCE.list: two input lists would be "
                                         "split into this file"):
        split_files([SplitInput(Particle.GAMMA, gammas, [0, 0, 100]),
                     SplitInput(Particle.PROTON, protons, [0, 100])], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_default_fractions_are_valid() -> None:
    for particle, fractions in DEFAULT_FRACTIONS.items():
        check_fractions(particle, fractions, f"--split-{particle.value}")


# --- shuffling --------------------------------------------------------------------------------
def test_seeded_shuffle_is_reproducible_and_a_permutation() -> None:
    lines = names(100)

    first = split_list(lines, Particle.GAMMA, [10, 10, 80], seed=7)
    again = split_list(lines, Particle.GAMMA, [10, 10, 80], seed=7)
    other = split_list(lines, Particle.GAMMA, [10, 10, 80], seed=8)
    plain = split_list(lines, Particle.GAMMA, [10, 10, 80])

    joined = list(itertools.chain.from_iterable(first.values()))
    assert first == again
    assert sorted(joined) == sorted(lines) and len(joined) == len(set(joined))
    assert joined != lines
    assert other != first
    assert list(itertools.chain.from_iterable(plain.values())) == lines
    assert [len(v) for v in first.values()] == [10, 10, 80]


def test_seeded_split_of_a_file_is_reproducible(tmp_path: Path) -> None:
    source = write_list(tmp_path / "g.list", names(50))
    write_split(source, Particle.GAMMA, [10, 10, 80], tmp_path / "a", seed=3)
    write_split(source, Particle.GAMMA, [10, 10, 80], tmp_path / "b", seed=3)
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


# --- refusals ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("particle", "fractions", "message"), [
    (Particle.GAMMA, [10, 10, 70], "sum to 100"),
    (Particle.GAMMA, [50, 51], "sum to 100"),
    (Particle.PROTON, [10, 10, 80], "only 2 stages"),
    (Particle.ELECTRON, [50, 50], "only 1 stages"),
    (Particle.GAMMA, [-10, 10, 100], "negative"),
    (Particle.GAMMA, [], "at least one"),
])
def test_bad_fractions(particle: Particle, fractions: list[int], message: str) -> None:
    with pytest.raises(InputError, match=message) as caught:
        check_fractions(particle, fractions, "--split-x")
    assert "--split-x" in str(caught.value)


def test_missing_list_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        write_split(tmp_path / "nope.list", Particle.GAMMA, [10, 10, 80], tmp_path)


@pytest.mark.parametrize("entry", ["a b", "x;rm", "$(x)", "`id`", "a'b", "f|g", "a>b"])
def test_unsafe_entries_are_refused_with_file_and_line(tmp_path: Path, entry: str) -> None:
    source = write_list(tmp_path / "g.list", ["# header", "/vo/ok_1.simtel.gz", "", entry])

    with pytest.raises(InputError) as caught:
        write_split(source, Particle.GAMMA, [10, 10, 80], tmp_path / "out")

    assert f"{source}:4" in str(caught.value)
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("entry", ["relative/path.simtel.gz", "/vo/a b.simtel.gz",
                                   "/vo/x;rm", "/vo/$(x)", "/vo/../etc/passwd"])
def test_lfn_lists_refuse_bad_lfns_with_file_and_line(tmp_path: Path, entry: str) -> None:
    source = write_list(tmp_path / "g.list", ["/vo/ok.simtel.gz", entry])
    with pytest.raises(InputError) as caught:
        read_list(source)
    assert f"{source}:2" in str(caught.value)


def test_read_list_skips_comments_and_blank_lines_and_strips_lfn_prefix(tmp_path: Path) -> None:
    source = write_list(tmp_path / "g.list", ["# produced by dirac-dms-find-lfns", "",
                                              "LFN:/vo/a.simtel.gz", "  /vo/b.simtel.gz  "])
    assert read_list(source) == ["/vo/a.simtel.gz", "/vo/b.simtel.gz"]


def test_duplicates_and_empty_lists_are_refused(tmp_path: Path) -> None:
    duplicated = write_list(tmp_path / "d.list", ["/vo/a.gz", "/vo/b.gz", "/vo/a.gz"])
    with pytest.raises(InputError, match=r"d\.list:3: duplicate .*line 1"):
        read_list(duplicated)
    empty = write_list(tmp_path / "e.list", ["# nothing here", ""])
    with pytest.raises(InputError, match="no LFNs"):
        read_list(empty)


def test_replica_sites_go_along_with_each_split_list(tmp_path: Path) -> None:
    lines = names(10)
    source = write_list(tmp_path / "gamma_prod3.list", lines)
    replicas_file(source).write_text("".join(
        f"{lfn}\t{'CNAF-Disk' if i < 5 else 'DESY-ZN-Disk,CNAF-Disk'}\n"
        for i, lfn in enumerate(lines)))

    written = write_split(source, Particle.GAMMA, [10, 10, 80], tmp_path / "out")

    for target in written:
        sites = read_replicas(target)
        assert sites is not None and list(sites) == read_list(target)
    performance = read_replicas(tmp_path / "out" / "gamma_prod3_PERFORMANCE.list")
    assert performance is not None
    assert performance[lines[2]] == ("CNAF-Disk",)
    assert performance[lines[9]] == ("CNAF-Disk", "DESY-ZN-Disk")


def test_no_replicas_file_means_no_sites(tmp_path: Path) -> None:
    source = write_list(tmp_path / "gamma.list", names(3))
    write_split(source, Particle.GAMMA, [10, 10, 80], tmp_path / "out")
    assert read_replicas(source) is None
    assert not list((tmp_path / "out").glob("*.replicas"))


def test_a_malformed_replicas_line_names_the_file_and_line(tmp_path: Path) -> None:
    source = write_list(tmp_path / "gamma.list", names(2))
    replicas_file(source).write_text(f"{names(1)[0]}\tCNAF-Disk\nno-tab-here\n")
    with pytest.raises(InputError, match=r"gamma\.list\.replicas:2: expected"):
        read_replicas(source)


def test_an_analysis_split_names_its_lists_in_grid_yaml_keeping_the_comments(
        tmp_path: Path) -> None:
    tree = create_analysis(tmp_path, "ana", None)
    (tree.configs / "analysis.yaml").write_text("General:\n  config_name: ana\n")
    before = tree.grid_config.read_text()
    gammas = write_list(tmp_path / "gamma.list", names(10))
    analysis = Analysis.open(tree.metadata_file)

    results = analysis.split([SplitInput(Particle.GAMMA, gammas, [10, 10, 80])])
    again = Analysis.open(tree.metadata_file).split([SplitInput(Particle.GAMMA, gammas,
                                                                [10, 10, 80])])

    assert [named for _, named in results] == [True, True, True]
    assert [named for _, named in again] == [False, False, False]  # already named: kept
    for stage_list, _ in results:
        assert analysis.list_file(stage_list.stage, Particle.GAMMA) == stage_list.path
    after = tree.grid_config.read_text()
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments == [line for line in after.splitlines() if line.lstrip().startswith("#")]
    changed = [line for line in after.splitlines() if line not in before.splitlines()]
    assert len(changed) == 3 and all("gamma_list" in line for line in changed)


def test_a_list_file_that_is_not_text_is_named_in_one_line(tmp_path: Path) -> None:
    source = tmp_path / "gamma.list"
    source.write_bytes(b"/vo/a.simtel.gz\n\xff\xfe\x00 not utf-8\n")
    with pytest.raises(InputError, match=r"gamma\.list: not a text file \(not UTF-8\)$"):
        read_list(source)
