import Report
import LoaderModel
import SystemLayer
import Tracer
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
        FixCleanup.install()
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
        let program = Self.onPath(options.program)
        let (baseline, elf) = try inputs(program)
        try refuseUnsafe(program, baseline: baseline, elf: elf)
        try FixFiles.checkOutput(options.output, overwrite: options.overwrite)
        let planned = try plan(program, baseline: baseline, elf: elf)
        do throws(FixError) {
            try writeCopy(program, baseline: baseline, planned)
        } catch {
            planned.view?.undo()
            throw error
        }
        planned.view?.commit()
        say("wrote \(options.output) (from \(baseline.source)): \(planned.summary)")
    }

    /// The program's resolution (recorded or modeled) and its ELF facts, checked against each other.
    private func inputs(_ program: String) throws(FixError) -> (FixBaseline, ELFFile) {
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
        let elf: ELFFile
        do throws(ELFReadError) { elf = try HostFileSystem().readELF(program) } catch { throw FixError(error.description) }
        if !elf.isDynamic || elf.interpreter == nil {
            throw FixError("\(program) is statically linked: the loader searches nothing, there is nothing to fix")
        }
        if let trace = options.trace, baseline.programChanged(elf) {
            throw FixError("\(program) has changed since \(trace) was recorded (its DT_NEEDED or search path differ): record it again")
        }
        return (baseline, elf)
    }

    /// The hazards, each one line; they stop the fix unless --force. An OUTPUT that is an input always does.
    private func refuseUnsafe(_ program: String, baseline: FixBaseline, elf: ELFFile) throws(FixError) {
        var refusals = FixSafety.refusals(kind, program: program, baseline: baseline, liftDlopen: liftDlopen)
        if kind == .view && elf.rpath == nil && elf.runpath == nil {
            refusals.append("\(program) has no RPATH or RUNPATH: it finds its libraries through ld.so.cache and the default "
                            + "directories, and a view would add a directory to search first")
        }
        if let hit = baseline.load.loaded.first(where: { Self.sameFile($0.path, options.output) }) {
            throw FixError("\(options.output) is \(hit.path), which the program loads: a fix never writes over its input files")
        }
        if let trace = options.trace, Self.sameFile(trace, options.output) {
            throw FixError("\(options.output) is the trace given with --from")
        }
        for r in refusals { say("loadprobe fix: " + (options.force ? "going on (--force) despite: " : "refused: ") + r, fd: 2) }
        if !refusals.isEmpty && !options.force { Glibc.exit(1) }
        for n in FixSafety.notes(kind, baseline: baseline, liftDlopen: liftDlopen) { say("note: " + n) }
    }

    /// What will be written: the patchelf calls, the dynamic section they must leave, the view (made now).
    struct Planned {
        var commands: [[String]]
        var expected: ELFFile
        var summary: String
        var view: FixFiles.MadeView?
    }

    private func plan(_ program: String, baseline: FixBaseline, elf original: ELFFile) throws(FixError) -> Planned {
        let elf = expandOrigin(original)
        var expected = elf
        switch kind {
        case .shrinkwrap:
            let plan = ShrinkwrapPlan(load: baseline.load, liftDlopen: liftDlopen)
            let commands = plan.patchelfCommands(patchelf: options.patchelf, program: elf, file: "")
                + originCommands(original: original, expanded: elf, planned: plan.searchPath(of: elf) != nil)
            plan.apply(to: &expected)
            if let clash = aliasClash(plan, elf), !options.force {
                say("loadprobe fix: refused: " + clash, fd: 2)
                Glibc.exit(1)
            }
            var summary = "\(plan.closure.count) librar\(plan.closure.count == 1 ? "y" : "ies") in DT_NEEDED by absolute path, in load order"
            if !plan.aliases.isEmpty {
                summary += "; \(plan.aliases.count) by a name that is not its soname, found at the first try of the program's search path ("
                    + plan.aliases.prefix(3).map { "\($0.name) → \($0.path)" }.joined(separator: ", ") + (plan.aliases.count > 3 ? ", …" : "") + ")"
            }
            return Planned(commands: commands, expected: expected, summary: summary, view: nil)
        case .view:
            let plan = ViewPlan(load: baseline.load, directory: Self.absolute(viewDirectory!))
            let commands = plan.patchelfCommands(patchelf: options.patchelf, program: elf, file: "")
            plan.apply(to: &expected)
            let others = otherLibraries(in: elf, besides: plan.links)
            let view = try FixFiles.makeView(plan.directory, links: plan.links + others, overwrite: options.overwrite, program: program)
            let summary = "\(plan.keepsRpath(elf) ? "RPATH" : "RUNPATH") \(plan.directory): \(plan.links.count) symlink\(plan.links.count == 1 ? "" : "s") "
                + "to the \(Set(plan.links.map(\.target)).count) libraries the start-up found through RPATH/RUNPATH"
                + (others.isEmpty ? "" : ", and \(others.count) to the other libraries of the program's own search directories (what it may dlopen by name)")
            return Planned(commands: commands, expected: expected, summary: summary, view: view)
        }
    }

    /// The copy patched, verified, proved by the model (and --check), then put in OUTPUT's place.
    private func writeCopy(_ program: String, baseline: FixBaseline, _ planned: Planned) throws(FixError) {
        let temp = try FixFiles.privateCopy(of: program, besides: options.output)
        for var c in planned.commands {
            c[c.count - 1] = temp
            let r = FixFiles.run(c)
            guard r.ok else {
                unlink(temp)
                let said = r.output.split(separator: "\n").first.map(String.init) ?? ""
                throw FixError("\(c.prefix(3).joined(separator: " ")) … failed (\(r.status)): " + (said.isEmpty ? "it said nothing" : said))
            }
        }
        try verify(temp, expected: planned.expected)
        let (before, after) = try prove(program: program, copy: temp, baseline: baseline)
        say("predicted file calls of the start-up (loader model): \(before) → \(after)" + Self.change(before, after)
            + (liftDlopen ? " (the copy's start-up also loads the lifted libraries, which the program loads later)" : ""))
        if options.check {
            do throws(FixError) {
                try Checker(program: program, copy: temp, arguments: options.arguments, say: say).run()
            } catch {
                unlink(temp)
                throw FixError(error.description + "; nothing written")
            }
        }
        try FixFiles.install(temp, as: options.output, overwrite: options.overwrite)
    }

    /// The copy's dynamic section as the plan says it should be: a patchelf
    /// that exits 0 without writing is not taken for a fix.
    private func verify(_ copy: String, expected: ELFFile) throws(FixError) {
        let got: ELFFile
        do throws(ELFReadError) { got = try HostFileSystem().readELF(copy) } catch {
            unlink(copy)
            throw FixError("patchelf left a file that cannot be read: \(error.description)")
        }
        guard got.needed == expected.needed && got.runpath == expected.runpath && got.rpath == expected.rpath else {
            unlink(copy)
            throw FixError("patchelf exited 0 but the copy is not as planned (DT_NEEDED \(got.needed.count) entries, "
                           + "\(expected.needed.count) expected; RUNPATH \(got.runpath ?? "none"), RPATH \(got.rpath ?? "none")); nothing written")
        }
    }

    /// The copy's objects, in order, against the program's (and the lifted
    /// dlopened libraries after them), in the fix's environment: nothing is
    /// installed when they differ.
    private func prove(program: String, copy: String, baseline: FixBaseline) throws(FixError) -> (Int, Int) {
        do throws(FixError) {
            // The program here, in the fix's environment: the baseline itself when it came from the model here.
            let b = options.trace == nil ? baseline
                : try FixBaseline.fromHost(program: program, environment: baseline.environment, glibcVersion: nil)
            let copied = try FixBaseline.model(program: copy, environment: baseline.environment)
            if let failure = copied.failure {
                throw FixError("the loader model says the copy would not start (\(failure.message.replacingAll(copy, with: "the copy"))); nothing written")
            }
            var want = Self.identities(b.load)
            if liftDlopen {
                let startup = Set(baseline.load.objects.filter { $0.group == 0 }.compactMap(\.path))
                var seen = Set<String>()
                for o in baseline.load.objects where o.group > 0 && o.loadedNewObject && o.failure == nil {
                    guard let p = o.path, !startup.contains(p), seen.insert(p).inserted else { continue }
                    want.append(Self.identity(p, nil))
                }
            }
            let got = Self.identities(copied)
            if want.map(\.id) != got.map(\.id) {
                let i = zip(want, got).enumerated().first { $0.element.0.id != $0.element.1.id }?.offset ?? min(want.count, got.count)
                let w = i < want.count ? want[i].path : "nothing", g = i < got.count ? got[i].path : "nothing"
                throw FixError("the loader model says the copy would load other objects than \(program) (object #\(i + 1): \(g) instead of \(w)); nothing written")
            }
            return (b.load.predicted.total, copied.predicted.total)
        } catch {
            unlink(copy)
            throw error
        }
    }

    /// The other shared libraries of the program's own RPATH/RUNPATH
    /// directories, first directory first, under names the view does not
    /// have yet: a dlopen by name from the program finds what it found before.
    /// No name the start-up asked for is among them (its search would have found it).
    /// A file ld.so would skip (another class or machine) is passed over, as
    /// ld.so passes over it and searches on: the view has only one directory.
    private func otherLibraries(in elf: ELFFile, besides links: [(name: String, target: String)]) -> [(name: String, target: String)] {
        var taken = Set(links.map(\.name))
        var out: [(name: String, target: String)] = []
        let host = HostFileSystem()
        let origin = LoaderPath.directory(Self.realPath(options.program))
        let path = ((elf.runpath ?? elf.rpath) ?? "").replacingAll("${ORIGIN}", with: origin).replacingAll("$ORIGIN", with: origin)
        for dir in path.split(separator: ":").map(String.init) where dir.hasPrefix("/") {
            guard let entries = Sys.listDirectory(dir) else { continue }
            for e in entries.map(\.name).sorted() where e.contains(".so") && !taken.contains(e) {
                var st = stat()
                guard stat(dir + "/" + e, &st) == 0, st.st_mode & S_IFMT == S_IFREG,
                      case .opened(_, let header, nil) = host.open(dir + "/" + e),
                      LoaderHeaderCheck.glibc(header: header, fileClass: elf.fileClass, machine: elf.machine) == .accepted else { continue }
                taken.insert(e)
                out.append((e, dir + "/" + e))
            }
        }
        return out
    }

    /// The search path with $ORIGIN made the program's directory, when the
    /// copy goes elsewhere and the plan does not write the path itself.
    private func originCommands(original: ELFFile, expanded: ELFFile, planned: Bool) -> [[String]] {
        guard !planned else { return [] }
        if let r = expanded.runpath, r != original.runpath { return [[options.patchelf, "--set-rpath", r, ""]] }
        if let r = expanded.rpath, r != original.rpath { return [[options.patchelf, "--force-rpath", "--set-rpath", r, ""]] }
        return []
    }

    /// The aliases' directories go first in the program's search path: one
    /// that also holds another library the program's own search path finds
    /// elsewhere would change what the program dlopens by that name.
    private func aliasClash(_ plan: ShrinkwrapPlan, _ elf: ELFFile) -> String? {
        let own = ((elf.runpath ?? elf.rpath) ?? "").split(separator: ":").map(String.init).filter { $0.hasPrefix("/") }
        let aliasNames = Set(plan.aliases.map(\.name))
        for dir in plan.aliasDirectories {
            for e in (Sys.listDirectory(dir) ?? []).map(\.name) where e.contains(".so") && !aliasNames.contains(e) {
                for other in own where other != dir && access(other + "/" + e, F_OK) == 0
                    && Self.realPath(other + "/" + e) != Self.realPath(dir + "/" + e) {
                    return "\(dir) must go first in the copy's search path (for \(plan.aliases[0].name), whose soname is another), "
                        + "but it also holds \(e), which the program's own search path finds in \(other): what the program "
                        + "dlopens by that name would change (--force to go on)"
                }
            }
        }
        return nil
    }

    /// A bare program name is looked up on PATH, as `record` looks it up.
    static func onPath(_ name: String) -> String {
        (try? CommandLookup.resolve(name, path: getenv("PATH").map { String(cString: $0) })) ?? name
    }

    /// The libraries a load maps, in order, by file identity.
    static func identities(_ load: LoadResult) -> [(id: String, path: String)] {
        load.loaded.filter { $0.role == .library }.map { identity($0.path, $0.fileID) }
    }

    static func identity(_ path: String, _ id: FileID?) -> (id: String, path: String) {
        if let id { return ("\(id.device):\(id.inode)", path) }
        var st = stat()
        return (stat(path, &st) == 0 ? "\(st.st_dev):\(st.st_ino)" : realPath(path), path)
    }

    /// $ORIGIN in the program's own search path is the program's directory; a
    /// copy elsewhere keeps it meaning that.
    private func expandOrigin(_ elf: ELFFile) -> ELFFile {
        let from = LoaderPath.directory(Self.realPath(options.program))
        let to = Self.realPath(LoaderPath.directory(Self.absolute(options.output)))
        guard from != to else { return elf }
        var out = elf
        func expand(_ s: String?) -> String? {
            s.map { $0.replacingAll("${ORIGIN}", with: from).replacingAll("$ORIGIN", with: from) }
        }
        out.rpath = expand(elf.rpath)
        out.runpath = expand(elf.runpath)
        return out
    }


    /// `path` made absolute, without "." components or repeated slashes (".." kept: it may cross a symlink).
    static func absolute(_ path: String) -> String {
        let full = path.hasPrefix("/") ? path : HostFileSystem().workingDirectory + "/" + path
        let parts = full.split(separator: "/").filter { $0 != "." }
        return "/" + parts.joined(separator: "/")
    }

    static func realPath(_ path: String) -> String { HostFileSystem().realPath(path) ?? path }

    static func sameFile(_ a: String, _ b: String) -> Bool {
        var sa = stat(), sb = stat()
        return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino
    }
}

extension Fixer {
    /// " (8.4× fewer)", " (57 fewer)", " (12 more)" or "".
    static func change(_ before: Int, _ after: Int) -> String {
        if after > before { return " (\(after - before) more)" }
        guard before > after else { return "" }
        guard after > 0, before * 10 >= after * 11 else { return " (\(before - after) fewer)" }
        let tenths = Int((Double(before) / Double(after) * 10).rounded())
        return " (\(tenths / 10).\(tenths % 10)× fewer)"
    }
}

extension String {

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
