import Report
import LoaderModel
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
        var template = Array((LoaderPath.directory(output) + "/." + base + ".loadprobe-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        let temp = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        guard fd >= 0 else { throw FixError("\(LoaderPath.directory(output)): cannot create a file there: \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        FixCleanup.track(temp)
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
        defer { FixCleanup.untrack(temp) }
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
    static func run(_ argv: [String]) -> (ok: Bool, status: String, output: String) {
        let (status, out) = Spawn.run(argv)
        let said = status > 128 ? "killed by signal \(status - 128)" : status < 0 ? "not run" : "exit status \(status)"
        return (status == 0, said, out)
    }

    /// The file that marks a view directory as made by `fix view`: only such a
    /// directory is replaced by `--overwrite`.
    static let viewMarker = ".loadprobe-view"

    /// A view put in place: taken back when the fix fails later (the earlier
    /// view, if any, comes back), made final when it succeeds (the earlier
    /// view is removed).
    struct MadeView {
        let directory: String
        /// Where the view it replaced waits, until commit or undo.
        let previous: String?

        func undo() {
            FixFiles.removeView(directory)
            if let previous { rename(previous, directory) }
        }

        func commit() {
            if let previous { FixFiles.removeView(previous) }
        }
    }

    /// Makes the view in a new directory beside DIR (its parent must exist),
    /// links and marker made through the directory's own descriptor, then
    /// puts it in DIR's place. DIR must be new or empty; with `overwrite` it
    /// may be a view `fix view` made (its marker, symlinks and nothing else),
    /// which is moved aside until the fix is done.
    static func makeView(_ directory: String, links: [(name: String, target: String)], overwrite: Bool,
                         program: String) throws(FixError) -> MadeView {
        let existing = try FixFiles.existingView(directory, overwrite: overwrite)
        var template = Array((LoaderPath.directory(directory) + "/." + (directory.split(separator: "/").last.map(String.init) ?? "view")
                              + ".loadprobe-XXXXXX").utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }).map({ String(cString: $0) }) else {
            throw FixError("\(directory): cannot create the view directory: \(String(cString: strerror(errno)))")
        }
        chmod(made, 0o755)
        let dfd = open(made, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dfd >= 0 else { throw FixError("\(made): \(String(cString: strerror(errno)))") }
        defer { close(dfd) }
        let marker = openat(dfd, viewMarker, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o644)
        if marker >= 0 {
            let text = Array("a dependency view made by loadprobe fix view for \(program)\n".utf8)
            _ = text.withUnsafeBytes { write(marker, $0.baseAddress, $0.count) }
            close(marker)
        }
        for (name, target) in links where symlinkat(target, dfd, name) != 0 {
            let e = errno
            removeView(made)
            throw FixError("\(directory)/\(name): \(String(cString: strerror(e)))")
        }
        var previous: String? = nil
        if existing == .emptyDirectory { rmdir(directory) }
        if existing == .view {
            previous = made + ".previous"
            guard rename(directory, previous!) == 0 else {
                let e = errno
                removeView(made)
                throw FixError("\(directory): cannot move the earlier view aside: \(String(cString: strerror(e)))")
            }
        }
        guard rename(made, directory) == 0 else {
            let e = errno
            removeView(made)
            if let previous { rename(previous, directory) }
            throw FixError("\(directory): \(String(cString: strerror(e)))")
        }
        return MadeView(directory: directory, previous: previous)
    }

    enum ExistingView { case none, emptyDirectory, view }

    /// What is at a view's place: nothing, something not a directory, an
    /// empty directory, a view `fix view` made (its marker and symlinks only),
    /// or a directory holding anything else. A symlink is not followed.
    enum DirectoryState { case none, notDirectory, empty, view, other }

    /// The error (its reason, without the path) when DIR cannot be looked at or listed.
    static func directoryState(_ directory: String) throws(FixError) -> DirectoryState {
        var st = stat()
        guard lstat(directory, &st) == 0 else {
            if errno == ENOENT { return .none }
            throw FixError(String(cString: strerror(errno)))
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { return .notDirectory }
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dfd >= 0, let entries = FixFiles.entries(dfd) else { throw FixError("cannot list it") }
        close(dfd)
        if entries.isEmpty { return .empty }
        return entries.contains { $0.0 == viewMarker } && entries.allSatisfy { $0.1 || $0.0 == viewMarker } ? .view : .other
    }

    /// What is at DIR now, refused unless it may be replaced.
    static func existingView(_ directory: String, overwrite: Bool) throws(FixError) -> ExistingView {
        let state: DirectoryState
        do throws(FixError) { state = try directoryState(directory) } catch { throw FixError("\(directory): \(error.description)") }
        switch state {
        case .none: return .none
        case .notDirectory:
            throw FixError("\(directory) exists and is not a directory (a symlink is not followed): give a new or empty directory")
        case .empty: return .emptyDirectory
        case .view, .other:
            if !overwrite {
                throw FixError("\(directory) is not empty" + (state == .view ? " (a view made earlier: --overwrite replaces it)" : "; give a new or empty directory"))
            }
            guard state == .view else {
                throw FixError("\(directory) is not a view made by loadprobe fix view (no \(viewMarker), or not only symlinks): not replaced, even with --overwrite")
            }
            return .view
        }
    }

    /// Removes a view directory: its symlinks and marker, then the directory
    /// (nothing else in it is touched, so a directory holding anything else stays).
    static func removeView(_ directory: String) {
        let dfd = open(directory, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard dfd >= 0 else { return }
        for (name, isLink) in FixFiles.entries(dfd) ?? [] where isLink || name == viewMarker { unlinkat(dfd, name, 0) }
        close(dfd)
        rmdir(directory)
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
        if rc == 0 { FixCleanup.child = pid }
        defer { FixCleanup.child = 0 }
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

/// What `fix` has made and not yet put in place (its private copy, the
/// `--check` scratch files), removed when a signal ends it; the recording a
/// `--check` runs gets the same signal. Fixed storage set up before any
/// handler can run: the handler only reads it.
enum FixCleanup {
    static let slots = 16
    nonisolated(unsafe) static let paths: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?> = {
        let p = UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>.allocate(capacity: slots)
        p.initialize(repeating: nil, count: slots)
        return p
    }()
    nonisolated(unsafe) static var child: pid_t = 0

    static func install() {
        _ = paths
        // A parent may have left them blocked (a test runner's spawn does): a fix must be stoppable.
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGINT, SIGTERM, SIGHUP] { sigaddset(&set, sig) }
        sigprocmask(SIG_UNBLOCK, &set, nil)
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig) { sig in
                if FixCleanup.child > 0 { kill(FixCleanup.child, sig) }
                for i in 0..<FixCleanup.slots {
                    if let p = FixCleanup.paths[i] { unlink(p); rmdir(p) }
                }
                signal(sig, SIG_DFL)
                raise(sig)
            }
        }
    }

    /// Remembers a path to remove on a signal (files first, then their directory: register in that order).
    static func track(_ path: String) {
        for i in 0..<slots where paths[i] == nil {
            paths[i] = strdup(path)
            return
        }
    }

    static func untrack(_ path: String) {
        for i in 0..<slots {
            if let p = paths[i], String(cString: p) == path {
                paths[i] = nil
                free(p)
            }
        }
    }
}
