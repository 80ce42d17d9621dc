"""A whole protopipe analysis on one machine, with real protopipe on real files.

It runs on any backend: the local one by default, or DIRAC (a test box whose worker nodes are
this machine, so the payload environment is reachable at a fixed path).

Only one real Prod3 Paranal file fits one analysis configuration offline (9 gamma events), and
there is no proton or electron simulation: the demo registers copies of that file as a small
production with realistic LFNs, standing in for protons and electrons too. Training models and
computing IRFs need more events than that: before those two local steps the demo enlarges the
merged real tables by resampling (``payload/enlarge_tables.py``), and says so; the DL2 rows get
true energies spread over the IRFs' energy range, and the IRFs are normalised from the enlarged
files' own simulated showers, as any analysis's (``enlarge`` steps of the demo's workflow
file, ``data/workflow-demo.yaml``). Every grid stage runs real protopipe on real files; the
enlarged tables are a demo aid, not physics. Once its production is registered and split, the
demo is ``protopipe-grid run --watch``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from .. import report
from ..atomic import write_atomic
from ..backends import open_backend
from ..backends.base import Backend
from ..config import SoftwareSection, set_yaml_values
from ..exceptions import InputError
from ..models import Particle
from ..paths import analyses_directory
from ..software import check_payload_env, default_demo_data, default_payload_env, example_configs
from . import engine, steps, upload
from .analysis import Analysis
from .session import recorded
from .split import DEFAULT_FRACTIONS, SplitInput
from .tree import create_analysis

Say = Callable[[str], None]

NAME = "demo"
SOURCE_FILE = "gamma_test.simtel.gz"
PRODUCTION = "/vo.cta.in2p3.fr/MC/PROD3/Paranal/{particle}/sim_telarray/demo/Data/000xxx"
FILE_NAME = "{particle}_20deg_0deg_run{run}___cta-prod3-demo_desert-2150m-Paranal-merged.simtel.gz"
FILES = {Particle.GAMMA: 5, Particle.PROTON: 5, Particle.ELECTRON: 2}
FIRST_RUN = {Particle.GAMMA: 101, Particle.PROTON: 201, Particle.ELECTRON: 301}
FILES_PER_JOB = 2
ANALYSIS_FILL: dict[str, object] = {
    "production": "Prod3b",
    "site": "south",
    "array": list(range(1, 29)),  # LSTs and MSTs of this Paranal file (no ASTRI: it crashes)
    "cam_id_list": ["LSTCam", "NectarCam"],
}
#: seconds between status checks while the demo's jobs run
POLL_SECONDS = 2


@dataclass
class DemoResult:
    """What the demo made, for the closing summary."""

    analysis: Analysis
    outputs: dict[str, Path] = field(default_factory=dict)


def fill_configs(analysis_dir: Path, worker_env: str) -> None:
    """Fill what protopipe's templates leave to the user, for the demo's Paranal file; the
    demo's workflow file (``data/workflow-demo.yaml``: enlarged tables before the local steps)."""
    configs = analysis_dir / "configs"
    set_yaml_values(configs / "analysis.yaml",
                    {("General", key): value for key, value in ANALYSIS_FILL.items()})
    for name in ("RandomForestRegressor.yaml", "RandomForestClassifier.yaml"):
        set_yaml_values(configs / name,
                        {("General", "cam_id_list"): ANALYSIS_FILL["cam_id_list"]})
    set_yaml_values(configs / "grid.yaml", {
        ("GRID", "n_file_per_job"): FILES_PER_JOB, ("GRID", "upload_sites"): [],
        ("GRID", "banned_sites"): [], ("Software", "worker_env"): worker_env,
        ("Run", "poll_seconds"): POLL_SECONDS})
    write_atomic(analysis_dir / steps.FILE_NAME, files("protopipe_grid_interface").joinpath(
        "data/workflow-demo.yaml").read_text())


def register_production(backend: Backend, ses: list[str], source: Path, lists: Path,
                        say: Say) -> dict[Particle, Path]:
    """Register copies of the real file as a production; write one list file per particle."""
    files = {}
    report = upload.UploadReport()
    for particle, count in FILES.items():
        lfns = []
        for run in range(FIRST_RUN[particle], FIRST_RUN[particle] + count):
            lfn = (PRODUCTION.format(particle=particle.value) + "/" +
                   FILE_NAME.format(particle=particle.value, run=run))
            upload.upload_file(backend, source, lfn, ses[0], report)
            lfns.append(lfn)
        upload.replicate_all(backend, lfns, ses, report)
        path = lists / f"{particle.value}.list"
        path.write_text("".join(f"{lfn}\n" for lfn in lfns))
        files[particle] = path
    say(f"production: {sum(FILES.values())} LFNs registered on {', '.join(ses)} "
        f"({len(report.uploaded)} new), each a copy of the real {source.name}; protons and "
        "electrons are gamma files standing in")
    return files


def run(workdir: Path, payload_env: Path | None, data: Path | None, fresh: bool, say: Say,
        on_iteration: Callable[[engine.Iteration], None], backend_name: str | None = None
        ) -> DemoResult:
    """Run the whole demo in ``workdir``, on a local backend inside it (or ``dirac``: a test
    site whose workers are this machine, with the payload environment at the same path):
    create the analysis, register its production, split it, then ``run --watch``
    (``on_iteration`` sees each iteration); resumable: a second run reuses what is done."""
    env = check_payload_env(payload_env or default_payload_env())
    source = (data or default_demo_data()) / SOURCE_FILE
    if not source.is_file():
        raise InputError(f"{source}: demo data not found", "run scripts/install-payload.sh")
    workdir = workdir.resolve()
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    local_root = workdir / "local-grid"
    backend = open_backend(backend_name or "local", local_root,
                           SoftwareSection(worker_env=str(env)), env)
    ses = backend.storage_elements()[:2]
    if fresh:  # the analysis' files on the backend go too (the production is kept)
        left = backend.list_directory(f"{backend.home()}/{NAME}", recursive=True)
        backend.remove([f.lfn for f in left])
        if left:
            say(f"removed {len(left)} file(s) of an earlier demo from the {backend.name} backend")
    metadata = analyses_directory(workdir) / NAME / "analysis_metadata.yaml"
    if not metadata.exists():
        tree = create_analysis(workdir, NAME, example_configs(env), grid_home=backend.home(),
                               overwrite=True, backend=backend.name, local_root=local_root)
        fill_configs(tree.root, str(env))
        say(f"analysis created: {tree.root} ({backend.name} backend)")
    analysis = Analysis.open(metadata)
    lists = register_production(backend, ses, source, analysis.tree.simtel_lists, say)

    split = analysis.split([SplitInput(particle, lists[particle], DEFAULT_FRACTIONS[particle])
                            for particle in Particle], overwrite=True)
    say("split: " + ", ".join(f"{stage_list.path.name} ({len(stage_list.lfns)})"
                              for stage_list, _ in split))
    with recorded(analysis, backend) as store:
        last = engine.run_analysis(analysis, store, backend, engine.RunOptions(env, yes=True),
                                   watch=True, on_iteration=on_iteration)
        written = report.write(analysis, store, backend)  # blocked or not: it shows where
        say(f"report: {written}")
        engine.check_moving(last)
    tree = analysis.tree
    outputs = {"analysis": tree.root, "IRFs": tree.dl3 / "performance_demo.fits.gz",
               "report": written, "state database": tree.state_db}
    if backend.name == "local":
        outputs["local grid"] = local_root
    return DemoResult(analysis, outputs)
