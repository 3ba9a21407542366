import CAudit
#if canImport(Glibc)
import Glibc
#endif

/// ptrace requests, options and events used by the tracer, from <sys/ptrace.h>
/// through CAudit.
enum PT {
    static let cont = Int32(LP_PTRACE_CONT)
    static let syscall = Int32(LP_PTRACE_SYSCALL)
    static let getEventMsg = Int32(LP_PTRACE_GETEVENTMSG)
    static let seize = Int32(LP_PTRACE_SEIZE)
    static let listen = Int32(LP_PTRACE_LISTEN)

    static let oTraceSysGood = UInt(LP_PTRACE_O_TRACESYSGOOD)
    static let oTraceFork = UInt(LP_PTRACE_O_TRACEFORK)
    static let oTraceVFork = UInt(LP_PTRACE_O_TRACEVFORK)
    static let oTraceClone = UInt(LP_PTRACE_O_TRACECLONE)
    static let oTraceExec = UInt(LP_PTRACE_O_TRACEEXEC)
    static let oTraceSeccomp = UInt(LP_PTRACE_O_TRACESECCOMP)
    static let oExitKill = UInt(LP_PTRACE_O_EXITKILL)

    static let eventFork = Int32(LP_PTRACE_EVENT_FORK)
    static let eventVFork = Int32(LP_PTRACE_EVENT_VFORK)
    static let eventClone = Int32(LP_PTRACE_EVENT_CLONE)
    static let eventExec = Int32(LP_PTRACE_EVENT_EXEC)
    static let eventSeccomp = Int32(LP_PTRACE_EVENT_SECCOMP)
    static let eventStop = Int32(LP_PTRACE_EVENT_STOP)

    static let infoEntry = UInt8(LP_PTRACE_SYSCALL_INFO_ENTRY)
    static let infoExit = UInt8(LP_PTRACE_SYSCALL_INFO_EXIT)
    static let infoSeccomp = UInt8(LP_PTRACE_SYSCALL_INFO_SECCOMP)

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
    /// A path and its NUL: PATH_MAX bytes is the most a system call takes.
    static let pathBufferSize = Int(PATH_MAX) + 1
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
        var buf = [CChar](repeating: 0, count: Proc.pathBufferSize)
        let n = readlink(path, &buf, Proc.pathBufferSize - 1)
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
