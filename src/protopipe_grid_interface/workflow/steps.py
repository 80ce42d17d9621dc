"""The workflow file: the steps of an analysis and what each needs, read by ``run``.

``analysis create`` writes ``workflow.yaml`` into the analysis folder (``data/workflow.yaml``,
protopipe's chain); a second payload pipeline brings its own file. Each step has a kind (what
runs it: :data:`KINDS`), its particles (one task per particle; none: one task for the whole
analysis) and the steps it needs. A task needs, of each step it names, the task of the same
particle when that step has one, else all its tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from importlib.resources import files
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from ..config import Section, describe_validation_error, read_yaml
from ..exceptions import ConfigError
from ..models import Particle, Stage

#: what each kind of step does
KINDS = {
    "grid": "jobs of one stage on the backend (its canary first)",
    "collect": "download a stage's outputs as they come (verified), merge once all are Done",
    "enlarge": "resample merged tables into larger ones (the demo's aid, not physics)",
    "model": "protopipe-MODEL on this machine",
    "upload": "upload a model, replicated where the jobs that read it have their data",
    "performance": "IRFs and sensitivity on this machine (protopipe-DL3-EventDisplay)",
    "apply": "apply the models to a stage's merged files on this machine (ctapipe)",
    "catalog": "give a stage's outputs CTADIRAC's metadata in the catalog (ctapipe)",
}
#: kinds only a ctapipe analysis has
CTAPIPE_KINDS = ("apply", "catalog")
#: each pipeline's workflow file, as ``analysis create`` writes it
TEMPLATES = {"protopipe": "workflow.yaml", "ctapipe": "workflow-ctapipe.yaml"}
FILE_NAME = "workflow.yaml"


class StepConfig(Section):
    """One step of the workflow file."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$")
    kind: Literal["grid", "collect", "enlarge", "model", "upload", "performance", "apply",
                  "catalog"]
    stage: Stage | None = None
    model: Literal["regressor", "classifier"] | None = None
    #: the models an ``apply`` step applies
    models: list[Literal["regressor", "classifier"]] = Field(default_factory=list)
    particles: list[Particle] = Field(default_factory=list)
    needs: list[str] = Field(default_factory=list)
    #: what a kind of step reads besides its inputs (``enlarge``: rows and seeds; ``model``
    #: and ``performance``: ``inputs: enlarged`` to read the enlarged tables)
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def has_its_subject(self) -> StepConfig:
        if self.kind in ("grid", "collect", "enlarge", "apply", "catalog") and self.stage is None:
            raise ValueError(f"step {self.name}: a {self.kind} step needs a stage")
        if self.kind in ("model", "upload") and self.model is None:
            raise ValueError(f"step {self.name}: a {self.kind} step needs a model")
        if self.kind == "apply" and not self.models:
            raise ValueError(f"step {self.name}: an apply step needs its models")
        return self


class WorkflowFile(Section):
    """``workflow.yaml``: the pipeline it is for, and its steps in any order."""

    pipeline: str = "protopipe"
    steps: list[StepConfig]

    @model_validator(mode="after")
    def is_a_graph(self) -> WorkflowFile:
        names = [step.name for step in self.steps]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"step {twice[0]} is defined twice")
        for step in self.steps:
            if step.kind in CTAPIPE_KINDS and self.pipeline != "ctapipe":
                raise ValueError(f"step {step.name}: {step.kind} steps are for the ctapipe "
                                 "pipeline (pipeline: ctapipe)")
            unknown = [need for need in step.needs if need not in names]
            if unknown:
                raise ValueError(f"step {step.name} needs {unknown[0]}, which is not a step")
        Workflow(self).order  # noqa: B018 - raises on a cycle
        return self


@dataclass(frozen=True)
class Task:
    """One step for one particle (``particle`` None: for the whole analysis)."""

    step: StepConfig
    particle: Particle | None

    @property
    def key(self) -> tuple[str, str]:
        """How the state database names it: (step, particle or "")."""
        return self.step.name, self.particle.value if self.particle else ""

    def __str__(self) -> str:
        return f"{self.step.name} {self.particle.value}" if self.particle else self.step.name


class Workflow:
    """The tasks of a workflow file, in an order where each comes after what it needs."""

    def __init__(self, document: WorkflowFile) -> None:
        self.document = document
        self.steps = {step.name: step for step in document.steps}

    def tasks_of(self, name: str) -> list[Task]:
        step = self.steps[name]
        return [Task(step, p) for p in step.particles] or [Task(step, None)]

    def needs(self, task: Task) -> list[Task]:
        """The tasks ``task`` waits for."""
        found = []
        for name in task.step.needs:
            needed = self.tasks_of(name)
            same = [t for t in needed if t.particle is not None and t.particle == task.particle]
            found += same or needed
        return found

    def dependents(self, name: str) -> list[StepConfig]:
        """The steps that need step ``name``."""
        return [step for step in self.document.steps if name in step.needs]

    @cached_property
    def order(self) -> list[Task]:
        """Every task, each after the tasks it needs (file order otherwise)."""
        done: list[Task] = []
        placed: set[tuple[str, str]] = set()
        pending = [task for step in self.document.steps for task in self.tasks_of(step.name)]
        while pending:
            ready = [t for t in pending if all(n.key in placed for n in self.needs(t))]
            if not ready:
                raise ValueError(f"steps {', '.join(sorted({t.step.name for t in pending}))} "
                                 "need each other (a cycle)")
            for task in ready:
                done.append(task)
                placed.add(task.key)
            pending = [t for t in pending if t.key not in placed]
        return done

    def upstream(self, name: str) -> set[str]:
        """Step ``name`` and every step it needs, directly or not."""
        seen = {name}
        todo = [name]
        while todo:
            for need in self.steps[todo.pop()].needs:
                if need not in seen:
                    seen.add(need)
                    todo.append(need)
        return seen


def template(pipeline: str = "protopipe") -> str:
    """The pipeline's workflow file ``analysis create`` writes."""
    return files("protopipe_grid_interface").joinpath(f"data/{TEMPLATES[pipeline]}").read_text()


def load_workflow(path: Path) -> Workflow:
    """Read and check a workflow file; an error names the file and the step."""
    data = read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a list of steps")
    try:
        return Workflow(WorkflowFile.model_validate(data))
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(path, exc)) from None
