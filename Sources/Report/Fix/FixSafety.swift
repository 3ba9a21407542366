import LoaderModel
import TraceFormat
#if canImport(Glibc)
import Glibc
#endif

/// The fixes `loadprobe fix` writes.
public enum FixKind: String, Sendable, CaseIterable {
    case shrinkwrap, view
}

/// What would make a fix change the program's behaviour, said before any file
/// is written (docs/fix.md). Each is one line naming the hazard; `--force`
/// goes on anyway.
public enum FixSafety {
    public static func refusals(_ kind: FixKind, program: String, baseline: FixBaseline) -> [String] {
        let load = baseline.load
        var out: [String] = []
        if load.flavor == .musl {
            out.append("\(program) uses musl's loader (\(load.program.interpreter ?? "ld-musl")): musl matches a needed name "
                       + "against the names its searches found, not sonames, so absolute DT_NEEDED or a view change what it loads; "
                       + "loadprobe's fixes follow glibc's ld.so")
        }
        var st = stat()
        if stat(program, &st) == 0, st.st_mode & (S_ISUID | S_ISGID) != 0 {
            out.append("\(program) is set-user-ID or set-group-ID: ld.so runs it in secure mode, and a copy would run "
                       + "without the privilege; fix a copy made by its owner instead")
        }
        if kind == .shrinkwrap {
            let fromVariable = load.objects.filter { $0.origin == .ldLibraryPath && $0.failure == nil && $0.path != nil }
            if let first = fromVariable.first, let path = first.path {
                let more = Set(fromVariable.compactMap(\.path)).count - 1
                out.append("\(first.needed) comes from LD_LIBRARY_PATH (\(path))" + (more > 0 ? " and \(more) more" : "")
                           + ": shrinkwrap would pin the file and ignore the variable users set to swap it (GPU drivers, MPI); "
                           + "unset it to fix the program's own paths")
            }
        }
        var bySoname: [String: [String]] = [:]
        var order: [String] = []
        for o in load.loaded where o.role == .library {
            guard let soname = o.soname else { continue }
            if bySoname[soname] == nil { order.append(soname) }
            bySoname[soname, default: []].append(o.path)
        }
        for soname in order where bySoname[soname]!.count > 1 {
            out.append("two files with soname \(soname) are loaded (\(bySoname[soname]!.joined(separator: ", "))): "
                       + (kind == .shrinkwrap ? "absolute DT_NEEDED cannot say which one each object gets"
                          : "one view directory cannot hold both"))
        }
        return out
    }

    /// Facts worth a line that do not stop the fix.
    public static func notes(_ kind: FixKind, baseline: FixBaseline, liftDlopen: Bool) -> [String] {
        var out: [String] = []
        if let preload = baseline.environment.ldPreload, !preload.isEmpty {
            out.append("LD_PRELOAD is set (\(preload)): preloaded libraries are not the program's and are left out")
        }
        let dlopened = Set(baseline.load.objects.filter { $0.group > 0 && $0.loadedNewObject }.compactMap(\.path))
        if kind == .shrinkwrap && !liftDlopen && !dlopened.isEmpty {
            out.append("the recorded run dlopened \(dlopened.count) more librar\(dlopened.count == 1 ? "y" : "ies"): "
                       + "not in DT_NEEDED (--lift-dlopen adds them); their searches stay as they are")
        }
        return out
    }
}
