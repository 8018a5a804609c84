"""What the benchmark runners share (Python 3 standard library only).

The peers found on this machine (the list itself is bench/peers.py, which
configure.py reads too), the interleaved runs of benchmark children,
statistics over repeated runs, the one table renderer (Markdown or plain
text, from a list of columns), the machine a run happened on, the files in
bench/out/, and the marked sections of bench/RESULTS.md that each runner
rewrites without touching the others'.
"""

import collections
import datetime
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys

import peers as peer_list

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
RESULTS_MD = os.path.join(BENCH_DIR, 'RESULTS.md')
OUT_DIR = os.path.join(BENCH_DIR, 'out')
# glibc, the peers, hakmem: the order of every table (bench/peers.py).
ALLOCATORS = peer_list.ALLOCATORS


def also_label(builddir):
    """The allocator name of another hakmem build run beside the main one
    (--also-builddir build/secure: "hakmem-secure")."""
    return 'hakmem-' + os.path.basename(os.path.normpath(builddir))


def peer_libs(warn):
    """{name: library to preload} of the peers present (glibc needs none);
    `warn(msg)` for each one missing."""
    found = {}
    for peer in peer_list.PRELOADED:
        path = peer_list.find(peer)
        if path:
            found[peer.name] = path
        else:
            warn('%s not found (%s, Debian package %s): skipped'
                 % (peer.name, ' or '.join(peer.libs), peer.deb))
    return found


def child_env(preload=None, extra=None):
    """The environment of a benchmark child: ours, without any inherited
    LD_PRELOAD, plus the one asked for."""
    env = dict(os.environ)
    env.pop('LD_PRELOAD', None)
    if preload:
        env['LD_PRELOAD'] = preload
    if extra:
        env.update(extra)
    return env


def selected(name, only):
    """Whether --only (substrings, repeatable; none: everything) keeps `name`."""
    return not only or any(o in name for o in only)


def parse_threads(ap, text, default):
    """--threads "1,2,4" as a sorted list of counts; default() when not given."""
    if not text:
        return default()
    try:
        counts = sorted({int(x) for x in text.split(',') if x.strip()})
    except ValueError:
        ap.error('--threads takes numbers separated by commas')
    if not counts or min(counts) < 1:
        ap.error('--threads: counts must be >= 1')
    return counts


def settle_runs(ap, args, default):
    """Fills in --runs where it was not given (3 with --quick, else
    `default`) and rejects a count below one."""
    if args.runs is None:
        args.runs = 3 if args.quick else default
    if args.runs < 1:
        ap.error('--runs must be at least 1')


# ---------------------------------------------------------------------------
# Runs.  The bench/micro and bench/threads programs are built plain and as
# _hak binaries and print one JSON line per run (Job ... measure_jobs);
# bench/lua/compare.py runs its own children through measure_jobs too.
# ---------------------------------------------------------------------------

# One child to run: the row label it reports under, the allocator, the
# command line and the environment.
Job = collections.namedtuple('Job', 'label alloc argv env')


def binary_variant(alloc, peers):
    """How a benchmark program runs under `alloc`: (binary suffix, LD_PRELOAD
    or None), or None for a peer that was not found.  glibc is the plain
    binary as it is, hakmem the _hak binary (hakmem's API), a peer the plain
    binary with the peer preloaded."""
    if alloc == 'glibc':
        return '', None
    if alloc == 'hakmem':
        return '_hak', None
    if alloc in peers:
        return '', peers[alloc]
    return None


def binary_jobs(bindir, binary, label, variants, args, warn):
    """A Job per allocator of `variants` ({alloc: (suffix, preload)}) that
    runs bindir/<binary><suffix> with `args`; a binary not built yet is
    left out with a warning."""
    jobs = []
    for a, (suffix, preload) in variants.items():
        exe = os.path.join(bindir, binary + suffix)
        if not os.access(exe, os.X_OK):
            warn('%s missing: %s skipped under %s (build it with ninja)' % (exe, label, a))
            continue
        jobs.append(Job(label, a, [exe] + args, child_env(preload)))
    return jobs


def last_json(stdout):
    """The last line of `stdout` that holds a JSON object, decoded; None
    when there is none."""
    for line in reversed(stdout.splitlines()):
        if line.startswith('{'):
            return json.loads(line)
    return None


def run_json(argv, env, timeout):
    """Runs one benchmark child: the JSON result it printed, or raises
    RuntimeError saying what went wrong."""
    try:
        p = subprocess.run(argv, env=env, capture_output=True, text=True,
                           timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeError('timed out after %d s' % timeout)
    if p.returncode != 0:
        raise RuntimeError('exit status %d: %s' % (p.returncode, p.stderr.strip()[-500:]))
    res = last_json(p.stdout)
    if res is None:
        raise RuntimeError('no result line in its output')
    return res


def rotated(items, r, step=1):
    """`items` rotated left by r * step places: round r of an interleaved
    session starts further along, so that no allocator always runs first."""
    if not items:
        return []
    k = (r * step) % len(items)
    return items[k:] + items[:k]


def gc_phase_arg(r):
    """An argument for round r of a Lua workload, which reads only arg[1]:
    16 bytes longer each round.  Lua's collector starts a cycle when the
    bytes Lua counts reach a threshold, and `arg` is among them: the same
    script run from another path, or with one more argument, collects at
    other moments and peaks elsewhere (binary_trees' peak heap: 13.2, 13.6
    or 14.1 MiB by the length of argv[0] alone, every run of each the same
    to 4 KiB).  Without this, every round of a runner repeated one such
    schedule and its spread hid the rest.  Every allocator of a round gets
    the same argument: Lua counts bytes itself, so they collect alike."""
    return 'phase' + '.' * (16 * r)


def fixed_path(tmp, path, links):
    """`path` (an interpreter or the Lua scripts' folder) as a link in `tmp`
    whose name has the same length whichever tree it is in, made on first
    use (`links`: path -> link).  The Lua runners start every interpreter
    and script through these: their paths are in `arg` too, so two builds
    of one source from two trees would otherwise collect at other moments
    (gc_phase_arg)."""
    path = os.path.abspath(path)
    if path not in links:
        folder = os.path.join(tmp, 'p%02d' % len(links))
        os.makedirs(folder)
        links[path] = os.path.join(folder, os.path.basename(path))
        os.symlink(path, links[path])
    return links[path]


def throughput_line(res):
    """The progress figures of a benchmark child's JSON result."""
    return '%8.2f Mops/s  %7.1f MiB peak RSS' % (res['ops_per_s'] / 1e6,
                                                res['peak_rss_kb'] / 1024.0)


def measure_jobs(jobs, runs, timeout, widths, run=None, show=throughput_line):
    """Runs every Job `runs` times, interleaved: round 1 of every job, then
    round 2, ..., each round rotated three places further.  A run is
    run(job, timeout) (default: run_json of its argv and env), which returns
    the result or raises RuntimeError, ValueError or OSError saying what went
    wrong.  Prints a progress line per run: its label and allocator in
    columns of `widths`, then show(result).  Returns ({(label, alloc):
    [results]}, [failures])."""
    if run is None:
        run = lambda j, t: run_json(j.argv, j.env, t)  # noqa: E731
    results = {(j.label, j.alloc): [] for j in jobs}
    failures = []
    total, done = len(jobs) * runs, 0
    lw, aw = widths
    for r in range(runs):
        for j in rotated(jobs, r, 3):
            done += 1
            head = '[%3d/%d] %-*s %-*s run %d' % (done, total, lw, j.label, aw, j.alloc, r + 1)
            try:
                res = run(j, timeout)
            except (RuntimeError, ValueError, OSError) as e:
                failures.append('%s under %s: %s' % (j.label, j.alloc, e))
                print('%s: FAILED: %s' % (head, e), flush=True)
                continue
            results[(j.label, j.alloc)].append(res)
            print('%s: %s' % (head, show(res)), flush=True)
    return results, failures


def disagreements(results):
    """Where the allocators of one benchmark did not all report the same
    checksum.  `results` maps (what..., allocator) to run results that each
    have a 'checksum'; returns [(what, {checksum: [allocators]})], `what`
    the key's other parts joined by spaces, in the order of `results`."""
    seen = {}
    for key, runs in results.items():
        for res in runs:
            sums = seen.setdefault(' '.join(key[:-1]), {})
            sums.setdefault(str(res.get('checksum')), set()).add(key[-1])
    return [(what, {c: sorted(a) for c, a in sums.items()})
            for what, sums in seen.items() if len(sums) > 1]


def exit_status(failures):
    """Lists the failures on stderr; the runner's exit status (1 if any)."""
    if not failures:
        return 0
    print('\n%d failure(s):' % len(failures), file=sys.stderr)
    for f in failures:
        print('  ' + f, file=sys.stderr)
    return 1


# ---------------------------------------------------------------------------
# Statistics
# ---------------------------------------------------------------------------

def summary(values):
    """Median, min, max, quartiles of a non-empty list of numbers."""
    v = sorted(values)
    if len(v) >= 2:
        q1, _, q3 = statistics.quantiles(v, n=4, method='inclusive')
    else:
        q1 = q3 = v[0]
    return {'median': statistics.median(v), 'min': v[0], 'max': v[-1],
            'q1': q1, 'q3': q3, 'n': len(v)}


def throughput(runs):
    """The figures of a benchmark child's runs: their count, and summaries
    of its ops_per_s and peak_rss_kb."""
    return {'runs': len(runs),
            'ops_per_s': summary([x['ops_per_s'] for x in runs]),
            'peak_rss_kb': summary([x['peak_rss_kb'] for x in runs])}


def geomean(values):
    values = [x for x in values if x and x > 0]
    return statistics.geometric_mean(values) if values else None


def percentile(sorted_values, p):
    """The p-th percentile (0..100) of sorted values, nearest rank."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1,
                   int(round(p / 100.0 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def in_order(values):
    """The distinct values, in the order they first appear."""
    out = []
    for v in values:
        if v not in out:
            out.append(v)
    return out


# ---------------------------------------------------------------------------
# Tables: every runner describes its tables as a list of columns, and
# table() renders them as Markdown (RESULTS.md) or as text (the terminal)
# ---------------------------------------------------------------------------

# head: the heading; cell(row): the cell's text; align: 'l' or 'r';
# text: False for a column that only the Markdown table shows (a spread
# that would make a terminal's lines too long).
Column = collections.namedtuple('Column', 'head cell align text')


def column(head, cell, align='r', text=True):
    return Column(head, cell, align, text)


def table(columns, rows, style='md'):
    """`rows` through `columns`: a Markdown table (style 'md') or columns
    padded to their widest cell and two spaces apart ('text')."""
    if style == 'text':
        columns = [c for c in columns if c.text]
    cells = [[c.cell(r) for c in columns] for r in rows]
    if style == 'md':
        out = ['| ' + ' | '.join(c.head for c in columns) + ' |',
               '|' + ''.join('---:|' if c.align == 'r' else '---|' for c in columns)]
        out += ['| ' + ' | '.join(line) + ' |' for line in cells]
        return '\n'.join(out)
    if style != 'text':
        raise ValueError('table style %r (md or text)' % style)
    widths = [max([len(c.head)] + [len(line[i]) for line in cells])
              for i, c in enumerate(columns)]

    def line(values):
        return '  '.join(v.rjust(w) if c.align == 'r' else v.ljust(w)
                         for v, w, c in zip(values, widths, columns)).rstrip()
    return '\n'.join([line([c.head for c in columns])] + [line(x) for x in cells])


def ratio(x):
    """A ratio as tables show it: '1.23×', or '–' where there is none."""
    return '%.2f×' % x if x else '–'


def num(x, fmt='%.2f'):
    """A number as tables show it, '–' for None."""
    return '–' if x is None else fmt % x


def spread(s, fmt, div=1):
    """'min–max' of a summary(), each divided by `div` and formatted."""
    return (fmt + '–' + fmt) % (s['min'] / div, s['max'] / div)


def throughput_columns(label, vs_head, vs_cell):
    """The columns of a table of throughput rows (throughput() plus 'alloc',
    'vs_glibc' and the runner's own keys): row[label], the allocator,
    Mops/s and peak RSS (median, min–max), the ratio to glibc, and one
    more comparison headed `vs_head`, whose cell is vs_cell(row)."""
    def mops(row):
        return row['ops_per_s']

    def mib(row):
        return row['peak_rss_kb']
    return [column('benchmark', lambda r: r[label], 'l'),
            column('allocator', lambda r: r['alloc'], 'l'),
            column('Mops/s median', lambda r: '%.2f' % (mops(r)['median'] / 1e6)),
            column('min–max', lambda r: spread(mops(r), '%.2f', 1e6)),
            column('vs glibc', lambda r: ratio(r['vs_glibc'])),
            column(vs_head, vs_cell),
            column('peak RSS MiB median', lambda r: '%.1f' % (mib(r)['median'] / 1024)),
            column('min–max', lambda r: spread(mib(r), '%.1f', 1024), text=False)]


def method_md(command, runs):
    """The first sentence of a throughput runner's section."""
    return ('Written by `%s`: median and min–max over %d interleaved runs per '
            'allocator; hakmem through its API (the `_hak` binaries), peers through '
            'LD_PRELOAD.' % (command, runs))


# ---------------------------------------------------------------------------
# The machine
# ---------------------------------------------------------------------------

def _cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def _package_version(path):
    """'package version' of the Debian package that ships `path`, or ''."""
    if not shutil.which('dpkg-query'):
        return ''
    try:
        real = os.path.realpath(path)
        owner = subprocess.run(['dpkg-query', '-S', real], capture_output=True,
                               text=True, timeout=10).stdout.split(':')[0]
        if not owner:
            return ''
        ver = subprocess.run(['dpkg-query', '-W', '-f=${Version}', owner],
                             capture_output=True, text=True, timeout=10).stdout
        return '%s %s' % (owner, ver)
    except (OSError, subprocess.SubprocessError):
        return ''


def machine(peers):
    """What a result needs to say about where it was measured."""
    u = os.uname()
    try:
        load = '%.2f %.2f %.2f' % os.getloadavg()
    except OSError:
        load = '?'
    try:
        rev = subprocess.run(['git', '-C', ROOT, 'describe', '--always', '--dirty'],
                             capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = ''
    return {
        'commit': rev or '?',
        'uname': '%s %s %s' % (u.sysname, u.release, u.machine),
        'cpu': _cpu_model(),
        'nproc': os.cpu_count(),
        'date': datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'),
        'load_at_start': load,
        'peers': {name: '%s (%s)' % (path, _package_version(path) or '?')
                  for name, path in peers.items()},
    }


def machine_md(m):
    lines = ['- Machine: `%s`, %s, %s CPUs (nproc); load average at start %s'
             % (m['uname'], m['cpu'], m['nproc'], m['load_at_start']),
             '- Date: %s; source tree `%s`' % (m['date'], m.get('commit', '?'))]
    sched = scheduling_md()
    if sched:
        lines.append(sched)
    for name, desc in m['peers'].items():
        lines.append('- %s: `%s`' % (name, desc))
    return '\n'.join(lines)


def scheduling_md():
    """A line when the runs had a real-time priority (`chrt -f N ...`):
    then other work on a shared machine could not preempt them."""
    policy = os.sched_getscheduler(0)
    if policy not in (os.SCHED_FIFO, os.SCHED_RR):
        return ''
    try:
        with open('/proc/sys/kernel/sched_rt_runtime_us') as f:
            budget = f.read().strip()
    except OSError:
        budget = '?'
    name = 'SCHED_FIFO'
    if policy == os.SCHED_RR:
        # RR threads of one priority share a CPU in slices of this length
        # (FIFO ones do not share at all: with more runnable threads than
        # CPUs, as hakrt's workers and collector at T = 2 on 2 CPUs, the
        # collector waits until a worker blocks)
        try:
            with open('/proc/sys/kernel/sched_rr_timeslice_ms') as f:
                name = 'SCHED_RR (time slice %s ms)' % f.read().strip()
        except OSError:
            name = 'SCHED_RR'
    return ('- Scheduling: %s priority %d (`chrt`), sched_rt_runtime_us %s: other processes '
            'on the machine could not preempt the runs'
            % (name, os.sched_getparam(0).sched_priority, budget))


# ---------------------------------------------------------------------------
# bench/RESULTS.md: one section per runner, between HTML comment markers
# ---------------------------------------------------------------------------

_HEADER = """# Benchmark results

Generated by the benchmark runners; each rewrites only its own section.
How to run them and what they measure: [docs/benchmarks.md](../docs/benchmarks.md).

<!-- micro:begin -->
## Micro-benchmarks

Not run yet: `ninja -C build/release bench` (or `bench/micro/run.py`).
<!-- micro:end -->

<!-- lua:begin -->
## Lua benchmark suite

Not run yet: `ninja -C build/release bench-lua` (or `bench/lua/compare.py`).
<!-- lua:end -->
"""


def update_section(name, body, path=RESULTS_MD):
    """Replaces the text between <!-- name:begin --> and <!-- name:end -->
    in `path` with `body` (appending the section when it is missing)."""
    begin, end = '<!-- %s:begin -->' % name, '<!-- %s:end -->' % name
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        text = _HEADER
    block = '%s\n%s\n%s' % (begin, body.strip('\n'), end)
    pattern = re.compile(re.escape(begin) + '.*?' + re.escape(end), re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        text = text.rstrip('\n') + '\n\n' + block + '\n'
    tmp = path + '.tmp'
    with open(tmp, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


def write_section(name, lines, failures):
    """Rewrites the `name` section of bench/RESULTS.md with `lines`, the
    run's failures listed last (after a blank line), and says so."""
    lines = list(lines)
    if failures:
        if lines and lines[-1] != '':
            lines.append('')
        lines += ['Failures in this run:', ''] + ['- ' + f for f in failures]
    update_section(name, '\n'.join(lines))
    print('updated %s (%s section)' % (rel(RESULTS_MD), name))


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------

def out_file(name):
    """bench/out/<name>, the directory made where missing."""
    os.makedirs(OUT_DIR, exist_ok=True)
    return os.path.join(OUT_DIR, name)


def write_json(path, doc):
    with open(path, 'w') as f:
        json.dump(doc, f, indent=1)


def rel(path):
    """`path` relative to the repository root, for messages."""
    return os.path.relpath(path, ROOT)


def shown(path):
    """`path` as a reader would type it from the repository root: relative
    when it lies inside the tree, as given otherwise."""
    r = os.path.relpath(os.path.abspath(path), ROOT)
    return path if r.startswith('..') else r
