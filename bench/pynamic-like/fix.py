#!/usr/bin/env python3
"""Apply the real fixes to a generated tree, so "after" is measured, not assumed.

shrinkwrap   bin/<prog>.shrinkwrap: every DT_NEEDED of the program replaced by the
             absolute path ld.so resolves it to (patchelf --replace-needed), then
             every transitive dependency lifted onto the program as an absolute
             DT_NEEDED (patchelf --add-needed) in a second, separate patchelf call.
             (patchelf 0.14.3 writes garbage DT_NEEDED entries when both options
             are given in one call; removing needed entries and adding them back
             breaks symbol versioning, --replace-needed keeps .gnu.version_r right.)
             For app-dlopen the dlopen()ed sonames are first added as DT_NEEDED
             (as the Shrinkwrap paper does for Python modules), so dlopen finds
             them already loaded.
bind         bind/: a copy of every library whose DT_NEEDED entries naming the tree's
             libraries are the absolute paths they resolve to (in bind/), and
             bin/<prog>.bind the same for the program (Spack's shared_linking: bind
             binds what its install tree provides; libc keeps its name);
             RPATH/RUNPATH kept, pointing into bind/.
view         view/: one directory of symlinks to every library of the tree;
             bin/<prog>.view: the program with its RPATH/RUNPATH replaced by that
             single directory (the same tag kind as the original).
python       py-view/ and py/run-view.py: every extension module reachable from
             a sys.path of one directory.

Each fixed program is run (outside any latency file system) and must print
exactly what the original prints.  Must run before the tree is mounted.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time


def sh(cmd, **kw):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"fix: command failed ({r.returncode}): {' '.join(cmd[:6])}{' ...' if len(cmd) > 6 else ''}\n{r.stderr.strip()}")
    return r.stdout


def interpreter(exe):
    return sh(["patchelf", "--print-interpreter", exe]).strip()


def needed(exe):
    return sh(["patchelf", "--print-needed", exe]).split()


def resolve(exe):
    """What ld.so loads for exe, in load order: [(name, path)] (no vdso, no interpreter)."""
    out = sh([interpreter(exe), "--list", exe])
    res = []
    for line in out.splitlines():
        line = line.strip()
        if "=>" not in line:
            continue  # vdso, the interpreter itself
        name, rest = [s.strip() for s in line.split("=>", 1)]
        path = rest.rsplit(" (", 1)[0].strip()
        if path == "not found" or not path.startswith("/"):
            raise SystemExit(f"fix: {exe}: {name} not found by ld.so")
        res.append((name, path))
    return res


def program_output(cmd, env=None):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd="/")
    if r.returncode != 0:
        raise SystemExit(f"fix: {cmd[-1]} exited {r.returncode}: {r.stderr.strip()[:500]}")
    return r.stdout


def shrinkwrap(exe, dst, extra_sonames=()):
    shutil.copy2(exe, dst)
    if extra_sonames:
        # dlopen()ed modules become needed entries (call 1 of 3)
        sh(["patchelf"] + [x for s in extra_sonames for x in ("--add-needed", s)] + [dst])
    direct = needed(dst)
    resolved = resolve(dst)
    where = dict(resolved)
    missing = [n for n in direct if n not in where and not n.startswith("/")]
    if missing:
        raise SystemExit(f"fix: {dst}: cannot resolve {missing[:5]}")
    # replace every direct needed entry by its absolute path (one call)
    args = []
    for n in direct:
        if not n.startswith("/"):
            args += ["--replace-needed", n, where[n]]
    if args:
        sh(["patchelf"] + args + [dst])
    # lift the transitive dependencies (a separate call: see the module doc)
    direct_paths = {where.get(n, n) for n in direct}
    lifted = [p for n, p in resolved if p not in direct_paths]
    if lifted:
        sh(["patchelf"] + [x for p in lifted for x in ("--add-needed", p)] + [dst])
    after = needed(dst)
    bad = [n for n in after if not n.startswith("/")]
    if bad:
        raise SystemExit(f"fix: {dst}: needed entries still relative after shrinkwrap: {bad[:5]}")
    return {"needed_before": len(direct) - len(extra_sonames), "needed_after": len(after),
            "lifted": len(lifted), "added_dlopen": len(extra_sonames)}


def bind_tree(tree, libs):
    """bind/<lib>/lib<lib>.so for every library, DT_NEEDED made absolute (one
    --replace-needed call per file). Returns name -> path in bind/."""
    bind = os.path.join(tree, "bind")
    if os.path.exists(bind):
        shutil.rmtree(bind)
    where = {f"lib{lib}.so": os.path.join(bind, lib, f"lib{lib}.so") for lib in libs}
    for lib in libs:
        os.makedirs(os.path.join(bind, lib))
        dst = where[f"lib{lib}.so"]
        shutil.copy2(os.path.join(tree, lib, f"lib{lib}.so"), dst)
        bind_needed(dst, where, tree)
    return where


def bind_needed(dst, where, tree):
    """DT_NEEDED made absolute; the RPATH/RUNPATH kept, pointing into bind/ as
    an in-place bind's would (a dlopen by name still searches it)."""
    args = []
    for n in needed(dst):
        target = where.get(n)
        if target:
            args += ["--replace-needed", n, target]
    if args:
        sh(["patchelf"] + args + [dst])
    dyn = sh(["readelf", "-d", dst])
    old = sh(["patchelf", "--print-rpath", dst]).strip()
    if old:
        new = ":".join(os.path.join(tree, "bind", os.path.relpath(d, tree)) if d.startswith(tree + "/") else d
                       for d in old.split(":"))
        sh(["patchelf"] + (["--force-rpath"] if "(RPATH)" in dyn else []) + ["--set-rpath", new, dst])


def make_view(tree, libs):
    view = os.path.join(tree, "view")
    if os.path.exists(view):
        shutil.rmtree(view)
    os.makedirs(view)
    for lib in libs:
        so = f"lib{lib}.so"
        os.symlink(os.path.join("..", lib, so), os.path.join(view, so))
    return view


def view_copy(exe, dst, view, kind):
    shutil.copy2(exe, dst)
    cmd = ["patchelf", "--set-rpath", view]
    if kind == "rpath":
        cmd.insert(1, "--force-rpath")
    sh(cmd + [dst])
    tag = "RPATH" if kind == "rpath" else "RUNPATH"
    dyn = sh(["readelf", "-d", dst])
    if f"({tag})" not in dyn or view not in dyn:
        raise SystemExit(f"fix: {dst}: expected a {tag} of {view}")


def fix(manifest_path):
    with open(manifest_path) as f:
        man = json.load(f)
    tree, kind = man["tree"], man["params"]["path_kind"]
    bindir = os.path.join(tree, "bin")
    t0 = time.monotonic()
    info = {}
    progs = dict(man["programs"])
    ref = program_output([progs["app"]])

    view = make_view(tree, man["modules"] + man["utilities"])
    where = bind_tree(tree, man["modules"] + man["utilities"])
    for name in ("app", "app-dlopen"):
        bd = os.path.join(bindir, name + ".bind")
        shutil.copy2(progs[name], bd)
        bind_needed(bd, where, tree)
        progs[name + ".bind"] = bd
        exe = progs[name]
        extra = [f"lib{m}.so" for m in man["modules"]] if name == "app-dlopen" else []
        sw = os.path.join(bindir, name + ".shrinkwrap")
        t1 = time.monotonic()
        info[name + ".shrinkwrap"] = shrinkwrap(exe, sw, extra)
        info[name + ".shrinkwrap"]["seconds"] = round(time.monotonic() - t1, 3)
        vw = os.path.join(bindir, name + ".view")
        view_copy(exe, vw, view, kind)
        info[name + ".view"] = {"rpath": view, "kind": kind, "symlinks": len(os.listdir(view))}
        progs[name + ".shrinkwrap"] = sw
        progs[name + ".view"] = vw

    if progs.get("python"):
        pyview = os.path.join(tree, "py-view")
        if os.path.exists(pyview):
            shutil.rmtree(pyview)
        os.makedirs(pyview)
        for m in man["modules"]:
            os.symlink(os.path.join("..", "py", m, m + ".so"), os.path.join(pyview, m + ".so"))
        src = open(progs["python"]).read()
        start = src.index("sys.path[:0] = ")
        end = src.index("\n", start)
        runview = os.path.join(tree, "py", "run-view.py")
        with open(runview, "w") as f:
            f.write(src[:start] + f"sys.path[:0] = [{pyview!r}]" + src[end:])
        progs["python.view"] = runview
        info["python.view"] = {"sys_path": [pyview]}

    # every program must print what the original prints
    for name, p in sorted(progs.items()):
        cmd = [man["python_exe"], "-I", p] if name.startswith("python") else [p]
        got = program_output(cmd)
        if got != ref:
            raise SystemExit(f"fix: {name} printed {got.strip()!r}, the original printed {ref.strip()!r}")
        info.setdefault(name, {})["output_ok"] = True
    man["programs"] = progs
    man["fixes"] = info
    man["fix_seconds"] = round(time.monotonic() - t0, 3)
    man["expected_output"] = ref
    with open(manifest_path, "w") as f:
        json.dump(man, f, indent=1)
    print(f"fix: shrinkwrap, bind and view copies made and verified in {man['fix_seconds']:.1f} s: {', '.join(sorted(progs))}")
    return man


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("manifest", help="manifest.json written by gen.py")
    fix(p.parse_args().manifest)


if __name__ == "__main__":
    main()
