"""The legacy ``protopipe-*`` commands, run as the console scripts users run.

The first three tests are the original tool's own (``scripts/tests/test_directory_tree.py``,
``test_split_dataset.py``, ``test_merge.py``), adapted to call our console scripts. The others
cover every other legacy command on the local backend, and the original's defects.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
import tables
import yaml
from analysis_configs import register_inputs, write_configs

from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.models import JobSpec, JobStatus, Particle, Stage
from protopipe_grid_interface.store import Store
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.tree import create_analysis

BIN = Path(sys.executable).parent
PAYLOAD_ENV = Path(sys.prefix)
STANDARD_WORKFLOW = {
    "configs": [],
    "data": {
        "simtel": [],
        "TRAINING": {
            "for_energy_estimation": ["gamma"],
            "for_particle_classification": ["gamma", "proton"],
        },
        "DL2": ["gamma", "proton", "electron"],
        "DL3": [],
    },
    "estimators": ["energy_regressor", "gamma_hadron_classifier"],
}


def cli(command: str, *args: object, cwd: Path, stdin: str | None = None
        ) -> subprocess.CompletedProcess[str]:
    """Run ``protopipe-<command>`` as a user would (no terminal: confirmations are refused)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGI_")}
    env["PGI_LOCAL_ROOT"] = str(cwd / "grid")  # never the user's own local grid
    return subprocess.run(  # noqa: S603 - fixed argument list
        [str(BIN / f"protopipe-{command}"), *map(str, args)], cwd=cwd, env=env, text=True,
        capture_output=True, input=stdin if stdin is not None else "", timeout=120, check=False)


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    return result.stdout


def lfns(n: int, particle: str = "gamma", first: int = 100) -> list[str]:
    return [f"/vo.cta.in2p3.fr/MC/PROD3/{particle}_20deg_0deg_run{first + i}___cta-prod3_"
            f"desert.simtel.zst" for i in range(n)]


class NoRunner(LocalBackend):
    """The local backend without its queue runner: jobs submitted through it are not run."""

    def ensure_runner(self) -> None:
        pass


def wait_final(backend: LocalBackend, ids: Sequence[int], timeout: float = 60) -> None:
    """Let the local queue runner finish what a test submitted (nothing left running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        states = backend.status(ids)
        if all(s.status.is_final for s in states.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"jobs not final after {timeout} s: {backend.status(ids)}")


@dataclass
class Workspace:
    """A small analysis ``ana`` made without protopipe, and a local grid under ``grid/``."""

    dir: Path
    root: Path

    @property
    def metadata(self) -> Path:
        return self.root / "analysis_metadata.yaml"

    @property
    def grid_yaml(self) -> Path:
        return self.root / "configs" / "grid.yaml"

    @property
    def grid_root(self) -> Path:
        return self.dir / "grid"

    def backend(self) -> LocalBackend:
        return LocalBackend(self.grid_root, payload_env=PAYLOAD_ENV)

    def edit_grid(self, old: str, new: str) -> None:
        text = self.grid_yaml.read_text()
        assert old in text, old
        self.grid_yaml.write_text(text.replace(old, new))

    def write_list(self, name: str, entries: Sequence[str]) -> Path:
        path = self.dir / name
        path.write_text("".join(f"{e}\n" for e in entries))
        return path

    def backend_options(self) -> list[str]:
        return ["--backend", "local", "--local-root", str(self.grid_root),
                "--payload-env", str(PAYLOAD_ENV)]


def make_workspace(tmp_path: Path) -> Workspace:
    tree = create_analysis(tmp_path / "ws", "ana", None)
    write_configs(tree.configs)
    return Workspace(tmp_path, tree.root)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return make_workspace(tmp_path)


def set_list(ws: Workspace, stage: Stage, particle: Particle, entries: Sequence[str]) -> None:
    """What SPLIT_DATASET --metadata does (tested on its own), without a subprocess."""
    path = ws.root / "data" / "simtel" / f"{particle.value}_{stage.value}.list"
    path.write_text("".join(f"{e}\n" for e in entries))
    assert Analysis.open(ws.metadata).set_list_file(stage, particle, path)
    register_inputs(ws.backend(), entries)


def split(ws: Workspace, *args: object) -> str:
    return ok(cli("SPLIT_DATASET", "--metadata", ws.metadata, *args, cwd=ws.dir))


def submit(ws: Workspace, *args: object) -> subprocess.CompletedProcess[str]:
    return cli("SUBMIT_JOBS", f"--analysis_path={ws.root}", *args, *ws.backend_options(),
               cwd=ws.dir)


def create_mock_file(path: Path, cameras: Sequence[str], rows: int = 50,
                     protopipe_attrs: bool = False) -> None:
    """The original test's mock file: one table per camera, column ``n`` (Int16), n=0."""

    class Row(tables.IsDescription):
        n = tables.Int16Col(dflt=-1, pos=0)

    with tables.open_file(path, mode="w", title="Run_1") as h5:
        for camera in cameras:
            table = h5.create_table("/", camera, Row)
            table.append([(0,)] * rows)
        if protopipe_attrs:
            h5.root._v_attrs["status"] = "complete"
            h5.root._v_attrs["num_showers"] = 1000


# --- the original tool's three tests ------------------------------------------------------------
@pytest.mark.payload
def test_directory_tree(tmp_path: Path, protopipe_env: Path) -> None:
    workflow = tmp_path / "test_analysis_workflow.yaml"
    workflow.write_text(yaml.dump(STANDARD_WORKFLOW))
    ok(cli("CREATE_ANALYSIS", "--analysis_name", "test_analysis", "--analysis_directory_tree",
           workflow, "--GRID-is-DIRAC", "--GRID-home", "home_test", "--output_path", tmp_path,
           cwd=tmp_path))

    analysis = tmp_path / "shared_folder" / "analyses" / "test_analysis"
    metadata_file = analysis / "analysis_metadata.yaml"
    assert metadata_file.exists()
    metadata = yaml.load(metadata_file.read_text(), Loader=yaml.CLoader)  # noqa: S506 - as the original
    assert metadata["analysis_name"] == "test_analysis"
    assert metadata["analyses_directory"] == str(tmp_path / "shared_folder" / "analyses")
    assert metadata["GRID is DIRAC"] is True
    assert metadata["Home directory on the GRID"] == "home_test"
    assert metadata["analysis directory on the GRID from home"] == ""
    for folder in ("", "configs", "data/simtel", "data/TRAINING/for_energy_estimation/gamma",
                   "data/TRAINING/for_particle_classification/gamma",
                   "data/TRAINING/for_particle_classification/proton", "data/DL2/gamma",
                   "data/DL2/proton", "data/DL2/electron", "data/DL3",
                   "estimators/energy_regressor", "estimators/gamma_hadron_classifier"):
        assert (analysis / folder).exists(), folder
    # beyond the original test: the filled configs and the log
    assert (analysis / "configs" / "analysis.yaml").is_file()
    assert "test_analysis" in (analysis / "configs" / "grid.yaml").read_text()
    assert (analysis / "analysis.log").is_file()


def test_simple_split(tmp_path: Path) -> None:
    original = tmp_path / "original_list.list"
    original.write_text("".join(f"{i}\n" for i in range(10)))
    ok(cli("SPLIT_DATASET", "--input_gammas", original, "--split_gammas", "10", "10", "80",
           "--output_path", tmp_path, cwd=tmp_path))
    counts = {stage: len((tmp_path / f"original_list_{stage}.list").read_text().splitlines())
              for stage in ("TRAINING_ENERGY", "TRAINING_CLASSIFICATION", "PERFORMANCE")}
    assert counts == {"TRAINING_ENERGY": 1, "TRAINING_CLASSIFICATION": 1, "PERFORMANCE": 8}


def test_merge(tmp_path: Path) -> None:
    cameras = ["NectarCam", "CHEC"]
    for name in ("run1.h5", "run2.h5"):
        create_mock_file(tmp_path / name, cameras)
    result = cli("MERGE_FILES", "--indir", tmp_path, "--template_file_name", "*run*",
                 "--outfile", tmp_path / "merged_file.h5", cwd=tmp_path)
    ok(result)
    rows = dict.fromkeys(cameras, 0)
    for path in sorted(tmp_path.glob("*run*.h5")):
        with tables.open_file(path) as h5:
            assert sorted(t.name for t in h5.root) == sorted(cameras)
            for camera in cameras:
                rows[camera] += h5.get_node("/" + camera).nrows
    with tables.open_file(tmp_path / "merged_file.h5") as merged:
        for camera in cameras:
            assert merged.get_node("/" + camera).nrows == rows[camera] == 100


# --- CREATE_ANALYSIS ----------------------------------------------------------------------------
@pytest.mark.payload
def test_create_analysis_without_grid_is_dirac(tmp_path: Path, protopipe_env: Path) -> None:
    """Defect 12: the original crashed (NameError) without --GRID-is-DIRAC."""
    ok(cli("CREATE_ANALYSIS", "--analysis_name", "plain", "--output_path", tmp_path,
           cwd=tmp_path))
    root = tmp_path / "shared_folder" / "analyses" / "plain"
    metadata = yaml.safe_load((root / "analysis_metadata.yaml").read_text())
    assert metadata["GRID is DIRAC"] is False
    assert (root / "data" / "DL2" / "electron").is_dir()
    assert (tmp_path / "shared_folder" / "productions").is_dir()
    # a second creation is refused, and changes nothing
    grid = (root / "configs" / "grid.yaml").read_text()
    again = cli("CREATE_ANALYSIS", "--analysis_name", "plain", "--output_path", tmp_path,
                cwd=tmp_path)
    assert again.returncode != 0 and "--overwrite-analysis" in again.stderr
    assert (root / "configs" / "grid.yaml").read_text() == grid


# --- SPLIT_DATASET ------------------------------------------------------------------------------
def test_split_labels_by_particle_not_position(tmp_path: Path) -> None:
    """Defect 11: splitting only protons gave them the gammas' _TRAINING_ENERGY label."""
    protons = tmp_path / "protons.list"
    protons.write_text("".join(f"p{i}\n" for i in range(10)))
    ok(cli("SPLIT_DATASET", "--input_protons", protons, "--output_path", tmp_path / "out",
           cwd=tmp_path))
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["protons_PERFORMANCE.list", "protons_TRAINING_CLASSIFICATION.list"]
    assert len((tmp_path / "out" / "protons_TRAINING_CLASSIFICATION.list").read_text()
               .splitlines()) == 4


def test_split_with_metadata_fills_grid_yaml(ws: Workspace) -> None:
    gammas = ws.write_list("gamma.list", lfns(20))
    protons = ws.write_list("proton.list", lfns(10, "proton"))
    out = split(ws, "--input_gammas", gammas, "--input_protons", protons, "--seed", "3")
    assert "set in grid.yaml" in out
    grid = yaml.safe_load(ws.grid_yaml.read_text())
    simtel = ws.root / "data" / "simtel"
    assert grid["EnergyRegressor"]["gamma_list"] == str(simtel / "gamma_TRAINING_ENERGY.list")
    assert grid["Performance"]["proton_list"] == str(simtel / "proton_PERFORMANCE.list")
    # seeded: the same command gives the same lists, so running it again is fine
    before = (simtel / "gamma_PERFORMANCE.list").read_text()
    split(ws, "--input_gammas", gammas, "--seed", "3")
    assert (simtel / "gamma_PERFORMANCE.list").read_text() == before
    assert sorted(before.splitlines()) != before.splitlines()  # it was shuffled
    # a different split would replace them: refused without --overwrite
    other = cli("SPLIT_DATASET", "--metadata", ws.metadata, "--input_gammas", gammas,
                "--split_gammas", "50", "50", cwd=ws.dir)
    assert other.returncode == 2 and "--overwrite" in other.stderr
    assert (simtel / "gamma_PERFORMANCE.list").read_text() == before
    split(ws, "--input_gammas", gammas, "--split_gammas", "50", "50", "--overwrite")
    assert len((simtel / "gamma_TRAINING_CLASSIFICATION.list").read_text().splitlines()) == 10


# --- SUBMIT_JOBS --------------------------------------------------------------------------------
def test_submit_dry_run_shows_the_whole_plan(ws: Workspace) -> None:
    """Defect 1: --dry could never be switched on, and showed one job only."""
    ws.edit_grid("n_file_per_job: 10", "n_file_per_job: 2")
    set_list(ws, Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(45))
    names = [f"protopipe_ana_TRAINING_energy_gamma_run{100 + i}-run{101 + i}"
             for i in range(0, 44, 2)] + ["protopipe_ana_TRAINING_energy_gamma_run144"]
    assert len(names) == 23
    for dry in ("--dry=True", "--dry=true", "--dry"):
        out = ok(submit(ws, "--output_type=TRAINING", dry))
        assert "DRY RUN" in out
        for name in names:
            assert f"{name}:" in out
        assert "23 job(s) would be submitted" in out
    backend = ws.backend()
    assert backend.select_jobs() == []
    assert backend.list_directory(f"{backend.home()}/ana/data/TRAINING/for_energy_estimation/"
                                  "gamma") == []
    assert not (ws.root / "state.sqlite").exists()


def test_submit_test_mode_submits_exactly_one_job(ws: Workspace) -> None:
    """Defect 1: --test could never be switched on."""
    ws.edit_grid("n_file_per_job: 10", "n_file_per_job: 1")
    set_list(ws, Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(4))
    backend = ws.backend()
    out = ok(submit(ws, "--output_type=TRAINING", "--test=True"))
    assert "TEST RUN" in out and "1 job(s) have been submitted" in out
    assert len(backend.select_jobs()) == 1
    ok(submit(ws, "--output_type", "TRAINING", "--test"))  # the next one, not the same again
    ids = backend.select_jobs()
    assert len(ids) == 2
    names = {backend.job_spec(i)[0].name for i in ids}
    assert names == {"protopipe_ana_TRAINING_energy_gamma_run100",
                     "protopipe_ana_TRAINING_energy_gamma_run101"}
    # provenance: the analysis configuration next to the outputs, once
    config = f"{backend.home()}/ana/data/TRAINING/for_energy_estimation/gamma/analysis.yaml"
    assert config in backend.metadata([config])
    wait_final(backend, ids)


def test_submit_never_twice(ws: Workspace) -> None:
    """Defect 2: the original resubmitted jobs it did not see as running."""
    ws.edit_grid("n_file_per_job: 10", "n_file_per_job: 2")
    set_list(ws, Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(5))
    backend = ws.backend()
    out = ok(submit(ws, "--output_type=TRAINING"))
    assert "3 job(s) have been submitted" in out
    ids = backend.select_jobs()
    assert len(ids) == 3
    wait_final(backend, ids)  # they fail: the simulation files are not in the catalog
    again = ok(submit(ws, "--output_type=TRAINING"))
    assert "0 job(s) have been submitted" in again and "3 already submitted" in again
    assert backend.select_jobs() == ids
    store = Store(ws.root / "state.sqlite")
    try:
        assert {r.status for r in store.jobs()} == {JobStatus.FAILED}
    finally:
        store.close()


def test_jobs_delete_asks_first_then_deletes_final_jobs_too(ws: Workspace) -> None:
    ws.edit_grid("n_file_per_job: 10", "n_file_per_job: 2")
    set_list(ws, Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(3))
    backend = ws.backend()
    ok(submit(ws, "--output_type=TRAINING"))
    ids = backend.select_jobs()
    wait_final(backend, ids)  # they fail: the simulation files are not in the catalog
    delete = ["jobs", "delete", "--metadata", ws.metadata, *ws.backend_options()]

    refused = cli("grid", *delete, cwd=ws.dir)
    assert refused.returncode == 1
    assert "delete these 2 job(s)? [y/N] refused" in refused.stderr
    assert {s.status for s in backend.status(ids).values()} == {JobStatus.FAILED}

    assert "2 job(s) deleted" in ok(cli("grid", *delete, "--yes", cwd=ws.dir))
    assert {s.status for s in backend.status(ids).values()} == {JobStatus.DELETED}
    store = Store(ws.root / "state.sqlite")
    try:  # the analysis knows it too, although the jobs were final before
        assert {r.status for r in store.jobs()} == {JobStatus.DELETED}
    finally:
        store.close()


def test_submit_stage_follows_grid_yaml(ws: Workspace) -> None:
    set_list(ws, Stage.TRAINING_CLASSIFICATION, Particle.PROTON, lfns(12, "proton"))
    set_list(ws, Stage.DL2, Particle.ELECTRON, lfns(5, "electron"))
    backend = ws.backend()
    analysis = Analysis.open(ws.metadata).with_home(backend.home())
    models = analysis.plan_stage(backend, Stage.DL2, [Particle.ELECTRON])[0].input_data
    register_inputs(backend, models)
    # TRAINING + estimate_energy True: classification training, which needs the regressor
    ws.edit_grid('particle: "gamma"', 'particle: "proton"')
    ws.edit_grid("estimate_energy: False", "estimate_energy: True")
    out = ok(submit(ws, "--output_type=TRAINING", "--dry=True", "--max_events=50",
                    "--debug_script=True"))
    assert "protopipe_ana_TRAINING_classification_proton_run100-run109:" in out
    assert "protopipe_ana_TRAINING_classification_proton_run110-run111:" in out
    assert "regressor_LSTCam_RandomForestRegressor.pkl.gz" in out
    assert "classifier_" not in out
    # DL2 of electrons: both models as input data
    ws.edit_grid('particle: "proton"', 'particle: "electron"')
    out = ok(submit(ws, "--output_type=DL2", "--dry"))
    assert "protopipe_ana_DL2_electron_run100-run104:" in out
    assert "classifier_NectarCam_RandomForestClassifier.pkl.gz" in out
    assert "/data/DL2/electron/DL2_electron_tail_run100-run104.h5" in out


def test_submit_options_reach_the_jobs(ws: Workspace) -> None:
    ws.edit_grid("n_file_per_job: 10", "n_file_per_job: 3")
    set_list(ws, Stage.TRAINING_ENERGY, Particle.GAMMA, lfns(3))
    backend = NoRunner(ws.grid_root)
    ok(cli("SUBMIT_JOBS", "--analysis_path", ws.root, "--output_type", "TRAINING",
           "--test=true", "--max_events=7", "--debug_script", "--save_images=True",
           "--upload_analysis_cfg=False", "--tag=ctapipe", "--backend", "local",
           "--local-root", ws.grid_root, "--payload-env", PAYLOAD_ENV, cwd=ws.dir))
    # the queue runner (started by the CLI) runs it; read the spec the job was submitted with
    (job_id,) = backend.select_jobs()
    spec, _ = backend.job_spec(job_id)
    first = spec.steps[0]
    assert first[0] == "protopipe-TRAINING"
    assert first[first.index("--max_events") + 1] == "7"
    assert "--debug" in first and "--save_images" in first
    assert spec.steps[-1][:2] == ("python", "merge_tables.py")
    assert spec.tags == ("ctapipe",)
    config = f"{backend.home()}/ana/data/TRAINING/for_energy_estimation/gamma/analysis.yaml"
    assert backend.metadata([config]) == {}
    wait_final(backend, [job_id])


# --- DOWNLOAD_AND_MERGE, MERGE_FILES ------------------------------------------------------------
def test_download_and_merge(ws: Workspace) -> None:
    backend = ws.backend()
    lfn_dir = f"{backend.home()}/ana/data/TRAINING/for_energy_estimation/gamma"
    source = ws.dir / "outputs"
    source.mkdir()
    for run in (101, 102, 103):
        name = f"TRAINING_energy_gamma_tail_run{run}.h5"
        create_mock_file(source / name, ["LSTCam"], rows=10, protopipe_attrs=True)
        backend.put_file(source / name, f"{lfn_dir}/{name}", "LOCAL-SE")
    args = ["--metadata", ws.metadata, "--data_type", "TRAINING/for_energy_estimation",
            "--particle_types", "gamma", "--n_jobs", "2", *ws.backend_options()]
    out = ok(cli("DOWNLOAD_AND_MERGE", *args, cwd=ws.dir))
    local = ws.root / "data" / "TRAINING" / "for_energy_estimation" / "gamma"
    assert "3 fetched" in out
    merged = local / "TRAINING_energy_tail_gamma_merged.h5"
    with tables.open_file(merged) as h5:
        assert h5.root.LSTCam.nrows == 30
        assert int(h5.root._v_attrs["num_showers"]) == 3000
    # again: nothing fetched twice, and the merged file (the same inputs) is up to date;
    # one this analysis did not make is not replaced without --overwrite
    assert "3 already present" in ok(cli("DOWNLOAD_AND_MERGE", *args, cwd=ws.dir))
    merged.write_bytes(b"made by hand")
    again = cli("DOWNLOAD_AND_MERGE", *args, cwd=ws.dir)
    assert again.returncode == 4 and "--overwrite" in again.stderr
    assert "0 fetched" in ok(cli("DOWNLOAD_AND_MERGE", *args, "--overwrite", cwd=ws.dir))
    # without --metadata, as the original: --local_path + --analysis_name (+ --GRID-home)
    merged.unlink()
    ok(cli("DOWNLOAD_AND_MERGE", "--local_path", ws.dir / "ws", "--analysis_name", "ana",
           "--GRID-home", backend.home(), "--data_type", "TRAINING/for_energy_estimation",
           "--particle_types", "gamma", "--disable_download", *ws.backend_options(),
           cwd=ws.dir))
    assert merged.is_file()


def test_merge_files_of_protopipe_outputs(tmp_path: Path) -> None:
    for run in (1, 2, 3):
        create_mock_file(tmp_path / f"DL2_gamma_tail_run{run}.h5", ["reco_events"],
                         rows=5, protopipe_attrs=True)
    out = ok(cli("MERGE_FILES", "--indir", tmp_path, "--template_file_name", "DL2_gamma_tail",
                 "--outfile", tmp_path / "DL2_tail_gamma_merged.h5", cwd=tmp_path))
    assert "3 of 3 file(s) merged" in out
    with tables.open_file(tmp_path / "DL2_tail_gamma_merged.h5") as h5:
        assert h5.root.reco_events.nrows == 15
    # the output is never one of the inputs, and is not replaced without --overwrite
    again = cli("MERGE_FILES", "--indir", tmp_path, "--template_file_name", "DL2_",
                "--outfile", tmp_path / "DL2_tail_gamma_merged.h5", cwd=tmp_path)
    assert again.returncode != 0 and "--overwrite" in again.stderr


# --- UPLOAD_MODELS, UPLOAD_FILE, DOWNLOAD_FILES, DELETE_FILES -----------------------------------
def test_upload_models(ws: Workspace) -> None:
    (ws.root / "configs" / "RandomForestRegressor.yaml").write_text("General: {}\n")
    for camera in ("LSTCam", "NectarCam"):
        (ws.root / "estimators" / "energy_regressor" /
         f"regressor_{camera}_RandomForestRegressor.pkl.gz").write_bytes(camera.encode() * 10)
    args = ["--metadata", ws.metadata, "--cameras", "LSTCam", "NectarCam", "--model_type",
            "regressor", "--model_name", "RandomForestRegressor", "--SE", "LOCAL-SE",
            "--list-of-SEs", "LOCAL-SE2", *ws.backend_options()]
    out = ok(cli("UPLOAD_MODELS", *args, cwd=ws.dir))
    assert "3 uploaded" in out and "3 replica(s)" in out
    backend = ws.backend()
    found = backend.list_directory(f"{backend.home()}/ana/estimators")
    assert sorted(f.lfn.rsplit("/", 1)[1] for f in found) == [
        "RandomForestRegressor.yaml", "regressor_LSTCam_RandomForestRegressor.pkl.gz",
        "regressor_NectarCam_RandomForestRegressor.pkl.gz"]
    assert all(f.replicas == ("LOCAL-SE", "LOCAL-SE2") for f in found)
    assert "3 unchanged" in ok(cli("UPLOAD_MODELS", *args, cwd=ws.dir))


def test_upload_file(tmp_path: Path) -> None:
    """Defect 9: the original always crashed."""
    backend = LocalBackend(tmp_path / "grid")
    (tmp_path / "notes.txt").write_text("first")
    args = ["--indir", tmp_path, "--infile", "notes.txt", "--outdir",
            f"{backend.home()}/misc", "--SE", "LOCAL-SE2", "--local-root", tmp_path / "grid"]
    lfn = f"{backend.home()}/misc/notes.txt"
    assert lfn in ok(cli("UPLOAD_FILE", *args, "--dry-run", cwd=tmp_path))
    assert backend.metadata([lfn]) == {}
    assert "uploaded" in ok(cli("UPLOAD_FILE", *args, cwd=tmp_path))
    assert backend.metadata([lfn])[lfn].replicas == ("LOCAL-SE2",)
    assert "same content" in ok(cli("UPLOAD_FILE", *args, cwd=tmp_path))
    (tmp_path / "notes.txt").write_text("second")
    refused = cli("UPLOAD_FILE", *args, cwd=tmp_path)
    assert refused.returncode != 0 and "--overwrite" in refused.stderr
    ok(cli("UPLOAD_FILE", *args, "--overwrite", cwd=tmp_path))
    backend.get_file(lfn, tmp_path / "back.txt")
    assert (tmp_path / "back.txt").read_text() == "second"


def put_files(backend: LocalBackend, folder: Path, lfn_dir: str, names: Sequence[str]
              ) -> list[str]:
    folder.mkdir(exist_ok=True)
    put = []
    for name in names:
        (folder / name).write_text(name * 3)
        backend.put_file(folder / name, f"{lfn_dir}/{name}", "LOCAL-SE")
        put.append(f"{lfn_dir}/{name}")
    return put


def test_download_files(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "grid")
    lfn_dir = f"{backend.home()}/results"
    put_files(backend, tmp_path / "src", lfn_dir, [f"f{i}.h5" for i in range(5)])
    out = ok(cli("DOWNLOAD_FILES", "--indir", lfn_dir, "--outdir", tmp_path / "dst",
                 "--local-root", tmp_path / "grid", cwd=tmp_path))
    assert "5 fetched" in out
    for i in range(5):
        assert (tmp_path / "dst" / f"f{i}.h5").read_text() == f"f{i}.h5" * 3
    assert not list((tmp_path / "dst").glob("*.part"))


def test_delete_files_asks_first(tmp_path: Path) -> None:
    """Defect 10: the original deleted a whole folder without asking, then reported failure."""
    backend = LocalBackend(tmp_path / "grid")
    lfn_dir = f"{backend.home()}/old"
    put = put_files(backend, tmp_path / "src", lfn_dir, ["a.h5", "b.h5"])
    args = ["--indir", lfn_dir, "--local-root", tmp_path / "grid"]
    refused = cli("DELETE_FILES", *args, cwd=tmp_path)  # no terminal, no --yes: refused
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert all(lfn in refused.stdout for lfn in put)
    assert ok(cli("DELETE_FILES", *args, "--dry-run", cwd=tmp_path))
    assert len(backend.metadata(put)) == 2
    out = ok(cli("DELETE_FILES", *args, "--yes", cwd=tmp_path))
    assert "2 file(s) removed" in out and "Delete file from:" in out
    assert backend.metadata(put) == {}
    assert not list((tmp_path / "grid" / "se").rglob("*.h5"))


# --- GET_INPUT_LFNS, FILTER-REPLICAS, FORCE_JOB_TO_FAILED ---------------------------------------
def spec(name: str, group: str = "ana", inputs: Sequence[str] = (),
         data: Sequence[str] = ()) -> JobSpec:
    return JobSpec(name=name, analysis=group, stage=Stage.DL2, particle=Particle.GAMMA,
                   input_lfns=tuple(inputs), steps=(("true",),), output_file="out.h5",
                   output_lfn=f"/vo.cta.in2p3.fr/user/t/tester/{name}.h5", output_se="LOCAL-SE",
                   input_data=tuple(data))


def test_get_input_lfns(tmp_path: Path) -> None:
    backend = NoRunner(tmp_path / "grid")
    inputs = lfns(3)
    models = ["/vo.cta.in2p3.fr/user/t/tester/ana/estimators/RandomForestRegressor.yaml"]
    (job_id,) = backend.submit([spec("j1", inputs=inputs, data=models)])
    ok(cli("GET_INPUT_LFNS", "--job_id", job_id, "--local-root", tmp_path / "grid",
           cwd=tmp_path))
    assert (tmp_path / f"{job_id}_FLNs.list").read_text().splitlines() == inputs
    ok(cli("GET_INPUT_LFNS", f"--job_id={job_id}", "--output_file=mine.list",
           "--local-root", tmp_path / "grid", cwd=tmp_path))
    assert (tmp_path / "mine.list").read_text().splitlines() == inputs
    # defect 14: a failure is reported, not swallowed
    missing = cli("GET_INPUT_LFNS", "--job_id", job_id + 100, "--local-root", tmp_path / "grid",
                  cwd=tmp_path)
    assert missing.returncode != 0 and str(job_id + 100) in missing.stderr


def test_filter_replicas(tmp_path: Path) -> None:
    """Defect 8: the original always exited with "List of SEs is missing"."""
    backend = LocalBackend(tmp_path / "grid")
    folder = f"{backend.home()}/mc"
    names = [f"gamma_20deg_0deg_run{i}___x.simtel.zst" for i in range(6)]
    put = put_files(backend, tmp_path / "src", folder, names)
    for lfn in put[::2]:
        backend.replicate(lfn, "LOCAL-SE2")
    listing = tmp_path / "all.list"
    listing.write_text("".join(f"{lfn}\n" for lfn in [*put, f"{folder}/not_there.simtel"]))
    out = ok(cli("FILTER-REPLICAS", f"--input_list={listing}", "--filter_disks=LOCAL-SE2",
                 "--outfile=kept.list", "--n_cpu=2", "--local-root", tmp_path / "grid",
                 cwd=tmp_path))
    assert "3 of 7" in out
    assert (tmp_path / "kept.list").read_text().splitlines() == put[::2]
    ok(cli("FILTER-REPLICAS", f"--input_list={listing}", "--filter_disks=LOCAL-SE2",
           "--max_files=2", "--local-root", tmp_path / "grid", cwd=tmp_path))
    assert (tmp_path / "outfile.list").read_text().splitlines() == put[:1]


def test_force_job_to_failed(tmp_path: Path) -> None:
    """Defect 13: no confirmation, and by default every job of the day in any status."""
    backend = NoRunner(tmp_path / "grid")
    ids = backend.submit([spec("a1"), spec("a2"), spec("b1", "other")])  # groups ana.DL2, other.DL2
    # stuck jobs, what the command is for (Stalled: the local queue runner leaves them alone)
    for job_id in ids:
        backend.set_status(job_id, JobStatus.STALLED, "Job stalled: no heartbeat")
    backend.set_status(ids[1], JobStatus.DONE, "Execution Complete")
    base = ["--local-root", tmp_path / "grid"]
    unscoped = cli("FORCE_JOB_TO_FAILED", *base, "--yes", cwd=tmp_path)
    assert unscoped.returncode == 2 and "--Status" in unscoped.stderr
    refused = cli("FORCE_JOB_TO_FAILED", "--JobGroup=ana.DL2", *base, cwd=tmp_path)
    assert refused.returncode == 1
    assert "Selected 2 jobs" in refused.stdout and "already final" in refused.stdout
    assert backend.status(ids)[ids[0]].status == JobStatus.STALLED
    out = ok(cli("FORCE_JOB_TO_FAILED", "--JobGroup=ana.DL2", "--yes", *base, cwd=tmp_path))
    assert "1 job(s) set to Failed" in out
    states = backend.status(ids)
    assert [states[i].status for i in ids] == [JobStatus.FAILED, JobStatus.DONE,
                                               JobStatus.STALLED]
    out = ok(cli("FORCE_JOB_TO_FAILED", "--Status=Stalled", "--Date=2000-01-01", "--yes", *base,
                 cwd=tmp_path))
    assert "No jobs were selected" in out
    out = ok(cli("FORCE_JOB_TO_FAILED", "--Status", "Stalled", "--Owner=somebody_else",
                 "--yes", *base, cwd=tmp_path))
    assert "No jobs were selected" in out
    ok(cli("FORCE_JOB_TO_FAILED", "--Status=Stalled", "--yes=True", *base, cwd=tmp_path))
    assert backend.status([ids[2]])[ids[2]].status == JobStatus.FAILED
