#!/usr/bin/env python3
"""The fast paths' instruction counts: a check that they have not grown.

    tests/fastpath.py [--builddir DIR] [--print]    (`ninja test` runs it, release only)

Counts, in the release build's disassembly (objdump -d), the instructions
of each function named in README.md's table of fast paths (between the
lines `<!-- fastpath table -->` and `<!-- end fastpath table -->`), and
fails when one has more than the figure stated there. That table is the
one place the figures live: change the README when a fast path changes.

What is counted: the longest path from the function's entry to one of its
own `ret` instructions, loops excluded, each instruction once, the `ret`
included; a call counts one plus the callee's count (the same measure); a
jump to another function of the table (a wrapper's tail call) counts one
plus that function's count. A path that leaves by a jump to any other
function (a tail call into a slow path) is not a fast path and is not
counted. So hak_malloc counts its small-size allocation with the size
check and the return, hak_free its local free with its two tests, and a
malloc that only jumps to hak_malloc would count one more than hak_malloc.

--print prints the counts without checking them (to update the table).
"""

import argparse
import os
import re
import shutil
import subprocess
import sys

SRCDIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(SRCDIR, 'README.md')
BEGIN, END = '<!-- fastpath table -->', '<!-- end fastpath table -->'


def read_table(path):
    """[(function, file in the build directory, most instructions)] from the README."""
    text = open(path, encoding='utf-8').read()
    if BEGIN not in text or END not in text:
        sys.exit('%s has no fast path table (%s ... %s)' % (path, BEGIN, END))
    rows = []
    for line in text[text.index(BEGIN):text.index(END)].splitlines():
        cells = [c.strip() for c in line.strip().strip('|').split('|')]
        if len(cells) == 3 and cells[2].isdigit():  # `name` (what it is) | `file` | count
            rows.append((cells[0].split()[0].strip('`'), cells[1].strip('`'), int(cells[2])))
    if not rows:
        sys.exit('%s: the fast path table has no rows' % path)
    return rows


INSN = re.compile(r'^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$')
TARGET = re.compile(r'^([0-9a-f]+)\s+<([^>]+)>')
MAX_PATHS = 100000  # paths explored per function, far above any fast path's


class Binary:
    """The disassembly of one file, by function, read once."""

    def __init__(self, objdump, path):
        out = subprocess.run([objdump, '-d', '--no-show-raw-insn', path],
                             capture_output=True, text=True, check=True).stdout
        self.functions, name = {}, None
        starts = {}  # address -> the name objdump shows there
        for line in out.splitlines():
            m = re.match(r'^([0-9a-f]+) <([^>]+)>:$', line)
            if m:
                name = m.group(2)
                self.functions[name] = []
                starts[int(m.group(1), 16)] = name
                continue
            m = INSN.match(line)
            if m and name:
                self.functions[name].append((int(m.group(1), 16), m.group(2), m.group(3)))
        # aliases (operator delete is free): objdump shows one name per address
        for flag in ('', '-D'):
            nm = subprocess.run(['nm', '--defined-only'] + ([flag] if flag else []) + [path],
                                capture_output=True, text=True).stdout
            for line in nm.splitlines():
                fields = line.split()
                if len(fields) == 3 and fields[1] in 'tTwW' and fields[2] not in self.functions:
                    shown = starts.get(int(fields[0], 16))
                    if shown:
                        self.functions[fields[2]] = self.functions[shown]

    def fast_path(self, function, table, depth=0):
        """The count of `function` (see the module's comment), or raises
        ValueError saying why it has none."""
        insns = self.functions.get(function)
        if not insns:
            raise ValueError('%s is not in the file' % function)
        if depth > 8:
            raise ValueError('calls nested deeper than 8 below %s' % function)
        index = {addr: i for i, (addr, _, _) in enumerate(insns)}

        def callee(op, args):
            m = TARGET.match(args)
            if not m:
                raise ValueError('%s: an indirect %s (%s)' % (function, op, args))
            name = m.group(2)
            if '+' in name or '@' in name:
                raise ValueError('%s: %s %s, not a function of this file' % (function, op, name))
            return name

        best, explored = None, 0
        stack = [(0, 0, frozenset())]
        while stack:
            i, count, seen = stack.pop()
            explored += 1
            if explored > MAX_PATHS or i >= len(insns) or i in seen:
                if explored > MAX_PATHS:
                    raise ValueError('%s has more than %d paths' % (function, MAX_PATHS))
                continue
            seen, (_, op, args) = seen | {i}, insns[i]
            count += 1
            if op.startswith('ret'):
                best = count if best is None else max(best, count)
                continue
            if op.startswith('call'):
                count += self.fast_path(callee(op, args), table, depth + 1)
                stack.append((i + 1, count, seen))
                continue
            if not op.startswith('j'):
                stack.append((i + 1, count, seen))
                continue
            m = TARGET.match(args)
            if m and int(m.group(1), 16) in index:
                stack.append((index[int(m.group(1), 16)], count, seen))
            elif op.startswith('jmp'):
                name = callee(op, args)
                if name in table:  # a wrapper's tail call into a fast path
                    total = count + self.fast_path(name, table, depth + 1)
                    best = total if best is None else max(best, total)
                continue  # else a tail call into a slow path: not counted
            if not op.startswith('jmp'):
                stack.append((i + 1, count, seen))
        if best is None:
            raise ValueError('%s has no path to a return of its own' % function)
        return best


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--builddir', default=os.environ.get('HAK_TEST_BUILDDIR', os.getcwd()))
    ap.add_argument('--print', action='store_true', help='print the counts, check nothing')
    args = ap.parse_args()
    objdump = shutil.which('objdump')
    if not objdump:
        print('not ok - objdump (binutils) is needed to count the fast paths')
        return 1
    failed, binaries = 0, {}
    table = read_table(README)
    names = {function for function, _, _ in table}
    for function, file, most in table:
        path = os.path.join(args.builddir, file)
        if not os.path.exists(path):
            print('not ok - %s: %s is not built' % (function, path))
            failed += 1
            continue
        if path not in binaries:
            binaries[path] = Binary(objdump, path)
        try:
            n = binaries[path].fast_path(function, names)
        except ValueError as e:
            print('not ok - %s (%s): no fast path to count: %s' % (function, file, e))
            failed += 1
            continue
        if args.print:
            print('%s\t%s\t%d' % (function, file, n))
            continue
        ok = n <= most
        failed += not ok
        print('%s - %s (%s): %d instructions on its fast path, at most %d (README.md)'
              % ('ok' if ok else 'not ok', function, file, n, most))
    if failed:
        print('%d fast path(s) longer than README.md says, or not found' % failed)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
