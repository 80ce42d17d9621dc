"""The box's pilot: DIRAC's own JobAgent (``dirac-agent WorkloadManagement/JobAgent``), with
two changes that only make it look for work more often, as a busy pilot on a real site would
find it at once:

- DIRAC's agent reactor runs an agent at most every 10 s (``ThreadScheduler(minPeriod=10)``),
  and the JobAgent matches one job per cycle: here the period is the agent's ``PollingTime``;
- after each cycle that matched nothing, the JobAgent sleeps ``PollingTime x 2 x (failed
  matches in a row + 1)`` s, without bound: a box left idle for 10 minutes (while other tests
  run) then waits about a minute before it looks again. Here it sleeps ``2 x PollingTime``.

Run by start.sh with the box venv's Python in the pilot environment (``box_pilot_env``).
"""

import sys

from DIRAC.Core.Utilities import ThreadScheduler
from DIRAC.WorkloadManagementSystem.Agent import JobAgent

_scheduler_init = ThreadScheduler.ThreadScheduler.__init__
_check_matching_issues = JobAgent.JobAgent._checkMatchingIssues


def _scheduler_without_minimum_period(self, enableReactorThread=True, minPeriod=60):
    _scheduler_init(self, enableReactorThread, minPeriod=1)


def _check_without_backoff(self, job_request):
    result = _check_matching_issues(self, job_request)
    self.matchFailedCount = 0
    return result


ThreadScheduler.ThreadScheduler.__init__ = _scheduler_without_minimum_period
JobAgent.JobAgent._checkMatchingIssues = _check_without_backoff

if __name__ == "__main__":
    from DIRAC.Core.scripts.dirac_agent import main

    sys.argv = ["dirac-agent", "WorkloadManagement/JobAgent"]
    main()
