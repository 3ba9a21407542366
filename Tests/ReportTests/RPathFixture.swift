import Foundation
import TestSupport
import Testing

/// A program whose RPATH names three directories, d1:d2:d3, and needs one
/// library from each (libx in d1, liby in d2, libz in d3); liby needs libt,
/// found through liby's own RPATH (d3). Built once per test run, with its real
/// fixes: a Shrinkwrap copy (patchelf: absolute DT_NEEDED, transitive libt
/// lifted) and a view copy (one RPATH directory of symlinks).
struct RPathFixture: Sendable {
    let dir: String
    var d1: String { dir + "/d1" }
    var d2: String { dir + "/d2" }
    var d3: String { dir + "/d3" }
    var view: String { dir + "/view" }
    var app: String { dir + "/bin/app" }
    var shrinkwrap: String { dir + "/bin/app.shrinkwrap" }
    var viewApp: String { dir + "/bin/app.view" }
    var traces: String { dir + "/traces" }

    static let shared = buildOnce { try RPathFixture.build() }

    static func get() throws -> RPathFixture { try shared.get() }

    static func gcc(_ args: [String]) throws { _ = try must(["gcc"] + args) }

    static func build() throws -> RPathFixture {
        let f = RPathFixture(dir: try scratch("rpath3"))
        for d in [f.d1, f.d2, f.d3, f.view, f.dir + "/bin", f.traces] {
            try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        }
        try write("int x_value(void) { return 1; }\n", to: f.dir + "/src/x.c")
        try write("int t_value(void) { return 4; }\n", to: f.dir + "/src/t.c")
        try write("int t_value(void);\nint y_value(void) { return 2 + t_value(); }\n", to: f.dir + "/src/y.c")
        try write("int z_value(void) { return 3; }\n", to: f.dir + "/src/z.c")
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libx.so", "-o", f.d1 + "/libx.so", f.dir + "/src/x.c"])
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libt.so", "-o", f.d3 + "/libt.so", f.dir + "/src/t.c"])
        try gcc(["-shared", "-fPIC", "-Wl,-soname,liby.so", "-o", f.d2 + "/liby.so", f.dir + "/src/y.c",
                 "-L" + f.d3, "-lt", "-Wl,--disable-new-dtags,-rpath," + f.d3])
        try gcc(["-shared", "-fPIC", "-Wl,-soname,libz.so", "-o", f.d3 + "/libz.so", f.dir + "/src/z.c"])
        try write("""
            #include <stdio.h>
            int x_value(void); int y_value(void); int z_value(void);
            int main(void) { printf("%d\\n", x_value() * 100 + y_value() * 10 + z_value()); return 0; }
            """, to: f.dir + "/src/main.c")
        try gcc([f.dir + "/src/main.c", "-o", f.app, "-L" + f.d1, "-L" + f.d2, "-L" + f.d3, "-lx", "-ly", "-lz",
                 "-Wl,-rpath-link," + f.d3, "-Wl,--disable-new-dtags,-rpath,\(f.d1):\(f.d2):\(f.d3)"])

        // Shrinkwrap: what `ld.so --list` resolves each name to, one patchelf call per change.
        let list = try must(["/lib64/ld-linux-x86-64.so.2", "--list", f.app]).stdoutText
        var resolved: [String: String] = [:]
        for line in list.split(separator: "\n") {
            let parts = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
            if parts.count >= 3, parts[1] == "=>" { resolved[String(parts[0])] = String(parts[2]) }
        }
        let needed = try must(["patchelf", "--print-needed", f.app]).stdoutText.split(separator: "\n").map(String.init)
        try FileManager.default.copyItem(atPath: f.app, toPath: f.shrinkwrap)
        for name in needed {
            guard let path = resolved[name] else { throw TestFailure("ld.so --list did not resolve \(name): \(list)") }
            _ = try must(["patchelf", "--replace-needed", name, path, f.shrinkwrap])
        }
        guard let libt = resolved["libt.so"] else { throw TestFailure("ld.so --list did not show libt.so: \(list)") }
        _ = try must(["patchelf", "--add-needed", libt, f.shrinkwrap])

        // View: one directory of symlinks, the program's RPATH replaced by it (an
        // RPATH still: patchelf would make it a RUNPATH without --force-rpath).
        for (name, target) in [("libx.so", f.d1), ("liby.so", f.d2), ("libz.so", f.d3), ("libt.so", f.d3)] {
            try FileManager.default.createSymbolicLink(atPath: f.view + "/" + name, withDestinationPath: target + "/" + name)
        }
        try FileManager.default.copyItem(atPath: f.app, toPath: f.viewApp)
        _ = try must(["patchelf", "--force-rpath", "--set-rpath", f.view, f.viewApp])

        for p in [f.app, f.shrinkwrap, f.viewApp] {
            let out = try must([p]).stdoutText
            if out != "163\n" { throw TestFailure("\(p) printed \(out)") }
        }
        for (p, name) in [(f.app, "app"), (f.shrinkwrap, "shrinkwrap"), (f.viewApp, "view")] {
            try record([p], to: f.traces + "/\(name).lpt")
        }
        return f
    }

    func trace(_ name: String) -> String { traces + "/\(name).lpt" }
}
