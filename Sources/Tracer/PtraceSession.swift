import SystemLayer
import CAudit
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// The stop loop: one thread waits for every traced task, decodes the
/// file-lookup calls at their seccomp stop, completes them at their exit stop
/// and writes one event per call. Programs run with a seccomp filter, so only
/// the traced calls stop them; without it (`filtered == false`, for set-user-ID
/// programs) every system call stops twice.
final class PtraceSession {
    struct Pending {
        var call: FileCall
        var dirfd: Int32?
        /// What the path is to loadprobe itself (see isOwn).
        var pathKind: PathKind
        var path: PathRef
        var resolved: PathRef?
        var flags: UInt64
        var entryNs: UInt64
        var argv: [String]?
    }

    enum PathKind { case other, empty, auditLibrary, auditRecordFile }

    struct ThreadState {
        var pid: Int32
        var pending: Pending?
        var announced: Bool
        var caller = CallerTracker.ThreadKey()
        /// The program's own sandbox, as a task attribute: inherited by the
        /// threads and processes it creates, kept across exec.
        var sandbox = Sandbox()
    }

    /// What the program itself asked of seccomp and no_new_privs, told apart
    /// from loadprobe's filter (and the no_new_privs it needed without
    /// CAP_SYS_ADMIN), so that the program sees its own settings only.
    struct Sandbox {
        var ownFilter = false
        var ownNoNewPrivs = false
    }

    /// A call of the program's sandbox or tracing whose exit stop decides something.
    enum SecurityCall { case installFilter, strictMode, ptrace(request: UInt64) }

    struct ProcessState {
        /// The fd of the audit library's own openat, until its fstat.
        var auditLibraryFd: Int64?
        var pinned: Bool
        /// Whether the tracer may answer this process's missing lookups: it
        /// sees the same files with the same rights (nil: not checked yet).
        var sameView: Bool? = nil
        var image = CallerTracker.Image()
    }

    let writer: TraceWriter
    let rootPid: Int32
    let filtered: Bool
    /// loadprobe set no_new_privs for its filter (the program started without
    /// CAP_SYS_ADMIN): exec'd set-user-ID and file-capability programs run
    /// without their privileges, and the program must not see the flag.
    let noNewPrivsByUs: Bool
    /// Calls awaiting their exit stop (see SecurityCall), by thread.
    private var securityCalls: [Int32: SecurityCall] = [:]
    /// Things said once per run on stderr as well as in the trace.
    private(set) var warnings: [String] = []
    private var ptraceNoted = false
    let auditLibrary: [UInt8]?
    let auditDirPrefix: [UInt8]?
    /// When set, traced programs start on the tracer's CPU (a stop round trip
    /// is several times cheaper there) and get this mask back at main.
    let originalAffinity: [Int32]?

    private(set) var threads: [Int32: ThreadState] = [:]
    private(set) var processes: [Int32: ProcessState] = [:]
    private(set) var rootStatus: Int32?
    private(set) var ownCalls = 0
    private(set) var tracedCalls = 0
    private var pathBuffer = [CChar](repeating: 0, count: Proc.pathBufferSize)
    /// sched_getaffinity calls of pinned processes awaiting their exit stop: tid → user buffer.
    private var affinityQueries: [Int32: UInt64] = [:]
    /// The original mask in the kernel's cpu_set_t layout.
    private lazy var originalMask: [UInt8] = {
        guard let cpus = originalAffinity else { return [] }
        var mask = [UInt8](repeating: 0, count: 1024 / 8)
        cpus.map { Int32($0) }.withUnsafeBufferPointer { c in
            mask.withUnsafeMutableBufferPointer { lp_fill_mask(c.baseAddress, Int32(c.count), $0.baseAddress, $0.count) }
        }
        return mask
    }()
    private let resume: Int32
    /// Answer lookups of missing paths at the seccomp stop (see `answerMiss`).
    let answerMisses: Bool
    private(set) var answeredCalls = 0
    private lazy var ownView: (mnt: (UInt, UInt)?, lines: [Substring]) = (Self.mountNamespace("self"), Self.credentialLines("self"))
    /// Names the object that called each dlopen (nil: not asked for).
    let recordCallers: Bool
    private(set) var callers = CallerTracker()

    init(writer: TraceWriter, rootPid: Int32, filtered: Bool, auditLibrary: String?, auditDir: String?,
         originalAffinity: [Int32]?, answerMisses: Bool, recordCallers: Bool = true, noNewPrivsByUs: Bool = false) {
        self.noNewPrivsByUs = noNewPrivsByUs
        self.recordCallers = recordCallers
        self.answerMisses = answerMisses && lp_can_skip_syscall != 0
        self.writer = writer
        self.rootPid = rootPid
        self.filtered = filtered
        self.auditLibrary = auditLibrary.map { Array($0.utf8) }
        self.auditDirPrefix = auditDir.map { Array(($0 + "/").utf8) }
        self.originalAffinity = originalAffinity
        self.resume = filtered ? PT.cont : PT.syscall
        threads[rootPid] = ThreadState(pid: rootPid, pending: nil, announced: true)
        processes[rootPid] = ProcessState(auditLibraryFd: nil, pinned: originalAffinity != nil)
    }

    static var options: UInt {
        PT.oTraceSysGood | PT.oTraceFork | PT.oTraceVFork | PT.oTraceClone | PT.oTraceExec
            | PT.oTraceSeccomp | PT.oExitKill
    }

    /// Whether calls are recorded (false once the recording has ended and the
    /// tracer only keeps the remaining tasks running: `serve`).
    private(set) var recording = true

    /// Runs until the first process has ended (as its parent, a shell, would
    /// wait), or every traced task has. Returns the root's wait status; the
    /// tasks still running are `remainingTasks`.
    func run() throws -> Int32 {
        var status: Int32 = 0
        while !threads.isEmpty && rootStatus == nil {
            let tid = lp_wait_all(&status)
            if tid < 0 {
                if errno == ECHILD { break }
                continue
            }
            try handle(tid: tid, status: status)
        }
        if rootStatus != nil {
            for pid in Set(threads.values.map(\.pid)).sorted() {
                try writer.note(pid: pid, "still running when the first process ended: not recorded further (loadprobe returned, as the program's parent would)")
            }
        }
        return rootStatus ?? 0
    }

    /// Processes still traced after the first one ended (a daemon, a
    /// background job).
    var remainingProcesses: Int { Set(threads.values.map(\.pid)).count }

    /// After the recording: keeps the remaining tasks running as they would
    /// untraced (loadprobe's filter still stops them, and their own sandbox is
    /// still emulated) until the last has ended. Nothing is recorded.
    func serve() {
        recording = false
        var status: Int32 = 0
        while !threads.isEmpty {
            let tid = lp_wait_all(&status)
            if tid < 0 {
                if errno == ECHILD { break }
                continue
            }
            try? handle(tid: tid, status: status)
        }
    }

    private func handle(tid: Int32, status: Int32) throws {
        if lp_wifexited(status) != 0 || lp_wifsignaled(status) != 0 {
            try ended(tid: tid, status: status)
            return
        }
        guard lp_wifstopped(status) != 0 else { return }
        if threads[tid] == nil { adopt(tid) }
        let sig = lp_wstopsig(status)
        let event = (status >> 16) & 0xff
        switch event {
        case PT.eventSeccomp:
            try syscallStop(tid)
        case PT.eventFork, PT.eventVFork, PT.eventClone:
            let child = Int32(truncatingIfNeeded: PT.eventMessage(tid))
            try spawned(child: child, by: tid, event: event)
            PT.request(resume, tid)
        case PT.eventExec:
            let former = Int32(truncatingIfNeeded: PT.eventMessage(tid))
            try execed(tid: tid, former: former)
            PT.request(resume, tid)
        case PT.eventStop:
            if sig == SIGSTOP || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU {
                PT.request(PT.listen, tid) // a group-stop: stay stopped, as untraced
            } else {
                PT.request(resume, tid) // the first stop of an auto-attached task
            }
        case 0 where sig == (SIGTRAP | 0x80):
            try syscallStop(tid)
        default:
            // A signal for the program: deliver it unchanged.
            PT.request(resume, tid, 0, UInt(sig))
        }
    }

    // MARK: tasks

    private func adopt(_ tid: Int32) {
        // A new task can report its first stop before its parent's fork/clone event.
        let ids = Proc.ids(of: tid)
        let pid = ids?.tgid ?? tid
        threads[tid] = ThreadState(pid: pid, pending: nil, announced: false)
        if processes[pid] == nil {
            processes[pid] = ProcessState(auditLibraryFd: nil, pinned: originalAffinity != nil)
        }
    }

    private func spawned(child: Int32, by parentTid: Int32, event: Int32) throws {
        guard child > 0 else { return }
        let parentPid = threads[parentTid]?.pid ?? parentTid
        var how: ProcessStart = event == PT.eventFork ? .fork : event == PT.eventVFork ? .vfork : .clone
        var pid = child
        if event == PT.eventClone, let ids = Proc.ids(of: child), ids.tgid != child {
            how = .thread
            pid = ids.tgid
        }
        if threads[child] == nil || threads[child]?.announced == false {
            threads[child] = ThreadState(pid: pid, pending: nil, announced: true)
        }
        if let inherited = threads[parentTid]?.sandbox { threads[child]?.sandbox = inherited }
        if pid == child, processes[pid] == nil {
            processes[pid] = ProcessState(auditLibraryFd: nil, pinned: processes[parentPid]?.pinned ?? false)
        }
        if pid == child, let parentImage = processes[parentPid]?.image {
            // A forked child runs the parent's image at the same addresses.
            processes[pid]?.image = parentImage.forked()
        }
        try writer.write(ProcessEvent(pid: pid, tid: child, parent: parentPid, how: how, timeNs: lp_monotonic_ns()))
    }

    private func ended(tid: Int32, status: Int32) throws {
        guard let state = threads.removeValue(forKey: tid) else { return }
        let now = lp_monotonic_ns()
        if let p = state.pending {
            // The task ended inside the call (killed, or exit from another thread).
            try emit(tid: tid, pid: state.pid, p, result: 0, completed: false, exitNs: now)
        }
        try writer.write(ExitEvent(pid: state.pid, tid: tid, status: status, timeNs: now))
        if tid == rootPid { rootStatus = status }
        if tid == state.pid { processes.removeValue(forKey: state.pid) }
    }

    private func execed(tid: Int32, former: Int32) throws {
        let now = lp_monotonic_ns()
        var state = threads[tid] ?? ThreadState(pid: tid, pending: nil, announced: true)
        if former != tid, let old = threads.removeValue(forKey: former) {
            // execve from a non-leader thread: it takes over the leader's id.
            state.pending = old.pending
        }
        state.pid = tid
        var execPath = PathRef.none
        var argv: [UInt32] = []
        if let p = state.pending, p.call.isExec {
            try emit(tid: former, pid: tid, p, result: 0, completed: true, exitNs: now)
            execPath = p.resolved ?? p.path
            argv = (p.argv ?? []).map { writer.intern($0) }
        }
        state.pending = nil
        state.caller = CallerTracker.ThreadKey()
        threads[tid] = state
        processes[tid]?.auditLibraryFd = nil
        processes[tid]?.sameView = nil
        if recordCallers {
            // The new image's entry (the loader's, for a dynamic program) and initial stack.
            var regs = lp_syscall_info()
            processes[tid]?.image = lp_get_syscall_info(tid, &regs) == 0 ? CallerTracker.Image(entry: regs.ip, stack: regs.sp) : CallerTracker.Image()
        }
        try writer.write(ExecEvent(pid: tid, formerTid: former, path: execPath, argv: argv, timeNs: now))
        if noNewPrivsByUs, state.sandbox.ownNoNewPrivs == false, let exe = Proc.readLink("/proc/\(tid)/exe") {
            var st = stat()
            let privileged = stat(exe, &st) == 0 && st.st_mode & (S_ISUID | S_ISGID) != 0
                && (st.st_uid != geteuid() || st.st_mode & S_ISGID != 0)
            let what = privileged ? "is set-user-ID or set-group-ID" : lp_file_has_capabilities(exe) == 1 ? "has file capabilities" : nil
            if let what {
                try warn(pid: tid, "\(exe) \(what): it ran without those privileges, because loadprobe's seccomp filter needs no_new_privs when loadprobe runs without CAP_SYS_ADMIN (run loadprobe as root, or use --no-ptrace)")
            }
        }
    }

    // MARK: system calls

    private func syscallStop(_ tid: Int32) throws {
        var info = lp_syscall_info()
        guard lp_get_syscall_info(tid, &info) == 0 else {
            PT.request(resume, tid)
            return
        }
        switch info.op {
        case PT.infoSeccomp, PT.infoEntry:
            try entry(tid, info)
        case PT.infoExit:
            try exit(tid, info)
        default:
            PT.request(resume, tid)
        }
    }

    private func entry(_ tid: Int32, _ info: lp_syscall_info) throws {
        let now = lp_monotonic_ns()
        guard info.arch == lp_native_audit_arch else { PT.request(resume, tid); return }
        let code = lp_call_for_nr(info.nr)
        if code == Int32(LP_CALL_PREINIT_SIGNAL.rawValue) {
            if Int32(truncatingIfNeeded: info.args.0) == LP_PREINIT_MAGIC_FD { startupLoaded(tid) }
            PT.request(resume, tid)
            return
        }
        if info.op == PT.infoSeccomp, info.ret_data != LP_FILTER_DATA {
            try foreignSeccompStop(tid, info)
            return
        }
        if code == Int32(LP_CALL_PRCTL_SECURITY.rawValue) || code == Int32(LP_CALL_SECCOMP.rawValue)
            || code == Int32(LP_CALL_PTRACE.rawValue) {
            try securityCall(tid, info, code: code)
            return
        }
        if code == Int32(LP_CALL_VIEW_CHANGE.rawValue) {
            // The process may now see other files, or with other rights.
            processes[threads[tid]?.pid ?? tid]?.sameView = false
            PT.request(resume, tid)
            return
        }
        if code == Int32(LP_CALL_SCHED_GETAFFINITY.rawValue) || code == Int32(LP_CALL_SCHED_SETAFFINITY.rawValue) {
            affinityCall(tid, info, get: code == Int32(LP_CALL_SCHED_GETAFFINITY.rawValue))
            return
        }
        guard recording, code > 0, let call = FileCall(rawValue: UInt8(code)) else { PT.request(resume, tid); return }
        let a = info.args // a tuple: no allocation per stop
        let (dirfd, pathArg, flags) = Self.arguments(call, a, tid: tid)
        // A loader call in a dlopen (or the start-up load) whose caller is
        // known: its key word is read with the path (CallerTracker).
        let keySlot = recordCallers ? callerKeySlot(tid: tid, ip: info.ip, sp: info.sp) : 0
        var keyWord: UInt64 = 0
        var keyRead: Int32 = 0
        let n = pathArg == 0 ? -1 : pathBuffer.withUnsafeMutableBufferPointer {
            lp_read_string_word(tid, UInt(pathArg), $0.baseAddress, Proc.pathBufferSize, UInt(keySlot), &keyWord, &keyRead)
        }
        var path = PathRef.none
        var resolved: PathRef? = nil
        var kind = PathKind.other
        pathBuffer.withUnsafeBytes { raw in
            let bytes = UnsafeRawBufferPointer(rebasing: raw[0..<max(n, 0)])
            path = writer.internPath(bytes: bytes)
            if bytes.isEmpty { kind = .empty }
            else if let lib = auditLibrary, bytes.elementsEqual(lib) { kind = .auditLibrary }
            else if let dir = auditDirPrefix, bytes.starts(with: dir) { kind = .auditRecordFile }
            if bytes.first != UInt8(ascii: "/") {
                let text = String(decoding: bytes, as: UTF8.self)
                if let full = resolve(tid: tid, dirfd: dirfd, path: text) { resolved = writer.internPath(full) }
            }
        }
        if recordCallers, let pid = threads[tid]?.pid {
            try loaderCall(tid: tid, pid: pid, ip: info.ip, sp: info.sp, ownRecordFile: kind == .auditRecordFile,
                           keyWord: keySlot != 0 && keyRead != 0 ? keyWord : nil, now: now)
        }
        if answerMisses, n > 1, kind == .other, let nofollow = Self.lookupFollow(call, flags: flags),
           let errno = answerMiss(tid: tid, nofollow: nofollow) {
            let pid = threads[tid]?.pid ?? tid
            answeredCalls += 1
            tracedCalls += 1
            try writer.write(SyscallEvent(
                pid: pid, tid: tid, call: call, dirfd: dirfd, path: path, resolved: nil, flags: flags,
                result: -Int64(errno), completed: true, own: false, entryNs: now, exitNs: lp_monotonic_ns(), answered: true))
            PT.request(resume, tid)
            return
        }
        var argv: [String]? = nil
        if call.isExec { argv = readArgv(tid, call == .execve ? a.1 : a.2) }
        let pending = Pending(call: call, dirfd: dirfd, pathKind: kind, path: path,
                              resolved: resolved, flags: flags, entryNs: now, argv: argv)
        threads[tid, default: ThreadState(pid: tid, pending: nil, announced: false)].pending = pending
        PT.request(PT.syscall, tid) // on to the exit stop
    }

    /// Where a traced call's directory descriptor, path pointer and flags are
    /// among its arguments (openat2's flags are read from its struct open_how).
    @inline(__always)
    static func arguments(_ call: FileCall, _ a: (UInt64, UInt64, UInt64, UInt64, UInt64, UInt64), tid: Int32)
        -> (dirfd: Int32?, path: UInt64, flags: UInt64) {
        func fd(_ v: UInt64) -> Int32 { Int32(truncatingIfNeeded: v) }
        switch call {
        case .open: return (nil, a.0, a.1)
        case .creat: return (nil, a.0, UInt64(O_CREAT | O_WRONLY | O_TRUNC))
        case .openat: return (fd(a.0), a.1, a.2)
        case .openat2:
            var how: UInt64 = 0
            _ = withUnsafeMutableBytes(of: &how) { lp_read_memory(tid, UInt(a.2), $0.baseAddress, 8) }
            return (fd(a.0), a.1, how)
        case .stat: return (nil, a.0, 0)
        case .lstat: return (nil, a.0, UInt64(LP_AT_SYMLINK_NOFOLLOW))
        case .newfstatat: return (fd(a.0), a.1, a.3)
        case .statx: return (fd(a.0), a.1, a.2)
        case .access: return (nil, a.0, a.1)
        case .faccessat: return (fd(a.0), a.1, a.2)
        case .faccessat2: return (fd(a.0), a.1, a.2 | (a.3 << 32))
        case .readlink: return (nil, a.0, 0)
        case .readlinkat: return (fd(a.0), a.1, 0)
        case .execve: return (nil, a.0, 0)
        case .execveat: return (fd(a.0), a.1, a.4)
        }
    }

    private func exit(_ tid: Int32, _ info: lp_syscall_info) throws {
        if let call = securityCalls.removeValue(forKey: tid) {
            try securityCallEnded(tid, call, info)
            PT.request(resume, tid)
            return
        }
        if let buffer = affinityQueries.removeValue(forKey: tid) {
            // The program asked for its mask while it runs on the tracer's CPU:
            // it is shown the mask it will have from main on.
            if info.is_error == 0, info.rval > 0 {
                let n = min(Int(info.rval), originalMask.count)
                _ = originalMask.withUnsafeBytes { lp_write_memory(tid, UInt(buffer), $0.baseAddress, n) }
            }
            PT.request(resume, tid)
            return
        }
        let now = lp_monotonic_ns()
        guard var state = threads[tid], let p = state.pending else { PT.request(resume, tid); return }
        state.pending = nil
        threads[tid] = state
        try emit(tid: tid, pid: state.pid, p, result: info.rval, completed: true, exitNs: now)
        PT.request(resume, tid)
    }

    private func emit(tid: Int32, pid: Int32, _ p: Pending, result: Int64, completed: Bool, exitNs: UInt64) throws {
        let own = isOwn(pid: pid, p, result: result)
        if own { ownCalls += 1 } else { tracedCalls += 1 }
        try writer.write(SyscallEvent(
            pid: pid, tid: tid, call: p.call, dirfd: p.dirfd, path: p.path, resolved: p.resolved,
            flags: p.flags, result: result, completed: completed, own: own, entryNs: p.entryNs, exitNs: exitNs))
    }

    /// The audit library's own calls: ld.so's openat and fstat of the library,
    /// and the library's openat of its record files.
    private func isOwn(pid: Int32, _ p: Pending, result: Int64) -> Bool {
        guard auditLibrary != nil else { return false }
        if p.call.isOpen {
            switch p.pathKind {
            case .auditLibrary:
                processes[pid]?.auditLibraryFd = result >= 0 ? result : nil
                return true
            case .auditRecordFile: return true
            default: return false
            }
        }
        if p.call == .newfstatat || p.call == .statx, p.pathKind == .empty,
           let fd = processes[pid]?.auditLibraryFd, let d = p.dirfd, Int64(d) == fd {
            processes[pid]?.auditLibraryFd = nil
            return true
        }
        return false
    }

    // MARK: the program's own sandbox and tracing

    /// A note in the trace that is also said on stderr at the end.
    private func warn(pid: Int32, _ text: String) throws {
        try writer.note(pid: pid, text)
        if !warnings.contains(text) { warnings.append(text) }
    }

    /// A seccomp stop that loadprobe's filter did not ask for: a filter of the
    /// program's returned SECCOMP_RET_TRACE (untraced, with no tracer, the
    /// call fails with ENOSYS), or the strict-mode emulation caught a call
    /// strict mode forbids (the kernel kills the task with SIGKILL).
    private func foreignSeccompStop(_ tid: Int32, _ info: lp_syscall_info) throws {
        if info.ret_data == LP_STRICT_DATA {
            let pid = threads[tid]?.pid ?? tid
            try writer.note(pid: pid, "system call \(info.nr) in seccomp strict mode: the task is killed with SIGKILL, as the kernel does")
            _ = lp_tgkill(pid, tid, SIGKILL)
            PT.request(resume, tid)
            return
        }
        if lp_skip_syscall(tid, -Int64(ENOSYS)) != 0 {
            try writer.note(pid: threads[tid]?.pid ?? tid, "the program's own seccomp filter asked for a tracer at system call \(info.nr): it ran, where without loadprobe it would fail with ENOSYS")
        }
        PT.request(resume, tid)
    }

    private func securityCall(_ tid: Int32, _ info: lp_syscall_info, code: Int32) throws {
        let a = info.args
        let sandbox = threads[tid]?.sandbox ?? Sandbox()
        let pid = threads[tid]?.pid ?? tid
        // Without CAP_SYS_ADMIN a filter needs no_new_privs: the program's own,
        // not the one loadprobe set for its filter.
        func deniedFilter() -> Bool {
            noNewPrivsByUs && !sandbox.ownNoNewPrivs && lp_task_has_sys_admin(tid) != 1
        }
        // Skips the call with this result (where the tracer cannot skip, it runs).
        func answer(_ value: Int64) {
            _ = lp_skip_syscall(tid, value)
            PT.request(resume, tid)
        }
        let strict: Bool
        let filter: Bool
        if code == Int32(LP_CALL_PTRACE.rawValue) {
            securityCalls[tid] = .ptrace(request: a.0)
            PT.request(PT.syscall, tid)
            return
        } else if code == Int32(LP_CALL_SECCOMP.rawValue) {
            strict = a.0 == UInt64(LP_SECCOMP_SET_MODE_STRICT)
            filter = a.0 == UInt64(LP_SECCOMP_SET_MODE_FILTER)
        } else {
            switch Int(Int32(truncatingIfNeeded: a.0)) {
            case LP_PR_GET_SECCOMP:
                // loadprobe's filter alone: the program is in mode 0, as untraced.
                if !sandbox.ownFilter { answer(0); return }
                PT.request(resume, tid)
                return
            case LP_PR_GET_NO_NEW_PRIVS:
                if noNewPrivsByUs && !sandbox.ownNoNewPrivs { answer(0); return }
                PT.request(resume, tid)
                return
            case LP_PR_SET_NO_NEW_PRIVS:
                if a.1 == 1 && a.2 == 0 && a.3 == 0 && a.4 == 0 { threads[tid]?.sandbox.ownNoNewPrivs = true }
                PT.request(resume, tid)
                return
            default: // PR_SET_SECCOMP
                strict = a.1 == UInt64(LP_SECCOMP_MODE_STRICT)
                filter = a.1 == UInt64(LP_SECCOMP_MODE_FILTER)
            }
        }
        if filter {
            if deniedFilter() { answer(-Int64(EACCES)); return }
            securityCalls[tid] = .installFilter
            PT.request(PT.syscall, tid)
        } else if strict {
            // Strict mode cannot follow a filter (EINVAL): a filter that allows
            // what strict mode allows stands for it.
            if lp_emulate_strict_mode(tid, info.sp) == 0 {
                securityCalls[tid] = .strictMode
                PT.request(PT.syscall, tid)
            } else {
                try warn(pid: pid, "the program asked for seccomp strict mode, which cannot be set under loadprobe's filter here; it got EINVAL (record with --no-ptrace)")
                PT.request(resume, tid)
            }
        } else {
            PT.request(resume, tid)
        }
    }

    private func securityCallEnded(_ tid: Int32, _ call: SecurityCall, _ info: lp_syscall_info) throws {
        let pid = threads[tid]?.pid ?? tid
        switch call {
        case .installFilter:
            if info.is_error == 0 { threads[tid]?.sandbox.ownFilter = true }
        case .strictMode:
            if info.is_error == 0 {
                threads[tid]?.sandbox.ownFilter = true
                try writer.note(pid: pid, "seccomp strict mode: emulated by a filter that allows read, write, exit and rt_sigreturn (any other call kills the process)")
            } else {
                try warn(pid: pid, "the program asked for seccomp strict mode; its emulation under loadprobe's filter failed (\(Sys.describe(Int32(truncatingIfNeeded: -info.rval)))), and the program got that error (record with --no-ptrace)")
            }
        case .ptrace(let request):
            if info.is_error != 0, info.rval == -Int64(EPERM), !ptraceNoted {
                ptraceNoted = true
                let what = request == 0 ? "PTRACE_TRACEME" : request == 16 ? "PTRACE_ATTACH" : request == 0x4206 ? "PTRACE_SEIZE" : "ptrace request \(request)"
                try warn(pid: pid, "the program called ptrace (\(what)) and got EPERM: a process has one tracer, and under loadprobe it is loadprobe (debuggers and strace inside need loadprobe --no-ptrace)")
            }
        }
    }

    // MARK: answering missing lookups

    static let perProcessTrees: [[CChar]] = ["/proc/", "/dev/", "/sys/"].map { $0.utf8.map { CChar(bitPattern: $0) } }

    /// For a lookup without side effects: whether it follows a final symlink
    /// (false) or not (true); nil for calls that are never answered.
    static func lookupFollow(_ call: FileCall, flags: UInt64) -> Bool? {
        let nofollowAt = UInt64(LP_AT_SYMLINK_NOFOLLOW)
        switch call {
        case .open, .openat, .openat2:
            // O_CREAT and O_TMPFILE change the file system: always let them run.
            if flags & UInt64(O_CREAT) != 0 || flags & UInt64(LP_O_TMPFILE) == UInt64(LP_O_TMPFILE) { return nil }
            return flags & UInt64(O_NOFOLLOW) != 0
        case .stat, .access, .faccessat: return false
        case .lstat, .readlink, .readlinkat: return true
        case .newfstatat, .statx: return flags & nofollowAt != 0
        case .faccessat2: return (flags >> 32) & nofollowAt != 0
        case .creat, .execve, .execveat: return nil
        }
    }

    /// A lookup of an absolute path that the tracer, with the same view of the
    /// file system and the same rights, finds missing: the call is skipped and
    /// returns that errno (ENOENT or ENOTDIR) — what path resolution would have
    /// given the program. One stop instead of two for the bulk of a start-up
    /// (failed library candidates). Returns the errno given, or nil to let the
    /// call run. The path is in `pathBuffer`.
    private func answerMiss(tid: Int32, nofollow: Bool) -> Int32? {
        let pid = threads[tid]?.pid ?? tid
        guard pathBuffer[0] == CChar(UInt8(ascii: "/")) else { return nil } // absolute paths only
        // /proc and /dev resolve per process (/proc/self, /dev/fd): never answered.
        let special = pathBuffer.withUnsafeBufferPointer { b in
            Self.perProcessTrees.contains { p in p.indices.allSatisfy { b[$0] == p[$0] } }
        }
        if special { return nil }
        if processes[pid]?.sameView == nil { processes[pid]?.sameView = sameView(pid) }
        guard processes[pid]?.sameView == true else { return nil }
        let err = pathBuffer.withUnsafeBufferPointer { lp_probe_path($0.baseAddress, nofollow ? 1 : 0) }
        guard err == ENOENT || err == ENOTDIR else { return nil }
        return lp_skip_syscall(tid, -Int64(err)) == 0 ? err : nil
    }

    /// Same root, same mount namespace, same ids, groups and capabilities as loadprobe.
    private func sameView(_ pid: Int32) -> Bool {
        guard Proc.readLink("/proc/\(pid)/root") == "/", let mine = ownView.mnt,
              let theirs = Self.mountNamespace(String(pid)), mine == theirs else { return false }
        let lines = Self.credentialLines(String(pid))
        return !lines.isEmpty && lines == ownView.lines
    }

    static func mountNamespace(_ pid: String) -> (UInt, UInt)? {
        var st = stat()
        guard stat("/proc/\(pid)/ns/mnt", &st) == 0 else { return nil }
        return (UInt(st.st_dev), UInt(st.st_ino))
    }

    static func credentialLines(_ pid: String) -> [Substring] {
        guard let text = Proc.readSmallFile("/proc/\(pid)/status") else { return [] }
        return text.split(separator: "\n").filter {
            $0.hasPrefix("Uid:") || $0.hasPrefix("Gid:") || $0.hasPrefix("Groups:") || $0.hasPrefix("CapEff:")
        }
    }

    private func affinityCall(_ tid: Int32, _ info: lp_syscall_info, get: Bool) {
        let target = Int32(truncatingIfNeeded: info.args.0)
        let pid = threads[target == 0 ? tid : target]?.pid ?? -1
        guard processes[pid]?.pinned == true else { PT.request(resume, tid); return }
        if get {
            affinityQueries[tid] = info.args.2
            PT.request(PT.syscall, tid)
        } else {
            // The program places itself: its choice stands, we restore nothing.
            processes[pid]?.pinned = false
            PT.request(resume, tid)
        }
    }

    /// The audit library signalled the end of the start-up load (before any
    /// constructor runs): the process gets its own CPU mask back.
    private func startupLoaded(_ tid: Int32) {
        let pid = threads[tid]?.pid ?? tid
        guard let original = originalAffinity, processes[pid]?.pinned == true else { return }
        processes[pid]?.pinned = false
        // Every thread of the process gets its mask back.
        for (t, s) in threads where s.pid == pid {
            _ = original.withUnsafeBufferPointer { lp_set_affinity(t, $0.baseAddress, Int32($0.count)) }
        }
    }

    // MARK: who called the loader

    /// At a traced call: when ld.so made it, find (once per dlopen) which
    /// object's code led to it, and write a CALLER event before the call.
    /// The stack slot whose word decides whether a loader call needs an unwind
    /// (0: none to read).
    private func callerKeySlot(tid: Int32, ip: UInt64, sp: UInt64) -> UInt64 {
        guard let t = threads[tid], !t.caller.outside, t.caller.slot > sp,
              let image = processes[t.pid]?.image, image.mapped, image.isLoader(ip) else { return 0 }
        return t.caller.slot
    }

    private func loaderCall(tid: Int32, pid: Int32, ip: UInt64, sp: UInt64, ownRecordFile: Bool, keyWord: UInt64?,
                            now: UInt64) throws {
        guard processes[pid] != nil, threads[tid] != nil else { return }
        if !processes[pid]!.image.mapped { processes[pid]!.image.map(pid: pid) }
        guard processes[pid]!.image.isLoader(ip) else {
            if !ownRecordFile { threads[tid]!.caller.outside = true }
            return
        }
        // in place: neither the image nor the thread's key is copied
        if let event = callers.loaderCall(tid: tid, pid: pid, sp: sp, image: &processes[pid]!.image,
                                          key: &threads[tid]!.caller, keyWord: keyWord, writer: writer, now: now) {
            try writer.write(event)
        }
    }

    // MARK: reading the tracee

    private func readString(_ tid: Int32, _ addr: UInt64) -> String {
        guard addr != 0 else { return "" }
        let n = pathBuffer.withUnsafeMutableBufferPointer { lp_read_string(tid, UInt(addr), $0.baseAddress, Proc.pathBufferSize) }
        guard n >= 0 else { return "" }
        return pathBuffer.withUnsafeBufferPointer {
            String(decoding: UnsafeRawBufferPointer(start: $0.baseAddress, count: n).bindMemory(to: UInt8.self), as: UTF8.self)
        }
    }

    private func readArgv(_ tid: Int32, _ addr: UInt64) -> [String] {
        guard addr != 0 else { return [] }
        var out: [String] = []
        var at = UInt(addr)
        var pointers = [UInt64](repeating: 0, count: 32)
        while out.count < 4096 {
            let got = pointers.withUnsafeMutableBytes { lp_read_memory(tid, at, $0.baseAddress, 32 * 8) }
            if got < 8 { break }
            for i in 0..<(got / 8) {
                if pointers[i] == 0 { return out }
                out.append(readString(tid, pointers[i]))
            }
            at += UInt(got)
        }
        return out
    }

    private func resolve(tid: Int32, dirfd: Int32?, path: String) -> String? {
        let base: String?
        if let d = dirfd, d != Int32(LP_AT_FDCWD) {
            base = Proc.readLink("/proc/\(tid)/fd/\(d)")
        } else {
            base = Proc.readLink("/proc/\(tid)/cwd")
        }
        guard let b = base else { return nil }
        if path.isEmpty { return b } // AT_EMPTY_PATH: the file dirfd refers to
        return b == "/" ? "/" + path : b + "/" + path
    }
}
