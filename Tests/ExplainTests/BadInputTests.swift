import Foundation
import Testing
@testable import Report
@testable import LoaderModel

/// The built `loadprobe explain` on bad input: one clear line on stderr, exit
/// status 1, nothing on stdout, never a trap.
@Suite("bad input")
struct BadInputTests {
    static let fixture: Result<BadInputFixture, any Error> = Result { try BadInputFixture() }

    struct BadInputFixture: Sendable {
        let fixture: Fixture
        init() throws {
            fixture = try Fixture("bad-input")
            let f = fixture
            try f.write("text.txt", "hello, not an ELF file\n")
            try f.write("script.sh", "#!/bin/sh\necho hi\n")
            _ = FileManager.default.createFile(atPath: f.path("empty"), contents: Data())
            try f.program("prog", linkFlags: [])
            let program = try Data(contentsOf: URL(fileURLWithPath: f.path("prog")))
            try program.prefix(30).write(to: URL(fileURLWithPath: f.path("truncated-ident")))
            try program.prefix(64).write(to: URL(fileURLWithPath: f.path("truncated-header")))
            try program.prefix(2000).write(to: URL(fileURLWithPath: f.path("truncated-2000")))
            // Cut inside the program header table: the header says it has some, libelf sees none.
            for n in [65, 100, 119] { try program.prefix(n).write(to: URL(fileURLWithPath: f.path("truncated-\(n)"))) }
            var foreign = program
            foreign[18] = 183 // EM_AARCH64
            foreign[19] = 0
            try foreign.write(to: URL(fileURLWithPath: f.path("aarch64")))
            try BadInputFixture.elf32Header().write(to: URL(fileURLWithPath: f.path("i386")))
            try f.write("src/obj.c", "int f(void) { return 1; }\n")
            try f.compile(["-c", "-o", "obj.o", "src/obj.c"])
            _ = FileManager.default.createFile(atPath: f.path("unreadable"), contents: program)
            chmod(f.path("unreadable"), 0)
            mkfifo(f.path("fifo"), 0o644)
        }

        /// A minimal i386 executable header: ELFCLASS32, EM_386, no program headers.
        static func elf32Header() -> Data {
            var bytes = [UInt8](repeating: 0, count: 52)
            bytes[0...6] = [0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]
            bytes[16] = 2    // ET_EXEC
            bytes[18] = 3    // EM_386
            bytes[20] = 1    // EV_CURRENT
            bytes[40] = 52   // e_ehsize
            bytes[42] = 32   // e_phentsize
            bytes[46] = 40   // e_shentsize
            return Data(bytes)
        }
    }

    func expectOneLineError(_ path: String, mentioning words: [String], asUser: Bool = false,
                            sourceLocation: SourceLocation = #_sourceLocation) throws {
        var argv = [loadprobeExecutable, "explain", path]
        if asUser { argv = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"] + argv }
        let result = try shell(argv, environment: cleanEnvironment)
        #expect(result.status == 1, "status \(result.status), stderr: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stdout.isEmpty, sourceLocation: sourceLocation)
        let lines = result.stderr.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty, "not one line: \(result.stderr)", sourceLocation: sourceLocation)
        #expect(result.stderr.hasPrefix("loadprobe explain: \(path): "), "\(result.stderr)", sourceLocation: sourceLocation)
        for word in words {
            #expect(result.stderr.contains(word), "\(result.stderr) lacks \(word)", sourceLocation: sourceLocation)
        }
    }

    @Test("not an ELF file: text, a script, an empty file")
    func notELF() throws {
        let f = try Self.fixture.get().fixture
        try expectOneLineError(f.path("text.txt"), mentioning: ["not an ELF file"])
        try expectOneLineError(f.path("script.sh"), mentioning: ["not an ELF file", "script for /bin/sh"])
        try expectOneLineError(f.path("empty"), mentioning: ["empty file"])
    }

    @Test("truncated ELF files")
    func truncated() throws {
        let f = try Self.fixture.get().fixture
        try expectOneLineError(f.path("truncated-ident"), mentioning: ["truncated"])
        try expectOneLineError(f.path("truncated-header"), mentioning: ["truncated"])
        try expectOneLineError(f.path("truncated-2000"), mentioning: ["truncated"])
        for n in [65, 100, 119] { try expectOneLineError(f.path("truncated-\(n)"), mentioning: ["truncated", "program headers"]) }
    }

    @Test("a directory, a missing file, an unreadable file")
    func notAFile() throws {
        let f = try Self.fixture.get().fixture
        try expectOneLineError(f.root, mentioning: ["is a directory"])
        try expectOneLineError(f.path("does-not-exist"), mentioning: ["no such file"])
        // Opening a FIFO must not wait for a writer.
        try expectOneLineError(f.path("fifo"), mentioning: ["not a regular file"])
        // Root reads anything; run as nobody so that mode 000 means unreadable.
        try expectOneLineError(f.path("unreadable"), mentioning: ["permission denied"], asUser: getuid() == 0)
    }

    @Test("32-bit, foreign-architecture and relocatable files")
    func unsupported() throws {
        let f = try Self.fixture.get().fixture
        try expectOneLineError(f.path("i386"), mentioning: ["32-bit", "ELFCLASS32"])
        try expectOneLineError(f.path("aarch64"), mentioning: ["aarch64", "not x86-64"])
        try expectOneLineError(f.path("obj.o"), mentioning: ["relocatable"])
    }

    @Test("a good program: exit 0, a tree on stdout, nothing on stderr")
    func goodProgram() throws {
        let f = try Self.fixture.get().fixture
        let result = try shell([loadprobeExecutable, "explain", f.path("prog")], environment: cleanEnvironment)
        #expect(result.status == 0)
        #expect(result.stderr.isEmpty)
        #expect(result.stdout.contains("libc.so.6 => /"))
        let json = try shell([loadprobeExecutable, "explain", "--json", f.path("prog")], environment: cleanEnvironment)
        let document = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any]
        #expect(document?["format"] as? String == "loadprobe-explain/1")
        #expect(document?["program"] as? String == f.path("prog"))
        let objects = document?["objects"] as? [[String: Any]] ?? []
        #expect(objects.contains { $0["needed"] as? String == "libc.so.6" && $0["origin"] as? String == "CONFIG" })
        for key in ["needed", "neededBy", "path", "origin", "tries"] {
            #expect(objects.allSatisfy { $0.keys.contains(key) }, "objects lack \(key)")
        }
        let predicted = document?["predicted"] as? [String: Any]
        #expect(predicted?["openat"] as? Int != nil && predicted?["stat"] as? Int != nil)
        #expect(document?["hazards"] is [Any])
    }
}
