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
    public static func refusals(_ kind: FixKind, program: String, baseline: FixBaseline, liftDlopen: Bool = false) -> [String] {
        let load = baseline.load
        var out: [String] = []
        // What the fix pins: the start-up's libraries, and the dlopened ones when lifted.
        let pinned = load.objects.filter { $0.failure == nil && $0.path != nil && (liftDlopen || $0.group == 0) }
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
        if FileSecurity.hasCapabilities(program) {
            out.append("\(program) has file capabilities (security.capability): ld.so runs it in secure mode, and a copy "
                       + "would run without them")
        }
        if let preload = baseline.environment.ldPreload, !preload.isEmpty {
            out.append("LD_PRELOAD is set (\(preload)): a preloaded library may serve the program's own names, and the copy "
                       + "would pin it; unset it, or record without it and fix --from that trace")
        }
        if let variant = pinned.first(where: { ($0.path ?? "").contains("/glibc-hwcaps/") }), let path = variant.path {
            out.append("\(variant.needed) resolves to a glibc-hwcaps variant (\(path)): the \(kind == .shrinkwrap ? "copy" : "view") "
                       + "would pin it on every CPU, where ld.so picks the variant for the CPU it runs on")
        }
        if kind == .shrinkwrap {
            let fromVariable = pinned.filter { $0.origin == .ldLibraryPath }
            if let first = fromVariable.first, let path = first.path {
                let more = Set(fromVariable.compactMap(\.path)).count - 1
                out.append("\(first.needed) comes from LD_LIBRARY_PATH (\(path))" + (more > 0 ? " and \(more) more" : "")
                           + ": shrinkwrap would pin the file and ignore the variable users set to swap it (GPU drivers, MPI); "
                           + "unset it to fix the program's own paths")
            }
        }
        for (soname, paths) in load.duplicateSonames {
            out.append("two files with soname \(soname) are loaded (\(paths.joined(separator: ", "))): "
                       + (kind == .shrinkwrap ? "absolute DT_NEEDED cannot say which one each object gets"
                          : "one view directory cannot hold both"))
        }
        return out
    }

    /// Facts worth a line that do not stop the fix.
    public static func notes(_ kind: FixKind, baseline: FixBaseline, liftDlopen: Bool) -> [String] {
        var out: [String] = []
        let dlopened = Set(baseline.load.objects.filter { $0.group > 0 && $0.loadedNewObject }.compactMap(\.path))
        if kind == .shrinkwrap && liftDlopen && !dlopened.isEmpty {
            out.append("--lift-dlopen: the \(dlopened.count) dlopened librar\(dlopened.count == 1 ? "y loads" : "ies load") before main, "
                       + "\(dlopened.count == 1 ? "its" : "their") constructors run before main and \(dlopened.count == 1 ? "its" : "their") symbols "
                       + "join the global scope (a plug-in opened RTLD_LOCAL no longer is; one with a symbol another defines "
                       + "may bind differently): check the copy's behaviour (--check)")
        }
        if kind == .shrinkwrap && !liftDlopen && !dlopened.isEmpty {
            out.append("the recorded run dlopened \(dlopened.count) more librar\(dlopened.count == 1 ? "y" : "ies"): "
                       + "not in DT_NEEDED (--lift-dlopen adds them); their searches stay as they are")
        }
        return out
    }
}
