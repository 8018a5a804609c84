#!/usr/bin/env python3
"""tests/soak/run.py -- the soak (`ninja soak`; not part of `ninja test`).

Usage: run.py --builddir DIR [--minutes N] [--threads T]

Runs DIR/tests/soak/soak for N minutes in all (default 3): the thread
stress for half of them, then the Lua failure-injection workload for the
other half.  Every second it samples the process's RSS (/proc/PID/status)
beside the live bytes the program reports, writes the samples to
DIR/soak/<workload>.csv and judges: after a warm-up (the first fifth of the
run, at least 10 s), RSS must not grow by more than the live data grew plus
a tolerance (4 MiB, or 5% of the RSS at the end of the warm-up).  It prints
the figures and fails when a workload grows or reports errors.
"""
import argparse
import os
import subprocess
import sys
import threading
import time

MiB = 1024 * 1024


def rss_of(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def median(xs):
    xs = sorted(xs)
    return xs[len(xs) // 2] if xs else 0


def slope_per_min(samples):
    """Least-squares slope of RSS over time, bytes per minute."""
    if len(samples) < 2:
        return 0.0
    ts = [s[0] for s in samples]
    rs = [s[1] for s in samples]
    mt, mr = sum(ts) / len(ts), sum(rs) / len(rs)
    den = sum((t - mt) ** 2 for t in ts)
    return 60 * sum((t - mt) * (r - mr) for t, r in zip(ts, rs)) / den if den else 0.0


def soak(builddir, workload, seconds, extra):
    binary = os.path.join(builddir, 'tests', 'soak', 'soak')
    proc = subprocess.Popen([binary, workload, str(seconds)] + extra, stdout=subprocess.PIPE,
                            universal_newlines=True)
    state = {'live': 0, 'ops': 0, 'committed': 0, 'abandoned': 0, 'done': None}

    def reader():
        for line in proc.stdout:
            parts = line.split()
            if parts[:1] == ['live']:
                state['live'], state['ops'] = int(parts[1]), int(parts[2])
                state['committed'], state['abandoned'] = int(parts[3]), int(parts[4])
            elif parts[:1] == ['done']:
                state['done'] = (int(parts[1]), int(parts[2]))

    t = threading.Thread(target=reader)
    t.start()
    samples = []  # (seconds, rss, live, committed, abandoned)
    start = time.monotonic()
    while proc.poll() is None:
        time.sleep(1)
        rss = rss_of(proc.pid)
        if rss is not None and proc.poll() is None:
            samples.append((time.monotonic() - start, rss, state['live'], state['committed'],
                            state['abandoned']))
    t.join()
    os.makedirs(os.path.join(builddir, 'soak'), exist_ok=True)
    with open(os.path.join(builddir, 'soak', workload + '.csv'), 'w') as f:
        f.write('seconds,rss,live,committed,abandoned\n')
        for s in samples:
            f.write('%.1f,%d,%d,%d,%d\n' % s)

    warm = max(10, seconds // 5)
    after = [s for s in samples if s[0] >= warm]
    first = [s for s in after if s[0] < warm + 10]
    last = after[-10:]
    problems = []
    if proc.returncode != 0 or not state['done'] or state['done'][1] != 0:
        problems.append('the program failed (exit status %d, %s errors)'
                        % (proc.returncode, state['done'][1] if state['done'] else '?'))
    if len(after) < 10:
        problems.append('only %d samples after the warm-up' % len(after))
    rss0, rss1 = median([s[1] for s in first]), median([s[1] for s in last])
    live0, live1 = median([s[2] for s in first]), median([s[2] for s in last])
    tolerance = max(4 * MiB, rss0 // 20)
    growth = rss1 - rss0
    allowed = max(live1 - live0, 0) + tolerance
    if after and growth > allowed:
        problems.append('RSS grew by %.1f MiB, more than the live data (%+.1f MiB) plus %.1f MiB'
                        % (growth / MiB, (live1 - live0) / MiB, tolerance / MiB))
    print('soak %s: %d s, %s operations, %d samples (warm-up %d s)'
          % (workload, seconds, state['done'][0] if state['done'] else '?', len(samples), warm))
    print('  RSS after warm-up %.1f MiB, at the end %.1f MiB (growth %+.1f MiB, allowed %.1f), '
          'max %.1f MiB; slope %+.2f MiB/min'
          % (rss0 / MiB, rss1 / MiB, growth / MiB, allowed / MiB,
             max([s[1] for s in samples] or [0]) / MiB, slope_per_min([s[:2] for s in after]) / MiB))
    print('  live data after warm-up %.1f MiB, at the end %.1f MiB; RSS / live at the end %.2f'
          % (live0 / MiB, live1 / MiB, rss1 / live1 if live1 else 0))
    print('  hakmem committed after warm-up %.1f MiB, at the end %.1f MiB; abandoned segments '
          'at the end %d' % (median([s[3] for s in first]) / MiB, median([s[3] for s in last]) / MiB,
                             last[-1][4] if last else 0))
    for p in problems:
        print('  FAIL: ' + p)
    sys.stdout.flush()
    return problems


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--builddir', required=True)
    ap.add_argument('--minutes', type=float, default=float(os.environ.get('SOAK_MINUTES', '3')))
    ap.add_argument('--threads', type=int, default=4)
    args = ap.parse_args()
    half = max(20, int(args.minutes * 60 / 2))
    failed = soak(args.builddir, 'threads', half, [str(args.threads)])
    failed += soak(args.builddir, 'lua', half, [])
    if failed:
        print('soak: FAILED')
        sys.exit(1)
    print('soak: RSS stayed within the live data in both workloads')


if __name__ == '__main__':
    main()
