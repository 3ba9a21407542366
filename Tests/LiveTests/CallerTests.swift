import Foundation
import Testing
import TestSupport

/// Which object called dlopen: recorded by the tracer (unwinding at the
/// dlopen's first loader call), checked against the objects' own symbol
/// tables read with nm and readelf.
@Suite("dlopen callers", .serialized)
struct CallerTests {
    /// Tiny programs: an executable that dlopens from its own function and
    /// through a function of libA.so (loaded at start-up), and a library whose
    /// constructor dlopens before main.
    struct Program {
        let dir: String
        var app: String { dir + "/app" }
        var libA: String { dir + "/lib/libA.so" }
        var libCtor: String { dir + "/lib/libctor.so" }

        static func build() throws -> Program {
            let p = Program(dir: try scratch("callers"))
            for d in ["plugins", "lib"] { try FileManager.default.createDirectory(atPath: p.dir + "/" + d, withIntermediateDirectories: true) }
            try write("int plug_value(void) { return 7; }\n", to: p.dir + "/src/plug.c")
            for name in ["a", "b", "c", "d", "e"] {
                try gcc(["-shared", "-fPIC", "-o", p.dir + "/plugins/libplug\(name).so", p.dir + "/src/plug.c"])
            }
            try write("""
            #include <dlfcn.h>
            #include <stdio.h>
            __attribute__((noinline)) void *liba_load(const char *name) {
                void *h = dlopen(name, RTLD_NOW);
                if (!h) fprintf(stderr, "libA: %s\\n", dlerror());
                return h;
            }
            """, to: p.dir + "/src/liba.c")
            try write("""
            #include <dlfcn.h>
            __attribute__((constructor)) static void ctor_load(void) { dlopen("libplugc.so", RTLD_NOW); }
            """, to: p.dir + "/src/ctor.c")
            try write("""
            #include <dlfcn.h>
            #include <stdio.h>
            void *liba_load(const char *name);
            __attribute__((noinline)) void *main_load(const char *name) {
                void *h = dlopen(name, RTLD_NOW);
                if (!h) fprintf(stderr, "app: %s\\n", dlerror());
                return h;
            }
            int main(void) {
                void *a = liba_load("libpluga.so");  /* from libA.so */
                void *b = main_load("libplugb.so");  /* from the executable */
                void *d = main_load("libplugd.so");  /* the same call site again */
                void *e = liba_load("libpluge.so");  /* libA.so again, no other call in between */
                main_load("libnotthere.so");         /* a dlopen that fails */
                printf("%d\\n", a && b && d && e);
                return a && b && d && e ? 0 : 1;
            }
            """, to: p.dir + "/src/main.c")
            try gcc(["-shared", "-fPIC", "-o", p.libA, p.dir + "/src/liba.c"])
            try gcc(["-shared", "-fPIC", "-o", p.libCtor, p.dir + "/src/ctor.c"])
            // Two missing directories first, so each dlopen makes failed lookups.
            let rpath = "\(p.dir)/none1:\(p.dir)/none2:\(p.dir)/lib:\(p.dir)/plugins"
            try gcc([p.dir + "/src/main.c", "-o", p.app, "-L" + p.dir + "/lib", "-Wl,--no-as-needed", "-lA", "-lctor",
                     "-Wl,--disable-new-dtags,-rpath," + rpath])
            return p
        }
    }

    static let program: Result<Program, TestFailure> = {
        do { return .success(try Program.build()) } catch { return .failure(error as? TestFailure ?? TestFailure("\(error)")) }
    }()

    /// A function of an object as nm sees it: [start, end) in virtual addresses.
    struct Function { var name: String; var start: UInt64; var end: UInt64 }

    /// nm -S: the defined functions with their sizes (local ones included).
    static func functions(_ object: String) throws -> [Function] {
        let r = try run(["nm", "-S", "--defined-only", object])
        guard r.status == 0 else { throw TestFailure("nm \(object): \(r.stderrText)") }
        return r.stdoutText.split(separator: "\n").compactMap { line in
            let f = line.split(separator: " ")
            guard f.count == 4, "tTwW".contains(f[2]), let a = UInt64(f[0], radix: 16), let n = UInt64(f[1], radix: 16) else { return nil }
            return Function(name: String(f[3]), start: a, end: a + n)
        }
    }

    /// readelf -l: a file offset → the virtual address it is loaded at.
    static func address(ofFileOffset off: UInt64, in object: String) throws -> UInt64 {
        let r = try run(["readelf", "-lW", object])
        for line in r.stdoutText.split(separator: "\n") where line.trimmingCharacters(in: .whitespaces).hasPrefix("LOAD") {
            let f = line.split(separator: " ")
            guard f.count >= 6, let o = UInt64(f[1].dropFirst(2), radix: 16), let v = UInt64(f[2].dropFirst(2), radix: 16),
                  let size = UInt64(f[4].dropFirst(2), radix: 16) else { continue }
            if off >= o && off < o + size { return off - o + v }
        }
        throw TestFailure("offset 0x\(String(off, radix: 16)) is in no LOAD segment of \(object)")
    }

    /// The function (per nm) that contains the call returning to `offset`.
    static func function(containingReturn offset: UInt64, in object: String) throws -> String? {
        let addr = try address(ofFileOffset: offset - 1, in: object)
        return try functions(object).first { addr >= $0.start && addr < $0.end }?.name
    }

    func groups(_ trace: String) throws -> [[String: Any]] {
        let r = try run([loadprobe, "report", "--format", "json", trace])
        guard r.status == 0, let doc = try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any] else {
            throw TestFailure("report failed: \(r.stderrText)")
        }
        let attribution = doc["attribution"] as? [[String: Any]] ?? []
        return attribution.flatMap { $0["loadGroups"] as? [[String: Any]] ?? [] }
    }

    @Test("each dlopen's caller is the object and function that called it (nm, readelf)", .timeLimit(.minutes(3)))
    func callers() throws {
        let p = try Self.program.get()
        let trace = p.dir + "/t.lpt"
        let rec = try run([loadprobe, "-q", "-o", trace, "--", p.app], env: ["PATH": "/usr/bin:/bin", "LANG": "C"], cwd: "/")
        #expect(rec.status == 0, "\(rec.stderrText)")
        let all = try groups(trace)
        let dlopens = all.filter { ($0["phase"] as? String ?? "").hasPrefix("dlopen") }
        // The constructor's dlopen (before main) and the four from main, in order.
        #expect(dlopens.map { $0["first"] as? String } == ["libplugc.so", "libpluga.so", "libplugb.so", "libplugd.so", "libpluge.so", "libnotthere.so"])
        let expected: [String: (object: String, function: String, outer: String)] = [
            "libplugc.so": (p.libCtor, "ctor_load", "call_init"),
            "libpluga.so": (p.libA, "liba_load", "main"),
            "libplugb.so": (p.app, "main_load", "main"),
            "libplugd.so": (p.app, "main_load", "main"),
            "libpluge.so": (p.libA, "liba_load", "main"),
            "libnotthere.so": (p.app, "main_load", "main"),
        ]
        for g in dlopens {
            let first = g["first"] as? String ?? "?"
            guard let want = expected[first] else { continue }
            guard let caller = g["caller"] as? [String: Any], let object = caller["object"] as? String,
                  let offsetText = caller["offset"] as? String, let offset = UInt64(offsetText.dropFirst(2), radix: 16) else {
                Issue.record("no caller for the dlopen of \(first): \(g)")
                continue
            }
            #expect(object == want.object, "dlopen of \(first)")
            guard object == want.object else { continue }
            // Independent truth: the function nm places the call in. A caller taken
            // one frame further out (main, or ld.so's call_init for the
            // constructor) or further in (libc's dlopen) fails here.
            let truth = try Self.function(containingReturn: offset, in: object)
            #expect(truth == want.function, "dlopen of \(first): offset \(offsetText) is in \(truth ?? "no function")")
            #expect(truth != want.outer)
            #expect(caller["symbol"] as? String == want.function, "the report's own symbol lookup")
        }
        // The start-up load has no caller.
        #expect(all.first { $0["phase"] as? String == "libraries" }?["caller"] is NSNull)
    }

    @Test("a caller one frame off would be caught: main's and liba_load's offsets differ from the outer frames'")
    func wrongFrameIsDetected() throws {
        let p = try Self.program.get()
        // The mutation check of the test above, made explicit: nm places main
        // and main_load apart, so an offset inside main (the frame outside
        // main_load) is not accepted as main_load.
        let fns = try Self.functions(p.app)
        let main = try #require(fns.first { $0.name == "main" })
        let load = try #require(fns.first { $0.name == "main_load" })
        #expect(main.end <= load.start || load.end <= main.start)
        #expect(try Self.function(containingReturn: main.start + 5, in: p.app) == "main")
    }

    @Test("--no-ptrace records no caller, and the report says so")
    func auditOnly() throws {
        let p = try Self.program.get()
        let trace = p.dir + "/audit.lpt"
        let rec = try run([loadprobe, "-q", "--no-ptrace", "-o", trace, "--", p.app], env: ["PATH": "/usr/bin:/bin", "LANG": "C"], cwd: "/")
        #expect(rec.status == 0, "\(rec.stderrText)")
        let dlopens = try groups(trace).filter { ($0["phase"] as? String ?? "").hasPrefix("dlopen") }
        #expect(dlopens.count == 6)
        #expect(dlopens.allSatisfy { $0["caller"] is NSNull })
        let text = try run([loadprobe, "report", trace]).stdoutText
        #expect(text.contains("caller not recorded"), "\(text)")
    }

    @Test("the text and JSON reports rank dlopen waste by caller")
    func byCaller() throws {
        let p = try Self.program.get()
        let trace = p.dir + "/rank.lpt"
        _ = try run([loadprobe, "-q", "-o", trace, "--", p.app], env: ["PATH": "/usr/bin:/bin", "LANG": "C"], cwd: "/")
        let r = try run([loadprobe, "report", "--format", "json", trace])
        let doc = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let waste = try #require(doc["waste"] as? [String: Any])
        let callers = try #require(waste["byCaller"] as? [[String: Any]])
        let byName = Dictionary(uniqueKeysWithValues: callers.map { ($0["name"] as? String ?? "", $0) })
        #expect(Set(byName.keys) == ["app: main_load", "libA.so: liba_load", "libctor.so: ctor_load"])
        #expect(byName["app: main_load"]?["groups"] as? Int == 3)
        #expect(byName["libA.so: liba_load"]?["groups"] as? Int == 2)
        #expect(byName["libctor.so: ctor_load"]?["groups"] as? Int == 1)
        // The first dlopen tries the two missing RPATH directories (glibc then
        // remembers they are missing): every caller's groups failed somewhere.
        for c in callers { #expect((c["failed"] as? Int ?? 0) >= 1, "\(c)") }
        let text = try run([loadprobe, "report", trace]).stdoutText
        #expect(text.contains("dlopen groups by caller"))
        #expect(text.contains("libA.so: liba_load (2 dlopens: libpluga.so, libpluge.so)"))
    }
}
