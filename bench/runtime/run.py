#!/usr/bin/env python3
"""Runs the hakrt runtime benchmarks under every allocator and reports them side by side.

    bench/runtime/run.py --builddir build/release [--quick] [--runs N]
                         [--threads 1,2,4] [--alloc NAME ...] [--only NAME ...]
                         [--no-results]

Workloads, all run by <builddir>/hklua --threads=T:
  scaling   --tasks=8: eight independent copies of bench/lua/binary_trees,
            closures and strings_build (one copy takes ~0.2-0.4 s alone);
            wall time of the whole process, speedup over the allocator's own
            T = 1, peak RSS
  messages  bench/runtime/messages.lua: a producer task sends small tables
            and strings through a channel of capacity 64 to the main task,
            which checks each one; messages per second
  buffers   bench/runtime/buffers.lua: producer -> relay -> main, a new
            64 KiB rt.buffer per message (moved, not copied); hops
            (sends) per second
  spawn     bench/runtime/spawn.lua: the main task spawns short request-like
            tasks in waves of 200 and joins them; tasks per second, wall
            latency of a wave (p50, p99) and per task spawn->join latency in
            process CPU time (p50, p99; see spawn.lua)

scaling and spawn run at every thread count of --threads (default: 1, 2,
then powers of two up to min(16, nproc), and nproc), messages and buffers
at 1 and 2 (their pipelines have two or three tasks).

What is measured: the runner reads each child's output line by line and
stamps every "mark ..." line with time.monotonic() as it arrives; messages,
buffers and spawn divide their count by the time from "mark start" to
"mark done" (runtime start-up and exit left out).  scaling has no marks:
its figure is the wall time of the process.  Peak RSS is the child's
maximum resident set as GNU time (/usr/bin/time -f %M) reports it.

Allocators: hakmem (hklua --alloc=hakmem), glibc (hklua --alloc=libc, no
preload), mimalloc, jemalloc and tcmalloc (hklua --alloc=libc with the
library in LD_PRELOAD): one binary for all.  Runs are interleaved the way
benchlib.measure_jobs does it: run 1 of every job, then run 2, ..., each
round rotated three places further.  All allocators must report the same
checksum for a workload.  The best peer of a figure is the best of glibc,
mimalloc, jemalloc and tcmalloc.

Output: progress lines, the tables, bench/out/runtime.json and the runtime
section of bench/RESULTS.md.  Nothing here fails on speed, only on a child
that fails, hangs or disagrees.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchlib  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
LUA_DIR = os.path.join(benchlib.BENCH_DIR, 'lua')
ALLOCS = benchlib.ALLOCATORS
PEER_ALLOCS = [a for a in ALLOCS if a != 'hakmem']
TIMEOUT_S = 300
GNU_TIME = '/usr/bin/time'
COPIES = 8

# Scaling: (bench/lua workload, argument, argument for --quick).
SCALING = [
    ('binary_trees', '13', '12'),
    ('closures', '1000', '500'),
    ('strings_build', '10000', '5000'),
]
# The runtime's own workloads: (name, arguments, arguments for --quick,
# thread counts limited to these or None for all of --threads).
PIPELINES = [
    ('messages', ['200000', '64'], ['50000', '64'], [1, 2]),
    ('buffers', ['20000', '65536', '16'], ['5000', '65536', '16'], [1, 2]),
    ('spawn', ['20000', '200'], ['5000', '200'], None),
]

# The figures of each kind: (key, heading, unit format, higher is better).
FIGURES = {
    'scaling': [('wall_s', 'wall s', '%.3f', False)],
    'messages': [('msgs_per_s', 'messages/s', '%.0f', True)],
    'buffers': [('hops_per_s', 'hops/s', '%.0f', True)],
    'spawn': [('tasks_per_s', 'tasks/s', '%.0f', True),
              ('wave_p50_ms', 'wave p50 ms', '%.2f', False),
              ('wave_p99_ms', 'wave p99 ms', '%.2f', False),
              ('cpu_p50_ms', 'task p50 CPU ms', '%.3f', False),
              ('cpu_p99_ms', 'task p99 CPU ms', '%.3f', False)],
}
RSS = ('peak_rss_kb', 'peak RSS MiB', '%.1f', False)


def warn(msg):
    print('run.py: warning: %s' % msg, file=sys.stderr)


def default_threads():
    n = min(16, os.cpu_count() or 1)
    ts = {1, 2}
    t = 4
    while t <= n:
        ts.add(t)
        t *= 2
    ts.add(n)
    return sorted(ts)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', required=True, help='build directory holding hklua')
    ap.add_argument('--runs', type=int, default=None,
                    help='runs per workload, thread count and allocator (default 5, --quick 2)')
    ap.add_argument('--quick', action='store_true', help='2 runs of smaller sizes')
    ap.add_argument('--threads', default=None,
                    help='comma-separated worker counts (default: 1,2, powers of two up to '
                         'min(16, nproc), and nproc)')
    ap.add_argument('--only', action='append', default=[],
                    help='run only the workloads whose name contains this (repeatable)')
    ap.add_argument('--alloc', action='append', default=[], choices=ALLOCS,
                    help='run only these allocators (repeatable; default: all)')
    ap.add_argument('--no-results', action='store_true',
                    help='do not rewrite bench/RESULTS.md')
    args = ap.parse_args()
    if args.runs is None and args.quick:
        args.runs = 2
    benchlib.settle_runs(ap, args, 5)
    args.threads = benchlib.parse_threads(ap, args.threads, default_threads)
    return args


# ---------------------------------------------------------------------------
# The plan
# ---------------------------------------------------------------------------

def alloc_variants(args, peers):
    """{allocator: (hklua option, LD_PRELOAD or None)} for those present."""
    out = {}
    for a in args.alloc or ALLOCS:
        if a == 'hakmem':
            out[a] = ('--alloc=hakmem', None)
        elif a == 'glibc':
            out[a] = ('--alloc=libc', None)
        elif a in peers:
            out[a] = ('--alloc=libc', peers[a])
    return out


def plan(args, peers):
    """[benchlib.Job] in plan order, and {label: (kind, workload, threads)}."""
    hklua = os.path.join(os.path.abspath(args.builddir), 'hklua')
    if not os.access(hklua, os.X_OK):
        warn('%s missing (build it with ninja)' % hklua)
        return [], {}
    allocs = alloc_variants(args, peers)
    jobs, shape = [], {}

    def add(kind, name, t, script, script_args, extra):
        label = '%s T=%d' % (name, t)
        shape[label] = (kind, name, t)
        for a, (opt, preload) in allocs.items():
            argv = [hklua, '--threads=%d' % t] + extra + [opt, script] + script_args
            jobs.append(benchlib.Job(label, a, argv, benchlib.child_env(preload)))

    for name, full, quick in SCALING:
        if benchlib.selected(name, args.only):
            for t in args.threads:
                add('scaling', name, t, os.path.join(LUA_DIR, name + '.lua'),
                    [quick if args.quick else full], ['--tasks=%d' % COPIES])
    for name, full, quick, counts in PIPELINES:
        if benchlib.selected(name, args.only):
            for t in [t for t in args.threads if counts is None or t in counts]:
                add(name, name, t, os.path.join(HERE, name + '.lua'),
                    quick if args.quick else full, [])
    return jobs, shape


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------

class Child:
    """What one run of a child left: stdout `lines` (marks taken out),
    `marks` [(monotonic time, mark)], `wall` seconds, `rss_kb` (peak, GNU
    time), `err` (its stderr) and, when sampled, `samples` [(monotonic
    time, RSS KiB)] of the child below GNU time."""


def _rss_of_child(pid):
    """RSS KiB of the one child of process `pid` (GNU time's), or None."""
    try:
        with open('/proc/%d/task/%d/children' % (pid, pid)) as f:
            kids = f.read().split()
        if not kids:
            return None
        with open('/proc/%s/status' % kids[0]) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


def run_child(argv, env, timeout, tmpdir, sample_s=None):
    """Runs one child under GNU time, its output read line by line; every
    sample_s seconds its RSS is read too.  A Child; RuntimeError if it
    fails.  (os.wait4's ru_maxrss would be no good: a child forked from
    this Python process starts with its RSS.)"""
    rss_file = os.path.join(tmpdir, 'rss')
    if os.path.exists(rss_file):
        os.remove(rss_file)
    p = subprocess.Popen([GNU_TIME, '-f', '%M', '-o', rss_file] + argv, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed, samples, done = [], [], threading.Event()

    def kill():
        killed.append(True)
        p.kill()

    def sampler():
        while not done.wait(sample_s):
            kb = _rss_of_child(p.pid)
            if kb is not None:
                samples.append((time.monotonic(), kb))
    timer = threading.Timer(timeout, kill)
    err = []
    reader = threading.Thread(target=lambda: err.append(p.stderr.read()))
    sampling = threading.Thread(target=sampler) if sample_s else None
    t0 = time.monotonic()
    timer.start()
    reader.start()
    if sampling:
        sampling.start()
    lines, marks = [], []
    try:
        for line in p.stdout:
            now = time.monotonic()
            line = line.rstrip('\n')
            if line.startswith('mark '):
                marks.append((now, line[5:]))
            else:
                lines.append(line)
        p.wait()
        wall = time.monotonic() - t0
    finally:
        done.set()
        timer.cancel()
        reader.join()
        if sampling:
            sampling.join()
        p.stdout.close()
        p.stderr.close()
    if killed:
        raise RuntimeError('timed out after %d s' % timeout)
    if p.returncode != 0:
        tail = ''.join(err).strip() or '\n'.join(lines).strip()
        raise RuntimeError('exit status %d: %s' % (p.returncode, tail[-500:]))
    try:
        with open(rss_file) as f:
            rss_kb = int(f.read().split()[-1])
    except (OSError, ValueError, IndexError):
        raise RuntimeError('GNU time wrote no peak RSS')
    c = Child()
    c.lines, c.marks, c.wall, c.rss_kb, c.err, c.samples = (
        lines, marks, wall, rss_kb, ''.join(err), samples)
    return c


def result_fields(lines):
    """The key=value pairs of the child's "result ..." line."""
    for line in reversed(lines):
        if line.startswith('result '):
            out = {}
            for kv in line.split()[1:]:
                k, _, v = kv.partition('=')
                out[k] = float(v) if '.' in v else int(v)
            return out
    raise RuntimeError('no result line in its output')


def mark_span(marks):
    """Seconds from "mark start" to "mark done"."""
    times = {m: t for t, m in marks}
    if 'start' not in times or 'done' not in times:
        raise RuntimeError('no start and done marks in its output')
    span = times['done'] - times['start']
    if span <= 0:
        raise RuntimeError('done came no later than start')
    return span


def run_one(job, kind, tmpdir):
    """Runs a Job once: its figures, 'checksum' and 'peak_rss_kb'."""
    c = run_child(job.argv, job.env, TIMEOUT_S, tmpdir)
    lines, marks, wall, rss = c.lines, c.marks, c.wall, c.rss_kb
    res = {'peak_rss_kb': rss, 'process_wall_s': wall}
    if kind == 'scaling':
        sums = [l for l in lines if ' checksum ' in l]
        if len(sums) != COPIES or len(set(sums)) != 1:
            raise RuntimeError('want %d equal checksum lines, got %s' % (COPIES, sums[:3]))
        res.update(wall_s=wall, checksum=sums[0])
        return res
    fields = result_fields(lines)
    span = mark_span(marks)
    res['span_s'] = span
    if kind == 'messages':
        res['msgs_per_s'] = fields['messages'] / span
    elif kind == 'buffers':
        res['hops_per_s'] = fields['hops'] / span
    elif kind == 'spawn':
        res['tasks_per_s'] = fields['tasks'] / span
        # A wave runs from the previous mark (start, or the wave before).
        times = [t for t, m in marks if m in ('start', 'wave')]
        waves = sorted((b - a) * 1000 for a, b in zip(times, times[1:]))
        res['wave_p50_ms'] = benchlib.percentile(waves, 50)
        res['wave_p99_ms'] = benchlib.percentile(waves, 99)
        res['cpu_p50_ms'] = fields['cpu_p50_ms']
        res['cpu_p99_ms'] = fields['cpu_p99_ms']
    res['checksum'] = fields['checksum']
    return res


def measure(jobs, shape, runs):
    """Every Job `runs` times, interleaved like benchlib.measure_jobs (round
    r is the plan rotated 3 * r places); ({(label, alloc): [results]},
    [failures])."""
    results = {(j.label, j.alloc): [] for j in jobs}
    failures = []
    total, done = len(jobs) * runs, 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix='hakmem-rt-bench-') as tmpdir:
        for r in range(runs):
            measure_round(jobs, shape, r, tmpdir, results, failures, (done, total, start))
            done += len(jobs)
    return results, failures


def measure_round(jobs, shape, r, tmpdir, results, failures, progress):
    """Round r of measure(): every Job once, the plan rotated 3 * r places."""
    done, total, start = progress
    for j in benchlib.rotated(jobs, r, 3):
        done += 1
        kind = shape[j.label][0]
        head = '[%3d/%d %4.0fs] %-18s %-9s run %d' % (
            done, total, time.monotonic() - start, j.label, j.alloc, r + 1)
        try:
            res = run_one(j, kind, tmpdir)
        except (RuntimeError, ValueError, KeyError, OSError) as e:
            failures.append('%s under %s: %s' % (j.label, j.alloc, e))
            print('%s: FAILED: %s' % (head, e), flush=True)
            continue
        results[(j.label, j.alloc)].append(res)
        key, _, fmt, _ = FIGURES[kind][0]
        print('%s: %s %s, %7.1f MiB peak RSS' % (head, fmt % res[key], key,
                                                res['peak_rss_kb'] / 1024.0), flush=True)


# ---------------------------------------------------------------------------
# Tables
# ---------------------------------------------------------------------------

def tabulate(jobs, shape, results):
    """One row per (label, allocator), in plan order: the summary of each
    figure and peak RSS, the ratio of each median to the best peer's, and
    (scaling, spawn) the speedup over the allocator's own T = 1."""
    rows = []
    for j in jobs:
        runs = results.get((j.label, j.alloc))
        if not runs:
            continue
        kind, name, t = shape[j.label]
        row = {'label': j.label, 'kind': kind, 'workload': name, 'threads': t,
               'alloc': j.alloc, 'runs': len(runs)}
        for key, _, _, _ in FIGURES[kind] + [RSS]:
            vals = [x[key] for x in runs if x.get(key) is not None]
            row[key] = benchlib.summary(vals) if vals else None
        rows.append(row)
    for row in rows:
        for key, _, _, higher in FIGURES[row['kind']] + [RSS]:
            peers = {r['alloc']: r[key]['median'] for r in rows
                     if r['label'] == row['label'] and r['alloc'] in PEER_ALLOCS and r[key]}
            row['best_' + key] = None
            if peers and row[key]:
                best = (max if higher else min)(peers, key=peers.get)
                row['best_' + key] = best
                row['vs_best_' + key] = (row[key]['median'] / peers[best]
                                         if peers[best] else None)
        first = FIGURES[row['kind']][0]
        base = [r for r in rows if r['workload'] == row['workload'] and r['alloc'] == row['alloc']
                and r['threads'] == 1 and r[first[0]]]
        row['speedup'] = None
        if base and row[first[0]]:
            b, m = base[0][first[0]]['median'], row[first[0]]['median']
            row['speedup'] = (b / m if not first[3] else m / b) if b and m else None
    return rows


def vs_cell(row, key):
    best = row.get('best_' + key)
    if not best:
        return '–'
    return '%s %s' % (benchlib.ratio(row.get('vs_best_' + key)), best)


def kind_table(rows, kind, style):
    """The table of one kind: per figure the median, min–max and the ratio
    to the best peer's median, then peak RSS the same way; '' when none."""
    mine = [r for r in rows if r['kind'] == kind]
    if not mine:
        return ''
    cols = [benchlib.column('workload', lambda r: r['label'], 'l'),
            benchlib.column('allocator', lambda r: r['alloc'], 'l')]
    for key, title, fmt, higher in FIGURES[kind] + [RSS]:
        div = 1024 if key == 'peak_rss_kb' else 1

        def median(r, key=key, fmt=fmt, div=div):
            return fmt % (r[key]['median'] / div) if r[key] else '–'

        def minmax(r, key=key, fmt=fmt, div=div):
            return benchlib.spread(r[key], fmt, div) if r[key] else '–'

        def vs(r, key=key):
            return vs_cell(r, key) if r[key] else '–'
        cols += [benchlib.column('%s median' % title, median),
                 benchlib.column('min–max', minmax, text=False),
                 benchlib.column('÷ best peer (%s better)' % ('>1' if higher else '<1'), vs, 'l')]
    if kind in ('scaling', 'spawn'):
        cols.append(benchlib.column('speedup over T=1', lambda r: benchlib.ratio(r['speedup'])))
    return benchlib.table(cols, mine, style)


def goal_lines(rows):
    """The issue's goals, stated with the figures measured, whatever they are."""
    lines = []
    for r in rows:
        if r['alloc'] != 'hakmem':
            continue
        if r['kind'] == 'scaling' and r['threads'] == 2 and r['speedup'] is not None:
            met = r['speedup'] >= 1.9
            lines.append('- %s: hakmem speedup over T=1 %.2f×%s.' % (
                r['label'], r['speedup'], '' if met else ' — goal (≥ 1.9) NOT met'))
    behind = []
    ahead = 0
    for r in rows:
        if r['alloc'] != 'hakmem':
            continue
        for key, title, _, higher in FIGURES[r['kind']] + [RSS]:
            v = r.get('vs_best_' + key)
            if v is None:
                continue
            if (v >= 1) if higher else (v <= 1):
                ahead += 1
            else:
                behind.append('%s %s (%s× %s)' % (r['label'], title, '%.2f' % v,
                                                   r['best_' + key]))
    if not lines and not ahead and not behind:
        return 'Goals: not measured in this run (hakmem or the peers missing).'
    lines.append('- hakmem at least as good as the best peer on %d of %d figures%s' % (
        ahead, ahead + len(behind), '.' if not behind else '; behind on: ' + ', '.join(behind)
        + ' — goal NOT met.'))
    lines.append('- Per-message cost against a channel send between two C threads: not '
                 'measured here (no C baseline in this suite).')
    return ('Goals (issue 8): speedup at T = 2 of at least 1.9; ahead of every peer '
            'allocator on every figure.\n\n' + '\n'.join(lines))


def method_lines(command, runs, quick):
    size = 'quick sizes' if quick else 'full sizes'
    return [
        'Written by `%s` (%s): median and min–max over %d interleaved runs per allocator; '
        'hakmem is `hklua --alloc=hakmem`, glibc `hklua --alloc=libc`, the other peers '
        '`hklua --alloc=libc` with the library in LD_PRELOAD (one binary). "÷ best peer" '
        'divides the median by the best median of glibc, mimalloc, jemalloc and tcmalloc.'
        % (command, size, runs),
        '',
        '- scaling: `hklua --threads=T --tasks=%d bench/lua/X.lua ARG`, %d independent '
        'copies; wall time of the process (runtime start and exit included) and its '
        'peak RSS (GNU time %%M, as for every workload); speedup = own T=1 time ÷ '
        'time.' % (COPIES, COPIES),
        '- messages: bench/runtime/messages.lua, a producer task → channel (capacity 64) → '
        'the main task, odd messages a small table, even ones a short string, each '
        'checked; messages ÷ wall time between the "mark start" and "mark done" lines, '
        'which the runner stamps with a monotonic clock as they arrive.',
        '- buffers: bench/runtime/buffers.lua, producer → relay → main, a new '
        'rt.buffer(65536) per message (moved, not copied); hops (two per buffer) ÷ the '
        'same marked wall time.',
        '- spawn: bench/runtime/spawn.lua, waves of 200 tasks spawned then joined; each '
        'builds 50 small tables and returns a ~500 B string. tasks/s: tasks ÷ marked wall '
        'time. wave p50/p99: wall time between consecutive per-wave marks as the runner '
        'receives them (a wave, not a task; includes the pipe to the runner). task '
        'p50/p99 CPU: per task, os.clock() before its spawn to after its join, i.e. '
        'PROCESS CPU time of all workers, not wall time (Lua has no monotonic clock): '
        'at T=1 it is the runtime\'s own busy time, at T=2 the sum of both workers.',
    ]


def noise_note(mach, load_end):
    """A caveat when the load average says other jobs shared the machine."""
    loads = []
    for text in (mach['load_at_start'], load_end):
        try:
            loads.append(float(text.split()[0]))
        except (ValueError, IndexError):
            pass
    if not loads or max(loads) < 0.5 * (mach['nproc'] or 1):
        return ''
    return (' Other jobs shared this machine during the run (load average up to %.2f on '
            '%s CPUs): absolute figures are noisy, the ratios between interleaved '
            'allocators less so.' % (max(loads), mach['nproc']))


def main():
    args = parse_args()
    peers = benchlib.peer_libs(warn)
    jobs, shape = plan(args, peers)
    if not jobs:
        print('run.py: nothing to run (build hklua first: ninja -C %s)' % args.builddir,
              file=sys.stderr)
        return 1
    mach = benchlib.machine(peers)
    print('runtime benchmarks: %d runs each of %d workload/allocator pairs, threads %s, '
          'interleaved' % (args.runs, len(jobs), ','.join(map(str, args.threads))), flush=True)
    t0 = time.monotonic()
    results, failures = measure(jobs, shape, args.runs)
    elapsed = time.monotonic() - t0
    for label, sums in sorted(benchlib.disagreements(results)):
        failures.append('%s: checksums differ between allocators: %s' % (label, sums))
    rows = tabulate(jobs, shape, results)
    try:
        load_end = '%.2f %.2f %.2f' % os.getloadavg()
    except OSError:
        load_end = '?'

    kinds = benchlib.in_order(shape[j.label][0] for j in jobs)
    print()
    for kind in kinds:
        print(kind_table(rows, kind, 'text') + '\n')
    print(goal_lines(rows))

    raw = benchlib.out_file('runtime.json')
    benchlib.write_json(raw, {
        'machine': mach, 'load_at_end': load_end, 'elapsed_s': elapsed, 'runs': args.runs,
        'quick': args.quick, 'builddir': args.builddir, 'threads': args.threads,
        'rows': rows, 'failures': failures,
        'raw': [{'label': l, 'alloc': a, 'results': rs} for (l, a), rs in results.items()]})
    print('wrote %s' % benchlib.rel(raw))

    if not args.no_results:
        command = 'bench/runtime/run.py --builddir %s --runs %d%s' % (
            benchlib.shown(args.builddir), args.runs, ' --quick' if args.quick else '')
        body = ['## Runtime benchmarks (hakrt)', ''] + method_lines(command, args.runs,
                                                                   args.quick)
        body += ['', benchlib.machine_md(mach),
                 '- Load average at end %s; the session took %.0f s.%s' % (
                     load_end, elapsed, noise_note(mach, load_end))]
        titles = {'scaling': 'Scaling (%d copies)' % COPIES, 'messages': 'Messages',
                  'buffers': '64 KiB buffers', 'spawn': 'Spawn'}
        for kind in kinds:
            body += ['', '### ' + titles[kind], '', kind_table(rows, kind, 'md')]
        body += ['', goal_lines(rows)]
        benchlib.write_section('runtime', body, failures)

    return benchlib.exit_status(failures)


if __name__ == '__main__':
    sys.exit(main())
