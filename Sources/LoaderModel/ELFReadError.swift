/// Why a file could not be read as an ELF object. `description` is one line
/// naming the file, fit for stderr.
public struct ELFReadError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: Sendable, Equatable {
        case notFound
        case isDirectory
        case permissionDenied
        case notRegularFile
        case ioError(errno: Int32)
        case empty
        /// Not an ELF file; `detail` says what it looks like instead (a script, text).
        case notELF(detail: String)
        /// The file ends before a structure its headers point to.
        case truncated(detail: String)
        /// The headers are inconsistent or unsupported.
        case malformed(detail: String)
    }

    public var path: String
    public var reason: Reason

    public init(path: String, reason: Reason) {
        self.path = path
        self.reason = reason
    }

    public var description: String { "\(path): \(reasonText)" }

    public var reasonText: String {
        switch reason {
        case .notFound: "no such file"
        case .isDirectory: "is a directory, not an ELF file"
        case .permissionDenied: "permission denied (cannot read the file)"
        case .notRegularFile: "not a regular file"
        case .ioError(let e): "read error (errno \(e))"
        case .empty: "empty file, not an ELF file"
        case .notELF(let detail): "not an ELF file (\(detail))"
        case .truncated(let detail): "truncated ELF file: \(detail)"
        case .malformed(let detail): "malformed ELF file: \(detail)"
        }
    }
}
