"""Upload files to the catalog and replicate them: models and their configs, or any file.

Uploads are idempotent: a file already catalogued with the same checksum is kept, a different
one is refused unless ``overwrite`` (then replaced). Replication adds only missing replicas.
"""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from ..backends.base import Backend
from ..checksums import adler32, same_checksum
from ..exceptions import DataError, InputError
from ..paths import AnalysisTree, model_file_name


@dataclass
class UploadReport:
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    replicated: list[tuple[str, str]] = field(default_factory=list)


def storage_elements(backend: Backend, configured: Sequence[str],
                     explicit: Sequence[str] = (), option: str = "--ses") -> list[str]:
    """Where to upload: the SEs given on the command line (each must be the backend's), else
    the configured ones the backend has (``GRID.upload_sites``), else all of the backend's."""
    known = backend.storage_elements()
    for se in explicit:
        if se not in known:
            raise InputError(f"{option} {se}: unknown storage element on the {backend.name} "
                             "backend", f"known: {', '.join(known)}")
    if explicit:
        return list(dict.fromkeys(explicit))
    return [se for se in configured if se in known] or known


#: input files of the dependent jobs whose replicas decide where a model goes
SAMPLED = 1000


def data_storage_elements(backend: Backend, lfns: Sequence[str], writable: Sequence[str]
                          ) -> list[str]:
    """The writable storage elements next to the replicas of ``lfns``, most used first: the
    SE itself, or the user SE of its site (``X-Disk`` -> ``X-USER``, as CTA names them)."""
    counts = Counter(se for found in backend.metadata(lfns).values() for se in found.replicas)
    chosen: list[str] = []
    for se, _ in counts.most_common():
        for candidate in (se, se.rsplit("-", 1)[0] + "-USER"):
            if candidate in writable:
                if candidate not in chosen:
                    chosen.append(candidate)
                break
    return chosen


def upload_file(backend: Backend, path: Path, lfn: str, se: str, report: UploadReport,
                overwrite: bool = False) -> None:
    """Upload one file unless the catalog already holds the same bytes."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: file to upload not found")
    existing = backend.metadata([lfn]).get(lfn)
    if existing is not None:
        if existing.size == path.stat().st_size and same_checksum(existing.checksum,
                                                                   adler32(path)):
            report.unchanged.append(lfn)
            return
        if not overwrite:
            raise DataError(f"{lfn} already exists with different content",
                            "use --overwrite to replace it")
        backend.remove([lfn])
    backend.put_file(path, lfn, se)
    report.uploaded.append(lfn)


def replicate_all(backend: Backend, lfns: Sequence[str], ses: Sequence[str],
                  report: UploadReport) -> None:
    """Make sure every LFN has a replica on every SE of ``ses``."""
    found = backend.metadata(lfns)
    for lfn in lfns:
        for se in ses:
            if se not in found[lfn].replicas:
                backend.replicate(lfn, se)
                report.replicated.append((lfn, se))


def model_files(tree: AnalysisTree, model_type: str, method: str, cameras: Sequence[str]
                ) -> list[tuple[Path, str]]:
    """(local file, LFN) of a model's config and its per-camera model files."""
    pairs = [(tree.configs / f"{method}.yaml", posixpath.join(tree.lfn_estimators,
                                                              f"{method}.yaml"))]
    for camera in cameras:
        name = model_file_name(model_type, camera, method)
        pairs.append((tree.estimator_dir(model_type) / name,
                      posixpath.join(tree.lfn_estimators, name)))
    return pairs


def upload_models(
    backend: Backend,
    tree: AnalysisTree,
    model_type: str,
    method: str,
    cameras: Sequence[str],
    ses: Sequence[str],
    overwrite: bool = False,
) -> UploadReport:
    """Upload a model's config and files to ``ses[0]`` and replicate them to the other SEs."""
    if not ses:
        raise InputError("no storage element to upload to", "set GRID.upload_sites")
    pairs = model_files(tree, model_type, method, cameras)
    missing = [str(path) for path, _ in pairs if not path.is_file()]
    if missing:
        raise InputError(f"model file not found: {missing[0]}",
                         f"build the {model_type} first ({len(missing)} file(s) missing)")
    report = UploadReport()
    for path, lfn in pairs:
        upload_file(backend, path, lfn, ses[0], report, overwrite)
    replicate_all(backend, [lfn for _, lfn in pairs], ses[1:], report)
    return report


def upload_config(backend: Backend, config: Path, lfn: str, ses: Sequence[str]) -> bool:
    """Provenance: the analysis configuration next to the outputs it makes, on ``ses[0]``,
    replicated to the others; True if it was uploaded now. Outputs made with another
    configuration there are refused."""
    report = UploadReport()
    try:
        upload_file(backend, config, lfn, ses[0], report)
    except DataError:
        raise DataError(f"{lfn} holds a different {config.name} than {config}",
                        "outputs of this stage were made with another configuration: restore "
                        "it, or remove that folder's files (protopipe-DELETE_FILES) to start "
                        "the stage again") from None
    replicate_all(backend, [lfn], ses[1:], report)
    return bool(report.uploaded)
