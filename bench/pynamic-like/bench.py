#!/usr/bin/env python3
"""pynamic-like benchmark driver: build, fix, mount, measure, unmount.

Run it through ./run (which also unmounts on any failure).  Sections:

  (b) start-up wall time on the latency file system (latfs) at 0, 100 us and
      1 ms per operation, for the recorded program and its real fixes
      (shrinkwrap, view), with 1, 2, 4 and 8 concurrent processes;
  counts: `strace -f -C` of each program on latfs next to latfs's own counters,
      which must agree (exit status 1 if they do not);
  (a) tracer overhead: runs when --loadprobe PATH is given, skipped otherwise;
  (c), (d): hooks, not built yet.

Results: a table on stdout, JSON in out/results/<size>.json (and latest.json).
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import fix as fixmod  # noqa: E402
import gen as genmod  # noqa: E402

OUT = os.path.join(HERE, "out")
LATFS = os.path.join(OUT, "bin", "latfs")
MOUNTS_FILE = os.path.join(OUT, ".mounts")  # ./run unmounts whatever is listed here
ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C", "LC_ALL": "C"}

SIZES = {
    # name: matrix program, big program (paper scale) and what to measure
    "smoke": dict(libs=20, utils=4, big=0, delays=[100], procs=[1], python=False,
                  programs=["app", "app.shrinkwrap", "app.view"], variants=False, fs_extras=[]),
    "quick": dict(libs=50, utils=5, big=0, delays=[0, 100, 1000], procs=[1, 2], python=True,
                  programs=["app", "app.shrinkwrap", "app.view"], variants=True,
                  fs_extras=[("poscache", 100, [1]), ("poscache+negcache", 100, [1]), ("1thread", 100, [1, 2])]),
    "default": dict(libs=300, utils=10, big=900, big_utils=30, big_delays=[0, 100], delays=[0, 100, 1000],
                    procs=[1, 2, 4, 8], python=True, programs=["app", "app.shrinkwrap", "app.view"],
                    variants=True,
                    fs_extras=[("poscache", 100, [1]), ("poscache+negcache", 100, [1]), ("1thread", 100, [1, 2, 4])]),
}


def log(msg):
    print(msg, flush=True)


# ---------------------------------------------------------------- mounting

class Mount:
    """latfs mounted over `tree` (the tree it mirrors) for the duration of a with-block."""

    def __init__(self, tree, delay_us=0, read_delay_us=None, extra=()):
        self.tree = tree
        self.delay_us = delay_us
        self.read_delay_us = delay_us if read_delay_us is None else read_delay_us
        self.extra = list(extra)
        self.stats = None
        self.proc = None

    def _mounted(self):
        with open("/proc/self/mountinfo") as f:
            for line in f:
                parts = line.split()
                sep = parts.index("-")
                mnt = re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), parts[4])
                if mnt == self.tree and parts[sep + 1] == "fuse.latfs":
                    return True
        return False

    def __enter__(self):
        if self._mounted():
            raise SystemExit(f"bench: {self.tree} is already mounted; run: fusermount3 -u {self.tree}")
        fd, self.stats_path = tempfile.mkstemp(prefix="latfs-", suffix=".json", dir=os.path.join(OUT, "tmp"))
        os.close(fd)
        os.unlink(self.stats_path)
        self.errf = tempfile.TemporaryFile(mode="w+")
        cmd = [LATFS, "-f", f"--delay-us={self.delay_us}", f"--read-delay-us={self.read_delay_us}",
               f"--stats={self.stats_path}", *self.extra, self.tree, self.tree]
        with open(MOUNTS_FILE, "a") as f:
            f.write(self.tree + "\n")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=self.errf)
        deadline = time.monotonic() + 10
        while not self._mounted():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.errf.seek(0)
                raise SystemExit(f"bench: latfs did not mount {self.tree}: {self.errf.read().strip()}")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc):
        self.unmount()
        return False

    def snapshot(self):
        """The counters so far (latfs writes them on SIGUSR1)."""
        if os.path.exists(self.stats_path):
            os.unlink(self.stats_path)
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 10
        while not os.path.exists(self.stats_path):
            if time.monotonic() > deadline:
                raise SystemExit("bench: latfs wrote no snapshot on SIGUSR1")
            time.sleep(0.005)
        with open(self.stats_path) as f:
            snap = json.load(f)
        os.unlink(self.stats_path)
        return snap

    def unmount(self):
        if self.proc is None:
            return
        r = subprocess.run(["fusermount3", "-u", self.tree], stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            # busy (a killed run left a process inside): detach lazily
            subprocess.run(["fusermount3", "-u", "-z", self.tree], stderr=subprocess.DEVNULL)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None
        try:
            with open(MOUNTS_FILE) as f:
                rest = [m for m in f.read().split("\n") if m and m != self.tree]
            with open(MOUNTS_FILE, "w") as f:
                f.write("".join(m + "\n" for m in rest))
        except FileNotFoundError:
            pass
        if os.path.exists(self.stats_path):
            with open(self.stats_path) as f:
                self.stats = json.load(f)
            os.unlink(self.stats_path)
        else:
            self.errf.seek(0)
            raise SystemExit(f"bench: latfs wrote no stats for {self.tree}: {self.errf.read().strip()}")


# ---------------------------------------------------------------- running programs

_children = set()


def command(man, prog):
    p = man["programs"][prog]
    return [man["python_exe"], "-I", p] if prog.startswith("python") else [p]


def start_wave(cmd, n):
    """Start n copies of cmd at once; return (wall seconds, per-process seconds)."""
    if not cmd[0].startswith("/"):
        exe = shutil.which(cmd[0], path=ENV["PATH"])
        if not exe:
            raise SystemExit(f"bench: {cmd[0]} not found")
        cmd = [exe] + cmd[1:]
    devnull = os.open(os.devnull, os.O_WRONLY)
    errs = []
    pids = {}
    t0 = time.perf_counter()
    try:
        for _ in range(n):
            ef = tempfile.TemporaryFile()
            errs.append(ef)
            fa = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, ef.fileno(), 2)]
            pid = os.posix_spawn(cmd[0], cmd, ENV, file_actions=fa)
            _children.add(pid)
            pids[pid] = ef
        ends = []
        while pids:
            pid, status = os.waitpid(-1, 0)
            if pid not in pids:
                continue
            ends.append(time.perf_counter() - t0)
            ef = pids.pop(pid)
            _children.discard(pid)
            if os.waitstatus_to_exitcode(status) != 0:
                ef.seek(0)
                raise SystemExit(f"bench: {cmd[-1]} exited {os.waitstatus_to_exitcode(status)}: "
                                 f"{ef.read().decode(errors='replace')[:400]}")
    finally:
        os.close(devnull)
        for ef in errs:
            ef.close()
    return ends[-1], sum(ends) / len(ends)


def measure(cmd, procs, budget=4.0, max_reps=5):
    """Repeat a wave until ~budget seconds are spent (1 rep for slow cells)."""
    walls, means = [], []
    spent = 0.0
    while len(walls) < max_reps and (not walls or spent + walls[-1] <= budget):
        w, m = start_wave(cmd, procs)
        walls.append(w)
        means.append(m)
        spent += w
    return {"wall_s": statistics.median(walls), "walls_s": [round(w, 4) for w in walls],
            "mean_per_process_s": statistics.median(means), "reps": len(walls)}


# ---------------------------------------------------------------- strace vs latfs counters

LINE = re.compile(r'^(\d+)\s+(.*)$')
CALL = re.compile(r'^([a-z0-9_]+)\((.*)\)\s+=\s+(-?\d+|\?|0x[0-9a-f]+)(?:\s+([A-Z0-9_]+))?')
STR = re.compile(r'"((?:[^"\\]|\\.)*)"')
PATH_CALLS = {  # syscall: index of the path among the string arguments, and whether it follows the last symlink
    "execve": True, "open": True, "openat": True, "stat": True, "lstat": False, "newfstatat": None,
    "statx": None, "access": True, "faccessat": True, "faccessat2": True, "readlink": False,
    "readlinkat": False, "getdents64": None,
}


def parse_strace(path):
    """Parse `strace -f -C -o path` output: the syscall lines and the -C summary table."""
    calls = []
    summary = {}
    pending = {}
    in_summary = False
    with open(path, errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            if line.startswith("% time"):
                in_summary = True
                continue
            if in_summary:
                parts = line.split()
                if len(parts) >= 5 and parts[0][0].isdigit():
                    name = parts[-1]
                    errors = int(parts[4]) if len(parts) == 6 else 0
                    summary[name] = {"calls": int(parts[3]), "errors": errors}
                continue
            m = LINE.match(line)
            if not m:
                continue
            pid, rest = m.groups()
            if rest.endswith("<unfinished ...>"):
                pending[pid] = rest[: -len("<unfinished ...>")].rstrip()
                continue
            if rest.startswith("<... "):
                head = pending.pop(pid, "")
                rest = head + rest.split("resumed>", 1)[1]
            c = CALL.match(rest)
            if c:
                calls.append((int(pid), c.group(1), c.group(2), c.group(3), c.group(4)))
    return calls, summary


def unescape(s):
    return s.encode("latin-1", "backslashescape").decode("unicode_escape").encode("latin-1").decode("utf-8", "replace")


def predict(calls, mnt):
    """Predict latfs's counters from a syscall log: which path walks reach the mount.

    With entry/attr/negative timeouts of 0 every component of every walk below the
    mount root is a LOOKUP; the first missing component ends the walk (one miss);
    a symlink costs a READLINK and a walk of its target; `..` costs nothing.
    """
    pred = {"lookup": 0, "lookup_miss": 0, "readlink": 0, "open": 0, "opendir": 0}
    on_mount = {"calls": 0, "failed": 0}
    other_fd = 0

    def walk(path, follow_last):
        # returns the final real path (or None if missing) and updates pred
        assert path.startswith(mnt + "/") or path == mnt
        comps = [c for c in path[len(mnt):].split("/") if c not in ("", ".")]
        cur = mnt
        depth = 0
        while comps:
            c = comps.pop(0)
            if c == "..":
                if cur != mnt:
                    cur = os.path.dirname(cur)
                continue
            pred["lookup"] += 1
            p = os.path.join(cur, c)
            if not os.path.lexists(p):
                pred["lookup_miss"] += 1
                return None
            if os.path.islink(p) and (comps or follow_last):
                pred["readlink"] += 1
                depth += 1
                if depth > 40:
                    return None
                t = os.readlink(p)
                if t.startswith("/"):
                    if not (t == mnt or t.startswith(mnt + "/")):
                        return "outside"
                    cur = mnt
                    t = t[len(mnt):]
                comps = [x for x in t.split("/") if x not in ("", ".")] + comps
                continue
            cur = p
        return cur

    for pid, name, args, ret, err in calls:
        if name not in PATH_CALLS:
            continue
        strs = STR.findall(args)
        if not strs:
            continue
        path = unescape(strs[0])
        if name in ("newfstatat", "statx", "openat", "faccessat", "faccessat2", "readlinkat"):
            dirfd = args.split(",", 1)[0].strip()
            if path == "" and "AT_EMPTY_PATH" in args:
                continue  # fstat of an open file: no walk
            if dirfd != "AT_FDCWD" and not path.startswith("/"):
                other_fd += 1
                continue
        if not path.startswith("/"):
            path = os.path.join("/", path)  # programs run with cwd /
        if not (path == mnt or path.startswith(mnt + "/")):
            continue
        follow = PATH_CALLS[name]
        if follow is None:
            follow = "AT_SYMLINK_NOFOLLOW" not in args
        on_mount["calls"] += 1
        failed = ret.startswith("-")
        on_mount["failed"] += failed
        final = walk(path, follow)
        if not failed and final and final != "outside":
            if name in ("open", "openat", "execve"):
                if os.path.isdir(final):
                    pred["opendir"] += 1
                else:
                    pred["open"] += 1
    return pred, on_mount, other_fd


def count_check(man, prog, tmpdir):
    """Count the program's file operations three ways and check that they agree.

    1. `strace -f -C` on latfs (no delay): the -C summary (what `strace -f -c`
       prints) and the syscall log; the log's path walks below the mount predict
       latfs's LOOKUP/READLINK/OPEN counters (see predict()).
    2. latfs's counters for that traced run: the prediction plus strace's own
       stat() of the program path (strace checks the file before exec'ing it).
    3. latfs's counters for one untraced start: exactly the prediction.
    """
    logf = os.path.join(tmpdir, f"strace-{prog}.txt")
    cmd = command(man, prog)
    with Mount(man["tree"], 0) as traced:
        r = subprocess.run(["strace", "-f", "-C", "-o", logf] + cmd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=ENV, cwd="/")
    if r.returncode != 0:
        raise SystemExit(f"bench: strace {prog} failed: {r.stderr[-400:]}")
    if r.stdout != man["expected_output"]:
        raise SystemExit(f"bench: {prog} under strace printed {r.stdout!r}")
    with Mount(man["tree"], 0) as untraced:
        u = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV, cwd="/")
    if u.returncode != 0 or u.stdout != man["expected_output"]:
        raise SystemExit(f"bench: {prog} printed {u.stdout!r} (exit {u.returncode}): {u.stderr[-300:]}")
    calls, summary = parse_strace(logf)
    os.unlink(logf)
    pred, on_mount, other_fd = predict(calls, man["tree"])
    own, _, _ = predict([(0, "stat", f'"{cmd[0]}", 0x0', "0", None)], man["tree"])
    # the log must hold what the -C summary counted
    parsed = {}
    for _, name, _, ret, _ in calls:
        d = parsed.setdefault(name, {"calls": 0, "errors": 0})
        d["calls"] += 1
        d["errors"] += ret.startswith("-")
    file_calls = ("openat", "newfstatat", "statx", "access", "readlink", "execve", "stat", "lstat", "open")
    log_vs_c = all(parsed.get(k) == summary.get(k) for k in file_calls)
    checks = {}
    for k in ("lookup", "lookup_miss", "readlink", "open", "opendir"):
        checks[k] = {"strace": pred[k], "latfs": untraced.stats["ops"].get(k, 0),
                     "strace_plus_own": pred[k] + own[k], "latfs_traced": traced.stats["ops"].get(k, 0)}
    agree = log_vs_c and all(v["strace"] == v["latfs"] and v["strace_plus_own"] == v["latfs_traced"]
                             for v in checks.values())
    return {
        "program": prog,
        "strace_c": {k: summary[k] for k in file_calls if k in summary},
        "strace_c_total": summary.get("total", {}),
        "path_calls_on_mount": on_mount,
        "unpredicted_dirfd_calls": other_fd,
        "strace_own_ops": own,
        "checks": checks,
        "latfs_ops_untraced": untraced.stats["ops"],
        "latfs_ops_traced": traced.stats["ops"],
        "log_matches_summary": log_vs_c,
        "agree": agree,
    }


# ---------------------------------------------------------------- sections

def machine():
    def first(cmd):
        try:
            return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True).stdout.splitlines()[0].strip()
        except (OSError, IndexError):
            return None
    cpu = None
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "glibc": " ".join(platform.libc_ver()), "ldd": first(["ldd", "--version"]),
            "fuse3": first(["pkg-config", "--modversion", "fuse3"]), "patchelf": first(["patchelf", "--version"]),
            "strace": first(["strace", "-V"]), "gcc": first(["gcc", "--version"]), "python": sys.version.split()[0]}


def busy_cpu_seconds():
    """CPU time all CPUs spent busy since boot (/proc/stat), in seconds."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(v[:8]) - v[3] - v[4]) / hz  # all but idle and iowait (guest time is inside user)


def own_cpu_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def build(libs, utils, args, python):
    if python:
        import sysconfig
        h = os.path.join(sysconfig.get_paths()["include"], "Python.h")
        if not os.path.exists(h):
            log(f"gen: Python variant skipped: {h} missing (install python3-dev)")
            python = False
    a = genmod.parse_args(["--libs", str(libs), "--utils", str(utils), "--funcs", str(args.funcs),
                           "--seed", str(args.seed), "--path-kind", args.path_kind] + (["--python"] if python else []))
    man = genmod.generate(a)
    if "fixes" not in man:
        man = fixmod.fix(os.path.join(man["out"], "manifest.json"))
    else:
        log(f"fix: copies already made ({', '.join(sorted(man['programs']))})")
    return man


FS_VARIANTS = {
    # label: latfs options (the default is no caching, many threads)
    "nocache": [],
    "poscache": ["--cache-positive"],
    "poscache+negcache": ["--cache-positive", "--cache-negative"],
    "1thread": ["-s"],
}


def section_startup(man, programs, delays, procs, results, label, fs="nocache"):
    """(b) start-up wall time on latfs: programs x delays x concurrent processes.

    With kernel caching on, the first wave (cold caches) is reported apart
    (cold_wall_s, cold_ops_per_start) and the median is over the warm waves.
    """
    rows = []
    caching = any(o.startswith("--cache") for o in FS_VARIANTS[fs])
    for d in delays:
        for prog in programs:
            for p in procs:
                cold = None
                with Mount(man["tree"], d, extra=FS_VARIANTS[fs]) as m:
                    calibrated = _calibrate(man, d, p) if fs == "nocache" and d > 0 else None
                    # the calibration's own operations are not the program's
                    before = m.snapshot()["ops"] if calibrated else {}
                    if caching:
                        cw, _ = start_wave(command(man, prog), p)
                        cold = {"wall_s": round(cw, 4), "ops": m.snapshot()["ops"]}
                        before = cold["ops"]
                    r = measure(command(man, prog), p)
                starts = p * r["reps"]
                ops = {k: v - before.get(k, 0) for k, v in m.stats["ops"].items()}
                ops = {k: round(v / starts, 1) for k, v in ops.items() if v}
                row = {"size": label, "fs": fs, "program": prog, "delay_us": d, "procs": p, **r,
                       "ops_per_start": ops, "mean_actual_delay_us": m.stats["mean_actual_delay_us"]}
                if calibrated:
                    row["calibrated"] = calibrated
                if cold:
                    row["cold_wall_s"] = cold["wall_s"]
                    row["cold_ops_per_start"] = {k: round(v / p, 1) for k, v in cold["ops"].items() if v}
                rows.append(row)
                log(f"  {label:>6} {fs:<17} {prog:<22} {d:>5} us  P={p}  wall {r['wall_s']:8.3f} s"
                    f"  (reps {r['reps']})  lookups/start {ops.get('lookup', 0):>9}"
                    + (f"  [cold: {cold['wall_s']:.3f} s]" if cold else ""))
    results.setdefault("startup", []).extend(rows)
    return rows


def _calibrate(man, delay_us, procs):
    """`loadprobe calibrate` on the mounted latfs, in every cell of (b) right
    before its measurement (latfs's time per operation drifts by ~10 % over
    minutes on this machine): the per-operation latency and open overhead a
    user would measure on the file system before predicting (fresh-name
    lookups and loads below the tree, `procs` threads at once). None without a
    loadprobe binary."""
    lp = _loadprobe_binary()
    if not lp:
        return None
    # the tree (its files are loaded below it, breadth first), and library
    # directories for the other probing threads (a job's processes search
    # different directories at any moment)
    probe_dirs = [man["tree"]] + [os.path.join(man["tree"], e) for e in sorted(os.listdir(man["tree"]))
                                  if e.startswith("mod")][:procs - 1]
    r = subprocess.run([lp, "calibrate", "--json", "--fs", "fuse", "--concurrency", str(procs),
                        "--count", str(max(400, 2000 if delay_us < 1000 else 400 * procs)), *probe_dirs],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        raise SystemExit(f"bench: loadprobe calibrate failed: {r.stderr.strip()}")
    c = json.loads(r.stdout)
    cal = {"flags": c["flags"], "miss_median_us": round(c["miss"]["medianSeconds"] * 1e6, 1),
           "miss_p90_us": round(c["miss"]["p90Seconds"] * 1e6, 1), "calls": c["miss"]["calls"],
           "load_median_us": round(c["load"]["medianSeconds"] * 1e6, 1), "loads": c["load"]["calls"],
           "concurrency": procs}
    log(f"  calibrate {delay_us:>5} us, {procs} at once: lookup miss median {cal['miss_median_us']} us,"
        f" load {cal['load_median_us']} us -> {' '.join(c['flags'])}")
    return cal


def section_counts(man, programs, results, label, tmpdir):
    out = []
    for prog in programs:
        c = count_check(man, prog, tmpdir)
        c["size"] = label
        out.append(c)
        ch = c["checks"]
        log(f"  {label:>8} {prog:<22} lookups strace {ch['lookup']['strace']:>8} latfs {ch['lookup']['latfs']:>8}"
            f" | misses {ch['lookup_miss']['strace']:>8} {ch['lookup_miss']['latfs']:>8}"
            f" | opens {ch['open']['strace']:>4} {ch['open']['latfs']:>4}  {'agree' if c['agree'] else 'DISAGREE'}")
    results.setdefault("counts", []).extend(out)
    return all(c["agree"] for c in out)


def section_tracer_overhead(man, args, results):
    """(a) HOOK: tracer overhead on the recorded program, local disk, ratios in one run."""
    prog = man["programs"]["app"]
    if not args.loadprobe:
        reason = "no loadprobe binary given (pass --loadprobe PATH)"
        log(f"(a) tracer overhead: skipped: {reason}")
        results["tracer_overhead"] = {"skipped": reason}
        return
    lp = os.path.abspath(args.loadprobe)
    if not os.access(lp, os.X_OK):
        reason = f"{lp} is not executable"
        log(f"(a) tracer overhead: skipped: {reason}")
        results["tracer_overhead"] = {"skipped": reason}
        return
    tdir = tempfile.mkdtemp(dir=os.path.join(OUT, "tmp"))
    trace = os.path.join(tdir, "t.lpt")
    modes = [
        ("untraced", [prog]),
        ("loadprobe --no-ptrace", [lp, "--no-ptrace", "-q", "-o", trace, "--", prog]),
        ("loadprobe", [lp, "-q", "-o", trace, "--", prog]),
        ("strace -f -o /dev/null", ["strace", "-f", "-o", "/dev/null", prog]),
        ("strace --seccomp-bpf -f -e trace=%file -o /dev/null",
         ["strace", "--seccomp-bpf", "-f", "-e", "trace=%file", "-o", "/dev/null", prog]),
    ]
    rows = []
    base = None
    log(f"(a) tracer overhead on {prog} (local disk):")
    for name, cmd in modes:
        try:
            r = measure(cmd, 1, budget=3.0)
        except SystemExit as e:
            rows.append({"mode": name, "error": str(e)})
            log(f"  {name:<52} failed: {e}")
            continue
        base = base or r["wall_s"]
        rows.append({"mode": name, **r, "ratio": round(r["wall_s"] / base, 2)})
        log(f"  {name:<52} {r['wall_s']:8.3f} s  x{r['wall_s'] / base:6.1f}")
    shutil.rmtree(tdir, ignore_errors=True)
    results["tracer_overhead"] = {"program": prog, "rows": rows}


def _loadprobe_binary():
    """The loadprobe to use for (c)/(d): --loadprobe, $LOADPROBE, or a release build in the repo."""
    if "--loadprobe" in sys.argv[:-1]:
        return os.path.abspath(sys.argv[sys.argv.index("--loadprobe") + 1])
    for a in sys.argv:
        if a.startswith("--loadprobe="):
            return os.path.abspath(a.split("=", 1)[1])
    if os.environ.get("LOADPROBE"):
        return os.path.abspath(os.environ["LOADPROBE"])
    root = os.path.dirname(os.path.dirname(HERE))
    for cand in (".build/release/loadprobe", ".build-report/release/loadprobe"):
        if os.access(os.path.join(root, cand), os.X_OK):
            return os.path.join(root, cand)
    return None


def _record(lp, prog, trace):
    """Record one start of prog on local disk (no latfs), cwd /, the driver's environment."""
    r = subprocess.run([lp, "-q", "-o", trace, "--", prog], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       text=True, env=ENV, cwd="/")
    if not os.path.exists(trace):
        raise SystemExit(f"bench: loadprobe did not record {prog}: {r.stderr[-300:]}")
    return trace


def _timed(cmd):
    """Run cmd; return (wall seconds, peak RSS MiB of the child)."""
    t = time.perf_counter()
    pid = os.posix_spawn(cmd[0], cmd, dict(os.environ), file_actions=[
        (os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
    _, status, ru = os.wait4(pid, 0)
    wall = time.perf_counter() - t
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:3])} … exited {os.waitstatus_to_exitcode(status)}")
    return wall, ru.ru_maxrss / 1024


def section_report_speed(results, jobs=(64, 512)):
    """(c) report speed and peak memory: one trace of each program size, and job
    directories of 64 and 512 traces (copies of the smallest program's trace).
    Alone: bench.py --report-speed TREE… [--report-jobs 64,512] --loadprobe PATH."""
    lp = _loadprobe_binary()
    if not lp:
        results["report_speed"] = {"skipped": "no loadprobe binary (pass --loadprobe PATH)"}
        log("(c) report speed: skipped: no loadprobe binary (pass --loadprobe PATH)")
        return
    tdir = tempfile.mkdtemp(dir=os.path.join(OUT, "tmp"))
    rows = []
    log(f"(c) report speed ({lp}):")
    try:
        sizes = sorted(results["programs"].items(), key=lambda kv: kv[1]["params"]["libs"])
        traces = {}
        for label, info in sizes:
            trace = _record(lp, os.path.join(info["tree"], "bin", "app"), os.path.join(tdir, f"{label}.lpt"))
            traces[label] = trace
            for fmt in ("text", "json"):
                wall, rss = _timed([lp, "report", "--format", fmt, trace, "--remote", info["tree"]])
                row = {"traces": 1, "program": f"{label} app", "format": fmt, "trace_bytes": os.path.getsize(trace),
                       "wall_s": round(wall, 3), "peak_rss_mib": round(rss, 1)}
                rows.append(row)
                log(f"  {label} app, 1 trace ({row['trace_bytes'] / 1e6:.1f} MB), {fmt:<4}: {wall:7.3f} s, peak {rss:7.1f} MiB")
        small_label, small_info = sizes[0]
        for n in jobs:
            job = os.path.join(tdir, f"job{n}")
            os.makedirs(job)
            for i in range(n):
                os.link(traces[small_label], os.path.join(job, f"{i:04d}.lpt"))
            wall, rss = _timed([lp, "report", "--format", "json", job, "--remote", small_info["tree"], "--nodes", str(max(1, n // 32))])
            rows.append({"traces": n, "program": f"{small_label} app", "format": "json",
                         "trace_bytes": os.path.getsize(traces[small_label]) * n, "wall_s": round(wall, 3),
                         "peak_rss_mib": round(rss, 1)})
            log(f"  {small_label} app, job of {n} traces: {wall:7.3f} s, peak {rss:7.1f} MiB")
    finally:
        shutil.rmtree(tdir, ignore_errors=True)
    results["report_speed"] = {"loadprobe": lp, "rows": rows}


def section_model_accuracy(results):
    """(d) loadprobe's predictions next to the measurements: the shrinkwrap and view
    scenarios' operation counts (predicted from a trace of `app` recorded on local
    disk) against latfs's counters for the real fixed programs (counts section),
    and the predicted start-up times against (b)'s wall times, the way a user
    predicts before moving to a network file system: `--remote` names the tree,
    `--fs fuse --latency all=<delay>` gives the file system's per-operation delay."""
    lp = _loadprobe_binary()
    if not lp:
        results["model_accuracy"] = {"skipped": "no loadprobe binary (pass --loadprobe PATH)"}
        log("(d) model accuracy: skipped: no loadprobe binary (pass --loadprobe PATH)")
        return
    tdir = tempfile.mkdtemp(dir=os.path.join(OUT, "tmp"))
    scen_of = {"app": "recorded", "app.shrinkwrap": "shrinkwrap", "app.view": "view",
               "app-dlopen": "recorded", "app-dlopen.shrinkwrap": "shrinkwrap", "app-dlopen.view": "view"}
    counts, times = [], []
    log(f"(d) model accuracy ({lp}):")

    def predict(trace, tree, *extra):
        r = subprocess.run([lp, "report", "--format", "json", trace, "--remote", tree, "--fs", "fuse", *extra],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            raise SystemExit(f"bench: loadprobe report failed: {r.stderr[-300:]}")
        return {s["name"]: s for s in json.loads(r.stdout)["scenarios"]}

    try:
        for label, info in results["programs"].items():
            tree = info["tree"]
            for base in ("app", "app-dlopen"):
                if not os.path.exists(os.path.join(tree, "bin", base)):
                    continue
                trace = _record(lp, os.path.join(tree, "bin", base), os.path.join(tdir, f"{label}-{base}.lpt"))
                lift = ["--lift-dlopen"] if base == "app-dlopen" else []
                pred = predict(trace, tree, "--latency", "all=0", *lift)
                for c in results.get("counts", []):
                    if c["size"] != label or scen_of.get(c["program"]) is None or not c["program"].startswith(base + ".") and c["program"] != base:
                        continue
                    s = pred[scen_of[c["program"]]]
                    k = s["serverOperationsByKind"]
                    lat = c["latfs_ops_untraced"]
                    p_ops = {"lookup": k["lookup"] + k["lookupMiss"], "lookup_miss": k["lookupMiss"], "getattr": k["getattr"],
                             "open": k["open"], "readlink": k["readlink"], "read": k["read"]}
                    p_total = sum(v for key, v in p_ops.items() if key != "lookup_miss")
                    m_total = sum(lat.get(key, 0) for key in ("lookup", "getattr", "open", "readlink", "read"))
                    row = {"size": label, "trace": base, "scenario": scen_of[c["program"]], "program": c["program"],
                           "predicted": p_ops, "measured": {key: lat.get(key, 0) for key in p_ops},
                           "predicted_total": p_total, "measured_total": m_total,
                           "error_pct": round((p_total - m_total) / m_total * 100, 2) if m_total else None}
                    counts.append(row)
                    log(f"  {label:>5} {c['program']:<22} ({scen_of[c['program']]:>10} from {base}): server ops predicted "
                        f"{p_total:>8} latfs {m_total:>8} ({row['error_pct']:+.2f}%)  lookups {p_ops['lookup']}/{lat.get('lookup', 0)}"
                        f"  misses {p_ops['lookup_miss']}/{lat.get('lookup_miss', 0)}")
                if base != "app":
                    continue
                rows = [r for r in results.get("startup", []) if r["size"] == label and r["fs"] == "nocache"
                        and r["program"] in ("app", "app.shrinkwrap", "app.view") and r["delay_us"] > 0]
                for d in sorted({r["delay_us"] for r in rows}):
                    for procs in sorted({r["procs"] for r in rows if r["delay_us"] == d}):
                        shape = ["--procs", str(procs), "--cores", str(os.cpu_count() or 1)]
                        pred = predict(trace, tree, "--latency", f"all={d}us", *shape)
                        for r in rows:
                            if r["delay_us"] != d or r["procs"] != procs:
                                continue
                            # the same prediction with the latency loadprobe calibrate measured on the
                            # mounted file system right before the measurement (what a user measures
                            # before predicting)
                            cal = r.get("calibrated")
                            pred_cal = predict(trace, tree, *cal["flags"], *shape) if cal else None
                            # and with the delay latfs itself measured it served (its sleeps overshoot
                            # the configured delay): the file system's own delay per operation
                            served = r.get("mean_actual_delay_us")
                            pred_srv = predict(trace, tree, "--latency", f"all={served}us", *shape) if served else None
                            s = pred[scen_of[r["program"]]]
                            err = (s["jobSeconds"] - r["wall_s"]) / r["wall_s"] * 100
                            row = {"size": label, "program": r["program"], "delay_us": d, "procs": procs,
                                   "predicted_s": s["jobSeconds"], "measured_s": r["wall_s"],
                                   "served_delay_us": r.get("mean_actual_delay_us"), "error_pct": round(err, 1)}
                            line = (f"  {label:>5} {r['program']:<16} {d:>5} us P={procs}: predicted {s['jobSeconds']:8.3f} s"
                                    f"  measured {r['wall_s']:8.3f} s  ({err:+.1f}%)")
                            if pred_srv:
                                sv = pred_srv[scen_of[r["program"]]]
                                err_s = (sv["jobSeconds"] - r["wall_s"]) / r["wall_s"] * 100
                                row.update({"predicted_served_s": sv["jobSeconds"], "error_served_pct": round(err_s, 1)})
                                line += f"  served delay {served:.0f} us: {sv['jobSeconds']:8.3f} s ({err_s:+.1f}%)"
                            if pred_cal:
                                sc = pred_cal[scen_of[r["program"]]]
                                err_c = (sc["jobSeconds"] - r["wall_s"]) / r["wall_s"] * 100
                                row.update({"calibrated_flags": " ".join(cal["flags"]), "predicted_calibrated_s": sc["jobSeconds"],
                                            "error_calibrated_pct": round(err_c, 1)})
                                line += f"  calibrated ({' '.join(cal['flags'])}): {sc['jobSeconds']:8.3f} s ({err_c:+.1f}%)"
                            times.append(row)
                            log(line)
    finally:
        shutil.rmtree(tdir, ignore_errors=True)
    results["model_accuracy"] = {"loadprobe": lp, "counts": counts, "times": times}


# ---------------------------------------------------------------- table

MAIN = ["app", "app.shrinkwrap", "app.view"]


def table(results):
    rows = results.get("startup", [])
    by = {(r["size"], r["fs"], r["delay_us"], r["procs"], r["program"]): r for r in rows}
    keys = []
    for r in rows:
        k = (r["size"], r["fs"], r["delay_us"], r["procs"])
        if r["program"] in MAIN and k not in keys:
            keys.append(k)
    lines = ["| size | latfs | delay/op | procs | app (s) | shrinkwrap (s) | view (s) | shrinkwrap speed-up | view speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for k in keys:
        w = {p: by[k + (p,)]["wall_s"] if k + (p,) in by else None for p in MAIN}
        cell = lambda v: f"{v:.3f}" if v is not None else ""
        sp = lambda p: f"{w['app'] / w[p]:.1f}x" if w["app"] and w[p] else ""
        lines.append(f"| {k[0]} | {k[1]} | {k[2]} us | {k[3]} | {cell(w['app'])} | {cell(w['app.shrinkwrap'])} | "
                     f"{cell(w['app.view'])} | {sp('app.shrinkwrap')} | {sp('app.view')} |")
        if k + ("app",) in by and "cold_wall_s" in by[k + ("app",)]:
            c = {p: by[k + (p,)].get("cold_wall_s") if k + (p,) in by else None for p in MAIN}
            spc = lambda p: f"{c['app'] / c[p]:.1f}x" if c["app"] and c[p] else ""
            lines.append(f"| {k[0]} | {k[1]}, first start | {k[2]} us | {k[3]} | {cell(c['app'])} | "
                         f"{cell(c['app.shrinkwrap'])} | {cell(c['app.view'])} | {spc('app.shrinkwrap')} | {spc('app.view')} |")
    other = [r for r in rows if r["program"] not in MAIN]
    if other:
        lines += ["", "| size | program | latfs | delay/op | procs | wall (s) | lookups/start | misses/start |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in other:
            o = r["ops_per_start"]
            lines.append(f"| {r['size']} | {r['program']} | {r['fs']} | {r['delay_us']} us | {r['procs']} | "
                         f"{r['wall_s']:.3f} | {o.get('lookup', 0):g} | {o.get('lookup_miss', 0):g} |")
    return "\n".join(lines)


def count_table(results):
    lines = ["| size | program | strace -c openat (err) | stat (err) | lookups strace/latfs | misses strace/latfs | readlink | opens | agree |",
             "|---|---|---|---|---|---|---|---|---|"]
    for c in results.get("counts", []):
        s = c["strace_c"]
        o = s.get("openat", {"calls": 0, "errors": 0})
        st = s.get("newfstatat", {"calls": 0, "errors": 0})
        ch = c["checks"]
        lines.append(f"| {c['size']} | {c['program']} | {o['calls']} ({o['errors']}) | {st['calls']} ({st['errors']}) | "
                     f"{ch['lookup']['strace']}/{ch['lookup']['latfs']} | {ch['lookup_miss']['strace']}/{ch['lookup_miss']['latfs']} | "
                     f"{ch['readlink']['strace']}/{ch['readlink']['latfs']} | {ch['open']['strace']}/{ch['open']['latfs']} | "
                     f"{'yes' if c['agree'] else 'NO'} |")
    return "\n".join(lines)


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI size: 50 libraries, 1-2 processes")
    ap.add_argument("--smoke", action="store_true", help="smallest: generate, mount, one measurement, counts, unmount")
    ap.add_argument("--loadprobe", metavar="PATH", help="loadprobe binary: enables (a) tracer overhead")
    ap.add_argument("--libs", type=int, help="modules of the matrix program")
    ap.add_argument("--utils", type=int)
    ap.add_argument("--funcs", type=int, default=20)
    ap.add_argument("--big", type=int, help="modules of the paper-scale program (0: skip)")
    ap.add_argument("--delays", help="comma-separated delays in us, e.g. 0,100,1000")
    ap.add_argument("--procs", help="comma-separated concurrent processes, e.g. 1,2,4,8")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--path-kind", choices=["rpath", "runpath"], default="rpath")
    ap.add_argument("--no-python", action="store_true")
    ap.add_argument("--no-extras", action="store_true",
                    help="only app/shrinkwrap/view: no tracer overhead (a), no variants, no caching file systems")
    ap.add_argument("--report-speed", metavar="TREE", nargs="+",
                    help="run only (c) report speed on these generated programs (out/<name>, or its tree/), then exit")
    ap.add_argument("--report-jobs", default="64,512", metavar="N,N",
                    help="job sizes (traces) for (c), comma-separated; empty: none")
    args = ap.parse_args()
    jobs = tuple(int(x) for x in args.report_jobs.split(",") if x.strip())

    if args.report_speed:
        os.makedirs(os.path.join(OUT, "tmp"), exist_ok=True)
        os.makedirs(os.path.join(OUT, "results"), exist_ok=True)
        results = {"format": "pynamic-like-results/1", "size": "report-speed", "machine": machine(),
                   "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                   "programs": {}}
        cpu0, own0 = busy_cpu_seconds(), own_cpu_seconds()
        t0 = time.monotonic()
        for t in args.report_speed:
            t = os.path.abspath(t)
            base = os.path.dirname(t) if os.path.basename(t) == "tree" else t
            man_path = os.path.join(base, "manifest.json")
            if not os.path.exists(man_path):
                raise SystemExit(f"bench: {t}: no manifest.json (give a generated program: out/<name>)")
            with open(man_path) as fh:
                man = json.load(fh)
            results["programs"][f"n{man['params']['libs']}"] = {"params": man["params"], "tree": man["tree"]}
        section_report_speed(results, jobs)
        results["elapsed_s"] = round(time.monotonic() - t0, 1)
        # other work on the machine skews the timings: how much CPU did it take?
        results["other_cpu_s"] = round(max(0.0, (busy_cpu_seconds() - cpu0) - (own_cpu_seconds() - own0)), 1)
        log(f"other work on the machine during the run: {results['other_cpu_s']} s of CPU")
        out = os.path.join(OUT, "results", "report-speed.json")
        with open(out, "w") as fh:
            json.dump(results, fh, indent=1)
        log(f"wrote {out}")
        return 0

    size = "smoke" if args.smoke else "quick" if args.quick else "default"
    cfg = dict(SIZES[size])
    if args.libs:
        cfg["libs"] = args.libs
    if args.utils is not None:
        cfg["utils"] = args.utils
    if args.big is not None:
        cfg["big"] = args.big
    if args.delays:
        cfg["delays"] = [int(x) for x in args.delays.split(",")]
    if args.procs:
        cfg["procs"] = [int(x) for x in args.procs.split(",")]
    if args.no_python:
        cfg["python"] = False
    if args.no_extras:
        cfg["variants"] = False
        cfg["fs_extras"] = []

    os.makedirs(os.path.join(OUT, "tmp"), exist_ok=True)
    os.makedirs(os.path.join(OUT, "results"), exist_ok=True)
    if not os.access(LATFS, os.X_OK):
        raise SystemExit(f"bench: {LATFS} missing: run make -C {HERE}")

    t_start = time.monotonic()
    cpu0, own0 = busy_cpu_seconds(), own_cpu_seconds()
    results = {"format": "pynamic-like-results/1", "size": size, "config": cfg, "machine": machine(),
               "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
               "programs": {}}
    tmpdir = tempfile.mkdtemp(dir=os.path.join(OUT, "tmp"))
    ok = True

    log(f"== build ({size}: {cfg['libs']} modules, {cfg['utils']} utilities)")
    man = build(cfg["libs"], cfg["utils"], args, cfg["python"])
    label = f"n{cfg['libs']}"
    results["programs"][label] = {k: man[k] for k in ("params", "build_seconds", "jobs", "tree_bytes", "tree_files",
                                                     "fixes", "fix_seconds", "tree")}
    if not args.no_extras:
        section_tracer_overhead(man, args, results)

    progs = list(cfg["programs"])
    extra = []
    if cfg["variants"]:
        extra = ["app-dlopen", "app-dlopen.shrinkwrap", "app-dlopen.view"]
        if cfg["python"]:
            extra += ["python", "python.view"]
    log("== counts: strace -f -C on latfs vs latfs counters (no delay)")
    ok &= section_counts(man, progs + extra, results, label, tmpdir)
    log(f"== (b) start-up on latfs ({label})")
    section_startup(man, progs, cfg["delays"], cfg["procs"], results, label)
    if extra:
        section_startup(man, extra, [max(cfg["delays"][:2])], [1], results, label)
    for fs, d, procs in cfg["fs_extras"]:
        section_startup(man, progs, [d], procs, results, label, fs=fs)

    if cfg.get("big"):
        log(f"== build paper-scale program ({cfg['big']} modules, {cfg['big_utils']} utilities)")
        big = build(cfg["big"], cfg["big_utils"], args, False)
        blabel = f"n{cfg['big']}"
        results["programs"][blabel] = {k: big[k] for k in ("params", "build_seconds", "jobs", "tree_bytes",
                                                          "tree_files", "fixes", "fix_seconds", "tree")}
        log("== counts (paper scale)")
        ok &= section_counts(big, progs, results, blabel, tmpdir)
        log(f"== (b) start-up on latfs ({blabel}, one process)")
        section_startup(big, progs, cfg["big_delays"], [1], results, blabel)

    section_report_speed(results, jobs)
    section_model_accuracy(results)

    results["elapsed_s"] = round(time.monotonic() - t_start, 1)
    # other work on the machine skews the timings: how much CPU did it take?
    busy, own = busy_cpu_seconds() - cpu0, own_cpu_seconds() - own0
    results["cpu_seconds"] = {"machine_busy": round(busy, 1), "this_run": round(own, 1),
                              "others": round(max(0.0, busy - own), 1),
                              "capacity": round(results["elapsed_s"] * (os.cpu_count() or 1), 1)}
    results["counts_agree"] = bool(ok)
    shutil.rmtree(tmpdir, ignore_errors=True)
    path = os.path.join(OUT, "results", f"{size}.json")
    with open(path, "w") as f:
        json.dump(results, f, indent=1)
    shutil.copyfile(path, os.path.join(OUT, "results", "latest.json"))
    log("")
    log(table(results))
    log("")
    log(count_table(results))
    log("")
    c = results["cpu_seconds"]
    log(f"bench: {size} run took {results['elapsed_s']} s; results in {path}")
    log(f"bench: CPU time: this run {c['this_run']} s, other work on the machine {c['others']} s, "
        f"of {c['capacity']} s available" + (" (timings skewed by other work)" if c["others"] > 0.1 * c["capacity"] else ""))
    if not ok:
        log("bench: FAILED: strace and latfs counts disagree (see the table)")
        return 1
    return 0


def _on_signal(signum, frame):
    # the first signal starts the clean-up (kill the programs, unmount); later ones
    # must not interrupt it
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    for pid in list(_children):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    raise SystemExit(f"bench: interrupted by signal {signum}")


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    sys.exit(main())
