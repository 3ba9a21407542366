import Foundation
import Testing
@testable import Report
@testable import LoaderModel

/// musl fixtures (musl-gcc) resolve as musl's own loader says: its ldd is the loader
/// itself run with --list. Counts are checked against strace too (musl uses open and fstat).
@Suite("musl", .enabled(if: FileManager.default.fileExists(atPath: "/lib/ld-musl-x86_64.so.1")
                                && FileManager.default.fileExists(atPath: "/usr/bin/musl-gcc")))
struct MuslTests {
    static let loader = "/lib/ld-musl-x86_64.so.1"

    /// name → path from musl's `--list` output ("\tname => path (0x…)").
    func muslList(_ program: String, ldLibraryPath: String?) throws -> (map: [String: String], errors: [String]) {
        var env = cleanEnvironment
        env["LD_LIBRARY_PATH"] = ldLibraryPath
        let result = try shell([MuslTests.loader, "--list", program], environment: env)
        var map: [String: String] = [:]
        for line in result.stdout.split(separator: "\n") {
            let parts = line.trimmingCharacters(in: .whitespaces).components(separatedBy: " => ")
            guard parts.count == 2, let paren = parts[1].range(of: " (0x") else { continue }
            map[parts[0]] = String(parts[1][..<paren.lowerBound])
        }
        let errors = result.stderr.split(separator: "\n").map(String.init).filter { $0.contains("Error loading shared library") }
        return (map, errors)
    }

    func compare(_ program: String, fixture: Fixture, ldLibraryPath: String? = nil,
                 sourceLocation: SourceLocation = #_sourceLocation) throws -> Explanation {
        let e = try explain(program, ldLibraryPath: ldLibraryPath, directory: fixture.root)
        #expect(e.load.flavor == .musl, sourceLocation: sourceLocation)
        let (expected, errors) = try muslList(program, ldLibraryPath: ldLibraryPath)
        var predicted: [String: String] = [:]
        var missing: [String] = []
        var families = Set<String>()
        for object in e.load.objects {
            if object.loadedNewObject, let path = object.path { predicted[object.needed] = path }
            // musl's ldd prints a reserved name once per family (libc., libm., …).
            if object.origin == .loaded, let family = MuslLoaderSimulation.reservedFamily(object.needed),
               families.insert(family).inserted {
                predicted[object.needed] = MuslTests.loader
            }
            if object.path == nil { missing.append(object.needed) }
        }
        #expect(predicted == expected, "musl --list: \(expected)", sourceLocation: sourceLocation)
        #expect(missing.count == errors.count, "musl errors: \(errors)", sourceLocation: sourceLocation)
        if e.failure == nil {
            var env = cleanEnvironment
            env["LD_LIBRARY_PATH"] = ldLibraryPath
            let measured = try straceCounts([program], environment: env)
            #expect(e.load.predicted.openat == measured.openat, "\(measured.lines)", sourceLocation: sourceLocation)
            #expect(e.load.predicted.stat == measured.stat, "\(measured.lines)", sourceLocation: sourceLocation)
        }
        return e
    }

    @Test("RPATH chain: musl inherits every ancestor's path, RUNPATH included")
    func inheritedPaths() throws {
        let f = try Fixture("musl-chain")
        defer { f.remove() }
        try f.library("b", in: "db", compiler: "musl-gcc")
        // liba has no path of its own: musl searches its needer's (the program's) RUNPATH.
        try f.library("a", in: "da", needs: ["b"], linkFlags: ["-Ldb"], compiler: "musl-gcc")
        try f.program("prog", calls: ["a"], linkFlags: ["-Lda", "-Ldb", "-la", "-Wl,-rpath,\(f.path("da")):\(f.path("db"))"],
                      compiler: "musl-gcc")
        let e = try compare(f.path("prog"), fixture: f)
        #expect(e.load.objects.first { $0.needed == "libb.so" }?.originObject == f.path("prog"))
        #expect(e.load.objects.first { $0.needed == "libc.so" }?.origin == .loaded)
    }

    @Test("LD_LIBRARY_PATH comes before RUNPATH, and $ORIGIN works")
    func ldLibraryPathFirst() throws {
        let f = try Fixture("musl-llp")
        defer { f.remove() }
        try f.library("x", in: "bin/lib", value: 1, compiler: "musl-gcc")
        try f.library("x", in: "other", value: 2, compiler: "musl-gcc")
        try f.mkdir("bin")
        try f.program("bin/prog", calls: ["x"], linkFlags: ["-Lbin/lib", "-lx", "-Wl,-rpath,$ORIGIN/lib"], compiler: "musl-gcc")
        let plain = try compare(f.path("bin/prog"), fixture: f)
        #expect(plain.resolution["libx.so"] == f.path("bin/lib/libx.so"))
        let overridden = try compare(f.path("bin/prog"), fixture: f, ldLibraryPath: f.path("other"))
        #expect(overridden.resolution["libx.so"] == f.path("other/libx.so"))
    }

    @Test("a missing library is reported as musl reports it")
    func missing() throws {
        let f = try Fixture("musl-missing")
        defer { f.remove() }
        try f.library("gone", in: "lib", compiler: "musl-gcc")
        try f.library("kept", in: "lib", compiler: "musl-gcc")
        try f.program("prog", calls: ["gone", "kept"], linkFlags: ["-Llib", "-lgone", "-lkept", "-Wl,-rpath,\(f.path("lib"))"],
                      compiler: "musl-gcc")
        try FileManager.default.removeItem(atPath: f.path("lib/libgone.so"))
        let e = try compare(f.path("prog"), fixture: f)
        #expect(e.failure?.kind == .missingLibrary)
        #expect(e.hazards(.missingLibrary).count == 1)
        // A musl program is never safe to Shrinkwrap.
        #expect(!e.hazards(.shrinkwrapUnsafe).isEmpty)
    }

    @Test("the system path file replaces the built-in default")
    func systemPathFile() throws {
        let profile = MuslProfile.forInterpreter(MuslTests.loader)
        #expect(profile.pathFile == "/etc/ld-musl-x86_64.path")
        #expect(MuslProfile.forInterpreter("/usr/local/musl/lib/ld-musl-aarch64.so.1").pathFile == "/usr/local/musl/etc/ld-musl-aarch64.path")
        #expect(MuslLoaderSimulation.isReservedName("libpthread.so.0"))
        #expect(MuslLoaderSimulation.isReservedName("libm.so"))
        #expect(!MuslLoaderSimulation.isReservedName("libmagic.so.1"))
    }
}
