#!/usr/bin/env python3
"""Runs the micro-benchmarks under every allocator and reports them side by side.

    bench/micro/run.py --builddir build/release [--runs N] [--quick] [--callgrind]

Each benchmark binary runs under glibc (no preload), mimalloc, jemalloc and
tcmalloc (LD_PRELOAD into the plain binary) and hakmem (the _hak binary,
which calls hakmem's API), interleaved: run 1 of every allocator, then
run 2, ..., with the allocator order rotated from one round to the next so
that none always runs first.  Each child prints one JSON line; its
ops_per_s and peak_rss_kb (getrusage ru_maxrss) are kept.  All allocators
must report the same checksum for a benchmark: they replayed the same calls.

The table (median and min-max of each figure, and the ratios to glibc and to
mimalloc) is printed, written to bench/out/micro.json, and into the micro
section of bench/RESULTS.md.  A benchmark is never a timed test: nothing
here fails on speed, only on a child that fails or disagrees.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchlib  # noqa: E402

# (label, binary, arguments)
BENCHMARKS = [
    ('random_mixed 400', 'random_mixed', ['--slots=400']),
    ('random_mixed 8192', 'random_mixed', ['--slots=8192']),
    ('lua_trace', 'lua_trace', []),
]
TIMEOUT_S = 120
CALLGRIND_OPS = 1000000


def warn(msg):
    print('run.py: warning: %s' % msg, file=sys.stderr)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', required=True,
                    help='build directory holding bench/<name> and bench/<name>_hak')
    ap.add_argument('--runs', type=int, default=None,
                    help='runs per benchmark and allocator (default 7, --quick 3)')
    ap.add_argument('--quick', action='store_true', help='3 runs each')
    ap.add_argument('--only', action='append', default=[],
                    help='run only the benchmarks whose label contains this (repeatable)')
    ap.add_argument('--alloc', action='append', default=[], choices=benchlib.ALLOCATORS,
                    help='run only these allocators (repeatable)')
    ap.add_argument('--no-results', action='store_true',
                    help='do not rewrite bench/RESULTS.md')
    ap.add_argument('--callgrind', action='store_true',
                    help='also count instructions per operation with callgrind '
                         '(one run each, %d operations; repeatable on a noisy machine)'
                    % CALLGRIND_OPS)
    args = ap.parse_args()
    if args.runs is None:
        args.runs = 3 if args.quick else 7
    if args.runs < 1:
        ap.error('--runs must be at least 1')
    return args


def plan(args):
    """[(allocator, command for a benchmark, env)] for the allocators present."""
    bindir = os.path.join(args.builddir, 'bench')
    peers = benchlib.peer_libs(warn)
    allocs = args.alloc or benchlib.ALLOCATORS
    runners = {}
    for a in allocs:
        if a == 'glibc':
            runners[a] = ('', None)
        elif a == 'hakmem':
            runners[a] = ('_hak', None)
        elif a in peers:
            runners[a] = ('', peers[a])
    benches = [b for b in BENCHMARKS
               if not args.only or any(o in b[0] for o in args.only)]
    jobs = []
    for label, binary, bargs in benches:
        for a, (suffix, preload) in runners.items():
            exe = os.path.join(bindir, binary + suffix)
            if not os.access(exe, os.X_OK):
                warn('%s missing: %s skipped under %s (build it with ninja)'
                     % (exe, label, a))
                continue
            jobs.append((label, a, [exe] + bargs, benchlib.child_env(preload)))
    return jobs, peers


def run_one(cmd, env):
    """The JSON line a benchmark printed, or raises RuntimeError."""
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError('timed out after %d s' % TIMEOUT_S)
    if p.returncode != 0:
        raise RuntimeError('exit status %d: %s' % (p.returncode, p.stderr.strip()[-500:]))
    for line in reversed(p.stdout.splitlines()):
        if line.startswith('{'):
            return json.loads(line)
    raise RuntimeError('no result line in its output')


def measure(jobs, runs):
    """Runs everything interleaved; returns {(label, alloc): [result dicts]}
    and the list of failures."""
    results = {(label, a): [] for label, a, _, _ in jobs}
    failures = []
    total = len(jobs) * runs
    done = 0
    for r in range(runs):
        # Rotate the order each round: no allocator always runs first.
        k = (r * 3) % len(jobs) if jobs else 0
        for label, a, cmd, env in jobs[k:] + jobs[:k]:
            done += 1
            try:
                res = run_one(cmd, env)
            except RuntimeError as e:
                failures.append('%s under %s: %s' % (label, a, e))
                print('[%3d/%d] %-18s %-9s run %d: FAILED: %s'
                      % (done, total, label, a, r + 1, e), flush=True)
                continue
            results[(label, a)].append(res)
            print('[%3d/%d] %-18s %-9s run %d: %8.2f Mops/s  %7.1f MiB peak RSS'
                  % (done, total, label, a, r + 1, res['ops_per_s'] / 1e6,
                     res['peak_rss_kb'] / 1024.0), flush=True)
    return results, failures


def callgrind(jobs, failures):
    """Instructions per operation inside the measured function of each
    benchmark (bench_measured: the allocator calls plus the loop around
    them, which is the same for every allocator), counted by callgrind.
    Returns {(label, alloc): instructions per operation}."""
    valgrind = shutil.which('valgrind')
    if not valgrind:
        warn('valgrind not found (Debian package valgrind): no instruction counts')
        return {}
    out = {}
    with tempfile.TemporaryDirectory(prefix='hakmem-cg-') as tmp:
        for k, (label, a, cmd, env) in enumerate(jobs):
            cg = os.path.join(tmp, 'cg.%d' % k)
            full = [valgrind, '--tool=callgrind', '--toggle-collect=bench_measured*',
                    '--callgrind-out-file=' + cg] + cmd + ['--ops=%d' % CALLGRIND_OPS]
            try:
                p = subprocess.run(full, env=env, capture_output=True, text=True,
                                   timeout=TIMEOUT_S * 5)
                if p.returncode != 0:
                    raise RuntimeError('exit status %d: %s' % (p.returncode,
                                                               p.stderr.strip()[-300:]))
                res = None
                for line in reversed(p.stdout.splitlines()):
                    if line.startswith('{'):
                        res = json.loads(line)
                        break
                with open(cg) as f:
                    total = next(int(l.split()[1]) for l in f if l.startswith('summary:'))
                if not res or not res.get('ops') or total == 0:
                    raise RuntimeError('no result or no instructions collected')
            except (RuntimeError, OSError, StopIteration, ValueError,
                    subprocess.TimeoutExpired) as e:
                failures.append('callgrind %s under %s: %s' % (label, a, e))
                print('callgrind %-18s %-9s FAILED: %s' % (label, a, e), flush=True)
                continue
            out[(label, a)] = total / res['ops']
            print('callgrind %-18s %-9s %7.1f instructions per operation'
                  % (label, a, out[(label, a)]), flush=True)
    return out


def callgrind_md(ir):
    labels = []
    for label, _ in ir:
        if label not in labels:
            labels.append(label)
    allocs = [a for a in benchlib.ALLOCATORS if any(x == a for _, x in ir)]
    out = ['| benchmark | ' + ' | '.join(allocs) + ' |',
           '|---|' + '---:|' * len(allocs)]
    for label in labels:
        out.append('| %s | %s |' % (label, ' | '.join(
            '%.1f' % ir[(label, a)] if (label, a) in ir else '–' for a in allocs)))
    return '\n'.join(out)


def check_checksums(results, failures):
    """Every allocator of one benchmark must report the same checksum."""
    by_label = {}
    for (label, a), rs in results.items():
        for res in rs:
            by_label.setdefault(label, {}).setdefault(res.get('checksum'), set()).add(a)
    for label, sums in by_label.items():
        if len(sums) > 1:
            failures.append('%s: checksums differ between allocators: %s'
                            % (label, {str(k): sorted(v) for k, v in sums.items()}))


def tabulate(results):
    """Rows of summary figures, one per (benchmark, allocator), in order."""
    rows = []
    labels = []
    for label, _ in results:
        if label not in labels:
            labels.append(label)
    for label in labels:
        base = {}
        for a in benchlib.ALLOCATORS:
            rs = results.get((label, a))
            if not rs:
                continue
            ops = benchlib.summary([x['ops_per_s'] for x in rs])
            rss = benchlib.summary([x['peak_rss_kb'] for x in rs])
            base[a] = ops['median']
            rows.append({'bench': label, 'alloc': a, 'runs': ops['n'],
                         'ops_per_s': ops, 'peak_rss_kb': rss})
        for row in rows:
            if row['bench'] != label:
                continue
            med = row['ops_per_s']['median']
            row['vs_glibc'] = med / base['glibc'] if base.get('glibc') else None
            row['vs_mimalloc'] = med / base['mimalloc'] if base.get('mimalloc') else None
    return rows


def fmt_ratio(x):
    return '%.2f×' % x if x else '–'


def table_md(rows):
    out = ['| benchmark | allocator | Mops/s median | min–max | vs glibc | vs mimalloc '
           '| peak RSS MiB median | min–max |',
           '|---|---|---:|---:|---:|---:|---:|---:|']
    for row in rows:
        o, m = row['ops_per_s'], row['peak_rss_kb']
        out.append('| %s | %s | %.2f | %.2f–%.2f | %s | %s | %.1f | %.1f–%.1f |' % (
            row['bench'], row['alloc'], o['median'] / 1e6, o['min'] / 1e6,
            o['max'] / 1e6, fmt_ratio(row['vs_glibc']), fmt_ratio(row['vs_mimalloc']),
            m['median'] / 1024, m['min'] / 1024, m['max'] / 1024))
    return '\n'.join(out)


def table_text(rows):
    out = ['%-18s %-9s %9s %17s %8s %8s %9s' % ('benchmark', 'allocator', 'Mops/s',
                                               'min-max', 'vs glibc', 'vs mi', 'RSS MiB')]
    for row in rows:
        o, m = row['ops_per_s'], row['peak_rss_kb']
        out.append('%-18s %-9s %9.2f %8.2f-%-8.2f %8s %8s %9.1f' % (
            row['bench'], row['alloc'], o['median'] / 1e6, o['min'] / 1e6, o['max'] / 1e6,
            fmt_ratio(row['vs_glibc']), fmt_ratio(row['vs_mimalloc']), m['median'] / 1024))
    return '\n'.join(out)


def goal_line(rows):
    """The issue's goal, stated with the figure measured, whatever it is."""
    for row in rows:
        if row['bench'] == 'random_mixed 400' and row['alloc'] == 'hakmem' and row['vs_mimalloc']:
            x = row['vs_mimalloc']
            return ('Goal: hakmem at least 1.2× mimalloc on random_mixed; measured %.2f× '
                    'with 400 slots (%s).' % (x, 'met' if x >= 1.2 else 'NOT met'))
    return 'Goal: hakmem at least 1.2× mimalloc on random_mixed; not measured in this run.'


def main():
    args = parse_args()
    jobs, peers = plan(args)
    if not jobs:
        print('run.py: nothing to run (build the benchmarks first: ninja -C %s)'
              % args.builddir, file=sys.stderr)
        return 1
    mach = benchlib.machine(peers)
    print('micro-benchmarks: %d runs each, %d benchmark/allocator pairs, interleaved'
          % (args.runs, len(jobs)), flush=True)
    results, failures = measure(jobs, args.runs)
    check_checksums(results, failures)
    rows = tabulate(results)
    ir = callgrind(jobs, failures) if args.callgrind else {}

    print()
    print(table_text(rows))
    print(goal_line(rows))
    if ir:
        print('\ninstructions per operation (callgrind, %d operations):' % CALLGRIND_OPS)
        print(callgrind_md(ir))

    os.makedirs(os.path.join(benchlib.BENCH_DIR, 'out'), exist_ok=True)
    raw = os.path.join(benchlib.BENCH_DIR, 'out', 'micro.json')
    with open(raw, 'w') as f:
        json.dump({'machine': mach, 'runs': args.runs, 'builddir': args.builddir,
                   'rows': rows, 'failures': failures,
                   'callgrind_ir_per_op': [{'bench': l, 'alloc': a, 'ir_per_op': v}
                                           for (l, a), v in ir.items()],
                   'raw': [{'bench': l, 'alloc': a, 'results': rs}
                           for (l, a), rs in results.items()]}, f, indent=1)
    print('wrote %s' % benchlib.rel(raw))

    if not args.no_results:
        body = ['## Micro-benchmarks', '',
                'Written by `bench/micro/run.py --builddir %s --runs %d`: median '
                'and min–max over %d interleaved runs per allocator; hakmem '
                'through its API (the `_hak` binaries), peers through LD_PRELOAD.'
                % (benchlib.shown(args.builddir), args.runs, args.runs), '',
                benchlib.machine_md(mach), '', table_md(rows), '', goal_line(rows)]
        if ir:
            body += ['', 'Instructions per operation, counted by callgrind inside the '
                     'measured loop (one run of %d operations each; the loop around the '
                     'allocator calls is the same code for every allocator):'
                     % CALLGRIND_OPS, '', callgrind_md(ir)]
        if failures:
            body += ['', 'Failures in this run:', '']
            body += ['- ' + f for f in failures]
        benchlib.update_section('micro', '\n'.join(body))
        print('updated %s (micro section)' % benchlib.rel(benchlib.RESULTS_MD))

    if failures:
        print('\n%d failure(s):' % len(failures), file=sys.stderr)
        for f in failures:
            print('  ' + f, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
