#!/usr/bin/env python3
"""Runs the thread benchmarks under every allocator and reports them side by side.

    bench/threads/run.py --builddir build/release [--quick] [--runs N]
                         [--threads 1,2,4] [--alloc NAME ...] [--no-results]

Benchmarks (bench/threads/*.c, each built plain and as a _hak binary):
  larson    a larson-style server: threads replace random slots with new
            blocks of 8..1000 B and hand their slots on to successor
            threads (blocks are freed by threads that did not allocate them)
  xmalloc   producer/consumer: half the threads allocate batches, the other
            half free them; its peak RSS says whether freed memory goes back
            to the producers
  scaling   random_mixed (bench/micro) with one instance per thread
  tight     glibc's thread benchmark's shape: each thread replaces random
            blocks of its 1024, sizes 4 B..32 KiB (density about 1/size)
  share     rpmalloc's benchmark's shape: sizes 8 B..16 KiB, 20% of the
            blocks handed to the next thread, which frees them
  mstress   mimalloc-bench's mstress shape: mixed lifetimes, objects passed
            through a shared transfer array, fresh threads every round
  bignum    single-threaded: a bignum kernel (cfrac-like: small numbers, a
            block per result, temporaries)

Every benchmark but bignum runs at every thread count of --threads
(default: 1, 2, then powers of two up to min(16, nproc)), xmalloc at the
even ones (at least 2), bignum once; the speedup table divides each median
by the allocator's own median at T = 1.  The benchmarks that report it
(all but larson, xmalloc and scaling) give the process's system time too.

Allocators: glibc (no preload), mimalloc, jemalloc and tcmalloc
(LD_PRELOAD into the plain binary), hakmem (the _hak binary, calling
hakmem's API) and hakmem-override (libhakmem-override.so preloaded into
the plain binary, like the peers).  Runs are interleaved: run 1 of
every benchmark and allocator, then run 2, ..., the order rotated between
rounds.  All allocators must report the same checksum for a benchmark.

Output: progress lines, the tables, bench/out/threads.json and the threads
section of bench/RESULTS.md.  Nothing here fails on speed, only on a child
that fails or disagrees.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchlib  # noqa: E402

ALLOCS = benchlib.ALLOCATORS + ['hakmem-override']
DEFAULT_ALLOCS = ALLOCS
TIMEOUT_S = 300

# (benchmark, arguments at the default size, arguments for --quick); the
# thread count is added per run.  A default run takes 0.2 to 1 s with glibc
# on a 2-core machine.
BENCHMARKS = [
    ('larson', ['--ops=200000', '--generations=20'], ['--ops=50000', '--generations=10']),
    ('xmalloc', ['--batches=20000'], ['--batches=5000']),
    ('scaling', ['--ops=20000000'], ['--ops=5000000']),
    ('tight', ['--ops=2000000'], ['--ops=500000']),
    ('share', ['--rounds=20'], ['--rounds=5']),
    ('mstress', ['--rounds=20'], ['--rounds=5']),
    ('bignum', ['--ops=1000000'], ['--ops=300000']),
]
SINGLE_THREADED = {'bignum'}  # run once, without --threads


def warn(msg):
    print('run.py: warning: %s' % msg, file=sys.stderr)


def default_threads():
    n = min(16, os.cpu_count() or 1)
    ts = [1, 2]
    t = 4
    while t <= n:
        ts.append(t)
        t *= 2
    return ts


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', required=True,
                    help='build directory holding bench/<name> and bench/<name>_hak')
    ap.add_argument('--runs', type=int, default=None,
                    help='runs per benchmark, thread count and allocator (default 5, --quick 3)')
    ap.add_argument('--quick', action='store_true', help='3 runs of smaller sizes')
    ap.add_argument('--threads', default=None,
                    help='comma-separated thread counts (default: 1,2 and powers of two up '
                         'to min(16, nproc))')
    ap.add_argument('--only', action='append', default=[],
                    help='run only the benchmarks whose name contains this (repeatable)')
    ap.add_argument('--alloc', action='append', default=[], choices=ALLOCS,
                    help='run only these allocators (repeatable; default: %s)'
                         % ', '.join(DEFAULT_ALLOCS))
    ap.add_argument('--no-results', action='store_true',
                    help='do not rewrite bench/RESULTS.md')
    args = ap.parse_args()
    benchlib.settle_runs(ap, args, 5)
    args.threads = benchlib.parse_threads(ap, args.threads, default_threads)
    return args


def variants(args, peers):
    """{allocator: (binary suffix, preload)} for the allocators present."""
    out = {}
    for a in args.alloc or DEFAULT_ALLOCS:
        if a == 'hakmem-override':
            lib = os.path.join(os.path.abspath(args.builddir), 'libhakmem-override.so')
            if os.path.exists(lib):
                out[a] = ('', lib)
            else:
                warn('%s missing: hakmem-override skipped' % lib)
        else:
            v = benchlib.binary_variant(a, peers)
            if v:
                out[a] = v
    return out


def plan(args, peers):
    """[benchlib.Job] in plan order, and {label: (benchmark, threads)}."""
    bindir = os.path.join(args.builddir, 'bench')
    allocs = variants(args, peers)
    jobs, shape = [], {}
    for name, full, quick in BENCHMARKS:
        if not benchlib.selected(name, args.only):
            continue
        counts = args.threads
        if name == 'xmalloc':
            counts = sorted({max(2, t + (t % 2)) for t in args.threads})
        if name in SINGLE_THREADED:
            counts = [1]
        for t in counts:
            label = '%s T=%d' % (name, t)
            shape[label] = (name, t)
            threads = [] if name in SINGLE_THREADED else ['--threads=%d' % t]
            jobs += benchlib.binary_jobs(bindir, name, label, allocs,
                                         threads + (quick if args.quick else full), warn)
    return jobs, shape


def check_checksums(results, failures):
    """The allocators of one benchmark must agree on its checksum."""
    for label, sums in sorted(benchlib.disagreements(results)):
        failures.append('%s: checksums differ between allocators: %s' % (label, sums))


def tabulate(jobs, shape, results):
    """One row per (benchmark, threads, allocator), in plan order."""
    rows = []
    for j in jobs:
        if not results.get((j.label, j.alloc)):
            continue
        name, t = shape[j.label]
        runs = results[(j.label, j.alloc)]
        rows.append({'label': j.label, 'bench': name, 'threads': t, 'alloc': j.alloc,
                     **benchlib.throughput(runs),
                     'sys_s': (benchlib.summary([x['sys_s'] for x in runs])
                               if all('sys_s' in x for x in runs) else None)})
    for row in rows:
        rss = {r['alloc']: r['peak_rss_kb']['median'] for r in rows if r['label'] == row['label']}
        row['lowest_rss'] = min(rss, key=rss.get)
        row['vs_lowest_rss'] = row['peak_rss_kb']['median'] / max(rss[row['lowest_rss']], 1)
        same = {r['alloc']: r['ops_per_s']['median'] for r in rows if r['label'] == row['label']}
        peers = {a: v for a, v in same.items() if a in ('mimalloc', 'jemalloc', 'tcmalloc')}
        row['vs_glibc'] = row['ops_per_s']['median'] / same['glibc'] if same.get('glibc') else None
        if peers:
            best = max(peers, key=peers.get)
            row['best_peer'] = best
            row['vs_best_peer'] = row['ops_per_s']['median'] / peers[best]
        else:
            row['best_peer'], row['vs_best_peer'] = None, None
        base = [r for r in rows if r['bench'] == row['bench'] and r['alloc'] == row['alloc']
                and r['threads'] == 1]
        row['speedup'] = (row['ops_per_s']['median'] / base[0]['ops_per_s']['median']
                          if base and base[0]['ops_per_s']['median'] else None)
    return rows


def throughput_table(rows, style):
    def best(r):
        if not r['best_peer']:
            return '–'
        return '%s (%s)' % (benchlib.ratio(r['vs_best_peer']), r['best_peer'])
    def sys(r):
        if not r['sys_s']:
            return '–'
        return '%.3f' % r['sys_s']['median']
    cols = benchlib.throughput_columns('label', 'vs best peer', best)
    cols.append(benchlib.column('sys s median', sys))
    return benchlib.table(cols, rows, style)


def speedup_table(rows, style):
    """Speedup over T = 1 for the benchmarks that ran at T = 1: a row per
    benchmark and allocator, a column per thread count; '' when none."""
    benches = [b for b, _, _ in BENCHMARKS
               if any(r['bench'] == b and r['threads'] == 1 for r in rows)]
    counts = sorted({r['threads'] for r in rows if r['bench'] in benches and r['threads'] > 1})
    if not counts:
        return ''
    speedups = {}  # (bench, alloc) -> {threads: speedup}, in table order
    for b in benches:
        for a in ALLOCS:
            cells = {r['threads']: r['speedup'] for r in rows if r['bench'] == b and r['alloc'] == a}
            if cells:
                speedups[(b, a)] = cells
    cols = [benchlib.column('benchmark', lambda k: k[0], 'l'),
            benchlib.column('allocator', lambda k: k[1], 'l')]
    cols += [benchlib.column('T=%d' % t, lambda k, t=t: benchlib.ratio(speedups[k].get(t)))
             for t in counts]
    return benchlib.table(cols, list(speedups), style)


def goal_lines(rows):
    """The issue's goals, stated with the figures measured, whatever they are."""
    lines = []
    for r in rows:
        if r['alloc'] not in ('hakmem', 'hakmem-override') or r['vs_best_peer'] is None:
            continue
        lines.append('- %s: %s %.2f Mops/s is %.2f× the best peer (%s)%s; peak RSS %.2f× '
                     'the lowest (%s)%s.'
                     % (r['label'], r['alloc'], r['ops_per_s']['median'] / 1e6, r['vs_best_peer'],
                        r['best_peer'], '' if r['vs_best_peer'] >= 1 else ' — goal NOT met',
                        r['vs_lowest_rss'], r['lowest_rss'],
                        '' if r['vs_lowest_rss'] <= 1.1 else ' — goal NOT met'))
    for r in rows:
        if r['bench'] != 'xmalloc' or r['alloc'] != 'hakmem':
            continue
        mi = [x for x in rows if x['label'] == r['label'] and x['alloc'] == 'mimalloc']
        if mi:
            h, m = r['peak_rss_kb']['median'], mi[0]['peak_rss_kb']['median']
            lines.append('- %s: hakmem peak RSS %.1f MiB, mimalloc %.1f MiB (%s).'
                         % (r['label'], h / 1024, m / 1024,
                            'lower: goal met' if h < m else 'goal NOT met'))
    if not lines:
        return 'Goals: not measured in this run (hakmem or the peers missing).'
    return ('Goals (issues 3 and 12): at least the best peer\'s throughput on each benchmark, '
            'with peak RSS within 10% of the lowest; lower peak RSS than mimalloc on '
            'xmalloc.\n\n' + '\n'.join(lines))


def main():
    args = parse_args()
    peers = benchlib.peer_libs(warn)
    jobs, shape = plan(args, peers)
    if not jobs:
        print('run.py: nothing to run (build the benchmarks first: ninja -C %s)' % args.builddir,
              file=sys.stderr)
        return 1
    mach = benchlib.machine(peers)
    print('thread benchmarks: %d runs each of %d benchmark/allocator pairs, threads %s, '
          'interleaved' % (args.runs, len(jobs), ','.join(map(str, args.threads))), flush=True)
    results, failures = benchlib.measure_jobs(jobs, args.runs, TIMEOUT_S, (14, 15))
    check_checksums(results, failures)
    rows = tabulate(jobs, shape, results)

    print()
    print(throughput_table(rows, 'text'))
    sp = speedup_table(rows, 'text')
    if sp:
        print('\nSpeedup over T=1:\n' + sp)
    print('\n' + goal_lines(rows))

    raw = benchlib.out_file('threads.json')
    benchlib.write_json(raw, {
        'machine': mach, 'runs': args.runs, 'quick': args.quick,
        'builddir': args.builddir, 'threads': args.threads, 'rows': rows,
        'failures': failures,
        'raw': [{'label': l, 'alloc': a, 'results': rs} for (l, a), rs in results.items()]})
    print('wrote %s' % benchlib.rel(raw))

    if not args.no_results:
        command = 'bench/threads/run.py --builddir %s --runs %d%s' % (
            benchlib.shown(args.builddir), args.runs, ' --quick' if args.quick else '')
        body = ['## Thread benchmarks', '',
                benchlib.method_md(command, args.runs) +
                '  larson: threads replace '
                'random slots with blocks of 8..1000 B and hand their slots on to successor '
                'threads; xmalloc: half the threads allocate batches, the other half free '
                'them; scaling: bench/micro\'s random_mixed, one instance per thread; '
                'tight: glibc\'s thread benchmark\'s shape; share: rpmalloc\'s (20% of the '
                'blocks freed by the next thread); mstress: mimalloc-bench\'s (mixed lifetimes, '
                'a transfer array, fresh threads each round); bignum: a single-threaded '
                'cfrac-like kernel. The machine is shared: other builds may have run '
                'alongside.', '',
                benchlib.machine_md(mach), '', throughput_table(rows, 'md')]
        if sp:
            body += ['', 'Speedup over each allocator\'s own T = 1 median:', '',
                     speedup_table(rows, 'md')]
        body += ['', goal_lines(rows)]
        benchlib.write_section('threads', body, failures)

    return benchlib.exit_status(failures)


if __name__ == '__main__':
    sys.exit(main())
