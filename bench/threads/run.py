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
  churn     thread churn: at most T threads at a time, N over the run, each
            allocating blocks of mixed lifetimes and leaving some in a
            table shared with the threads after it (exited threads' blocks
            freed by live ones); its table gives wall time, system time,
            peak RSS and, with strace installed, the syscalls of one more
            run (strace -f -c) per allocator

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
import json
import os
import shutil
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

# Thread churn (churn.c), at its own thread counts: (label, threads at a
# time, other arguments, other arguments for --quick).  The first is the
# shape of issue 12 (2 threads at a time, 100 over the run); the second has
# 240 threads exit while the others free half of their blocks.
CHURN = [
    ('churn T=2 N=100', 2, ['--total=100', '--ops=100000'], ['--total=100', '--ops=30000']),
    ('churn T=8 N=240', 8, ['--total=240', '--ops=50000', '--share=50'],
     ['--total=240', '--ops=15000', '--share=50']),
]
# The syscalls the churn table counts (strace -f -c).
CHURN_SYSCALLS = ['mmap', 'munmap', 'madvise', 'mprotect', 'brk', 'futex']


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


PEER_NAMES = ('glibc', 'mimalloc', 'jemalloc', 'tcmalloc')


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
    ap.add_argument('--no-strace', action='store_true',
                    help='churn: no strace run to count syscalls')
    ap.add_argument('--rerender', metavar='JSON',
                    help='run nothing: print and write the tables and goals of a saved run '
                         '(bench/out/threads.json) again, with this runner\'s comparisons')
    args = ap.parse_args()
    if args.rerender:
        return args
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
    if benchlib.selected('churn', args.only):
        for label, t, full, quick in CHURN:
            shape[label] = ('churn', t)
            jobs += benchlib.binary_jobs(bindir, 'churn', label, allocs,
                                         ['--threads=%d' % t] + (quick if args.quick else full),
                                         warn)
    return jobs, shape


def strace_counts(job):
    """{syscall: calls} of one more run of `job` under strace -f -c (the
    preload goes to the traced program only, with -E), or None."""
    out = benchlib.out_file('strace-%s-%s.txt' % (job.label.replace(' ', '_'), job.alloc))
    env = dict(job.env)
    preload = env.pop('LD_PRELOAD', None)
    argv = ['strace', '-f', '-c', '-o', out] + (['-E', 'LD_PRELOAD=' + preload] if preload else [])
    try:
        benchlib.run_json(argv + job.argv, env, TIMEOUT_S)
        with open(out) as f:
            lines = f.read().splitlines()
    except (RuntimeError, OSError) as e:
        warn('strace of %s under %s: %s' % (job.label, job.alloc, e))
        return None
    counts = {}
    for line in lines:
        fields = line.split()
        if len(fields) >= 5 and fields[0][0].isdigit() and fields[3].isdigit():
            counts[fields[-1]] = int(fields[3])
    return counts


def churn_rows(jobs, results, traced):
    """One row per churn job: medians of wall time, system time and peak
    RSS over its runs, and its syscall counts (or None)."""
    rows = []
    for j in jobs:
        runs = results.get((j.label, j.alloc))
        if runs:
            rows.append({'label': j.label, 'alloc': j.alloc,
                         'secs': benchlib.summary([r['secs'] for r in runs]),
                         'sys_s': benchlib.summary([r['sys_s'] for r in runs]),
                         'user_s': benchlib.summary([r['user_s'] for r in runs]),
                         'peak_rss_kb': benchlib.summary([r['peak_rss_kb'] for r in runs]),
                         'syscalls': traced.get((j.label, j.alloc))})
    return rows


def churn_table(rows, style):
    """The churn table: medians (min–max in Markdown) and the syscalls of
    the traced run; '' when there are no churn rows."""
    if not rows:
        return ''

    def minmax(key, scale=1.0, fmt='%.2f'):
        return benchlib.column('min–max', lambda r: '%s–%s' % (
            fmt % (r[key]['min'] / scale), fmt % (r[key]['max'] / scale)), text=False)

    def calls(name):
        return benchlib.column(name, lambda r: str(r['syscalls'].get(name, 0))
                               if r['syscalls'] is not None else '–')
    columns = [benchlib.column('benchmark', lambda r: r['label'], 'l'),
               benchlib.column('allocator', lambda r: r['alloc'], 'l'),
               benchlib.column('wall s', lambda r: '%.2f' % r['secs']['median']),
               minmax('secs'),
               benchlib.column('system s', lambda r: '%.3f' % r['sys_s']['median']),
               minmax('sys_s', fmt='%.3f'),
               benchlib.column('peak RSS MiB', lambda r: '%.1f' % (r['peak_rss_kb']['median'] / 1024)),
               minmax('peak_rss_kb', 1024, '%.1f')] + [calls(c) for c in CHURN_SYSCALLS]
    return benchlib.table(columns, rows, style)


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
    return compare(rows)


def compare(rows):
    """Adds to each row its standing beside the others of its benchmark: the
    lowest peak RSS, the best peer (glibc, mimalloc, jemalloc or tcmalloc:
    all four are peers) and the speedup over its own T = 1."""
    for row in rows:
        rss = {r['alloc']: r['peak_rss_kb']['median'] for r in rows if r['label'] == row['label']}
        row['lowest_rss'] = min(rss, key=rss.get)
        row['vs_lowest_rss'] = row['peak_rss_kb']['median'] / max(rss[row['lowest_rss']], 1)
        same = {r['alloc']: r['ops_per_s']['median'] for r in rows if r['label'] == row['label']}
        peers = {a: v for a, v in same.items() if a in PEER_NAMES}
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


def rerender(path, no_results):
    """The tables and the RESULTS.md section of a saved run, compared again."""
    with open(path) as f:
        saved = json.load(f)
    rows = compare(saved['rows'])
    return report(saved['machine'], saved['runs'], saved['quick'], saved['builddir'], rows,
                  saved['churn'], saved['failures'], no_results,
                  'rendered again by `bench/threads/run.py --rerender` from the saved run')


def main():
    args = parse_args()
    if args.rerender:
        return rerender(args.rerender, args.no_results)
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
    traced = {}
    if any(shape[j.label][0] == 'churn' for j in jobs) and not args.no_strace:
        if shutil.which('strace'):
            for j in jobs:
                if shape[j.label][0] == 'churn':
                    traced[(j.label, j.alloc)] = strace_counts(j)
        else:
            warn('strace not found (Debian package strace): no syscall counts')
    churn = churn_rows([j for j in jobs if shape[j.label][0] == 'churn'], results, traced)

    raw = benchlib.out_file('threads.json')
    benchlib.write_json(raw, {
        'machine': mach, 'runs': args.runs, 'quick': args.quick,
        'builddir': args.builddir, 'threads': args.threads, 'rows': rows, 'churn': churn,
        'failures': failures,
        'raw': [{'label': l, 'alloc': a, 'results': rs} for (l, a), rs in results.items()]})
    print('wrote %s' % benchlib.rel(raw))
    return report(mach, args.runs, args.quick, args.builddir, rows, churn, failures,
                  args.no_results, None)


def report(mach, runs, quick, builddir, rows, churn, failures, no_results, note):
    """Prints the tables and goals; rewrites the threads section of RESULTS.md."""
    print()
    print(throughput_table(rows, 'text'))
    sp = speedup_table(rows, 'text')
    if sp:
        print('\nSpeedup over T=1:\n' + sp)
    if churn:
        print('\nThread churn (medians; syscalls of one strace -f -c run):\n'
              + churn_table(churn, 'text'))
    print('\n' + goal_lines(rows))

    if not no_results:
        command = 'bench/threads/run.py --builddir %s --runs %d%s' % (
            benchlib.shown(builddir), runs, ' --quick' if quick else '')
        body = ['## Thread benchmarks', '',
                benchlib.method_md(command, runs) +
                '  larson: threads replace '
                'random slots with blocks of 8..1000 B and hand their slots on to successor '
                'threads; xmalloc: half the threads allocate batches, the other half free '
                'them; scaling: bench/micro\'s random_mixed, one instance per thread; '
                'tight: glibc\'s thread benchmark\'s shape; share: rpmalloc\'s (20% of the '
                'blocks freed by the next thread); mstress: mimalloc-bench\'s (mixed lifetimes, '
                'a transfer array, fresh threads each round); bignum: a single-threaded '
                'cfrac-like kernel. The machine is shared: other builds may have run '
                'alongside.', '',
                benchlib.machine_md(mach)]
        if note:
            body += ['- Tables and goals %s.' % note]
        body += ['', throughput_table(rows, 'md')]
        if sp:
            body += ['', 'Speedup over each allocator\'s own T = 1 median:', '',
                     speedup_table(rows, 'md')]
        if churn:
            body += ['', 'Thread churn: medians (min–max) of wall time, system time (getrusage, '
                     'exited threads included) and peak RSS; syscalls counted in one more run '
                     'under `strace -f -c`:', '', churn_table(churn, 'md')]
        body += ['', goal_lines(rows)]
        benchlib.write_section('threads', body, failures)

    return benchlib.exit_status(failures)


if __name__ == '__main__':
    sys.exit(main())
