#!/usr/bin/env python3
"""The install's test: `ninja install` into a temporary DESTDIR, then a host
of each library built only from what was installed, through pkg-config.

    tests/install/run.py          (`ninja test` runs it, in release mode only)

The install command is the one build.ninja holds (`ninja -t commands
run-install`, which runs nothing), run with DESTDIR set.  Then
tests/embed/{core,lua,rt}.c are compiled with `pkg-config --cflags --libs
--static` of hakmem, hakmem-lua and hakrt (PKG_CONFIG_PATH and the paths
in the flags pointed into DESTDIR) and run with the installed shared
library on LD_LIBRARY_PATH: every header, library and .pc file a host
needs must have been installed.  Prints `ok` or `not ok` per check; the
exit status is 1 if any failed.
"""

import os
import shlex
import subprocess
import sys
import tempfile

SRCDIR = os.environ.get('HAK_TEST_SRCDIR') or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILDDIR = os.environ.get('HAK_TEST_BUILDDIR') or os.getcwd()
# Release mode writes build.ninja at the checkout's root, other modes in
# their build directory.
NINJA_DIR = BUILDDIR if os.path.isfile(os.path.join(BUILDDIR, 'build.ninja')) else SRCDIR
TIMEOUT_S = 120
HOSTS = [('core', 'hakmem'), ('lua', 'hakmem-lua'), ('rt', 'hakrt')]

failed = 0


def check(ok, what, detail=''):
    global failed
    print('%s - %s' % ('ok' if ok else 'not ok', what))
    if not ok:
        failed += 1
        if detail:
            print('  ' + detail.strip().replace('\n', '\n  '))
    return ok


def run(argv, **kw):
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=TIMEOUT_S, **kw)


def main():
    r = run(['ninja', '-C', NINJA_DIR, '-t', 'commands', 'run-install'])
    if not check(r.returncode == 0 and r.stdout.strip(), 'build.ninja holds the install command',
                 r.stdout):
        return 1
    install_cmd = r.stdout.strip().splitlines()[-1]
    with tempfile.TemporaryDirectory(prefix='hakmem-install-') as dest:
        env = dict(os.environ, DESTDIR=dest)
        r = run(['sh', '-c', install_cmd], env=env, cwd=NINJA_DIR)
        if not check(r.returncode == 0, 'ninja install into %s' % dest, r.stdout):
            return 1
        prefix = dict(kv.split('=', 1) for kv in shlex.split(install_cmd)
                      if kv.startswith('HAKMEM_PREFIX='))['HAKMEM_PREFIX']
        pcdirs = [os.path.join(root, d) for root, dirs, _ in os.walk(dest) for d in dirs
                  if d == 'pkgconfig']
        check(len(pcdirs) == 1, 'one pkgconfig directory installed: %s' % pcdirs)
        libdir = os.path.dirname(pcdirs[0])
        for name in ['hakmem.h', 'hakl.h', 'hakrt.h']:
            check(os.path.isfile(os.path.join(dest + prefix, 'include', name)),
                  'include/%s installed' % name)
        penv = dict(os.environ, PKG_CONFIG_PATH=pcdirs[0])
        for host, pc in HOSTS:
            r = run(['pkg-config', '--cflags', '--libs', '--static', pc], env=penv)
            if not check(r.returncode == 0, 'pkg-config --static %s' % pc, r.stdout):
                continue
            # The .pc files name the final prefix: point it into DESTDIR.
            flags = [f.replace(prefix, dest + prefix, 1) if f[:2] in ('-I', '-L') else f
                     for f in shlex.split(r.stdout)]
            exe = os.path.join(dest, 'host_' + host)
            src = os.path.join(SRCDIR, 'tests', 'embed')
            r = run([os.environ.get('CC', 'gcc'), '-I' + src, os.path.join(src, host + '.c'),
                     os.path.join(src, 'names.c')] + flags + ['-o', exe])
            if not check(r.returncode == 0, 'tests/embed/%s.c builds from the installed %s'
                         % (host, pc), r.stdout):
                continue
            r = run([exe], env=dict(os.environ, LD_LIBRARY_PATH=libdir))
            check(r.returncode == 0, 'the installed %s host runs: %s'
                  % (host, r.stdout.strip().splitlines()[-1:] or ''), r.stdout)
    print('all install checks passed' if failed == 0 else '%d install checks failed' % failed)
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main())
