import LoaderModel
import TraceFormat

/// The loader's world one recorded process saw, made into the simulation's
/// input: the ELF objects (the trace's OBJECT records; for traces older than
/// format 3, the files on this host when allowed), the directories its
/// lookups found or missed, ld.so.cache's answers, the environment, the
/// loader's profile and the dlopens it made. Nothing else exists in it: a
/// path the run never found is missing.
struct TraceWorld {
    /// Where the ELF facts came from, for the report's assumptions.
    enum Source: String { case trace = "the trace (OBJECT records)", host = "the files on this host (the trace has no OBJECT records)" }

    let trace: Trace
    var world: LoaderWorld
    let source: Source
    let profile: GlibcProfile
    let profileSource: String
    let environment: LoaderEnvironment

    /// nil when neither the trace nor (if allowed) the host gives ELF facts.
    init?(_ a: TraceAnalysis, consultHost: Bool) {
        trace = a.trace
        let conditions = RecordedConditions(trace: a.trace)
        environment = conditions.environment
        world = LoaderWorld(workingDirectory: environment.workingDirectory)
        if !a.trace.objects.isEmpty {
            source = .trace
            for o in a.trace.objects {
                world.addFile(a.trace.path(o.path), TraceWorld.file(o, trace: a.trace))
            }
        } else if consultHost {
            source = .host
            var seen = Set<String>()
            for p in a.processes {
                var paths = [p.image] + p.objects.map(\.path)
                for c in p.calls where !c.failed && (c.event.call.isOpen || c.event.call.isExec) {
                    paths.append(a.trace.path(c.event.resolved ?? c.event.path))
                }
                for path in paths where path.hasPrefix("/") && seen.insert(path).inserted {
                    if let f = FileFacts.read(path) {
                        world.addFile(path, LoaderWorld.File(id: f.id, size: f.size, contentHash: f.contentHash, elf: f.elf))
                    }
                }
            }
        } else {
            return nil
        }
        (profile, profileSource) = TraceWorld.profile(a.trace, version: conditions.glibcVersion, consultHost: consultHost)
        for p in a.processes { addLookups(p) }
    }

    static func file(_ o: ObjectFacts, trace: Trace) -> LoaderWorld.File {
        func text(_ id: UInt32?) -> String? { id.map { trace.string($0) } }
        let elf = ELFFile(path: trace.path(o.path), fileClass: o.elfClass == 2 ? .elf64 : .elf32,
                          byteOrder: o.byteOrder == 2 ? .bigEndian : .littleEndian, machine: Machine(rawValue: o.machine),
                          osABI: o.osABI, abiVersion: o.abiVersion, type: ELFFile.ObjectType(rawValue: o.type),
                          interpreter: text(o.interpreter), isDynamic: o.isDynamic, needed: o.needed.map { trace.string($0) },
                          rpath: text(o.rpath), runpath: text(o.runpath), soname: text(o.soname),
                          flags: o.flags, flags1: o.flags1)
        return LoaderWorld.File(id: FileID(device: o.device, inode: o.inode), size: o.size, contentHash: o.contentHash, elf: elf)
    }

    /// The directory facts of a process's lookups: glibc's stats of search
    /// directories and capability subdirectories, and directories opened.
    mutating func addLookups(_ p: ProcessAnalysis) {
        for c in p.calls where c.event.completed {
            let e = c.event
            let directoryStat = c.purpose == .directoryStat || (c.purpose == .hwcapsProbe && e.call.isStat)
            let listing = e.call.isOpen && e.flags & 0o200000 != 0 && !e.failed
            let config = e.call.isOpen && !e.failed && c.purpose == .loaderConfig
            guard directoryStat || listing || config else { continue }
            let path = trace.path(e.resolved ?? e.path)
            guard path.hasPrefix("/") else { continue }
            if directoryStat {
                world.setDirectory(path, exists: !e.failed)
            } else if listing {
                world.setDirectory(path, exists: true)
            } else if path == profile.cachePath && world.file(path) == nil {
                world.addFile(path, LoaderWorld.File(id: world.newFileID(), elf: nil))
            }
        }
    }

    /// glibc's profile as the recording host described it (trace metadata),
    /// else this host's when the trace comes from here, else Debian's x86-64
    /// layout with the trace's glibc version.
    static func profile(_ t: Trace, version: GlibcVersion?, consultHost: Bool) -> (GlibcProfile, String) {
        func list(_ key: MetaKey, _ sep: Character) -> [String]? {
            t.meta(key).map { $0.split(separator: sep).map(String.init) }
        }
        let v = version ?? GlibcVersion(2, 36)
        var refused = ""
        if let hwcaps = list(.loaderHwcaps, ","), let legacy = list(.loaderLegacyHwcaps, ","),
           let lib = t.meta(.loaderLib), let dirs = list(.loaderDefaultDirs, ":") {
            // Every search directory is tried with every subdirectory (and the legacy
            // names' power set): more names than a glibc has would make a small trace
            // an endless simulation.
            if hwcaps.count <= GlibcProfile.maxHwcapsSubdirectories && legacy.count <= GlibcProfile.maxLegacyHwcapNames
                && dirs.count <= GlibcProfile.maxSystemDirectories {
                var p = GlibcProfile.debianX86_64(version: v, hwcaps: hwcaps, legacyHwcapNames: legacy, platform: t.meta(.loaderPlatform))
                p.libToken = lib
                p.systemDirectories = dirs
                return (p, "the recording host (trace metadata)")
            }
            refused = " (the trace's loader description names \(hwcaps.count) glibc-hwcaps subdirectories, \(legacy.count) legacy hwcaps "
                + "and \(dirs.count) default directories: more than a glibc has, not used)"
        }
        if consultHost {
            var p = GlibcProfile.host()
            p.version = v
            return (p, "this host's CPU and layout" + (refused.isEmpty ? " (the trace does not say)" : refused))
        }
        return (GlibcProfile.debianX86_64(version: v), "Debian x86-64 defaults" + (refused.isEmpty ? " (the trace does not say)" : refused))
    }

    /// The simulation input of one process: nil when the world has no ELF
    /// facts for its program, or it is not a glibc program.
    func input(for p: ProcessAnalysis) -> SimulationInput? {
        guard !p.image.isEmpty, let elf = world.file(p.image)?.elf, elf.isDynamic,
              let interp = elf.interpreter, !LoaderWorld.isMuslInterpreter(interp) else { return nil }
        var entries: [LDSOCache.Entry] = []
        var cached = Set<String>()
        let flags: Int32 = profile.fileClass == .elf64 && profile.machine == .x86_64 ? 0x303 : 0x3
        for s in p.searches {
            for c in s.candidates where c.origin == .cache && cached.insert(s.name).inserted {
                entries.append(LDSOCache.Entry(flags: flags, name: s.name, path: c.path))
            }
        }
        let cache = world.file(profile.cachePath) == nil ? nil : LDSOCache(format: .new, entries: entries)
        var dlopens: [DlopenRequest] = []
        for g in p.groups where g.phase.isDlopen {
            guard let name = g.names.first else { continue }
            dlopens.append(DlopenRequest(name: name, caller: g.caller?.object))
        }
        var env = environment
        env.workingDirectory = world.workingDirectory
        return SimulationInput(world: world, program: p.image, profile: profile, environment: env,
                               cache: cache, dlopens: dlopens)
    }
}

extension LoaderWorld {
    /// musl's loader names itself ld-musl-ARCH.so.1.
    static func isMuslInterpreter(_ path: String) -> Bool {
        let base = path.split(separator: "/").last ?? ""
        return base.hasPrefix("ld-musl-")
    }
}
