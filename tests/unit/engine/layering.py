#!/usr/bin/env python3
"""Checks that mig's include arrows point one way and that no two engine modules call
each other in a circle.

Layers, top to bottom: tools/ -> engine/ -> channels/, uffd/ (bpf/ beside the engine,
used by tools; tools/ and engine/qmp/ see only the public <mig/...> headers and
engine/qmp/). Inside engine/ the core (files directly in engine/) is the floor the
two halves stand on; engine/src/ (source) and engine/dst/ (destination) never see each
other. Above both halves stand the top modules (TOP: the commands that dispatch to a
half, query-migrate, the capability and parameter setters): only they include a half's
entry header (engine/src/src.h, engine/dst/dst.h) and call into it, and neither the
floor nor a half calls them. engine/qmp/ is an adapter over the public API.

Circles are found on calls, not on includes alone: module A depends on module B when A
calls a function B defines. Every call counts, so a half calling back into a module
that calls it is a circle; the core's floor calling up into a half or a top module is
a violation of its own. Usage: layering.py [SOURCE_ROOT]; prints every violation and
exits 1 if there is any."""
import os
import re
import sys

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), '..', '..', '..')
ENTRY = {'engine/src/src.h', 'engine/dst/dst.h'}
TOP = {'engine/control.c', 'engine/query.c', 'engine/configure.c'}
INCLUDE = re.compile(r'^\s*#\s*include\s+(["<])([^">]+)[">]', re.M)
# the build's include path (meson.build's inc), searched after the including file's own
# directory for "" includes and alone for <> ones, as the compiler does
INC_DIRS = ('.', 'engine/include')
# A non-static function definition at the start of a line: "type name(args)\n{".
DEFN = re.compile(r'^(?!static\b)(?:[A-Za-z_][\w \t*]*?[\s*])?([A-Za-z_]\w*)\s*\(([^;{}]*)\)\s*\{', re.M)
CALL = re.compile(r'\b([A-Za-z_]\w*)\s*\(')
KEYWORDS = {'if', 'while', 'for', 'switch', 'return', 'sizeof', 'defined', 'G_GNUC_PRINTF'}


def sources(top):
    out = []
    for dirpath, dirs, files in os.walk(os.path.join(ROOT, top)):
        dirs[:] = [d for d in dirs if not d.startswith('.') and d != 'build']
        for f in files:
            if f.endswith(('.c', '.h')):
                out.append(os.path.relpath(os.path.join(dirpath, f), ROOT))
    return sorted(out)


def strip_comments(text):
    text = re.sub(r'/\*.*?\*/', lambda m: '\n' * m.group(0).count('\n'), text, flags=re.S)
    return re.sub(r'//[^\n]*', '', text)


def group(path):
    """top, core, src, dst, qmp, include (engine), or the top-level directory."""
    parts = path.split('/')
    if parts[0] != 'engine':
        return parts[0]
    if path in TOP:
        return 'top'
    return parts[1] if len(parts) > 2 and parts[1] in ('src', 'dst', 'qmp', 'include') else 'core'


def resolve(path, quote, inc):
    """The tree file `#include <quote>inc` in `path` names, relative to ROOT, found the
    way the compiler finds it; None for a system or generated header."""
    dirs = ([os.path.dirname(path)] if quote == '"' else []) + list(INC_DIRS)
    for d in dirs:
        cand = os.path.normpath(os.path.join(d, inc))
        if not cand.startswith('..') and os.path.isfile(os.path.join(ROOT, cand)):
            return cand
    return None


def includes(path):
    """[(include text, the tree file it resolves to)] of one file; tree files only."""
    out = []
    for quote, inc in INCLUDE.findall(read(path)):
        target = resolve(path, quote, inc)
        if target:
            out.append((inc, target))
    return out


def tests_rule(files):
    """tests/ stands above everything: nothing outside it may include a file in it."""
    return [f'{path}: includes {inc} ({target}), a file of tests/'
            for path in files if group(path) != 'tests'
            for inc, target in includes(path) if group(target) == 'tests']


def read(path):
    with open(os.path.join(ROOT, path), encoding='utf-8', errors='replace') as f:
        return strip_comments(f.read())


def include_rules(files):
    bad = []
    for path in files:
        g = group(path)
        for inc, target in includes(path):
            ig = group(target)
            if g in ('channels', 'uffd', 'bpf') and ig in ('top', 'core', 'src', 'dst', 'qmp', 'include', 'tools'):
                bad.append(f'{path}: {g}/ includes {inc} (channels, uffd and bpf stand below the engine)')
            elif g in ('top', 'core', 'src', 'dst', 'qmp') and ig in ('tools', 'bpf'):
                bad.append(f'{path}: the engine includes {inc} (tools stand above it)')
            elif g == 'top' and ig in ('src', 'dst') and target not in ENTRY:
                bad.append(f'{path}: a top module includes {inc}, a {ig} internal (only {" and ".join(sorted(ENTRY))})')
            elif g == 'core' and ig in ('src', 'dst'):
                bad.append(f'{path}: the core includes {inc} of the {ig} half (only {", ".join(sorted(TOP))} may)')
            elif g in ('top', 'core') and ig == 'qmp':
                bad.append(f'{path}: the core includes {inc} (QMP is a layer over the core)')
            elif {g, ig} == {'src', 'dst'}:
                bad.append(f'{path}: the {g} half includes {inc} of the {ig} half')
            elif g == 'include' and ig != 'include':
                bad.append(f'{path}: a public header includes {inc}; it may name <mig/...> only')
            elif g in ('src', 'dst') and ig == 'qmp':
                bad.append(f'{path}: the {g} half includes {inc} (QMP is a layer over the engine)')
            elif path in ENTRY and ig not in ('core', 'include'):
                bad.append(f'{path}: an entry header includes {inc}; it may name core types only')
            elif g in ('qmp', 'tools') and ig in ('top', 'core', 'src', 'dst'):
                bad.append(f'{path}: {g}/ includes {inc}, an engine internal (only <mig/...> and engine/qmp/)')
    return bad


def call_graph(cfiles):
    """{module: {module it calls: [functions]}}, modules being .c files."""
    defined = {}
    texts = {p: read(p) for p in cfiles}
    for p, t in texts.items():
        for m in DEFN.finditer(t):
            if m.group(1) not in KEYWORDS:
                defined.setdefault(m.group(1), p)
    graph = {p: {} for p in cfiles}
    for p, t in texts.items():
        for name in set(CALL.findall(t)):
            q = defined.get(name)
            if q and q != p:
                graph[p].setdefault(q, []).append(name)
    return graph


def upcalls(graph):
    """Calls from the engine's floor or a half up into a top module, and from the floor
    into a half (engine/qmp/ stands above them all and may call the top)."""
    bad = []
    for p in sorted(graph):
        for q in sorted(graph[p]):
            if group(p) in ('core', 'src', 'dst') and group(q) == 'top':
                bad.append(f'{p}: calls {", ".join(sorted(graph[p][q])[:3])} of {q}, a top module')
            elif group(p) == 'core' and group(q) in ('src', 'dst'):
                bad.append(f'{p}: the core calls {", ".join(sorted(graph[p][q])[:3])} of the {group(q)} half in {q}')
    return bad


def cycles(graph):
    """One circle per strongly connected component with more than one module."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    files = [f for top in ('engine', 'channels', 'uffd', 'bpf', 'tools') for f in sources(top)]
    bad = include_rules(files) + tests_rule(files)
    graph = call_graph([f for f in files if f.startswith('engine/') and f.endswith('.c')])
    missing = [f for f in sorted(TOP) if f not in files]
    bad += [f'{f}: named in TOP but not found' for f in missing]
    bad += upcalls(graph)
    for comp in cycles(graph):
        edges = [f'{a} -> {b} ({", ".join(sorted(graph[a][b])[:3])})'
                 for a in comp for b in sorted(graph[a]) if b in comp]
        bad.append('modules calling each other in a circle: ' + ', '.join(comp) + '\n    ' + '\n    '.join(edges))
    for b in bad:
        print(b)
    print(f'{len(files)} files, {len(bad)} violations')
    return 1 if bad else 0


if __name__ == '__main__':
    sys.exit(main())
