"""Delete the box's empty task queues, as DIRAC means to but, in 9.1.9, never does.

Why: every job goes into a task queue (TQ). ``TaskQueueDB.insertJob`` reuses a TQ only if
that TQ still holds jobs, because ``__findSmallestTaskQueue`` joins ``tq_Jobs``. So a job
submitted after the last one has been matched gets a new TQ. A TQ that has lost its last job
is meant to be deleted 300 s later, through ``__deleteTQWithDelay = DictCache(__deleteTQIfEmpty)``
(``deleteJob`` and ``matchAndGetJob`` add the TQ to it). But a ``DictCache`` only calls its delete
function for a key that is read again, or that is purged, and nothing ever purges that cache. So
empty TQs pile up for good, 30 to 90 an hour here (539 after one CI day).

Why that delays matching: ``matchAndGetJob`` does 3 tries (``__maxMatchRetry``). Each try takes
10 random matching TQs (``numQueuesPerTry=10``, ``ORDER BY RAND() / tq.Priority ... LIMIT 10``).
When none of the 30 holds a job, the Matcher answers "No match found". With about 400 matching
TQs, a pilot polling every 3 s waits 30 s on average for a Waiting job, and sometimes 2 minutes.
Neither limit can be set in the CS.

What this does: every ``PERIOD`` s it lists the enabled TQs that have no job. It deletes a TQ only
if it was already empty in the previous pass, so only a TQ empty for at least ``PERIOD`` s. The
delete uses DIRAC's own ``deleteTaskQueueIfEmpty``, the function the 300 s cache was meant to
call. That function checks again that the TQ is enabled and empty, drops its condition rows and
recomputes the owner's shares. An empty TQ never gets new jobs, because insertJob only picks a
TQ that has jobs, so waiting one pass is enough to be safe. Run by start.sh in the server
environment. Its log is ``$BOX/logs/TQJanitor.log``.
"""

import time

from DIRAC.Core.Base.Script import Script

PERIOD = 10  # seconds between passes; also the least time a TQ stays empty before it is deleted


def main():
    Script.parseCommandLine(ignoreErrors=True)
    from DIRAC import gLogger
    from DIRAC.WorkloadManagementSystem.DB.TaskQueueDB import TaskQueueDB

    gLogger.showHeaders(True)  # timestamps, as in the services' logs
    log = gLogger.getSubLogger("TQJanitor")
    tqDB = TaskQueueDB()
    emptyBefore = set()
    while True:
        result = tqDB._query(
            "SELECT TQId FROM `tq_TaskQueues` WHERE Enabled >= 1 "
            "AND TQId NOT IN ( SELECT DISTINCT TQId FROM `tq_Jobs` )"
        )
        if not result["OK"]:
            log.error("Cannot list the empty TQs", result["Message"])
            emptyBefore = set()
        else:
            empty = {row[0] for row in result["Value"]}
            deleted = 0
            for tqId in sorted(empty & emptyBefore):
                res = tqDB.deleteTaskQueueIfEmpty(tqId)
                if not res["OK"]:
                    log.error("Cannot delete TQ", f"{tqId}: {res['Message']}")
                elif res["Value"] is not False:
                    deleted += 1
            if deleted:
                log.notice(f"Deleted {deleted} empty task queues")
            emptyBefore = empty
        time.sleep(PERIOD)


if __name__ == "__main__":
    main()
