"""payload/merge_tables.py: the h5py reading path and its PyTables fallback.

Every test that merges with h5py compares the result with a merge of the same inputs that
reads them all with PyTables (engine="tables", which is what ran before h5py did): same rows,
same attributes, same messages, same errors.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import tables
from contract import count_calls

from protopipe_grid_interface.payload import merge_tables as mt

SCRIPT = Path(mt.__file__)

#: the column kinds protopipe writes (write_dl2.py, data_training.py), a string column too
COLUMNS: dict[str, Any] = {
    "obs_id": tables.Int16Col(pos=0), "event_id": tables.Int32Col(pos=1),
    "reco_energy": tables.Float32Col(pos=2), "true_energy": tables.Float64Col(pos=3),
    "success": tables.BoolCol(pos=4), "pixels": tables.Int16Col(pos=5),
    "label": tables.StringCol(8, pos=6), "is_valid": tables.BoolCol(pos=7),
}


def rows_for(n: int, obs_id: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.zeros(n, tables.Description(COLUMNS)._v_dtype)
    rows["obs_id"] = obs_id
    rows["event_id"] = np.arange(n)
    rows["reco_energy"] = rng.random(n)
    rows["true_energy"] = rng.random(n)
    rows["success"] = rng.random(n) < 0.5
    rows["is_valid"] = rng.random(n) < 0.8
    rows["pixels"] = rng.integers(0, 1000, n)
    rows["label"] = [b"g%d" % i for i in range(n)]
    return rows


def protopipe_file(path: Path, tables_rows: dict[str, int], obs_id: int = 1,
                   showers: int = 1000, reuse: int = 10, status: Any = "complete",
                   **create: Any) -> Path:
    """A file as protopipe writes it: tables at the root, then the root attributes."""
    with tables.open_file(str(path), "w") as h5:
        for k, (name, n) in enumerate(tables_rows.items()):
            table = h5.create_table("/", name, COLUMNS, title=f"a {name} table", **create)
            table.append(rows_for(n, obs_id, obs_id * 10 + k))
            table.attrs["camera"] = name
        if status is not None:
            h5.root._v_attrs["status"] = status
            h5.root._v_attrs["num_showers"] = showers
            h5.root._v_attrs["shower_reuse"] = reuse
    return path


def dl2(path: Path, n: int = 50, obs_id: int = 1, **kw: Any) -> Path:
    return protopipe_file(path, {"reco_events": n}, obs_id, **kw)


def training(path: Path, cameras: dict[str, int] | None = None, obs_id: int = 1,
             **kw: Any) -> Path:
    return protopipe_file(path, cameras or {"LSTCam": 20, "NectarCam": 60}, obs_id, **kw)


def contents(path: Path) -> dict[str, Any]:
    """Everything a merged file says: per table dtype, rows, title, attributes; root attributes."""
    found: dict[str, Any] = {}
    with tables.open_file(str(path)) as h5:
        for table in h5.walk_nodes("/", "Table"):
            found[table._v_pathname] = (
                table.dtype, table.read().tobytes(), table.title,
                {k: table.attrs[k] for k in table.attrs._f_list("user")})
        found["/"] = mt.root_attrs(h5)
    return found


Outcome = tuple[Any, list[str], dict[str, Any] | None]


def run(inputs: list[Path], out: Path, **kw: Any) -> Outcome:
    """(result or error message, notes, contents) of one merge."""
    notes: list[str] = []
    try:
        result: Any = mt.merge(str(out), [str(p) for p in inputs], note=notes.append, **kw)
    except mt.MergeError as exc:
        assert not out.exists() and not Path(str(out) + ".part").exists()
        return f"MergeError: {exc}", notes, None
    found = contents(out)
    out.unlink()
    return result, notes, found


def same_as_tables(inputs: list[Path], tmp_path: Path, **kw: Any) -> Outcome:
    """Merge with h5py (and ``kw``), then with PyTables only; assert both agree."""
    assert mt.h5py is not None
    fast = run(inputs, tmp_path / "h5py.h5", engine="h5py", **kw)
    slow = run(inputs, tmp_path / "tables.h5", engine="tables")
    assert fast[0] == slow[0]
    assert fast[1] == slow[1]
    assert fast[2] == slow[2]
    return fast


def names(calls: list[tuple[Any, ...]]) -> list[str]:
    """The input file names of recorded merge_with_* calls (their first argument)."""
    return [Path(args[0]).name for args in calls]


def test_h5py_reads_protopipe_files_and_pytables_only_what_it_must(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    inputs = [training(tmp_path / f"t{i}.h5", obs_id=i, showers=100 * i) for i in range(1, 6)]
    inputs.insert(3, training(tmp_path / "more_cameras.h5", {"LSTCam": 5, "NectarCam": 7,
                                                            "CHEC": 9}, obs_id=9))
    with_tables = count_calls(monkeypatch, mt, "merge_with_tables")
    result, notes, found = same_as_tables(inputs, tmp_path)
    assert result == (6, 100 + 200 + 300 + 400 + 500 + 1000)
    assert notes == []
    assert found is not None
    # PyTables opened the first input (all its root attributes are copied) and the one with
    # a new table (PyTables creates it in the output), in both merges; h5py read the rest
    assert names(with_tables)[:2] == ["t1.h5", "more_cameras.h5"]
    assert names(with_tables)[2:] == [p.name for p in inputs]  # the engine="tables" merge
    rows = {"/LSTCam": 5 * 20 + 5, "/NectarCam": 5 * 60 + 7, "/CHEC": 9}
    assert {k: len(v[1]) // v[0].itemsize for k, v in found.items() if k != "/"} == rows
    assert found["/LSTCam"][2:] == ("a LSTCam table", {"camera": "LSTCam"})
    assert found["/"] == {"status": "complete", "num_showers": 2500, "shower_reuse": 10}


def test_row_counts_are_the_sum_of_the_inputs(tmp_path: Path) -> None:
    sizes = [0, 1, 7, 300, 1000, 4099]  # empty, one row, partial and whole chunks
    inputs = [dl2(tmp_path / f"d{i}.h5", n, obs_id=i + 1, chunkshape=(64,))
              for i, n in enumerate(sizes)]
    _, notes, found = same_as_tables(inputs, tmp_path)
    assert found is not None
    dtype, data, _, _ = found["/reco_events"]
    merged = np.frombuffer(data, dtype)
    assert len(merged) == sum(sizes)
    expected = np.concatenate([rows_for(n, i + 1, (i + 1) * 10) for i, n in enumerate(sizes)])
    assert merged.tobytes() == expected.tobytes()  # bools included, in input order
    assert notes == [f"{inputs[0]} has no rows: no rows merged, its num_showers=1000 still counted"]


def test_skipped_inputs_are_the_same_and_reported_the_same(tmp_path: Path) -> None:
    good = dl2(tmp_path / "good.h5", obs_id=1)
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    garbage = tmp_path / "garbage.h5"
    garbage.write_bytes(b"not hdf5 at all" * 100)
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(dl2(tmp_path / "whole.h5", 2000, obs_id=2).read_bytes()[:30_000])
    crashed = dl2(tmp_path / "crashed.h5", obs_id=3, status="incomplete")
    bytes_status = dl2(tmp_path / "bytes_status.h5", obs_id=4, status=b"complete")
    again = dl2(tmp_path / "again.h5", obs_id=1)  # obs_id 1 again: a warning
    inputs = [good, empty, garbage, truncated, crashed, bytes_status, again]
    result, notes, _ = same_as_tables(inputs, tmp_path)
    assert result == (2, 2000)
    assert [n.split(":")[0] for n in notes] == [
        f"skipping {p}" for p in (empty, garbage, truncated, crashed, bytes_status)
    ] + ["warning"]
    assert notes[0].endswith("unreadable (empty file)")
    assert "status=np.str_('incomplete')" in notes[3] or "status='incomplete'" in notes[3]
    assert "shares 1 obs_id(s) with earlier inputs (e.g. 1)" in notes[5]


def test_plain_tables_are_merged_as_they_are(tmp_path: Path) -> None:
    inputs = [dl2(tmp_path / f"plain{i}.h5", obs_id=i, status=None) for i in range(3)]
    result, _, found = same_as_tables(inputs, tmp_path)
    assert result == (3, 0)
    assert found is not None and found["/"] == {}  # no num_showers made up


@pytest.mark.parametrize("first_reuse", [10, 20])
def test_shower_reuse_must_agree(tmp_path: Path, first_reuse: int) -> None:
    inputs = [dl2(tmp_path / "a.h5", reuse=first_reuse, obs_id=1),
              dl2(tmp_path / "b.h5", reuse=10, obs_id=2),
              dl2(tmp_path / "c.h5", reuse=20, obs_id=3)]
    result, _, _ = same_as_tables(inputs, tmp_path)
    bad = tmp_path / ("c.h5" if first_reuse == 10 else "b.h5")
    other, first = (20, 10) if first_reuse == 10 else (10, 20)
    assert result == (f"MergeError: {bad}: each shower is reused {other} times, {first} times "
                      f"in {tmp_path / 'a.h5'}: files of different simulations (merge them "
                      "separately)")


def test_dl2_and_training_files_are_not_mixed(tmp_path: Path) -> None:
    inputs = [dl2(tmp_path / "a.h5", obs_id=1), dl2(tmp_path / "b.h5", obs_id=2),
              training(tmp_path / "c.h5", obs_id=3)]
    result, _, _ = same_as_tables(inputs, tmp_path)
    assert result == (f"MergeError: {tmp_path / 'c.h5'} is a TRAINING file, "
                      f"{tmp_path / 'a.h5'} is a DL2 file")


def test_dtype_mismatch_names_the_file_and_the_table(tmp_path: Path) -> None:
    inputs = [dl2(tmp_path / "a.h5", obs_id=1), dl2(tmp_path / "b.h5", obs_id=2)]
    with tables.open_file(str(tmp_path / "wide.h5"), "w") as h5:  # one more column
        columns = dict(COLUMNS, extra=tables.Float32Col(pos=8))
        rows = np.zeros(3, tables.Description(columns)._v_dtype)
        h5.create_table("/", "reco_events", columns).append(rows)
        h5.root._v_attrs["status"] = "complete"
        h5.root._v_attrs["num_showers"] = 5
        h5.root._v_attrs["shower_reuse"] = 10
    inputs.append(tmp_path / "wide.h5")
    result, _, _ = same_as_tables(inputs, tmp_path)
    assert result == (f"MergeError: {tmp_path / 'wide.h5'}: table /reco_events has a dtype "
                      f"different from the one in {tmp_path / 'a.h5'}")


def test_inputs_h5py_cannot_read_as_stored_go_to_pytables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = dl2(tmp_path / "first.h5", obs_id=1)
    zlib = dl2(tmp_path / "zlib.h5", obs_id=2, filters=tables.Filters(5, "zlib"))  # H5Dread
    blosc = dl2(tmp_path / "blosc.h5", obs_id=3, filters=tables.Filters(5, "blosc"))
    big_endian = dl2(tmp_path / "big_endian.h5", 40, obs_id=4, byteorder="big")
    linked = dl2(tmp_path / "linked.h5", obs_id=5)
    with tables.open_file(str(linked), "a") as h5:
        h5.create_soft_link("/", "alias", "/reco_events")
    grouped = dl2(tmp_path / "grouped.h5", obs_id=6)
    with tables.open_file(str(grouped), "a") as h5:
        h5.create_group("/", "extra")
        h5.create_table("/extra", "more", COLUMNS).append(rows_for(3, 6, 0))
    plain = dl2(tmp_path / "plain.h5", obs_id=7)
    inputs = [first, zlib, blosc, big_endian, linked, grouped, plain]
    with_tables = count_calls(monkeypatch, mt, "merge_with_tables")
    result, notes, found = same_as_tables(inputs, tmp_path)
    assert result == (7, 7000)
    assert found is not None and {"/reco_events", "/extra/more"} <= set(found)
    assert names(with_tables)[:-len(inputs)] == [  # the h5py merge; then the PyTables one
        "first.h5", "blosc.h5", "big_endian.h5", "linked.h5", "grouped.h5"]


@pytest.mark.parametrize("reuse", [[10], {"n": 10}, np.bool_(True), b"10"])
def test_attributes_h5py_would_read_otherwise_go_to_pytables(tmp_path: Path, reuse: Any) -> None:
    """An array (PyTables: array([10]), whose != is falsy), a pickled dict, a bool, bytes."""
    first = dl2(tmp_path / "first.h5", obs_id=1)
    odd = dl2(tmp_path / "odd.h5", obs_id=2)
    with tables.open_file(str(odd), "a") as h5:
        h5.root._v_attrs["shower_reuse"] = reuse
    result, _, _ = same_as_tables([first, odd], tmp_path)
    if isinstance(reuse, list):
        assert result == (2, 2000)
    else:
        assert isinstance(result, str) and "odd.h5: each shower is reused" in result
        assert "np." not in result


def test_big_inputs_are_appended_directly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mt, "STAGE_BYTES", 40 * 1024)  # ~1000 rows staged per table
    sizes = [300, 5000, 300, 2600]
    inputs = [dl2(tmp_path / f"d{i}.h5", n, obs_id=i) for i, n in enumerate(sizes)]
    _, _, found = same_as_tables(inputs, tmp_path)
    assert found is not None
    dtype, data, _, _ = found["/reco_events"]
    assert len(data) == sum(sizes) * dtype.itemsize


def test_output_is_also_an_input(tmp_path: Path) -> None:
    a = dl2(tmp_path / "a.h5")
    with pytest.raises(mt.MergeError, match="is also an input"):
        mt.merge(str(a), [str(a)])


def test_without_h5py_pytables_does_it_all(tmp_path: Path) -> None:
    """The payload environment of a site without h5py: the same output, through PyTables."""
    inputs = [training(tmp_path / f"t{i}.h5", obs_id=i) for i in range(1, 4)]
    blocker = tmp_path / "no_h5py"
    blocker.mkdir()
    (blocker / "h5py.py").write_text("raise ImportError('no h5py here')\n")
    env = dict(os.environ, PYTHONPATH=str(blocker))
    out = tmp_path / "without.h5"
    done = subprocess.run([sys.executable, str(SCRIPT), "-o", str(out), *map(str, inputs)],
                          capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "merged 3 of 3 input(s)" in done.stderr
    refused = subprocess.run([sys.executable, str(SCRIPT), "--engine", "h5py", "-o",
                              str(tmp_path / "x.h5"), str(inputs[0])],
                             capture_output=True, text=True, env=env)
    assert refused.returncode == 2 and "h5py is not importable" in refused.stderr
    mt.merge(str(tmp_path / "with.h5"), [str(p) for p in inputs], engine="h5py")
    assert contents(out) == contents(tmp_path / "with.h5")


def test_payload_script_keeps_python_3_6_syntax() -> None:
    ast.parse(SCRIPT.read_text(), feature_version=(3, 6))


@pytest.mark.payload
def test_merge_in_the_payload_environment(tmp_path: Path, protopipe_env: Path) -> None:
    """merge_tables.py as jobs run it: protopipe's Python 3.8, its h5py and PyTables."""
    python = protopipe_env / "bin" / "python"
    probe = subprocess.run(
        [str(python), "-c", "import sys, h5py, tables; print(sys.version_info[:2])"],
        capture_output=True, text=True)
    assert probe.returncode == 0 and probe.stdout.strip() == "(3, 8)", probe.stderr
    inputs = [dl2(tmp_path / f"d{i}.h5", 100 * i, obs_id=i) for i in range(1, 40)]
    inputs.insert(5, dl2(tmp_path / "crashed.h5", status="incomplete"))
    expected = run(inputs, tmp_path / "reference.h5", engine="tables")
    for options in (["--engine", "h5py"], ["--engine", "tables"]):
        out = tmp_path / "payload.h5"
        done = subprocess.run([str(python), str(SCRIPT), *options, "-o", str(out),
                               *map(str, inputs)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert f"merged 39 of 40 input(s) into {out} (num_showers=39000)" in done.stderr
        assert f"skipping {inputs[5]}: not a complete protopipe output" in done.stderr
        assert contents(out) == expected[2], options
        out.unlink()


def test_h5py_reads_pytables_bools_as_u1(tmp_path: Path) -> None:
    """Why input types are compared h5py-to-h5py, and with PyTables' only by stored layout."""
    path = dl2(tmp_path / "a.h5", 3)
    with h5py.File(path, "r") as h5:
        seen_by_h5py = h5["reco_events"].dtype
    with tables.open_file(str(path)) as h5:
        seen_by_pytables = h5.root.reco_events.dtype
    assert seen_by_h5py["success"] == np.dtype("u1") and seen_by_pytables["success"] == np.bool_
    assert seen_by_h5py != seen_by_pytables
    assert mt.stored_layout(seen_by_h5py) == mt.stored_layout(seen_by_pytables)
