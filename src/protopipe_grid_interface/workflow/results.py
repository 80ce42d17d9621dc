"""What a local step produced, in a few figures, and the warnings a user must not miss.

After a merge: the rows of each table of the merged file (a TRAINING file has one table per
camera type at the root, a DL2 file ``/reco_events``). After a model is built: its scores per
camera, as protopipe reports them (the classifier's classification report in the
protopipe-MODEL log) or as ``payload/model_scores.py`` computes them on protopipe's test
sample (the regressor's energy bias and resolution, the classifier's ROC AUC). The figures
and warnings are kept in the state database (``Store.record_result``) for summaries and the
report; a warning never fails the step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import h5py

from ..exceptions import DataError
from ..store import Result, Store

#: a classifier whose test accuracy or ROC AUC is at most this does no better than chance
CHANCE_LEVEL = 0.55
#: a regressor resolution (68 % containment of |E_reco/E_true - 1|) above this is absurd
MAX_RESOLUTION = 1.0
#: a regressor energy bias (median of E_reco/E_true - 1) beyond +/- this is absurd
MAX_BIAS = 0.5
#: protopipe's labels of the classes in its classification report
CLASS_NAMES = {"1": "signal", "0": "background"}


# --- merged files ------------------------------------------------------------------------------
def table_rows(path: Path) -> dict[str, int]:
    """The rows of every table (a 1-d compound dataset, as PyTables writes) in ``path``."""
    rows: dict[str, int] = {}

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset) and item.ndim == 1 and item.dtype.names:
            rows[f"/{name}"] = int(item.shape[0])

    try:
        with h5py.File(path, "r") as h5:
            h5.visititems(visit)
    except OSError as exc:
        raise DataError(f"{path}: not readable as HDF5 ({exc})") from None
    return rows


def table_warnings(name: str, rows: Mapping[str, int]) -> list[str]:
    """A file without any table, and each table without rows: not usable downstream."""
    if not rows:
        return [f"{name} has no table"]
    return [f"{name}: table {table} has no rows" for table, count in rows.items() if not count]


def merge_step(stage: str) -> str:
    """The state database's step name of a stage's merges."""
    return f"merge {stage}"


# --- models ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ClassifierScore:
    """One camera's classifier, on protopipe's test sample: its classification report (label
    1 is the signal, 0 the background) and the ROC AUC of its gamma probability."""

    camera: str
    test_size: int | None = None
    test_signal: int | None = None
    test_background: int | None = None
    accuracy: float | None = None
    #: precision and recall by class name (``signal``, ``background``)
    precision: dict[str, float] = field(default_factory=dict)
    recall: dict[str, float] = field(default_factory=dict)
    auc: float | None = None
    #: why a score is missing (no report in the log, no test sample ...)
    problem: str = ""

    def warnings(self) -> list[str]:
        found = [f"classifier {self.camera}: {self.problem}"] if self.problem else []
        if self.test_size == 0:
            found.append(f"classifier {self.camera}: the test sample is empty")
        for what, value in (("test accuracy", self.accuracy), ("ROC AUC", self.auc)):
            if value is not None and value <= CHANCE_LEVEL:
                found.append(f"classifier {self.camera}: {what} {value:.2f} is chance level "
                             f"(<= {CHANCE_LEVEL}): it does not tell gammas from background")
        return found

    def summary(self) -> str:
        """One line: the camera, its test sample and scores."""
        parts = [f"{self.test_size} test images ({self.test_signal} signal, "
                 f"{self.test_background} background)" if self.test_size is not None
                 else "no test sample"]
        if self.accuracy is not None:
            parts.append(f"accuracy {self.accuracy:.2f}")
        if self.auc is not None:
            parts.append(f"ROC AUC {self.auc:.3f}")
        return f"{self.camera}: {', '.join(parts)}"


@dataclass(frozen=True)
class RegressorScore:
    """One camera's energy regressor, on protopipe's test sample (images)."""

    camera: str
    test_size: int | None = None
    #: median of E_reco/E_true - 1
    bias: float | None = None
    #: 68 % containment of |E_reco/E_true - 1|
    resolution: float | None = None
    problem: str = ""

    def warnings(self) -> list[str]:
        found = [f"regressor {self.camera}: {self.problem}"] if self.problem else []
        if self.test_size == 0:
            found.append(f"regressor {self.camera}: the test sample is empty")
        if self.resolution is not None and self.resolution > MAX_RESOLUTION:
            found.append(f"regressor {self.camera}: energy resolution {self.resolution:.0%} "
                         f"is absurd (> {MAX_RESOLUTION:.0%})")
        if self.bias is not None and abs(self.bias) > MAX_BIAS:
            found.append(f"regressor {self.camera}: energy bias {self.bias:+.0%} is absurd "
                         f"(beyond +/-{MAX_BIAS:.0%})")
        return found

    def summary(self) -> str:
        parts = [f"{self.test_size} test images" if self.test_size is not None
                 else "no test sample"]
        if self.bias is not None and self.resolution is not None:
            parts.append(f"energy bias {self.bias:+.1%}, resolution {self.resolution:.1%}")
        return f"{self.camera}: {', '.join(parts)}"


CameraScore = ClassifierScore | RegressorScore


@dataclass(frozen=True)
class ModelResult:
    """A model built: its per-camera files and scores, and what to look at before using it."""

    model_type: str
    method: str
    files: tuple[Path, ...]
    scores: tuple[CameraScore, ...]

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(w for score in self.scores for w in score.warnings())

    @property
    def step(self) -> str:
        """The state database's step name."""
        return f"model {self.model_type}"

    def figures(self) -> dict[str, Any]:
        return {"method": self.method, "files": [path.name for path in self.files],
                "cameras": {s.camera: {k: v for k, v in asdict(s).items() if k != "camera"}
                            for s in self.scores}}

    def record(self, store: Store) -> Result:
        return store.record_result(self.step, "", self.figures(), self.warnings)


_CAMERA = re.compile(r"^### Building model for (\S+)", re.MULTILINE)
_TEST_SAMPLE = re.compile(r"^Test sample: sig (\d+) and bkg (\d+)", re.MULTILINE)
_CLASS_ROW = re.compile(r"^\s*(0|1)(?:\.0)?\s+([\d.]+)\s+([\d.]+)\s+[\d.]+\s+(\d+)\s*$",
                        re.MULTILINE)
_ACCURACY = re.compile(r"^\s*accuracy\s+([\d.]+)\s+(\d+)\s*$", re.MULTILINE)


def classification_reports(log: str) -> dict[str, ClassifierScore]:
    """The classification report of each camera in a protopipe-MODEL classifier log."""
    starts = list(_CAMERA.finditer(log))
    reports = {}
    for match, following in zip(starts, [*starts[1:], None], strict=True):
        camera = match.group(1)
        section = log[match.end():following.start() if following else len(log)]
        accuracy = _ACCURACY.search(section)
        if accuracy is None:
            reports[camera] = ClassifierScore(camera, problem="no classification report in "
                                                              "the protopipe-MODEL log")
            continue
        rows = {CLASS_NAMES[m.group(1)]: m for m in _CLASS_ROW.finditer(section)}
        sizes = _TEST_SAMPLE.search(section)
        reports[camera] = ClassifierScore(
            camera, test_size=int(accuracy.group(2)),
            test_signal=int(sizes.group(1)) if sizes else None,
            test_background=int(sizes.group(2)) if sizes else None,
            accuracy=float(accuracy.group(1)),
            precision={name: float(m.group(2)) for name, m in rows.items()},
            recall={name: float(m.group(3)) for name, m in rows.items()})
    return reports


def classifier_scores(cameras: Sequence[str], log: str, computed: Mapping[str, Any]
                      ) -> tuple[ClassifierScore, ...]:
    """Each camera's report from the log, with the ROC AUC ``model_scores.py`` computed."""
    reports = classification_reports(log)
    scores = []
    for camera in cameras:
        report = reports.get(camera) or ClassifierScore(
            camera, problem="no classification report in the protopipe-MODEL log")
        mine = computed.get(camera, {})
        problem = report.problem or mine.get("error", "")
        scores.append(ClassifierScore(
            camera, report.test_size, report.test_signal, report.test_background,
            report.accuracy, report.precision, report.recall, mine.get("auc"), problem))
    return tuple(scores)


def regressor_scores(cameras: Sequence[str], computed: Mapping[str, Any]
                     ) -> tuple[RegressorScore, ...]:
    """Each camera's scores as ``model_scores.py`` computed them."""
    scores = []
    for camera in cameras:
        mine = computed.get(camera) or {"error": "not scored"}
        scores.append(RegressorScore(camera, mine.get("test_size"), mine.get("bias"),
                                     mine.get("resolution"), mine.get("error", "")))
    return tuple(scores)
