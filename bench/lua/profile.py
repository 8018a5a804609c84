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
import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchlib  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import FLOORS, WORKLOADS  # noqa: E402

# The allocation function of each; the peers and glibc: Lua's l_alloc.
ALLOC_FUNCTION = {'hakmem': 'hakl_alloc', 'floor-mixed': 'hakl_floor_mixed',
                  'floor-segregated': 'hakl_floor_segregated'}
TOTAL_RE = re.compile(r'^\s*([\d,]+) .*PROGRAM TOTALS')


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', required=True, help='build directory holding hklua')
    ap.add_argument('--only', action='append', default=[],
                    help='only the workloads whose name contains this (repeatable)')
    ap.add_argument('--alloc', action='append', default=[],
                    choices=benchlib.ALLOCATORS + FLOORS,
                    help='only these allocators (repeatable)')
    ap.add_argument('--no-results', action='store_true', help='leave bench/RESULTS.md alone')
    ap.add_argument('--rewrite', action='store_true',
                    help='run nothing: rewrite the RESULTS.md section from bench/out/lua_profile.json')
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


def section(rows, builddir, failures):
    """The lua-profile section of RESULTS.md: the table, then what it says
    about hakmem against mimalloc."""
    lines = ['## Where the instructions go in the Lua suite', '',
             'Written by `bench/lua/profile.py --builddir %s`: one run per workload '
             '(quick size, incremental GC) and allocator under callgrind. "allocator" '
             'is everything inside the state\'s allocation function (hakl_alloc for '
             'hakmem; Lua\'s l_alloc and the malloc it calls for the others), '
             'memcpy of reallocations included.' % benchlib.shown(builddir), '']
    col = benchlib.column
    lines.append(benchlib.table(
        [col('workload', lambda r: r['workload'], 'l'), col('allocator', lambda r: r['alloc'], 'l'),
         col('instructions (M)', lambda r: '%.1f' % (r['ir'] / 1e6)),
         col('in the allocator (M)', lambda r: '%.2f' % (r['alloc_ir'] / 1e6)),
         col('share', lambda r: '%.2f%%' % (100.0 * r['alloc_ir'] / r['ir']))], rows, 'md'))
    by = {}
    for r in rows:
        by.setdefault(r['workload'], {})[r['alloc']] = r
    pairs = [(w, v['hakmem'], v['mimalloc']) for w, v in by.items()
             if 'hakmem' in v and 'mimalloc' in v and v['mimalloc']['alloc_ir']]
    if pairs:
        share = [h['alloc_ir'] / h['ir'] for _, h, _ in pairs]
        inside = [h['alloc_ir'] / m['alloc_ir'] for _, h, m in pairs]
        total = [h['ir'] / m['ir'] for _, h, m in pairs]
        lines += ['', 'What it says: the allocator is %.1f%% to %.1f%% of hakmem\'s '
                  'instructions across the workloads; inside it, hakmem runs %.2f to %.2f '
                  'times the instructions of mimalloc; the whole runs differ by %.2f to '
                  '%.2f times. No allocator can change a workload\'s instruction count by '
                  'more than its share, so where hakmem\'s wall time differs from a peer\'s '
                  'by more than that, the difference is memory layout, which callgrind does '
                  'not time (hakmem\'s exact 8-byte classes pack Lua\'s 40- and 56-byte '
                  'objects tighter, which shows in its lower peak RSS on the large heaps), '
                  'and where '
                  'the share is a few percent the allocator cannot make a workload 15%% '
                  'faster.' % (100 * min(share), 100 * max(share), min(inside), max(inside),
                               min(total), max(total))]
    benchlib.write_section('lua-profile', lines, failures)


def main():
    args = parse_args()
    if args.rewrite:
        with open(benchlib.out_file('lua_profile.json')) as f:
            section(json.load(f)['rows'], args.builddir, [])
        return 0
    hklua = os.path.join(args.builddir, 'hklua')
    if not os.path.exists(hklua):
        sys.exit('profile.py: %s not built' % hklua)
    peers = benchlib.peer_libs(lambda m: print('profile.py: warning: ' + m, file=sys.stderr))
    allocs = [a for a in benchlib.ALLOCATORS + FLOORS
              if (a in ('glibc', 'hakmem') or a in peers or a in FLOORS)
              and (not args.alloc or a in args.alloc)]
    rows, failures = [], []
    tmp = tempfile.TemporaryDirectory(prefix='hakmem-bench-')
    links = {}  # one GC schedule from any tree (benchlib.fixed_path)
    exe = benchlib.fixed_path(tmp.name, hklua, links)
    scripts = benchlib.fixed_path(tmp.name, os.path.join(benchlib.BENCH_DIR, 'lua'), links)
    for name, _, quick in WORKLOADS:
        if not benchlib.selected(name, args.only):
            continue
        script = os.path.join(scripts, name + '.lua')
        for a in allocs:
            cmd = [exe, '--alloc=' + (a if a in ALLOC_FUNCTION else 'libc'),
                   '--gc=incremental', script, str(quick)]
            env = benchlib.child_env(peers.get(a))
            try:
                total, inside = count(cmd, env, ALLOC_FUNCTION.get(a, 'l_alloc'))
            except (subprocess.SubprocessError, RuntimeError, OSError) as e:
                failures.append('%s under %s: %s' % (name, a, e))
                print('%-14s %-9s FAILED: %s' % (name, a, e), flush=True)
                continue
            rows.append({'workload': name, 'alloc': a, 'ir': total, 'alloc_ir': inside})
            print('%-14s %-9s %14d instructions, %12d in the allocator (%.2f%%)'
                  % (name, a, total, inside, 100.0 * inside / total), flush=True)
    tmp.cleanup()
    benchlib.write_json(benchlib.out_file('lua_profile.json'), {'rows': rows})
    if not args.no_results:
        section(rows, args.builddir, failures)
    return benchlib.exit_status(failures)


if __name__ == '__main__':
    sys.exit(main())
