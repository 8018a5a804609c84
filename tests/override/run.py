#!/usr/bin/env python3
"""The malloc override's test: unmodified programs run on libhakmem-override.so.

    tests/override/run.py [--builddir DIR]     (`ninja test` runs it)

With LD_PRELOAD=<builddir>/libhakmem-override.so:
  - Debian's lua5.4 runs tests/override/script.lua: its output must be the
    one it prints without the preload (and the values this script computes
    itself), and HAKMEM_SHOW_STATS=1 must show that Lua's memory lived in
    hakmem: a committed peak at least Lua's own peak count;
  - tests/override/threaded (a threaded C program) and tests/override/forker
    (fork while other threads allocate) must exit 0 and report that every
    block they checked belongs to hakmem;
  - tests/override/interface (malloc_usable_size, malloc_trim, mallinfo2,
    malloc_stats, __posix_memalign, reallocf, memalign's rounding, 64 TiB
    requests) and tests/override/newdelete (C++'s new and delete: the
    override's own, aligned, nothrow, the new-handler, bad_alloc; built
    when a C++ compiler is found) must exit 0;
  - python3 and sort, two programs nobody wrote for this, must print what
    they print without it;
  - tests/override/frees (512 MiB allocated and freed, a few blocks live)
    must keep its peak RSS bounded, also with libhakmem.so preloaded before
    the override, which exports a second copy of the hak_* functions as
    hklua does: the override's own calls must reach its own copy, or its
    free drops every block; and hklua --alloc=libc on the override must
    hold about what it holds on glibc.

A sanitizer's runtime owns malloc in every process it runs in: ASan
refuses to start when a preload comes before it, and an override library
built with TSan is called before TSan's runtime is up and crashes even
/bin/true.  So the override is tested in the release and debug builds; in
the asan and tsan builds this test says so and passes (their thread tests
cover the core).
Each check prints `ok` or `not ok`; the exit status is 1 if any failed.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

SRCDIR = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 240

failures = []


def check(ok, what, detail=''):
    print('%s - %s' % ('ok' if ok else 'not ok', what), flush=True)
    if not ok:
        failures.append(what)
        if detail:
            print('  ' + detail.strip().replace('\n', '\n  '), flush=True)
    return ok


def run(argv, preload=None, env=None, stdin=None):
    """(exit status, stdout, stderr) of argv, with the preload if given."""
    e = dict(os.environ)
    e.pop('LD_PRELOAD', None)
    e.pop('HAKMEM_SHOW_STATS', None)
    if preload:
        e['LD_PRELOAD'] = preload
    e.update(env or {})
    try:
        p = subprocess.run(argv, env=e, input=stdin, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None, '', 'timed out after %d s' % TIMEOUT_S
    return p.returncode, p.stdout, p.stderr


def sanitizer(lib):
    """'asan', 'tsan' or None: which sanitizer runtime the library needs."""
    try:
        out = subprocess.run(['ldd', lib], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        out = ''
    if 'libasan' in out:
        return 'asan'
    if 'libtsan' in out:
        return 'tsan'
    return None


def parse_stats(text):
    """The figures of hak_stats_print in `text`: {name: int}."""
    stats = {}
    section = text[text.find('hakmem stats:'):] if 'hakmem stats:' in text else ''
    for line in section.splitlines()[1:]:
        m = re.match(r'\s+(.+?)\s{2,}\S.*\((\d+)\)\s*$', line)
        if m:
            stats[m.group(1)] = int(m.group(2))
            continue
        m = re.match(r'\s+(.+?)\s{2,}(\d+)\s*$', line)
        if m:
            stats[m.group(1)] = int(m.group(2))
    return stats


def expected_lua_values():
    """What script.lua must print, computed here, not by any Lua."""
    trees = 8 * (2 ** 13 - 1)                       # eight trees of depth 12
    long_lived = 2 ** 15 - 1                        # one of depth 14
    evens = sum(2 * i for i in range(2, 200001, 2))  # t[i] = 2i, odd i removed
    hsum = sum(range(1, 100001))
    total = 20000 * 3                               # each counter called 3 times
    csum = sum(i + 15 for i in range(1, 2001))      # a + 1 + 2 + 3 + 4 + 5
    bsum = sum(i + len(str(i)) for i in range(1, 300001, 1000))
    return {'trees': ['%d' % trees, '%d' % long_lived],
            'tables': ['%d' % evens, '%d' % hsum],
            'closures': ['%d' % total, '%d' % csum],
            'big': ['%d' % bsum]}


def test_lua(lib):
    lua = shutil.which('lua5.4')
    if not check(lua is not None, 'lua5.4 is installed (Debian package lua5.4)'):
        return
    script = os.path.join(SRCDIR, 'tests', 'override', 'script.lua')
    rc0, out0, err0 = run([lua, script])
    if not check(rc0 == 0, 'lua5.4 runs script.lua without the preload', err0):
        return
    rc, out, err = run([lua, script], preload=lib, env={'HAKMEM_SHOW_STATS': '1'})
    if not check(rc == 0, 'lua5.4 runs script.lua on hakmem (exit status %s)' % rc, err[-2000:]):
        return
    check(out == out0, 'lua5.4 prints the same on hakmem as on glibc',
          'glibc:\n%s\nhakmem:\n%s' % (out0, out))
    lines = {ln.split('\t')[0]: ln.split('\t')[1:] for ln in out.splitlines() if ln}
    for key, want in expected_lua_values().items():
        check(lines.get(key) == want, 'script.lua computed the right %s values' % key,
              'got %s, want %s' % (lines.get(key), want))
    stats = parse_stats(err)
    if not check(bool(stats), 'HAKMEM_SHOW_STATS=1 prints hakmem stats at exit', err[-2000:]):
        return
    peak_kb = int(lines.get('peak_kb', ['0'])[0])
    committed_peak = stats.get('committed peak', 0)
    check(peak_kb > 0 and committed_peak >= peak_kb * 1024,
          "Lua's memory lived in hakmem: committed peak %d KiB >= Lua's peak %d KiB"
          % (committed_peak // 1024, peak_kb))
    check(stats.get('mmap calls', 0) > 0 and stats.get('segments', -1) >= 0,
          'hakmem mapped its own memory (%d mmap calls)' % stats.get('mmap calls', 0))


def test_program(lib, builddir, name, args, want):
    exe = os.path.join(builddir, 'tests', 'override', name)
    if not check(os.access(exe, os.X_OK), '%s is built' % exe):
        return
    rc, out, err = run([exe] + args, preload=lib, env={'HAKMEM_SHOW_STATS': '1'})
    if not check(rc == 0, '%s %s runs on hakmem (exit status %s)' % (name, ' '.join(args), rc),
                 (out + err)[-3000:]):
        return
    check(re.search(want, out) is not None, '%s reports: %s' % (name, out.strip()),
          'expected a line matching %r' % want)
    stats = parse_stats(err)
    check(stats.get('threads') is not None,
          '%s: hakmem stats at exit (%s thread heaps left)' % (name, stats.get('threads')),
          err[-2000:])


def rss_of(argv, preload=None):
    """(exit status, peak RSS in KiB, output) of argv, with the preload if given."""
    e = dict(os.environ)
    e.pop('LD_PRELOAD', None)
    e.pop('HAKMEM_SHOW_STATS', None)
    if preload:
        e['LD_PRELOAD'] = preload
    p = subprocess.Popen(argv, env=e, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read().decode('utf-8', 'replace')
    p.stdout.close()
    _, status, usage = os.wait4(p.pid, 0)  # the child's own rusage, not all children's
    p.returncode = os.waitstatus_to_exitcode(status)
    return p.returncode, usage.ru_maxrss, out


def test_exported_core(lib, builddir):
    """The override binds to its own core, whatever else exports hak_*."""
    exe = os.path.join(builddir, 'tests', 'override', 'frees')
    if not check(os.access(exe, os.X_OK), '%s is built' % exe):
        return
    rc, out, err = run([exe], preload=lib)
    check(rc == 0, 'frees: freed memory is reused on hakmem (%s)' % out.strip(), err)
    core = os.path.join(builddir, 'libhakmem.so')
    rc, out, err = run([exe], preload='%s %s' % (core, lib))
    check(rc == 0, 'frees: with another hak_* exported first (libhakmem.so preloaded before '
          'the override), frees still give memory back (%s)' % out.strip(), err)
    hklua = os.path.join(builddir, 'hklua')
    if not os.access(hklua, os.X_OK):
        print('ok - skipped: hklua is not built')
        return
    script = os.path.join(SRCDIR, 'tests', 'override', 'script.lua')
    rss = {}
    for name, preload in (('glibc', None), ('hakmem', lib)):
        rc, rss[name], out = rss_of([hklua, '--alloc=libc', script], preload)
        if not check(rc == 0, 'hklua --alloc=libc script.lua runs on %s' % name, out[-2000:]):
            return
    # on glibc 77 MiB, on the fixed override 67, on the one that dropped frees 110
    check(rss['hakmem'] <= rss['glibc'] * 5 // 4 + 4096,
          'hklua (exports hak_*) --alloc=libc on the override holds %d KiB, on glibc %d KiB'
          % (rss['hakmem'], rss['glibc']))


def test_stock_programs(lib):
    data = ''.join('%d %s\n' % ((i * 7919) % 10007, 'y' * (i % 13)) for i in range(20000))
    rc0, out0, _ = run(['sort', '-n'], stdin=data)
    rc, out, err = run(['sort', '-n'], preload=lib, stdin=data)
    check(rc0 == 0 and rc == 0 and out == out0, 'sort -n prints the same on hakmem', err[-2000:])
    code = ('import json, threading\n'
            'r = []\n'
            'def work(k):\n'
            '    r.append(len(json.dumps({str(i): [i] * (i % 50) for i in range(k)})))\n'
            'ts = [threading.Thread(target=work, args=(3000 + k,)) for k in range(4)]\n'
            '[t.start() for t in ts]; [t.join() for t in ts]\n'
            'print(sorted(r))\n')
    rc0, out0, _ = run([sys.executable, '-c', code])
    rc, out, err = run([sys.executable, '-c', code], preload=lib)
    check(rc0 == 0 and rc == 0 and out == out0,
          'python3 (threads, json) prints the same on hakmem', err[-2000:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', default=os.environ.get('HAK_TEST_BUILDDIR', os.getcwd()))
    args = ap.parse_args()
    builddir = os.path.abspath(args.builddir)
    lib = os.path.join(builddir, 'libhakmem-override.so')
    if not check(os.path.exists(lib), '%s is built' % lib):
        return 1
    san = sanitizer(lib)
    if san:
        print('ok - skipped: an override library built with %s cannot be preloaded '
              '(the release and debug builds run this test)' % san)
        return 0
    test_lua(lib)
    test_program(lib, builddir, 'threaded', [], r'threaded: ok hakmem=yes')
    test_program(lib, builddir, 'forker', [], r'forker: ok forks=\d+ hakmem=yes')
    test_program(lib, builddir, 'interface', [], r'interface: ok hakmem=yes')
    if os.path.exists(os.path.join(builddir, 'tests', 'override', 'newdelete')):
        test_program(lib, builddir, 'newdelete', [], r'newdelete: ok hakmem=yes')
    else:
        print('ok - skipped: tests/override/newdelete was not built (no C++ compiler)')
    test_stock_programs(lib)
    test_exported_core(lib, builddir)
    if failures:
        print('%d check(s) failed' % len(failures))
        return 1
    print('all override checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
