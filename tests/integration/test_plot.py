#!/usr/bin/env python3
"""tools/bench/plot: every kind of JSON it knows (migbench's three scenarios, trimmed from
real runs, and run-demo's samples) becomes the SVGs it names, beside the JSON, with the
series, axis labels and the title's commit and host in them; the latency CDF is the
histogram's; a file that is not a migbench JSON and a missing gnuplot are clear errors.
gnuplot is a dependency (tools/lib-setup.sh installs gnuplot-nox): without it this fails."""
import importlib.machinery
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

PLOT = os.path.join(h.repo_root(), "tools", "bench", "plot")
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "plot-fixtures")


def run_plot(*args, env=None):
    return subprocess.run([sys.executable, PLOT] + list(args), capture_output=True, text=True,
                          timeout=h.scaled(120), env=env)


def svg_text(path):
    """The text of the SVG's <text> elements, joined; it must parse as XML."""
    root = ET.parse(path).getroot()
    h.check(root.tag.endswith("svg"), "%s: root element %s" % (path, root.tag))
    return "\n".join("".join(e.itertext()) for e in root.iter() if e.tag.endswith("text"))


def plot_fixture(tmp, name, want):
    """Plots a copy of fixture NAME in tmp; checks that exactly the SVGs of want (plot ->
    strings it must show) were written and printed, and show their strings."""
    src = os.path.join(FIXTURES, name + ".json")
    path = os.path.join(tmp, name + ".json")
    shutil.copy(src, path)
    with open(src) as f:
        doc = json.load(f)
    p = run_plot(path)
    h.check(p.returncode == 0, "%s: exit %d: %s" % (name, p.returncode, p.stderr))
    printed = p.stdout.split()
    expected = [os.path.join(tmp, "%s-%s.svg" % (name, plot)) for plot in want]
    h.check(sorted(printed) == sorted(expected), "%s: printed %s, want %s" % (name, printed, expected))
    for svg, strings in zip(expected, want.values()):
        text = svg_text(svg)
        for s in strings + [doc["scenario"], "commit %s" % doc["commit"], "host %s" % doc["host"]["name"]]:
            h.check(s in text, "%s lacks %r; its text:\n%s" % (svg, s, text))
        print("%s: %d bytes, %s" % (os.path.basename(svg), os.path.getsize(svg), ", ".join(strings)))


def case_gnuplot_installed():
    h.check(shutil.which("gnuplot") is not None,
            "gnuplot is not installed: tools/lib-setup.sh's mig_install_deps installs gnuplot-nox")


def case_every_kind():
    with tempfile.TemporaryDirectory(prefix="mig-plot-") as tmp:
        plot_fixture(tmp, "precopy-throughput", {
            "throughput": ["anon: mig (median)", "hugetlb: raw TCP baseline (distinct-2m memory)",
                           "multifd channels", "throughput (GB/s", "main"],
        })
        plot_fixture(tmp, "device-downtime", {
            "downtime-devices": ["device-state lane: median downtime", "serial (lane off, main channel)",
                                 "load time of the slowest device", "devices", "downtime (ms)",
                                 "floor: max(one device's load, raw transfer of the devices' bytes)"],
            "downtime-channels": ["device-state lane: median downtime", "multifd channels", "downtime (ms)"],
        })
        plot_fixture(tmp, "postcopy-latency", {
            "latency-netns-4k": ["preempt off", "preempt + break-huge", "floor: one fetch on an idle link",
                                 "exact p50, p90, p99", "fraction of faults", "(µs"],
            "latency-loopback-4k": ["preempt off", "preempt + break-huge", "(µs"],
        })
        plot_fixture(tmp, "demo", {
            "progress": ["sent (MiB, left axis)", "remaining: dirty, not yet sent", "send rate over 0.25 s (MiB/s",
                         "time since migrate (s)", "guest memory (MiB)", "guest stopped", "downtime"],
        })


def load_plot_module():
    loader = importlib.machinery.SourceFileLoader("mig_plot", PLOT)
    spec = importlib.util.spec_from_loader("mig_plot", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def case_cdf_from_histogram():
    plot = load_plot_module()
    dist = [0] * 24
    dist[2], dist[3], dist[5] = 1, 2, 1    # waits of 4-7, 8-15 and 32-63 µs
    h.check(plot.cdf_points(dist) == [(4.0, 0.0), (8.0, 0.25), (16.0, 0.75), (32.0, 0.75), (64.0, 1.0)],
            "cdf_points: %s" % plot.cdf_points(dist))
    dist = [3] + [0] * 23                 # bucket 0 holds waits of 0 and 1 µs
    h.check(plot.cdf_points(dist) == [(1.0, 0.0), (2.0, 1.0)], "cdf_points: %s" % plot.cdf_points(dist))
    h.check(plot.cdf_points([0] * 24) == [], "an empty histogram has no curve")
    # the fixture's arms: every curve ends at 1, and the "off" arm waits longer at p50
    with open(os.path.join(FIXTURES, "postcopy-latency.json")) as f:
        net = json.load(f)["nets"][0]
    cdfs = {r["arm"]: plot.cdf_points(plot.summed_dist(r)) for r in net["rows"]}
    for arm, pts in cdfs.items():
        h.check(pts[-1][1] == 1.0 and all(a[1] <= b[1] for a, b in zip(pts, pts[1:])),
                "%s: not a CDF: %s" % (arm, pts))

    def p50(pts):
        return next(x for x, y in pts if y >= 0.5)
    h.check(p50(cdfs["off"]) > p50(cdfs["preempt-break-huge"]),
            "the fixture's preempt-off p50 should exceed preempt+break-huge's: %s" % cdfs)


def case_refuses_what_is_not_migbench():
    with tempfile.TemporaryDirectory(prefix="mig-plot-") as tmp:
        cases = [("plain.json", '{"rows": []}', 'not a migbench JSON: no "scenario" member'),
                 ("other.json", '{"scenario": "fio"}', "not a scenario this script plots: 'fio'"),
                 ("broken.json", '{"scenario": ', "not JSON"),
                 ("dd.json", '{"scenario": "device-downtime", "rows": [{"arm": "lane"}]}',
                  "a device-downtime row without arm, channels and devices")]
        for name, text, want in cases:
            path = os.path.join(tmp, name)
            with open(path, "w") as f:
                f.write(text)
            p = run_plot(path)
            print("%s -> %d: %s" % (name, p.returncode, p.stderr.strip()))
            h.check(p.returncode == 2, "%s: exit %d, want 2" % (name, p.returncode))
            h.check(want in p.stderr and path in p.stderr, "%s: stderr %r lacks %r" % (name, p.stderr, want))
        h.check(not [f for f in os.listdir(tmp) if f.endswith(".svg")], "SVGs written for bad input")


def case_missing_gnuplot():
    with tempfile.TemporaryDirectory(prefix="mig-plot-") as tmp:
        path = os.path.join(tmp, "demo.json")
        shutil.copy(os.path.join(FIXTURES, "demo.json"), path)
        env = dict(os.environ, PATH=tmp)    # no gnuplot on it
        env.pop("GNUPLOT", None)
        p = run_plot(path, env=env)
        print("without gnuplot -> %d: %s" % (p.returncode, p.stderr.strip()))
        h.check(p.returncode == 1, "exit %d, want 1" % p.returncode)
        h.check("gnuplot not found" in p.stderr and "gnuplot-nox" in p.stderr, "stderr: %r" % p.stderr)


if __name__ == "__main__":
    h.main([case_gnuplot_installed, case_every_kind, case_cdf_from_histogram, case_refuses_what_is_not_migbench,
            case_missing_gnuplot])
