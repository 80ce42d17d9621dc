"""Where a ctapipe analysis' outputs live in the catalog, and the metadata they carry there.

CTADIRAC's layout and vocabulary, so that CTAO's tools (``dirac-dms-find-lfns``,
``cta-prod-get-file-by-query``, its dataset queries) find them::

    <analysis>/<MCCampaign>/<site>/<particle>/ctapipe-process/0000/Data/<NNN>xxx/<file>

Each folder carries its own key, inherited by everything below it: ``MCCampaign``, ``site``,
``particle``, ``analysis_prog``; the transformation folder (``0000``: CTADIRAC's in WMS mode)
``phiP``, ``thetaP``, ``array_layout`` and ``analysis_prog_version``; the ``Data`` folder
``outputType``, ``data_level``, ``configuration_id`` and ``merged`` (0: merged inside a job, not
by a merging step). Each file carries ``split`` (``train_en``, ``train_cl``, ``test``),
``nsb``, ``runNumber`` (its first run) and ``jobID``. ``NNN`` is the run number // 1000.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

from ..config import CtapipeSection
from ..models import Particle, Stage
from ..software import CTAPIPE_VERSION

#: the catalog's ``split`` value of each stage, as ``cta-prod-split-dataset`` writes it
SPLITS = {Stage.TRAINING_ENERGY: "train_en", Stage.TRAINING_CLASSIFICATION: "train_cl",
          Stage.DL2: "test"}
PROGRAM = "ctapipe-process"
#: CTADIRAC's transformation folder of a job submitted outside its production system
TRANSFORMATION = "0000"
#: DL2: ``data_level`` of a ctapipe-process output with reconstructed geometry
DATA_LEVEL = 2

Metadata = Mapping[str, str | int | float]


def stage_of_split(split: str) -> Stage:
    """The stage whose jobs make files of ``split``."""
    return next(stage for stage, value in SPLITS.items() if value == split)


@dataclass(frozen=True)
class Layout:
    """The catalog folders of one ctapipe analysis (``root``: its LFN folder)."""

    root: str
    settings: CtapipeSection

    def particle_dir(self, particle: Particle) -> str:
        s = self.settings
        return posixpath.join(self.root, s.MCCampaign, s.site, particle.value)

    def type_dir(self, particle: Particle) -> str:
        """The ``Data`` folder of a particle's process outputs."""
        return posixpath.join(self.particle_dir(particle), PROGRAM, TRANSFORMATION, "Data")

    def data_dir(self, particle: Particle, run: int) -> str:
        """The folder of the outputs whose first run is ``run``."""
        return posixpath.join(self.type_dir(particle), f"{run // 1000:03d}xxx")

    def levels(self, particle: Particle) -> list[tuple[str, dict[str, str | int | float]]]:
        """Each folder of the particle's outputs, from the top, with the keys it carries."""
        s = self.settings
        campaign = posixpath.join(self.root, s.MCCampaign)
        site = posixpath.join(campaign, s.site)
        program = posixpath.join(self.particle_dir(particle), PROGRAM)
        return [
            (campaign, {"MCCampaign": s.MCCampaign}),
            (site, {"site": s.site}),
            (self.particle_dir(particle), {"particle": particle.value}),
            (program, {"analysis_prog": PROGRAM}),
            (posixpath.join(program, TRANSFORMATION),
             {"phiP": s.phiP, "thetaP": s.thetaP, "array_layout": s.array_layout,
              "analysis_prog_version": f"v{CTAPIPE_VERSION}"}),
            (self.type_dir(particle), {"outputType": "Data", "data_level": DATA_LEVEL,
                                       "configuration_id": s.configuration_id, "merged": 0}),
        ]

    def file_metadata(self, stage: Stage, run: int | None, job_id: int | None
                      ) -> dict[str, str | int | float]:
        """The keys one output file carries itself (``run``: its first file's run number)."""
        keys: dict[str, str | int | float] = {"split": SPLITS[stage], "nsb": self.settings.nsb}
        if run is not None:
            keys["runNumber"] = run
        if job_id is not None:
            keys["jobID"] = job_id
        return keys
