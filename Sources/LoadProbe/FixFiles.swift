import Report
#if canImport(Glibc)
import Glibc
#endif

/// The file side of `loadprobe fix`: a private copy of the program next to
/// OUTPUT, patchelf run on that copy, then the copy put in OUTPUT's place.
/// Nothing is written through a symlink, and neither the program nor any
/// library is opened for writing.
enum FixFiles {
    /// Refuses an OUTPUT that exists (unless `overwrite`) or is not a regular file or symlink.
    static func checkOutput(_ output: String, overwrite: Bool) throws(FixError) {
        var st = stat()
        guard lstat(output, &st) == 0 else {
            if errno == ENOENT { return }
            throw FixError("\(output): \(String(cString: strerror(errno)))")
        }
        let type = st.st_mode & S_IFMT
        if !overwrite { throw FixError("\(output) exists; give another -o, or --overwrite to replace it") }
        if type != S_IFREG && type != S_IFLNK {
            throw FixError("\(output) exists and is not a regular file: not replaced")
        }
    }

    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/") else { return "." }
        return slash == path.startIndex ? "/" : String(path[..<slash])
    }

    /// A copy of `program` in OUTPUT's directory, under a fresh name (O_EXCL:
    /// never an existing file or a symlink), with the program's permission bits
    /// less set-user-ID and set-group-ID.
    static func privateCopy(of program: String, besides output: String) throws(FixError) -> String {
        let input = open(program, O_RDONLY | O_CLOEXEC)
        guard input >= 0 else { throw FixError("\(program): \(String(cString: strerror(errno)))") }
        defer { close(input) }
        var st = stat()
        guard fstat(input, &st) == 0, st.st_mode & S_IFMT == S_IFREG else {
            throw FixError("\(program): not a regular file")
        }
        let base = output.split(separator: "/").last.map(String.init) ?? "fix"
        var template = Array((directory(of: output) + "/." + base + ".loadprobe-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        let temp = String(cString: template)
        guard fd >= 0 else { throw FixError("\(directory(of: output)): cannot create a file there: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(input, $0.baseAddress, $0.count) }
            if n == 0 { break }
            if n < 0 {
                if errno == EINTR { continue }
                unlink(temp)
                throw FixError("\(program): \(String(cString: strerror(errno)))")
            }
            var done = 0
            while done < n {
                let w = buffer.withUnsafeBytes { write(fd, $0.baseAddress! + done, n - done) }
                if w < 0 && errno == EINTR { continue }
                guard w > 0 else { unlink(temp); throw FixError("\(temp): \(String(cString: strerror(errno)))") }
                done += w
            }
        }
        fchmod(fd, st.st_mode & 0o777)
        return temp
    }

    /// Puts the finished copy in OUTPUT's place: a new name (link, which
    /// fails on an existing one), or over the old entry itself (rename: a
    /// symlink there is replaced, not followed).
    static func install(_ temp: String, as output: String, overwrite: Bool) throws(FixError) {
        if overwrite {
            guard rename(temp, output) == 0 else {
                let e = errno
                unlink(temp)
                throw FixError("\(output): \(String(cString: strerror(e)))")
            }
            return
        }
        guard link(temp, output) == 0 else {
            let e = errno
            unlink(temp)
            throw FixError(e == EEXIST ? "\(output) exists; give another -o, or --overwrite to replace it"
                                       : "\(output): \(String(cString: strerror(e)))")
        }
        unlink(temp)
    }

    /// Runs `argv` (a patchelf call), its output kept for the error; true when it exits 0.
    static func run(_ argv: [String]) -> (ok: Bool, output: String) {
        let (status, out) = Spawn.run(argv)
        return (status == 0, out)
    }

    /// Creates the view directory (its parent must exist) and the links in it,
    /// through a descriptor of the directory itself (O_NOFOLLOW: a symlink
    /// in its place is refused). An existing directory must be empty, or
    /// with `overwrite` hold only symlinks, which are replaced.
    /// What `makeView` made, to take back when the fix fails later.
    struct MadeView {
        let directory: String
        let created: Bool
        let names: [String]

        func undo() {
            let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
            guard dfd >= 0 else { return }
            for n in names { unlinkat(dfd, n, 0) }
            close(dfd)
            if created { rmdir(directory) }
        }
    }

    @discardableResult
    static func makeView(_ directory: String, links: [(name: String, target: String)], overwrite: Bool) throws(FixError) -> MadeView {
        let created = mkdir(directory, 0o755) == 0
        if !created && errno != EEXIST {
            throw FixError("\(directory): cannot create the view directory: \(String(cString: strerror(errno)))")
        }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dfd >= 0 else { throw FixError("\(directory): not a directory (a symlink is not followed)") }
        defer { close(dfd) }
        guard let entries = FixFiles.entries(dfd) else { throw FixError("\(directory): cannot list it") }
        for (name, isLink) in entries {
            guard overwrite, isLink else {
                throw FixError("\(directory) is not empty (\(name)); give an empty or new directory, or --overwrite to replace its symlinks")
            }
        }
        for (name, _) in entries { unlinkat(dfd, name, 0) }
        var made: [String] = []
        for (name, target) in links {
            guard symlinkat(target, dfd, name) == 0 else {
                let e = errno
                MadeView(directory: directory, created: created, names: made).undo()
                throw FixError("\(directory)/\(name): \(String(cString: strerror(e)))")
            }
            made.append(name)
        }
        return MadeView(directory: directory, created: created, names: made)
    }

    /// The entries of a directory, and whether each is a symlink.
    static func entries(_ dfd: Int32) -> [(String, Bool)]? {
        let copy = dup(dfd)
        guard copy >= 0, let dir = fdopendir(copy) else { return nil }
        defer { closedir(dir) }
        var out: [(String, Bool)] = []
        while let e = readdir(dir) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            var st = stat()
            let isLink = fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_mode & S_IFMT == S_IFLNK
            out.append((name, isLink))
        }
        return out
    }
}

/// posix_spawnp with stdout and stderr collected (small outputs: patchelf's, loadprobe's own).
enum Spawn {
    static func run(_ argv: [String], stdoutFile: String? = nil, stderrFile: String? = nil,
                    environment: [String]? = nil) -> (status: Int32, output: String) {
        var pipeFds: [Int32] = [-1, -1]
        guard pipe(&pipeFds) == 0 else { return (-1, "pipe: \(String(cString: strerror(errno)))") }
        _ = fcntl(pipeFds[0], F_SETFD, FD_CLOEXEC)
        _ = fcntl(pipeFds[1], F_SETFD, FD_CLOEXEC)
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        if let stdoutFile {
            posix_spawn_file_actions_addopen(&actions, 1, stdoutFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        } else {
            posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 1)
        }
        if let stderrFile {
            posix_spawn_file_actions_addopen(&actions, 2, stderrFile, O_WRONLY | O_CREAT | O_TRUNC, 0o600)
        } else {
            posix_spawn_file_actions_adddup2(&actions, pipeFds[1], 2)
        }
        let cArgs = argv.map { strdup($0) } + [nil]
        defer { for p in cArgs { free(p) } }
        let cEnv = environment.map { $0.map { strdup($0) } + [nil] }
        defer { if let cEnv { for p in cEnv { free(p) } } }
        var pid: pid_t = 0
        let rc = cEnv.map { env in posix_spawnp(&pid, argv[0], &actions, nil, cArgs, env) }
            ?? posix_spawnp(&pid, argv[0], &actions, nil, cArgs, environ)
        close(pipeFds[1])
        defer { close(pipeFds[0]) }
        guard rc == 0 else { return (-1, "\(argv[0]): \(String(cString: strerror(rc)))") }
        var collected: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(pipeFds[0], $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            if collected.count < 1 << 20 { collected += buffer[0..<n] }
        }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
        let code: Int32 = status & 0x7f == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (code, String(decoding: collected, as: UTF8.self))
    }
}
