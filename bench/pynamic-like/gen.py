#!/usr/bin/env python3
"""Generate a Pynamic-like program: many shared libraries, each in its own directory.

Deterministic from --seed: the same arguments give the same sources, the same
dependency graph and the same program output.

Layout of OUT (default out/n<N>-u<U>-m<M>-s<seed>-<kind>/):

    src/                      C sources (generated)
    tree/                     everything the programs load; the latency file
                              system is mounted over this directory
      mod0000/libmod0000.so   N module libraries, one directory each
      util000/libutil000.so   U utility libraries, one directory each
      bin/app                 links every module (DT_NEEDED) and finds them
                              through an RPATH (or RUNPATH) of N+U directories
      bin/app-dlopen          dlopen()s every module by soname, like Python
                              imports extension modules; same RPATH/RUNPATH
      py/mod0000/mod0000.so   (with --python) extension modules, one directory
      py/run.py                each, imported through a sys.path of N entries
    manifest.json             parameters, graph, build times, sizes

Every module needs --deps utility libraries; a utility may need an older one,
so modules have transitive dependencies.  Libraries carry their own RPATH (or
RUNPATH) to the directories of their direct dependencies, as Spack installs do.
All programs print the same line (a checksum over every function called), so
a fixed copy can be checked against the original.
"""
import argparse
import hashlib
import json
import os
import random
import shutil
import subprocess
import sys
import sysconfig
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
CC = os.environ.get("CC", "gcc")
MASK = 0x7FFFFFFF


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--libs", "-n", type=int, default=900, help="module libraries (default 900)")
    p.add_argument("--funcs", "-m", type=int, default=20, help="functions per library (default 20)")
    p.add_argument("--utils", "-u", type=int, default=30, help="utility libraries (default 30)")
    p.add_argument("--deps", type=int, default=2, help="utility libraries each module needs (default 2)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--path-kind", choices=["rpath", "runpath"], default="rpath",
                   help="DT_RPATH (-Wl,--disable-new-dtags) or DT_RUNPATH (default rpath)")
    p.add_argument("--shuffle-rpath", action="store_true",
                   help="list the directories in seeded random order instead of module order")
    p.add_argument("--python", action="store_true", help="also build the Python variant")
    p.add_argument("--jobs", "-j", type=int, default=os.cpu_count() or 2)
    p.add_argument("--out", help="output directory (default under bench/pynamic-like/out/)")
    p.add_argument("--force", action="store_true", help="rebuild even if OUT has a matching manifest")
    return p.parse_args(argv)


def default_out(a):
    name = f"n{a.libs}-u{a.utils}-m{a.funcs}-d{a.deps}-s{a.seed}-{a.path_kind}"
    if a.shuffle_rpath:
        name += "-shuf"
    return os.path.join(HERE, "out", name)


class Graph:
    """The dependency graph and the arithmetic every function does, from the seed."""

    def __init__(self, a):
        rng = random.Random(a.seed)
        self.n, self.u, self.m = a.libs, a.utils, a.funcs
        self.mods = [f"mod{i:04d}" for i in range(self.n)]
        self.utils = [f"util{j:03d}" for j in range(self.u)]
        # utility j may need one older utility: chains give transitive depth
        self.util_deps = {}
        for j in range(self.u):
            self.util_deps[self.utils[j]] = [self.utils[rng.randrange(j)]] if j > 0 and rng.random() < 0.6 else []
        self.mod_deps = {}
        for i in range(self.n):
            k = min(a.deps, self.u)
            self.mod_deps[self.mods[i]] = sorted(rng.sample(self.utils, k)) if k else []
        self.coef = {}
        for lib in self.utils + self.mods:
            self.coef[lib] = [(rng.randrange(1, 1000), rng.randrange(0, 1000)) for _ in range(self.m)]
        order = list(range(self.n + self.u))
        if a.shuffle_rpath:
            rng.shuffle(order)
        self.dir_order = order  # index < n: module, else utility

    def dirs(self):
        names = self.mods + self.utils
        return [names[k] for k in self.dir_order]


def c_util(g, name):
    deps = g.util_deps[name]
    out = [f"/* generated: utility library {name} */"]
    for d in deps:
        out.append(f"extern int {d}_f0(int);")
    for f, (a, b) in enumerate(g.coef[name]):
        call = f" + {deps[0]}_f0(x)" if deps and f == 0 else ""
        out.append(f"__attribute__((noinline)) int {name}_f{f}(int x) {{ return (x * {a} + {b}{call}) & {MASK}; }}")
    return "\n".join(out) + "\n"


def c_mod(g, name, python=False):
    deps = g.mod_deps[name]
    out = [f"/* generated: module library {name} */"]
    for d in deps:
        out.append(f"extern int {d}_f0(int);")
    for f, (a, b) in enumerate(g.coef[name]):
        call = f" + {deps[f % len(deps)]}_f0(x)" if deps and f < len(deps) else ""
        out.append(f"__attribute__((noinline)) int {name}_f{f}(int x) {{ return (x * {a} + {b}{call}) & {MASK}; }}")
    out.append(f"int {name}_entry(int x) {{")
    out.append("    unsigned s = 0;")
    for f in range(g.m):
        out.append(f"    s = (s * 31u + (unsigned){name}_f{f}(x + {f})) & {MASK}u;")
    out.append("    return (int)s;")
    out.append("}")
    if python:
        # the Python glue (pyglue.o, the only file that includes Python.h) makes the module
        out.append("extern void *pynamic_pyglue_module(const char *name, int (*entry)(int));")
        out.append(f'void *PyInit_{name}(void) {{ return pynamic_pyglue_module("{name}", {name}_entry); }}')
    return "\n".join(out) + "\n"


PYGLUE = r"""/* generated: builds an extension module around one entry function */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdlib.h>
#include <string.h>
typedef int (*entry_fn)(int);
static entry_fn the_entry;
static PyObject *py_entry(PyObject *self, PyObject *arg) {
    (void)self;
    long x = PyLong_AsLong(arg);
    if (x == -1 && PyErr_Occurred()) return NULL;
    return PyLong_FromLong(the_entry((int)x));
}
static PyMethodDef methods[] = {{"entry", py_entry, METH_O, NULL}, {NULL, NULL, 0, NULL}};
__attribute__((visibility("hidden"))) void *pynamic_pyglue_module(const char *name, entry_fn entry) {
    static struct PyModuleDef def;
    the_entry = entry;
    memset(&def, 0, sizeof def);
    def = (struct PyModuleDef){PyModuleDef_HEAD_INIT, name, NULL, -1, methods, NULL, NULL, NULL, NULL};
    return PyModule_Create(&def);
}
"""


def c_main(g, dlopen):
    out = ["/* generated: the program */", "#include <stdio.h>"]
    if dlopen:
        out += ["#include <dlfcn.h>", "#include <stdlib.h>", "static const char *const names[] = {"]
        out += [f'    "{m}",' for m in g.mods]
        out += ["};", "int main(void) {", "    unsigned s = 0;", "    char so[64], sym[64];",
                f"    for (int i = 0; i < {g.n}; i++) {{",
                '        snprintf(so, sizeof so, "lib%s.so", names[i]);',
                '        snprintf(sym, sizeof sym, "%s_entry", names[i]);',
                "        void *h = dlopen(so, RTLD_NOW | RTLD_LOCAL);",
                '        if (!h) { fprintf(stderr, "dlopen: %s\\n", dlerror()); return 1; }',
                "        int (*entry)(int) = (int (*)(int))dlsym(h, sym);",
                '        if (!entry) { fprintf(stderr, "dlsym: %s\\n", dlerror()); return 1; }',
                f"        s = (s * 131u + (unsigned)entry(i)) & {MASK}u;",
                "    }"]
    else:
        out += [f"extern int {m}_entry(int);" for m in g.mods]
        out += ["int main(void) {", "    unsigned s = 0;"]
        out += [f"    s = (s * 131u + (unsigned){m}_entry({i})) & {MASK}u;" for i, m in enumerate(g.mods)]
    out.append(f'    printf("pynamic-like modules=%d utils=%d checksum=%u\\n", {g.n}, {g.u}, s);')
    out += ["    return 0;", "}"]
    return "\n".join(out) + "\n"


def py_runner(g, tree):
    dirs = [os.path.join(tree, "py", m) for m in g.mods]
    return (
        "# generated: import every extension module through a long sys.path, as Pynamic does\n"
        "import importlib, sys\n"
        f"sys.path[:0] = {dirs!r}\n"
        "s = 0\n"
        f"for i in range({g.n}):\n"
        "    m = importlib.import_module('mod%04d' % i)\n"
        f"    s = (s * 131 + m.entry(i)) & {MASK}\n"
        f"print('pynamic-like modules=%d utils=%d checksum=%d' % ({g.n}, {g.u}, s))\n"
    )


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise SystemExit(f"gen: command failed ({r.returncode}): {' '.join(cmd[:8])} ...\n{r.stdout}")


def path_flags(kind, dirs):
    flags = ["-Wl,--disable-new-dtags" if kind == "rpath" else "-Wl,--enable-new-dtags"]
    if dirs:
        flags.append("-Wl,-rpath," + ":".join(dirs))
    return flags


def dir_size(path):
    total = files = 0
    for root, _, names in os.walk(path):
        for n in names:
            st = os.lstat(os.path.join(root, n))
            total += st.st_size
            files += 1
    return total, files


def generate(a):
    out = os.path.abspath(a.out or default_out(a))
    params = {k: getattr(a, k) for k in ("libs", "funcs", "utils", "deps", "seed", "path_kind", "shuffle_rpath", "python")}
    man_path = os.path.join(out, "manifest.json")
    with open(os.path.abspath(__file__), "rb") as f:
        gen_sha = hashlib.sha256(f.read()).hexdigest()
    if not a.force and os.path.exists(man_path):
        with open(man_path) as f:
            man = json.load(f)
        if man.get("params") == params and man.get("generator_sha256") == gen_sha and man.get("complete"):
            print(f"gen: {out} is up to date (use --force to rebuild)")
            return man
    if os.path.exists(out):
        shutil.rmtree(out)
    g = Graph(a)
    src, tree = os.path.join(out, "src"), os.path.join(out, "tree")
    os.makedirs(src)
    os.makedirs(os.path.join(tree, "bin"))
    libdir = {x: os.path.join(tree, x) for x in g.mods + g.utils}
    for d in libdir.values():
        os.makedirs(d)

    t0 = time.monotonic()
    sources = {}
    for x in g.utils:
        sources[x] = c_util(g, x)
    for x in g.mods:
        sources[x] = c_mod(g, x)
    sources["main"] = c_main(g, dlopen=False)
    sources["main_dlopen"] = c_main(g, dlopen=True)
    digest = hashlib.sha256()
    for name in sorted(sources):
        with open(os.path.join(src, name + ".c"), "w") as f:
            f.write(sources[name])
        digest.update(name.encode() + b"\0" + sources[name].encode())
    t_src = time.monotonic() - t0

    cflags = ["-O1", "-fPIC", "-g0"]

    def build_lib(x, deps):
        so = os.path.join(libdir[x], f"lib{x}.so")
        cmd = [CC, *cflags, "-shared", "-o", so, os.path.join(src, x + ".c"), f"-Wl,-soname,lib{x}.so"]
        cmd += [os.path.join(libdir[d], f"lib{d}.so") for d in deps]
        cmd += path_flags(a.path_kind, [libdir[d] for d in deps])
        run(cmd)

    # utilities in waves (a utility needs only older ones), then modules, all parallel
    t0 = time.monotonic()
    level = {}
    for x in g.utils:
        level[x] = 1 + max((level[d] for d in g.util_deps[x]), default=-1)
    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        for lv in range(max(level.values(), default=-1) + 1):
            list(ex.map(lambda x: build_lib(x, g.util_deps[x]), [x for x in g.utils if level[x] == lv]))
        list(ex.map(lambda x: build_lib(x, g.mod_deps[x]), g.mods))
    t_libs = time.monotonic() - t0

    t0 = time.monotonic()
    all_dirs = [libdir[x] for x in g.dirs()]
    # rpath-link lets ld find the utilities the modules need without a -L search
    link_common = path_flags(a.path_kind, all_dirs) + ["-Wl,-rpath-link," + ":".join(libdir[x] for x in g.utils)]
    app = os.path.join(tree, "bin", "app")
    run([CC, "-O1", "-o", app, os.path.join(src, "main.c")]
        + [os.path.join(libdir[m], f"lib{m}.so") for m in g.mods] + link_common)
    app_dl = os.path.join(tree, "bin", "app-dlopen")
    run([CC, "-O1", "-o", app_dl, os.path.join(src, "main_dlopen.c"), "-ldl"] + link_common)
    t_exe = time.monotonic() - t0

    t_py = 0.0
    if a.python:
        t0 = time.monotonic()
        inc = sysconfig.get_paths()["include"]
        pysrc = os.path.join(out, "src", "py")
        os.makedirs(pysrc)
        glue_c, glue_o = os.path.join(pysrc, "pyglue.c"), os.path.join(pysrc, "pyglue.o")
        with open(glue_c, "w") as f:
            f.write(PYGLUE)
        run([CC, *cflags, f"-I{inc}", "-c", "-o", glue_o, glue_c])

        def build_ext(x):
            d = os.path.join(tree, "py", x)
            os.makedirs(d)
            c = os.path.join(pysrc, x + ".c")
            with open(c, "w") as f:
                f.write(c_mod(g, x, python=True))
            cmd = [CC, *cflags, "-shared", "-o", os.path.join(d, x + ".so"), c, glue_o]
            cmd += [os.path.join(libdir[u], f"lib{u}.so") for u in g.mod_deps[x]]
            cmd += path_flags(a.path_kind, [libdir[u] for u in g.mod_deps[x]])
            run(cmd)

        with ThreadPoolExecutor(max_workers=a.jobs) as ex:
            list(ex.map(build_ext, g.mods))
        with open(os.path.join(tree, "py", "run.py"), "w") as f:
            f.write(py_runner(g, tree))
        t_py = time.monotonic() - t0

    size, files = dir_size(tree)
    man = {
        "format": "pynamic-like-manifest/1",
        "params": params,
        "generator_sha256": gen_sha,
        "out": out,
        "tree": tree,
        "python_exe": sys.executable if a.python else None,
        "sources_sha256": digest.hexdigest(),
        "modules": g.mods,
        "utilities": g.utils,
        "module_deps": g.mod_deps,
        "utility_deps": g.util_deps,
        "rpath_dirs": all_dirs,
        "programs": {"app": app, "app-dlopen": app_dl},
        "build_seconds": {"sources": round(t_src, 3), "libraries": round(t_libs, 3),
                          "executables": round(t_exe, 3), "python": round(t_py, 3),
                          "total": round(t_src + t_libs + t_exe + t_py, 3)},
        "jobs": a.jobs,
        "tree_bytes": size,
        "tree_files": files,
        "complete": True,
    }
    if a.python:
        man["programs"]["python"] = os.path.join(tree, "py", "run.py")
    with open(man_path, "w") as f:
        json.dump(man, f, indent=1)
    print(f"gen: {a.libs} modules + {a.utils} utilities, {a.funcs} functions each -> {out}")
    print(f"gen: built in {man['build_seconds']['total']:.1f} s with {a.jobs} jobs; tree {size / 1e6:.1f} MB in {files} files")
    return man


def main(argv=None):
    generate(parse_args(argv))


if __name__ == "__main__":
    main()
