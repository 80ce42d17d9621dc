#!/bin/bash
# Worker-node entry point of a protopipe-grid-interface job.
#   pgi_job.sh conda SETUP_SCRIPT ENV_NAME JOB_NAME   (the grid: CVMFS conda set-up)
#   pgi_job.sh venv  ENV_PATH JOB_NAME                (a Python environment at a fixed path)
# Activates the payload environment, then runs the job's steps from jobs.json (run_job.py).
set -eu
case "$1" in
  conda)
    # shellcheck disable=SC1090
    source "$2"
    conda activate "$3"
    shift 3 ;;
  venv)
    export PATH="$2/bin:$PATH"
    export VIRTUAL_ENV="$2"
    shift 2 ;;
  *)
    echo "pgi_job.sh: unknown environment kind '$1'" >&2
    exit 2 ;;
esac
exec python run_job.py jobs.json "$1"
