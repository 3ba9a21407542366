import CAudit
import Foundation
import Report
import TestSupport
import Testing
import TraceFormat

/// The audit stream against glibc's own log: every `trying file=` line of
/// LD_DEBUG=libs, in order, with the origin class of its `search path=` or
/// `search cache=` line, must be one la_objsearch candidate of the trace.
@Suite("audit parity with LD_DEBUG=libs", .serialized)
struct AuditParityTests {
    struct Candidate: Equatable, CustomStringConvertible {
        var path: String
        var origin: String
        var description: String { "\(origin):\(path)" }
    }

    static func ldDebugCandidates(_ stderr: String) -> [Candidate] {
        var out: [Candidate] = []
        var origin = "?"
        for raw in stderr.split(separator: "\n") {
            guard let tab = raw.firstIndex(of: "\t") else { continue }
            let line = raw[raw.index(after: tab)...].drop { $0 == " " }
            if line.hasPrefix("search path=") {
                if line.hasSuffix("(LD_LIBRARY_PATH)") { origin = "LD_LIBRARY_PATH" }
                else if line.hasSuffix("(system search path)") { origin = "DEFAULT" }
                else if line.contains("(RPATH from file") || line.contains("(RUNPATH from file") { origin = "RUNPATH" }
                else { origin = "?" }
            } else if line.hasPrefix("search cache=") {
                origin = "CONFIG"
            } else if line.hasPrefix("trying file=") {
                out.append(Candidate(path: String(line.dropFirst("trying file=".count)), origin: origin))
            }
        }
        return out
    }

    static func auditCandidates(_ trace: Trace, pid: Int32? = nil) -> [Candidate] {
        trace.events.compactMap { e -> Candidate? in
            guard case .audit(let a) = e, a.kind == .objsearch, !AuditSearchFlag(rawValue: a.flag).isOriginalName else { return nil }
            if let pid, a.pid != pid { return nil }
            let origin = AuditSearchFlag(rawValue: a.flag).origin?.auditName ?? "?"
            return Candidate(path: trace.path(a.name), origin: origin)
        }
    }

    static let cases: [(String, @Sendable (Fixtures) -> ([String], [String: String]))] = [
        ("RPATH", { f in ([f.path("rpath3")], [:]) }),
        ("RUNPATH", { f in ([f.path("runpath3")], [:]) }),
        ("LD_LIBRARY_PATH", { f in ([f.path("plain")], ["LD_LIBRARY_PATH": "\(f.d1):\(f.d2):\(f.d3)"]) }),
        ("dlopen", { f in ([f.path("dlopen")], [:]) }),
    ]

    @Test("candidates equal LD_DEBUG=libs, path for path and origin for origin", arguments: ["RPATH", "RUNPATH", "LD_LIBRARY_PATH", "dlopen"], ["full", "no-ptrace"])
    func candidates(_ name: String, _ mode: String) throws {
        let f = try Fixtures.get()
        let (argv, extra) = Self.cases.first { $0.0 == name }!.1(f)
        var env = baseEnvironment()
        for (k, v) in extra { env[k] = v }
        var debugEnv = env
        debugEnv["LD_DEBUG"] = "libs"
        let truth = Self.ldDebugCandidates(try run(argv, env: debugEnv).stderrText)
        #expect(truth.count >= 3, "LD_DEBUG gave \(truth)")
        #expect(truth.contains { $0.path.contains("glibc-hwcaps") } || name == "dlopen" || truth.allSatisfy { $0.origin == "CONFIG" },
                "hwcaps subdirectories are probed for RPATH/RUNPATH/LD_LIBRARY_PATH dirs")

        let trace = try scratch("audit") + "/t.lpt"
        let r = try run([loadprobe, "-q", "-o", trace] + (mode == "no-ptrace" ? ["--no-ptrace"] : []) + ["--"] + argv, env: env)
        #expect(r.status != 1 || name == "dlopen")
        let t = try TraceReader.read(file: trace)
        let got = Self.auditCandidates(t)
        #expect(got == truth, "audit \(got.count) candidates vs LD_DEBUG \(truth.count)\nfirst difference: \(zip(got, truth).first { $0 != $1 }.map { "\($0) vs \($1)" } ?? "lengths")")
    }

    @Test("the audit library has no DT_NEEDED")
    func noNeeded() throws {
        let r = try run(["readelf", "-d", productsDir + "/libloadprobe-audit.so"])
        #expect(r.status == 0)
        #expect(r.stdoutText.contains("Dynamic section"))
        #expect(!r.stdoutText.contains("(NEEDED)"), "\(r.stdoutText)")
    }

    @Test("fork and exec: every process gets its own audit records, with its own pid")
    func forkExec() throws {
        let f = try Fixtures.get()
        let trace = try scratch("auditfork") + "/t.lpt"
        let r = try run([loadprobe, "-q", "-o", trace, "--", f.path("forkexec"), f.path("rpath3")], env: baseEnvironment())
        #expect(r.status == 5)
        let t = try TraceReader.read(file: trace)
        var pidsWithPreinit = Set<Int32>()
        var pidsWithSearch = Set<Int32>()
        for e in t.events {
            if case .audit(let a) = e {
                if a.kind == .preinit { pidsWithPreinit.insert(a.pid) }
                if a.kind == .objsearch { pidsWithSearch.insert(a.pid) }
            }
        }
        #expect(pidsWithPreinit.count == 2, "both the parent and the exec'd child reach main")
        #expect(pidsWithSearch.count == 2)
    }
}

/// TraceFormat spells the audit flags as the wire header does (CAudit checks
/// the header against <link.h> at build time).
@Suite struct AuditFlagTests {
    @Test func searchFlagsAreTheWireHeaders() {
        let pairs: [(AuditSearchFlag, UInt32)] = [(.orig, LP_LA_SER_ORIG.rawValue), (.libpath, LP_LA_SER_LIBPATH.rawValue),
                                                  (.runpath, LP_LA_SER_RUNPATH.rawValue), (.config, LP_LA_SER_CONFIG.rawValue),
                                                  (.defaultDirs, LP_LA_SER_DEFAULT.rawValue), (.secure, LP_LA_SER_SECURE.rawValue)]
        for (flag, wire) in pairs { #expect(UInt32(flag.rawValue) == wire) }
    }

    @Test func flagsDecodeToOneOrigin() {
        #expect(AuditSearchFlag.libpath.origin == .ldLibraryPath)
        #expect(AuditSearchFlag([.runpath, .secure]).origin == .rpathOrRunpath)
        #expect(AuditSearchFlag.config.origin == .cache)
        #expect(AuditSearchFlag.defaultDirs.origin == .defaultPath)
        #expect(AuditSearchFlag.orig.origin == nil && AuditSearchFlag.orig.isOriginalName)
        #expect(AuditSearchFlag([.libpath, .runpath]).origin == nil)
        #expect(AuditSearchFlag.secure.origin == nil && AuditSearchFlag.secure.isSecureOnly)
        #expect(LookupOrigin.rpathOrRunpath.label == "RPATH/RUNPATH" && LookupOrigin.rpathOrRunpath.auditName == "RUNPATH")
        var counts = SearchFlagCounts()
        for raw: UInt16 in [0x01, 0x81, 0x02, 0x04, 0x84, 0x08, 0x40, 0x80, 0x06] { counts.add(AuditSearchFlag(rawValue: raw)) }
        #expect(counts.entries().map(\.name) == ["ORIG", "LD_LIBRARY_PATH", "RUNPATH", "CONFIG", "DEFAULT", "SECURE"])
        #expect(counts.entries().map(\.count) == [2, 1, 2, 1, 1, 1])
    }
}
