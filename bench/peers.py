"""The allocators hakmem is compared with, in one list: configure.py reads
it (which Debian packages to install, which libraries to look for) and so
does every benchmark runner, through benchlib (what to preload).

Standard library only, and nothing happens on import.
"""

import collections
import os

# name: as tables and --alloc show it.  deb: the Debian package that brings
# it (configure.py --install-deps).  libs: the shared libraries that load it
# with LD_PRELOAD, the first one found wins; none for glibc, the baseline:
# the C library itself, no preload.
Peer = collections.namedtuple('Peer', 'name deb libs')

MULTIARCH = 'x86_64-linux-gnu'
LIBDIRS = ['/usr/lib/' + MULTIARCH, '/usr/lib', '/usr/local/lib']

PEERS = [
    Peer('glibc', 'libc6', []),
    Peer('mimalloc', 'libmimalloc-dev', ['libmimalloc.so.2']),
    Peer('jemalloc', 'libjemalloc-dev', ['libjemalloc.so.2']),
    # The minimal library first: no heap profiler, the allocator alone.
    Peer('tcmalloc', 'libgoogle-perftools-dev',
         ['libtcmalloc_minimal.so.4', 'libtcmalloc.so.4']),
]
PRELOADED = [p for p in PEERS if p.libs]

# Every allocator in the order every table shows them: the peers, then
# hakmem (which runs through its own API or option, never a preload).
ALLOCATORS = [p.name for p in PEERS] + ['hakmem']


def find(peer, dirs=LIBDIRS):
    """The path of the first of peer.libs found in `dirs`, or None."""
    for d in dirs:
        for lib in peer.libs:
            path = os.path.join(d, lib)
            if os.path.exists(path):
                return path
    return None
