import Foundation
import LoaderModel
import Report
import TestSupport
import Testing

/// The shrinkwrap plan applied with the real patchelf (docs/fix-design.md):
/// the copy loads the same objects in the same order as `ld.so --list` shows
/// for the original, prints the same, passes glibc's version checks, and makes
/// fewer calls; the original is left as it was.
@Suite struct ShrinkwrapPlanTests {
    func listed(_ program: String) throws -> [String] { try ldsoList(program, env: cleanEnvironment) }

    @Test("a 3-directory RPATH program with a transitive library and a versioned libc: same objects in the same order, same output, fewer calls")
    func applied() throws {
        let f = try Fixture("shrinkwrap")
        defer { f.remove() }
        try f.library("t", in: "d3")
        try f.library("y", in: "d2", needs: ["t"], linkFlags: ["-L" + f.path("d3"), "-Wl,--disable-new-dtags,-rpath," + f.path("d3")])
        try f.library("x", in: "d1")
        try f.library("z", in: "d3")
        try f.program("app", calls: ["x", "y", "z"],
                      linkFlags: ["-L" + f.path("d1"), "-L" + f.path("d2"), "-L" + f.path("d3"), "-lx", "-ly", "-lz",
                                  "-Wl,-rpath-link," + f.path("d3"),
                                  "-Wl,--disable-new-dtags,-rpath,\(f.path("d1")):\(f.path("d2")):\(f.path("d3"))"])
        let app = f.path("app"), copy = f.path("app.shrinkwrap")
        let before = try Data(contentsOf: URL(fileURLWithPath: app))
        let load = try explain(app).load
        let plan = ShrinkwrapPlan(load: load)
        #expect(plan.closure.map { ($0 as NSString).lastPathComponent } == ["libx.so", "liby.so", "libz.so", "libc.so.6", "libt.so", "ld-linux-x86-64.so.2"], "\(plan.closure)")
        #expect(plan.replacements.map(\.name) == ["libx.so", "liby.so", "libz.so", "libc.so.6"])
        try FileManager.default.copyItem(atPath: app, toPath: copy)
        for command in plan.patchelfCommands(program: load.program, file: copy) {
            let r = try shell(command, environment: cleanEnvironment)
            #expect(r.status == 0, "\(command): \(r.stderr)")
        }
        #expect(try listed(copy) == listed(app))
        let original = try shell([app], environment: cleanEnvironment), fixed = try shell([copy], environment: cleanEnvironment)
        #expect(fixed.status == original.status && fixed.stdout == original.stdout)
        var versions = cleanEnvironment
        versions["LD_DEBUG"] = "versions"
        let checked = try shell([copy], environment: versions)
        #expect(!checked.stderr.contains("not found") && !checked.stderr.lowercased().contains("error"), "\(checked.stderr.prefix(400))")
        let callsBefore = try straceCounts([app], environment: cleanEnvironment)
        let callsAfter = try straceCounts([copy], environment: cleanEnvironment)
        #expect(callsAfter.openat + callsAfter.stat < callsBefore.openat + callsBefore.stat, "\(callsBefore) → \(callsAfter)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: app)) == before, "the original is not changed")
    }
}
