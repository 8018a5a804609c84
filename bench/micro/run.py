#!/usr/bin/env python3
"""Runs the micro-benchmarks under every allocator and reports them side by side.

    bench/micro/run.py --builddir build/release [--runs N] [--quick] [--callgrind]
                       [--also-builddir build/secure]

Each benchmark binary runs under glibc (no preload), mimalloc, jemalloc and
tcmalloc (LD_PRELOAD into the plain binary) and hakmem (the _hak binary,
which calls hakmem's API; --also-builddir DIR adds DIR's _hak binary as
"hakmem-<DIR's name>", e.g. the secure build), interleaved: run 1 of every allocator, then
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
    ap.add_argument('--also-builddir', action='append', default=[], metavar='DIR',
                    help='also run the _hak binaries of another hakmem build, as '
                         'hakmem-<name of DIR> (repeatable)')
    ap.add_argument('--no-results', action='store_true',
                    help='do not rewrite bench/RESULTS.md')
    ap.add_argument('--callgrind', action='store_true',
                    help='also count instructions per operation with callgrind '
                         '(one run each, %d operations; repeatable on a noisy machine)'
                    % CALLGRIND_OPS)
    args = ap.parse_args()
    benchlib.settle_runs(ap, args, 7)
    return args


def plan(args):
    """[benchlib.Job] for the benchmarks and allocators present, and the
    peers found."""
    bindir = os.path.join(args.builddir, 'bench')
    peers = benchlib.peer_libs(warn)
    variants = {}
    for a in args.alloc or benchlib.ALLOCATORS:
        v = benchlib.binary_variant(a, peers)
        if v:
            variants[a] = v
    jobs = []
    for label, binary, bargs in BENCHMARKS:
        if benchlib.selected(label, args.only):
            jobs += benchlib.binary_jobs(bindir, binary, label, variants, bargs, warn)
            for d in args.also_builddir:
                jobs += benchlib.binary_jobs(os.path.join(d, 'bench'), binary, label,
                                             {benchlib.also_label(d): ('_hak', None)}, bargs, warn)
    return jobs, peers


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
                res = benchlib.last_json(p.stdout)
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


def callgrind_table(ir, style):
    """A row per benchmark, a column per allocator."""
    allocs = benchlib.in_order(a for _, a in ir)
    cols = [benchlib.column('benchmark', lambda label: label, 'l')]
    cols += [benchlib.column(a, lambda label, a=a: benchlib.num(ir.get((label, a)), '%.1f'))
             for a in allocs]
    return benchlib.table(cols, benchlib.in_order(label for label, _ in ir), style)


def check_checksums(results, failures):
    """Every allocator of one benchmark must report the same checksum."""
    for label, sums in benchlib.disagreements(results):
        failures.append('%s: checksums differ between allocators: %s' % (label, sums))


def tabulate(results):
    """Rows of summary figures, one per (benchmark, allocator), in order."""
    rows = []
    for label in benchlib.in_order(label for label, _ in results):
        base = {}
        for a in benchlib.ALLOCATORS + benchlib.in_order(x for _, x in results
                                                          if x not in benchlib.ALLOCATORS):
            rs = results.get((label, a))
            if not rs:
                continue
            row = {'bench': label, 'alloc': a, **benchlib.throughput(rs)}
            base[a] = row['ops_per_s']['median']
            rows.append(row)
        for row in rows:
            if row['bench'] != label:
                continue
            med = row['ops_per_s']['median']
            row['vs_glibc'] = med / base['glibc'] if base.get('glibc') else None
            row['vs_mimalloc'] = med / base['mimalloc'] if base.get('mimalloc') else None
    return rows


def throughput_table(rows, style):
    return benchlib.table(benchlib.throughput_columns(
        'bench', 'vs mimalloc', lambda row: benchlib.ratio(row['vs_mimalloc'])), rows, style)


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
    results, failures = benchlib.measure_jobs(jobs, args.runs, TIMEOUT_S, (18, 9))
    check_checksums(results, failures)
    rows = tabulate(results)
    ir = callgrind(jobs, failures) if args.callgrind else {}

    print()
    print(throughput_table(rows, 'text'))
    print(goal_line(rows))
    if ir:
        print('\ninstructions per operation (callgrind, %d operations):' % CALLGRIND_OPS)
        print(callgrind_table(ir, 'text'))

    raw = benchlib.out_file('micro.json')
    benchlib.write_json(raw, {
        'machine': mach, 'runs': args.runs, 'builddir': args.builddir,
        'rows': rows, 'failures': failures,
        'callgrind_ir_per_op': [{'bench': l, 'alloc': a, 'ir_per_op': v}
                                for (l, a), v in ir.items()],
        'raw': [{'bench': l, 'alloc': a, 'results': rs} for (l, a), rs in results.items()]})
    print('wrote %s' % benchlib.rel(raw))

    if not args.no_results:
        command = 'bench/micro/run.py --builddir %s --runs %d' % (
            benchlib.shown(args.builddir), args.runs)
        body = ['## Micro-benchmarks', '', benchlib.method_md(command, args.runs), '',
                benchlib.machine_md(mach), '', throughput_table(rows, 'md'), '',
                goal_line(rows)]
        if ir:
            body += ['', 'Instructions per operation, counted by callgrind inside the '
                     'measured loop (one run of %d operations each; the loop around the '
                     'allocator calls is the same code for every allocator):'
                     % CALLGRIND_OPS, '', callgrind_table(ir, 'md')]
        benchlib.write_section('micro', body, failures)

    return benchlib.exit_status(failures)


if __name__ == '__main__':
    sys.exit(main())
