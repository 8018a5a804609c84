#!/usr/bin/env python3
"""Counts, with callgrind, how much of each Lua workload is the allocator.

    bench/lua/profile.py --builddir build/release [--only NAME] [--no-results]

Wall time on a shared machine is noisy; instruction counts are not. Each
workload of the Lua suite runs once under hklua at its quick size for every
allocator (hakmem as `--alloc=hakmem`, the others as `--alloc=libc` with
LD_PRELOAD), under `valgrind --tool=callgrind`. Reported per workload and
allocator: all instructions, and the instructions spent inside the state's
allocation function, inclusive of everything it calls (hakl_alloc for
hakmem, Lua's l_alloc and the malloc behind it for the others).

The allocator's share bounds what any allocator can do to a workload's
instruction count; the rest of a difference in wall time is memory layout
(cache and TLB misses), which callgrind does not time. Written into the
lua-profile section of bench/RESULTS.md.
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchlib  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import WORKLOADS  # noqa: E402

ALLOC_FUNCTION = {'hakmem': 'hakl_alloc'}  # the others: Lua's l_alloc
TOTAL_RE = re.compile(r'^\s*([\d,]+) .*PROGRAM TOTALS')


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', required=True, help='build directory holding hklua')
    ap.add_argument('--only', action='append', default=[],
                    help='only the workloads whose name contains this (repeatable)')
    ap.add_argument('--no-results', action='store_true', help='leave bench/RESULTS.md alone')
    return ap.parse_args()


def count(cmd, env, function):
    """(all instructions, instructions inclusive in `function`) of one run."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, 'cg.out')
        subprocess.run(['valgrind', '--tool=callgrind', '--callgrind-out-file=' + out] + cmd,
                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       check=True, timeout=1200)
        text = subprocess.run(['callgrind_annotate', '--inclusive=yes', '--threshold=100', out],
                              capture_output=True, text=True, check=True).stdout
    total, inside = None, 0
    fn_re = re.compile(r'^\s*([\d,]+) .*:%s[ \'$]' % re.escape(function))
    for line in text.splitlines():
        m = TOTAL_RE.match(line)
        if m:
            total = int(m.group(1).replace(',', ''))
            continue
        m = fn_re.match(line)
        if m:
            inside = max(inside, int(m.group(1).replace(',', '')))
    if total is None:
        raise RuntimeError('no totals in the callgrind output of %s' % ' '.join(cmd))
    return total, inside


def main():
    args = parse_args()
    hklua = os.path.join(args.builddir, 'hklua')
    if not os.path.exists(hklua):
        sys.exit('profile.py: %s not built' % hklua)
    peers = benchlib.peer_libs(lambda m: print('profile.py: warning: ' + m, file=sys.stderr))
    allocs = [a for a in benchlib.ALLOCATORS if a in ('glibc', 'hakmem') or a in peers]
    rows, failures = [], []
    for name, _, quick in WORKLOADS:
        if not benchlib.selected(name, args.only):
            continue
        script = os.path.join(benchlib.BENCH_DIR, 'lua', name + '.lua')
        for a in allocs:
            cmd = [hklua, '--alloc=' + ('hakmem' if a == 'hakmem' else 'libc'),
                   '--gc=incremental', script, str(quick)]
            env = benchlib.child_env(peers.get(a) if a not in ('glibc', 'hakmem') else None)
            try:
                total, inside = count(cmd, env, ALLOC_FUNCTION.get(a, 'l_alloc'))
            except (subprocess.SubprocessError, RuntimeError, OSError) as e:
                failures.append('%s under %s: %s' % (name, a, e))
                print('%-14s %-9s FAILED: %s' % (name, a, e), flush=True)
                continue
            rows.append({'workload': name, 'alloc': a, 'ir': total, 'alloc_ir': inside})
            print('%-14s %-9s %14d instructions, %12d in the allocator (%.2f%%)'
                  % (name, a, total, inside, 100.0 * inside / total), flush=True)
    benchlib.write_json(benchlib.out_file('lua_profile.json'), {'rows': rows})
    if not args.no_results:
        lines = ['## Where the instructions go in the Lua suite', '',
                 'Written by `bench/lua/profile.py --builddir %s`: one run per workload '
                 '(quick size, incremental GC) and allocator under callgrind. "allocator" '
                 'is everything inside the state\'s allocation function (hakl_alloc for '
                 'hakmem; Lua\'s l_alloc and the malloc it calls for the others), '
                 'memcpy of reallocations included.' % benchlib.shown(args.builddir), '',
                 '| workload | allocator | instructions (M) | in the allocator (M) | share |',
                 '|---|---|---:|---:|---:|']
        for r in rows:
            lines.append('| %s | %s | %.1f | %.2f | %.2f%% |' % (
                r['workload'], r['alloc'], r['ir'] / 1e6, r['alloc_ir'] / 1e6,
                100.0 * r['alloc_ir'] / r['ir']))
        benchlib.write_section('lua-profile', lines, failures)
    return benchlib.exit_status(failures)


if __name__ == '__main__':
    sys.exit(main())
