import SystemLayer
#if canImport(Glibc)
import Glibc
#endif

/// Why a command could not be started, with the exit status a shell would give.
public struct LaunchError: Error, CustomStringConvertible {
    public let description: String
    public let exitStatus: Int32
}

/// Finds a command the way a POSIX shell does: a name with a slash is used as
/// is, otherwise each PATH entry is tried in order; the first executable
/// regular file wins, and a non-executable match is remembered for 126.
public enum CommandLookup {
    public static func resolve(_ name: String, path: String?) throws(LaunchError) -> String {
        String(decoding: try resolve(bytes: Array(name.utf8), path: path.map { Array($0.utf8) }), as: UTF8.self)
    }

    /// The same lookup on the bytes of the name and of PATH: a name or a
    /// directory that is not UTF-8 is found as the shell would find it.
    public static func resolve(bytes name: [UInt8], path: [UInt8]?) throws(LaunchError) -> [UInt8] {
        let shown = String(decoding: name, as: UTF8.self)
        guard !name.isEmpty else { throw LaunchError(description: "loadprobe: empty command name", exitStatus: 127) }
        if name.contains(UInt8(ascii: "/")) {
            try check(name, as: shown)
            return name
        }
        var sawNonExecutable: [UInt8]?
        for dir in (path ?? Array("/usr/local/bin:/usr/bin:/bin".utf8)).split(separator: UInt8(ascii: ":"), omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? [UInt8(ascii: ".")] : Array(dir)) + [UInt8(ascii: "/")] + name
            let cPath = candidate.map { CChar(bitPattern: $0) } + [0]
            var st = stat()
            guard stat(cPath, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { continue }
            if access(cPath, X_OK) == 0 { return candidate }
            sawNonExecutable = sawNonExecutable ?? candidate
        }
        if let p = sawNonExecutable {
            throw LaunchError(description: "loadprobe: \(String(decoding: p, as: UTF8.self)): Permission denied", exitStatus: 126)
        }
        throw LaunchError(description: "loadprobe: \(shown): command not found", exitStatus: 127)
    }

    private static func check(_ path: [UInt8], as shown: String) throws(LaunchError) {
        let cPath = path.map { CChar(bitPattern: $0) } + [0]
        var st = stat()
        guard stat(cPath, &st) == 0 else {
            let e = errno
            throw LaunchError(description: "loadprobe: \(shown): \(Sys.describe(e))",
                              exitStatus: e == ENOENT || e == ENOTDIR ? 127 : 126)
        }
        if (st.st_mode & S_IFMT) == S_IFDIR {
            throw LaunchError(description: "loadprobe: \(shown): Is a directory", exitStatus: 126)
        }
        if access(cPath, X_OK) != 0 {
            throw LaunchError(description: "loadprobe: \(shown): Permission denied", exitStatus: 126)
        }
    }
}

/// What the program file is, as far as the loader is concerned: read from the
/// ELF header and program headers, following one `#!` line.
public struct ProgramKind: Sendable, Equatable {
    public enum Linkage: Sendable, Equatable { case glibcDynamic, muslDynamic, otherDynamic(String), staticELF, notELF }
    public var linkage: Linkage
    public var interpreter: String?
    public var setuid: Bool
    public var foreignArchitecture: String?
    /// Neither ELF nor "#!": execve fails with ENOEXEC and a shell runs it with /bin/sh.
    public var isPlainText = false

    /// Why audit cannot be used for this program, or nil when it can.
    public var auditUnavailableReason: String? {
        if setuid { return "the program is set-user-ID or set-group-ID: ld.so ignores LD_AUDIT in secure mode" }
        switch linkage {
        case .staticELF: return "the program is statically linked: no dynamic loader runs"
        case .muslDynamic: return "the program uses musl's loader (\(interpreter ?? "ld-musl")), which has no rtld-audit interface"
        case .otherDynamic(let i): return "the program's loader \(i) is not glibc's: LD_AUDIT may not be supported"
        default: return nil
        }
    }

    public static func inspect(_ path: String) -> ProgramKind { inspect(bytes: Array(path.utf8)) }

    public static func inspect(bytes path: [UInt8]) -> ProgramKind {
        var kind = ProgramKind(linkage: .notELF, interpreter: nil, setuid: false, foreignArchitecture: nil)
        let cPath = path.map { CChar(bitPattern: $0) } + [0]
        var st = stat()
        if stat(cPath, &st) == 0 { kind.setuid = (st.st_mode & (S_ISUID | S_ISGID)) != 0 }
        let fd = open(cPath, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return kind }
        defer { close(fd) }
        // Read where the headers say, not a prefix: patchelf moves the program
        // headers and the interpreter string to the end of the file.
        func bytesAt(_ offset: Int, _ count: Int) -> [UInt8]? {
            guard offset >= 0, count > 0, count <= 1 << 20 else { return nil }
            var buf = [UInt8](repeating: 0, count: count)
            let got = buf.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, count, off_t(offset)) }
            return got == count ? buf : nil
        }
        var prefix = [UInt8](repeating: 0, count: 256)
        let got = prefix.withUnsafeMutableBytes { pread(fd, $0.baseAddress!, 256, 0) }
        prefix.removeSubrange(max(got, 0)...)
        if prefix.count >= 2, prefix[0] == 0x23, prefix[1] == 0x21 { // "#!"
            let line = prefix[2...].prefix { $0 != 0x0a && $0 != 0 }
            let text = String(decoding: line, as: UTF8.self).trimmingSpaces()
            if let interp = text.split(separator: " ", maxSplits: 1).first, interp.hasPrefix("/") {
                var inner = inspect(String(interp))
                inner.setuid = kind.setuid
                return inner
            }
            return kind
        }
        guard prefix.count >= 64, prefix[0] == 0x7f, prefix[1] == 0x45, prefix[2] == 0x4c, prefix[3] == 0x46 else {
            kind.isPlainText = !prefix.starts(with: [0x7f, 0x45])
            return kind
        }
        let head = prefix
        let is64 = head[4] == 2
        guard head[5] == 1 else { kind.foreignArchitecture = "big-endian ELF"; kind.linkage = .notELF; return kind }
        let machine = UInt16(head[18]) | UInt16(head[19]) << 8
        #if arch(x86_64)
        let native: UInt16 = 62
        #else
        let native: UInt16 = 183
        #endif
        if !is64 || machine != native {
            kind.foreignArchitecture = is64 ? "ELF machine \(machine)" : "32-bit ELF"
        }
        guard is64 else { kind.linkage = .staticELF; return kind }
        func u16(_ b: [UInt8], _ o: Int) -> Int { Int(b[o]) | Int(b[o + 1]) << 8 }
        func u64(_ b: [UInt8], _ o: Int) -> Int? {
            var v: UInt64 = 0
            for i in 0..<8 { v |= UInt64(b[o + i]) << (8 * UInt64(i)) }
            return v > UInt64(Int32.max) ? nil : Int(v)
        }
        kind.linkage = .staticELF
        let phentsize = u16(head, 54), phnum = u16(head, 56)
        guard let phoff = u64(head, 32), phentsize >= 56, phnum > 0,
              let table = bytesAt(phoff, phentsize * phnum) else { return kind }
        for i in 0..<phnum {
            let o = i * phentsize
            let type = Int(table[o]) | Int(table[o + 1]) << 8 | Int(table[o + 2]) << 16 | Int(table[o + 3]) << 24
            guard type == 3, let off = u64(table, o + 8), let size = u64(table, o + 32), // PT_INTERP
                  let raw = bytesAt(off, min(size, 4096)) else { continue }
            let interp = String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            kind.interpreter = interp
            if interp.hasBytes("ld-musl") { kind.linkage = .muslDynamic }
            else if interp.hasBytes("ld-linux") || interp.hasBytes("ld64.so") { kind.linkage = .glibcDynamic }
            else { kind.linkage = .otherDynamic(interp) }
        }
        return kind
    }

}

extension String {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" || f == "\r" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" || l == "\r" { s.removeLast() }
        return String(s)
    }
}

extension String {
    /// Whether `part` occurs in this string, byte for byte. (The standard
    /// library's substring search builds a table of Characters: its first use
    /// costs loadprobe ~0.1 ms of type look-ups before the program can start.)
    func hasBytes(_ part: String) -> Bool {
        let a = Array(utf8), b = Array(part.utf8)
        guard !b.isEmpty else { return true }
        guard a.count >= b.count else { return false }
        for i in 0...(a.count - b.count) where a[i] == b[0] {
            var j = 1
            while j < b.count && a[i + j] == b[j] { j += 1 }
            if j == b.count { return true }
        }
        return false
    }
}
