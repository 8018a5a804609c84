#!/usr/bin/env python3
"""The collector thread's benchmarks: hakrt with and without it, under every allocator.

    bench/runtime/collector.py --builddir build/release [--quick] [--runs N]
                               [--threads T] [--alloc NAME ...] [--only NAME ...]
                               [--no-results]

Workloads, all run by <builddir>/hklua --threads=T (default T = 2):
  latency  bench/runtime/latency.lua: request tasks due at a steady rate (an
           open loop), each a new state building a response of 300 objects;
           p50, p99 and p99.9 of due time -> response, collector on and off
  latency_busy  the same at 2000 x T requests/s (about a quarter of
           hakmem's capacity and two thirds of glibc's, where a worker
           sleeps less between requests): p50, p99, p99.9
  capacity latency.lua with every request due at once (a backlog the
           workers drain as fast as they can): requests per second, and the
           workers' busy time per request (hklua --stats=json)
  rooms    bench/runtime/rooms.lua: 16 rooms with ~4 MiB of records each,
           parked between messages; messages per second and the GC time on
           the workers and on the collector (the luaC_step wrappers' clock),
           idle GC on and off
  burst    bench/runtime/burst.lua: 64 tasks of ~4 MiB in waves, then the
           workers idle; the process's RSS sampled every 20 ms: its peak,
           and what is left 1 s after the burst ended, collector on and off;
           an SVG plot of RSS over time (bench/plots/runtime_burst_rss.svg;
           _t<T>.svg for T other than 2)
  close    bench/runtime/close.lua: 16 states of 100000 records closed on
           the worker (collector off), on the collector, and (hakmem) on the
           collector without batched remote frees: close time per state, wall
           and the closing thread's CPU time (hklua --stats=json; the wall
           time counts other threads' turns when CPUs are fewer than threads),
           remote frees and the atomic pushes they took
  close_large  close.lua with 20000 records of a 2000-byte string each:
           blocks above a state's region, which its close frees one by one
           (remote frees on the collector), where batching has work to do

Variants: hakmem is hklua --alloc=hakmem; glibc hklua --alloc=libc;
mimalloc, jemalloc and tcmalloc hklua --alloc=libc with the library in
LD_PRELOAD (one binary).  Each with the runtime's switch on and off
("/off" in the tables: --collector=off, or --idle-gc=off for rooms; "/nobatch":
--batch-frees=off; "/closeall": --close-min=0, every state closed on the
collector, small ones included).  Runs are interleaved (run 1 of every job, then run 2,
each round rotated).  All variants of a workload must report the same checksum.

Output: progress lines, the tables, bench/out/runtime_collector.json and the
runtime-collector section of bench/RESULTS.md.  Nothing here fails on speed.
"""

import argparse
import json
import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)
import benchlib  # noqa: E402
import run as rtbench  # noqa: E402  (the runtime suite's child runner)

ALLOCS = benchlib.ALLOCATORS
PEERS = [a for a in ALLOCS if a != 'hakmem']
TIMEOUT_S = 300
SAMPLE_S = 0.02
def plot_name(threads):
    """The burst plot's file under bench/: T = 2's, or another T's beside it."""
    return 'plots/runtime_burst_rss%s.svg' % ('' if threads == 2 else '_t%d' % threads)

# (workload, full arguments, --quick arguments, switch off, hakmem-only extra modes)
WORKLOADS = [
    ('latency', ['4000', '800', '300'], ['1500', '800', '300'], '--collector=off',
     ['--close-min=0']),
    ('latency_busy', ['4000', 'BUSY_RATE', '300'], ['1500', 'BUSY_RATE', '300'], '--collector=off',
     []),
    ('capacity', ['4000', '1000000', '300'], ['1500', '1000000', '300'], '--collector=off',
     ['--close-min=0']),
    ('rooms', ['16', '40000', '16000'], ['8', '20000', '1500'], '--idle-gc=off', []),
    ('burst', ['64', '40000', '2000'], ['32', '40000', '1500'], '--collector=off', []),
    ('close', ['16', '100000'], ['8', '100000'], '--collector=off', ['--batch-frees=off']),
    ('close_large', ['16', '20000', '2000'], ['8', '20000', '2000'], '--collector=off',
     ['--batch-frees=off']),
]
MODE_NAMES = {'--collector=off': 'off', '--idle-gc=off': 'off', '--batch-frees=off': 'nobatch',
              '--close-min=0': 'closeall'}
STATS_WORKLOADS = ('close', 'close_large', 'capacity')  # those that read hklua --stats=json
SCRIPTS = {'capacity': 'latency', 'latency_busy': 'latency', 'close_large': 'close'}
BUSY_RATE_PER_WORKER = 2000  # latency_busy's arrivals per second per worker  # a workload run by another's script

# The figures of each workload: (key, heading, format, higher is better).
FIGURES = {
    'latency': [('p50_ms', 'p50 ms', '%.2f', False), ('p99_ms', 'p99 ms', '%.2f', False),
                ('p999_ms', 'p99.9 ms', '%.2f', False), ('peak_rss_mib', 'peak RSS MiB', '%.1f', False)],
    'capacity': [('req_per_s', 'requests/s', '%.0f', True),
                 ('busy_us_per_req', 'worker µs/request', '%.1f', False),
                 ('peak_rss_mib', 'peak RSS MiB', '%.1f', False)],
    'rooms': [('msgs_per_s', 'messages/s', '%.0f', True),
              ('worker_gc_ms', 'worker GC ms', '%.0f', False),
              # GC moved to the collector is the point, not a cost: the total is judged
              ('collector_gc_ms', 'collector GC ms', '%.0f', None),
              # its CPU time: the wall time counts the workers' turns on a shared CPU
              ('collector_gc_cpu_ms', 'collector GC CPU ms', '%.0f', None),
              ('total_gc_ms', 'total GC ms', '%.0f', False),
              ('peak_rss_mib', 'peak RSS MiB', '%.1f', False)],
    'burst': [('peak_rss_mib', 'peak RSS MiB', '%.1f', False),
              ('rss_1s_mib', 'RSS 1 s after MiB', '%.1f', False),
              ('rss_end_mib', 'RSS at end MiB', '%.1f', False)],
    'close': [('close_ms_per_state', 'close ms/state', '%.2f', False),
              ('close_cpu_ms_per_state', 'close CPU ms/state', '%.2f', False),
              ('closed_where', 'closed by', '%s', None),
              ('pushes_per_1k_frees', 'CAS per 1000 remote frees', '%.1f', False)],
}
FIGURES['close_large'] = FIGURES['close']
FIGURES['latency_busy'] = FIGURES['latency']


def warn(msg):
    print('collector.py: warning: %s' % msg, file=sys.stderr)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', required=True, help='build directory holding hklua')
    ap.add_argument('--runs', type=int, default=None,
                    help='runs per workload and variant (default 3, --quick 1)')
    ap.add_argument('--quick', action='store_true', help='1 run of smaller sizes')
    ap.add_argument('--threads', type=int, default=2, help='worker threads (default 2)')
    ap.add_argument('--only', action='append', default=[],
                    help='run only the workloads whose name contains this (repeatable)')
    ap.add_argument('--alloc', action='append', default=[], choices=ALLOCS,
                    help='run only these allocators (repeatable; default: all)')
    ap.add_argument('--no-results', action='store_true',
                    help='do not rewrite bench/RESULTS.md or the plot')
    args = ap.parse_args()
    if args.runs is None and args.quick:
        args.runs = 1
    benchlib.settle_runs(ap, args, 3)
    if args.threads < 1:
        ap.error('--threads must be at least 1')
    return args


def plan(args, peers):
    """[benchlib.Job]: one per workload, allocator and mode; job.label is
    the workload, job.alloc the variant ('mimalloc', 'mimalloc/off', ...)."""
    hklua = os.path.join(os.path.abspath(args.builddir), 'hklua')
    if not os.access(hklua, os.X_OK):
        warn('%s missing (build it with ninja)' % hklua)
        return []
    allocs = rtbench.alloc_variants(args, peers)
    jobs = []
    for name, full, quick, off, extra in WORKLOADS:
        if not benchlib.selected(name, args.only):
            continue
        script = os.path.join(HERE, SCRIPTS.get(name, name) + '.lua')
        for a, (opt, preload) in allocs.items():
            modes = [None, off] + (extra if a == 'hakmem' else [])
            for m in modes:
                variant = a if m is None else '%s/%s' % (a, MODE_NAMES[m])
                argv = [hklua, '--threads=%d' % args.threads, opt]
                argv += ([m] if m else []) + (['--stats=json'] if name in STATS_WORKLOADS else [])
                argv += [script] + [str(BUSY_RATE_PER_WORKER * args.threads) if x == 'BUSY_RATE' else x
                                     for x in (quick if args.quick else full)]
                jobs.append(benchlib.Job(name, variant, argv, benchlib.child_env(preload)))
    return jobs


def stats_json(err):
    """The --stats=json object hklua wrote on stderr."""
    for line in reversed(err.splitlines()):
        if line.startswith('{"workers"'):
            return json.loads(line)
    raise RuntimeError('no --stats=json line on stderr')


def run_one(job, tmpdir):
    c = rtbench.run_child(job.argv, job.env, TIMEOUT_S, tmpdir,
                          SAMPLE_S if job.label == 'burst' else None)
    fields = rtbench.result_fields(c.lines)
    res = {'peak_rss_mib': c.rss_kb / 1024.0, 'checksum': fields['checksum']}
    span = rtbench.mark_span(c.marks)
    if job.label in ('latency', 'latency_busy'):
        for k in ('p50_ms', 'p99_ms', 'p999_ms', 'max_ms'):
            res[k] = fields[k]
    elif job.label == 'capacity':
        st = stats_json(c.err)
        n = st['finished']
        res['req_per_s'] = (n - 2) / span  # the driver and the sink are tasks too
        res['busy_us_per_req'] = 1000.0 * sum(w['busy_ms'] for w in st['per_worker']) / n
    elif job.label == 'rooms':
        res['msgs_per_s'] = fields['messages'] / span
        res['worker_gc_ms'] = fields['worker_gc_ms']
        res['collector_gc_ms'] = fields['collector_gc_ms']
        res['collector_gc_cpu_ms'] = fields['collector_gc_cpu_ms']
        res['total_gc_ms'] = fields['worker_gc_ms'] + fields['collector_gc_ms']
        res['idle_gcs'] = fields['idle_gcs']
    elif job.label == 'burst':
        times = {m: t for t, m in c.marks}
        t0, idle = times['start'], times['idle']
        samples = [(t - t0, kb / 1024.0) for t, kb in c.samples]
        after = [mib for t, mib in samples if t >= idle - t0 + 1.0]
        res['rss_1s_mib'] = after[0] if after else None
        res['rss_end_mib'] = samples[-1][1] if samples else None
        res['peak_rss_mib'] = max([mib for _, mib in samples] + [0]) or res['peak_rss_mib']
        res['samples'] = samples
        res['idle_at_s'] = idle - t0
    elif job.label in ('close', 'close_large'):
        st = stats_json(c.err)
        col, workers = st['collector'], st['per_worker']
        closed_w = sum(w['closed'] for w in workers)
        if col['closed']:
            res['close_ms_per_state'] = col['close_ms'] / col['closed']
            res['close_cpu_ms_per_state'] = col['close_cpu_ms'] / col['closed']
            res['closed_where'] = 'collector'
        elif closed_w:
            res['close_ms_per_state'] = sum(w['close_ms'] for w in workers) / closed_w
            res['close_cpu_ms_per_state'] = sum(w['close_cpu_ms'] for w in workers) / closed_w
            res['closed_where'] = 'workers'
        frees, pushes = st['remote_frees'], st['remote_pushes']
        res['remote_frees'] = frees
        res['pushes_per_1k_frees'] = 1000.0 * pushes / frees if frees else None
    return res


def measure(jobs, runs):
    results = {(j.label, j.alloc): [] for j in jobs}
    failures = []
    total, done, start = len(jobs) * runs, 0, time.monotonic()
    with tempfile.TemporaryDirectory(prefix='hakmem-col-bench-') as tmpdir:
        for r in range(runs):
            for j in benchlib.rotated(jobs, r, 3):
                done += 1
                head = '[%3d/%d %4.0fs] %-8s %-16s run %d' % (
                    done, total, time.monotonic() - start, j.label, j.alloc, r + 1)
                try:
                    res = run_one(j, tmpdir)
                except (RuntimeError, ValueError, KeyError, OSError) as e:
                    failures.append('%s under %s: %s' % (j.label, j.alloc, e))
                    print('%s: FAILED: %s' % (head, e), flush=True)
                    continue
                results[(j.label, j.alloc)].append(res)
                key, _, fmt, _ = FIGURES[j.label][0]
                print('%s: %s %s' % (head, fmt % res[key] if res.get(key) is not None else '–',
                                     key), flush=True)
    return results, failures


def tabulate(jobs, results):
    rows = []
    for j in jobs:
        runs = results.get((j.label, j.alloc))
        if not runs:
            continue
        row = {'workload': j.label, 'variant': j.alloc, 'runs': len(runs)}
        for key, _, _, higher in FIGURES[j.label]:
            if higher is None and isinstance(runs[0].get(key), str):
                row[key] = runs[0].get(key)  # a label, such as who closed
                continue
            vals = [x[key] for x in runs if x.get(key) is not None]
            row[key] = benchlib.summary(vals) if vals else None
        rows.append(row)
    return rows


def fig_cell(row, key, fmt, higher):
    v = row.get(key)
    if v is None:
        return '–'
    if isinstance(v, str):
        return v
    if row['runs'] > 1:
        return '%s (%s)' % (fmt % v['median'], benchlib.spread(v, fmt))
    return fmt % v['median']


def columns(name):
    cols = [benchlib.column('variant', lambda r: r['variant'], 'l')]
    for key, head, fmt, higher in FIGURES[name]:
        cols.append(benchlib.column(head, lambda r, k=key, f=fmt, h=higher: fig_cell(r, k, f, h)))
    return cols


def median_of(rows, workload, variant, key):
    for r in rows:
        if r['workload'] == workload and r['variant'] == variant and r.get(key):
            return r[key]['median']
    return None


def goal_lines(rows):
    """The issue's goals with the figures measured, whatever they are."""
    out = []
    for workload in ('latency', 'latency_busy'):
        on, off = (median_of(rows, workload, v, 'p99_ms') for v in ('hakmem', 'hakmem/off'))
        if on and off:
            out.append('- %s p99: hakmem %.2f ms with the collector, %.2f ms without: %.2f× '
                       '(goal ≥ 1.5× lower%s).' % (workload, on, off, off / on,
                                                  '' if off / on >= 1.5 else ': NOT met'))
    con, coff = (median_of(rows, 'capacity', v, 'req_per_s') for v in ('hakmem', 'hakmem/off'))
    if con and coff:
        out.append('- capacity: hakmem %.0f requests/s with the collector, %.0f without (%.2f×).'
                   % (con, coff, con / coff))
    gon, goff = (median_of(rows, 'rooms', v, 'worker_gc_ms') for v in ('hakmem', 'hakmem/off'))
    ton, toff = (median_of(rows, 'rooms', v, 'msgs_per_s') for v in ('hakmem', 'hakmem/off'))
    if gon is not None and goff and ton and toff:
        met = gon <= goff / 2 and ton >= toff
        out.append('- rooms: worker GC %.0f ms with idle GC, %.0f ms without (%.2f×); throughput '
                   '%.0f against %.0f messages/s (goal: GC at least halved, throughput no '
                   'lower%s).' % (gon, goff, gon / goff, ton, toff, '' if met else ': NOT met'))
    for workload in ('close', 'close_large'):
        for key, what in (('close_ms_per_state', 'ms'), ('close_cpu_ms_per_state', 'CPU ms')):
            c_b, c_nb, c_w = (median_of(rows, workload, v, key)
                              for v in ('hakmem', 'hakmem/nobatch', 'hakmem/off'))
            if c_b and c_nb and c_w:
                met = c_b < c_nb and c_b <= c_w
                out.append('- %s: %.2f %s per state on the collector with batching, %.2f '
                           'without, %.2f on the worker (goal: faster with batching, no slower '
                           'than on the worker%s).' % (workload, c_b, what, c_nb, c_w,
                                                        '' if met else ': NOT met'))
    for workload in FIGURES:
        for key, head, _, higher in FIGURES[workload]:
            if higher is None:
                continue
            mine = median_of(rows, workload, 'hakmem', key)
            peers = {p: median_of(rows, workload, p, key) for p in PEERS}
            peers = {p: v for p, v in peers.items() if v is not None}
            if mine is None or not peers:
                continue
            best = (max if higher else min)(peers, key=peers.get)
            ahead = mine >= peers[best] if higher else mine <= peers[best]
            out.append('- %s %s: hakmem %.2f, best peer %s %.2f%s.' % (
                workload, head, mine, best, peers[best], '' if ahead else ' (behind)'))
    return '\n'.join(out) if out else 'Goals: not measured in this run.'


def plot_svg(results, path):
    """RSS over time in the burst, run 1 of every variant, as an SVG."""
    series = [(v, rs[0]['samples'], rs[0]['idle_at_s']) for (w, v), rs in sorted(results.items())
              if w == 'burst' and rs and rs[0].get('samples')]
    if not series:
        return False
    width, height, left, bottom = 760, 420, 60, 40
    tmax = max(s[-1][0] for _, s, _ in series) or 1
    ymax = max(m for _, s, _ in series for _, m in s) or 1
    colors = ['#1f77b4', '#aec7e8', '#d62728', '#ff9896', '#2ca02c', '#98df8a', '#9467bd',
              '#c5b0d5', '#8c564b', '#c49c94']

    def xy(t, m):
        return (left + (width - left - 150) * t / tmax,
                height - bottom - (height - bottom - 20) * m / ymax)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
           'font-family="sans-serif" font-size="11">' % (width, height),
           '<rect width="100%" height="100%" fill="white"/>',
           '<text x="%d" y="14">RSS during and after a burst of tasks (burst.lua, run 1); '
           'dashed: the burst ends</text>' % left]
    for i in range(5):
        m = ymax * i / 4
        x0, y = xy(0, m)
        out.append('<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#ddd"/>'
                   '<text x="5" y="%.1f">%.0f MiB</text>' % (left, y, width - 150, y, y + 4, m))
    for i in range(6):
        t = tmax * i / 5
        x, y0 = xy(t, 0)
        out.append('<text x="%.1f" y="%d">%.1f s</text>' % (x - 10, height - 20, t))
    for k, (variant, samples, idle) in enumerate(series):
        c = colors[k % len(colors)]
        pts = ' '.join('%.1f,%.1f' % xy(t, m) for t, m in samples)
        out.append('<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>' % (c, pts))
        x, _ = xy(idle, 0)
        out.append('<line x1="%.1f" y1="20" x2="%.1f" y2="%d" stroke="%s" stroke-dasharray="3,3"/>'
                   % (x, x, height - bottom, c))
        out.append('<text x="%d" y="%d" fill="%s">%s</text>' % (width - 140, 40 + 16 * k, c, variant))
    out.append('</svg>')
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as f:
        f.write('\n'.join(out) + '\n')
    return True


def main():
    args = parse_args()
    peers = benchlib.peer_libs(warn)
    jobs = plan(args, peers)
    if not jobs:
        print('collector.py: nothing to run (build hklua first)', file=sys.stderr)
        return 1
    mach = benchlib.machine(peers)
    print('collector benchmarks: %d runs each of %d jobs, T=%d, interleaved' % (
        args.runs, len(jobs), args.threads), flush=True)
    t0 = time.monotonic()
    results, failures = measure(jobs, args.runs)
    elapsed = time.monotonic() - t0
    for label, sums in sorted(benchlib.disagreements(results)):
        failures.append('%s: checksums differ between variants: %s' % (label, sums))
    rows = tabulate(jobs, results)
    try:
        load_end = '%.2f %.2f %.2f' % os.getloadavg()
    except OSError:
        load_end = '?'
    names = benchlib.in_order(j.label for j in jobs)
    print()
    for name in names:
        mine = [r for r in rows if r['workload'] == name]
        print('%s\n%s\n' % (name, benchlib.table(columns(name), mine, 'text')))
    goals = goal_lines(rows)
    print(goals)
    raw = benchlib.out_file('runtime_collector.json')
    benchlib.write_json(raw, {
        'machine': mach, 'load_at_end': load_end, 'elapsed_s': elapsed, 'runs': args.runs,
        'quick': args.quick, 'threads': args.threads, 'rows': rows, 'failures': failures,
        'raw': [{'workload': w, 'variant': v, 'results': rs} for (w, v), rs in results.items()]})
    print('wrote %s' % benchlib.rel(raw))
    if not args.no_results:
        plotted = plot_svg(results, os.path.join(benchlib.BENCH_DIR, plot_name(args.threads)))
        command = 'bench/runtime/collector.py --builddir %s --runs %d%s%s' % (
            benchlib.shown(args.builddir), args.runs, ' --quick' if args.quick else '',
            '' if args.threads == 2 else ' --threads %d' % args.threads)
        body = ['## The collector thread (hakrt, T=%d)' % args.threads, '',
                'Written by `%s`: median (min–max) over %d interleaved runs. Variants: the '
                'allocator with the runtime\'s default (collector on, idle GC on, batched '
                'frees), "/off" with `--collector=off` (rooms: `--idle-gc=off`), '
                '"/nobatch" with `--batch-frees=off`; peers run `hklua --alloc=libc` with '
                'the library in LD_PRELOAD. See the docstring of bench/runtime/collector.py '
                'for what each figure is.' % (command, args.runs), '',
                benchlib.machine_md(mach),
                '- Load average at end %s; the session took %.0f s.' % (load_end, elapsed)]
        for name in names:
            mine = [r for r in rows if r['workload'] == name]
            body += ['', '### ' + name, '', benchlib.table(columns(name), mine, 'md')]
        if plotted:
            body += ['', '![RSS over time](%s)' % plot_name(args.threads)]
        body += ['', goals]
        # T = 2 is the default's section; another T has its own beside it.
        section = 'runtime-collector' + ('' if args.threads == 2 else '-t%d' % args.threads)
        benchlib.write_section(section, body, failures)
    return benchlib.exit_status(failures)


if __name__ == '__main__':
    sys.exit(main())
