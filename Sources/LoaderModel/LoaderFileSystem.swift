#if canImport(Glibc)
import SystemLayer
import Glibc
#endif

/// A file's identity as the loaders compare it (glibc's r_file_id, musl's dev/ino).
public struct FileID: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public init(device: UInt64, inode: UInt64) {
        self.device = device
        self.inode = inode
    }
}

/// What `open(path, O_RDONLY|O_CLOEXEC)` followed by a read of the ELF header returns.
public enum OpenOutcome: Sendable, Equatable {
    case failed(errno: Int32)
    /// `header` is the first bytes of the file (up to 64); `readErrno` is set when
    /// the read failed, as it does with EISDIR for a directory.
    case opened(FileID, header: [UInt8], readErrno: Int32?)
}

public enum StatOutcome: Sendable, Equatable {
    case directory
    case notDirectory
    case failed(errno: Int32)
}

/// The file-system questions the loader simulations ask. The host implementation
/// asks the real file system; tests and "what if" scenarios can substitute another.
public protocol LoaderFileSystem: Sendable {
    func open(_ path: String) -> OpenOutcome
    func stat(_ path: String) -> StatOutcome
    func readELF(_ path: String) throws(ELFReadError) -> ELFFile
    func readDynamicSymbols(_ path: String) -> DynamicSymbols?
    func readBytes(_ path: String) -> [UInt8]?
    /// The path with symlinks, "." and ".." resolved, as the kernel's /proc/self/exe shows it.
    func realPath(_ path: String) -> String?
    /// The names in a directory; nil when it cannot be read.
    func listDirectory(_ path: String) -> Set<String>?
    var workingDirectory: String { get }
}

extension LoaderFileSystem {
    public func readText(_ path: String) -> String? {
        readBytes(path).map { String(decoding: $0, as: UTF8.self) }
    }
}

/// The machine's own file system, through plain system calls.
public struct HostFileSystem: LoaderFileSystem {
    public init() {}

    public func open(_ path: String) -> OpenOutcome {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK) // never block on a FIFO
        if fd < 0 { return .failed(errno: errno) }
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0 else { return .failed(errno: errno) }
        var header = [UInt8](repeating: 0, count: 64)
        let n = header.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, 64) }
        let id = FileID(device: UInt64(st.st_dev), inode: UInt64(st.st_ino))
        if n < 0 { return .opened(id, header: [], readErrno: errno) }
        return .opened(id, header: Array(header.prefix(n)), readErrno: nil)
    }

    public func stat(_ path: String) -> StatOutcome {
        // fstatat(AT_FDCWD, …, 0) is the newfstatat call glibc makes for stat().
        var st = Glibc.stat()
        if fstatat(AT_FDCWD, path, &st, 0) != 0 { return .failed(errno: errno) }
        return st.st_mode & S_IFMT == S_IFDIR ? .directory : .notDirectory
    }

    public func readELF(_ path: String) throws(ELFReadError) -> ELFFile {
        try ELFFile(contentsOf: path)
    }

    public func readDynamicSymbols(_ path: String) -> DynamicSymbols? {
        try? DynamicSymbols(contentsOf: path)
    }

    /// A regular file's bytes (at most 256 MB); nil for anything else.
    public func readBytes(_ path: String) -> [UInt8]? {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY)
        if fd < 0 { return nil }
        defer { close(fd) }
        var st = Glibc.stat()
        guard fstat(fd, &st) == 0, st.st_mode & S_IFMT == S_IFREG, st.st_size <= 256 << 20 else { return nil }
        var result: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; return nil }
            if n == 0 { break }
            result += chunk.prefix(n)
            if result.count > 256 << 20 { return nil }
        }
        return result
    }

    public func realPath(_ path: String) -> String? {
        guard let resolved = Glibc.realpath(path, nil) else { return nil }
        defer { free(resolved) }
        return String(cString: resolved)
    }

    public func listDirectory(_ path: String) -> Set<String>? {
        Sys.listDirectory(path).map { Set($0.map(\.name)) }
    }

    public var workingDirectory: String {
        guard let cwd = getcwd(nil, 0) else { return "/" }
        defer { free(cwd) }
        return String(cString: cwd)
    }
}

/// Path helpers with the loaders' exact semantics (no normalisation beyond theirs).
package enum LoaderPath {
    /// glibc's l_origin: the directory part of a loaded object's name, made
    /// absolute against the working directory; "/foo" gives "/".
    package static func glibcOrigin(of realname: String, workingDirectory: String) -> String {
        var full = realname
        if !realname.hasPrefix("/") {
            full = join(workingDirectory, realname)
        }
        guard let slash = full.lastIndex(of: "/") else { return full }
        if slash == full.startIndex { return "/" }
        return String(full[..<slash])
    }

    /// An absolute path with its "." and ".." components taken out by name
    /// (a relative one is returned as it is).
    package static func withoutDots(_ path: String) -> String {
        guard path.hasPrefix("/"), path.contains("/.") else { return path }
        var parts: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
            parts.append(component)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// A path made absolute in `directory` (as the kernel resolves a relative
    /// one against the working directory), without "." and "..".
    package static func absolute(_ path: String, in directory: String) -> String {
        withoutDots(path.hasPrefix("/") ? path : join(directory, path))
    }

    /// `name` inside `directory` (one slash between them).
    package static func join(_ directory: String, _ name: String) -> String {
        directory.hasSuffix("/") ? directory + name : directory + "/" + name
    }

    package static func basename(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return path }
        return String(path[path.utf8.index(after: slash)...])
    }

    package static func directory(_ path: String) -> String {
        guard let slash = path.utf8.lastIndex(of: UInt8(ascii: "/")) else { return "." }
        if slash == path.startIndex { return "/" }
        return String(path[..<slash])
    }
}
