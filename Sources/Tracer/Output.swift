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

    public static func shortHostName() -> String {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, 255)
        let full = String(cString: buf)
        return String(full.split(separator: ".").first ?? Substring(full))
    }

    /// Creates the trace file: missing directories are made, an existing file is
    /// truncated but never followed through a symlink.
    public static func create(_ path: String) throws -> Int32 {
        var dirs: [String] = []
        var d = path
        while let slash = d.lastIndex(of: "/"), slash != d.startIndex {
            d = String(d[..<slash])
            dirs.append(d)
        }
        for dir in dirs.reversed() {
            if mkdir(dir, 0o777) != 0 && errno != EEXIST {
                throw RecordError("loadprobe: cannot create directory \(dir) for the trace: \(String(cString: strerror(errno)))")
            }
        }
        // An existing trace is replaced, not truncated in place: ext4 writes a
        // file truncated to zero and written again back at its close
        // (auto_da_alloc), a few hundred µs on the way out of every run.
        var st = stat()
        if lstat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFREG && st.st_size > 0 { _ = unlink(path) }
        let fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if fd < 0 {
            let e = errno
            let why = e == ELOOP ? "it is a symbolic link (not followed)" : String(cString: strerror(e))
            throw RecordError("loadprobe: cannot write the trace \(path): \(why)")
        }
        return fd
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
