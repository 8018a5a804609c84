#!/usr/bin/env python3
"""tests/run_all.py -- what `ninja test` runs: every test program, one after
the other, in the build directory.

Each program's output is shown as it comes and kept; when one fails, the
lines that say why (failed assertions, sanitizer reports, [FAIL] lines) are
printed again at the very end, so that a log read from its tail (a CI
report) still says what went wrong.

Usage: run_all.py BUILDDIR SRCDIR MODE PROGRAM...   (a .py program runs
with this Python; HAK_TEST_BUILDDIR and HAK_TEST_SRCDIR tell each program
where the build outputs and the sources are)
"""
import os
import re
import subprocess
import sys

TIMEOUT_S = 600
# Lines that explain a failure, in the formats of Criterion, tests/standalone.c,
# the sanitizers and hak_fatal.
WHY = re.compile(r'\[FAIL\]|\[----\].*(failed|Assertion)|assertion failed|expectation failed|'
                 r'Sanitizer|runtime error|SUMMARY:|^  |hakmem: |Abort|signal|^not ok|Traceback|Error')
WHY_MAX = 40


def run(program, env):
    cmd = [sys.executable, program] if program.endswith('.py') else ['./' + program]
    print('== %s' % program, flush=True)
    lines = []
    try:
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as e:
        return 127, ['cannot start %s: %s' % (program, e)]
    try:
        for raw in proc.stdout:
            line = raw.decode('utf-8', 'replace')
            sys.stdout.write(line)
            sys.stdout.flush()
            lines.append(line.rstrip('\n'))
        rc = proc.wait(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        lines.append('killed after %d s' % TIMEOUT_S)
        rc = 124
    return rc, lines


def main():
    if len(sys.argv) < 4:
        sys.exit('usage: run_all.py BUILDDIR SRCDIR MODE PROGRAM...')
    builddir, srcdir, mode, programs = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
    os.chdir(builddir)
    env = dict(os.environ, HAK_TEST_BUILDDIR=os.path.abspath('.'),
               HAK_TEST_SRCDIR=os.path.abspath(srcdir))
    failed = []
    for program in programs:
        rc, lines = run(program, env)
        if rc != 0:
            print('== %s FAILED (exit status %d)' % (program, rc), flush=True)
            failed.append((program, rc, [l for l in lines if WHY.search(l)]))
    if failed:
        print('\n== why the failed programs failed (%s)' % mode)
        for program, rc, why in failed:
            print('-- %s (exit status %d)' % (program, rc))
            for line in why[:WHY_MAX]:
                print('   ' + line)
            if len(why) > WHY_MAX:
                print('   ... %d more' % (len(why) - WHY_MAX))
        print('FAILED: %s' % ' '.join(p for p, _, _ in failed))
        sys.exit(1)
    print('== all %d test programs passed (%s)' % (len(programs), mode))


if __name__ == '__main__':
    main()
