import Report
import LoaderModel
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// `loadprobe fix`: refuse what is unsafe, write the copy, prove it with the
/// model (and with --check, with two recordings).
struct Fixer {
    let kind: FixKind
    let options: FixOptions
    let liftDlopen: Bool
    let viewDirectory: String?

    func run() -> Never {
        do throws(FixError) {
            try fix()
            Glibc.exit(0)
        } catch {
            say("loadprobe fix: " + error.description, fd: 2)
            Glibc.exit(1)
        }
    }

    func say(_ line: String, fd: Int32 = 1) {
        let bytes = Array((line + "\n").utf8)
        _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    }

    private func fix() throws(FixError) {
        let program = options.program
        guard access(program, R_OK) == 0 else { throw FixError("\(program): \(String(cString: strerror(errno)))") }
        if Self.sameFile(program, options.output) {
            throw FixError("\(options.output) is the program itself: a fix is never made in place")
        }
        let baseline: FixBaseline
        if let trace = options.trace {
            baseline = try FixBaseline.fromTrace(trace, program: program)
        } else {
            baseline = try FixBaseline.fromHost(program: program, environment: LoaderEnvironment.current())
        }
        var elf: ELFFile
        do throws(ELFReadError) { elf = try HostFileSystem().readELF(program) } catch { throw FixError(error.description) }
        if options.trace != nil, elf.needed != baseline.load.program.needed || elf.runpath != baseline.load.program.runpath
            || elf.rpath != baseline.load.program.rpath {
            throw FixError("\(program) has changed since \(options.trace!) was recorded (its DT_NEEDED or search path differ): record it again")
        }
        let refusals = FixSafety.refusals(kind, program: program, baseline: baseline)
        for r in refusals { say("loadprobe fix: " + (options.force ? "going on (--force) despite: " : "refused: ") + r, fd: 2) }
        if !refusals.isEmpty && !options.force { Glibc.exit(1) }
        for n in FixSafety.notes(kind, baseline: baseline, liftDlopen: liftDlopen) { say("note: " + n) }
        try FixFiles.checkOutput(options.output, overwrite: options.overwrite)
        elf = expandOrigin(elf)
        let commands: [[String]]
        var summary: String
        switch kind {
        case .shrinkwrap:
            let plan = ShrinkwrapPlan(load: baseline.load, liftDlopen: liftDlopen)
            commands = plan.patchelfCommands(patchelf: options.patchelf, program: elf, file: "")
            summary = "\(plan.closure.count) librar\(plan.closure.count == 1 ? "y" : "ies") in DT_NEEDED by absolute path, in load order"
            if !plan.aliases.isEmpty {
                summary += "; \(plan.aliases.count) by a name that is not its soname, found at the first try of the program's search path ("
                    + plan.aliases.prefix(3).map { "\($0.name) → \($0.path)" }.joined(separator: ", ") + (plan.aliases.count > 3 ? ", …" : "") + ")"
            }
        case .view:
            let plan = ViewPlan(load: baseline.load, directory: Self.absolute(viewDirectory!))
            commands = plan.patchelfCommands(patchelf: options.patchelf, program: elf, file: "")
            try FixFiles.makeView(plan.directory, links: plan.links, overwrite: options.overwrite)
            summary = "RUNPATH \(plan.directory): \(plan.links.count) symlinks to \(Set(plan.links.map(\.target)).count) libraries"
        }
        let temp = try FixFiles.privateCopy(of: program, besides: options.output)
        for var c in commands {
            c[c.count - 1] = temp
            let r = FixFiles.run(c)
            guard r.ok else {
                unlink(temp)
                throw FixError("\(c.prefix(3).joined(separator: " ")) … failed: \(r.output.split(separator: "\n").first ?? "")")
            }
        }
        let (before, after) = try prove(program: program, copy: temp, baseline: baseline)
        try FixFiles.install(temp, as: options.output, overwrite: options.overwrite)
        say("wrote \(options.output) (from \(baseline.source)): \(summary)")
        say("predicted file calls of the start-up (loader model): \(before) → \(after)"
            + (after > 0 && before > after ? String(format1: Double(before) / Double(after)) : ""))
        if options.check { try Checker(program: program, copy: options.output, arguments: options.arguments, say: say).run() }
    }

    /// The copy's objects, in order, against the program's, in the fix's
    /// environment: nothing is installed when they differ.
    private func prove(program: String, copy: String, baseline: FixBaseline) throws(FixError) -> (Int, Int) {
        do throws(FixError) {
            let b = try FixBaseline.fromHost(program: program, environment: baseline.environment, glibcVersion: nil)
            let a = try FixBaseline.fromHost(program: copy, environment: baseline.environment, glibcVersion: nil)
            let kb = Self.identities(b.load), ka = Self.identities(a.load)
            if kb != ka {
                let i = zip(kb, ka).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(kb.count, ka.count)
                let want = i < kb.count ? kb[i] : "nothing", got = i < ka.count ? ka[i] : "nothing"
                throw FixError("the loader model says the copy would load other objects than \(program) (object #\(i + 1): \(got) instead of \(want)); nothing written")
            }
            return (b.load.predicted.total, a.load.predicted.total)
        } catch {
            unlink(copy)
            throw error
        }
    }

    static func identities(_ load: LoadResult) -> [String] {
        load.loaded.filter { $0.role == .library }.map { o in
            o.fileID.map { "\($0.device):\($0.inode)" } ?? realPath(o.path)
        }
    }

    /// $ORIGIN in the program's own search path is the program's directory; a
    /// copy elsewhere keeps it meaning that.
    private func expandOrigin(_ elf: ELFFile) -> ELFFile {
        let from = Self.directory(of: Self.realPath(options.program))
        let to = Self.directory(of: Self.realPath(Self.directory(of: Self.absolute(options.output)) + "/."))
        guard from != to else { return elf }
        var out = elf
        func expand(_ s: String?) -> String? {
            s.map { $0.replacingAll("${ORIGIN}", with: from).replacingAll("$ORIGIN", with: from) }
        }
        out.rpath = expand(elf.rpath)
        out.runpath = expand(elf.runpath)
        return out
    }

    static func directory(of path: String) -> String { FixFiles.directory(of: path) }

    /// `path` made absolute, without "." components or repeated slashes (".." kept: it may cross a symlink).
    static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : HostFileSystem().workingDirectory + "/" + path
        let parts = full.split(separator: "/").filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }

    static func realPath(_ path: String) -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }
}

extension String {
    init(format1 ratio: Double) {
        let tenths = Int((ratio * 10).rounded())
        self = " (\(tenths / 10).\(tenths % 10)× fewer)"
    }

    func replacingAll(_ target: String, with replacement: String) -> String {
        let t = Array(target.utf8), r = Array(replacement.utf8), b = Array(utf8)
        guard !t.isEmpty, b.count >= t.count else { return self }
        var out: [UInt8] = []
        var i = 0
        while i < b.count {
            if i + t.count <= b.count && b[i..<(i + t.count)].elementsEqual(t) {
                out += r
                i += t.count
            } else {
                out.append(b[i])
                i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
