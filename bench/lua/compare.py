#!/usr/bin/env python3
"""Runs the Lua benchmark suite under hakmem and every peer allocator.

    bench/lua/compare.py --builddir build/release [--quick] [--runs N]
                         [--gc incremental|generational|both]
                         [--also-builddir build/secure]

Every workload in bench/lua/ runs in hklua, the project's lua5.4-compatible
host: `hklua --alloc=hakmem` for hakmem, and `hklua --alloc=libc` (Lua's own
realloc/free allocator) under glibc, and under mimalloc, jemalloc and
tcmalloc loaded with LD_PRELOAD; and the two floors, `hklua
--alloc=floor-mixed` and `--alloc=floor-segregated` (lua_glue/hakl_floor.h);
with --also-builddir DIR, DIR's hklua too, as "hakmem-<DIR's name>" (the
secure build beside release: hakmem-secure).
Runs are interleaved by benchlib.measure_jobs (round 1 of every job, then
round 2, ..., each round rotated), several rounds each.  Per workload, GC
mode and allocator it reports the median time (user + system CPU time of
the child by default, steadier than wall time on a shared machine; --time
wall for wall time) with its min-max, relative to glibc and to the better
floor, the peak RSS, the GC pause distribution that hklua measured
(`--gc-pauses=FILE`: steps p50/p99/max, full collections, lua_close), and
the geometric means of time and RSS relative to glibc.  Output: progress lines, a table, bench/out/lua.csv and
bench/out/lua.json, PNG plots in bench/plots/, and the lua section of
bench/RESULTS.md.

Peak RSS and CPU time are taken by GNU time (`/usr/bin/time -f '%M %U %S'`) around the child, not
from the rusage Python's wait4 returns: Linux carries the high-water mark of
the process that called execve into the child's ru_maxrss, so every child
of this runner would report at least the runner's own size.  GNU time forks
the workload from its own small image, and reports the child's own figure.

Until hklua is built, `--lua lua5.4` runs the suite in a stock interpreter
(peers only, no pause figures; hakmem through libhakmem-override.so by
LD_PRELOAD when the build has it).  A benchmark is never a timed test:
nothing here fails on speed, only on a workload that fails or disagrees.
"""

import argparse
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]
import benchlib  # noqa: E402

# (workload, default size, quick size): each script takes its size as arg[1]
# and runs one to a few seconds at its default size with stock lua5.4 on
# a 2-core machine; the quick size is about a third of that.
WORKLOADS = [
    ('binary_trees', 15, 14),
    ('strings_build', 160000, 50000),
    ('strings_gsub', 14000, 4000),
    ('tables', 1200, 450),
    ('closures', 12000, 4500),
    ('coroutines', 2000, 750),
    ('json', 1600, 600),
    ('oo_sim', 700, 260),
    ('cache', 500000, 160000),
    ('game_loop', 2000, 600),
    ('message_queue', 400000, 120000),
    ('churn', 1000000, 300000),
]
MODES = ['incremental', 'generational']
# The suite's floors (lua_glue/hakl_floor.h), run by hklua like hakmem:
# minimal lua_Allocs that show what placement and instruction count can
# still win.  Not peers: the goals compare hakmem with the peers, and every
# allocator's time with the better of the two floors.
FLOORS = ['floor-mixed', 'floor-segregated']
LUA_ALLOCATORS = benchlib.ALLOCATORS + FLOORS
TIMEOUT_S = 300
GNU_TIME = '/usr/bin/time'


def warn(msg):
    print('compare.py: warning: %s' % msg, file=sys.stderr, flush=True)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', required=True, help='build directory holding hklua')
    ap.add_argument('--quick', action='store_true',
                    help='small sizes, 3 runs, incremental GC only: under two minutes')
    ap.add_argument('--runs', type=int, default=None,
                    help='runs per workload and allocator (default 5, --quick 3)')
    ap.add_argument('--gc', choices=['incremental', 'generational', 'both'], default=None,
                    help='collector mode(s) (default both, --quick incremental)')
    ap.add_argument('--only', action='append', default=[],
                    help='only the workloads whose name contains this (repeatable)')
    ap.add_argument('--alloc', action='append', default=[], choices=LUA_ALLOCATORS,
                    help='only these allocators (repeatable)')
    ap.add_argument('--time', choices=['cpu', 'wall'], default='cpu',
                    help='the time compared: user + system CPU time of the child '
                         '(default; steadier on a shared machine) or wall time')
    ap.add_argument('--size-scale', type=float, default=1.0,
                    help='multiply every size by this (binary_trees: depth unchanged)')
    ap.add_argument('--lua', default=None,
                    help='a stock interpreter to use instead of DIR/hklua (no GC pauses)')
    ap.add_argument('--also-builddir', action='append', default=[], metavar='DIR',
                    help="also run DIR's hklua --alloc=hakmem, as hakmem-<name of DIR> "
                         '(repeatable)')
    ap.add_argument('--no-results', action='store_true', help='leave bench/RESULTS.md alone')
    ap.add_argument('--no-plots', action='store_true', help='draw no PNG')
    args = ap.parse_args()
    benchlib.settle_runs(ap, args, 5)
    if args.gc is None:
        args.gc = 'incremental' if args.quick else 'both'
    args.modes = MODES if args.gc == 'both' else [args.gc]
    return args


# ---------------------------------------------------------------------------
# What to run
# ---------------------------------------------------------------------------

class Host:
    """How to start a workload under one allocator in one GC mode."""

    def __init__(self, args):
        self.builddir = args.builddir
        self.stock = args.lua is not None
        if self.stock:
            self.exe = shutil.which(args.lua) or args.lua
        else:
            self.exe = os.path.join(args.builddir, 'hklua')
        if not os.access(self.exe, os.X_OK):
            hint = ('' if self.stock else
                    ' (build it: ninja -C %s; or pass --lua lua5.4 to use a stock '
                    'interpreter meanwhile)' % args.builddir)
            raise SystemExit('compare.py: %s is not an executable%s' % (self.exe, hint))
        self.override = os.path.join(args.builddir, 'libhakmem-override.so')

    def allocators(self, wanted, peers, also=()):
        """{allocator: (host arguments, LD_PRELOAD or None)} for those present;
        `also`: other build directories, whose hklua runs as hakmem-<name>."""
        out = {}
        for d in also:
            exe = os.path.join(d, 'hklua')
            if self.stock or not os.access(exe, os.X_OK):
                warn('%s skipped: %s is not built (or a stock interpreter runs the suite)'
                     % (benchlib.also_label(d), exe))
                continue
            out[benchlib.also_label(d)] = (['--alloc=hakmem'], None, exe)
        for a in wanted:
            if a in FLOORS:
                if not self.stock:
                    out[a] = (['--alloc=' + a], None)
            elif a == 'glibc':
                out[a] = ([] if self.stock else ['--alloc=libc'], None)
            elif a == 'hakmem':
                if not self.stock:
                    out[a] = (['--alloc=hakmem'], None)
                elif os.path.exists(self.override):
                    out[a] = ([], os.path.abspath(self.override))
                else:
                    warn('hakmem skipped: a stock interpreter can only run it through '
                         '%s, which is not built' % self.override)
            elif a in peers:
                out[a] = ([] if self.stock else ['--alloc=libc'], peers[a])
        return out

    def command(self, alloc_args, mode, script, size, pause_file, exe=None):
        if self.stock:  # lua.c sets generational itself; -e runs after that
            return [self.exe, '-e', 'collectgarbage("%s")' % mode, script, str(size)]
        return ([exe or self.exe] + alloc_args +
                ['--gc=%s' % mode, '--gc-pauses=%s' % pause_file, script, str(size)])


def workload_sizes(args):
    out = []
    for name, size, quick in WORKLOADS:
        if not benchlib.selected(name, args.only):
            continue
        n = quick if args.quick else size
        if name != 'binary_trees' and args.size_scale != 1.0:
            n = max(1, int(n * args.size_scale))
        out.append((name, n))
    return out


# ---------------------------------------------------------------------------
# One run
# ---------------------------------------------------------------------------

def read_pauses(path):
    """hklua's --gc-pauses JSON, or None when the file is missing.  Shape:
    {"alloc", "steps": {count, p50_us, p99_us, p999_us, max_us, total_ms},
     "full": {count, total_ms, max_us}, "close_ms", "gc_mode"}, with an
    optional "durations_us" list of every step."""
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    data = json.loads(text)
    for key in ('steps', 'full'):
        if not isinstance(data.get(key), dict):
            raise ValueError('pause file %s: no "%s" object' % (path, key))
    return data


def run_one(cmd, env, pause_file, tmpdir):
    """Runs a workload once: {'wall_s', 'cpu_s', 'rss_kb', 'checksum', 'pauses'}
    (cpu_s: user + system time, None without GNU time), or
    raises RuntimeError with what went wrong."""
    if pause_file and os.path.exists(pause_file):
        os.remove(pause_file)
    rss_file = os.path.join(tmpdir, 'rss')
    full = cmd
    if os.access(GNU_TIME, os.X_OK):
        full = [GNU_TIME, '-f', '%M %U %S', '-o', rss_file] + cmd
    t0 = time.perf_counter()
    try:
        p = subprocess.Popen(full, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        out, err = p.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise RuntimeError('timed out after %d s' % TIMEOUT_S)
    secs = time.perf_counter() - t0
    if p.returncode != 0:
        tail = (err.strip() or out.strip())[-600:]
        raise RuntimeError('exit status %d: %s' % (p.returncode, tail))
    checksum = None
    for line in out.splitlines():
        if ' checksum ' in line:
            checksum = line.strip()
    if checksum is None:
        raise RuntimeError('no checksum line in its output')
    rss_kb = None  # unknown without GNU time (wait4's figure would be wrong)
    cpu = None
    if full is not cmd:
        try:
            with open(rss_file) as f:
                kb, user, sys_s = f.read().split()[-3:]
            rss_kb, cpu = int(kb), float(user) + float(sys_s)
        except (OSError, ValueError, IndexError):
            raise RuntimeError('GNU time wrote no peak RSS')
    pauses = read_pauses(pause_file) if pause_file else None
    return {'wall_s': secs, 'cpu_s': cpu, 'rss_kb': rss_kb, 'checksum': checksum,
            'pauses': pauses}


# ---------------------------------------------------------------------------
# The session
# ---------------------------------------------------------------------------

def show(res):
    """The progress figures of one run."""
    p = res['pauses']
    gc = (', GC p99 %.0f us max %.0f us' % (p['steps']['p99_us'], p['steps']['max_us'])
          if p else '')
    return '%6.2f s wall, %6.2f s CPU, %7.1f MiB%s' % (
        res['wall_s'], res['cpu_s'] or 0, (res['rss_kb'] or 0) / 1024.0, gc)


def measure(args, host, allocs, workloads):
    """Runs everything interleaved by benchlib.measure_jobs; returns
    ({(mode, workload, alloc): [runs]}, failures).  A job's label is
    "<mode> <workload>"."""
    with tempfile.TemporaryDirectory(prefix='hakmem-bench-') as tmp:
        pause_file = None if host.stock else os.path.join(tmp, 'pauses.json')
        links = {}
        scripts = benchlib.fixed_path(tmp, HERE, links)
        jobs = []
        for mode in args.modes:
            for name, size in workloads:
                script = os.path.join(scripts, name + '.lua')
                for a, (alloc_args, preload, *exe) in allocs.items():
                    hklua = benchlib.fixed_path(tmp, exe[0] if exe else host.exe, links)
                    jobs.append(benchlib.Job('%s %s' % (mode, name), a,
                                             host.command(alloc_args, mode, script, size,
                                                          pause_file, hklua),
                                             benchlib.child_env(preload)))
        rounds = {}  # id(job): its runs so far, which pick its GC phase

        def run(job, _timeout):
            r = rounds.get(id(job), 0)
            rounds[id(job)] = r + 1
            return run_one(job.argv + [benchlib.gc_phase_arg(r)], job.env, pause_file, tmp)
        by_label, failures = benchlib.measure_jobs(
            jobs, args.runs, TIMEOUT_S, (27, 16), run=run, show=show)
    results = {}
    for (label, a), runs in by_label.items():
        mode, name = label.split(' ')
        results[(mode, name, a)] = runs
    return results, failures


def check_checksums(results, failures):
    """Every allocator must print the same checksum line for a workload and
    mode: the scripts are deterministic, whatever serves their memory."""
    for what, sums in benchlib.disagreements(results):
        failures.append('%s: outputs differ between allocators: %s' % (what, sums))


def median_of(runs, f):
    vals = [v for v in (f(r) for r in runs) if v is not None]
    return benchlib.summary(vals)['median'] if vals else None


def tabulate(results, workloads, modes, metric):
    """One row per (mode, workload, allocator) with its summary figures;
    `metric` ('cpu' or 'wall') says which time they compare."""
    rows = []
    key = 'cpu_s' if metric == 'cpu' else 'wall_s'
    for mode in modes:
        for name, size in workloads:
            group = []
            for a in LUA_ALLOCATORS:
                runs = results.get((mode, name, a))
                if not runs or any(r[key] is None for r in runs):
                    continue
                t = benchlib.summary([r[key] for r in runs])
                row = {'gc_mode': mode, 'workload': name, 'size': size, 'alloc': a,
                       'runs': len(runs), 'time_median_s': t['median'],
                       'time_min_s': t['min'], 'time_max_s': t['max'],
                       'time_q1_s': t['q1'], 'time_q3_s': t['q3'],
                       'wall_median_s': median_of(runs, lambda r: r['wall_s']),
                       'rss_median_mib': median_of(runs, lambda r: r['rss_kb'] and
                                                   r['rss_kb'] / 1024.0)}
                def pf(sect, key):
                    return median_of(runs, lambda r: r['pauses'] and
                                     r['pauses'][sect].get(key))
                row.update({
                    'gc_steps': pf('steps', 'count'),
                    'gc_p50_us': pf('steps', 'p50_us'),
                    'gc_p99_us': pf('steps', 'p99_us'),
                    'gc_p999_us': pf('steps', 'p999_us'),
                    'gc_max_us': pf('steps', 'max_us'),
                    'gc_total_ms': pf('steps', 'total_ms'),
                    'full_count': pf('full', 'count'),
                    'full_total_ms': pf('full', 'total_ms'),
                    'close_ms': median_of(runs, lambda r: r['pauses'] and
                                          r['pauses'].get('close_ms')),
                })
                group.append(row)
            base = next((g for g in group if g['alloc'] == 'glibc'), None)
            floors = [g['time_median_s'] for g in group if g['alloc'] in FLOORS]
            for row in group:
                row['time_vs_floor'] = row['time_median_s'] / min(floors) if floors else None
                row['time_vs_glibc'] = (row['time_median_s'] / base['time_median_s']
                                        if base else None)
                row['rss_vs_glibc'] = (row['rss_median_mib'] / base['rss_median_mib']
                                       if base and row['rss_median_mib']
                                       and base['rss_median_mib'] else None)
            rows += group
    return rows


def geomeans(rows, modes):
    """{mode: {alloc: {'time': x, 'rss': y}}} relative to glibc."""
    out = {}
    for mode in modes:
        out[mode] = {}
        for a in LUA_ALLOCATORS:
            mine = [r for r in rows if r['gc_mode'] == mode and r['alloc'] == a]
            if not mine:
                continue
            out[mode][a] = {'time': benchlib.geomean([r['time_vs_glibc'] for r in mine]),
                            'time_vs_floor': benchlib.geomean([r['time_vs_floor']
                                                               for r in mine]),
                            'rss': benchlib.geomean([r['rss_vs_glibc'] for r in mine]),
                            'workloads': len(mine)}
    return out


def goals(rows, gm, modes):
    """The issue's goals, each with what was measured, met or not."""
    lines = []
    for mode in modes:
        mine = [r for r in rows if r['gc_mode'] == mode]
        names = benchlib.in_order(r['workload'] for r in mine)
        by = {(r['workload'], r['alloc']): r for r in mine}
        if not any(a == 'hakmem' for _, a in by):
            lines.append('- %s: hakmem was not measured.' % mode)
            continue
        slower, fatter, pausier = [], [], []
        compared = 0  # workloads where hakmem ran beside at least one peer
        for w in names:
            h = by.get((w, 'hakmem'))
            peers = [by[(w, a)] for a in benchlib.ALLOCATORS
                     if a != 'hakmem' and (w, a) in by]
            if not h or not peers:
                continue
            compared += 1
            best = min(peers, key=lambda r: r['time_median_s'])
            if h['time_median_s'] > best['time_median_s']:
                slower.append('%s (%s %.2fx faster)' % (
                    w, best['alloc'], h['time_median_s'] / best['time_median_s']))
            rss_peers = [p for p in peers if p['rss_median_mib']]
            if h['rss_median_mib'] and rss_peers:
                best = min(rss_peers, key=lambda r: r['rss_median_mib'])
                if h['rss_median_mib'] > best['rss_median_mib']:
                    fatter.append('%s (%.1f MiB vs %s %.1f MiB)' % (
                        w, h['rss_median_mib'], best['alloc'], best['rss_median_mib']))
            p99_peers = [p for p in peers if p['gc_p99_us']]
            if h['gc_p99_us'] is not None and p99_peers:
                best = min(p99_peers, key=lambda r: r['gc_p99_us'])
                if h['gc_p99_us'] > 0.8 * best['gc_p99_us']:
                    pausier.append('%s (%.0f us vs %s %.0f us)' % (
                        w, h['gc_p99_us'], best['alloc'], best['gc_p99_us']))
        n = len(names)
        far = ['%s (%.2fx)' % (w, by[(w, 'hakmem')]['time_vs_floor']) for w in names
               if (w, 'hakmem') in by and by[(w, 'hakmem')]['time_vs_floor']
               and by[(w, 'hakmem')]['time_vs_floor'] > 1.02]
        if any(by[(w, 'hakmem')]['time_vs_floor'] for w in names if (w, 'hakmem') in by):
            lines.append('- %s, at most 1.02x the better floor\'s time on every workload: %s.'
                         % (mode, 'met' if not far else 'NOT met on %d of %d: %s'
                            % (len(far), n, '; '.join(far))))
        if compared == 0:  # --alloc hakmem alone: no goal against the peers can be judged
            lines.append('- %s: no peer ran beside hakmem, so the goals against the peers '
                         'were not measured.' % mode)
            continue
        lines.append('- %s, fastest of the five on every workload: %s.' % (
            mode, 'met' if not slower else 'NOT met on %d of %d: %s'
            % (len(slower), n, '; '.join(slower))))
        g = gm.get(mode, {})
        if g.get('hakmem') and g.get('mimalloc') and g['hakmem']['time'] and g['mimalloc']['time']:
            x = g['mimalloc']['time'] / g['hakmem']['time']
            lines.append('- %s, at least 15%% faster than mimalloc in the geometric mean: '
                         'mimalloc/hakmem time = %.2f (%s).' % (mode, x, 'met' if x >= 1.15
                                                                else 'NOT met'))
        lines.append('- %s, peak RSS no higher than the best peer\'s: %s.' % (
            mode, 'met' if not fatter else 'NOT met on %d of %d: %s'
            % (len(fatter), n, '; '.join(fatter))))
        if any(r['gc_p99_us'] is not None for r in mine):
            lines.append('- %s, GC p99 pause at most 0.8 of the best peer\'s: %s.' % (
                mode, 'met' if not pausier else 'NOT met on %d of %d: %s'
                % (len(pausier), n, '; '.join(pausier))))
        h, g0 = by.get(('cache', 'hakmem')), by.get(('cache', 'glibc'))
        if h and g0 and h['close_ms'] and g0['close_ms']:
            x = g0['close_ms'] / h['close_ms']
            lines.append('- %s, lua_close of the large heap (cache) at least 5x faster than '
                         'under glibc: %.1f ms vs %.1f ms, %.1fx (%s).' % (
                             mode, h['close_ms'], g0['close_ms'], x,
                             'met' if x >= 5 else 'NOT met'))
    return lines


# ---------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------

def fmt(x, f='%.2f', none='–'):
    return none if x is None else f % x


def suite_columns(pauses, with_mode):
    """The columns of the suite's table; with_mode: the GC mode first (one
    table for both modes), pauses: hklua's pause figures."""
    col = benchlib.column
    cols = [col('mode', lambda r: r['gc_mode'], 'l')] if with_mode else []
    cols += [col('workload', lambda r: r['workload'], 'l'),
             col('allocator', lambda r: r['alloc'], 'l'),
             col('time s (min–max)', lambda r: '%.3f (%.3f–%.3f)' % (
                 r['time_median_s'], r['time_min_s'], r['time_max_s'])),
             col('vs glibc', lambda r: fmt(r['time_vs_glibc'])),
             col('vs floor', lambda r: fmt(r['time_vs_floor'])),
             col('peak RSS MiB', lambda r: fmt(r['rss_median_mib'], '%.1f')),
             col('RSS vs glibc', lambda r: fmt(r['rss_vs_glibc']))]
    if pauses:
        cols += [col('GC steps', lambda r: fmt(r['gc_steps'], '%.0f')),
                 col('p50 µs', lambda r: fmt(r['gc_p50_us'], '%.1f')),
                 col('p99 µs', lambda r: fmt(r['gc_p99_us'], '%.1f')),
                 col('max µs', lambda r: fmt(r['gc_max_us'], '%.0f')),
                 col('full ms', lambda r: fmt(r['full_total_ms'], '%.1f')),
                 col('close ms', lambda r: fmt(r['close_ms'], '%.1f'))]
    return cols


def table_md(rows, mode, pauses):
    return benchlib.table(suite_columns(pauses, False),
                          [r for r in rows if r['gc_mode'] == mode], 'md')


def table_text(rows, pauses):
    return benchlib.table(suite_columns(pauses, True), rows, 'text')


def geomean_md(gm):
    col = benchlib.column
    return benchlib.table(
        [col('GC mode', lambda x: x[0], 'l'), col('allocator', lambda x: x[1], 'l'),
         col('time vs glibc', lambda x: fmt(x[2]['time'], '%.3f')),
         col('time vs the better floor', lambda x: fmt(x[2]['time_vs_floor'], '%.3f')),
         col('peak RSS vs glibc', lambda x: fmt(x[2]['rss'], '%.3f'))],
        [(mode, a, g) for mode, by in gm.items() for a, g in by.items()], 'md')


CSV_FIELDS = ['gc_mode', 'workload', 'size', 'alloc', 'runs', 'time_median_s', 'time_min_s',
              'time_max_s', 'time_q1_s', 'time_q3_s', 'time_vs_glibc', 'time_vs_floor',
              'wall_median_s', 'rss_median_mib',
              'rss_vs_glibc', 'gc_steps', 'gc_p50_us', 'gc_p99_us', 'gc_p999_us', 'gc_max_us',
              'gc_total_ms', 'full_count', 'full_total_ms', 'close_ms']


def write_outputs(rows, doc):
    """bench/out/lua.csv (the rows) and bench/out/lua.json (everything)."""
    csv_path = benchlib.out_file('lua.csv')
    with open(csv_path, 'w', newline='') as f:
        w = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction='ignore')
        w.writeheader()
        for r in rows:
            w.writerow({k: ('' if r.get(k) is None else r[k]) for k in CSV_FIELDS})
    json_path = benchlib.out_file('lua.json')
    benchlib.write_json(json_path, doc)
    return csv_path, json_path


def draw_plots(json_path, plot_dir):
    """PNG files drawn by plots.py: here when this Python has matplotlib,
    else by the system Python (Debian's python3-matplotlib) when it has it."""
    try:
        import plots  # noqa: F401  (bench/lua/plots.py; imports matplotlib)
        return plots.draw(json_path, plot_dir)
    except ImportError:
        pass
    for py in ('/usr/bin/python3',):
        if os.path.realpath(py) == os.path.realpath(sys.executable) or not os.access(py, os.X_OK):
            continue
        p = subprocess.run([py, os.path.join(HERE, 'plots.py'), json_path, plot_dir],
                           capture_output=True, text=True)
        if p.returncode == 0:
            return [l for l in p.stdout.splitlines() if l.endswith('.png')]
        warn('plots.py under %s failed: %s' % (py, p.stderr.strip()[-300:]))
        return []
    warn('no matplotlib (Debian package python3-matplotlib): no plots drawn')
    return []


def main():
    args = parse_args()
    host = Host(args)
    peers = benchlib.peer_libs(warn)
    allocs = host.allocators(args.alloc or LUA_ALLOCATORS, peers, args.also_builddir)
    LUA_ALLOCATORS.extend(a for a in allocs if a not in LUA_ALLOCATORS)  # the tables' columns
    workloads = workload_sizes(args)
    if not allocs or not workloads:
        print('compare.py: nothing to run', file=sys.stderr)
        return 1
    if not os.access(GNU_TIME, os.X_OK):
        warn('%s missing (Debian package time): no peak RSS (wait4\'s figure would '
             'include this runner\'s own size)' % GNU_TIME)
    mach = benchlib.machine(peers)
    mach['host'] = host.exe
    print('Lua suite: %d workloads x %d allocators x %d runs x %d GC mode(s) with %s'
          % (len(workloads), len(allocs), args.runs, len(args.modes), host.exe), flush=True)

    results, failures = measure(args, host, allocs, workloads)
    check_checksums(results, failures)
    rows = tabulate(results, workloads, args.modes, args.time)
    gm = geomeans(rows, args.modes)
    goal_lines = goals(rows, gm, args.modes)
    pauses = not host.stock

    print()
    print(table_text(rows, pauses))
    print()
    for mode, by in gm.items():
        print('geometric mean vs glibc (%s): %s' % (mode, ', '.join(
            '%s time %s (vs floor %s) RSS %s' % (a, fmt(g['time'], '%.3f'),
                                                 fmt(g['time_vs_floor'], '%.3f'),
                                                 fmt(g['rss'], '%.3f'))
            for a, g in by.items())))
    for line in goal_lines:
        print(line)

    doc = {'machine': mach, 'runs': args.runs, 'quick': args.quick, 'modes': args.modes,
           'time': args.time,
           'host': host.exe, 'stock_interpreter': host.stock,
           'workloads': [{'name': n, 'size': s} for n, s in workloads],
           'rows': rows, 'geomeans': gm, 'goals': goal_lines, 'failures': failures,
           'raw': [{'gc_mode': m, 'workload': w, 'alloc': a, 'runs': rs}
                   for (m, w, a), rs in results.items()]}
    csv_path, json_path = write_outputs(rows, doc)
    print('wrote %s and %s' % (benchlib.rel(csv_path), benchlib.rel(json_path)))

    images = []
    if not args.no_plots:
        images = draw_plots(json_path, os.path.join(benchlib.BENCH_DIR, 'plots'))
        for img in images:
            print('wrote %s' % benchlib.rel(img))

    if not args.no_results:
        cmd = 'bench/lua/compare.py --builddir %s --runs %d --gc %s --time %s%s' % (
            benchlib.shown(args.builddir), args.runs, args.gc, args.time,
            ' --quick' if args.quick else '')
        cmd += ''.join(' --also-builddir %s' % benchlib.shown(d) for d in args.also_builddir)
        if host.stock:
            cmd += ' --lua %s' % args.lua
        body = ['## Lua benchmark suite', '',
                'Written by `%s`: %d interleaved runs per workload and allocator; '
                'time is the median %s of the whole process (min–max beside it), '
                'peak RSS the median of GNU time\'s maximum resident set. "vs floor" is the '
                'time relative to the better of the two floors on that workload and GC mode '
                '(`lua_glue/hakl_floor.h`: minimal lua_Allocs with exact 8-byte classes to '
                '1 KiB and LIFO lists fed by sized frees; floor-mixed bump-allocates every '
                'class from one arena, floor-segregated each class from a region of its '
                'own).' % (cmd, args.runs, 'user + system CPU time' if args.time == 'cpu'
                           else 'wall time')]
        if host.stock:
            body += ['', '**Measured with a stock interpreter (%s), not hklua: no GC pause '
                     'figures; hakmem, if present, through the malloc override.**' % host.exe]
        else:
            body += ['', 'GC pauses are hklua\'s `--gc-pauses`: every luaC_step timed (p50, p99, '
                     'max: medians over the runs), the total of full collections, and '
                     '`lua_close`.']
        body += ['', benchlib.machine_md(mach), '']
        sizes = ', '.join('%s %d' % (n, s) for n, s in workloads)
        body += ['Sizes (arg[1]): %s.' % sizes, '']
        for mode in args.modes:
            body += ['### %s GC' % mode.capitalize(), '', table_md(rows, mode, pauses), '']
        body += ['### Geometric means relative to glibc', '', geomean_md(gm), '',
                 '### Goals', ''] + goal_lines + ['']
        for img in images:
            name = os.path.basename(img)
            body += ['![%s](plots/%s)' % (name[:-4].replace('_', ' '), name), '']
        benchlib.write_section('lua', body, failures)

    return benchlib.exit_status(failures)


if __name__ == '__main__':
    sys.exit(main())
