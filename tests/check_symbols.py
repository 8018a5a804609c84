#!/usr/bin/env python3
"""Every library a host links exports only the API: `nm` shows no global
symbol without the prefix hak_, hakl_, hakrt_ or luaopen_.

    tests/check_symbols.py [--builddir DIR]     (`ninja test` runs it)

A host that links libhakmem.a and defines its own `stats` or `page_init`
must not get "multiple definition"; a program that loads libhakmem.so or
the Lua module must not bind its own names to ours.  The static libraries
are one partial link each with the internals made local (configure.py, the
`partial` rule); the shared ones export what is marked visible.  Checked:
the static libraries (nm -g --defined-only) and the shared ones (nm -D
--defined-only).  libhakmem.a and libhakmem.so must exist; the glue's and
the runtime's libraries are checked when the build made them (it skips them
without Lua).  libhakmem-override.so is not a library a host links: it
exports malloc and friends by design.
"""
import argparse
import os
import re
import subprocess
import sys

ALLOWED = re.compile(r'^(hak_|hakl_|hakrt_|luaopen_)')
REQUIRED = ['libhakmem.a', 'libhakmem.so']
OPTIONAL = ['libhakmem_lua.a', 'libhakrt.a', 'lua/hakmem.so']


def globals_of(path):
    """The names of the global symbols `path` defines."""
    argv = ['nm', '--defined-only', '-g' if path.endswith('.a') else '-D', path]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True)
    if r.returncode != 0:
        raise SystemExit('not ok: %s: %s' % (' '.join(argv), r.stderr.strip()))
    names = []
    for line in r.stdout.splitlines():
        fields = line.split()
        if len(fields) == 3:  # address, type, name (archive member headers have 1)
            names.append(fields[2])
    return names


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', default=os.environ.get('HAK_TEST_BUILDDIR', '.'))
    args = ap.parse_args()
    failed = False
    for lib in REQUIRED + OPTIONAL:
        path = os.path.join(args.builddir, lib)
        if not os.path.exists(path):
            if lib in REQUIRED:
                print('not ok: %s is missing' % lib)
                failed = True
            else:
                print('skip: %s was not built' % lib)
            continue
        names = globals_of(path)
        bad = sorted(set(n for n in names if not ALLOWED.match(n)))
        if not names:
            print('not ok: %s defines no global symbol at all' % lib)
            failed = True
        elif bad:
            print('not ok: %s defines %d globals without a prefix: %s'
                  % (lib, len(bad), ' '.join(bad)))
            failed = True
        else:
            print('ok: %s: %d globals, all hak_/hakl_/hakrt_/luaopen_' % (lib, len(names)))
    sys.exit(1 if failed else 0)


if __name__ == '__main__':
    main()
