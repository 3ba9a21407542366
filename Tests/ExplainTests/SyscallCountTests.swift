import Foundation
import Testing
@testable import Report
@testable import LoaderModel

/// Predicted openat/stat counts against what `strace -f` measures on real runs of
/// fixture programs (glibc 2.36 here, with its hwcaps and legacy subdirectories).
@Suite("predicted system calls equal strace")
struct SyscallCountTests {
    func check(_ program: String, fixture: Fixture, ldLibraryPath: String? = nil, ldPreload: String? = nil,
               sourceLocation: SourceLocation = #_sourceLocation) throws -> (Explanation, StraceCounts) {
        let explanation = try explain(program, ldLibraryPath: ldLibraryPath, ldPreload: ldPreload, directory: fixture.root)
        var env = cleanEnvironment
        env["LD_LIBRARY_PATH"] = ldLibraryPath
        env["LD_PRELOAD"] = ldPreload
        let measured = try straceCounts([program], environment: env)
        let predicted = explanation.load.predicted
        #expect(predicted.openat == measured.openat,
                "openat: predicted \(predicted.openat), strace \(measured.openat)\n\(measured.lines.joined(separator: "\n"))",
                sourceLocation: sourceLocation)
        #expect(predicted.stat == measured.stat,
                "stat: predicted \(predicted.stat), strace \(measured.stat)\n\(measured.lines.joined(separator: "\n"))",
                sourceLocation: sourceLocation)
        return (explanation, measured)
    }

    @Test("RPATH with an empty, a useful and a missing directory")
    func rpathDirectories() throws {
        let f = try Fixture("rpath")
        defer { f.remove() }
        try f.mkdir("empty")
        try f.library("foo", in: "lib")
        try f.program("prog", calls: ["foo"], linkFlags: ["-Llib", "-lfoo",
            "-Wl,--disable-new-dtags,-rpath,\(f.path("empty")):\(f.path("lib")):\(f.path("missing"))"])
        let (e, measured) = try check(f.path("prog"), fixture: f)
        #expect(e.resolution["libfoo.so"] == f.path("lib/libfoo.so"))
        #expect(e.load.objects.first { $0.needed == "libfoo.so" }?.origin == .rpath)
        // 10 subdirectories × 2 directories for libfoo, then libc: the plain entries of the
        // two existing directories and all 10 of the missing one, then the cache.
        #expect(measured.openat > 30)
    }

    @Test("RUNPATH is the loader's own: a library's RUNPATH serves its dependencies")
    func runpathChain() throws {
        let f = try Fixture("runpath")
        defer { f.remove() }
        try f.library("b", in: "db")
        try f.library("a", in: "da", needs: ["b"], linkFlags: ["-Ldb", "-Wl,--enable-new-dtags,-rpath,\(f.path("db"))"])
        try f.program("prog", calls: ["a"], linkFlags: ["-Lda", "-la", "-Wl,--enable-new-dtags,-rpath,\(f.path("da"))",
                                                         "-Wl,-rpath-link,\(f.path("db"))"])
        let (e, _) = try check(f.path("prog"), fixture: f)
        #expect(e.resolution["liba.so"] == f.path("da/liba.so"))
        #expect(e.resolution["libb.so"] == f.path("db/libb.so"))
        #expect(e.load.objects.first { $0.needed == "libb.so" }?.originObject == f.path("da/liba.so"))
    }

    @Test("LD_LIBRARY_PATH with a missing, an empty and a useful directory")
    func ldLibraryPath() throws {
        let f = try Fixture("llp")
        defer { f.remove() }
        try f.mkdir("empty")
        try f.library("foo", in: "lib")
        try f.program("prog", calls: ["foo"], linkFlags: ["-Llib", "-lfoo"])
        let llp = "\(f.path("missing")):\(f.path("empty")):\(f.path("lib"))"
        let (e, _) = try check(f.path("prog"), fixture: f, ldLibraryPath: llp)
        #expect(e.load.objects.first { $0.needed == "libfoo.so" }?.origin == .ldLibraryPath)
        #expect(e.load.objects.first { $0.needed == "libc.so.6" }?.origin == .cache)
    }

    @Test("LD_PRELOAD by name is searched like a dependency of the program")
    func preload() throws {
        let f = try Fixture("preload")
        defer { f.remove() }
        try f.library("foo", in: "lib")
        try f.library("pre", in: "lib")
        try f.program("prog", calls: ["foo"], linkFlags: ["-Llib", "-lfoo"])
        let (e, _) = try check(f.path("prog"), fixture: f, ldLibraryPath: f.path("lib"), ldPreload: "libpre.so")
        #expect(e.resolution["libpre.so"] == f.path("lib/libpre.so"))
    }

    @Test("a 32-bit file of the right name is skipped and the search goes on")
    func wrongClass() throws {
        let f = try Fixture("class")
        defer { f.remove() }
        try f.library("foo", in: "good")
        try f.mkdir("bad")
        // An ELFCLASS32 identification is all glibc reads before skipping the file.
        var bytes = try Data(contentsOf: URL(fileURLWithPath: f.path("good/libfoo.so")))
        bytes[4] = 1
        try bytes.write(to: URL(fileURLWithPath: f.path("bad/libfoo.so")))
        try f.program("prog", calls: ["foo"], linkFlags: ["-Lgood", "-lfoo",
            "-Wl,--disable-new-dtags,-rpath,\(f.path("bad")):\(f.path("good"))"])
        let (e, _) = try check(f.path("prog"), fixture: f)
        let foo = try #require(e.load.objects.first { $0.needed == "libfoo.so" })
        #expect(foo.path == f.path("good/libfoo.so"))
        #expect(foo.attempts.contains { $0.outcome == .wrongClass && $0.path == f.path("bad/libfoo.so") })
    }

    @Test("only a 32-bit file of the name: ld.so fails with 'wrong ELF class'")
    func wrongClassOnly() throws {
        let f = try Fixture("class-only")
        defer { f.remove() }
        try f.library("foo", in: "good")
        try f.program("prog", calls: ["foo"], linkFlags: ["-Lgood", "-lfoo", "-Wl,--enable-new-dtags,-rpath,\(f.path("good"))"])
        var bytes = try Data(contentsOf: URL(fileURLWithPath: f.path("good/libfoo.so")))
        bytes[4] = 1
        try bytes.write(to: URL(fileURLWithPath: f.path("good/libfoo.so")))
        let (e, _) = try check(f.path("prog"), fixture: f)
        #expect(e.failure?.kind == .wrongClass)
        #expect(e.failure?.message == "libfoo.so: wrong ELF class: ELFCLASS32")
        let run = try shell([f.path("prog")], environment: cleanEnvironment)
        #expect(run.stderr.contains("libfoo.so: wrong ELF class: ELFCLASS32"))
    }

    @Test("$ORIGIN, $LIB and $PLATFORM in RPATH")
    func dynamicStringTokens() throws {
        let f = try Fixture("dst")
        defer { f.remove() }
        try f.library("foo", in: "bin/lib")
        try f.mkdir("bin")
        try f.program("bin/prog", calls: ["foo"], linkFlags: ["-Lbin/lib", "-lfoo",
            "-Wl,--disable-new-dtags,-rpath,$ORIGIN/$LIB:/nonexistent/$PLATFORM:${ORIGIN}/lib"])
        let (e, _) = try check(f.path("bin/prog"), fixture: f)
        #expect(e.resolution["libfoo.so"] == f.path("bin/lib/libfoo.so"))
    }

    @Test("DF_1_NODEFLIB: the cache entry in a system directory is ignored, no default directories")
    func nodeflib() throws {
        let f = try Fixture("nodeflib")
        defer { f.remove() }
        try f.library("foo", in: "lib")
        try f.program("prog", calls: ["foo"], linkFlags: ["-Llib", "-lfoo", "-Wl,-z,nodefaultlib",
            "-Wl,--enable-new-dtags,-rpath,\(f.path("lib")):/lib/x86_64-linux-gnu"])
        let (e, _) = try check(f.path("prog"), fixture: f)
        let libc = try #require(e.load.objects.first { $0.needed == "libc.so.6" })
        #expect(libc.origin == .runpath)
        #expect(e.load.program.noDefaultLib)
    }

    @Test("DF_1_NODEFLIB without a system directory in RUNPATH: libc's cache entry is ignored and the start-up fails")
    func nodeflibFails() throws {
        let f = try Fixture("nodeflib-fails")
        defer { f.remove() }
        try f.library("foo", in: "lib")
        try f.program("prog", calls: ["foo"], linkFlags: ["-Llib", "-lfoo", "-Wl,-z,nodefaultlib",
            "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
        let (e, _) = try check(f.path("prog"), fixture: f)
        let libc = try #require(e.load.objects.first { $0.needed == "libc.so.6" })
        #expect(libc.path == nil)
        #expect(libc.attempts.contains { if case .cacheEntryIgnoredByNodeflib = $0.outcome { true } else { false } })
        #expect(e.failure?.kind == .missingLibrary)
    }

    @Test("a second name for a file already loaded costs an open and an fstat, then reuses it")
    func sameFileUnderAnotherName() throws {
        let f = try Fixture("samefile")
        defer { f.remove() }
        try f.library("foo", in: "lib")
        try f.library("bar", in: "lib", symbol: "foo2_f")
        try f.program("prog", calls: ["foo"], linkFlags: ["-Llib", "-lfoo", "-lbar", "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
        try FileManager.default.removeItem(atPath: f.path("lib/libbar.so"))
        try FileManager.default.createSymbolicLink(atPath: f.path("lib/libbar.so"), withDestinationPath: "libfoo.so")
        let (e, _) = try check(f.path("prog"), fixture: f)
        let bar = try #require(e.load.objects.first { $0.needed == "libbar.so" })
        #expect(bar.loadedNewObject == false)
        #expect(bar.path == f.path("lib/libfoo.so"))
        #expect(bar.attempts.last?.outcome == .sameFileAsLoaded(f.path("lib/libfoo.so")))
    }

    @Test("a DT_NEEDED with a slash is opened as is")
    func absoluteNeeded() throws {
        let f = try Fixture("absolute")
        defer { f.remove() }
        try f.write("src/nos.c", "int nos_f(void) { return 2; }\n")
        try f.mkdir("lib")
        try f.compile(["-shared", "-fPIC", "-o", "lib/libnos.so", "src/nos.c"])
        try f.program("prog", calls: ["nos"], linkFlags: [f.path("lib/libnos.so")])
        let (e, _) = try check(f.path("prog"), fixture: f)
        let nos = try #require(e.load.objects.first { $0.needed == f.path("lib/libnos.so") })
        #expect(nos.origin == .absolute)
        #expect(nos.tries == 1)
    }

    @Test("a missing library: the prediction stops where ld.so stops")
    func missingLibrary() throws {
        let f = try Fixture("missing")
        defer { f.remove() }
        try f.library("gone", in: "lib")
        try f.library("foo", in: "lib")
        try f.program("prog", calls: ["gone", "foo"], linkFlags: ["-Llib", "-lgone", "-lfoo",
            "-Wl,--enable-new-dtags,-rpath,\(f.path("lib"))"])
        try FileManager.default.removeItem(atPath: f.path("lib/libgone.so"))
        let (e, _) = try check(f.path("prog"), fixture: f)
        #expect(e.failure?.kind == .missingLibrary)
        #expect(e.resolution["libgone.so"] == .some(nil))
        #expect(e.load.total.openat > e.load.predicted.openat)
    }

    @Test("libraries in glibc-hwcaps and legacy subdirectories, found before the directory itself")
    func hardwareSubdirectories() throws {
        let f = try Fixture("hwcaps")
        defer { f.remove() }
        let profile = GlibcProfile.host()
        let best = try #require(profile.hwcapsSubdirectories.last, "no glibc-hwcaps level on this CPU")
        try f.library("fast", in: "lib/glibc-hwcaps/\(best)")
        try f.library("old", in: "lib/tls")
        try f.library("plain", in: "lib")
        try f.program("prog", calls: ["fast", "old", "plain"], linkFlags: ["-Llib/glibc-hwcaps/\(best)", "-Llib/tls", "-Llib",
            "-lfast", "-lold", "-lplain", "-Wl,--disable-new-dtags,-rpath,\(f.path("lib"))"])
        let (e, _) = try check(f.path("prog"), fixture: f)
        #expect(e.resolution["libfast.so"] == f.path("lib/glibc-hwcaps/\(best)/libfast.so"))
        #expect(e.resolution["libold.so"] == f.path("lib/tls/libold.so"))
        #expect(e.resolution["libplain.so"] == f.path("lib/libplain.so"))
    }

    @Test("100 libraries, each in its own RPATH directory")
    func hundredRpath() throws {
        let set = try HundredLibraries.shared.get()
        let (e, measured) = try check(set.rpathProgram, fixture: set.fixture)
        #expect(e.load.libraries.count == 101)
        #expect(measured.openat > 1000)
    }

    @Test("100 libraries, each in its own RUNPATH directory")
    func hundredRunpath() throws {
        let set = try HundredLibraries.shared.get()
        let (e, _) = try check(set.runpathProgram, fixture: set.fixture)
        #expect(e.load.objects.filter { $0.origin == .runpath }.count == 100)
    }

    @Test("100 libraries found through a 100-directory LD_LIBRARY_PATH")
    func hundredLdLibraryPath() throws {
        let set = try HundredLibraries.shared.get()
        let (e, _) = try check(set.plainProgram, fixture: set.fixture, ldLibraryPath: set.directories.joined(separator: ":"))
        #expect(e.load.objects.filter { $0.origin == .ldLibraryPath }.count == 100)
    }
}

/// 100 one-function libraries, each in its own directory, built once per test run
/// (two compilers at a time), and three programs needing all of them.
struct HundredLibraries: Sendable {
    let fixture: Fixture
    let directories: [String]
    let rpathProgram: String
    let runpathProgram: String
    let plainProgram: String

    static let shared: Result<HundredLibraries, any Error> = Result { try HundredLibraries() }

    init() throws {
        let fixture = try Fixture("hundred")
        self.fixture = fixture
        var script = "set -e\ncd \(fixture.root)\nmkdir -p src\n"
        for i in 1...100 {
            script += "mkdir -p d\(i)\nprintf 'int p\(i)_f(void) { return \(i); }\\n' > src/p\(i).c\n"
        }
        script += "seq 1 100 | xargs -P 4 -I{} gcc -shared -fPIC -o d{}/libp{}.so src/p{}.c -Wl,-soname,libp{}.so\n"
        try fixture.write("build.sh", script)
        let built = try shell(["/bin/sh", fixture.path("build.sh")], environment: cleanEnvironment)
        guard built.status == 0 else { throw FixtureError(description: "building 100 libraries: \(built.stderr)") }
        directories = (1...100).map { fixture.path("d\($0)") }
        let libs = (1...100).map { fixture.path("d\($0)/libp\($0).so") }
        try fixture.write("src/main.c", "int main(void) { return 0; }\n")
        let joined = directories.joined(separator: ":")
        try fixture.compile(["-o", "prog-rpath", "src/main.c", "-Wl,--no-as-needed"] + libs + ["-Wl,--disable-new-dtags,-rpath,\(joined)"])
        try fixture.compile(["-o", "prog-runpath", "src/main.c", "-Wl,--no-as-needed"] + libs + ["-Wl,--enable-new-dtags,-rpath,\(joined)"])
        try fixture.compile(["-o", "prog-plain", "src/main.c", "-Wl,--no-as-needed"] + libs)
        rpathProgram = fixture.path("prog-rpath")
        runpathProgram = fixture.path("prog-runpath")
        plainProgram = fixture.path("prog-plain")
    }
}
