#!/usr/bin/env python3
"""The memory each allocator holds on the Lua suite: the peak of its heap.

    bench/lua/memory.py --builddir build/release [--runs N] [--gc MODE]
                        [--only NAME] [--no-results]

Peak RSS (VmHWM, GNU time's %M) counts the program's code and libraries
too: file-backed pages that differ by up to 0.1-0.3 MiB from one run of
the same binary to the next, as much as the allocators differ on a small
script. This measures the anonymous part instead (RssAnon of
/proc/PID/status: the heap, the stacks, the data), polled every half
millisecond while the workload runs; its maximum is what the allocator
asked of the OS at the busiest moment, repeatable to a few KiB.
A peak held for less than the polling interval can be missed; the peaks
of these workloads last much longer.

Each workload of the Lua suite runs at its full size under hklua (hakmem
as `--alloc=hakmem`, the others `--alloc=libc` with the library in
LD_PRELOAD), `--runs` times per allocator, interleaved; reported: the
median, and hakmem against the lowest of glibc, mimalloc, jemalloc and
tcmalloc. Written into the lua-memory section of bench/RESULTS.md and
bench/out/lua_memory.json. Nothing here fails on memory.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchlib  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import MODES, WORKLOADS  # noqa: E402

POLL_S = 0.0005
TIMEOUT_S = 600
ANON_RE = re.compile(r'^RssAnon:\s+(\d+) kB', re.M)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', required=True, help='build directory holding hklua')
    ap.add_argument('--runs', type=int, default=3, help='runs per workload and allocator (3)')
    ap.add_argument('--gc', choices=MODES + ['both'], default='incremental',
                    help='GC mode(s) (incremental)')
    ap.add_argument('--only', action='append', default=[],
                    help='only the workloads whose name contains this (repeatable)')
    ap.add_argument('--no-results', action='store_true', help='leave bench/RESULTS.md alone')
    args = ap.parse_args()
    if args.runs < 1:
        ap.error('--runs must be at least 1')
    return args


def anon_peak(cmd, env):
    """The highest RssAnon (KiB) seen while `cmd` ran; raises when it fails."""
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    path = '/proc/%d/status' % p.pid
    peak, start = 0, time.monotonic()
    while p.poll() is None:
        try:
            with open(path) as f:
                m = ANON_RE.search(f.read())
            if m:
                peak = max(peak, int(m.group(1)))
        except OSError:  # between its exit and the poll
            pass
        if time.monotonic() - start > TIMEOUT_S:
            p.kill()
            raise RuntimeError('timed out: %s' % ' '.join(cmd))
        time.sleep(POLL_S)
    err = p.stderr.read().decode(errors='replace')
    if p.returncode != 0:
        raise RuntimeError('exit %d: %s\n%s' % (p.returncode, ' '.join(cmd), err[-400:]))
    return peak


def section(rows, args, mach, failures):
    lines = ['## The heap each allocator holds on the Lua suite', '',
             'Written by `bench/lua/memory.py --builddir %s --runs %d`: the peak of the '
             'process\'s anonymous RSS (RssAnon, polled every 0.5 ms), which leaves out '
             'the code and libraries that make VmHWM vary by 0.1-0.3 MiB between runs of '
             'one binary; full sizes, median (min-max) of the runs, KiB.'
             % (benchlib.shown(args.builddir), args.runs), '', benchlib.machine_md(mach), '']
    allocs = [a for a in benchlib.ALLOCATORS if any(a in r['kib'] for r in rows)]
    col = benchlib.column

    def cell(a):
        def f(r):
            v = r['kib'].get(a)
            if not v:
                return '–'
            return '%d (%d–%d)' % (statistics.median(v), min(v), max(v))
        return f

    def vs_lowest(r):
        h = r['kib'].get('hakmem')
        peers = {a: statistics.median(v) for a, v in r['kib'].items() if a != 'hakmem' and v}
        if not h or not peers:
            return '–'
        low = min(peers, key=peers.get)
        return '%.2f× %s' % (statistics.median(h) / peers[low], low)

    cols = [col('workload', lambda r: r['workload'], 'l'), col('GC', lambda r: r['gc'], 'l')]
    cols += [col(a, cell(a)) for a in allocs]
    cols.append(col('hakmem ÷ lowest peer', vs_lowest))
    lines.append(benchlib.table(cols, rows, 'md'))
    above = [r for r in rows if vs_lowest(r) != '–' and float(vs_lowest(r).split('×')[0]) > 1.0]
    lines += ['', 'hakmem\'s heap is at most the lowest peer\'s on %d of %d rows; above it on: %s.'
              % (len(rows) - len(above), len(rows),
                 ', '.join('%s %s (%s)' % (r['workload'], r['gc'], vs_lowest(r)) for r in above)
                 or 'none')]
    benchlib.write_section('lua-memory', lines, failures)


def main():
    args = parse_args()
    hklua = os.path.join(args.builddir, 'hklua')
    if not os.path.exists(hklua):
        sys.exit('memory.py: %s not built' % hklua)
    peers = benchlib.peer_libs(lambda m: print('memory.py: warning: ' + m, file=sys.stderr))
    allocs = [a for a in benchlib.ALLOCATORS if a in ('glibc', 'hakmem') or a in peers]
    modes = MODES if args.gc == 'both' else [args.gc]
    mach = benchlib.machine(peers)
    rows, failures = [], []
    tmp = tempfile.TemporaryDirectory(prefix='hakmem-bench-')
    links = {}
    exe = benchlib.fixed_path(tmp.name, hklua, links)
    scripts = benchlib.fixed_path(tmp.name, os.path.join(benchlib.BENCH_DIR, 'lua'), links)
    for name, full, _ in WORKLOADS:
        if not benchlib.selected(name, args.only):
            continue
        script = os.path.join(scripts, name + '.lua')
        for gc in modes:
            row = {'workload': name, 'gc': gc, 'kib': {a: [] for a in allocs}}
            for r in range(args.runs):
                for a in benchlib.rotated(allocs, r):
                    cmd = [exe, '--alloc=' + ('hakmem' if a == 'hakmem' else 'libc'),
                           '--gc=' + gc, script, str(full), benchlib.gc_phase_arg(r)]
                    try:
                        row['kib'][a].append(anon_peak(cmd, benchlib.child_env(peers.get(a))))
                    except RuntimeError as e:
                        failures.append('%s %s %s: %s' % (name, gc, a, e))
            print('%-14s %-12s %s' % (name, gc, '  '.join(
                '%s %s' % (a, statistics.median(v) if v else '–') for a, v in row['kib'].items())))
            rows.append(row)
    tmp.cleanup()
    benchlib.write_json(benchlib.out_file('lua_memory.json'),
                        {'machine': mach, 'runs': args.runs, 'rows': rows, 'failures': failures})
    if not args.no_results:
        section(rows, args, mach, failures)
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
