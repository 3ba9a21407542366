import CAudit
#if canImport(Glibc)
import Glibc
#endif

/// ptrace requests, options and events used by the tracer (<sys/ptrace.h>,
/// <linux/ptrace.h>); spelled out because Swift imports them inconsistently.
enum PT {
    static let cont: Int32 = 7
    static let syscall: Int32 = 24
    static let setOptions: Int32 = 0x4200
    static let getEventMsg: Int32 = 0x4201
    static let seize: Int32 = 0x4206
    static let interrupt: Int32 = 0x4207
    static let listen: Int32 = 0x4208

    static let oTraceSysGood: UInt = 0x1
    static let oTraceFork: UInt = 0x2
    static let oTraceVFork: UInt = 0x4
    static let oTraceClone: UInt = 0x8
    static let oTraceExec: UInt = 0x10
    static let oTraceSeccomp: UInt = 0x80
    static let oExitKill: UInt = 0x100000

    static let eventFork: Int32 = 1
    static let eventVFork: Int32 = 2
    static let eventClone: Int32 = 3
    static let eventExec: Int32 = 4
    static let eventSeccomp: Int32 = 7
    static let eventStop: Int32 = 128

    static let infoEntry: UInt8 = 1
    static let infoExit: UInt8 = 2
    static let infoSeccomp: UInt8 = 3

    @discardableResult
    static func request(_ r: Int32, _ tid: Int32, _ addr: UInt = 0, _ data: UInt = 0) -> Int {
        Int(lp_ptrace(r, tid, addr, data))
    }

    static func eventMessage(_ tid: Int32) -> UInt {
        var msg: UInt = 0
        _ = withUnsafeMutablePointer(to: &msg) { lp_ptrace(getEventMsg, tid, 0, UInt(bitPattern: $0)) }
        return msg
    }
}

/// Small helpers reading /proc for the tracer.
enum Proc {
    /// The thread-group id and parent of a task, from /proc/TID/status.
    static func ids(of tid: Int32) -> (tgid: Int32, ppid: Int32)? {
        guard let text = readSmallFile("/proc/\(tid)/status") else { return nil }
        var tgid: Int32?, ppid: Int32?
        for line in text.split(separator: "\n") {
            if line.hasPrefix("Tgid:") { tgid = Int32(line.dropFirst(5).trimmingCharacters()) }
            else if line.hasPrefix("PPid:") { ppid = Int32(line.dropFirst(5).trimmingCharacters()) }
            if tgid != nil && ppid != nil { break }
        }
        guard let t = tgid else { return nil }
        return (t, ppid ?? 0)
    }

    static func readLink(_ path: String) -> String? {
        var buf = [CChar](repeating: 0, count: 4097)
        let n = readlink(path, &buf, 4096)
        guard n >= 0 else { return nil }
        return String(decoding: buf[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func readSmallFile(_ path: String, limit: Int = 1 << 22) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var out: [UInt8] = []
        var buf = [UInt8](repeating: 0, count: 16384)
        while out.count < limit {
            let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            out.append(contentsOf: buf[0..<n])
        }
        return String(decoding: out, as: UTF8.self)
    }
}

extension Substring {
    func trimmingCharacters() -> Substring {
        var s = self
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\n" { s.removeLast() }
        return s
    }
}
