"""The ctapipe demo's outputs, found in the live DIRAC box's catalog the way CTAO's tools find
them: a metadata query on CTADIRAC's keys (what ``dirac-dms-find-lfns`` and
``cta-prod-get-file-by-query`` send), no folder named.

Needs the ctapipe demo run on the box first (``.ci/run`` does it, then this test:
``protopipe-grid demo --pipeline ctapipe --backend dirac``); ``PGI_CTAPIPE_DEMO`` is its
``--workdir``. Without it the test is skipped (under CI: fails).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from contract import unavailable

from protopipe_grid_interface.backends.dirac import DiracBackend, Environment
from protopipe_grid_interface.models import JobStatus, Particle
from protopipe_grid_interface.paths import STAGE_PARTICLES
from protopipe_grid_interface.workflow.analysis import Analysis
from protopipe_grid_interface.workflow.ctapipe_catalog import SPLITS
from protopipe_grid_interface.workflow.plan import is_canary

#: after the ctapipe demo on the box, like the demo tests: not in the DIRAC suite
pytestmark = [pytest.mark.dirac, pytest.mark.demo]

ANALYSIS = "demo-ctapipe"


def demo_analysis() -> Analysis:
    workdir = os.environ.get("PGI_CTAPIPE_DEMO", "")
    metadata = Path(workdir) / "shared_folder" / "analyses" / ANALYSIS / "analysis_metadata.yaml"
    if not workdir or not metadata.is_file():
        unavailable("PGI_CTAPIPE_DEMO names no ctapipe demo run on the DIRAC box")
    return Analysis.open(metadata)


def test_outputs_found_by_ctadirac_metadata_query(dirac_box: object) -> None:
    analysis = demo_analysis()
    backend = DiracBackend(Environment("venv", ""))
    store = analysis.store()
    section = analysis.grid.Ctapipe
    # the whole analysis folder: only the keys decide
    root = analysis.with_home(backend.home).tree.lfn_root
    for stage, split in SPLITS.items():
        for particle in STAGE_PARTICLES[stage]:
            expected = sorted(r.spec.output_lfn for r in store.jobs(stage=stage,
                                                                   particle=particle)
                              if r.status == JobStatus.DONE and not is_canary(r.name))
            assert expected, f"the demo made no {split} {particle.value} output"
            query = {"MCCampaign": section.MCCampaign, "site": section.site,
                     "particle": particle.value, "analysis_prog": "ctapipe-process",
                     "analysis_prog_version": "v0.32.0", "data_level": 2,
                     "outputType": "Data", "array_layout": section.array_layout,
                     "split": split}
            assert sorted(backend.find_files(root, query)) == expected
    # one key changed finds nothing: the query is by metadata, not by folder
    assert backend.find_files(root, {"split": "test", "particle": Particle.GAMMA.value,
                                     "MCCampaign": "PROD5"}) == []
    # the file's own keys, as CTADIRAC's managedata sets them
    first = next(r for r in store.jobs(stage=next(iter(SPLITS)), particle=Particle.GAMMA)
                 if r.status == JobStatus.DONE and not is_canary(r.name))
    keys = backend.get_metadata(first.spec.output_lfn)
    assert keys["split"] == "train_en" and keys["jobID"] == first.backend_id
    assert int(keys["nsb"]) == section.nsb
    store.close()
