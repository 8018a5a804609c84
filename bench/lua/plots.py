#!/usr/bin/env python3
"""Draws the Lua suite's plots from compare.py's bench/out/lua.json.

    plots.py bench/out/lua.json bench/plots

Per GC mode: lua_<mode>_relative.png, the median time and peak RSS of every
workload relative to glibc as grouped bars (the geometric mean last), and
lua_<mode>_gc_pauses.png, the GC pause distribution per allocator, one
panel per workload: the empirical CDF of every step when hklua's JSON has
the optional "durations_us" list, else its percentiles (p50, p99, p99.9,
max).  Uses matplotlib (Debian's python3-matplotlib) without a display.
Prints the path of each file written.
"""

import json
import math
import os
import sys

import matplotlib
matplotlib.use('Agg')
import matplotlib.pyplot as plt  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import benchlib  # noqa: E402

COLORS = {'glibc': '#7f7f7f', 'mimalloc': '#1f77b4', 'jemalloc': '#2ca02c',
          'tcmalloc': '#ff7f0e', 'hakmem': '#d62728'}


def _present(rows):
    return [a for a in benchlib.ALLOCATORS if any(r['alloc'] == a for r in rows)]


def _workloads(rows):
    return benchlib.in_order(r['workload'] for r in rows)


def relative_bars(doc, mode, path):
    rows = [r for r in doc['rows'] if r['gc_mode'] == mode]
    allocs, names = _present(rows), _workloads(rows)
    if not rows or 'glibc' not in allocs:
        return False
    gm = doc.get('geomeans', {}).get(mode, {})
    by = {(r['workload'], r['alloc']): r for r in rows}
    fig, axes = plt.subplots(2, 1, figsize=(max(8, 1.1 * (len(names) + 1)), 8), sharex=True)
    width = 0.8 / len(allocs)
    for ax, key, gkey, title in ((axes[0], 'time_vs_glibc', 'time', 'wall time'),
                                 (axes[1], 'rss_vs_glibc', 'rss', 'peak RSS')):
        for i, a in enumerate(allocs):
            vals = [(by.get((w, a)) or {}).get(key) for w in names]
            vals.append((gm.get(a) or {}).get(gkey))
            xs = [j + (i - (len(allocs) - 1) / 2) * width for j in range(len(vals))]
            ax.bar(xs, [v if v is not None else 0 for v in vals], width,
                   label=a, color=COLORS.get(a))
        ax.axhline(1.0, color='black', linewidth=0.8)
        ax.set_ylabel('%s relative to glibc' % title)
        ax.set_title('%s: %s relative to glibc (lower is better)' % (mode, title))
        ax.grid(axis='y', alpha=0.3)
    axes[1].set_xticks(range(len(names) + 1))
    axes[1].set_xticklabels(names + ['geo. mean'], rotation=30, ha='right')
    axes[0].legend(ncol=len(allocs), fontsize='small')
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def _durations(doc, mode, name, alloc):
    """Every step duration of every run, or None when hklua gave none."""
    for entry in doc.get('raw', []):
        if (entry['gc_mode'], entry['workload'], entry['alloc']) == (mode, name, alloc):
            out = []
            for run in entry['runs']:
                d = (run.get('pauses') or {}).get('durations_us')
                if d is None:
                    return None
                out += d
            return sorted(out) if out else None
    return None


def pause_panels(doc, mode, path):
    rows = [r for r in doc['rows'] if r['gc_mode'] == mode and r.get('gc_p50_us') is not None]
    if not rows:
        return False
    allocs, names = _present(rows), _workloads(rows)
    by = {(r['workload'], r['alloc']): r for r in rows}
    cols = 4
    nrows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4 * cols, 3.2 * nrows), squeeze=False)
    labels = ['p50', 'p99', 'p99.9', 'max']
    for k, name in enumerate(names):
        ax = axes[k // cols][k % cols]
        ecdf = all(_durations(doc, mode, name, a) for a in allocs if (name, a) in by)
        for a in allocs:
            r = by.get((name, a))
            if not r:
                continue
            if ecdf:
                d = _durations(doc, mode, name, a)
                ys = [(i + 1) / len(d) for i in range(len(d))]
                ax.step([max(x, 0.01) for x in d], ys, where='post', label=a,
                        color=COLORS.get(a))
            else:
                vals = [r['gc_p50_us'], r['gc_p99_us'], r['gc_p999_us'], r['gc_max_us']]
                ax.plot(labels, [max(v or 0.01, 0.01) for v in vals], marker='o',
                        label=a, color=COLORS.get(a))
        if ecdf:
            ax.set_xscale('log')
            ax.set_xlabel('pause (µs)')
            ax.set_ylabel('fraction of steps')
        else:
            ax.set_yscale('log')
            ax.set_ylabel('pause (µs)')
        ax.set_title(name)
        ax.grid(alpha=0.3)
    for k in range(len(names), nrows * cols):
        axes[k // cols][k % cols].axis('off')
    axes[0][0].legend(fontsize='small')
    fig.suptitle('%s GC: pause distribution of luaC_step per allocator%s'
                 % (mode, '' if ecdf else ' (percentiles; lower is better)'))
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return True


def draw(json_path, plot_dir):
    with open(json_path) as f:
        doc = json.load(f)
    os.makedirs(plot_dir, exist_ok=True)
    written = []
    for mode in doc.get('modes', []):
        p = os.path.join(plot_dir, 'lua_%s_relative.png' % mode)
        if relative_bars(doc, mode, p):
            written.append(p)
        p = os.path.join(plot_dir, 'lua_%s_gc_pauses.png' % mode)
        if pause_panels(doc, mode, p):
            written.append(p)
    return written


if __name__ == '__main__':
    if len(sys.argv) != 3:
        print('usage: plots.py LUA_JSON PLOT_DIR', file=sys.stderr)
        sys.exit(2)
    for p in draw(sys.argv[1], sys.argv[2]):
        print(p)
