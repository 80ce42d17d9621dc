"""The command-line tools, run as subprocesses with ``--backend dirac``, against the live DIRAC box.

Every command runs as a user runs it: the box venv's entry points in the DIRAC client
environment (``dirac_box.env``), stdin closed (no terminal to confirm on). What a command did is
read back from DIRAC itself, by a separate DIRAC client process (:func:`dirac_py`), never
through this package, so a bug in the backend cannot hide a bug in a command.

The box is shared with other test modules running at the same time, so each test works in its
own LFN folder, inside this module's ``<home>/pgi-cli-test/<timestamp>-<random>`` (removed with
every file in it when the module ends), and with its own DIRAC job group, whose jobs it deletes
when it ends. Jobs that must stay ``Waiting`` ask for a tag no worker of the box offers
(:data:`HOLD_TAG`). The one job that must run, a real protopipe job given a file that is not a
simtel file, is submitted when the module starts (:func:`failing_submission`), so that the
box's JobAgent runs it while the other tests work.

rich wraps output at the terminal width, 80 columns without a terminal; the commands run with
``COLUMNS=400`` so that table cells and long LFNs stay on one line.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import textwrap
import time
import uuid
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from contract import unavailable

pytestmark = pytest.mark.dirac

#: a tag no worker of the box offers: jobs asking for it stay Waiting
HOLD_TAG = "pgi-test-hold"
SE, SE2 = "BOX-SE", "BOX-SE2"
#: the protopipe payload environment (real protopipe 0.5.0, Python 3.8): templates and the job
PAYLOAD_ENV = Path(os.environ.get("PGI_PAYLOAD_DIR",
                                  Path.home() / ".cache" / "protopipe-grid-interface" / "payload")
                   ) / "protopipe-0.5.0"
#: how long the JobAgent may take to run the failing job (one job at a time, shared box)
FAILING_JOB_TIMEOUT = 200
#: prefix of the one JSON line a :func:`dirac_py` script prints (DIRAC logs to stdout too)
MARK = "PGI-RESULT "

#: run by the box venv's Python in the client environment before each :func:`dirac_py` script
PRELUDE = r'''
import json, sys, time
import DIRAC
DIRAC.initialize()
from DIRAC.Interfaces.API.Dirac import Dirac
from DIRAC.Resources.Catalog.FileCatalog import FileCatalog
from DIRAC.Resources.Storage.StorageElement import StorageElement
from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import JobMonitoringClient

ARGS = json.loads(sys.argv[1])
dirac = Dirac()
ATTRIBUTES = ["JobName", "JobGroup", "Status", "MinorStatus", "ApplicationStatus"]


def value(result):
    if not result["OK"]:
        raise SystemExit("DIRAC: " + str(result["Message"]))
    return result["Value"]


def emit(result):
    print("PGI-RESULT " + json.dumps(result), flush=True)


def catalog(lfns):
    """{lfn: {size, checksum, replicas}} of the catalogued files among lfns."""
    meta = value(dirac.getLfnMetadata(lfns))["Successful"]
    files = [lfn for lfn, m in meta.items() if "Size" in m]
    replicas = value(dirac.getReplicas(files))["Successful"] if files else {}
    return {lfn: {"size": int(meta[lfn]["Size"]), "checksum": meta[lfn].get("Checksum", ""),
                  "replicas": sorted(replicas.get(lfn, {}))} for lfn in files}


def on_se(se, lfns):
    """{lfn: is the physical file on the SE}."""
    return value(StorageElement(se).exists(lfns))["Successful"]


def jobs(group=None, names=None):
    """{id: attributes} of the jobs of a job group, or of the jobs with these names."""
    wanted = {"JobGroup": group} if group else {"JobName": names}
    ids = value(JobMonitoringClient().getJobs(wanted)) or []
    return {int(i): value(JobMonitoringClient().getJobAttributes(int(i), ATTRIBUTES))
            for i in ids}


def wait_jobs(group, statuses, count, timeout):
    """The group's jobs once there are count of them, all in statuses (or at the timeout)."""
    deadline = time.time() + timeout
    while True:
        found = jobs(group)
        done = len(found) == count and all(a["Status"] in statuses for a in found.values())
        if done or time.time() > deadline:
            return found
        time.sleep(1)
'''


# --- running things ---------------------------------------------------------------------------
def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (f"$ {' '.join(map(str, proc.args))}\nexit {proc.returncode}\n--- stdout\n"
            f"{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}")


def dirac_py(box: Any, code: str, timeout: float = 300, **args: Any) -> Any:
    """Run ``code`` after :data:`PRELUDE` in a DIRAC client process; return what it ``emit``s.

    ``args`` reach the script as ``ARGS`` (through JSON).
    """
    proc = box.run([box.python, "-c", PRELUDE + textwrap.dedent(code), json.dumps(args)],
                   check=False, timeout=timeout)
    results = [line for line in proc.stdout.splitlines() if line.startswith(MARK)]
    assert proc.returncode == 0 and results, f"DIRAC client script failed:\n{describe(proc)}"
    return json.loads(results[-1][len(MARK):])


def cli(box: Any, args: Sequence[str | Path], cwd: Path, code: int | None = 0,
        env: dict[str, str | None] | None = None, timeout: float = 300
        ) -> subprocess.CompletedProcess[str]:
    """Run one of our commands (from the box venv) as a user would, without a terminal.

    ``code``: the exit code expected (None: any); ``env``: variables to set (None: unset).
    """
    program, *rest = [str(a) for a in args]
    full_env = {k: v for k, v in box.env.items() if not k.startswith("PGI_")}
    full_env["COLUMNS"] = "400"
    for key, setting in (env or {}).items():
        full_env.pop(key, None)
        if setting is not None:
            full_env[key] = setting
    proc = subprocess.run([str(box.python.parent / program), *rest], cwd=cwd, env=full_env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if code is not None:
        assert proc.returncode == code, describe(proc)
    return proc


def adler32(data: bytes) -> str:
    return f"{zlib.adler32(data) & 0xFFFFFFFF:08x}"


def same_checksum(a: str, b: str) -> bool:
    """DIRAC drops the leading zeros of adler32 checksums."""
    return a.lower().lstrip("0") == b.lower().lstrip("0")


def payload(seed: int, size: int = 3000) -> bytes:
    return random.Random(seed).randbytes(size)


def write_files(folder: Path, contents: dict[str, bytes]) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in contents.items():
        (folder / name).write_bytes(data)
        paths[name] = folder / name
    return paths


def register(box: Any, files: dict[str, Path], replicate_to: Sequence[str] = ()) -> None:
    """Upload local files to BOX-SE as the given LFNs (DIRAC's own API); replicate some."""
    dirac_py(box, """
        for lfn, path in ARGS["files"].items():
            value(dirac.addFile(lfn, path, ARGS["se"]))
        for lfn in ARGS["replicate"]:
            value(dirac.replicateFile(lfn, ARGS["se2"]))
        emit(sorted(catalog(list(ARGS["files"]))))
    """, files={lfn: str(p) for lfn, p in files.items()}, se=SE, se2=SE2,
        replicate=list(replicate_to))


def catalog(box: Any, lfns: Sequence[str]) -> dict[str, dict[str, Any]]:
    """What DIRAC's catalog holds of these LFNs, and which SEs physically have them."""
    return dirac_py(box, """
        found = catalog(ARGS["lfns"])
        for lfn, entry in found.items():
            entry["on_se"] = sorted(se for se in ARGS["ses"] if on_se(se, [lfn]).get(lfn))
        emit(found)
    """, lfns=list(lfns), ses=[SE, SE2])


def remove_tree(box: Any, folder: str) -> list[str]:
    """Remove every file under ``folder`` (all replicas) and its directories, with DIRAC."""
    return dirac_py(box, """
        from DIRAC.DataManagementSystem.Client.DataManager import DataManager
        fc = FileCatalog()
        folders, files, order = [ARGS["folder"]], [], []
        while folders:
            listing = value(fc.listDirectory(folders))["Successful"]
            order += list(listing)
            folders = [d for content in listing.values() for d in content["SubDirs"]]
            files += [f for content in listing.values() for f in content["Files"]]
        if files:
            value(DataManager().removeFile(files))
        for folder in reversed(order):
            fc.removeDirectory(folder)
        left = catalog(files) if files else {}
        emit(sorted(left))
    """, folder=folder)


def delete_jobs(box: Any, group: str | None = None, names: Sequence[str] = ()) -> None:
    """Delete (DIRAC kills them first) every job of a job group, or with one of these names."""
    dirac_py(box, """
        ids = sorted(jobs(ARGS["group"], ARGS["names"]))
        if ids:
            dirac.deleteJob(ids)  # says "failed" for Killed jobs, yet deletes them
        emit(ids)
    """, group=group, names=list(names))


def group_jobs(box: Any, group: str, statuses: Sequence[str] = (), count: int = 0,
               timeout: float = 0) -> dict[int, dict[str, str]]:
    """{id: attributes} of a job group, read from DIRAC; with ``statuses`` and ``count``, once
    there are ``count`` jobs all in one of ``statuses`` (at most ``timeout`` seconds)."""
    if statuses:
        found = dirac_py(box, "emit(wait_jobs(ARGS['group'], ARGS['statuses'], ARGS['count'], "
                              "ARGS['seconds']))", group=group, statuses=list(statuses),
                         count=count, seconds=timeout)
    else:
        found = dirac_py(box, "emit(jobs(ARGS['group']))", group=group)
    return {int(k): v for k, v in found.items()}


def token() -> str:
    return f"{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}"


def require_payload_env() -> Path:
    """The protopipe payload environment; fails under CI, skips elsewhere, when absent."""
    if (PAYLOAD_ENV / "bin" / "protopipe-TRAINING").exists():
        return PAYLOAD_ENV
    unavailable(f"no protopipe payload environment at {PAYLOAD_ENV} (scripts/install-payload.sh)")


# --- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lfn_root(dirac_box: Any) -> Iterator[str]:
    """This module's LFN folder; everything under it is removed when the module ends (once:
    each removal is a DIRAC client process of a few seconds)."""
    folder = f"{dirac_box.home}/pgi-cli-test/{token()}"
    yield folder
    assert remove_tree(dirac_box, folder) == [], "files left in the catalog"


@pytest.fixture
def lfn_dir(lfn_root: str) -> str:
    """A fresh LFN folder of this test, inside :func:`lfn_root`."""
    return f"{lfn_root}/{uuid.uuid4().hex[:8]}"


def create_analysis(box: Any, where: Path, name: str, lfn_folder: str, worker_env: Path,
                    inputs: dict[str, Path]) -> Path:
    """A tiny TRAINING energy gamma analysis made by protopipe-CREATE_ANALYSIS, then edited
    as a user would: box SEs, the worker environment, one file per job, ``inputs`` (LFN ->
    local file, registered here) as its gamma list. Returns the analysis folder."""
    home = box.home
    assert lfn_folder.startswith(f"{home}/")
    proc = cli(box, ["protopipe-CREATE_ANALYSIS", "--analysis_name", name, "--output_path",
                     where, "--GRID-is-DIRAC", "--GRID-home", home, "--GRID-path-from-home",
                     lfn_folder.removeprefix(f"{home}/"), "--backend", "dirac",
                     "--payload-env", require_payload_env()], cwd=where)
    analysis = where / "shared_folder" / "analyses" / name
    assert f"Directory structure ready for protopipe analysis: {analysis}" in proc.stdout
    configs = analysis / "configs"
    config = yaml.safe_load((configs / "analysis.yaml").read_text())
    config["General"].update(production="Prod3b", site="south", array=[1, 2, 3, 4],
                             cam_id_list=["LSTCam"])
    (configs / "analysis.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    grid = yaml.safe_load((configs / "grid.yaml").read_text())
    assert grid["GRID"]["home_grid"] == home
    grid["GRID"].update(upload_sites=[SE, SE2], banned_sites=[], n_file_per_job=1,
                        cpu_time=600, canary="off")  # these tests follow every job they make
    grid["Software"]["worker_env"] = str(worker_env)
    gamma_list = analysis / "data" / "simtel" / "gamma.list"
    gamma_list.write_text("".join(f"{lfn}\n" for lfn in inputs))
    grid["EnergyRegressor"]["gamma_list"] = str(gamma_list)
    (configs / "grid.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    register(box, inputs)
    return analysis


def simtel_name(run: int) -> str:
    return f"gamma_20deg_0deg_run{run}___cta-prod3-demo_desert-2150m-Paranal-baseline.simtel.gz"


def job_name(analysis: str, run: int) -> str:
    return f"protopipe_{analysis}_TRAINING_energy_gamma_run{run}"


def status_json(box: Any, analysis: Path, cwd: Path) -> dict[str, dict[str, Any]]:
    """``protopipe-grid jobs status --json``, by job name (stdout must be JSON alone)."""
    proc = cli(box, ["protopipe-grid", "jobs", "status", "--metadata", analysis, "--json",
                     "--backend", "dirac"], cwd=cwd)
    return {record["name"]: record for record in json.loads(proc.stdout)}


# --- legacy file commands ---------------------------------------------------------------------
def test_upload_file_registers_the_file_with_its_checksum(dirac_box: Any, lfn_dir: str,
                                                          tmp_path: Path) -> None:
    data = payload(1)
    write_files(tmp_path / "local", {"model.pkl.gz": data, "other.pkl.gz": payload(2)})
    lfn = f"{lfn_dir}/models/model.pkl.gz"
    upload = ["protopipe-UPLOAD_FILE", "--indir", tmp_path / "local", "--infile", "model.pkl.gz",
              "--outdir", f"{lfn_dir}/models", "--SE", SE, "--backend", "dirac"]

    first = cli(dirac_box, upload, cwd=tmp_path)

    assert f"{lfn}: uploaded" in first.stdout
    found = catalog(dirac_box, [lfn])
    assert found[lfn]["size"] == len(data)
    assert same_checksum(found[lfn]["checksum"], adler32(data))
    assert found[lfn]["replicas"] == [SE] and found[lfn]["on_se"] == [SE]

    listing = cli(dirac_box, ["protopipe-grid", "files", "list", f"{lfn_dir}/models",
                              "--backend", "dirac"], cwd=tmp_path)
    [line] = [line for line in listing.stdout.splitlines() if line.startswith(lfn)]
    assert line.split() == [lfn, str(len(data)), found[lfn]["checksum"], SE]

    again = cli(dirac_box, upload, cwd=tmp_path)
    assert f"{lfn}: already there, same content" in again.stdout

    (tmp_path / "local" / "model.pkl.gz").write_bytes(payload(3))
    different = cli(dirac_box, upload, cwd=tmp_path, code=4)
    assert "already exists with different content" in different.stderr
    assert "--overwrite" in different.stderr
    assert catalog(dirac_box, [lfn])[lfn]["checksum"] == found[lfn]["checksum"]

    unknown = cli(dirac_box, ["protopipe-UPLOAD_FILE", "--indir", tmp_path / "local",
                              "--infile", "other.pkl.gz", "--outdir", f"{lfn_dir}/models",
                              "--SE", "NO-SUCH-SE", "--backend", "dirac"], cwd=tmp_path, code=2)
    assert "--SE NO-SUCH-SE: unknown storage element" in unknown.stderr
    assert catalog(dirac_box, [f"{lfn_dir}/models/other.pkl.gz"]) == {}


def test_files_list_prints_one_tab_separated_line_per_file_on_a_pipe(
        dirac_box: Any, lfn_dir: str, tmp_path: Path) -> None:
    lfn = f"{lfn_dir}/a_rather_long_file_name_that_makes_the_line_longer_than_80_columns.h5"
    data = payload(4)
    register(dirac_box, {lfn: write_files(tmp_path, {"f.h5": data})["f.h5"]})

    listing = cli(dirac_box, ["protopipe-grid", "files", "list", lfn_dir, "--backend", "dirac"],
                  cwd=tmp_path, env={"COLUMNS": None})

    checksum = catalog(dirac_box, [lfn])[lfn]["checksum"]
    assert listing.stdout.splitlines() == [f"{lfn}\t{len(data)}\t{checksum}\t{SE}"]


def test_download_files_of_one_lfn_gives_the_same_bytes(dirac_box: Any, lfn_dir: str,
                                                        tmp_path: Path) -> None:
    data = payload(5, 100_000)
    lfn = f"{lfn_dir}/DL2_gamma_tail_run101.h5"
    register(dirac_box, {lfn: write_files(tmp_path / "src", {"x.h5": data})["x.h5"]})

    proc = cli(dirac_box, ["protopipe-DOWNLOAD_FILES", "--indir", lfn, "--outdir",
                           tmp_path / "out", "--backend", "dirac"], cwd=tmp_path)

    assert "1 fetched, 0 already present, 0 failed" in proc.stdout
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["DL2_gamma_tail_run101.h5"]
    assert (tmp_path / "out" / "DL2_gamma_tail_run101.h5").read_bytes() == data

    again = cli(dirac_box, ["protopipe-DOWNLOAD_FILES", "--indir", lfn, "--outdir",
                            tmp_path / "out", "--backend", "dirac"], cwd=tmp_path)
    assert "0 fetched, 1 already present, 0 failed" in again.stdout


def test_download_files_of_a_folder_gives_the_same_bytes(dirac_box: Any, lfn_dir: str,
                                                         tmp_path: Path) -> None:
    contents = {f"DL2_gamma_tail_run{run}.h5": payload(run, 50_000) for run in (101, 102, 103)}
    local = write_files(tmp_path / "src", contents)
    register(dirac_box, {f"{lfn_dir}/DL2/{name}": path for name, path in local.items()})

    proc = cli(dirac_box, ["protopipe-DOWNLOAD_FILES", "--indir", f"{lfn_dir}/DL2", "--outdir",
                           tmp_path / "out", "--n_jobs", "3", "--backend", "dirac"],
               cwd=tmp_path)

    assert "3 fetched, 0 already present, 0 failed" in proc.stdout
    assert {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()} == contents


def test_filter_replicas_keeps_the_lfns_replicated_on_the_disks(dirac_box: Any, lfn_dir: str,
                                                                tmp_path: Path) -> None:
    local = write_files(tmp_path / "src", {"a": payload(6), "b": payload(7)})
    kept, other = f"{lfn_dir}/{simtel_name(101)}", f"{lfn_dir}/{simtel_name(102)}"
    missing = f"{lfn_dir}/{simtel_name(103)}"
    register(dirac_box, {kept: local["a"], other: local["b"]}, replicate_to=[kept])
    assert {lfn: e["replicas"] for lfn, e in catalog(dirac_box, [kept, other]).items()} == {
        kept: [SE, SE2], other: [SE]}
    (tmp_path / "in.list").write_text(f"{missing}\n{other}\n{kept}\n")

    def run(disks: str, outfile: str) -> list[str]:
        proc = cli(dirac_box, ["protopipe-FILTER-REPLICAS", "--input_list", "in.list",
                               "--filter_disks", disks, "--outfile", outfile,
                               "--backend", "dirac"], cwd=tmp_path)
        lines = (tmp_path / outfile).read_text().splitlines()
        assert f"{len(lines)} of 3 LFN(s) have a replica on" in proc.stdout
        assert "(1 not in the catalog)" in proc.stdout
        return lines

    assert run(SE2, "se2.list") == [kept]
    assert run(SE, "se.list") == [other, kept]  # the list's order
    assert run(f"{SE2},{SE}", "both.list") == [other, kept]


def test_delete_files_asks_first_then_removes_every_replica(dirac_box: Any, lfn_dir: str,
                                                            tmp_path: Path) -> None:
    local = write_files(tmp_path / "src", {"a": payload(8), "b": payload(9)})
    victim, bystander = f"{lfn_dir}/victim.h5", f"{lfn_dir}/bystander.h5"
    register(dirac_box, {victim: local["a"], bystander: local["b"]}, replicate_to=[victim])
    delete = ["protopipe-DELETE_FILES", "--indir", victim, "--backend", "dirac"]

    refused = cli(dirac_box, delete, cwd=tmp_path, code=1)

    assert f"{victim} ({len(payload(8))} B, {SE},{SE2})" in refused.stdout
    assert "refused: no terminal to ask on (use --yes)" in refused.stderr
    found = catalog(dirac_box, [victim, bystander])
    assert found[victim]["replicas"] == [SE, SE2] and found[victim]["on_se"] == [SE, SE2]

    removed = cli(dirac_box, [*delete, "--yes"], cwd=tmp_path)

    assert "1 file(s) removed" in removed.stdout
    after, on_disk = dirac_py(dirac_box, """
        emit([catalog(ARGS["lfns"]), [on_se(se, [ARGS["lfns"][0]]).get(ARGS["lfns"][0], False)
                                      for se in ARGS["ses"]]])
    """, lfns=[victim, bystander], ses=[SE, SE2])
    assert list(after) == [bystander] and after[bystander]["replicas"] == [SE]
    assert on_disk == [False, False]  # no replica left behind on either SE


def test_delete_files_of_a_folder_asks_first_then_removes_them_all(
        dirac_box: Any, lfn_dir: str, tmp_path: Path) -> None:
    local = write_files(tmp_path / "src", {"a": payload(10), "b": payload(11)})
    lfns = [f"{lfn_dir}/old/a.h5", f"{lfn_dir}/old/sub/b.h5"]
    kept = f"{lfn_dir}/keep.h5"
    register(dirac_box, {lfns[0]: local["a"], lfns[1]: local["b"], kept: local["a"]})
    delete = ["protopipe-DELETE_FILES", "--indir", f"{lfn_dir}/old", "--backend", "dirac"]

    refused = cli(dirac_box, delete, cwd=tmp_path, code=1)

    assert "refused: no terminal to ask on (use --yes)" in refused.stderr
    assert all(lfn in refused.stdout for lfn in lfns)
    assert sorted(catalog(dirac_box, [*lfns, kept])) == sorted([*lfns, kept])

    removed = cli(dirac_box, [*delete, "--yes"], cwd=tmp_path)

    assert "2 file(s) removed" in removed.stdout
    assert list(catalog(dirac_box, [*lfns, kept])) == [kept]


# --- jobs: input LFNs and forcing to Failed ---------------------------------------------------
@pytest.fixture(scope="module")
def held_group(dirac_box: Any, lfn_root: str, tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[str, dict[str, list[str]], list[str]]]:
    """Two held DL2-like jobs in a job group of their own, submitted in one (parametric)
    submission by the DIRAC backend, with their simulation files and models registered.

    Yields (job group, {job name: its simulation LFNs}, the model LFNs)."""
    from protopipe_grid_interface.backends.dirac import DiracBackend, Environment
    from protopipe_grid_interface.models import JobSpec, Particle, Stage

    folder = f"{lfn_root}/held"
    analysis = f"pgh-{uuid.uuid4().hex[:8]}"  # DIRAC's JobGroup holds 32 characters
    estimators = [f"{folder}/estimators/RandomForestRegressor.yaml",
                  f"{folder}/estimators/regressor_LSTCam_RandomForestRegressor.pkl.gz"]
    inputs = {f"protopipe_{analysis}_DL2_gamma_run101-run102": [f"{folder}/sim/{simtel_name(101)}",
                                                                f"{folder}/sim/{simtel_name(102)}"],
              f"protopipe_{analysis}_DL2_gamma_run103": [f"{folder}/sim/{simtel_name(103)}"]}
    local = tmp_path_factory.mktemp("held")
    every = [*estimators, *(lfn for lfns in inputs.values() for lfn in lfns)]
    register(dirac_box, {lfn: write_files(local, {f"f{i}": payload(20 + i)})[f"f{i}"]
                         for i, lfn in enumerate(every)})
    specs = [JobSpec(name=name, analysis=analysis, stage=Stage.DL2, particle=Particle.GAMMA,
                     input_lfns=tuple(lfns), steps=(("true",),), output_file="out.h5",
                     output_lfn=f"{folder}/out/{name}.h5", output_se=SE, input_data=tuple(
                         estimators), cpu_time=600, tags=(HOLD_TAG,))
             for name, lfns in inputs.items()]
    backend = DiracBackend(Environment("venv", str(dirac_box.python.parent.parent)))
    group = specs[0].job_group
    try:
        backend.submit(specs)
        yield group, inputs, estimators
    finally:
        delete_jobs(dirac_box, group)


def test_get_input_lfns_lists_the_simulation_files_not_the_models(
        dirac_box: Any, held_group: tuple[str, dict[str, list[str]], list[str]],
        tmp_path: Path) -> None:
    group, inputs, estimators = held_group
    ids = {attributes["JobName"]: job_id for job_id, attributes in
           group_jobs(dirac_box, group).items()}
    assert sorted(ids) == sorted(inputs)
    first, second = sorted(inputs)

    proc = cli(dirac_box, ["protopipe-GET_INPUT_LFNS", "--job_id", str(ids[first]),
                           "--backend", "dirac"], cwd=tmp_path)

    default = tmp_path / f"{ids[first]}_FLNs.list"  # the original's default name
    assert default.read_text().splitlines() == inputs[first]
    assert f"{len(inputs[first])} LFN(s) written to {default.name}" in proc.stdout
    assert not set(estimators) & set(default.read_text().splitlines())

    cli(dirac_box, ["protopipe-GET_INPUT_LFNS", "--job_id", str(ids[second]), "--output_file",
                    "second.list", "--backend", "dirac"], cwd=tmp_path)
    assert (tmp_path / "second.list").read_text().splitlines() == inputs[second]


def test_get_input_lfns_of_an_unknown_job_is_a_one_line_error(dirac_box: Any,
                                                              tmp_path: Path) -> None:
    unknown = cli(dirac_box, ["protopipe-GET_INPUT_LFNS", "--job_id", "999999999",
                              "--backend", "dirac"], cwd=tmp_path, code=None)

    assert unknown.returncode not in (0, 1), describe(unknown)  # 1: an internal error
    assert "999999999" in unknown.stderr and "internal error" not in unknown.stderr
    assert not (tmp_path / "999999999_FLNs.list").exists()


def test_force_job_to_failed_needs_a_scope_a_yes_and_an_administrator(
        dirac_box: Any, held_group: tuple[str, dict[str, list[str]], list[str]],
        tmp_path: Path) -> None:
    group, inputs, _ = held_group
    waiting = group_jobs(dirac_box, group, ["Waiting"], len(inputs), timeout=60)
    assert {a["Status"] for a in waiting.values()} == {"Waiting"}, waiting
    force = ["protopipe-FORCE_JOB_TO_FAILED", "--backend", "dirac"]
    admin = {"PGI_ADMIN_PROXY": str(dirac_box.admin_proxy)}

    unscoped = cli(dirac_box, [*force, "--yes"], cwd=tmp_path, code=2, env=admin)
    assert "refusing to select jobs by date alone" in unscoped.stderr

    unconfirmed = cli(dirac_box, [*force, "--JobGroup", group], cwd=tmp_path, code=1, env=admin)
    assert f"==> Selected {len(inputs)} jobs with conditions:" in unconfirmed.stdout
    assert all(f"  {job_id}  Waiting" in unconfirmed.stdout for job_id in waiting)
    assert "refused: no terminal to ask on (use --yes)" in unconfirmed.stderr

    dry = cli(dirac_box, [*force, "--JobGroup", group, "--yes", "--dry-run"], cwd=tmp_path,
              env=admin)
    assert f"==> Selected {len(inputs)} jobs" in dry.stdout
    no_proxy = cli(dirac_box, [*force, "--JobGroup", group, "--yes"], cwd=tmp_path, code=3,
                   env={"PGI_ADMIN_PROXY": str(tmp_path / "no-such-proxy.pem")})
    assert "no-such-proxy.pem" in no_proxy.stderr  # the proxy it was told to use
    assert {a["Status"] for a in group_jobs(dirac_box, group).values()} == {"Waiting"}

    forced = cli(dirac_box, [*force, "--JobGroup", group, "--yes"], cwd=tmp_path, env=admin)

    assert f"{len(inputs)} job(s) set to Failed" in forced.stdout
    after = group_jobs(dirac_box, group)
    assert sorted(after) == sorted(waiting)
    assert {(a["Status"], a["MinorStatus"]) for a in after.values()} == {
        ("Failed", "Forced to Failed by the user")}

    again = cli(dirac_box, [*force, "--JobGroup", group, "--yes"], cwd=tmp_path, env=admin)
    assert f"{len(inputs)} of them are already final" in again.stdout
    assert "set to Failed" not in again.stdout


# --- submission -------------------------------------------------------------------------------
def test_submit_is_planned_whole_never_twice_tracked_killed_and_resubmitted(
        dirac_box: Any, lfn_dir: str, tmp_path: Path) -> None:
    name = f"pgs-{uuid.uuid4().hex[:8]}"  # DIRAC's JobGroup holds 32 characters
    group = f"{name}.TRE"  # JobSpec.job_group: <analysis>.<stage.short>
    runs = (101, 102, 103)
    inputs = {f"{lfn_dir}/simtel/{simtel_name(run)}": path for run, path in zip(
        runs, write_files(tmp_path / "sim", {f"{run}": payload(run) for run in runs}).values(),
        strict=True)}
    analysis = create_analysis(dirac_box, tmp_path, name, lfn_dir,
                               dirac_box.python.parent.parent, inputs)
    names = [job_name(name, run) for run in runs]
    submit = ["protopipe-SUBMIT_JOBS", "--analysis_path", analysis, "--output_type", "TRAINING",
              "--tag", HOLD_TAG, "--backend", "dirac"]
    config_lfn = (f"{lfn_dir}/{name}/data/TRAINING/for_energy_estimation/gamma/analysis.yaml")
    try:
        # --dry: the whole plan, nothing submitted, nothing uploaded
        dry = cli(dirac_box, [*submit, "--dry=True"], cwd=tmp_path)
        assert "This is a DRY RUN! -- NO job has been submitted!" in dry.stdout
        for run, lfn in zip(runs, inputs, strict=True):
            assert f"  {job_name(name, run)}: 1 file(s) from {lfn} -> " in dry.stdout
        assert dry.stdout.count("[to submit]") == 3
        assert "3 job(s) would be submitted" in dry.stdout
        assert group_jobs(dirac_box, group) == {}
        assert catalog(dirac_box, [config_lfn]) == {}

        first = cli(dirac_box, submit, cwd=tmp_path)
        assert "training-energy gamma: 3 job(s) have been submitted" in first.stdout
        jobs = group_jobs(dirac_box, group, ["Waiting"], 3, timeout=60)
        assert sorted(a["JobName"] for a in jobs.values()) == names
        assert {a["Status"] for a in jobs.values()} == {"Waiting"}, jobs
        ids = {a["JobName"]: job_id for job_id, a in jobs.items()}
        config = catalog(dirac_box, [config_lfn])[config_lfn]
        assert same_checksum(config["checksum"],
                             adler32((analysis / "configs" / "analysis.yaml").read_bytes()))
        assert config["replicas"] == [SE, SE2]

        # a second submission, by either command, submits nothing
        second = cli(dirac_box, submit, cwd=tmp_path)
        assert "0 job(s) have been submitted, 0 skipped (output exists), 3 already submitted" \
            in second.stdout
        third = cli(dirac_box, ["protopipe-grid", "jobs", "submit", "--metadata", analysis,
                                "--stage", "training-energy", "--particle", "gamma",
                                "--backend", "dirac"], cwd=tmp_path)
        assert "training-energy: 0 submitted, 0 skipped (output exists), 3 already submitted" \
            in third.stdout
        assert sorted(group_jobs(dirac_box, group)) == sorted(ids.values())

        # the status is DIRAC's
        records = status_json(dirac_box, analysis, tmp_path)
        assert {n: (r["backend"], r["backend_id"], r["status"], r["minor_status"])
                for n, r in records.items()} == {
            jobs[i]["JobName"]: ("dirac", i, jobs[i]["Status"], jobs[i]["MinorStatus"])
            for i in jobs}

        # one job killed: resubmit submits that one only
        victim = names[1]
        killed = dirac_py(dirac_box, """
            value(dirac.killJob([ARGS["id"]]))
            emit(wait_jobs(ARGS["group"], ["Killed", "Waiting"], 3, 30))
        """, id=ids[victim], group=group)
        assert {a["JobName"]: a["Status"] for a in killed.values()} == {
            n: "Killed" if n == victim else "Waiting" for n in names}

        resubmitted = cli(dirac_box, ["protopipe-grid", "jobs", "resubmit", "--metadata",
                                      analysis, "--backend", "dirac"], cwd=tmp_path)
        assert "1 of 1 job(s) resubmitted" in resubmitted.stdout
        now = group_jobs(dirac_box, group, ["Waiting", "Killed"], 4, timeout=60)
        [new_id] = set(now) - set(ids.values())
        assert now[new_id]["JobName"] == victim
        assert sorted(a["JobName"] for a in now.values()) == sorted([*names, victim])
        records = status_json(dirac_box, analysis, tmp_path)
        assert (records[victim]["backend_id"], records[victim]["attempts"]) == (new_id, 2)
        assert {n: records[n]["backend_id"] for n in names if n != victim} == {
            n: ids[n] for n in names if n != victim}

        # kill asks first, then kills every active job of the analysis
        kill = ["protopipe-grid", "jobs", "kill", "--metadata", analysis, "--backend", "dirac"]
        refused = cli(dirac_box, kill, cwd=tmp_path, code=1)
        assert "kill these 3 job(s)? [y/N] refused" in refused.stderr
        assert sorted(a["Status"] for a in group_jobs(dirac_box, group).values()) == [
            "Killed", "Waiting", "Waiting", "Waiting"]

        done = cli(dirac_box, [*kill, "--yes"], cwd=tmp_path)
        assert "3 job(s) killed" in done.stdout
        final = group_jobs(dirac_box, group, ["Killed"], 4, timeout=30)
        assert {a["Status"] for a in final.values()} == {"Killed"}, final
        assert {r["status"] for r in status_json(dirac_box, analysis, tmp_path).values()} == {
            "Killed"}

        # delete asks first too, then deletes the jobs the analysis knows
        delete = ["protopipe-grid", "jobs", "delete", "--metadata", analysis, "--backend",
                  "dirac"]
        refused = cli(dirac_box, delete, cwd=tmp_path, code=1)
        assert "delete these 3 job(s)? [y/N] refused" in refused.stderr
        done = cli(dirac_box, [*delete, "--yes"], cwd=tmp_path)
        assert "3 job(s) deleted" in done.stdout
        deleted = {r["backend_id"] for r in status_json(dirac_box, analysis, tmp_path).values()
                   if r["status"] == "Deleted"}
        assert deleted == {*ids.values(), new_id} - {ids[victim]}
    finally:
        delete_jobs(dirac_box, group)


#: ``protopipe-grid`` killed (SIGKILL) between DIRAC's ``submitJob`` and its confirmation
KILLED_INSIDE_THE_TRANSACTION = """
import os, signal, sys
from protopipe_grid_interface.backends.dirac import DiracBackend
from protopipe_grid_interface.cli.main import main
DiracBackend.confirm = lambda self, ids: os.kill(os.getpid(), signal.SIGKILL)
sys.exit(main(sys.argv[1:]))
"""
#: stands in for protopipe-TRAINING on the box's worker: writes the file --outfile names
FAKE_TRAINING = """#!{python}
import sys
args = sys.argv
open(args[args.index("--outfile") + 1], "w").write("training table")
"""


def fake_training_env(box: Any, where: Path) -> Path:
    """A payload environment whose ``protopipe-TRAINING`` succeeds at once (with the box
    venv's Python), so that jobs reach Done without the protopipe payload."""
    env = where / "fake-payload"
    (env / "bin").mkdir(parents=True)
    (env / "bin" / "python").symlink_to(box.python)
    training = env / "bin" / "protopipe-TRAINING"
    training.write_text(FAKE_TRAINING.format(python=box.python))
    training.chmod(0o755)
    return env


def test_a_submission_killed_inside_diracs_transaction_is_confirmed_and_runs_once(
        dirac_box: Any, lfn_dir: str, tmp_path: Path) -> None:
    """The window of the issue: killed between ``JobManager.submitJob`` and
    ``confirmBulkSubmission``, the jobs wait unconfirmed on DIRAC; the wait says so at once
    instead of hanging, and the next submission confirms them: each runs to Done, once."""
    name = f"pgk-{uuid.uuid4().hex[:8]}"  # DIRAC's JobGroup holds 32 characters
    runs = (101, 102)
    inputs = {f"{lfn_dir}/simtel/{simtel_name(run)}": path for run, path in zip(
        runs, write_files(tmp_path / "sim", {f"{run}": payload(run) for run in runs}).values(),
        strict=True)}
    analysis = create_analysis(dirac_box, tmp_path, name, lfn_dir,
                               fake_training_env(dirac_box, tmp_path), inputs)
    names = [job_name(name, run) for run in runs]
    submit = ["jobs", "submit", "--metadata", analysis, "--stage", "training-energy",
              "--backend", "dirac"]
    try:
        cli(dirac_box, ["python", "-c", KILLED_INSIDE_THE_TRANSACTION, *submit], cwd=tmp_path,
            code=-9)
        created = dirac_py(dirac_box, "emit(jobs(names=ARGS['names']))", names=names)
        assert sorted(a["JobName"] for a in created.values()) == names
        assert {(a["Status"], a["MinorStatus"]) for a in created.values()} == {
            ("Submitting", "Bulk transaction confirmation")}

        waited = cli(dirac_box, ["protopipe-grid", "jobs", "wait", "--metadata", analysis,
                                 "--backend", "dirac"], cwd=tmp_path, code=1, timeout=60)
        assert "2 training-energy job(s) not submitted yet (Sending): " in waited.stderr

        again = cli(dirac_box, ["protopipe-grid", *submit, "--wait", "--status-every", "5s"],
                    cwd=tmp_path, timeout=600)

        assert ("0 submitted, 0 skipped (output exists), 0 already submitted, 2 recovered from "
                "an interrupted run, 2 unconfirmed job(s) confirmed") in again.stdout
        assert " 2 job(s): " in again.stdout  # a status line now and then: no terminal
        final = dirac_py(dirac_box, "emit(jobs(names=ARGS['names']))", names=names)
        assert sorted(final) == sorted(created)  # the same jobs, and no other
        assert {(a["Status"], a["MinorStatus"]) for a in final.values()} == {
            ("Done", "Execution Complete")}
        records = status_json(dirac_box, analysis, tmp_path)
        assert {n: (r["backend_id"], r["attempts"]) for n, r in records.items()} == {
            a["JobName"]: (int(i), 1) for i, a in final.items()}
    finally:
        delete_jobs(dirac_box, names=names)


def test_an_analysis_with_a_longer_name_can_be_submitted(dirac_box: Any, lfn_dir: str,
                                                         tmp_path: Path) -> None:
    name = f"prod5b-north-baseline-{uuid.uuid4().hex[:6]}"
    inputs = {f"{lfn_dir}/simtel/{simtel_name(101)}": write_files(
        tmp_path / "sim", {"x": payload(30)})["x"]}
    analysis = create_analysis(dirac_box, tmp_path, name, lfn_dir,
                               dirac_box.python.parent.parent, inputs)
    try:
        proc = cli(dirac_box, ["protopipe-SUBMIT_JOBS", "--analysis_path", analysis,
                               "--output_type", "TRAINING", "--tag", HOLD_TAG,
                               "--upload_analysis_cfg", "False", "--backend", "dirac"],
                   cwd=tmp_path)
        assert "training-energy gamma: 1 job(s) have been submitted" in proc.stdout
        found = dirac_py(dirac_box, "emit(jobs(names=ARGS['names']))",
                         names=[job_name(name, 101)])
        assert len(found) == 1
    finally:
        delete_jobs(dirac_box, names=[job_name(name, 101)])


# --- a job that fails on the worker -----------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def failing_submission(dirac_box: Any, lfn_root: str, tmp_path_factory: pytest.TempPathFactory
                       ) -> Iterator[tuple[Path, str, str] | None]:
    """A real protopipe job given a file that is not a simtel file, submitted with
    ``protopipe-grid jobs submit`` when the module starts, so that the JobAgent runs it while
    the other tests work (it runs one job at a time, and other modules queue jobs too).

    Yields (analysis folder, job name, job group), or None without a payload environment."""
    if not (PAYLOAD_ENV / "bin" / "protopipe-TRAINING").exists():
        yield None  # the tests that need it fail (CI) or skip: see failed_job
        return
    payload_env = PAYLOAD_ENV
    name = f"pgf-{uuid.uuid4().hex[:8]}"  # DIRAC's JobGroup holds 32 characters
    where = tmp_path_factory.mktemp("failing")
    lfn = f"{lfn_root}/failing/simtel/{simtel_name(101)}"
    analysis = create_analysis(dirac_box, where, name, f"{lfn_root}/failing", payload_env, {
        lfn: write_files(where / "sim", {"bad": b"this is not a simtel file\n" * 10})["bad"]})
    group = f"{name}.TRE"  # JobSpec.job_group: <analysis>.<stage.short>
    try:
        submitted = cli(dirac_box, ["protopipe-grid", "jobs", "submit", "--metadata", analysis,
                                    "--stage", "training-energy", "--backend", "dirac"],
                        cwd=where)
        assert "training-energy: 1 submitted" in submitted.stdout
        yield analysis, job_name(name, 101), group
    finally:
        delete_jobs(dirac_box, group)


@pytest.fixture(scope="module")
def failed_job(dirac_box: Any, failing_submission: tuple[Path, str, str] | None
               ) -> tuple[Path, str, dict[str, str], subprocess.CompletedProcess[str]]:
    """The failing job, waited for with ``protopipe-grid jobs wait``.

    Returns (analysis folder, job name, its DIRAC attributes, the ``jobs wait`` process)."""
    if failing_submission is None:
        require_payload_env()
    assert failing_submission is not None
    analysis, name, group = failing_submission
    waited = cli(dirac_box, ["protopipe-grid", "jobs", "wait", "--metadata", analysis,
                             "--timeout", str(FAILING_JOB_TIMEOUT), "--backend", "dirac"],
                 cwd=analysis, code=None, timeout=FAILING_JOB_TIMEOUT + 120)
    [attributes] = group_jobs(dirac_box, group).values()
    return analysis, name, attributes, waited


def table_row(text: str, first_cell: str) -> list[list[str]]:
    """The cells of the rich table row whose first cell is ``first_cell``, one list per column
    holding that cell's lines (a cell may span several lines)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines)
              if line.startswith("│") and line.strip("│").split("│")[0].strip() == first_cell]
    assert len(starts) == 1, f"no single row {first_cell!r} in:\n{text}"
    rows = [lines[starts[0]]]
    for line in lines[starts[0] + 1:]:
        cells = line.strip("│").split("│") if line.startswith("│") else []
        if not cells or cells[0].strip():
            break
        rows.append(line)
    split = [[cell.strip() for cell in row.strip("│").split("│")] for row in rows]
    return [[row[column] for row in split if row[column]] for column in range(len(split[0]))]


def test_a_job_failing_on_the_worker_shows_failed_with_its_statuses_and_log_tail(
        dirac_box: Any, failed_job: tuple[Path, str, dict[str, str],
                                          subprocess.CompletedProcess[str]],
        tmp_path: Path) -> None:
    analysis, name, attributes, waited = failed_job
    assert attributes["Status"] == "Failed", f"{attributes}\n{describe(waited)}"
    assert "Exited With Status 1" in attributes["ApplicationStatus"], attributes
    assert waited.returncode == 1, describe(waited)  # jobs wait: not every job ended Done

    proc = cli(dirac_box, ["protopipe-grid", "jobs", "status", "--metadata", analysis,
                           "--backend", "dirac"], cwd=analysis)

    records = status_json(dirac_box, analysis, tmp_path)
    job_id = records[name]["backend_id"]
    assert (records[name]["status"], records[name]["application_status"]) == (
        "Failed", attributes["ApplicationStatus"])
    failures = proc.stdout[proc.stdout.index("failed jobs"):]
    job, ids, minor, application, tail = table_row(failures, name)
    assert (job, ids, " ".join(minor), " ".join(application)) == (
        [name], [str(job_id)], attributes["MinorStatus"], attributes["ApplicationStatus"])
    log = dirac_py(dirac_box, """
        import os
        value(dirac.getOutputSandbox(ARGS["id"], outputDir=ARGS["dir"]))
        folder = os.path.join(ARGS["dir"], str(ARGS["id"]))
        emit({n: open(os.path.join(folder, n)).read() for n in os.listdir(folder)})
    """, id=job_id, dir=str(tmp_path))
    # DiracBackend.job_log: DIRAC's wrapper log, then the payload's own output, last
    combined = "".join([log.get("std.out", ""), log.get("std.err", ""),
                        *(log[n] for n in sorted(log) if n.endswith("CodeOutput.log"))]
                       ).strip().splitlines()
    # the table may wrap a long log line over several rows: compare the text, not the rows
    flat = " ".join(" ".join(line.split()) for line in combined)
    shown = " ".join(" ".join(line.split()) for line in tail)
    assert tail and shown in flat, (tail, log)
    assert flat.endswith(shown)  # the tail: where the job's output ends


def test_the_log_tail_of_a_failed_job_shows_why_the_payload_failed(
        dirac_box: Any, failed_job: tuple[Path, str, dict[str, str],
                                          subprocess.CompletedProcess[str]]) -> None:
    analysis, name, _, _ = failed_job

    proc = cli(dirac_box, ["protopipe-grid", "jobs", "status", "--metadata", analysis,
                           "--backend", "dirac"], cwd=analysis)

    assert "run_job: protopipe-TRAINING exited with status 1" in proc.stdout
