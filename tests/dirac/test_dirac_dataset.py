"""``dataset dump`` against the box's DIRAC File Catalog: folders and metadata queries."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from protopipe_grid_interface.backends.dirac import DiracBackend, Environment
from protopipe_grid_interface.exceptions import BackendError
from protopipe_grid_interface.workflow.datasets import dump

pytestmark = pytest.mark.dirac

FIELD = "pgi_test_particle"


@pytest.fixture
def backend(dirac_box: object) -> DiracBackend:
    return DiracBackend(Environment("venv", sys.prefix), ses=["BOX-SE", "BOX-SE2"])


def test_dump_by_folder_and_by_metadata(backend: DiracBackend, tmp_path: Path) -> None:
    catalog = backend.catalog()
    if FIELD not in backend.call("fields", catalog.getMetadataFields)["FileMetaFields"]:
        backend.call("addMetadataField", catalog.addMetadataField, FIELD, "VARCHAR(128)", "-f")
    folder = f"{backend.home()}/pgi-dataset-{time.time_ns()}"
    lfns = []
    for particle, run in (("gamma", 1), ("gamma", 2), ("proton", 3)):
        path = tmp_path / f"{particle}_run{run}.simtel.gz"
        path.write_bytes(f"{particle} {run}".encode())
        lfn = f"{folder}/{particle}/{path.name}"
        backend.put_file(path, lfn, "BOX-SE")
        backend.call("setMetadata", catalog.setMetadata, lfn, {FIELD: particle})
        lfns.append(lfn)
    backend.replicate(lfns[0], "BOX-SE2")
    try:
        files, per_se = dump(backend, folder, {}, tmp_path / "all.list")
        assert [f.lfn for f in files] == sorted(lfns)
        assert per_se == {"BOX-SE": 3, "BOX-SE2": 1}

        files, _ = dump(backend, folder, {FIELD: "gamma"}, tmp_path / "gamma.list")
        assert (tmp_path / "gamma.list").read_text().splitlines() == sorted(lfns[:2])
        replicas = (tmp_path / "gamma.list.replicas").read_text()
        assert f"{lfns[0]}\tBOX-SE,BOX-SE2\n" in replicas

        with pytest.raises(BackendError, match="Metadata field pgi_no_such_key not defined"):
            dump(backend, folder, {"pgi_no_such_key": "gamma"}, tmp_path / "x.list")
    finally:
        backend.remove(lfns)
