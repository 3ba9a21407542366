import SystemLayer
import CAudit
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// The `-o PATTERN` of `loadprobe record`.
public enum OutputPattern {
    public static func expand(_ pattern: String, pid: Int32, environment: [String: String]) -> String {
        var out = ""
        var it = pattern.makeIterator()
        while let c = it.next() {
            guard c == "%" else { out.append(c); continue }
            guard let k = it.next() else { out.append("%"); break }
            switch k {
            case "p": out += String(pid)
            case "r": out += Recorder.rankVariables.lazy.compactMap { environment[$0] }.first ?? "0"
            case "j": out += Recorder.jobVariables.lazy.compactMap { environment[$0] }.first ?? "nojob"
            case "h": out += shortHostName()
            case "%": out.append("%")
            default: out.append("%"); out.append(k)
            }
        }
        return out
    }

    /// True when the pattern uses the item `%<key>` (not an escaped `%%<key>`).
    public static func names(_ pattern: String, _ key: Character) -> Bool {
        var it = pattern.makeIterator()
        while let c = it.next() {
            guard c == "%", let k = it.next() else { continue }
            if k == key { return true }
        }
        return false
    }

    public static func shortHostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        let full = String(cString: buf)
        return String(full.split(separator: ".").first ?? Substring(full))
    }

    /// Creates the trace file. Missing directories are made. A symlink is not
    /// followed: not as the file (an existing trace is replaced, never written
    /// through a link), and not as a directory unless root or loadprobe's
    /// user owns the link (a site's /scratch → /lustre/… is followed; a link
    /// another user planted in a shared directory is refused). Anything but a
    /// regular file at the path (a FIFO, a device, a directory) is refused
    /// without opening it for long: a FIFO with no reader would block.
    public static func create(_ path: String) throws -> Int32 {
        func fail(_ why: String) -> RecordError { RecordError("loadprobe: cannot write the trace \(path): \(why)") }
        let absolute = path.hasPrefix("/")
        var parts = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard let name = parts.popLast(), name != ".", name != ".." else { throw fail("not a file name") }
        var dirfd = open(absolute ? "/" : ".", Int32(LP_O_PATH) | O_DIRECTORY | O_CLOEXEC)
        guard dirfd >= 0 else { throw fail(Sys.describe(errno)) }
        defer { close(dirfd) }
        var walked = absolute ? "" : "."
        for part in parts {
            walked += "/" + part
            var next = openat(dirfd, part, Int32(LP_O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            if next < 0 && errno == ENOENT {
                if mkdirat(dirfd, part, 0o777) != 0 && errno != EEXIST {
                    throw RecordError("loadprobe: cannot create directory \(walked) for the trace: \(Sys.describe(errno))")
                }
                next = openat(dirfd, part, Int32(LP_O_PATH) | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            }
            if next < 0 && (errno == ELOOP || errno == ENOTDIR) {
                var st = stat()
                if fstatat(dirfd, part, &st, AT_SYMLINK_NOFOLLOW) == 0, (st.st_mode & S_IFMT) == S_IFLNK {
                    guard st.st_uid == 0 || st.st_uid == geteuid() else {
                        throw fail("\(walked) is a symbolic link owned by user \(st.st_uid), not followed")
                    }
                    next = openat(dirfd, part, Int32(LP_O_PATH) | O_DIRECTORY | O_CLOEXEC)
                }
            }
            guard next >= 0 else { throw fail("\(walked): \(Sys.describe(errno))") }
            close(dirfd)
            dirfd = next
        }
        var st = stat()
        if fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 {
            switch st.st_mode & S_IFMT {
            case S_IFREG:
                // An existing trace is replaced, not truncated in place: ext4 writes a
                // file truncated to zero and written again back at its close
                // (auto_da_alloc), a few hundred µs on the way out of every run.
                if st.st_size > 0 { _ = unlinkat(dirfd, name, 0) }
            case S_IFLNK: throw fail("it is a symbolic link (not followed)")
            default: throw fail("it is \(Self.kind(st.st_mode)), not a regular file")
            }
        }
        // O_NONBLOCK: a FIFO put there since cannot block the open.
        let fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK, 0o644)
        if fd < 0 {
            let e = errno
            throw fail(e == ELOOP ? "it is a symbolic link (not followed)" : e == ENXIO ? "it is a FIFO, not a regular file" : Sys.describe(e))
        }
        guard fstat(fd, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else {
            close(fd)
            throw fail("it is \(Self.kind(st.st_mode)), not a regular file")
        }
        _ = fcntl(fd, F_SETFL, O_WRONLY)
        return fd
    }

    static func kind(_ mode: mode_t) -> String {
        switch mode & S_IFMT {
        case S_IFIFO: return "a FIFO"
        case S_IFDIR: return "a directory"
        case S_IFCHR: return "a character device"
        case S_IFBLK: return "a block device"
        case S_IFSOCK: return "a socket"
        default: return "not a regular file"
        }
    }
}

/// Finds libloadprobe-audit.so: $LOADPROBE_AUDIT_LIB, next to the executable,
/// then PREFIX/lib and PREFIX/lib/loadprobe for an executable in PREFIX/bin.
public enum AuditLibraryLocator {
    public static let fileName = "libloadprobe-audit.so"

    public static func find(environment: [String: String]) -> String? {
        if let p = environment["LOADPROBE_AUDIT_LIB"], !p.isEmpty { return p }
        guard let exe = Proc.readLink("/proc/self/exe"), let slash = exe.lastIndex(of: "/") else { return nil }
        let dir = String(exe[..<slash])
        var candidates = [dir + "/" + fileName]
        if let s2 = dir.lastIndex(of: "/") {
            let prefix = String(dir[..<s2])
            candidates += [prefix + "/lib/" + fileName, prefix + "/lib/loadprobe/" + fileName, prefix + "/lib64/" + fileName]
        }
        return candidates.first { access($0, R_OK) == 0 }
    }
}
