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

The ctapipe demo (``--pipeline ctapipe``, :data:`PROFILES`) does the same with ctapipe 0.32's
tools on copies of a real prod5-like La Palma file (``mono_trigger.simtel.zst``, 5 gamma
events), registered as a PROD6 production; its stand-in clones the merged real events into
larger samples (``data/workflow-ctapipe-demo.yaml``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path
from typing import Any

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
from .ctapipe_configs import Contact
from .session import recorded
from .split import DEFAULT_FRACTIONS, SplitInput
from .tree import create_analysis, create_ctapipe_analysis

Say = Callable[[str], None]

FILES = {Particle.GAMMA: 5, Particle.PROTON: 5, Particle.ELECTRON: 2}
FIRST_RUN = {Particle.GAMMA: 101, Particle.PROTON: 201, Particle.ELECTRON: 301}
#: who the ctapipe demo's configurations name as their contact (ctapipe-quickstart asks)
DEMO_CONTACT = ("protopipe-grid demo", "demo@example.org", "CTAO")


@dataclass(frozen=True)
class Profile:
    """What a pipeline's demo runs on: its analysis, the real file it copies, the production
    it registers, its workflow file and the IRF file it ends with."""

    name: str
    source_file: str
    production: str
    file_name: str
    files_per_job: int
    workflow: str
    irf: str


PROFILES = {
    "protopipe": Profile(
        "demo", "gamma_test.simtel.gz",
        "/vo.cta.in2p3.fr/MC/PROD3/Paranal/{particle}/sim_telarray/demo/Data/000xxx",
        "{particle}_20deg_0deg_run{run}___cta-prod3-demo_desert-2150m-Paranal-merged.simtel.gz",
        2, "workflow-demo.yaml", "performance_demo.fits.gz"),
    "ctapipe": Profile(
        "demo-ctapipe", "mono_trigger.simtel.zst",
        "/vo.cta.in2p3.fr/MC/PROD6/LaPalma/{particle}/sim_telarray/demo/Data/000xxx",
        "{particle}_20deg_180deg_run{run}___cta-prod6-demo_2147m-LaPalma-dark.simtel.zst",
        3, "workflow-ctapipe-demo.yaml", "irf.fits.gz"),
}
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


def fill_configs(analysis_dir: Path, worker_env: str, profile: Profile = PROFILES["protopipe"]
                 ) -> None:
    """Fill what protopipe's templates leave to the user, for the demo's Paranal file (a
    ctapipe analysis' configurations need nothing); the demo's workflow file (e.g.
    ``data/workflow-demo.yaml``: enlarged tables before the local steps)."""
    configs = analysis_dir / "configs"
    if profile is PROFILES["protopipe"]:
        set_yaml_values(configs / "analysis.yaml",
                        {("General", key): value for key, value in ANALYSIS_FILL.items()})
        for name in ("RandomForestRegressor.yaml", "RandomForestClassifier.yaml"):
            set_yaml_values(configs / name,
                            {("General", "cam_id_list"): ANALYSIS_FILL["cam_id_list"]})
    set_yaml_values(configs / "grid.yaml", {
        ("GRID", "n_file_per_job"): profile.files_per_job, ("GRID", "upload_sites"): [],
        ("GRID", "banned_sites"): [], ("Software", "worker_env"): worker_env,
        ("Run", "poll_seconds"): POLL_SECONDS})
    write_atomic(analysis_dir / steps.FILE_NAME, files("protopipe_grid_interface").joinpath(
        f"data/{profile.workflow}").read_text())


def register_production(backend: Backend, ses: list[str], source: Path, lists: Path,
                        say: Say, profile: Profile = PROFILES["protopipe"]
                        ) -> dict[Particle, Path]:
    """Register copies of the real file as a production; write one list file per particle."""
    files = {}
    report = upload.UploadReport()
    for particle, count in FILES.items():
        lfns = []
        for run in range(FIRST_RUN[particle], FIRST_RUN[particle] + count):
            lfn = (profile.production.format(particle=particle.value) + "/" +
                   profile.file_name.format(particle=particle.value, run=run))
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
        on_iteration: Callable[[engine.Iteration], None], backend_name: str | None = None,
        pipeline: str = "protopipe") -> DemoResult:
    """Run the whole demo of ``pipeline`` in ``workdir``, on a local backend inside it (or
    ``dirac``: a test site whose workers are this machine, with the payload environment at the
    same path): create the analysis, register its production, split it, then ``run --watch``
    (``on_iteration`` sees each iteration); resumable: a second run reuses what is done."""
    profile = PROFILES[pipeline]
    env = check_payload_env(payload_env or default_payload_env(pipeline), pipeline)
    source = (data or default_demo_data()) / profile.source_file
    if not source.is_file():
        raise InputError(f"{source}: demo data not found", "run scripts/install-payload.sh")
    workdir = workdir.resolve()
    if fresh and workdir.exists():
        shutil.rmtree(workdir)
    local_root = workdir / "local-grid"
    backend = open_backend(backend_name or "local", local_root,
                           SoftwareSection(worker_env=str(env)), env, pipeline=pipeline)
    ses = backend.storage_elements()[:2]
    if fresh:  # the analysis' files on the backend go too (the production is kept)
        left = backend.list_directory(f"{backend.home()}/{profile.name}", recursive=True)
        backend.remove([f.lfn for f in left])
        if left:
            say(f"removed {len(left)} file(s) of an earlier demo from the {backend.name} backend")
    metadata = analyses_directory(workdir) / profile.name / "analysis_metadata.yaml"
    if not metadata.exists():
        where: dict[str, Any] = dict(grid_home=backend.home(), overwrite=True,
                                     backend=backend.name, local_root=local_root)
        tree = (create_ctapipe_analysis(workdir, profile.name, env, Contact(*DEMO_CONTACT),
                                        gamma_diffuse=True, **where)
                if pipeline == "ctapipe" else
                create_analysis(workdir, profile.name, example_configs(env), **where))
        fill_configs(tree.root, str(env), profile)
        say(f"analysis created: {tree.root} ({pipeline}, {backend.name} backend)")
    analysis = Analysis.open(metadata)
    lists = register_production(backend, ses, source, analysis.tree.simtel_lists, say,
                                profile)

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
    outputs = {"analysis": tree.root, "IRFs": tree.dl3 / profile.irf,
               "report": written, "state database": tree.state_db}
    if backend.name == "local":
        outputs["local grid"] = local_root
    return DemoResult(analysis, outputs)
