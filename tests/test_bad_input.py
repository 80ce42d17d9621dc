"""Bad input, across ``protopipe-grid`` and the legacy ``protopipe-*`` commands.

Every case runs a console script as a user would, on a fresh small analysis, and asserts:

- a non-zero exit code;
- stderr is exactly one non-empty line, with no traceback anywhere, naming the offending file,
  key or argument;
- nothing half-written: every file of the workspace (the analysis, its configs, list files,
  outputs, the local grid's storage) is exactly as before, and no ``*.part`` is left behind.

The cases run concurrently (one subprocess each) once per module; each test checks one case.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from analysis_configs import register_inputs, write_configs

from protopipe_grid_interface.backends.local import LocalBackend
from protopipe_grid_interface.config import set_yaml_values
from protopipe_grid_interface.models import Particle, Stage
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.tree import create_analysis

BIN = Path(sys.executable).parent
GOOD = [f"/vo.cta.in2p3.fr/MC/gamma_20deg_0deg_run{100 + i}___cta-prod3.simtel.zst"
        for i in range(3)]


@dataclass
class Workspace:
    """A fresh analysis ``ana`` (energy-training gamma list set in grid.yaml) and a local grid."""

    dir: Path

    @property
    def root(self) -> Path:
        return self.dir / "ws" / "shared_folder" / "analyses" / "ana"

    @property
    def grid_yaml(self) -> Path:
        return self.root / "configs" / "grid.yaml"

    @property
    def metadata(self) -> Path:
        return self.root / "analysis_metadata.yaml"

    @property
    def energy_list(self) -> Path:
        return self.root / "data" / "simtel" / "gamma_TRAINING_ENERGY.list"

    def replace(self, path: Path, old: str, new: str) -> None:
        text = path.read_text()
        assert old in text, f"{old!r} not in {path}"
        path.write_text(text.replace(old, new))

    def write(self, relative: str, text: str) -> Path:
        path = self.dir / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    def context(self) -> dict[str, str]:
        return {"dir": str(self.dir), "root": str(self.root), "metadata": str(self.metadata),
                "grid": str(self.dir / "grid"), "list": str(self.energy_list)}


def make_workspace(folder: Path) -> Workspace:
    folder.mkdir(parents=True)
    tree = create_analysis(folder / "ws", "ana", None)
    write_configs(tree.configs)
    ws = Workspace(folder)
    ws.energy_list.write_text("".join(f"{lfn}\n" for lfn in GOOD))
    assert Analysis.open(ws.metadata).set_list_file(Stage.TRAINING_ENERGY, Particle.GAMMA,
                                                   ws.energy_list)
    register_inputs(LocalBackend(ws.dir / "grid"), GOOD)
    return ws


Setup = Callable[[Workspace], object]


@dataclass(frozen=True)
class Case:
    id: str
    command: str  # "grid" for protopipe-grid, else the legacy name after "protopipe-"
    args: tuple[str, ...]
    expect: str  # must appear in the stderr line
    setup: Setup | None = None
    backend: bool = True  # append --backend local --local-root <grid>

    def argv(self, ws: Workspace) -> list[str]:
        program = "protopipe-grid" if self.command == "grid" else f"protopipe-{self.command}"
        args = [a.format(**ws.context()) for a in self.args]
        if self.backend:
            args += ["--backend", "local", "--local-root", str(ws.dir / "grid")]
        return [str(BIN / program), *args]


def grid_edit(old: str, new: str) -> Setup:
    return lambda ws: ws.replace(ws.grid_yaml, old, new)


def metadata_edit(old: str, new: str) -> Setup:
    return lambda ws: ws.replace(ws.metadata, old, new)


def list_entries(*entries: str) -> Setup:
    return lambda ws: ws.energy_list.write_text("".join(f"{e}\n" for e in entries))


def config_value(file: str, keys: tuple[str, ...], value: object) -> Setup:
    return lambda ws: set_yaml_values(ws.root / "configs" / file, {keys: value})


def template_showers(ws: Workspace) -> None:
    set_yaml_values(ws.root / "configs" / "performance.yaml", {
        ("particle_information", "gamma", "num_use"): 10,
        ("particle_information", "gamma", "num_showers"): 20000})


def model_files(ws: Workspace) -> None:
    (ws.root / "configs" / "RandomForestRegressor.yaml").write_text("General: {}\n")


GRID_SUBMIT = ("jobs", "submit", "--metadata", "{metadata}", "--stage", "training-energy",
               "--dry-run")
SUBMIT = ("--analysis_path={root}", "--output_type=TRAINING", "--dry=True")
UPLOAD = ("--indir", "{dir}", "--infile", "notes.txt", "--outdir", "/vo.cta.in2p3.fr/user/t/x",
          "--SE", "LOCAL-SE")
SPLIT_OUT = ("--output_path", "{dir}/out")
MODELS = ("--metadata", "{metadata}", "--cameras", "LSTCam", "--model_type", "regressor",
          "--model_name", "RandomForestRegressor", "--SE", "LOCAL-SE", "--list-of-SEs")


def notes(ws: Workspace) -> None:
    ws.write("notes.txt", "some notes")


CASES = [
    # --- protopipe-grid: configuration files -----------------------------------------------
    Case("grid-yaml-unknown-key", "grid", GRID_SUBMIT, "n_file_per_jobs",
         grid_edit("n_file_per_job: 10", "n_file_per_jobs: 10")),
    Case("grid-yaml-invalid-yaml", "grid", GRID_SUBMIT, "grid.yaml",
         lambda ws: ws.grid_yaml.write_text("General: [unclosed\n  mode: tail\n")),
    Case("grid-yaml-not-a-mapping", "grid", GRID_SUBMIT, "grid.yaml",
         lambda ws: ws.grid_yaml.write_text("- General\n- GRID\n")),
    Case("grid-yaml-n_file_per_job-zero", "grid", GRID_SUBMIT, "n_file_per_job",
         grid_edit("n_file_per_job: 10", "n_file_per_job: 0")),
    Case("metadata-missing-key", "grid", GRID_SUBMIT, "analyses_directory",
         lambda ws: ws.metadata.write_text("analysis_name: ana\n")),
    Case("metadata-missing-file", "grid", GRID_SUBMIT, "analysis_metadata.yaml",
         lambda ws: ws.metadata.unlink()),
    Case("grid-unknown-stage", "grid",
         ("jobs", "submit", "--metadata", "{metadata}", "--stage", "dl3", "--dry-run"),
         "--stage"),
    Case("grid-files-per-job-zero", "grid", (*GRID_SUBMIT, "--files-per-job", "0"),
         "--files-per-job"),
    Case("grid-particle-not-in-stage", "grid", (*GRID_SUBMIT, "--particle", "proton"),
         "--particle"),
    Case("grid-missing-list-file", "grid",
         (*GRID_SUBMIT, "--particle", "gamma", "--list", "{dir}/nope.list"), "nope.list"),
    Case("grid-list-not-text", "grid", GRID_SUBMIT,
         "gamma_TRAINING_ENERGY.list: not a text file",
         lambda ws: ws.energy_list.write_bytes(b"/vo/a.simtel.gz\n\xff\xfe binary\n")),
    Case("grid-yaml-not-text", "grid", GRID_SUBMIT, "grid.yaml: not a text file",
         lambda ws: ws.grid_yaml.write_bytes(b"General:\n  mode: \xff\n")),
    Case("grid-split-overwrites-a-different-list", "grid",
         ("dataset", "split", "--metadata", "{metadata}", "--gammas", "{dir}/gamma.list",
          "--split-gammas", "50", "50"), "gamma_TRAINING_ENERGY.list already exists",
         lambda ws: ws.write("gamma.list", "".join(f"{lfn}\n" for lfn in GOOD)),
         backend=False),
    Case("grid-split-sum", "grid",
         ("dataset", "split", "--metadata", "{metadata}", "--gammas", "{list}",
          "--split-gammas", "50", "40"), "--split-gammas", backend=False),
    Case("grid-verify-nothing-to-verify", "grid", ("data", "verify"), "nothing to verify"),
    Case("grid-verify-stage-and-folder", "grid",
         ("data", "verify", "--metadata", "{metadata}", "--stage", "training-energy",
          "--local-dir", "{dir}"), "--local-dir"),
    Case("grid-verify-stage-without-metadata", "grid",
         ("data", "verify", "--stage", "training-energy"), "--metadata"),
    Case("grid-verify-particle-not-in-stage", "grid",
         ("data", "verify", "--metadata", "{metadata}", "--stage", "training-energy",
          "--particle", "proton"), "--particle"),
    Case("grid-verify-missing-local-dir", "grid",
         ("data", "verify", "--local-dir", "{dir}/nowhere", "--lfn-path",
          "/vo.cta.in2p3.fr/user/t/x"), "nowhere"),
    Case("grid-verify-folder-without-lfn-path", "grid",
         ("data", "verify", "--local-dir", "{dir}"), "--lfn-path"),
    Case("grid-verify-relative-lfn-path", "grid",
         ("data", "verify", "--local-dir", "{dir}", "--lfn-path", "data/DL2"), "--lfn-path"),
    # --- protopipe-SUBMIT_JOBS -------------------------------------------------------------
    Case("submit-missing-analysis-folder", "SUBMIT_JOBS",
         ("--analysis_path={dir}/nowhere", "--output_type=TRAINING", "--dry=True"),
         "--analysis_path"),
    Case("submit-bad-output-type", "SUBMIT_JOBS",
         ("--analysis_path={root}", "--output_type=TRAIN", "--dry=True"), "--output_type"),
    Case("submit-bad-boolean", "SUBMIT_JOBS", (*SUBMIT[:2], "--dry=maybe"), "--dry"),
    Case("submit-max-events-zero", "SUBMIT_JOBS", (*SUBMIT, "--max_events=0"), "--max_events"),
    Case("submit-wrong-particle", "SUBMIT_JOBS", SUBMIT, "General.particle",
         grid_edit('particle: "gamma"', 'particle: "muon"')),
    Case("submit-particle-not-in-stage", "SUBMIT_JOBS", SUBMIT, "General.particle",
         grid_edit('particle: "gamma"', 'particle: "electron"')),
    Case("submit-n_jobs_max-zero", "SUBMIT_JOBS", SUBMIT, "n_jobs_max",
         grid_edit("n_jobs_max: -1", "n_jobs_max: 0")),
    Case("submit-list-not-set", "SUBMIT_JOBS",
         ("--analysis_path={root}", "--output_type=DL2", "--dry=True"),
         "Performance.gamma_list"),
    Case("submit-missing-list-file", "SUBMIT_JOBS", SUBMIT, "gamma_TRAINING_ENERGY.list",
         lambda ws: ws.energy_list.unlink()),
    Case("submit-lfn-with-space", "SUBMIT_JOBS", SUBMIT, "gamma_TRAINING_ENERGY.list:2",
         list_entries(GOOD[0], "/vo.cta.in2p3.fr/MC/gamma run101.simtel.zst")),
    Case("submit-lfn-shell-metacharacters", "SUBMIT_JOBS", SUBMIT,
         "gamma_TRAINING_ENERGY.list:1", list_entries("/vo.cta.in2p3.fr/MC/a;rm -rf ~")),
    Case("submit-lfn-command-substitution", "SUBMIT_JOBS", SUBMIT,
         "gamma_TRAINING_ENERGY.list:3",
         list_entries(*GOOD[:2], "/vo.cta.in2p3.fr/MC/$(reboot).simtel.zst")),
    Case("submit-duplicate-lfn", "SUBMIT_JOBS", SUBMIT, "duplicate LFN",
         list_entries(*GOOD, GOOD[1])),
    Case("submit-empty-list", "SUBMIT_JOBS", SUBMIT, "gamma_TRAINING_ENERGY.list",
         list_entries("# nothing yet")),
    Case("submit-metadata-invalid-yaml", "SUBMIT_JOBS", SUBMIT, "analysis_metadata.yaml",
         lambda ws: ws.metadata.write_text("analysis_name: [ana\n")),
    Case("submit-metadata-bad-name", "SUBMIT_JOBS", SUBMIT, "analysis_name",
         metadata_edit("analysis_name: ana", "analysis_name: my ana")),
    Case("submit-metadata-other-folder", "SUBMIT_JOBS", SUBMIT, "--analysis_path",
         metadata_edit("analysis_name: ana", "analysis_name: another")),
    Case("submit-analysis-yaml-invalid", "SUBMIT_JOBS", SUBMIT, "analysis.yaml",
         lambda ws: (ws.root / "configs" / "analysis.yaml").write_text("General: {\n")),
    Case("submit-no-cameras", "SUBMIT_JOBS", SUBMIT, "analysis.yaml: General.cam_id_list: empty",
         config_value("analysis.yaml", ("General", "cam_id_list"), [])),
    # what the payload would fail on, refused by the dry-run before any job leaves
    Case("dry-run-site-misspelt", "grid", GRID_SUBMIT, "analysis.yaml: General.site: 'sout'",
         config_value("analysis.yaml", ("General", "site"), "sout")),
    Case("dry-run-array-empty", "grid", GRID_SUBMIT, "analysis.yaml: General.array: empty",
         config_value("analysis.yaml", ("General", "array"), [])),
    Case("dry-run-unknown-production", "grid", GRID_SUBMIT, "General.production: 'Prod6'",
         config_value("analysis.yaml", ("General", "production"), "Prod6")),
    Case("dry-run-no-cameras", "grid", GRID_SUBMIT, "analysis.yaml: General.cam_id_list: empty",
         config_value("analysis.yaml", ("General", "cam_id_list"), [])),
    Case("dry-run-unknown-camera", "grid", GRID_SUBMIT, "'LSTcam' is not a camera type",
         config_value("analysis.yaml", ("General", "cam_id_list"), ["LSTcam"])),
    Case("dry-run-template-showers", "grid", GRID_SUBMIT,
         "performance.yaml: particle_information.gamma.num_use, num_showers: 10 x 20000 are "
         "protopipe's example numbers", template_showers),
    Case("dry-run-input-not-in-catalog", "grid", GRID_SUBMIT,
         "/vo.cta.in2p3.fr/MC/gamma_20deg_0deg_run999___cta-prod3.simtel.zst: not in the local "
         "catalog", list_entries(*GOOD, "/vo.cta.in2p3.fr/MC/gamma_20deg_0deg_run999___cta-prod3"
                                 ".simtel.zst")),
    Case("submit-site-misspelt", "SUBMIT_JOBS", SUBMIT, "General.site: 'sout'",
         config_value("analysis.yaml", ("General", "site"), "sout")),
    # --- protopipe-SPLIT_DATASET -----------------------------------------------------------
    Case("split-sum-not-100", "SPLIT_DATASET",
         ("--input_gammas", "{list}", "--split_gammas", "10", "10", "70", *SPLIT_OUT),
         "--split_gammas"),
    Case("split-too-many-percentages", "SPLIT_DATASET",
         ("--input_protons", "{list}", "--split_protons", "10", "10", "80", *SPLIT_OUT),
         "--split_protons"),
    Case("split-missing-list-file", "SPLIT_DATASET",
         ("--input_gammas", "{dir}/nope.list", *SPLIT_OUT), "nope.list"),
    Case("split-no-destination", "SPLIT_DATASET", ("--input_gammas", "{list}"),
         "--output_path"),
    Case("split-two-destinations", "SPLIT_DATASET",
         ("--input_gammas", "{list}", "--metadata", "{metadata}", *SPLIT_OUT), "--metadata"),
    Case("split-shell-metacharacters", "SPLIT_DATASET",
         ("--input_gammas", "{dir}/g.list", *SPLIT_OUT), "g.list:2",
         lambda ws: ws.write("g.list", "run1\nrun2`id`\n")),
    Case("split-second-list-bad", "SPLIT_DATASET",  # the gammas are not written either
         ("--input_gammas", "{list}", "--input_protons", "{dir}/p.list", *SPLIT_OUT),
         "p.list:2", lambda ws: ws.write("p.list", "/vo/p1\n/vo/p1\n")),
    Case("split-outputs-collide", "SPLIT_DATASET",
         ("--input_gammas", "{dir}/a/x.list", "--input_electrons", "{dir}/b/x.list",
          *SPLIT_OUT), "x_PERFORMANCE.list",
         lambda ws: (ws.write("a/x.list", "/vo/g1\n"), ws.write("b/x.list", "/vo/e1\n"))),
    # --- protopipe-CREATE_ANALYSIS ---------------------------------------------------------
    Case("create-invalid-name", "CREATE_ANALYSIS",
         ("--analysis_name", "my analysis", "--output_path", "{dir}/new"), "--analysis_name"),
    Case("create-tree-invalid-yaml", "CREATE_ANALYSIS",
         ("--analysis_name", "x", "--output_path", "{dir}/new", "--analysis_directory_tree",
          "{dir}/tree.yaml"), "tree.yaml",
         lambda ws: ws.write("tree.yaml", "data: [simtel\n")),
    # --- protopipe-UPLOAD_FILE / UPLOAD_MODELS ---------------------------------------------
    Case("upload-unknown-se", "UPLOAD_FILE", (*UPLOAD[:-1], "NOPE-SE"), "NOPE-SE", notes),
    Case("upload-missing-file", "UPLOAD_FILE", UPLOAD, "notes.txt"),
    Case("upload-lfn-with-space", "UPLOAD_FILE",
         ("--indir", "{dir}", "--infile", "notes.txt", "--outdir", "/vo.cta.in2p3.fr/my dir"),
         "invalid LFN", notes),
    Case("upload-infile-is-a-path", "UPLOAD_FILE",
         ("--indir", "{dir}", "--infile", "../notes.txt", "--outdir", "/vo.cta.in2p3.fr/x"),
         "--infile", notes),
    Case("models-file-missing", "UPLOAD_MODELS", (*MODELS, "LOCAL-SE2"),
         "regressor_LSTCam_RandomForestRegressor.pkl.gz", model_files),
    Case("models-type-mismatch", "UPLOAD_MODELS",
         ("--metadata", "{metadata}", "--cameras", "LSTCam", "--model_type", "classifier",
          "--model_name", "RandomForestRegressor"), "--model_name"),
    Case("models-unknown-se", "UPLOAD_MODELS", (*MODELS, "LOCAL-SE2", "BAD-SE"), "BAD-SE",
         model_files),
    # --- protopipe-DOWNLOAD_AND_MERGE / MERGE_FILES / DOWNLOAD_FILES / DELETE_FILES --------
    Case("download-bad-data-type", "DOWNLOAD_AND_MERGE",
         ("--metadata", "{metadata}", "--data_type", "DL3", "--particle_types", "gamma"),
         "--data_type"),
    Case("download-particle-not-in-data-type", "DOWNLOAD_AND_MERGE",
         ("--metadata", "{metadata}", "--data_type", "TRAINING/for_energy_estimation",
          "--particle_types", "gamma", "electron"), "--particle_types"),
    Case("download-missing-analysis-folder", "DOWNLOAD_AND_MERGE",
         ("--local_path", "{dir}/ws", "--analysis_name", "other", "--data_type", "DL2",
          "--particle_types", "gamma"), "other"),
    Case("merge-nothing-matches", "MERGE_FILES",
         ("--indir", "{dir}", "--template_file_name", "DL2_", "--outfile", "{dir}/m.h5"),
         "DL2_*.h5"),
    Case("merge-missing-indir", "MERGE_FILES",
         ("--indir", "{dir}/nowhere", "--outfile", "{dir}/m.h5"), "--indir"),
    Case("download-files-nothing-there", "DOWNLOAD_FILES",
         ("--indir", "/vo.cta.in2p3.fr/user/t/nothing", "--outdir", "{dir}/dl"), "nothing"),
    Case("delete-relative-path", "DELETE_FILES", ("--indir", "data/DL2", "--yes"),
         "invalid LFN"),
    Case("delete-nothing-there", "DELETE_FILES",
         ("--indir", "/vo.cta.in2p3.fr/user/t/empty", "--yes"), "empty"),
    # --- protopipe-GET_INPUT_LFNS / FILTER-REPLICAS / FORCE_JOB_TO_FAILED ------------------
    Case("lfns-job-id-not-a-number", "GET_INPUT_LFNS", ("--job_id", "abc"), "--job_id"),
    Case("lfns-unknown-job", "GET_INPUT_LFNS", ("--job_id", "999"), "999"),
    Case("filter-no-disks", "FILTER-REPLICAS", ("--input_list={list}",), "--filter_disks"),
    Case("filter-max-files-zero", "FILTER-REPLICAS",
         ("--input_list={list}", "--filter_disks=LOCAL-SE", "--max_files=0"), "--max_files"),
    Case("filter-list-with-pipe", "FILTER-REPLICAS",
         ("--input_list={list}", "--filter_disks=LOCAL-SE"), "gamma_TRAINING_ENERGY.list:2",
         list_entries(GOOD[0], "/vo.cta.in2p3.fr/MC/x|mail")),
    Case("fail-unscoped", "FORCE_JOB_TO_FAILED", ("--yes",), "--Status"),
    Case("fail-bad-date", "FORCE_JOB_TO_FAILED", ("--Status=Waiting", "--Date=2024-13-45"),
         "--Date"),
    Case("fail-bad-status", "FORCE_JOB_TO_FAILED", ("--Status=Runing", "--yes"), "--Status"),
]


@dataclass
class Outcome:
    returncode: int
    stdout: str
    stderr: str
    changed: list[str] = field(default_factory=list)


def snapshot(folder: Path) -> dict[str, str]:
    """Every file and folder below ``folder`` with a content hash; the local catalog database
    and queue-runner files (created by merely opening the local backend) are left out."""
    state = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if relative == "grid" or relative.startswith("grid/") and not relative.startswith(
                "grid/se"):
            continue
        state[relative] = (hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file()
                           else "folder")
    return state


def run_case(case: Case, ws: Workspace) -> Outcome:
    before = snapshot(ws.dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGI_")}
    env["PGI_LOCAL_ROOT"] = str(ws.dir / "grid")
    result = subprocess.run(  # noqa: S603 - fixed argument list
        case.argv(ws), cwd=ws.dir, env=env, text=True, capture_output=True,
        stdin=subprocess.DEVNULL, timeout=120, check=False)
    after = snapshot(ws.dir)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    return Outcome(result.returncode, result.stdout, result.stderr, changed)


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run every case once, concurrently (the cases are independent)."""
    base = tmp_path_factory.mktemp("bad-input")
    workspaces = {}
    for case in CASES:
        ws = make_workspace(base / case.id)
        if case.setup is not None:
            case.setup(ws)
        workspaces[case.id] = ws
    with ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2)) as pool:
        futures = {case.id: pool.submit(run_case, case, workspaces[case.id]) for case in CASES}
        return {name: future.result() for name, future in futures.items()}


def test_the_corpus_is_large_and_unique() -> None:
    assert len(CASES) >= 25
    assert len({case.id for case in CASES}) == len(CASES)
    assert {case.command for case in CASES} >= {
        "grid", "SUBMIT_JOBS", "SPLIT_DATASET", "CREATE_ANALYSIS", "UPLOAD_FILE",
        "UPLOAD_MODELS", "DOWNLOAD_AND_MERGE", "MERGE_FILES", "DOWNLOAD_FILES", "DELETE_FILES",
        "GET_INPUT_LFNS", "FILTER-REPLICAS", "FORCE_JOB_TO_FAILED"}


def test_the_workspace_is_good(tmp_path: Path) -> None:
    """Control: unmodified, the commands the cases break do succeed."""
    ws = make_workspace(tmp_path / "control")
    control = [
        Case("control-grid", "grid", GRID_SUBMIT, ""),
        Case("control-submit", "SUBMIT_JOBS", SUBMIT, ""),
        Case("control-split", "SPLIT_DATASET", ("--input_gammas", "{list}", *SPLIT_OUT), ""),
    ]
    for case in control:
        outcome = run_case(case, ws)
        assert outcome.returncode == 0, (case.id, outcome.stderr)


@pytest.mark.parametrize("case", [pytest.param(case, id=case.id) for case in CASES])
def test_bad_input(case: Case, outcomes: dict[str, Outcome]) -> None:
    outcome = outcomes[case.id]
    lines = outcome.stderr.splitlines()
    assert outcome.returncode != 0, outcome.stdout
    assert "Traceback" not in outcome.stderr + outcome.stdout
    assert len(lines) == 1 and lines[0].strip(), f"expected one line, got:\n{outcome.stderr}"
    assert case.expect in lines[0]
    assert outcome.changed == [], f"files changed: {outcome.changed}"
