import LoaderModel
import Report
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// `fix --check`: the program and its fixed copy run once each under
/// loadprobe, with the same arguments and environment; the verdict is diff's
/// (the same objects by content hash in the same order) plus the same exit
/// status, stdout and stderr, and the recorded calls.
struct Checker {
    let program: String
    let copy: String
    let arguments: [String]
    let say: (String, Int32) -> Void

    func run() throws(FixError) {
        // $TMPDIR as a batch job sets it (node-local scratch), else /tmp.
        let base = getenv("TMPDIR").map { String(cString: $0) }.flatMap { $0.hasPrefix("/") ? $0 : nil } ?? "/tmp"
        var template = Array((LoaderWorld.trimmedPath(base) + "/loadprobe-check-XXXXXX").utf8CString)
        guard let dir = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw FixError("--check: cannot make a scratch directory in \(base): \(String(cString: strerror(errno)))")
        }
        let files = ["before.lpt", "after.lpt", "before.out", "after.out", "before.err", "after.err"].map { dir + "/" + $0 }
        for f in files + [dir] { FixCleanup.track(f) }
        defer {
            for f in files { unlink(f) }
            rmdir(dir)
            for f in files + [dir] { FixCleanup.untrack(f) }
        }
        let before = try record("before", program, dir: dir)
        let after = try record("after", copy, dir: dir)
        let analyses = try [before.trace, after.trace].map { file throws(FixError) -> TraceAnalysis in
            do throws(TraceReadError) {
                return TraceAnalysis(trace: try TraceReader.read(file: file, allowPartial: true), file: file)
            } catch { throw FixError("--check: \(error.description)") }
        }
        let d = TraceDiff(before: analyses[0], after: analyses[1], options: ReportOptions())
        var problems: [String] = []
        switch d.objects {
        case .sameOrder:
            say("check: the same \(d.before.objects.count) objects (content hash) in the same order", 1)
        case .sameSetDifferentOrder(let i):
            problems.append("the same objects in another order (first difference at #\(i + 1))")
        case .different(let added, let removed):
            problems.append("other objects: \(removed.count) only in the program, \(added.count) only in the copy"
                            + (added.first.map { " (e.g. \($0))" } ?? ""))
        }
        if before.status != after.status { problems.append("exit status \(before.status) became \(after.status)") }
        for stream in ["out", "err"] where Self.read(dir + "/before." + stream) != Self.read(dir + "/after." + stream) {
            problems.append("std\(stream) differs")
        }
        if problems.isEmpty { say("check: the same exit status (\(before.status)), stdout and stderr", 1) }
        say("check: recorded file calls \(d.before.calls) → \(d.after.calls), failed \(d.before.failed) → \(d.after.failed)", 1)
        if !problems.isEmpty { throw FixError("--check failed: " + problems.joined(separator: "; ")) }
    }

    /// One recording; the program's exit status as loadprobe passes it on.
    private func record(_ label: String, _ path: String, dir: String) throws(FixError) -> (trace: String, status: Int32) {
        let trace = dir + "/" + label + ".lpt"
        let command = path.contains("/") ? path : "./" + path
        let r = Spawn.run(["/proc/self/exe", "record", "-q", "-o", trace, "--", command] + arguments,
                          stdoutFile: dir + "/" + label + ".out", stderrFile: dir + "/" + label + ".err")
        guard access(trace, R_OK) == 0 else { throw FixError("--check: recording \(path) failed (status \(r.status))") }
        return (trace, r.status)
    }

    static func read(_ path: String) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return [] }
        defer { close(fd) }
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out
    }
}
