"""What the benchmark runners share (Python 3 standard library only).

The peers and how to load them, statistics over repeated runs, the machine
a run happened on, and the marked sections of bench/RESULTS.md that each
runner rewrites without touching the others'.
"""

import datetime
import os
import platform
import re
import shutil
import statistics
import subprocess

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
RESULTS_MD = os.path.join(BENCH_DIR, 'RESULTS.md')
LIBDIRS = ['/usr/lib/x86_64-linux-gnu', '/usr/lib', '/usr/local/lib']

# The peers, in the order every table shows them: (name, candidate files).
# glibc is the baseline: no preload at all.  hakmem is not here: it runs
# through its own binary or option, never through LD_PRELOAD.
PEERS = [
    ('mimalloc', ['libmimalloc.so.2']),
    ('jemalloc', ['libjemalloc.so.2']),
    ('tcmalloc', ['libtcmalloc_minimal.so.4', 'libtcmalloc.so.4']),
]
ALLOCATORS = ['glibc', 'mimalloc', 'jemalloc', 'tcmalloc', 'hakmem']


def find_peer(files):
    """The first of `files` found in the usual library directories, or None."""
    for d in LIBDIRS:
        for f in files:
            path = os.path.join(d, f)
            if os.path.exists(path):
                return path
    return None


def peer_libs(warn):
    """{name: path} of the peers present; `warn(msg)` for each one missing."""
    found = {}
    for name, files in PEERS:
        path = find_peer(files)
        if path:
            found[name] = path
        else:
            warn('%s not found (%s): skipped' % (name, ' or '.join(files)))
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
    for name, desc in m['peers'].items():
        lines.append('- %s: `%s`' % (name, desc))
    return '\n'.join(lines)


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


def rel(path):
    """`path` relative to the repository root, for messages."""
    return os.path.relpath(path, ROOT)


def shown(path):
    """`path` as a reader would type it from the repository root: relative
    when it lies inside the tree, as given otherwise."""
    r = os.path.relpath(os.path.abspath(path), ROOT)
    return path if r.startswith('..') else r
