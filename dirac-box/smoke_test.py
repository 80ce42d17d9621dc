#!/usr/bin/env python
"""Smoke test of a running DIRAC box through the DIRAC Python API (client side, user proxy).

Run:  source dirac-box/client-env.sh; python dirac-box/smoke_test.py [--pilot] [--bulk N] [--payload VENV]
  --pilot   also wait for the job to be run by the JobAgent (start.sh --pilot) to Done, and check
            its output data in the DFC/SE and the output sandbox
  --bulk N  submit a parametric job with N parameters and time it (default 100, 0 to skip)
  --payload VENV  (with --pilot) also run a job asking for 6 h of CPU that executes VENV's binaries
            by absolute path (the protopipe Python 3.8 payload venv, e.g.
            ~/.cache/protopipe-grid-interface/payload/protopipe-0.5.0) and check it starts from a
            clean Python environment (no PYTHONPATH/PYTHONHOME inherited from DIRAC)
Prints "N passed, M failed" last; exit status 0 only if all passed.
"""
import argparse
import atexit
import os
import shutil
import sys
import tempfile
import time

import DIRAC

DIRAC.initialize()
from DIRAC.Interfaces.API.Dirac import Dirac  # noqa: E402
from DIRAC.Interfaces.API.Job import Job  # noqa: E402
from DIRAC.Resources.Catalog.FileCatalog import FileCatalog  # noqa: E402
from DIRAC.Core.Security.ProxyInfo import getProxyInfo  # noqa: E402

VO = os.environ.get("BOX_VO", "vo.cta.in2p3.fr")
SE = os.environ.get("BOX_SE", "BOX-SE")
results = []


def check(name, cond, detail=""):
    results.append((name, bool(cond)))
    print(("PASS " if cond else "FAIL ") + name + (f"  [{detail}]" if detail else ""), flush=True)
    return cond


def timed(fn, *a, **kw):
    t = time.time()
    r = fn(*a, **kw)
    return r, time.time() - t


def wait_status(d, jids, wanted, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        r = d.getJobStatus(jids)
        if r["OK"] and all(r["Value"].get(j, {}).get("Status") in wanted for j in jids):
            return r, time.time() - t0
        time.sleep(1)
    return d.getJobStatus(jids), time.time() - t0


def payload_job(d, tmp, venv):
    """A job (CPUTime 6 h) running the payload venv's python and protopipe-TRAINING by absolute path."""
    script = os.path.join(tmp, "payload_venv.sh")
    with open(script, "w") as f:
        f.write(
            "#!/bin/bash\nset -eu\n"
            'echo "PYTHONPATH=[${PYTHONPATH:-}] PYTHONHOME=[${PYTHONHOME:-}]"\n'
            f'"{venv}/bin/python" -c "import sys, protopipe; print(\'payload python\', sys.version.split()[0], protopipe.__file__)"\n'
            f'"{venv}/bin/protopipe-TRAINING" --help > /dev/null\n'
            "echo payload-ok\n"
        )
    pj = Job()
    pj.setName("box-payload-venv")
    pj.setExecutable("payload_venv.sh")
    pj.setInputSandbox([script])
    pj.setOutputSandbox(["std.out", "std.err", "Script1_CodeOutput.log"])  # the payload's own stdout
    pj.setCPUTime(6 * 3600)
    r = d.submitJob(pj)
    if not check("submit payload-venv job (CPUTime 6 h)", r["OK"], str(r.get("Message", ""))):
        return
    pid = r["Value"]
    jdl = d.getJobJDL(pid)
    check("JDL CPUTime = 21600", jdl["OK"] and str(jdl["Value"].get("CPUTime")) == "21600", str(jdl.get("Value", {}).get("CPUTime")))
    r, dt = wait_status(d, [pid], {"Done", "Failed"}, 300)
    st = r["Value"][pid] if r["OK"] else r
    check("payload-venv job Done", r["OK"] and st["Status"] == "Done", f"{dt:.1f}s {st}")
    od = tempfile.mkdtemp()
    r = d.getOutputSandbox(pid, outputDir=od)
    out = ""
    if r["OK"]:
        p = os.path.join(od, str(pid), "Script1_CodeOutput.log")
        out = open(p).read() if os.path.exists(p) else ""
    check("payload venv ran (Python 3.8, protopipe imported, clean env)",
          "payload python 3.8" in out and "payload-ok" in out and "PYTHONPATH=[] PYTHONHOME=[]" in out,
          " | ".join(out.strip().splitlines()[-4:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pilot", action="store_true")
    ap.add_argument("--bulk", type=int, default=100)
    ap.add_argument("--payload", help="payload venv whose binaries a job runs by absolute path")
    args = ap.parse_args()
    # every temporary file and downloaded sandbox under one directory, removed at exit
    tempfile.tempdir = tempfile.mkdtemp(prefix="dirac-box-smoke-")
    atexit.register(shutil.rmtree, tempfile.tempdir, True)
    d = Dirac()
    info = getProxyInfo()["Value"]
    user, group = info["username"], info["group"]
    home = f"/{VO}/user/{user[0]}/{user}"
    check("proxy", info["secondsLeft"] > 0, f"{user}@{group}")

    # ---------------------------------------------------------------- data management
    tmp = tempfile.mkdtemp()
    local = os.path.join(tmp, "box_input.txt")
    with open(local, "w") as f:
        f.write("hello from the DIRAC box\n")
    lfn = f"{home}/smoke/box_input_{int(time.time())}.txt"
    r, dt = timed(d.addFile, lfn, local, SE)
    check("Dirac.addFile (upload+register)", r["OK"], f"{dt:.2f}s {r.get('Message', '')}")
    r = d.getReplicas(lfn)
    check("Dirac.getReplicas", r["OK"] and SE in r["Value"]["Successful"].get(lfn, {}), str(r.get("Value", r)))
    r = d.getLfnMetadata(lfn)
    check("Dirac.getLfnMetadata", r["OK"] and lfn in r["Value"]["Successful"], "")
    fc = FileCatalog()
    r = fc.listDirectory(os.path.dirname(lfn))
    check("FileCatalog.listDirectory", r["OK"] and lfn in r["Value"]["Successful"][os.path.dirname(lfn)]["Files"])
    r = fc.findFilesByMetadata({}, path=home)
    check("FileCatalog.findFilesByMetadata", r["OK"], str(r.get("Message", "")))
    dl = tempfile.mkdtemp()
    r, dt = timed(d.getFile, lfn, destDir=dl)
    ok = r["OK"] and os.path.exists(os.path.join(dl, os.path.basename(lfn)))
    check("Dirac.getFile (download)", ok, f"{dt:.2f}s {r.get('Message', '')}")
    r, dt = timed(d.replicateFile, lfn, SE + "2")
    check("Dirac.replicateFile -> BOX-SE2", r["OK"], f"{dt:.2f}s {r.get('Message', '')}")
    r = d.getReplicas(lfn)
    check("2 replicas", r["OK"] and len(r["Value"]["Successful"].get(lfn, {})) == 2, str(r.get("Value")))
    r = d.removeReplica(lfn, SE + "2")
    check("Dirac.removeReplica", r["OK"] and lfn in r["Value"]["Successful"], str(r.get("Value", r)))
    r = d.removeFile(lfn)
    check("Dirac.removeFile", r["OK"] and lfn in r["Value"]["Successful"], str(r.get("Message", "")))
    r = fc.isFile(lfn)
    check("file gone from DFC", r["OK"] and not r["Value"]["Successful"].get(lfn), str(r.get("Value")))

    # ---------------------------------------------------------------- single job
    j = Job()
    j.setName("box-smoke")
    script = os.path.join(tmp, "payload.sh")
    with open(script, "w") as f:
        f.write("#!/bin/bash\necho payload running on $(hostname)\necho result > result.txt\n")
    j.setExecutable("payload.sh")
    j.setInputSandbox([script])
    j.setOutputSandbox(["std.out", "std.err", "result.txt"])
    out_lfn_dir = f"{home}/smoke/out_{int(time.time())}"
    j.setOutputData(["result.txt"], outputSE=SE, outputPath=out_lfn_dir.replace(home, "").lstrip("/"))
    r, dt = timed(d.submitJob, j)
    check("Dirac.submitJob", r["OK"], f"{dt:.2f}s jobID={r.get('Value')} {r.get('Message', '')}")
    if not r["OK"]:
        return
    jid = r["Value"]
    r, dt = wait_status(d, [jid], {"Waiting", "Matched", "Running", "Completing", "Done", "Failed"}, 60)
    st = r["Value"][jid] if r["OK"] else r
    check("job reaches Waiting (optimizers)", r["OK"] and st["Status"] != "Failed", f"{dt:.1f}s {st}")
    r = d.getJobJDL(jid)
    check("Dirac.getJobJDL", r["OK"] and r["Value"].get("JobName") == "box-smoke")
    # Dirac.getJobSummary (9.1.9) returns all values 'None' (int vs str job-ID keys); use the client instead
    from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import JobMonitoringClient as _JMC

    r = _JMC().getJobAttributes(jid)
    check("JobMonitoringClient.getJobAttributes", r["OK"] and r["Value"]["Owner"] == user, str(r.get("Message", "")))
    r = d.getJobLoggingInfo(jid)
    check("Dirac.getJobLoggingInfo", r["OK"] and len(r["Value"]) >= 2, str(r.get("Value", r))[:200])
    r = d.selectJobs(owner=user, date=time.strftime("%Y-%m-%d"))
    check("Dirac.selectJobs(owner, date)", r["OK"] and str(jid) in [str(x) for x in r["Value"]], "")
    r = d.getJobParameters(jid)
    check("Dirac.getJobParameters (needs OpenSearch)", r["OK"], str(r.get("Message", ""))[:120])

    if args.pilot:
        r, dt = wait_status(d, [jid], {"Done", "Failed"}, 300)
        st = r["Value"][jid] if r["OK"] else r
        check("job Done via JobAgent/InProcess", r["OK"] and st["Status"] == "Done", f"{dt:.1f}s {st}")
        od = tempfile.mkdtemp()
        r = d.getOutputSandbox(jid, outputDir=od)
        check("Dirac.getOutputSandbox", r["OK"], str(r.get("Message", "")))
        r = d.getJobOutputLFNs(jid)
        check("Dirac.getJobOutputLFNs", r["OK"] and r["Value"], str(r.get("Value", r)))
        if r["OK"] and r["Value"]:
            r2 = d.getFile(r["Value"][0], destDir=od)
            check("Dirac.getFile(output data)", r2["OK"], str(r2.get("Message", "")))
            # a job that takes that output as its input data (needs Operations/InputDataPolicy in the CS)
            lfn_in = r["Value"][0]
            ji = Job()
            ji.setName("box-smoke-input")
            reader = os.path.join(tmp, "reader.sh")
            with open(reader, "w") as f:
                f.write("#!/bin/bash\nset -e\ngrep -q result result.txt\n")
            ji.setExecutable("reader.sh")
            ji.setInputSandbox([reader])
            ji.setInputData([lfn_in])
            r3 = d.submitJob(ji)
            if r3["OK"]:
                r4, dt = wait_status(d, [r3["Value"]], {"Done", "Failed"}, 300)
                st = r4["Value"][r3["Value"]] if r4["OK"] else r4
                check("job with InputData Done (input downloaded from the SE)", r4["OK"] and st["Status"] == "Done",
                      f"{dt:.1f}s {st}")
            else:
                check("job with InputData submitted", False, r3.get("Message", ""))
            d.removeFile(r["Value"])
        if args.payload:
            payload_job(d, tmp, os.path.abspath(os.path.expanduser(args.payload)))
    else:
        r = d.killJob(jid)
        check("Dirac.killJob", r["OK"], str(r.get("Message", "")))

    # ---------------------------------------------------------------- set a (stuck) job to Failed
    from DIRAC.WorkloadManagementSystem.Client.JobStateUpdateClient import JobStateUpdateClient
    from DIRAC.WorkloadManagementSystem.Client.JobMonitoringClient import JobMonitoringClient

    sj = Job()
    sj.setName("box-stuck")
    sj.setExecutable("sleep", arguments="1")
    sj.setTag(["NoSuchTag"])  # no pilot provides this tag: stays Waiting
    r = d.submitJob(sj)
    if check("submit job that no pilot matches", r["OK"], str(r.get("Message", ""))):
        sid = r["Value"]
        wait_status(d, [sid], {"Waiting", "Failed"}, 30)
        # force=True overrides the job state machine (Waiting -> Failed is not a normal transition); DIRAC 9.1.22
        # only honours it for JobAdministrator proxies (9.1.9 for anyone), and returns OK either way
        admin = os.path.join(os.environ.get("BOX", "/tmp/dirac-box"), "client", "admin-proxy.pem")
        kw = {"proxyLocation": admin} if os.path.exists(admin) else {}
        r = JobStateUpdateClient(**kw).setJobStatus(sid, "Failed", "Stuck: set by box test", "dirac-box", None, True)
        st = d.getJobStatus(sid)
        check("JobStateUpdateClient.setJobStatus(Failed, force)", r["OK"] and st["Value"][sid]["Status"] == "Failed",
              str(st.get("Value", st)))
        r = JobMonitoringClient().getJobs({"Owner": user, "Status": "Failed"})
        check("JobMonitoringClient.getJobs({Owner, Status})", r["OK"] and str(sid) in [str(x) for x in r["Value"]])
        r = d.selectJobs(status="Failed", owner=user)
        check("Dirac.selectJobs(status=Failed)", r["OK"] and str(sid) in [str(x) for x in r["Value"]])
        d.deleteJob(sid)

    # ---------------------------------------------------------------- submit latency
    lat = []
    ids = []
    for i in range(10):
        lj = Job()
        lj.setName(f"box-lat-{i}")
        lj.setExecutable("echo", arguments=str(i))
        lj.setTag(["NoSuchTag"])
        r, dt = timed(d.submitJob, lj)
        if r["OK"]:
            lat.append(dt)
            ids.append(r["Value"])
    check("10 single submits", len(lat) == 10, f"mean {sum(lat)/max(len(lat),1):.3f}s max {max(lat or [0]):.3f}s")
    r = d.deleteJob(ids)  # deleteJob kills Waiting jobs as well
    check("Dirac.deleteJob(list) of Waiting jobs", r["OK"], str(r.get("Message", "")))

    # ---------------------------------------------------------------- parametric (bulk) job
    if args.bulk:
        pj = Job()
        pj.setName("box-param")
        pj.setExecutable("echo", arguments="param %(args)s")
        pj.setParameterSequence("args", [str(i) for i in range(args.bulk)], addToWorkflow=True)
        pj.setTag(["NoSuchTag"])  # keep them Waiting even when the JobAgent runs
        r, dt = timed(d.submitJob, pj)
        n = len(r["Value"]) if r["OK"] else 0
        check(f"parametric submitJob x{args.bulk}", r["OK"] and n == args.bulk, f"{dt:.2f}s {n} jobs {r.get('Message', '')}")
        if r["OK"]:
            jids = r["Value"]
            rr, dt = wait_status(d, jids, {"Waiting", "Matched", "Running", "Completing", "Done"}, 180)
            nw = sum(1 for v in rr.get("Value", {}).values() if v["Status"] in ("Waiting", "Matched", "Running", "Done"))
            check("parametric jobs reach Waiting", nw == len(jids), f"{nw}/{len(jids)} in {dt:.1f}s")
            r, dt = timed(d.killJob, jids)
            check("Dirac.killJob(list)", r["OK"], f"{dt:.2f}s")
            # DIRAC quirk: deleteJob re-issues a Kill command; within the same second as killJob that hits a
            # duplicate key in JobDB.JobCommands and returns "Some jobs failed deletion" (jobs still end Deleted)
            time.sleep(1.1)
            r, dt = timed(d.deleteJob, jids)
            st = d.getJobStatus(jids)
            nd = sum(1 for v in st.get("Value", {}).values() if v["Status"] == "Deleted")
            check("Dirac.deleteJob(list)", r["OK"] and nd == len(jids), f"{dt:.2f}s {nd} Deleted {r.get('Message', '')}")

    npass = sum(ok for _, ok in results)
    print(f"{npass} passed, {len(results) - npass} failed")
    return 0 if npass == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
