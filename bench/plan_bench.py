#!/usr/bin/env python
"""Benchmark the planner against the original tool's way of building jobs, in the same run.

    python bench/plan_bench.py                 # 1,000,000 LFNs -> 100,000 jobs of 10 files
    python bench/plan_bench.py --files 200000  # quicker

Each approach runs in a fresh child process (so peak memory is its own), on the same generated
LFNs, and reports wall time of the planning alone and peak RSS. See bench/README.md.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import re
import resource
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence

HOME = "/vo.cta.in2p3.fr/user/j/jdoe/analyses/bench_ana"
SIM_DIR = "/vo.cta.in2p3.fr/MC/PROD3/Paranal/{particle}/sim_telarray/2150/Data/{block:03d}xxx"
SIM_NAME = "{particle}_20deg_{az}deg_run{run}___cta-prod3_desert-2150m-Paranal-merged.simtel.gz"
CAMERAS = ("LSTCam", "NectarCam", "FlashCam")
ANALYSIS_CONFIG = "/home/jdoe/bench_ana/configs/analysis.yaml"
REGRESSOR = "RandomForestRegressor"


def make_lfns(count: int, particle: str = "gamma") -> list[str]:
    """Realistic prod3 LFNs: two pointings, runs grouped by thousands in Data/NNNxxx folders."""
    half = count // 2
    return [SIM_DIR.format(particle=particle, block=run // 1000) + "/"
            + SIM_NAME.format(particle=particle, az=az, run=run)
            for az, first, n in ((0, 1, half), (180, half + 1, count - half))
            for run in range(first, first + n)]


def current_rss_mb() -> float:
    with open("/proc/self/statm") as stream:
        pages = int(stream.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


# --- the approach being measured ----------------------------------------------------------------
def plan_with_plan_jobs(lfns: Sequence[str], per_job: int) -> list[str]:
    from protopipe_grid_interface.models import Particle, Stage
    from protopipe_grid_interface.workflow.plan import PlanSettings, plan_jobs

    settings = PlanSettings(
        analysis="bench_ana",
        lfn_stage_dir=f"{HOME}/data/TRAINING/for_particle_classification/gamma",
        lfn_estimators=f"{HOME}/estimators",
        analysis_config=ANALYSIS_CONFIG,
        cam_ids=CAMERAS,
        output_se="CC-IN2P3-USER",
        files_per_job=per_job,
        merge_script="/opt/pgi/payload/merge_tables.py",
    )
    specs = plan_jobs(Stage.TRAINING_CLASSIFICATION, Particle.GAMMA, lfns, settings)
    return [s.name for s in specs]


# --- the baseline: the original submit_jobs.py's job building, without DIRAC --------------------
def sliding_window(my_list: Sequence[str], window_size: int, step_size: int | None = None,
                   start: int = 0) -> Iterator[Sequence[str]]:
    """As in the original."""
    step_size = step_size or window_size
    while start + window_size < len(my_list):
        yield my_list[start:start + window_size]
        start += step_size
    else:
        yield my_list[start:]


def plan_like_the_original(lfns: Sequence[str], per_job: int) -> list[str]:
    """One shell string per file built with str.format, names cut out with re.split.

    Mirrors protopipe_grid_interface/scripts/submit_jobs.py (v0.4): the same strings it hands
    to DIRAC's Job.setExecutable / setInputData / setOutputData, kept in plain dicts instead
    of Job objects (which would cost far more: this is a lower bound on the original).
    """
    config_name, particle, mode, step = "bench_ana", "gamma", "tail", "classification"
    source = ("source /cvmfs/cta.in2p3.fr/software/conda/dev/setupConda.sh"
              " && conda activate ctapipe_v0.11.0")
    script_args = [
        "--config_file=analysis.yaml",
        "--estimate_energy=True",
        f"--regressor_config={REGRESSOR}.yaml",
        "--regressor_dir=./",
        "--outfile {outfile}",
        "--indir ./ --infile_list={infile_name}",
        "--max_events=10000000000",
        "--{mode}",
        f"--cam_ids {' '.join(CAMERAS)}",
    ]
    pilot_args_write = " ".join([source, "&&", "python data_training.py", *script_args])
    pilot_args_merge = " ".join([source, "&&", "python merge_tables.py", "--template_file_name",
                                 "{in_name}", "--outfile", "{out_name}"])
    output_path = f"{HOME}/data/TRAINING/for_particle_classification/{particle}/"
    models = ["LFN:" + os.path.join(HOME, "estimators", f"regressor_{cam}_{REGRESSOR}.pkl.gz")
              for cam in CAMERAS]
    configs = ["LFN:" + os.path.join(HOME, "estimators", f"{REGRESSOR}.yaml")]
    output_filename = "TRAINING_{}.h5"

    jobs = []
    for bunch in sliding_window(lfns, per_job):
        bunch = list(bunch)
        run_token = re.split("/", bunch[0])[-1].split("_")[3]
        if len(bunch) > 1:
            last_run = re.split("/", bunch[-1])[-1].split("_")[3]
            run_token = "-".join([run_token, last_run])
        job_name = f"protopipe_{config_name}_TRAINING_{step}_{particle}_{run_token}"
        output = output_filename.format("_".join([step, particle, mode, run_token]))
        executables = []
        for i, run_file in enumerate(bunch):
            file_token = re.split("/", bunch[i])[-1].split("_")[3]
            temp = output_filename.format("_".join([step, particle, mode, file_token]))
            executables.append(("./pilot.sh", pilot_args_write.format(
                outfile=temp, infile_name=os.path.basename(run_file), mode=mode)))
            executables.append((f"ls -lh {temp}", ""))
            executables.append(("rm", os.path.basename(run_file)))
        if len(bunch) > 1:
            executables.append(("./pilot.sh", pilot_args_merge.format(
                in_name=f"*_{particle}_", out_name=output)))
        bunch.extend(models)
        bunch.extend(configs)
        jobs.append({"name": job_name, "input_data": bunch, "executables": executables,
                     "output": [output], "output_path": output_path})
    return [job["name"] for job in jobs]


APPROACHES = {
    "baseline": ("original tool (str.format + re.split)", plan_like_the_original),
    "plan_jobs": ("plan_jobs (typed JobSpec, argv tuples)", plan_with_plan_jobs),
}


def worker(approach: str, files: int, per_job: int) -> dict[str, object]:
    """Run one approach in this process; return its figures."""
    build = APPROACHES[approach][1]
    lfns = make_lfns(files)
    if approach == "plan_jobs":  # import outside the timed region, as the baseline has no import
        import protopipe_grid_interface.workflow.plan  # noqa: F401
    gc.collect()
    before = current_rss_mb()
    start, cpu_start = time.perf_counter(), time.process_time()
    names = build(lfns, per_job)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return {
        "approach": approach,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "jobs": len(names),
        "rss_before_mb": before,
        "peak_rss_mb": peak_rss_mb(),
        "names_sha256": hashlib.sha256("\n".join(names).encode()).hexdigest(),
    }


def run_child(approach: str, files: int, per_job: int) -> dict[str, object]:
    output = subprocess.run(
        [sys.executable, __file__, "--worker", approach, "--files", str(files),
         "--per-job", str(per_job)],
        check=True, capture_output=True, text=True,
    ).stdout
    result: dict[str, object] = json.loads(output.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=1_000_000, help="number of input LFNs")
    parser.add_argument("--per-job", type=int, default=10, help="files per job")
    parser.add_argument("--worker", choices=sorted(APPROACHES), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.files, args.per_job)))
        return 0

    print(f"planning {args.files:,} LFNs, {args.per_job} per job "
          f"(python {sys.version.split()[0]}, {os.cpu_count()} cpus)")
    results = {name: run_child(name, args.files, args.per_job) for name in APPROACHES}
    base, ours = results["baseline"], results["plan_jobs"]

    def growth(result: dict[str, object]) -> float:
        return float(result["peak_rss_mb"]) - float(result["rss_before_mb"])  # type: ignore[arg-type]

    def ratio(key: str) -> float:
        return float(ours[key]) / float(base[key])  # type: ignore[arg-type]

    rows = [("approach", "jobs", "wall s", "cpu s", "peak RSS MB", "planning MB")]
    for name, result in results.items():
        rows.append((APPROACHES[name][0], f"{result['jobs']:,}", f"{result['seconds']:.2f}",
                     f"{result['cpu_seconds']:.2f}", f"{result['peak_rss_mb']:.0f}",
                     f"{growth(result):.0f}"))
    rows.append(("ratio plan_jobs / baseline", "", f"{ratio('seconds'):.2f}",
                 f"{ratio('cpu_seconds'):.2f}", f"{ratio('peak_rss_mb'):.2f}",
                 f"{growth(ours) / growth(base):.2f}"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                        for i, (cell, w) in enumerate(zip(row, widths, strict=True))))
    same = base["names_sha256"] == ours["names_sha256"]
    print(f"same job names from both: {'yes' if same else 'NO'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
