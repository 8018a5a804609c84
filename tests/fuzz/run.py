#!/usr/bin/env python3
"""tests/fuzz/run.py -- runs the libFuzzer targets for a while (`ninja fuzz-run`).

Usage: run.py --builddir DIR [--seconds N] [--targets core,lua] [--missing WHY]

Each target first runs its regression inputs (tests/fuzz/regress/<target>),
then fuzzes for N seconds (FUZZ_SECONDS=600 ninja fuzz-run: ten minutes
each) from the committed seeds (tests/fuzz/corpus/<target>, read only) and
the inputs earlier runs kept (DIR/fuzz/corpus/<target>).  A crash leaves
its input in DIR/fuzz/crashes/<target>/; the run then fails and says where
to put the input so that `ninja test` replays it from then on.  --missing:
the fuzz targets could not be built (no libFuzzer); print why, succeed.
"""
import argparse
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGETS = ['core', 'lua']
FLAGS = ['-max_len=1024', '-timeout=30', '-rss_limit_mb=4096', '-print_final_stats=1']


def files_in(d):
    if not os.path.isdir(d):
        return []
    return sorted(os.path.join(d, f) for f in os.listdir(d) if not f.startswith('.'))


def run_target(builddir, target, seconds):
    binary = os.path.join(builddir, 'fuzz', 'fuzz_' + target)
    work = os.path.join(builddir, 'fuzz', 'corpus', target)
    crashes = os.path.join(builddir, 'fuzz', 'crashes', target)
    seeds = os.path.join(ROOT, 'tests', 'fuzz', 'corpus', target)
    regress = files_in(os.path.join(ROOT, 'tests', 'fuzz', 'regress', target))
    os.makedirs(work, exist_ok=True)
    os.makedirs(crashes, exist_ok=True)
    if regress:
        print('== fuzz_%s: %d regression inputs' % (target, len(regress)), flush=True)
        if subprocess.call([binary] + regress) != 0:
            return 'a regression input fails again'
    print('== fuzz_%s: %d s from %s and %s' % (target, seconds, seeds, work), flush=True)
    before = set(os.listdir(crashes))
    proc = subprocess.run([binary, '-max_total_time=%d' % seconds,
                           '-artifact_prefix=' + crashes + '/'] + FLAGS + [work, seeds],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True)
    lines = proc.stdout.splitlines()
    stats = {m.group(1): m.group(2) for m in
             (re.match(r'stat::(\w+):\s*(\d+)', l) for l in lines) if m}
    done = [l for l in lines if re.search(r'\bDONE\b', l)]
    new = sorted(set(os.listdir(crashes)) - before)
    if proc.returncode != 0 or new:
        print('\n'.join(lines[-60:]))
        for f in new:
            print('fuzz_%s: crash input %s: fix the bug, then copy it to tests/fuzz/regress/%s/ '
                  '(ninja test replays it)' % (target, os.path.join(crashes, f), target))
        return 'exit status %d, %d new crash input(s)' % (proc.returncode, len(new))
    print('fuzz_%s: %s executions in %s s (%s/s), corpus %d inputs; %s'
          % (target, stats.get('number_of_executed_units', '?'), seconds,
             stats.get('average_exec_per_sec', '?'), len(files_in(work)),
             done[-1].split('DONE')[1].strip() if done else ''), flush=True)
    return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--builddir', required=True)
    ap.add_argument('--seconds', type=int, default=int(os.environ.get('FUZZ_SECONDS', '30')))
    ap.add_argument('--targets', default=','.join(TARGETS))
    ap.add_argument('--missing', help='the targets were not built: why')
    args = ap.parse_args()
    if args.missing:
        print('fuzz: skipped: %s' % args.missing)
        return
    failed = []
    for target in args.targets.split(','):
        why = run_target(os.path.abspath(args.builddir), target, args.seconds)
        if why:
            failed.append('fuzz_%s: %s' % (target, why))
    if failed:
        print('FAILED:\n  ' + '\n  '.join(failed))
        sys.exit(1)
    print('== fuzz: every target ran %d s without a fault' % args.seconds)


if __name__ == '__main__':
    main()
