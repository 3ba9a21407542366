#if canImport(Glibc)
import Glibc
#endif

/// The loader's world as facts: the ELF objects the loaders may open (their
/// identity and dynamic sections), the symlinks, and which directories exist.
/// Every other path is missing. It is a `LoaderFileSystem`, so the one glibc
/// and the one musl simulation run on it unchanged; a scenario is a change of
/// this world (`ScenarioTransform`), after which the same simulation runs.
///
/// A report builds it from a trace (OBJECT records and the lookups the run
/// made), so a laptop with only trace files runs the same simulation.
public struct LoaderWorld: LoaderFileSystem, Sendable {
    public struct File: Sendable, Hashable {
        public var id: FileID
        public var size: UInt64
        public var contentHash: UInt64
        /// The file's ELF facts (their `path` is not used: the world's key is).
        public var elf: ELFFile?
        public init(id: FileID, size: UInt64 = 0, contentHash: UInt64 = 0, elf: ELFFile?) {
            self.id = id; self.size = size; self.contentHash = contentHash; self.elf = elf
        }
    }

    /// Regular files by absolute path.
    public private(set) var files: [String: File] = [:]
    /// Symlinks by absolute path → absolute target.
    public private(set) var symlinks: [String: String] = [:]
    /// Directories (absolute, no trailing slash) known to exist (true) or not (false).
    public private(set) var directories: [String: Bool] = [:]
    public var workingDirectory: String
    var nextInode: UInt64 = 1

    public init(workingDirectory: String) {
        self.workingDirectory = workingDirectory
    }

    // MARK: Building

    /// Adds a regular file; its directories exist.
    public mutating func addFile(_ path: String, _ file: File) {
        files[path] = file
        markParentsExisting(path)
    }

    /// Adds a symlink at `path` to the absolute `target`.
    public mutating func addSymlink(_ path: String, target: String) {
        symlinks[path] = target
        markParentsExisting(path)
    }

    /// Records whether a directory exists (as a stat the run made showed it).
    public mutating func setDirectory(_ path: String, exists: Bool) {
        let p = LoaderWorld.trimmed(path)
        if exists { markParentsExisting(p) }
        // Known by its path as given and, through "." or "..", as walked.
        for d in p.contains("/.") ? [p, walked(p)] : [p] {
            if exists { directories[d] = true } else if directories[d] != true { directories[d] = false }
        }
    }

    /// A new identity for a file the world makes up (a scenario's cache file).
    public mutating func newFileID() -> FileID {
        nextInode += 1
        return FileID(device: UInt64.max, inode: nextInode)
    }

    mutating func markParentsExisting(_ path: String) {
        var dir = LoaderPath.directory(path)
        while dir != "/" && dir != "." && directories[dir] != true {
            directories[dir] = true
            if dir.contains("/.") {
                let w = walked(dir)
                directories[w] = true
            }
            dir = LoaderPath.directory(dir)
        }
    }

    /// A directory without its trailing slashes ("/" stays).
    public static func trimmedPath(_ path: String) -> String { trimmed(path) }

    static func trimmed(_ path: String) -> String {
        guard path.utf8.count > 1 && path.utf8.last == UInt8(ascii: "/") else { return path }
        var p = Substring(path)
        while p.utf8.count > 1 && p.utf8.last == UInt8(ascii: "/") { p = p.dropLast() }
        return String(p)
    }

    // MARK: Questions

    /// The file a path names after following symlinks of its last component
    /// (up to 40, as the kernel does); nil when nothing is there.
    public func resolve(_ path: String) -> String? {
        var p = path.hasPrefix("/") ? path : LoaderPath.join(workingDirectory, path)
        // A path through "." or ".." ($ORIGIN/../lib, a program run as bin/./app): as the kernel walks it.
        if files[p] == nil && symlinks[p] == nil && p.contains("/.") {
            let w = walked(p)
            // A file the run opened by a path with "." or ".." in it is known by that path (rare: found by a scan).
            p = files[w] != nil || symlinks[w] != nil ? w
                : (files.keys.first { $0.contains("/.") && walked($0) == w } ?? symlinks.keys.first { $0.contains("/.") && walked($0) == w } ?? w)
        }
        for _ in 0..<40 {
            if files[p] != nil { return p }
            guard !symlinks.isEmpty, let target = symlinks[p] else { return nil }
            p = target.hasPrefix("/") ? target : LoaderPath.join(LoaderPath.directory(p), target)
        }
        return nil
    }

    public func file(_ path: String) -> File? { resolve(path).flatMap { files[$0] } }

    /// An absolute path without its "." and ".." components, walked as the
    /// kernel walks them: ".." after a directory the world knows as a symlink
    /// goes to the parent of its target.
    func walked(_ path: String) -> String {
        var parts: [Substring] = []
        for component in path.split(separator: "/", omittingEmptySubsequences: true) {
            if component == "." { continue }
            if component == ".." {
                var prefix = "/" + parts.joined(separator: "/")
                for _ in 0..<40 {
                    guard let target = symlinks[prefix] else { break }
                    prefix = target.hasPrefix("/") ? target : LoaderPath.join(LoaderPath.directory(prefix), target)
                }
                parts = prefix.split(separator: "/", omittingEmptySubsequences: true)
                if !parts.isEmpty { parts.removeLast() }
                continue
            }
            parts.append(component)
        }
        return "/" + parts.joined(separator: "/")
    }

    /// True when the world says anything about `path` (a file, a symlink, a directory).
    public func knows(_ path: String) -> Bool {
        files[path] != nil || symlinks[path] != nil || directories[LoaderWorld.trimmed(path)] != nil
    }

    public func open(_ path: String) -> OpenOutcome {
        guard let f = file(path) else { return .failed(errno: ENOENT) }
        return .opened(f.id, header: LoaderWorld.header(f.elf), readErrno: nil)
    }

    public func stat(_ path: String) -> StatOutcome {
        var p = LoaderWorld.trimmed(path.hasPrefix("/") ? path : LoaderPath.join(workingDirectory, path))
        if directories[p] == nil && p.contains("/.") { p = walked(p) }
        if let exists = directories[p] { return exists ? .directory : .failed(errno: ENOENT) }
        return file(p) != nil ? .notDirectory : .failed(errno: ENOENT)
    }

    public func readELF(_ path: String) throws(ELFReadError) -> ELFFile {
        guard let f = file(path) else { throw ELFReadError(path: path, reason: .notFound) }
        guard var elf = f.elf else { throw ELFReadError(path: path, reason: .notELF(detail: "no ELF facts recorded")) }
        elf.path = path
        return elf
    }

    public func readDynamicSymbols(_ path: String) -> DynamicSymbols? { nil }
    public func readBytes(_ path: String) -> [UInt8]? { nil }
    public func realPath(_ path: String) -> String? { resolve(path) }
    public func listDirectory(_ path: String) -> Set<String>? { nil }

    /// The first 64 bytes of an ELF file with these facts, as the loaders check them.
    static func header(_ elf: ELFFile?) -> [UInt8] {
        guard let elf else { return [] }
        var h = [UInt8](repeating: 0, count: 64)
        h[0] = 0x7f; h[1] = 0x45; h[2] = 0x4c; h[3] = 0x46
        h[4] = elf.fileClass == .elf64 ? 2 : 1
        h[5] = elf.byteOrder == .littleEndian ? 1 : 2
        h[6] = 1
        h[7] = elf.osABI
        h[8] = elf.abiVersion
        func put16(_ offset: Int, _ v: UInt16) {
            if elf.byteOrder == .littleEndian { h[offset] = UInt8(v & 0xff); h[offset + 1] = UInt8(v >> 8) }
            else { h[offset] = UInt8(v >> 8); h[offset + 1] = UInt8(v & 0xff) }
        }
        put16(16, elf.type.rawValue)
        put16(18, elf.machine.rawValue)
        if elf.byteOrder == .littleEndian { h[20] = 1 } else { h[23] = 1 }  // e_version
        // e_phentsize: offset 54 (ELF64) or 42 (ELF32).
        if elf.fileClass == .elf64 { put16(54, 56) } else { put16(42, 32) }
        return h
    }
}
