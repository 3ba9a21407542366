import Foundation
import Testing
@testable import Report
@testable import LoaderModel

/// Each hazard on a fixture built to have it, and not on a clean control that
/// differs only in the one thing that makes the hazard.
@Suite("hazards")
struct HazardTests {
    @Test("latent-missing: a library without RUNPATH finds its dependency only because the program loaded it")
    func latentMissing() throws {
        for control in [false, true] {
            let f = try Fixture("latent")
            defer { f.remove() }
            try f.library("x", in: "dx")
            // liby needs libx; only the control gives liby a RUNPATH that can find it.
            try f.library("y", in: "dy", needs: ["x"], linkFlags: ["-Ldx"] + (control ? ["-Wl,--enable-new-dtags,-rpath,\(f.path("dx"))"] : []))
            try f.program("prog", calls: ["x", "y"], linkFlags: ["-Ldx", "-Ldy", "-lx", "-ly",
                "-Wl,--enable-new-dtags,-rpath,\(f.path("dx")):\(f.path("dy"))"])
            let e = try explain(f.path("prog"), directory: f.root)
            let hazards = e.hazards(.latentMissing)
            if control {
                #expect(hazards.isEmpty, "\(hazards)")
            } else {
                #expect(hazards.count == 1)
                #expect(hazards.first?.objects.first == f.path("dy/liby.so"))
                // And it is real: the library cannot be loaded on its own.
                let alone = try explain(f.path("dy/liby.so"), directory: f.root)
                #expect(alone.failure?.kind == .missingLibrary)
            }
            #expect(e.failure == nil)
        }
    }

    @Test("rpath-ignored: a RUNPATH library's dependency misses the program's RPATH (the ROCm case)")
    func rpathIgnored() throws {
        for control in [false, true] {
            let f = try Fixture("rpath-ignored")
            defer { f.remove() }
            try f.library("hsa", in: "new", value: 45)
            try f.library("hsa", in: "old", value: 43)
            // librocm lives in "new"; the hazardous one carries RUNPATH "old".
            try f.library("rocm", in: "new", needs: ["hsa"], linkFlags: ["-Lnew"] + (control ? [] : ["-Wl,--enable-new-dtags,-rpath,\(f.path("old"))"]))
            try f.program("prog", calls: ["rocm"], linkFlags: ["-Lnew", "-lrocm", "-Wl,--disable-new-dtags,-rpath,\(f.path("new"))"])
            let e = try explain(f.path("prog"), directory: f.root)
            let hazards = e.hazards(.rpathIgnored)
            if control {
                #expect(hazards.isEmpty, "\(hazards)")
                #expect(e.resolution["libhsa.so"] == f.path("new/libhsa.so"))
            } else {
                #expect(hazards.count == 1)
                #expect(e.resolution["libhsa.so"] == f.path("old/libhsa.so"))
                #expect(hazards.first?.objects.contains(f.path("new/libhsa.so")) == true)
            }
        }
    }

    @Test("rpath-ignored: an object with both RPATH and RUNPATH uses only the RUNPATH")
    func rpathAndRunpath() throws {
        for control in [false, true] {
            let f = try Fixture("rpath-and-runpath")
            defer { f.remove() }
            try f.library("dep", in: "old", value: 1)
            try f.library("dep", in: "new", value: 2)
            // GNU ld never writes both tags: link an auxiliary filter name, then turn its
            // DT_AUXILIARY (0x7ffffffd) entry into DT_RUNPATH (29) in the file.
            try f.library("both", in: "lib", needs: ["dep"], linkFlags: ["-Lold", "-Wl,--disable-new-dtags,-rpath,\(f.path("old"))"]
                + (control ? [] : ["-Wl,-f,\(f.path("new"))"]))
            if !control {
                var bytes = try Data(contentsOf: URL(fileURLWithPath: f.path("lib/libboth.so")))
                let auxiliary = Data([0xfd, 0xff, 0xff, 0x7f, 0, 0, 0, 0])
                let range = try #require(bytes.range(of: auxiliary))
                bytes.replaceSubrange(range, with: Data([29, 0, 0, 0, 0, 0, 0, 0]))
                try bytes.write(to: URL(fileURLWithPath: f.path("lib/libboth.so")))
            }
            try f.program("prog", calls: ["both"], linkFlags: ["-Llib", "-lboth", "-Wl,-rpath-link,\(f.path("old"))",
                "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
            let e = try explain(f.path("prog"), directory: f.root)
            let both = try ELFFile(contentsOf: f.path("lib/libboth.so"))
            if control {
                #expect(both.runpath == nil)
                #expect(e.hazards(.rpathIgnored).isEmpty)
                #expect(e.resolution["libdep.so"] == f.path("old/libdep.so"))
            } else {
                #expect(both.rpath == f.path("old") && both.runpath == f.path("new"))
                #expect(e.hazards(.rpathIgnored).count == 1)
                #expect(e.resolution["libdep.so"] == f.path("new/libdep.so"))
                // ld.so agrees: the RUNPATH wins.
                let listed = try shell(["/lib64/ld-linux-x86-64.so.2", "--list", f.path("prog")], environment: cleanEnvironment)
                #expect(listed.stdout.contains("libdep.so => \(f.path("new/libdep.so"))"))
            }
        }
    }

    @Test("ld-library-path-override: LD_LIBRARY_PATH beats a library's RUNPATH and another version loads")
    func ldLibraryPathOverride() throws {
        let f = try Fixture("llp-override")
        defer { f.remove() }
        try f.library("hsa", in: "rocm-4.5", value: 45)
        try f.library("hsa", in: "rocm-5.0", value: 50)
        try f.mkdir("unrelated")
        try f.library("rocm", in: "rocm-4.5", needs: ["hsa"], linkFlags: ["-Lrocm-4.5", "-Wl,--enable-new-dtags,-rpath,\(f.path("rocm-4.5"))"])
        try f.program("prog", calls: ["rocm"], linkFlags: ["-Lrocm-4.5", "-lrocm", "-Wl,--disable-new-dtags,-rpath,\(f.path("rocm-4.5"))"])
        let hazardous = try explain(f.path("prog"), ldLibraryPath: f.path("rocm-5.0"), directory: f.root)
        #expect(hazardous.hazards(.ldLibraryPathOverride).count == 1)
        #expect(hazardous.resolution["libhsa.so"] == f.path("rocm-5.0/libhsa.so"))
        let control = try explain(f.path("prog"), ldLibraryPath: f.path("unrelated"), directory: f.root)
        #expect(control.hazards(.ldLibraryPathOverride).isEmpty)
        #expect(control.resolution["libhsa.so"] == f.path("rocm-4.5/libhsa.so"))
    }

    @Test("the ROCm case in full: RPATH ignored because of RUNPATH, then LD_LIBRARY_PATH supplies a third version: both hazards")
    func rocmBoth() throws {
        let f = try Fixture("rocm-both")
        defer { f.remove() }
        try f.library("hsa", in: "new", value: 45)
        try f.library("hsa", in: "old", value: 43)
        try f.library("hsa", in: "llp", value: 50)
        try f.library("rocm", in: "new", needs: ["hsa"], linkFlags: ["-Lnew", "-Wl,--enable-new-dtags,-rpath,\(f.path("old"))"])
        try f.program("prog", calls: ["rocm"], linkFlags: ["-Lnew", "-lrocm", "-Wl,--disable-new-dtags,-rpath,\(f.path("new"))"])
        let e = try explain(f.path("prog"), ldLibraryPath: f.path("llp"), directory: f.root)
        #expect(e.resolution["libhsa.so"] == f.path("llp/libhsa.so"))
        #expect(e.hazards(.rpathIgnored).count == 1)
        #expect(e.hazards(.ldLibraryPathOverride).count == 1)
        #expect(e.hazards.filter(\.isNote).isEmpty)
    }

    @Test("shadowed-soname behind an explicit RUNPATH hit, only a default directory holding the other copy: a note")
    func shadowedByDefaultOnly() throws {
        // libz.so.1 from a RUNPATH directory; the system's /lib/x86_64-linux-gnu/libz.so.1 differs.
        let f = try Fixture("shadow-note")
        defer { f.remove() }
        try #require(FileManager.default.fileExists(atPath: "/lib/x86_64-linux-gnu/libz.so.1"))
        try f.library("z", in: "z", value: 7, soname: "libz.so.1")
        try f.program("prog", calls: ["z"], linkFlags: ["-Lz", "-lz", "-Wl,--enable-new-dtags,-rpath,\(f.path("z"))"])
        try FileManager.default.moveItem(atPath: f.path("z/libz.so"), toPath: f.path("z/libz.so.1"))
        let e = try explain(f.path("prog"), directory: f.root)
        #expect(e.resolution["libz.so.1"] == f.path("z/libz.so.1"))
        let shadow = e.hazards(.shadowedSoname)
        #expect(shadow.count == 1 && shadow.allSatisfy(\.isNote), "\(shadow)")
        let text = ExplanationText.render(e)
        #expect(text.contains("hazards: none found") && text.contains("notes (1): shadowed-soname ×1"), "\(text)")
    }

    @Test("shadowed-soname: the same name with different contents in two search directories")
    func shadowedSoname() throws {
        for control in [false, true] {
            let f = try Fixture("shadow")
            defer { f.remove() }
            try f.library("s", in: "a", value: 1)
            if control {
                // An identical copy is not shadowing.
                try f.mkdir("b")
                try FileManager.default.copyItem(atPath: f.path("a/libs.so"), toPath: f.path("b/libs.so"))
            } else {
                try f.library("s", in: "b", value: 2)
            }
            try f.program("prog", calls: ["s"], linkFlags: ["-La", "-ls", "-Wl,--enable-new-dtags,-rpath,\(f.path("a")):\(f.path("b"))"])
            let e = try explain(f.path("prog"), directory: f.root)
            let hazards = e.hazards(.shadowedSoname)
            if control {
                #expect(hazards.isEmpty, "\(hazards)")
            } else {
                #expect(hazards.count == 1)
                #expect(hazards.first?.objects == [f.path("a/libs.so"), f.path("b/libs.so")])
            }
        }
    }

    @Test("unsatisfiable-order: two directories each with different liba and libb (Figure 4)")
    func unsatisfiableOrder() throws {
        for control in [false, true] {
            let f = try Fixture("figure4")
            defer { f.remove() }
            try f.library("a", in: "dirA", value: 1)
            try f.library("b", in: "dirB", value: 2)
            if !control {
                try f.library("b", in: "dirA", value: 3)
                try f.library("a", in: "dirB", value: 4)
            }
            try f.program("prog", calls: ["a", "b"], linkFlags: ["-LdirA", "-LdirB", "-la", "-lb",
                "-Wl,--enable-new-dtags,-rpath,\(f.path("dirA")):\(f.path("dirB"))"])
            let e = try explain(f.path("prog"), directory: f.root)
            if control {
                #expect(e.hazards(.unsatisfiableOrder).isEmpty)
            } else {
                #expect(e.hazards(.unsatisfiableOrder).count == 1)
                // libb comes from dirA although dirB was meant: the order cannot serve both.
                #expect(e.resolution["libb.so"] == f.path("dirA/libb.so"))
            }
        }
    }

    @Test("symbol-conflict: libomp and libompstubs define the same symbols; load order picks one")
    func symbolConflict() throws {
        for control in [false, true] {
            let f = try Fixture("omp")
            defer { f.remove() }
            try f.write("src/omp.c", "int omp_get_max_threads(void) { return 8; }\nint omp_in_parallel(void) { return 0; }\nint omp_f(void) { return 1; }\n")
            try f.write("src/stubs.c", control ? "int ompstubs_f(void) { return 1; }\n"
                : "int omp_get_max_threads(void) { return 1; }\nint omp_in_parallel(void) { return 0; }\nint ompstubs_f(void) { return 1; }\n")
            try f.mkdir("lib")
            try f.compile(["-shared", "-fPIC", "-o", "lib/libomp.so", "src/omp.c", "-Wl,-soname,libomp.so"])
            try f.compile(["-shared", "-fPIC", "-o", "lib/libompstubs.so", "src/stubs.c", "-Wl,-soname,libompstubs.so"])
            try f.write("src/main.c", "int omp_get_max_threads(void); int ompstubs_f(void);\nint main(void) { return omp_get_max_threads() + ompstubs_f() > 100; }\n")
            try f.compile(["-o", "prog", "src/main.c", "-Wl,--no-as-needed", "-Llib", "-lompstubs", "-lomp",
                           "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
            let e = try explain(f.path("prog"), directory: f.root)
            let hazards = e.hazards(.symbolConflict)
            if control {
                #expect(hazards.isEmpty, "\(hazards)")
            } else {
                #expect(hazards.count == 1)
                // libompstubs is needed first: it wins, and the program runs without threads.
                #expect(hazards.first?.objects == [f.path("lib/libompstubs.so"), f.path("lib/libomp.so")])
                #expect(hazards.first?.message.contains("omp_get_max_threads") == true)
            }
        }
    }

    @Test("missing-library: every place searched is listed")
    func missingLibrary() throws {
        for control in [false, true] {
            let f = try Fixture("missing-lib")
            defer { f.remove() }
            try f.library("gone", in: "lib")
            try f.program("prog", calls: ["gone"], linkFlags: ["-Llib", "-lgone", "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
            if !control { try FileManager.default.removeItem(atPath: f.path("lib/libgone.so")) }
            let e = try explain(f.path("prog"), directory: f.root)
            let hazards = e.hazards(.missingLibrary)
            if control {
                #expect(hazards.isEmpty)
                #expect(e.failure == nil)
            } else {
                #expect(hazards.count == 1)
                let message = hazards.first?.message ?? ""
                #expect(message.contains("RUNPATH of \(f.path("prog"))"))
                #expect(message.contains("ld.so.cache has no entry"))
                #expect(message.contains("default directories"))
                // The real program fails the same way.
                let run = try shell([f.path("prog")], environment: cleanEnvironment)
                #expect(run.status == 127)
                #expect(run.stderr.contains("libgone.so: cannot open shared object file"))
            }
        }
    }

    @Test("missing-interpreter: PT_INTERP names a loader this system lacks")
    func missingInterpreter() throws {
        for control in [false, true] {
            let f = try Fixture("interp")
            defer { f.remove() }
            let interpreter = control ? "/lib64/ld-linux-x86-64.so.2" : "/lib/ld-linux-nowhere.so.2"
            try f.program("prog", linkFlags: ["-Wl,--dynamic-linker=\(interpreter)"])
            let e = try explain(f.path("prog"), directory: f.root)
            if control {
                #expect(e.hazards(.missingInterpreter).isEmpty)
                #expect(e.failure == nil)
            } else {
                #expect(e.hazards(.missingInterpreter).count == 1)
                #expect(e.failure?.kind == .missingInterpreter)
                #expect(e.failure?.message.hasPrefix("ld-linux-nowhere.so.2: not found") == true)
                #expect(e.load.predicted == SyscallCounts())
            }
        }
    }

    @Test("symbol-version: a version newer than the library provides")
    func symbolVersion() throws {
        for control in [false, true] {
            let f = try Fixture("symver")
            defer { f.remove() }
            try f.write("v2.map", "VER_1 { global: old_f; local: *; };\nVER_2 { global: v_f; } VER_1;\n")
            try f.write("v1.map", "VER_1 { global: old_f; v_f; local: *; };\n")
            try f.write("src/v.c", "int old_f(void) { return 1; }\nint v_f(void) { return 2; }\n")
            try f.mkdir("lib")
            try f.compile(["-shared", "-fPIC", "-o", "lib/libv.so", "src/v.c", "-Wl,-soname,libv.so", "-Wl,--version-script=v2.map"])
            try f.program("prog", calls: ["v"], linkFlags: ["-Llib", "-lv", "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
            if !control {
                try f.compile(["-shared", "-fPIC", "-o", "lib/libv.so", "src/v.c", "-Wl,-soname,libv.so", "-Wl,--version-script=v1.map"])
            }
            let e = try explain(f.path("prog"), directory: f.root)
            let hazards = e.hazards(.symbolVersion)
            if control {
                #expect(hazards.isEmpty, "\(hazards)")
                #expect(e.failure == nil)
            } else {
                #expect(hazards.count == 1)
                #expect(hazards.first?.message.contains("VER_2") == true)
                #expect(hazards.first?.message.contains("provides up to VER_1") == true)
                #expect(e.failure?.kind == .symbolVersion)
                let run = try shell([f.path("prog")], environment: cleanEnvironment)
                #expect(run.status == 1)
                #expect(run.stderr.contains("version `VER_2' not found"))
            }
        }
    }

    @Test("symbol-version: this system's glibc satisfies GLIBC_2.34 but a GLIBC_2.99 requirement fails")
    func glibcVersionRequirement() throws {
        let f = try Fixture("glibc-version")
        defer { f.remove() }
        try f.program("prog", linkFlags: [])
        let e = try explain(f.path("prog"), directory: f.root)
        #expect(e.load.program.versionNeeds.contains { $0.file == "libc.so.6" && $0.versions.contains { $0.name.hasPrefix("GLIBC_2.") } })
        #expect(e.hazards(.symbolVersion).isEmpty)
        // Rewrite one required version name in the file: GLIBC_2.34 → GLIBC_2.99 (same length).
        var bytes = try Data(contentsOf: URL(fileURLWithPath: f.path("prog")))
        let from = Data("GLIBC_2.34".utf8), to = Data("GLIBC_2.99".utf8)
        let range = try #require(bytes.range(of: from), "the program asks for no GLIBC_2.34 symbol version")
        bytes.replaceSubrange(range, with: to)
        try bytes.write(to: URL(fileURLWithPath: f.path("prog-new")))
        let newer = try explain(f.path("prog-new"), directory: f.root)
        #expect(newer.hazards(.symbolVersion).first?.message.contains("GLIBC_2.99") == true)
        #expect(newer.hazards(.symbolVersion).first?.message.contains("provides up to GLIBC_2.") == true)
    }

    @Test("shrinkwrap-unsafe: DT_NEEDED differs from the soname (libsndio.so.7.0 vs libsndio.so.7)")
    func shrinkwrapNeededVersusSoname() throws {
        for control in [false, true] {
            let f = try Fixture("sndio")
            defer { f.remove() }
            try f.write("src/sndio.c", "int sndio_f(void) { return 1; }\n")
            try f.mkdir("lib")
            try f.compile(["-shared", "-fPIC", "-o", "lib/libsndio.so.7.0", "src/sndio.c", "-Wl,-soname,libsndio.so.7.0"])
            try f.program("prog", calls: ["sndio"], linkFlags: [f.path("lib/libsndio.so.7.0"), "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
            if !control {
                try f.compile(["-shared", "-fPIC", "-o", "lib/libsndio.so.7.0", "src/sndio.c", "-Wl,-soname,libsndio.so.7"])
            }
            let e = try explain(f.path("prog"), directory: f.root)
            let hazards = e.hazards(.shrinkwrapUnsafe)
            if control {
                #expect(hazards.isEmpty, "\(hazards)")
            } else {
                #expect(hazards.count == 1)
                #expect(hazards.first?.message.contains("soname libsndio.so.7") == true)
            }
        }
    }

    @Test("shrinkwrap-unsafe: a library taken from LD_LIBRARY_PATH")
    func shrinkwrapLdLibraryPath() throws {
        let f = try Fixture("sw-llp")
        defer { f.remove() }
        try f.library("cuda", in: "driver")
        try f.program("prog", calls: ["cuda"], linkFlags: ["-Ldriver", "-lcuda"])
        let e = try explain(f.path("prog"), ldLibraryPath: f.path("driver"), directory: f.root)
        #expect(e.hazards(.shrinkwrapUnsafe).count == 1)
        let clean = try explain(f.path("prog"), ldLibraryPath: nil, directory: f.root)
        #expect(clean.hazards(.shrinkwrapUnsafe).isEmpty)
        #expect(clean.failure?.kind == .missingLibrary)
    }

    @Test("a clean program has no hazards at all")
    func cleanControl() throws {
        let f = try Fixture("clean")
        defer { f.remove() }
        try f.library("b", in: "lib")
        try f.library("a", in: "lib", needs: ["b"], linkFlags: ["-Llib", "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
        try f.program("prog", calls: ["a", "b"], linkFlags: ["-Llib", "-la", "-lb", "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
        let e = try explain(f.path("prog"), directory: f.root)
        #expect(e.hazards.isEmpty, "\(e.hazards)")
        #expect(e.failure == nil)
    }
}
