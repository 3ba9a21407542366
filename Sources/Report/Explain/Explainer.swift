import LoaderModel
/// How to explain: the environment the start-up would see, and which loader to assume.
public struct ExplainOptions: Sendable {
    public var environment: LoaderEnvironment
    /// The glibc loader to simulate; nil means this machine's.
    public var glibcProfile: GlibcProfile?
    /// Simulate another glibc release with this machine's CPU and layout.
    public var glibcVersion: GlibcVersion?
    /// The ld.so.cache to use; nil means read the profile's cache path.
    public var cache: LDSOCache?
    public var fileSystem: any LoaderFileSystem
    public var findHazards: Bool

    public init(environment: LoaderEnvironment = .current(), glibcProfile: GlibcProfile? = nil,
                glibcVersion: GlibcVersion? = nil, cache: LDSOCache? = nil,
                fileSystem: any LoaderFileSystem = HostFileSystem(), findHazards: Bool = true) {
        self.environment = environment
        self.glibcProfile = glibcProfile
        self.glibcVersion = glibcVersion
        self.cache = cache
        self.fileSystem = fileSystem
        self.findHazards = findHazards
    }
}

/// The static view of a start-up: what the loader will do, what it will cost, and
/// what is fragile.
public struct Explanation: Sendable {
    public var load: LoadResult
    public var hazards: [Hazard]
    /// Facts worth a line that are not hazards ("statically linked").
    public var notes: [String]
    /// The first reason the program would not start, nil when it would.
    public var failure: StartupFailure?
}

/// Why `explain` cannot analyse the file at all.
public enum ExplainError: Error, Sendable, Equatable, CustomStringConvertible {
    case unreadable(ELFReadError)
    case unsupported(path: String, reason: String)

    public var description: String {
        switch self {
        case .unreadable(let error): error.description
        case .unsupported(let path, let reason): "\(path): \(reason)"
        }
    }
}

public enum Explainer {
    /// Reads `path`, simulates its loader (glibc, or musl when PT_INTERP names
    /// ld-musl-*) and finds the hazards.
    public static func explain(_ path: String, options: ExplainOptions = ExplainOptions()) throws(ExplainError) -> Explanation {
        let program: ELFFile
        do throws(ELFReadError) {
            program = try options.fileSystem.readELF(path)
        } catch {
            throw .unreadable(error)
        }
        try checkSupported(program)
        let loader = makeLoader(for: program, options: options)
        var notes: [String] = []
        if !program.isDynamic {
            notes.append(program.interpreter == nil
                ? "statically linked: the kernel starts it directly and no loader search happens"
                : "has PT_INTERP but no dynamic section")
        }
        if case .glibc(let sim) = loader, let interpreter = program.interpreter, interpreter != sim.profile.interpreterPath,
           options.fileSystem.realPath(interpreter) != options.fileSystem.realPath(sim.profile.interpreterPath) {
            notes.append("the interpreter \(interpreter) is not this system's \(sim.profile.interpreterPath); "
                + "simulated with this system's glibc \(sim.profile.version) rules, cache and default directories")
        }
        let load: LoadResult = switch loader {
        case .glibc(let sim): sim.run(program: program)
        case .musl(let sim): sim.run(program: program)
        }
        var result = Explanation(load: load, hazards: [], notes: notes, failure: load.failure)
        if let interpreter = program.interpreter, case .failed = options.fileSystem.open(interpreter) {
            let base = LoaderPath.basename(interpreter)
            let message = "\(base): not found (PT_INTERP \(interpreter) does not exist"
                + (MuslProfile.isMuslInterpreter(interpreter) ? "; a musl program on a system without musl)" : "; a glibc program on a system without this glibc loader, e.g. a musl system)")
            result.failure = StartupFailure(kind: .missingInterpreter, object: program.path, message: message)
            result.load.predicted = SyscallCounts()
            result.hazards.append(Hazard(kind: .missingInterpreter, message: "\(program.path): \(message)", objects: [program.path]))
        }
        if options.findHazards {
            result.hazards += HazardAnalysis(load: load, loader: loader).hazards()
        }
        if result.failure == nil, let versionHazard = result.hazards.first(where: { $0.kind == .symbolVersion }) {
            result.failure = StartupFailure(kind: .symbolVersion, object: versionHazard.objects.first ?? program.path,
                                            message: versionHazard.message)
        }
        return result
    }

    /// The loader a program gets: musl when its interpreter is ld-musl-*, glibc otherwise.
    public static func makeLoader(for program: ELFFile, options: ExplainOptions) -> HazardAnalysis.Loader {
        if let interpreter = program.interpreter, MuslProfile.isMuslInterpreter(interpreter) {
            return .musl(MuslLoaderSimulation(profile: .forInterpreter(interpreter), environment: options.environment,
                                              fileSystem: options.fileSystem))
        }
        var profile = options.glibcProfile ?? GlibcProfile.host(fileSystem: options.fileSystem)
        if let version = options.glibcVersion { profile.version = version }
        let cache = options.cache ?? LDSOCache.load(path: profile.cachePath, fileSystem: options.fileSystem)
        return .glibc(GlibcLoaderSimulation(profile: profile, environment: options.environment, cache: cache,
                                            fileSystem: options.fileSystem))
    }

    /// explain covers what this machine's loader can run: 64-bit x86-64 programs and libraries.
    public static func checkSupported(_ program: ELFFile) throws(ExplainError) {
        if program.fileClass == .elf32 {
            throw .unsupported(path: program.path, reason: "32-bit ELF file (ELFCLASS32, \(program.machine)); explain covers 64-bit x86-64 programs")
        }
        if program.machine != .x86_64 {
            throw .unsupported(path: program.path, reason: "ELF file for \(program.machine), not x86-64; explain covers x86-64 programs")
        }
        if program.byteOrder != .littleEndian {
            throw .unsupported(path: program.path, reason: "big-endian ELF file; explain covers little-endian x86-64 programs")
        }
        switch program.type {
        case .executable, .sharedObject: break
        case .relocatable: throw .unsupported(path: program.path, reason: "relocatable object (.o), not a program or shared library")
        case .core: throw .unsupported(path: program.path, reason: "core dump, not a program")
        case .other(let raw): throw .unsupported(path: program.path, reason: "ELF type \(raw) is not a program or shared library")
        }
    }

    /// The explanation `loadprobe -- CMD` prints when CMD fails to start: nil when
    /// the static view predicts a clean start-up.
    public static func startupDiagnosis(for path: String, environment: LoaderEnvironment) -> String? {
        guard let explanation = try? explain(path, options: ExplainOptions(environment: environment)),
              let failure = explanation.failure else { return nil }
        var lines = ["\(path) cannot start: \(failure.message)"]
        for hazard in explanation.hazards where [.missingLibrary, .missingInterpreter, .symbolVersion].contains(hazard.kind) {
            lines.append("  \(hazard.kind.rawValue): \(hazard.message)")
        }
        return lines.joined(separator: "\n")
    }
}
