#!/usr/bin/env python3
"""The rockspec's test: `luarocks make` in the source checkout builds and
installs the hakmem module, and Debian's lua5.4 requires it and uses it.

    tests/luarocks/run.py          (`ninja test` runs it, in release mode only)

Into a temporary tree (`luarocks --lua-version=5.4 --tree=DIR make`, no
network), then lua5.4 with LUA_CPATH naming only that tree: the module must
load from there, switch the state to hakmem (stats() counts the blocks a
loop allocates after the require) and honour limit().  Its objects are
written under build/luarocks/ of the checkout (ignored by git).
Prints `ok` or `not ok` per check; the exit status is 1 if any failed.
"""

import glob
import os
import shutil
import subprocess
import sys
import tempfile

SRCDIR = os.environ.get('HAK_TEST_SRCDIR') or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TIMEOUT_S = 300

# After the switch, 20000 tables of one element each ({i}: a 56-byte Table
# and a 16-byte array part at least) must show in hakmem's account; a
# limit below what the state holds must refuse the next allocation.
SCRIPT = r'''
local path = package.searchpath("hakmem", package.cpath)
local h = require "hakmem"
local before = h.stats().in_use
local t = {}
for i = 1, 20000 do t[i] = {i} end
local grew = h.stats().in_use - before
h.collect()
h.limit(h.stats().in_use + 4096)
local ok, err = pcall(function() local u = {} for i = 1, 1e6 do u[i] = {i} end end)
h.limit(0)
print(path)
print(grew >= 20000 * 72, grew)
print(ok, err)
'''


def check(ok, what, failures):
    print('%s - %s' % ('ok' if ok else 'not ok', what), flush=True)
    if not ok:
        failures.append(what)


def main():
    failures = []
    luarocks = shutil.which('luarocks')
    lua = shutil.which('lua5.4')
    if not luarocks or not lua:
        print('not ok - luarocks and lua5.4 are needed (Debian packages luarocks, lua5.4; '
              '`python3 configure.py --install-deps`)')
        return 1
    rockspecs = glob.glob(os.path.join(SRCDIR, 'hakmem-*.rockspec'))
    check(len(rockspecs) == 1, 'one rockspec in the checkout: %s' % rockspecs, failures)
    if len(rockspecs) != 1:
        return 1
    with tempfile.TemporaryDirectory(prefix='hakmem-rocks-') as tree:
        p = subprocess.run([luarocks, '--lua-version=5.4', '--tree=' + tree, 'make',
                            rockspecs[0]], cwd=SRCDIR, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
        check(p.returncode == 0, 'luarocks make into %s (exit status %d)%s' % (
            tree, p.returncode, '' if p.returncode == 0 else ':\n' + p.stdout + p.stderr),
            failures)
        if p.returncode != 0:
            return 1
        module = os.path.join(tree, 'lib', 'lua', '5.4', 'hakmem.so')
        check(os.path.isfile(module), 'the module is installed as %s' % module, failures)
        env = dict(os.environ, LUA_CPATH=os.path.join(tree, 'lib', 'lua', '5.4', '?.so'))
        env.pop('LD_PRELOAD', None)
        r = subprocess.run([lua, '-e', SCRIPT], env=env, capture_output=True, text=True,
                           timeout=TIMEOUT_S)
        lines = r.stdout.splitlines()
        check(r.returncode == 0 and len(lines) == 3,
              'lua5.4 requires it and runs (exit status %d): %s%s' % (
                  r.returncode, r.stdout, r.stderr), failures)
        if len(lines) == 3:
            check(lines[0] == module, 'lua5.4 loaded %s' % lines[0], failures)
            check(lines[1].startswith('true'),
                  '20000 tables after the require are in hakmem\'s account: %s bytes'
                  % lines[1].split('\t')[-1], failures)
            check(lines[2] == 'false\tnot enough memory',
                  'limit() refuses what goes past it: %s' % lines[2], failures)
    if failures:
        print('%d check(s) failed' % len(failures))
        return 1
    print('all luarocks checks passed')
    return 0


if __name__ == '__main__':
    sys.exit(main())
