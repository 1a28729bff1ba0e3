#!/usr/bin/env python3
"""migd --device: a bad or duplicate spec stops migd at start with exit status 2 and
the reason; good specs start a migd whose simulated devices run no thread until a
migration moves them (docs/devices.md), and which quits cleanly."""
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402


def run_migd(*device_args):
    with tempfile.TemporaryDirectory(prefix="mig-devopt-") as tmp:
        argv = [h.tool("migd"), "--qmp", "unix:" + os.path.join(tmp, "qmp.sock"), "-m", "16M"]
        for spec in device_args:
            argv += ["--device", spec]
        # a spec that passes would leave migd serving: the timeout is the failure
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=h.scaled(30))
    return p.returncode, p.stderr


def case_refused_specs():
    cases = [
        (["sim,id=a,size=1Q"], "migd: --device: bad device option size=1Q: want a size"),
        (["sim,id=a"], "id=ID and size=SIZE are required"),
        (["vfio,id=a,size=1M"], "the only device type is 'sim'"),
        (["sim,id=a,size=1M,speed=9"], "unknown device option 'speed'"),
        (["sim,id=a,size=1M", "sim,id=a,size=2M"], "migd: --device: duplicate device id 'a'"),
        (["sim,id=a,size=1M", "sim,id=b,size=1Q"], "bad device option size=1Q"),   # a made, b not
    ]
    for specs, want in cases:
        rc, err = run_migd(*specs)
        print("%s -> %d: %s" % (specs, rc, err.strip()))
        h.check(rc == 2, "%s: exit status %d, want 2" % (specs, rc))
        h.check(want in err, "%s: stderr %r lacks %r" % (specs, err, want))


def device_threads(pid):
    names = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/comm" % (pid, tid)) as f:
                names.append(f.read().strip())
        except OSError:
            pass   # the thread ended meanwhile
    return [n for n in names if n.startswith("mig/dev/")]


def case_devices_idle_until_migration():
    args = h.guest_args("64M") + ["--device", "sim,id=nic0,size=100M,read-rate=1G",
                                  "--device", "sim,id=gpu0,size=4M,precopy=64M,seed=7"]
    with h.Migd("dev", args) as m:
        h.check(m.cmd("query-status").get("status") == "running", "migd not running")
        h.check(device_threads(m.pid()) == [], "device threads before any migration: %s"
                % device_threads(m.pid()))
        rc = m.quit()
        h.check(rc == 0, "quit: exit status %s" % rc)


if __name__ == "__main__":
    h.main([case_refused_specs, case_devices_idle_until_migration])
