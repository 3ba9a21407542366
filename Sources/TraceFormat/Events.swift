/// The file-lookup system calls loadprobe traces. Raw values are the trace's
/// (and CAudit's `enum lp_call`) numbering, independent of the architecture.
public enum FileCall: UInt8, CaseIterable, Sendable {
    case open = 1, openat, openat2, creat, stat, lstat, newfstatat, statx
    case access, faccessat, faccessat2, readlink, readlinkat, execve, execveat

    /// The kernel's name for the call, as strace prints it.
    public var name: String {
        switch self {
        case .open: "open"
        case .openat: "openat"
        case .openat2: "openat2"
        case .creat: "creat"
        case .stat: "stat"
        case .lstat: "lstat"
        case .newfstatat: "newfstatat"
        case .statx: "statx"
        case .access: "access"
        case .faccessat: "faccessat"
        case .faccessat2: "faccessat2"
        case .readlink: "readlink"
        case .readlinkat: "readlinkat"
        case .execve: "execve"
        case .execveat: "execveat"
        }
    }

    public var isOpen: Bool { self == .open || self == .openat || self == .openat2 || self == .creat }
    public var isStat: Bool { self == .stat || self == .lstat || self == .newfstatat || self == .statx }
    public var isExec: Bool { self == .execve || self == .execveat }
}

/// A path in the trace: an interned directory (everything before the last
/// slash) and an interned base name. `0` means "none".
public struct PathRef: Hashable, Sendable {
    public var dir: UInt32
    public var base: UInt32
    public init(dir: UInt32, base: UInt32) { self.dir = dir; self.base = base }
    public static let none = PathRef(dir: 0, base: 0)
}

/// One traced system call, entry and exit joined.
public struct SyscallEvent: Sendable, Equatable {
    public var pid: Int32
    public var tid: Int32
    public var call: FileCall
    /// The dirfd argument of the *at calls (AT_FDCWD is -100); nil for the others.
    public var dirfd: Int32?
    public var path: PathRef
    /// The path resolved against dirfd or the working directory; nil when the
    /// path was absolute (then it is `path`) or could not be resolved.
    public var resolved: PathRef?
    /// open flags, the AT_* flags of stat calls, the mode of access calls.
    public var flags: UInt64
    /// The return value; negative values are -errno.
    public var result: Int64
    /// false when the process ended (or was killed) before the call returned.
    public var completed: Bool
    /// true for the calls made by loadprobe's own audit library (its open,
    /// fstat and record files); left out of the program's counts.
    public var own: Bool
    public var entryNs: UInt64
    public var exitNs: UInt64
    /// The tracer looked the path up itself, found it missing, and gave the
    /// program that answer (ENOENT/ENOTDIR) without letting the call run: the
    /// same lookup, one ptrace stop instead of two.
    public var answered: Bool

    public init(pid: Int32, tid: Int32, call: FileCall, dirfd: Int32?, path: PathRef, resolved: PathRef?,
                flags: UInt64, result: Int64, completed: Bool, own: Bool, entryNs: UInt64, exitNs: UInt64,
                answered: Bool = false) {
        self.pid = pid; self.tid = tid; self.call = call; self.dirfd = dirfd; self.path = path
        self.resolved = resolved; self.flags = flags; self.result = result; self.completed = completed
        self.own = own; self.entryNs = entryNs; self.exitNs = exitNs; self.answered = answered
    }

    public var failed: Bool { completed && result < 0 }
    public var errno: Int32 { result < 0 ? Int32(truncatingIfNeeded: 0 &- result) : 0 }
}

/// Kinds of audit records, as in loadprobe_wire.h.
public enum AuditKind: UInt8, Sendable {
    case image = 1, objsearch, objopen, activity, preinit, objclose
}

/// la_activity's flag (<link.h>, LA_ACT_*): what an ACTIVITY record says.
public enum AuditActivity: UInt16, Sendable {
    /// The link map is consistent again: a load or unload is over.
    case consistent = 0
    /// Objects are being added (a dlopen, or the start-up load).
    case add = 1
    /// Objects are being removed (a dlclose).
    case delete = 2
}

/// One record of the audit library (rtld-audit), moved into the trace.
public struct AuditEvent: Sendable, Equatable {
    public var pid: Int32
    public var kind: AuditKind
    public var flag: UInt16
    public var lmid: Int32
    public var name: PathRef
    public var seq: UInt32
    public var timeNs: UInt64
    public init(pid: Int32, kind: AuditKind, flag: UInt16, lmid: Int32, name: PathRef, seq: UInt32, timeNs: UInt64) {
        self.pid = pid; self.kind = kind; self.flag = flag; self.lmid = lmid; self.name = name
        self.seq = seq; self.timeNs = timeNs
    }
}

public enum ProcessStart: UInt8, Sendable {
    case root = 0, fork, vfork, clone, thread
}

/// A process or thread appearing.
public struct ProcessEvent: Sendable, Equatable {
    public var pid: Int32
    public var tid: Int32
    public var parent: Int32
    public var how: ProcessStart
    public var timeNs: UInt64
    public init(pid: Int32, tid: Int32, parent: Int32, how: ProcessStart, timeNs: UInt64) {
        self.pid = pid; self.tid = tid; self.parent = parent; self.how = how; self.timeNs = timeNs
    }
}

/// A successful exec: the process now runs `path` with `argv`.
public struct ExecEvent: Sendable, Equatable {
    public var pid: Int32
    public var formerTid: Int32
    public var path: PathRef
    public var argv: [UInt32]
    public var timeNs: UInt64
    public init(pid: Int32, formerTid: Int32, path: PathRef, argv: [UInt32], timeNs: UInt64) {
        self.pid = pid; self.formerTid = formerTid; self.path = path; self.argv = argv; self.timeNs = timeNs
    }
}

/// A process (thread group) or a thread ended; `status` is the raw wait status.
public struct ExitEvent: Sendable, Equatable {
    public var pid: Int32
    public var tid: Int32
    public var status: Int32
    public var timeNs: UInt64
    public init(pid: Int32, tid: Int32, status: Int32, timeNs: UInt64) {
        self.pid = pid; self.tid = tid; self.status = status; self.timeNs = timeNs
    }
    /// The signal that killed it, or nil when it exited.
    public var signal: Int32? { (status & 0x7f) != 0 && (status & 0x7f) != 0x7f ? status & 0x7f : nil }
    public var exitCode: Int32? { signal == nil ? (status >> 8) & 0xff : nil }
}

/// A remark about a process that a reader should show (why audit was off, …).
public struct NoteEvent: Sendable, Equatable {
    public var pid: Int32
    public var text: UInt32
    public init(pid: Int32, text: UInt32) { self.pid = pid; self.text = text }
}

/// The object that made a loader call: the first frame of the calling thread's
/// stack outside ld.so and libc, found by unwinding at the call's seccomp stop.
/// Written just before the call it was found at (same time), once per dlopen:
/// the calls that follow on the same thread and belong to the same dlopen
/// have the same caller.
public struct CallerEvent: Sendable, Equatable {
    public var pid: Int32
    public var tid: Int32
    /// The object's path, as /proc/PID/maps names it.
    public var object: PathRef
    /// The return address into the object, as an offset in the object's file
    /// (the call instruction ends there).
    public var offset: UInt64
    /// Frames between the loader call and the caller's frame.
    public var depth: UInt32
    public var timeNs: UInt64
    public init(pid: Int32, tid: Int32, object: PathRef, offset: UInt64, depth: UInt32, timeNs: UInt64) {
        self.pid = pid; self.tid = tid; self.object = object; self.offset = offset; self.depth = depth
        self.timeNs = timeNs
    }
}

/// One file of the loader's world, as the recording saw it (version 3): the
/// identity of a file the program opened or mapped as an ELF object, and the
/// dynamic-section facts the loader's search depends on. A report runs the
/// loader simulation on these (and on the lookups the trace recorded) without
/// the files at hand.
public struct ObjectFacts: Sendable, Equatable {
    /// The path as the program opened it (a symlink stays a symlink).
    public var path: PathRef
    /// The file's device and inode (the loaders' "same file" test).
    public var device: UInt64
    public var inode: UInt64
    public var size: UInt64
    /// A 64-bit hash of the file's bytes (docs/trace-format.md).
    public var contentHash: UInt64
    /// e_ident: EI_CLASS (1 ELF32, 2 ELF64), EI_DATA, EI_OSABI, EI_ABIVERSION.
    public var elfClass: UInt8
    public var byteOrder: UInt8
    public var osABI: UInt8
    public var abiVersion: UInt8
    public var type: UInt16
    public var machine: UInt16
    /// PT_DYNAMIC is present.
    public var isDynamic: Bool
    /// String ids (nil: absent).
    public var interpreter: UInt32?
    public var soname: UInt32?
    public var rpath: UInt32?
    public var runpath: UInt32?
    /// DT_NEEDED in file order, as string ids.
    public var needed: [UInt32]
    /// DT_FLAGS and DT_FLAGS_1.
    public var flags: UInt64
    public var flags1: UInt64

    public init(path: PathRef, device: UInt64, inode: UInt64, size: UInt64, contentHash: UInt64,
                elfClass: UInt8, byteOrder: UInt8, osABI: UInt8, abiVersion: UInt8, type: UInt16, machine: UInt16,
                isDynamic: Bool, interpreter: UInt32?, soname: UInt32?, rpath: UInt32?, runpath: UInt32?,
                needed: [UInt32], flags: UInt64, flags1: UInt64) {
        self.path = path; self.device = device; self.inode = inode; self.size = size; self.contentHash = contentHash
        self.elfClass = elfClass; self.byteOrder = byteOrder; self.osABI = osABI; self.abiVersion = abiVersion
        self.type = type; self.machine = machine; self.isDynamic = isDynamic; self.interpreter = interpreter
        self.soname = soname; self.rpath = rpath; self.runpath = runpath; self.needed = needed
        self.flags = flags; self.flags1 = flags1
    }
}

public enum TraceEvent: Sendable, Equatable {
    case syscall(SyscallEvent)
    case audit(AuditEvent)
    case process(ProcessEvent)
    case exec(ExecEvent)
    case exit(ExitEvent)
    case note(NoteEvent)
    case caller(CallerEvent)

    public var pid: Int32 {
        switch self {
        case .syscall(let e): e.pid
        case .audit(let e): e.pid
        case .process(let e): e.pid
        case .exec(let e): e.pid
        case .exit(let e): e.pid
        case .note(let e): e.pid
        case .caller(let e): e.pid
        }
    }

    /// The time the event is ordered by (a call's entry time).
    public var timeNs: UInt64 {
        switch self {
        case .syscall(let e): e.entryNs
        case .audit(let e): e.timeNs
        case .process(let e): e.timeNs
        case .exec(let e): e.timeNs
        case .exit(let e): e.timeNs
        case .note: 0
        case .caller(let e): e.timeNs
        }
    }
}
