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

larson and scaling run at every thread count of --threads (default: 1, 2,
then powers of two up to min(16, nproc)), xmalloc at the even ones (at
least 2); the speedup table divides each median by the allocator's own
median at T = 1.

Allocators: glibc (no preload), mimalloc, jemalloc and tcmalloc
(LD_PRELOAD into the plain binary), hakmem (the _hak binary, calling
hakmem's API); `--alloc hakmem-override` adds hakmem through
libhakmem-override.so in the plain binary.  Runs are interleaved: run 1 of
every benchmark and allocator, then run 2, ..., the order rotated between
rounds.  All allocators must report the same checksum for a benchmark.

Output: progress lines, the tables, bench/out/threads.json and the threads
section of bench/RESULTS.md.  Nothing here fails on speed, only on a child
that fails or disagrees.
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchlib  # noqa: E402

ALLOCS = benchlib.ALLOCATORS + ['hakmem-override']
DEFAULT_ALLOCS = benchlib.ALLOCATORS
TIMEOUT_S = 300

# (benchmark, arguments at the default size, arguments for --quick); the
# thread count is added per run.  A default run takes 0.2 to 1 s with glibc
# on a 2-core machine.
BENCHMARKS = [
    ('larson', ['--ops=200000', '--generations=20'], ['--ops=50000', '--generations=10']),
    ('xmalloc', ['--batches=20000'], ['--batches=5000']),
    ('scaling', ['--ops=20000000'], ['--ops=5000000']),
]


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
    if args.runs is None:
        args.runs = 3 if args.quick else 5
    if args.runs < 1:
        ap.error('--runs must be at least 1')
    if args.threads:
        try:
            args.threads = sorted({int(x) for x in args.threads.split(',') if x.strip()})
        except ValueError:
            ap.error('--threads takes numbers separated by commas')
        if not args.threads or min(args.threads) < 1:
            ap.error('--threads: counts must be >= 1')
    else:
        args.threads = default_threads()
    return args


def runners(args, peers):
    """{allocator: (binary suffix, preload)} for the allocators present."""
    out = {}
    for a in args.alloc or DEFAULT_ALLOCS:
        if a == 'glibc':
            out[a] = ('', None)
        elif a == 'hakmem':
            out[a] = ('_hak', None)
        elif a == 'hakmem-override':
            lib = os.path.join(os.path.abspath(args.builddir), 'libhakmem-override.so')
            if os.path.exists(lib):
                out[a] = ('', lib)
            else:
                warn('%s missing: hakmem-override skipped' % lib)
        elif a in peers:
            out[a] = ('', peers[a])
    return out


def plan(args, peers):
    """[(label, bench, threads, allocator, argv, env)]."""
    bindir = os.path.join(args.builddir, 'bench')
    jobs = []
    for name, full, quick in BENCHMARKS:
        if args.only and not any(o in name for o in args.only):
            continue
        counts = args.threads
        if name == 'xmalloc':
            counts = sorted({max(2, t + (t % 2)) for t in args.threads})
        for t in counts:
            label = '%s T=%d' % (name, t)
            for a, (suffix, preload) in runners(args, peers).items():
                exe = os.path.join(bindir, name + suffix)
                if not os.access(exe, os.X_OK):
                    warn('%s missing: %s skipped under %s (build it with ninja)' % (exe, label, a))
                    continue
                argv = [exe, '--threads=%d' % t] + (quick if args.quick else full)
                jobs.append((label, name, t, a, argv, benchlib.child_env(preload)))
    return jobs


def run_one(argv, env):
    """The JSON result a benchmark printed, or raises RuntimeError."""
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise RuntimeError('timed out after %d s' % TIMEOUT_S)
    if p.returncode != 0:
        raise RuntimeError('exit status %d: %s' % (p.returncode, p.stderr.strip()[-500:]))
    for line in reversed(p.stdout.splitlines()):
        if line.startswith('{'):
            return json.loads(line)
    raise RuntimeError('no result line in its output')


def measure(jobs, runs):
    """Runs everything interleaved: {(label, alloc): [results]}, failures."""
    results = {(j[0], j[3]): [] for j in jobs}
    failures = []
    total, done = len(jobs) * runs, 0
    for r in range(runs):
        k = (r * 3) % len(jobs)  # rotate: no allocator always runs first
        for label, _, _, a, argv, env in jobs[k:] + jobs[:k]:
            done += 1
            try:
                res = run_one(argv, env)
            except RuntimeError as e:
                failures.append('%s under %s: %s' % (label, a, e))
                print('[%3d/%d] %-14s %-15s run %d: FAILED: %s' % (done, total, label, a, r + 1, e),
                      flush=True)
                continue
            results[(label, a)].append(res)
            print('[%3d/%d] %-14s %-15s run %d: %8.2f Mops/s  %7.1f MiB peak RSS'
                  % (done, total, label, a, r + 1, res['ops_per_s'] / 1e6,
                     res['peak_rss_kb'] / 1024.0), flush=True)
    return results, failures


def check_checksums(results, failures):
    """The allocators of one benchmark must agree on its checksum."""
    by_label = {}
    for (label, a), rs in results.items():
        for res in rs:
            by_label.setdefault(label, {}).setdefault(res.get('checksum'), set()).add(a)
    for label, sums in sorted(by_label.items()):
        if len(sums) > 1:
            failures.append('%s: checksums differ between allocators: %s'
                            % (label, {str(k): sorted(v) for k, v in sums.items()}))


def tabulate(jobs, results):
    """One row per (benchmark, threads, allocator), in plan order."""
    rows, seen = [], set()
    for label, name, t, a, _, _ in jobs:
        if (label, a) in seen or not results.get((label, a)):
            continue
        seen.add((label, a))
        rs = results[(label, a)]
        rows.append({'label': label, 'bench': name, 'threads': t, 'alloc': a,
                     'runs': len(rs),
                     'ops_per_s': benchlib.summary([x['ops_per_s'] for x in rs]),
                     'peak_rss_kb': benchlib.summary([x['peak_rss_kb'] for x in rs])})
    for row in rows:
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


def ratio(x):
    return '%.2f×' % x if x else '–'


def table_md(rows):
    out = ['| benchmark | allocator | Mops/s median | min–max | vs glibc | vs best peer '
           '| peak RSS MiB median | min–max |',
           '|---|---|---:|---:|---:|---:|---:|---:|']
    for r in rows:
        o, m = r['ops_per_s'], r['peak_rss_kb']
        best = '%s (%s)' % (ratio(r['vs_best_peer']), r['best_peer']) if r['best_peer'] else '–'
        out.append('| %s | %s | %.2f | %.2f–%.2f | %s | %s | %.1f | %.1f–%.1f |' % (
            r['label'], r['alloc'], o['median'] / 1e6, o['min'] / 1e6, o['max'] / 1e6,
            ratio(r['vs_glibc']), best, m['median'] / 1024, m['min'] / 1024, m['max'] / 1024))
    return '\n'.join(out)


def speedup_md(rows):
    """Speedup over T = 1 for the benchmarks that ran at T = 1."""
    benches = [b for b, _, _ in BENCHMARKS
               if any(r['bench'] == b and r['threads'] == 1 for r in rows)]
    if not benches:
        return ''
    counts = sorted({r['threads'] for r in rows if r['bench'] in benches and r['threads'] > 1})
    if not counts:
        return ''
    out = ['| benchmark | allocator | ' + ' | '.join('T=%d' % t for t in counts) + ' |',
           '|---|---|' + '---:|' * len(counts)]
    for b in benches:
        for a in ALLOCS:
            cells = {r['threads']: r['speedup'] for r in rows if r['bench'] == b and r['alloc'] == a}
            if not cells:
                continue
            out.append('| %s | %s | %s |' % (b, a, ' | '.join(ratio(cells.get(t)) for t in counts)))
    return '\n'.join(out)


def table_text(rows):
    out = ['%-14s %-15s %9s %17s %8s %14s %9s' % ('benchmark', 'allocator', 'Mops/s', 'min-max',
                                                 'vs glibc', 'vs best peer', 'RSS MiB')]
    for r in rows:
        o, m = r['ops_per_s'], r['peak_rss_kb']
        out.append('%-14s %-15s %9.2f %8.2f-%-8.2f %8s %14s %9.1f' % (
            r['label'], r['alloc'], o['median'] / 1e6, o['min'] / 1e6, o['max'] / 1e6,
            ratio(r['vs_glibc']),
            '%s %s' % (ratio(r['vs_best_peer']), r['best_peer'] or ''), m['median'] / 1024))
    return '\n'.join(out)


def goal_lines(rows):
    """The issue's goals, stated with the figures measured, whatever they are."""
    lines = []
    for r in rows:
        if r['alloc'] != 'hakmem' or r['vs_best_peer'] is None:
            continue
        lines.append('- %s: hakmem %.2f Mops/s is %.2f× the best peer (%s)%s.'
                     % (r['label'], r['ops_per_s']['median'] / 1e6, r['vs_best_peer'],
                        r['best_peer'], '' if r['vs_best_peer'] >= 1 else ' — goal NOT met'))
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
    return ('Goals (issue 3): at least the best peer\'s throughput on each benchmark; lower '
            'peak RSS than mimalloc on xmalloc.\n\n' + '\n'.join(lines))


def main():
    args = parse_args()
    peers = benchlib.peer_libs(warn)
    jobs = plan(args, peers)
    if not jobs:
        print('run.py: nothing to run (build the benchmarks first: ninja -C %s)' % args.builddir,
              file=sys.stderr)
        return 1
    mach = benchlib.machine(peers)
    print('thread benchmarks: %d runs each of %d benchmark/allocator pairs, threads %s, '
          'interleaved' % (args.runs, len(jobs), ','.join(map(str, args.threads))), flush=True)
    results, failures = measure(jobs, args.runs)
    check_checksums(results, failures)
    rows = tabulate(jobs, results)

    print()
    print(table_text(rows))
    sp = speedup_md(rows)
    if sp:
        print('\nSpeedup over T=1:\n' + sp)
    print('\n' + goal_lines(rows))

    os.makedirs(os.path.join(benchlib.BENCH_DIR, 'out'), exist_ok=True)
    raw = os.path.join(benchlib.BENCH_DIR, 'out', 'threads.json')
    with open(raw, 'w') as f:
        json.dump({'machine': mach, 'runs': args.runs, 'quick': args.quick,
                   'builddir': args.builddir, 'threads': args.threads, 'rows': rows,
                   'failures': failures,
                   'raw': [{'label': l, 'alloc': a, 'results': rs}
                           for (l, a), rs in results.items()]}, f, indent=1)
    print('wrote %s' % benchlib.rel(raw))

    if not args.no_results:
        body = ['## Thread benchmarks', '',
                'Written by `bench/threads/run.py --builddir %s --runs %d%s`: median and '
                'min–max over %d interleaved runs per allocator; hakmem through its API '
                '(the `_hak` binaries), peers through LD_PRELOAD.  larson: threads replace '
                'random slots with blocks of 8..1000 B and hand their slots on to successor '
                'threads; xmalloc: half the threads allocate batches, the other half free '
                'them; scaling: bench/micro\'s random_mixed, one instance per thread.'
                % (benchlib.shown(args.builddir), args.runs, ' --quick' if args.quick else '',
                   args.runs), '',
                benchlib.machine_md(mach), '', table_md(rows)]
        if sp:
            body += ['', 'Speedup over each allocator\'s own T = 1 median:', '', sp]
        body += ['', goal_lines(rows)]
        if failures:
            body += ['', 'Failures in this run:', ''] + ['- ' + f for f in failures]
        benchlib.update_section('threads', '\n'.join(body))
        print('updated %s (threads section)' % benchlib.rel(benchlib.RESULTS_MD))

    if failures:
        print('\n%d failure(s):' % len(failures), file=sys.stderr)
        for f in failures:
            print('  ' + f, file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
