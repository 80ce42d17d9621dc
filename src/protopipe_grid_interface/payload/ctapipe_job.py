#!/usr/bin/env python
"""Run one ctapipe tool inside the current folder: ``python ctapipe_job.py TOOL [ARGS...]``.

A grid job (one step ``python ctapipe_job.py ctapipe-process ...``) and a local step both run
ctapipe through this script, so that a tool sees the same surroundings everywhere:

- the numba cache, the astropy/XDG caches and configuration and ``HOME`` are subfolders of the
  current folder (nothing is read from or written to the user's home or a shared cache);
- one thread each for OpenMP, MKL, OpenBLAS, numexpr and numba (a job gets one core);
- stdin is ``/dev/null`` (a tool that prompts fails at once instead of hanging).

TOOL is looked up beside ``sys.executable`` first, so the environment of the python that runs
this script is the one used, then on ``PATH``. The exit status is the tool's (127 when the
tool is not found, 128 + N when signal N killed it).

Python >= 3.6, standard library only.
"""
import os
import shutil
import subprocess
import sys

PROG = "ctapipe_job"
#: environment variable -> subfolder of the current folder
FOLDERS = (
    ("NUMBA_CACHE_DIR", ".numba_cache"),
    ("XDG_CACHE_HOME", ".cache"),
    ("XDG_CONFIG_HOME", ".config"),
    ("HOME", ".home"),
    ("MPLCONFIGDIR", ".config/matplotlib"),
)
#: astropy uses the XDG folders only when its own subfolder exists in them
ASTROPY_FOLDERS = (".cache/astropy", ".config/astropy")
THREADS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
           "NUMEXPR_NUM_THREADS", "NUMBA_NUM_THREADS")


def find_tool(name):
    """The tool's path: beside ``sys.executable``, else on ``PATH``; None if neither."""
    if os.sep in name:
        return name if os.access(name, os.X_OK) else None
    beside = os.path.join(os.path.dirname(sys.executable), name)
    if os.path.isfile(beside) and os.access(beside, os.X_OK):
        return beside
    return shutil.which(name)


def job_environment(folder):
    """A copy of ``os.environ`` with the caches, HOME and thread counts set for ``folder``."""
    env = dict(os.environ)
    for variable, sub in FOLDERS:
        path = os.path.join(folder, sub)
        if not os.path.isdir(path):
            os.makedirs(path)
        env[variable] = path
    for sub in ASTROPY_FOLDERS:
        path = os.path.join(folder, sub)
        if not os.path.isdir(path):
            os.makedirs(path)
    for variable in THREADS:
        env[variable] = "1"
    bindir = os.path.dirname(sys.executable)
    env["PATH"] = bindir + os.pathsep + env.get("PATH", os.defpath)
    return env


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: ctapipe_job.py TOOL [ARGS...]\n")
        return 2
    tool = find_tool(argv[0])
    if tool is None:
        sys.stderr.write("%s: %s not found beside %s nor on PATH\n"
                         % (PROG, argv[0], sys.executable))
        return 127
    env = job_environment(os.path.abspath(os.getcwd()))
    sys.stdout.write("%s: %s %s\n" % (PROG, tool, " ".join(argv[1:])))
    sys.stdout.flush()
    with open(os.devnull) as devnull:
        try:
            code = subprocess.call([tool] + list(argv[1:]), stdin=devnull, env=env)
        except OSError as exc:
            sys.stderr.write("%s: cannot run %s: %s\n" % (PROG, tool, exc))
            return 126
        except KeyboardInterrupt:
            return 130
    if code < 0:
        sys.stderr.write("%s: %s killed by signal %d\n" % (PROG, argv[0], -code))
        return 128 - code
    return code  # no line of ours after the tool's own last words


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
