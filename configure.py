#!/usr/bin/env python3
#
# configure.py -- writes build.ninja for hakmem.
#
#   python3 configure.py                  release: ./build.ninja, outputs in build/release/
#   python3 configure.py --mode=asan      build/asan/build.ninja  (then: ninja -C build/asan test)
#   python3 configure.py --mode=secure    build/secure: release with HAK_SECURE=1 (hakmem/secure.c)
#   python3 configure.py --install-deps   apt-get installs what is missing, then configures
#
# Standard library only.  Sources are listed by name below (never globbed):
# add a new file to its list; a listed file that does not exist is an error.
# The build reruns this script by itself when configure.py, the peer list
# (bench/peers.py) or the rockspec changes.  `ninja install` runs
# packaging/install.sh.

import argparse
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.abspath(__file__))
sys.dont_write_bytecode = True  # no __pycache__ in bench/ from configuring
sys.path.insert(0, os.path.join(ROOT, 'bench'))
import peers  # noqa: E402  (bench/peers.py: the allocators compared with)

VERSION = '0.1.0'

# ---------------------------------------------------------------------------
# Sources
# ---------------------------------------------------------------------------

CORE_SOURCES = [
    'hakmem/os.c',
    'hakmem/segment.c',
    'hakmem/page.c',
    'hakmem/secure.c',
    'hakmem/remote.c',
    'hakmem/keep.c',
    'hakmem/heap_figures.c',
    'hakmem/check.c',
    'hakmem/heap.c',
    'hakmem/alloc.c',
    'hakmem/huge.c',
    'hakmem/classes.c',
    'hakmem/thread.c',
    'hakmem/stats.c',
    'hakmem/options.c',
    # last: the 16 MiB of maps after the core's other variables in .bss, and
    # before them stats.c's table, which only a report touches
    'hakmem/segment_map.c',
]
CORE_HEADER = 'hakmem/hakmem.h'

# libhakmem-override.so: these plus the core.
OVERRIDE_SOURCES = ['hakmem/override.c', 'hakmem/override_new.c']

# libhakmem_lua.a; the Lua module lua/hakmem.so is the glue plus the core.
GLUE_SOURCES = [
    'lua_glue/hakl_alloc.c',
    'lua_glue/hakl_state.c',
    'lua_glue/hakl_module.c',
    'lua_glue/hakl_region.c',
    'lua_glue/hakl_core.c',
]

# libhakrt.a, the multi-thread runtime (runtime/hakrt.h): these plus the
# glue and the core.
RUNTIME_SOURCES = [
    'runtime/hakrt/runtime.c',
    'runtime/hakrt/sched.c',
    'runtime/hakrt/task.c',
    'runtime/hakrt/collector.c',
    'runtime/hakrt/figures.c',
    'runtime/hakrt/preempt.c',
    'runtime/hakrt/channel.c',
    'runtime/hakrt/message.c',
    'runtime/hakrt/buffer.c',
    'runtime/hakrt/output.c',
    'runtime/hakrt/lib.c',
]

# hklua: these plus the runtime, the glue, the core and the static liblua5.4.a.
HKLUA_SOURCES = [
    'runtime/hklua.c',
    'runtime/hklua_lua.c',
    'runtime/hklua_threads.c',
    'runtime/gcpause.c',
    'lua_glue/hakl_floor.c',  # the Lua suite's floors; not in the glue library
]

# Tests: (name, kind[, extra sources[, link flags]]) -> tests/test_<name>
# built from tests/test_<name>.c, the kind's helpers and the extra sources,
# linked with Criterion.  kind 'core' links libhakmem.a; 'lua' also the
# glue and the static liblua5.4.a.
TESTS = [
    ('alloc', 'core'),
    ('classes', 'core'),
    ('realloc', 'core'),
    ('calloc', 'core'),
    ('random', 'core'),
    ('heap', 'core'),
    ('collect', 'core'),
    ('debug_abort', 'core'),
    ('corrupt', 'core'),
    ('threads', 'core'),
    ('prodcons', 'core'),
    ('remote_batch', 'core'),
    ('heap_figures', 'core'),
    ('churn', 'core'),
    ('reuse', 'core'),
    ('keep', 'core'),
    ('check', 'core'),
    ('fork', 'core'),
    ('glue', 'lua'),
    # hak_aligned_alloc wrapped: the region's chunks fail on demand
    ('region', 'lua', [], ['-Wl,--wrap=hak_aligned_alloc']),
    ('failinject', 'lua'),
    ('limit', 'lua'),
    ('fastclose', 'lua'),
    ('hklua', 'lua'),
    ('module', 'lua'),
    ('runtime', 'rt'),
    ('hklua_threads', 'lua'),
    ('floor', 'lua', ['lua_glue/hakl_floor.c']),
    ('corrupt_lua', 'lua'),
    ('oom', 'lua'),
    ('footprint', 'lua'),
]
TEST_HELPERS = {
    'core': ['tests/helpers.c'],
    'lua': ['tests/helpers.c'],
    'rt': [],
}
# Plain programs (no Criterion): (name, kind, sources, run) -> tests/<name>.
# kind 'plain' links nothing of ours (e.g. a program run with
# LD_PRELOAD=libhakmem-override.so), 'core' and 'lua' as for TESTS.
# run = True: `ninja test` runs it as a test (exit status 0 = pass); these
# are the only tests that run in tsan mode, where Criterion cannot start.
# run = a tuple of modes: it runs in those modes only.
TEST_PROGRAMS = [
    # The thread tests without Criterion (tests/standalone.h), for TSan.
    ('plain/threads', 'core', ['tests/plain/threads.c', 'tests/helpers.c',
                               'tests/standalone.c'], ('tsan',)),
    ('plain/prodcons', 'core', ['tests/plain/prodcons.c', 'tests/helpers.c',
                                'tests/standalone.c'], ('tsan',)),
    ('plain/churn', 'core', ['tests/plain/churn.c', 'tests/helpers.c',
                             'tests/standalone.c'], ('tsan',)),
    ('plain/reuse', 'core', ['tests/plain/reuse.c', 'tests/helpers.c',
                             'tests/standalone.c'], ('tsan',)),
    ('plain/keep', 'core', ['tests/plain/keep.c', 'tests/helpers.c',
                            'tests/standalone.c'], ('tsan',)),
    ('plain/remote_batch', 'core', ['tests/plain/remote_batch.c', 'tests/helpers.c',
                                    'tests/standalone.c'], ('tsan',)),
    ('plain/runtime', 'rt', ['tests/plain/runtime.c', 'tests/standalone.c'], ('tsan',)),
    # Hosts that define names the static libraries once exported (stats,
    # page_init, ...) and link them: they build only if nothing clashes.
    ('embed/core', 'core', ['tests/embed/core.c', 'tests/embed/names.c'], True),
    ('embed/lua', 'lua', ['tests/embed/lua.c', 'tests/embed/names.c'], True),
    ('embed/rt', 'rt', ['tests/embed/rt.c', 'tests/embed/names.c'], True),
    # Run under LD_PRELOAD=libhakmem-override.so by tests/override/run.py.
    ('override/threaded', 'plain', ['tests/override/threaded.c'], False),
    ('override/forker', 'plain', ['tests/override/forker.c'], False),
    ('override/frees', 'plain', ['tests/override/frees.c'], False),
    ('override/interface', 'plain', ['tests/override/interface.c'], False),
    # C++ (built when a C++ compiler is found): new and delete on the override
    ('override/newdelete', 'plain', ['tests/override/newdelete.cc'], False),
    # The fuzz targets' inputs (tests/fuzz/regress/<t>, tests/fuzz/corpus/<t>)
    # replayed without libFuzzer, in every mode (FUZZ_TARGETS below).
    ('fuzz/replay_core', 'core', ['tests/fuzz/replay.c', 'tests/fuzz/fuzz_core.c'], True),
    ('fuzz/replay_lua', 'lua', ['tests/fuzz/replay.c', 'tests/fuzz/fuzz_lua.c'], True),
    # The soak's workloads, run by tests/soak/run.py (`ninja soak`).
    ('soak/soak', 'lua', ['tests/soak/soak.c', 'tests/helpers.c'], False),
    # dlopen, dlclose and thread exits of libhakmem.so, run by itself.
    ('override/dlclose', 'plain', ['tests/override/dlclose.c'], True),
]
# Test scripts `ninja test` runs after the programs, in every mode (exit
# status 0 = pass), from the build directory like the others.
TEST_SCRIPTS = [
    'tests/override/run.py',
    'tests/check_symbols.py',
]
# Test scripts run in release mode only: tests/fastpath.py counts the
# instructions of the release build's fast paths against README.md's table;
# tests/luarocks/run.py builds the rockspec (its own flags: once is enough);
# tests/install/run.py installs into a DESTDIR and builds hosts from it.
RELEASE_TEST_SCRIPTS = ['tests/fastpath.py', 'tests/luarocks/run.py', 'tests/install/run.py']

# libFuzzer targets: (name, kind, source) -> fuzz/fuzz_<name>, built with
# clang (FUZZ_CC, else clang or clang-14) under ASan and UBSan with the
# mode's other flags, when that compiler can; otherwise configure.py warns
# and skips them.  Not in `all`: `ninja fuzz` builds them, `ninja fuzz-run`
# runs each for FUZZ_SECONDS seconds (default 30) through tests/fuzz/run.py.
# kind as for TESTS.  Their inputs also replay in `ninja test` (fuzz/replay_*
# in TEST_PROGRAMS).
FUZZ_TARGETS = [
    ('core', 'core', 'tests/fuzz/fuzz_core.c'),
    ('lua', 'lua', 'tests/fuzz/fuzz_lua.c'),
]
FUZZ_SCRIPT = 'tests/fuzz/run.py'
# `ninja soak` runs this for $SOAK_MINUTES minutes (3 unless set): the
# thread stress and the Lua failure injection with RSS sampled every second.
SOAK_SCRIPT = 'tests/soak/run.py'
FUZZ_SANITIZE = '-fsanitize=fuzzer,address,undefined'

# Micro benchmarks: (name, sources) -> bench/<name> (calls malloc/free) and
# bench/<name>_hak (same source, -DBENCH_HAKMEM, linked with libhakmem.a).
BENCHES = [
    ('random_mixed', ['bench/micro/random_mixed.c']),
    ('lua_trace', ['bench/micro/lua_trace.c']),
    ('larson', ['bench/threads/larson.c']),
    ('xmalloc', ['bench/threads/xmalloc.c']),
    ('scaling', ['bench/threads/scaling.c']),
    ('tight', ['bench/threads/tight.c']),
    ('share', ['bench/threads/share.c']),
    ('mstress', ['bench/threads/mstress.c']),
    ('bignum', ['bench/threads/bignum.c']),
    ('churn', ['bench/threads/churn.c']),
    ('c_channel', ['bench/runtime/c_channel.c']),
]
# Benchmarks of the Lua glue: (name, sources) -> bench/<name>, linked with
# the glue, the core and the static Lua library (like hklua, no wrapping).
LUA_BENCHES = [
    ('close_bench', ['bench/close_bench.c']),
    ('state_rss', ['bench/state_rss.c']),
]
# `ninja <target>` runs `python3 <script> --builddir <builddir> <args>`.
BENCH_SCRIPTS = [
    ('bench', 'bench/micro/run.py', []),
    ('bench-lua', 'bench/lua/compare.py', []),
    ('bench-lua-quick', 'bench/lua/compare.py', ['--quick']),
    ('bench-lua-profile', 'bench/lua/profile.py', []),
    ('bench-lua-memory', 'bench/lua/memory.py', ['--gc=both']),
    ('bench-threads', 'bench/threads/run.py', []),
    ('bench-threads-quick', 'bench/threads/run.py', ['--quick']),
    ('bench-runtime', 'bench/runtime/run.py', []),
    ('bench-runtime', 'bench/runtime/collector.py', []),
    ('bench-runtime-quick', 'bench/runtime/run.py', ['--quick']),
    ('bench-runtime-quick', 'bench/runtime/collector.py', ['--quick']),
    ('bench-collector', 'bench/runtime/collector.py', []),
    ('bench-collector-quick', 'bench/runtime/collector.py', ['--quick']),
]

# `ninja install` runs packaging/install.sh, which writes these pkg-config
# files from packaging/<name>.pc.in.
PC_FILES = ['hakmem', 'hakmem-lua', 'hakrt']
# LuaRocks builds the module from this rockspec (`luarocks make`), which
# lists CORE_SOURCES and GLUE_SOURCES again: this script checks that the
# two lists agree.
ROCKSPEC = 'hakmem-%s-1.rockspec' % VERSION

# ---------------------------------------------------------------------------
# Flags
# ---------------------------------------------------------------------------

COMMON_CFLAGS = ['-std=c11', '-D_GNU_SOURCE', '-fPIC', '-fvisibility=hidden',
                 '-Wall', '-Wextra', '-pthread']
INCLUDE_DIRS = ['hakmem', 'lua_glue', 'runtime']
MODES = {
    #          cflags, ldflags
    'release': (['-O2', '-DNDEBUG', '-DHAK_DEBUG=0'], []),
    'debug': (['-O0', '-g', '-DHAK_DEBUG=1'], []),
    'asan': (['-O1', '-g', '-fsanitize=address,undefined', '-fno-omit-frame-pointer',
              '-fno-sanitize-recover=undefined', '-DHAK_DEBUG=1'],
             ['-fsanitize=address,undefined']),
    'tsan': (['-O1', '-g', '-fsanitize=thread', '-DHAK_DEBUG=1'],
             ['-fsanitize=thread']),
    # release's optimisation with the hardening of hakmem/secure.c
    'secure': (['-O2', '-DNDEBUG', '-DHAK_DEBUG=0', '-DHAK_SECURE=1'], []),
}
HKLUA_LDFLAGS = ['-Wl,--wrap=luaC_step,--wrap=luaC_fullgc', '-Wl,-E']
LUA_STATIC_NAME = 'liblua5.4.a'
MULTIARCH = peers.MULTIARCH
DEBIAN_LUA_CPATH = ('/usr/local/lib/lua/5.4/?.so;/usr/lib/x86_64-linux-gnu/lua/5.4/?.so;'
                    '/usr/lib/lua/5.4/?.so;/usr/local/lib/lua/5.4/loadall.so;./?.so')

# ---------------------------------------------------------------------------
# Dependencies: what each is, how to see it, which Debian package brings it
# ---------------------------------------------------------------------------

# What --install-deps installs: the build, the tests (lua5.4 is what
# hklua is compared with; luarocks builds the rockspec), then the
# benchmarks: the peers (bench/peers.py), GNU time for their peak RSS,
# plots and instruction counts.
DEBIAN_PACKAGES = (['gcc', 'libc6-dev', 'pkg-config', 'ninja-build',
                    'liblua5.4-dev', 'lua5.4', 'libatomic-ops-dev', 'libcriterion-dev',
                    'luarocks', 'clang', 'libclang-rt-14-dev']
                   + [p.deb for p in peers.PRELOADED]
                   + ['time', 'python3-matplotlib', 'hyperfine', 'valgrind'])


def warn(msg):
    print('configure.py: warning: %s' % msg)


def die(msg):
    print('configure.py: %s' % msg, file=sys.stderr)
    sys.exit(1)


class Platform:
    """Answers yes/no questions about this machine; nothing else probes it."""

    def __init__(self, cc):
        self.cc = cc  # argv list, e.g. ['gcc'] or ['ccache', 'gcc']

    @staticmethod
    def run(argv, **kw):
        try:
            return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  universal_newlines=True, **kw)
        except OSError:
            return None

    def has_program(self, name):
        return shutil.which(name) is not None

    def cc_builds(self, flags=(), cc=None,
                  source='#include <stdlib.h>\nint main(void) { return abs(0); }\n'):
        """Can the compiler (ours, or cc) compile and link this program with these flags?"""
        cc = cc or self.cc
        if not cc or not self.has_program(cc[0]):
            return False
        with tempfile.TemporaryDirectory() as tmp:
            src = os.path.join(tmp, 'probe.c')
            with open(src, 'w') as f:
                f.write(source)
            r = self.run(cc + list(flags) + [src, '-o', os.path.join(tmp, 'probe')])
            return r is not None and r.returncode == 0

    def fuzzer_cc(self, flags):
        """A clang that links a libFuzzer target with these flags (argv), or None.
        Debian's clang needs libclang-rt-14-dev for libFuzzer and the sanitizers."""
        probe = ('#include <stddef.h>\n#include <stdint.h>\n'
                 'int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n; }\n')
        names = [os.environ['FUZZ_CC']] if os.environ.get('FUZZ_CC') else ['clang', 'clang-14']
        for name in names:
            if self.cc_builds(flags, shlex.split(name), probe):
                return shlex.split(name)
        return None

    def has_pkg(self, name):
        r = self.run(['pkg-config', '--exists', name])
        return r is not None and r.returncode == 0

    def pkg(self, name, what):
        r = self.run(['pkg-config', what, name])
        return shlex.split(r.stdout) if r is not None and r.returncode == 0 else []

    def pkg_variable(self, name, var):
        r = self.run(['pkg-config', '--variable=' + var, name])
        return r.stdout.strip() if r is not None and r.returncode == 0 else ''

    def python_with(self, module):
        """A Python 3 that can import module: this one first, then Debian's."""
        for py in [sys.executable, '/usr/bin/python3']:
            r = self.run([py, '-c', 'import ' + module])
            if r is not None and r.returncode == 0:
                return py
        return None

    def lua_cpath(self):
        r = self.run(['lua5.4', '-e', 'io.write(package.cpath)'])
        return r.stdout if r is not None and r.returncode == 0 else DEBIAN_LUA_CPATH

    def is_debian(self):
        return self.has_program('dpkg-query') and self.has_program('apt-get')

    def deb_installed(self, pkg):
        r = self.run(['dpkg-query', '-W', '-f=${db:Status-Status}', pkg])
        return r is not None and r.returncode == 0 and r.stdout.strip() == 'installed'

    def deb_known(self, pkg):
        r = self.run(['apt-cache', 'show', '--no-all-versions', pkg])
        return r is not None and r.returncode == 0 and r.stdout.strip() != ''


def install_deps(platform):
    """apt-get installs whichever of DEBIAN_PACKAGES is missing."""
    if not platform.is_debian():
        die('--install-deps needs dpkg and apt-get; install by hand: %s' % ' '.join(DEBIAN_PACKAGES))
    missing = [p for p in DEBIAN_PACKAGES if not platform.deb_installed(p)]
    if not missing:
        print('configure.py: all Debian packages are installed.')
        return
    sudo = []
    if os.geteuid() != 0:
        if not platform.has_program('sudo'):
            die('--install-deps must run as root to install: %s' % ' '.join(missing))
        sudo = ['sudo']
    env = dict(os.environ, DEBIAN_FRONTEND='noninteractive')
    print('configure.py: installing %s' % ' '.join(missing), flush=True)
    if not all(platform.deb_known(p) for p in missing):
        if subprocess.call(sudo + ['apt-get', 'update'], env=env) != 0:
            die('apt-get update failed')
    if subprocess.call(sudo + ['apt-get', 'install', '-y', '--no-install-recommends'] + missing,
                       env=env) != 0:
        die('apt-get install failed for: %s' % ' '.join(missing))


# ---------------------------------------------------------------------------
# A small ninja writer
# ---------------------------------------------------------------------------

def escape_path(path):
    return path.replace('$', '$$').replace(' ', '$ ').replace(':', '$:')


def escape(text):
    return text.replace('$', '$$')


class Writer:
    def __init__(self, out):
        self.out = out

    def line(self, text=''):
        self.out.write(text + '\n')

    def comment(self, text):
        self.line('# ' + text)

    def variable(self, key, value, indent=0):
        if isinstance(value, (list, tuple)):
            value = ' '.join(v for v in value if v)
        self.line('%s%s = %s' % ('  ' * indent, key, value))

    def rule(self, name, command, description=None, depfile=None, deps=None,
             generator=False, pool=None):
        self.line('rule ' + name)
        self.variable('command', command, 1)
        for key, value in [('description', description), ('depfile', depfile),
                           ('deps', deps), ('pool', pool)]:
            if value:
                self.variable(key, value, 1)
        if generator:
            self.variable('generator', '1', 1)
        self.line()

    def build(self, outputs, rule, inputs=(), implicit=(), order_only=(), variables=None):
        text = ' '.join(escape_path(o) for o in as_list(outputs)) + ': ' + rule
        for sep, paths in [('', inputs), ('| ', implicit), ('|| ', order_only)]:
            if as_list(paths):
                text += ' ' + sep + ' '.join(escape_path(p) for p in as_list(paths))
        self.line('build ' + text)
        for key, value in (variables or {}).items():
            self.variable(key, value, 1)

    def default(self, targets):
        self.line('default ' + ' '.join(escape_path(t) for t in as_list(targets)))


def as_list(x):
    if x is None:
        return []
    return [x] if isinstance(x, str) else list(x)


def q(path):
    """A path for a shell command inside build.ninja."""
    return escape(shlex.quote(path))


# ---------------------------------------------------------------------------
# Options
# ---------------------------------------------------------------------------

parser = argparse.ArgumentParser(description='Write build.ninja for hakmem.')
parser.add_argument('--mode', choices=sorted(MODES), default='release',
                    help='release (default), debug, asan, tsan or secure')
parser.add_argument('--builddir', metavar='DIR',
                    help='outputs and build.ninja go here (default: build/<mode>; '
                         'release writes build.ninja at the repository root)')
parser.add_argument('--prefix', default=os.environ.get('PREFIX', '/usr/local'),
                    help='default install prefix of `ninja install` (PREFIX at install time wins)')
parser.add_argument('--install-deps', action='store_true',
                    help='apt-get install the Debian packages that are missing first')
options = parser.parse_args()

cc = shlex.split(os.environ.get('CC', 'gcc')) or ['gcc']
platform = Platform(cc)
# C++ only for the override's test of new and delete: optional.
cxx = shlex.split(os.environ.get('CXX', 'g++')) or ['g++']
has_cxx = platform.has_program(cxx[0])
if options.install_deps:
    install_deps(platform)

if options.builddir:
    builddir = os.path.abspath(options.builddir)
    ninja_dir = builddir
else:
    builddir = os.path.join(ROOT, 'build', options.mode)
    ninja_dir = ROOT if options.mode == 'release' else builddir
ninja_file = os.path.join(ninja_dir, 'build.ninja')


def src(path):
    """A path under the repository root, as seen from build.ninja's directory."""
    return os.path.relpath(os.path.join(ROOT, path), ninja_dir)


def out(path):
    """A path under the build directory, as seen from build.ninja's directory."""
    return os.path.relpath(os.path.join(builddir, path), ninja_dir)


def listed_files():
    """Every file the lists above name, in their order."""
    files = (CORE_SOURCES + [CORE_HEADER] + OVERRIDE_SOURCES + GLUE_SOURCES
             + ['lua_glue/hakl.h'] + RUNTIME_SOURCES + HKLUA_SOURCES
             + ['tests/test_%s.c' % t[0] for t in TESTS]
             + [s for t in TESTS for s in TEST_HELPERS[t[1]] + (t[2] if len(t) > 2 else [])]
             + [s for _, _, ss, _ in TEST_PROGRAMS for s in ss] + TEST_SCRIPTS
             + [s for _, _, s in FUZZ_TARGETS] + [FUZZ_SCRIPT, SOAK_SCRIPT]
             + RELEASE_TEST_SCRIPTS + ['tests/run_all.py']
             + [s for _, ss in BENCHES + LUA_BENCHES for s in ss]
             + [s for _, s, _ in BENCH_SCRIPTS]
             + ['packaging/install.sh'] + ['packaging/%s.pc.in' % pc for pc in PC_FILES]
             + [ROCKSPEC])
    return list(dict.fromkeys(files))


def rockspec_sources():
    """The files of the rockspec's `local sources = { ... }` list."""
    with open(os.path.join(ROOT, ROCKSPEC)) as f:
        m = re.search(r'^local sources = \{(.*?)^\}', f.read(), re.S | re.M)
    return re.findall(r'"([^"]+)"', m.group(1)) if m else []


# ---------------------------------------------------------------------------
# Probes
# ---------------------------------------------------------------------------

absent = [p for p in listed_files() if not os.path.isfile(os.path.join(ROOT, p))]
if absent:
    die('listed in configure.py but missing from %s: %s' % (ROOT, ', '.join(absent)))
if rockspec_sources() != CORE_SOURCES + GLUE_SOURCES:
    die('%s: its `local sources` must list CORE_SOURCES then GLUE_SOURCES, as configure.py '
        'does: %s' % (ROCKSPEC, ', '.join(CORE_SOURCES + GLUE_SOURCES)))

needed = []  # (what, Debian package) of required things that are missing
if not platform.cc_builds():
    needed.append(('a C compiler (%s)' % ' '.join(cc), 'gcc libc6-dev'))
if not platform.has_program('pkg-config'):
    needed.append(('pkg-config', 'pkg-config'))
else:
    for pkg, deb in [('lua5.4', 'liblua5.4-dev'), ('atomic_ops', 'libatomic-ops-dev'),
                     ('criterion', 'libcriterion-dev')]:
        if not platform.has_pkg(pkg):
            needed.append((pkg, deb))
    if platform.has_pkg('lua5.4'):
        lua_static = os.path.join(platform.pkg_variable('lua5.4', 'libdir'), LUA_STATIC_NAME)
        if not os.path.exists(lua_static):
            needed.append((lua_static, 'liblua5.4-dev'))
if not platform.has_program('lua5.4'):
    needed.append(('the lua5.4 interpreter (the tests compare hklua with it)', 'lua5.4'))
if not platform.has_program('luarocks'):
    needed.append(('luarocks (the tests build the rockspec)', 'luarocks'))
if needed:
    die('missing %s; run `python3 configure.py --install-deps` (as root) or '
        '`apt-get install %s`' % (', '.join('%s (Debian package %s)' % n for n in needed),
                                  ' '.join(d for _, d in needed)))

mode_cflags, mode_ldflags = MODES[options.mode]
if mode_ldflags and not platform.cc_builds(mode_cflags + mode_ldflags):
    die('%s cannot build with %s (Debian package gcc brings the sanitizer runtimes)'
        % (' '.join(cc), ' '.join(mode_ldflags)))

lua_cflags = platform.pkg('lua5.4', '--cflags')
atomic_cflags = platform.pkg('atomic_ops', '--cflags')
atomic_libs = platform.pkg('atomic_ops', '--libs')
criterion_cflags = platform.pkg('criterion', '--cflags')
criterion_libs = platform.pkg('criterion', '--libs')

# Only the benchmarks' tools are optional: without them a runner leaves a
# peer out or draws no plot, and says so.
if not platform.has_program('ninja'):
    warn('ninja not found (Debian package ninja-build): needed to build')
for peer in peers.PRELOADED:
    if not peers.find(peer):
        warn('%s not found (Debian package %s): benchmarks skip it' % (peer.libs[0], peer.deb))

bench_python = platform.python_with('matplotlib')
if not bench_python:
    warn('matplotlib not found (Debian package python3-matplotlib): no plots')
    bench_python = sys.executable

# The fuzz targets take the mode's flags but their own sanitizers.
fuzz_cflags = ([x for x in mode_cflags if not x.startswith(('-fsanitize', '-fno-sanitize'))]
               + ['-g', '-fno-omit-frame-pointer', '-fno-sanitize-recover=undefined'])
fuzz_cc = platform.fuzzer_cc(fuzz_cflags + [FUZZ_SANITIZE])
fuzz_missing = ''
if not fuzz_cc:
    fuzz_missing = ('no clang that links libFuzzer with %s (Debian packages clang and '
                    'libclang-rt-14-dev; or set FUZZ_CC)' % FUZZ_SANITIZE)
    warn(fuzz_missing + ': `ninja fuzz` builds nothing, `ninja fuzz-run` says so')

# ---------------------------------------------------------------------------
# build.ninja
# ---------------------------------------------------------------------------

os.makedirs(ninja_dir, exist_ok=True)
os.makedirs(builddir, exist_ok=True)
f = open(ninja_file, 'w')
n = Writer(f)

n.comment('Written by configure.py (mode %s); do not edit: it regenerates itself.' % options.mode)
n.variable('ninja_required_version', '1.7')
n.line()
n.variable('root', src('.'))
n.variable('builddir', out('.'))
n.variable('cc', escape(' '.join(shlex.quote(a) for a in cc)))
n.variable('cxx', escape(' '.join(shlex.quote(a) for a in cxx)))
n.variable('cflags', [escape(x) for x in COMMON_CFLAGS + mode_cflags + atomic_cflags]
           + ['-I' + escape(src(d)) for d in INCLUDE_DIRS]
           + [escape(x) for x in shlex.split(os.environ.get('CFLAGS', ''))])
n.variable('ldflags', [escape(x) for x in ['-pthread'] + mode_ldflags
                       + shlex.split(os.environ.get('LDFLAGS', ''))])
n.variable('libs', [escape(x) for x in atomic_libs])
n.variable('lua_cflags', [escape(x) for x in lua_cflags])
n.variable('lua_static', escape(lua_static))
n.variable('criterion_cflags', [escape(x) for x in criterion_cflags])
n.variable('criterion_libs', [escape(x) for x in criterion_libs])
n.line()

n.rule('cc', '$cc -MMD -MT $out -MF $out.d $cflags $extra_cflags -c $in -o $out',
       description='CC $out', depfile='$out.d', deps='gcc')
n.rule('cxx', '$cxx -MMD -MT $out -MF $out.d -std=c++17 -D_GNU_SOURCE -Wall -Wextra -pthread '
       '%s $extra_cflags -c $in -o $out' % ' '.join(escape(x) for x in mode_cflags),
       description='CXX $out', depfile='$out.d', deps='gcc')
n.rule('ar', 'rm -f $out && ar crs $out $in', description='AR $out')
if fuzz_cc:
    n.variable('fuzz_cc', escape(' '.join(shlex.quote(a) for a in fuzz_cc)))
    n.variable('fuzz_cflags', [escape(x) for x in COMMON_CFLAGS + fuzz_cflags + atomic_cflags]
               + ['-I' + escape(src(d)) for d in INCLUDE_DIRS])
    n.rule('fuzzcc', '$fuzz_cc -MMD -MT $out -MF $out.d $fuzz_cflags '
           '-fsanitize=fuzzer-no-link,address,undefined $extra_cflags -c $in -o $out',
           description='CC (fuzz) $out', depfile='$out.d', deps='gcc')
    n.rule('fuzzlink', '$fuzz_cc %s -pthread -o $out $in $extra_libs $libs' % FUZZ_SANITIZE,
           description='LINK (fuzz) $out')
# A static library is one object: the partial link of its objects with every
# hidden symbol made local, so that a host sees only the API (hak_, hakl_,
# hakrt_, luaopen_): its own `stats` or `page_init` cannot clash with ours.
n.rule('partial', '$cc -nostdlib -r -o $out $in && objcopy --localize-hidden $out',
       description='LD -r $out')
n.rule('link', '$cc $ldflags $extra_ldflags -o $out $in $extra_libs $libs',
       description='LINK $out')
# Static libraries (libatomic_ops.a) stay private to our shared objects.
n.rule('solink', '$cc -shared $ldflags $extra_ldflags -Wl,-soname,$soname -Wl,--exclude-libs,ALL '
       '-o $out $in $extra_libs $libs', description='SOLINK $out')
n.line()

# Rerun with the same arguments (and compiler environment) when configure.py
# or what it reads (the peer list, the rockspec) changes.
args = ['--mode=' + options.mode, '--prefix=' + options.prefix]
if options.builddir:
    args.append('--builddir=' + builddir)
env = ''.join('%s=%s ' % (k, shlex.quote(os.environ[k]))
              for k in ['CC', 'CFLAGS', 'LDFLAGS'] if k in os.environ)
n.rule('configure', 'cd %s && %s%s configure.py %s'
       % (q(ROOT), escape(env), q(sys.executable), escape(' '.join(shlex.quote(a) for a in args))),
       description='CONFIGURE', generator=True)
n.build(os.path.relpath(ninja_file, ninja_dir), 'configure',
        implicit=[src('configure.py'), src('bench/peers.py'), src(ROCKSPEC)])
n.line()

objects = {}  # (source, variant) -> object path, each source compiled once


def compile_c(source, variant='', extra_cflags=(), rule=None):
    key = (source, variant)
    if key not in objects:
        obj = out(os.path.join('obj', os.path.splitext(source)[0] + variant + '.o'))
        n.build(obj, rule or ('cxx' if source.endswith('.cc') else 'cc'), src(source),
                variables={'extra_cflags': list(extra_cflags)} if extra_cflags else None)
        objects[key] = obj
    return objects[key]


everything = []  # outputs of `all`


def static_lib(name, objs):
    """lib<name>.a holding one object, obj/lib<name>.o (the 'partial' rule)."""
    lib = out('lib%s.a' % name)
    one = out('obj/lib%s.o' % name)
    n.build(one, 'partial', objs)
    n.build(lib, 'ar', one)
    return lib


n.comment('The allocator core.')
core_objs = [compile_c(s) for s in CORE_SOURCES]
core_lib = static_lib('hakmem', core_objs)
# -z nodelete: a dlclose must not unmap the code that thread exits and
# live blocks still need (the thread-exit destructor, the segments).
n.build(out('libhakmem.so'), 'solink', core_objs,
        variables={'soname': 'libhakmem.so', 'extra_ldflags': '-Wl,-z,nodelete'})
n.build(out('libhakmem-override.so'), 'solink',
        # -fexceptions: a std::bad_alloc thrown by a failed operator new
        # unwinds through the override's C frames
        [compile_c(s, extra_cflags=['-fexceptions']) for s in OVERRIDE_SOURCES] + core_objs,
        # -Bsymbolic: its calls stay on its own core even in a
        # program that exports another (hklua, linked with -E)
        variables={'soname': 'libhakmem-override.so',
                   'extra_ldflags': '-Wl,-Bsymbolic -Wl,-z,nodelete'})
everything += [core_lib, out('libhakmem.so'), out('libhakmem-override.so')]
n.line()

# The module links no liblua: the host provides Lua.  It carries its own
# copy of the core; -Bsymbolic keeps its calls on that copy even in a
# host that exports another (hklua, a program linked with libhakmem);
# -z nodelete keeps it mapped after lua_close dlcloses it (its blocks
# and its thread-exit destructor outlive the state).
n.comment('The Lua glue and the Lua module.')
glue_objs = [compile_c(s, extra_cflags=['$lua_cflags']) for s in GLUE_SOURCES]
glue_lib = static_lib('hakmem_lua', glue_objs)
n.build(out('lua/hakmem.so'), 'solink', glue_objs + core_objs,
        variables={'soname': 'hakmem.so', 'extra_ldflags': '-Wl,-Bsymbolic -Wl,-z,nodelete'})
everything += [glue_lib, out('lua/hakmem.so')]
n.line()

# Everything that links the static Lua library (hklua, Lua tests): whole
# archive, so that C modules loaded by hklua find every Lua API function.
lua_link = ['-Wl,--whole-archive', '$lua_static', '-Wl,--no-whole-archive', '-lm', '-ldl']

n.comment('The multi-thread runtime.')
rt_lib = static_lib('hakrt', [compile_c(s, extra_cflags=['$lua_cflags']) for s in RUNTIME_SOURCES])
everything.append(rt_lib)
n.line()

n.comment('hklua: a lua5.4-compatible host with timed GC pauses, and the runtime.')
n.build(out('hklua'), 'link',
        [compile_c(s, extra_cflags=['$lua_cflags']) for s in HKLUA_SOURCES],
        implicit=[rt_lib, glue_lib, core_lib],
        variables={'extra_ldflags': [escape(x) for x in HKLUA_LDFLAGS],
                   'extra_libs': [rt_lib, glue_lib, core_lib] + lua_link})
everything.append(out('hklua'))
n.line()

# What a test or program of each kind links.
KIND_LIBS = {
    'plain': [],
    'core': [core_lib],
    'lua': [glue_lib, core_lib],
    'rt': [rt_lib, glue_lib, core_lib],
}


# Tests.  Criterion cannot start under ThreadSanitizer (its arena needs a
# fixed mapping where TSan keeps its shadow: Snaipe/Criterion#274), so in
# tsan mode the Criterion binaries are built but only the test programs run.
runs_criterion = options.mode != 'tsan'
test_cflags = ['$lua_cflags', '$criterion_cflags']
test_bins = []      # Criterion binaries
test_programs = []  # programs the tests use
test_runs = []      # what `ninja test` runs


def link_test(target, kind, sources, extra_libs=()):
    """Builds a test binary of this kind; returns its output."""
    libs = KIND_LIBS[kind]
    n.build(out(target), 'link', [compile_c(s, extra_cflags=test_cflags) for s in sources],
            implicit=libs,
            variables={'extra_libs': libs + (lua_link if kind in ('lua', 'rt') else ['-lm'])
                       + list(extra_libs)})
    return out(target)


n.comment('Tests.')
for name, kind, sources, runs in TEST_PROGRAMS:
    cxx_sources = [x for x in sources if x.endswith('.cc')]
    if cxx_sources and not has_cxx:
        warn('tests/%s skipped: no C++ compiler (%s; Debian package g++)' % (name, cxx[0]))
        continue
    target = link_test('tests/' + name, kind, sources, ['-lstdc++'] if cxx_sources else [])
    test_programs.append(target)
    if runs is True or (runs and options.mode in runs):
        test_runs.append(target)
for name, kind, *extra in TESTS:
    sources = ['tests/test_%s.c' % name] + TEST_HELPERS[kind] + (extra[0] if extra else [])
    ldflags = extra[1] if len(extra) > 1 else []
    test_bins.append(link_test('tests/test_' + name, kind, sources, ['$criterion_libs'] + ldflags))
if runs_criterion:
    test_runs = test_bins + test_runs
else:
    warn('tsan: the Criterion tests are built but not run (Criterion cannot start '
         'under ThreadSanitizer); `ninja test` runs the test programs only')
test_runs += [src(script) for script in TEST_SCRIPTS
              + (RELEASE_TEST_SCRIPTS if options.mode == 'release' else [])]
n.line()

# Micro benchmarks.
bench_bins = []
for name, sources in BENCHES:
    n.build(out('bench/' + name), 'link', [compile_c(s) for s in sources])
    n.build(out('bench/%s_hak' % name), 'link',
            [compile_c(s, '_hak', ['-DBENCH_HAKMEM']) for s in sources],
            implicit=[core_lib], variables={'extra_libs': [core_lib]})
    bench_bins += [out('bench/' + name), out('bench/%s_hak' % name)]
for name, sources in LUA_BENCHES:
    n.build(out('bench/' + name), 'link',
            [compile_c(s, extra_cflags=['$lua_cflags']) for s in sources],
            implicit=[glue_lib, core_lib],
            variables={'extra_libs': [glue_lib, core_lib] + lua_link})
    bench_bins.append(out('bench/' + name))
everything += test_programs + test_bins + bench_bins
n.line()

# Fuzz targets: every source compiled again by clang with the fuzzer's
# instrumentation (variant _fuzz), the static Lua library as it is.
n.comment('Fuzz targets (libFuzzer): ninja fuzz, ninja fuzz-run.')
fuzz_bins = []
if fuzz_cc:
    fuzz_kind_sources = {'core': CORE_SOURCES, 'lua': GLUE_SOURCES + CORE_SOURCES}
    for name, kind, source in FUZZ_TARGETS:
        objs = [compile_c(s, '_fuzz', ['$lua_cflags'] if kind == 'lua' else [], rule='fuzzcc')
                for s in [source] + fuzz_kind_sources[kind]]
        target = out('fuzz/fuzz_' + name)
        n.build(target, 'fuzzlink', objs,
                variables={'extra_libs': lua_link if kind == 'lua' else ['-lm']})
        fuzz_bins.append(target)
n.build('fuzz', 'phony', fuzz_bins)
n.line()

# ninja test: tests/run_all.py runs each test binary (a .py script with this
# Python) in the build directory, and repeats why any failed at the end.
n.comment('ninja test: every test binary, one after the other.')
n.rule('run_tests',
       '%s %s %s %s %s $tests'
       % (q(sys.executable), q(os.path.join(ROOT, 'tests', 'run_all.py')), q(builddir), q(ROOT),
          options.mode),
       description='TEST', pool='console')
n.build('run-test', 'run_tests', test_runs,
        implicit=[t for t in everything if t not in bench_bins],
        variables={'tests': [os.path.relpath(os.path.join(ninja_dir, t), builddir)
                             for t in test_runs]})
n.build('test', 'phony', 'run-test')
n.line()

# Benchmark scripts; they find the binaries in builddir.  A command target
# is `run-<name>`, a file never made, so it always runs; `<name>` is a
# phony alias (bench/ is also a directory).
n.rule('script', 'cd $root && %s $script --builddir %s $args' % (q(bench_python), q(builddir)),
       description='RUN $script', pool='console')
# A target of several scripts runs them one after the other (each after
# the previous one: two benchmarks at once would disturb each other).
bench_steps = {}
for target, script, script_args in BENCH_SCRIPTS:
    steps = bench_steps.setdefault(target, [])
    step = 'run-%s-%d' % (target, len(steps) + 1)
    n.build(step, 'script', implicit=everything, order_only=steps[-1:],
            variables={'script': src(script), 'args': script_args})
    steps.append(step)
for target, steps in bench_steps.items():
    n.build(target, 'phony', steps)
n.line()

# ninja fuzz-run: each fuzz target for $FUZZ_SECONDS seconds (30 unless set).
n.rule('fuzz_run', 'cd $root && %s %s --builddir %s --seconds $${FUZZ_SECONDS:-30}%s'
       % (q(sys.executable), q(os.path.join(ROOT, FUZZ_SCRIPT)), q(builddir),
          ' --missing ' + q(fuzz_missing) if fuzz_missing else ''),
       description='FUZZ', pool='console')
n.build('run-fuzz', 'fuzz_run', implicit=fuzz_bins)
n.build('fuzz-run', 'phony', 'run-fuzz')
n.rule('soak_run', '%s %s --builddir %s --minutes $${SOAK_MINUTES:-3}'
       % (q(sys.executable), q(os.path.join(ROOT, SOAK_SCRIPT)), q(builddir)),
       description='SOAK', pool='console')
n.build('run-soak', 'soak_run', implicit=[out('tests/soak/soak')])
n.build('soak', 'phony', 'run-soak')
n.line()

# ninja install: packaging/install.sh with what this script found; PREFIX
# and DESTDIR from the environment win, like make.
install_env = {
    'HAKMEM_BUILDDIR': builddir,
    'HAKMEM_SRCDIR': ROOT,
    'HAKMEM_PREFIX': options.prefix,
    'HAKMEM_MULTIARCH': MULTIARCH,
    'HAKMEM_LUA_CPATH': platform.lua_cpath(),
    'HAKMEM_VERSION': VERSION,
    'HAKMEM_LIBS_PRIVATE': ' '.join(atomic_libs + ['-pthread']),
}
n.rule('install', '%s sh %s' % (' '.join('%s=%s' % (k, q(v)) for k, v in install_env.items()),
                                q(os.path.join(ROOT, 'packaging', 'install.sh'))),
       description='INSTALL', pool='console')
n.build('run-install', 'install', implicit=everything)
n.build('install', 'phony', 'run-install')
n.line()

# With build.ninja at the root (release), short names work too: `ninja hklua`.
if ninja_dir != builddir:
    n.comment('Short names for the outputs.')
    for target in everything:
        n.build(os.path.relpath(os.path.join(ninja_dir, target), builddir), 'phony', target)
    n.line()

n.build('all', 'phony', everything)
n.default('all')
f.close()

shown = os.path.relpath(ninja_file)
print('wrote %s.' % (ninja_file if shown.startswith('..') else shown))
