// The few system services every module needs, written once: errors that
// carry errno, EINTR retried, descriptors that close themselves, directory
// listing, writing a whole buffer, uname. In the manner of apple/swift-system,
// without its dependency.
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// A failed system call: its errno, described as strerror does.
public struct SystemError: Error, Equatable, CustomStringConvertible, Sendable {
    public let errno: Int32
    public init(_ errno: Int32) { self.errno = errno }
    /// The calling thread's errno now.
    public static var current: SystemError { SystemError(Glibc.errno) }
    public var description: String { Sys.describe(errno) }
}

public enum Sys {
    /// strerror's text for `code`.
    public static func describe(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Runs `call` again while it fails with EINTR (a signal arrived).
    @inlinable
    public static func retrying<T: BinaryInteger>(_ call: () -> T) -> T {
        while true {
            let r = call()
            if r == -1 && Glibc.errno == EINTR { continue }
            return r
        }
    }

    /// Writes all of `bytes` to `fd`, retrying short writes and EINTR.
    public static func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) throws(SystemError) {
        var off = 0
        while off < bytes.count {
            let n = retrying { Glibc.write(fd, bytes.baseAddress! + off, bytes.count - off) }
            if n < 0 { throw SystemError.current }
            if n == 0 { throw SystemError(EIO) }
            off += n
        }
    }

    public static func writeAll(_ fd: Int32, _ bytes: [UInt8]) throws(SystemError) {
        let failure = bytes.withUnsafeBytes { raw -> SystemError? in
            do throws(SystemError) { try writeAll(fd, raw); return nil } catch { return error }
        }
        if let failure { throw failure }
    }

    /// One entry of a directory listing.
    public struct DirectoryEntry: Sendable {
        public var name: String
        /// readdir's d_type (DT_REG, DT_DIR, DT_LNK, …; DT_UNKNOWN when the file system does not say).
        public var type: UInt8
    }

    /// The entries of the directory at `path` but `.` and `..`, in readdir's
    /// order; nil when it cannot be opened (errno is set).
    public static func listDirectory(_ path: String) -> [DirectoryEntry]? {
        guard let d = opendir(path) else { return nil }
        defer { closedir(d) }
        var out: [DirectoryEntry] = []
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { out.append(DirectoryEntry(name: name, type: e.pointee.d_type)) }
        }
        return out
    }

    /// The host's uname fields.
    public struct Uname: Sendable {
        public var nodename: String
        public var machine: String
        public var release: String
        public var sysname: String
    }

    public static func uname() -> Uname? {
        var u = utsname()
        guard Glibc.uname(&u) == 0 else { return nil }
        func field<T>(_ t: T) -> String { withUnsafeBytes(of: t) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) } }
        return Uname(nodename: field(u.nodename), machine: field(u.machine), release: field(u.release), sysname: field(u.sysname))
    }
}

/// An open file descriptor that closes itself: it cannot be copied, so it is
/// closed exactly once, when its owner is done with it.
public struct FileDescriptor: ~Copyable {
    public let raw: Int32
    public init(taking raw: Int32) { self.raw = raw }

    /// Opens `path`, retrying EINTR; O_CLOEXEC is always added.
    public static func open(_ path: String, _ flags: Int32, mode: mode_t = 0o644) throws(SystemError) -> FileDescriptor {
        let fd = Sys.retrying { Glibc.open(path, flags | O_CLOEXEC, mode) }
        if fd < 0 { throw SystemError.current }
        return FileDescriptor(taking: fd)
    }

    /// Gives up ownership without closing.
    public consuming func release() -> Int32 {
        let fd = raw
        discard self
        return fd
    }

    deinit { _ = Glibc.close(raw) }
}
