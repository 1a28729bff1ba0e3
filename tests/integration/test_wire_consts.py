#!/usr/bin/env python3
"""The Python tests speak the wire by hand (Python cannot include channels/wire.h), so
their copies of its numbers are checked against the header here, read at run time: every
module-level integer constant of mig_harness.py and the test_*.py scripts whose name is
a wire.h name without its MIG_ / MIG_F_ / MIG_HELLO_ prefix (F_PC_RUN, CHAN_MAIN,
RP_READY, FOREIGN_SESSION, HELLO_F_RESUME, ...) must have wire.h's value. A constant
named like a frame type (F_*, RP_*) that names nothing in wire.h is a failure too, as
is the proxy's bad frame type being a real one or differing from migbench's
(tools/bench/faultproxy.h)."""
import ast
import glob
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import mig_harness as h  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
WIRE_H = os.path.join(h.repo_root(), "channels", "wire.h")
FAULTPROXY_H = os.path.join(h.repo_root(), "tools", "bench", "faultproxy.h")
PREFIXES = ("MIG_", "MIG_F_", "MIG_HELLO_")
WIRE_LIKE = re.compile(r"^(F|RP)_")    # frame types; other prefixes name test settings too
NOT_WIRE = {"F_BAD_TYPE"}      # the proxy's own: checked apart below


def c_int(text):
    """A C integer expression of wire.h (literals with u suffixes, shifts, |), or None."""
    text = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uU]?[lL]*\b", r"\1", text.strip())
    if not re.fullmatch(r"[0-9a-fA-FxX()<>| ]+", text):
        return None
    return eval(text, {"__builtins__": {}})   # noqa: S307 (digits, shifts and | only)


def header_numbers(path):
    """NAME -> value for every #define and enum member of the header with a numeric value."""
    with open(path) as f:
        src = re.sub(r"/\*.*?\*/", " ", f.read(), flags=re.S)
    nums = {}
    for name, val in re.findall(r"^\s*#define\s+(\w+)\s+(.+?)\s*$", src, flags=re.M):
        v = c_int(val)
        if v is not None:
            nums[name] = v
    for body in re.findall(r"enum\s*\w*\s*\{(.*?)\}", src, flags=re.S):
        for name, val in re.findall(r"\b(MIG_\w+)\s*=\s*([^,]+)", body):
            v = c_int(val)
            if v is not None:
                nums[name] = v
    return nums


def py_constants(path):
    """NAME -> int for the file's module-level assignments of integer literals (also
    NAME, NAME = 1, 2); mig_harness's come from the module itself (some are computed)."""
    if os.path.basename(path) == "mig_harness.py":
        return {n: v for n, v in vars(h).items() if n.isupper() and type(v) is int}
    with open(path) as f:
        tree = ast.parse(f.read(), path)
    out = {}
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            names = target.elts if isinstance(target, ast.Tuple) else [target]
            try:
                value = ast.literal_eval(node.value)
            except ValueError:
                continue
            values = value if isinstance(target, ast.Tuple) else [value]
            for n, v in zip(names, values):
                if isinstance(n, ast.Name) and n.id.isupper() and type(v) is int:
                    out[n.id] = v
    return out


def case_python_copies_match_wire_h():
    wire = header_numbers(WIRE_H)
    for name in ("MIG_F_PC_RUN", "MIG_F_RP_READY", "MIG_HELLO_LEN", "MIG_CHAN_MAIN", "MIG_HELLO_F_RESUME",
                 "MIG_HELLO_FOREIGN_SESSION", "MIG_PROTO_VERSION"):
        h.check(name in wire, "%s: %s not found: the parser no longer reads the header" % (WIRE_H, name))
    files = [os.path.join(HERE, "mig_harness.py")] + sorted(glob.glob(os.path.join(HERE, "test_*.py")))
    compared, problems = 0, []
    for path in files:
        for name, value in sorted(py_constants(path).items()):
            if name in NOT_WIRE:
                continue
            match = [p + name for p in PREFIXES if p + name in wire]
            if not match:
                if WIRE_LIKE.match(name):
                    problems.append("%s: %s = %#x is not in channels/wire.h" % (os.path.basename(path), name, value))
                continue
            compared += 1
            for m in match:
                if wire[m] != value:
                    problems.append("%s: %s = %#x, channels/wire.h has %s = %#x"
                                    % (os.path.basename(path), name, value, m, wire[m]))
    print("%d constants of %d files compared with %s" % (compared, len(files), WIRE_H))
    h.check(not problems, "\n".join(problems))
    # the harness's own numbers at least: a parser that matched nothing would pass
    for name in ("F_COMPLETE", "F_PC_RUN", "F_PC_RECOVER", "F_NOP", "F_GO", "F_RP_RUNNING", "F_RP_READY",
                 "HELLO_MAGIC", "HELLO_REPLY", "HELLO_LEN", "HELLO_REPLY_HDR_LEN", "FRAME_HDR_LEN",
                 "CHAN_MAIN", "CHAN_MULTIFD", "CHAN_PREEMPT", "PROTO_VERSION"):
        h.check(wire.get("MIG_" + name) == getattr(h, name),
                "mig_harness.%s = %r, channels/wire.h MIG_%s = %r" % (name, getattr(h, name), name, wire.get("MIG_" + name)))


def case_bad_type_is_no_frame():
    wire = header_numbers(WIRE_H)
    frames = {n: v for n, v in wire.items() if n.startswith("MIG_F_")}
    h.check(len(frames) >= 20, "only %d frame types read from %s" % (len(frames), WIRE_H))
    h.check(h.F_BAD_TYPE not in frames.values(), "F_BAD_TYPE %#x is a real frame type" % h.F_BAD_TYPE)
    fp = header_numbers(FAULTPROXY_H)
    h.check(fp.get("FPROXY_BAD_TYPE") == h.F_BAD_TYPE,
            "mig_harness.F_BAD_TYPE %#x, tools/bench/faultproxy.h FPROXY_BAD_TYPE %r"
            % (h.F_BAD_TYPE, fp.get("FPROXY_BAD_TYPE")))


if __name__ == "__main__":
    h.main([case_python_copies_match_wire_h, case_bad_type_is_no_frame])
