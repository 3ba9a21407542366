#!/usr/bin/env python3
"""Per-event cost of the audit library: a program needing N libraries, each in its own
RPATH directory (so ld.so makes ~N^2/2 la_objsearch calls), started untraced and with
LD_AUDIT. Run through audit-lib/bench.sh.

usage: bench.py SO [--libs N] [--runs R] [--keep] [--workdir DIR] [--audit-dir DIR]
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import lpa  # noqa: E402

CC = os.environ.get("CC", "cc")


def build(work, n):
    stamp = os.path.join(work, "built-%d" % n)
    prog = os.path.join(work, "app%d" % n)
    if os.path.exists(stamp):
        return prog
    src = os.path.join(work, "src")
    os.makedirs(src, exist_ok=True)
    dirs = [os.path.join(work, "lib", "d%04d" % i) for i in range(n)]

    def one(i):
        os.makedirs(dirs[i], exist_ok=True)
        c = os.path.join(src, "m%04d.c" % i)
        with open(c, "w") as f:
            f.write("int f%04d(int x) { return x * %d + 1; }\n" % (i, i + 3))
        subprocess.run([CC, "-shared", "-fPIC", "-O1", "-o", os.path.join(dirs[i], "libm%04d.so" % i), c,
                        "-Wl,-soname,libm%04d.so" % i], check=True)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as ex:
        list(ex.map(one, range(n)))
    main = os.path.join(src, "main%d.c" % n)
    with open(main, "w") as f:
        f.write("#include <stdio.h>\n")
        for i in range(n):
            f.write("int f%04d(int);\n" % i)
        f.write("int main(void) { unsigned s = 0;\n")
        for i in range(n):
            f.write("  s += f%04d(%d);\n" % (i, i))
        f.write('  printf("%u\\n", s); return 0; }\n')
    args = [CC, "-O1", "-o", prog, main, "-Wl,--no-as-needed", "-Wl,--disable-new-dtags,-rpath," + ":".join(dirs)]
    args += ["-L" + d for d in dirs] + ["-lm%04d" % i for i in range(n)]
    subprocess.run(args, check=True)
    open(stamp, "w").close()
    return prog


def run_once(prog, env):
    t0 = time.perf_counter()
    pid = os.posix_spawn(prog, [prog], env, file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
    _, st, ru = os.wait4(pid, 0)
    t1 = time.perf_counter()
    if st != 0:
        raise SystemExit("bench: %s exited with status %#x" % (prog, st))
    return t1 - t0, ru.ru_utime + ru.ru_stime


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("so")
    ap.add_argument("--libs", type=int, default=300)
    ap.add_argument("--runs", type=int, default=31)
    ap.add_argument("--workdir")
    ap.add_argument("--audit-dir", help="where the .lpa files go (default: a directory in the work dir)")
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    so = os.path.abspath(a.so)
    work = a.workdir or os.path.join(tempfile.gettempdir(), "lp-audit-bench")
    os.makedirs(work, exist_ok=True)
    t = time.perf_counter()
    prog = build(work, a.libs)
    print("bench: %d libraries, each in its own RPATH directory (%s; built in %.1f s)"
          % (a.libs, prog, time.perf_counter() - t), flush=True)
    outdir = a.audit_dir or os.path.join(work, "out")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("LD_", "LOADPROBE_"))}
    variants = {
        "untraced": dict(base),
        "LD_AUDIT, inert": dict(base, LD_AUDIT=so),
        "LD_AUDIT, recording": dict(base, LD_AUDIT=so, LOADPROBE_AUDIT_DIR=outdir),
    }
    times = {k: [] for k in variants}
    cpu = {k: [] for k in variants}

    def clear():
        shutil.rmtree(outdir, ignore_errors=True)
        os.makedirs(outdir)

    clear()
    for k, env in variants.items():  # warm the page cache and the dentry cache
        run_once(prog, env)
    for _ in range(a.runs):
        for k, env in variants.items():
            clear()
            w, c = run_once(prog, env)
            times[k].append(w)
            cpu[k].append(c)
    segs = list(lpa.read_dir(outdir).values())
    recs = [r for s in segs for r in s.records]
    search = [r for r in recs if r["kind"] == lpa.OBJSEARCH]
    base_med = statistics.median(times["untraced"])
    base_cpu = statistics.median(cpu["untraced"])
    print("  %-22s %-30s %-30s %s" % ("", "wall: median / min", "ratio (median, min)", "cpu (user+sys): median, ratio"))
    for k in variants:
        v, c = times[k], cpu[k]
        print("  %-22s %8.1f ms / %8.1f ms       %.3f  %.3f                 %7.1f ms  %.3f"
              % (k, statistics.median(v) * 1e3, min(v) * 1e3, statistics.median(v) / base_med,
                 min(v) / min(times["untraced"]), statistics.median(c) * 1e3, statistics.median(c) / base_cpu))
    nbytes = sum(r["size"] for r in recs)
    print("  records per start-up: %d (%d la_objsearch), %d bytes, %.1f bytes/record, %.1f bytes/OBJSEARCH"
          % (len(recs), len(search), nbytes, nbytes / max(1, len(recs)),
             sum(r["size"] for r in search) / max(1, len(search))))
    extra = statistics.median(cpu["LD_AUDIT, recording"]) - statistics.median(cpu["LD_AUDIT, inert"])
    print("  recording cost over an inert audit module (cpu medians): %.2f ms, %.0f ns per record"
          % (extra * 1e3, extra * 1e9 / max(1, len(recs))))
    ratio = statistics.median(times["LD_AUDIT, recording"]) / base_med
    cratio = statistics.median(cpu["LD_AUDIT, recording"]) / base_cpu
    print("bench: overhead ratio recording/untraced: wall %.3f, cpu %.3f  %s"
          % (ratio, cratio, "(target <= 1.10 met)" if min(ratio, cratio) <= 1.10 else "(ABOVE the 1.10 target)"))
    if not a.keep:
        shutil.rmtree(outdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
