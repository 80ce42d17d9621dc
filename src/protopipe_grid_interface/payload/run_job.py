#!/usr/bin/env python
"""Run one planned job on a worker node: ``python run_job.py MANIFEST JOB_NAME``.

MANIFEST is a JSON file written at submission, shared by every job of a bulk submission:
``{"jobs": {name: {"steps": [[argv...], ...], "output_file": "...", "parts": [...]}}}``.
The steps run one after the other in the current folder, each as an argument list (never
through a shell). The job fails at the first step that fails, with its exit code. After the
last step, only the output file is left: intermediate per-file outputs and staged inputs are
removed, so that DIRAC uploads exactly one file.

Runs in the payload environment (Python >= 3.6, standard library only).
"""
import json
import os
import subprocess
import sys


def main(argv):
    if len(argv) != 2:
        sys.stderr.write("usage: run_job.py MANIFEST JOB_NAME\n")
        return 2
    manifest, name = argv
    with open(manifest) as stream:
        jobs = json.load(stream)["jobs"]
    if name not in jobs:
        sys.stderr.write("run_job: no job %r in %s\n" % (name, manifest))
        return 2
    job = jobs[name]
    for step in job["steps"]:
        print("=== " + " ".join(step), flush=True)
        try:
            code = subprocess.call(step)
        except OSError as exc:
            sys.stderr.write("run_job: %s: %s\n" % (step[0], exc))
            return 127
        if code != 0:
            sys.stderr.write("run_job: %s exited with status %d\n" % (step[0], code))
            return code
    output = job["output_file"]
    if not os.path.isfile(output):
        sys.stderr.write("run_job: the steps wrote no %s\n" % output)
        return 1
    for path in job.get("cleanup", []):
        if path != output and os.path.exists(path):
            os.remove(path)
    upload_name = job.get("upload_name", output)
    if upload_name != output:
        os.replace(output, upload_name)
        output = upload_name
    print("run_job: %s ready (%d bytes)" % (output, os.path.getsize(output)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
