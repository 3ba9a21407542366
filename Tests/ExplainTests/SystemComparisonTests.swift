import Foundation
import Testing
@testable import Report
@testable import LoaderModel

/// The programs and libraries of this machine resolve as `ld.so --list` says.
@Suite("this machine's ELF files against ld.so --list")
struct SystemComparisonTests {
    static let rtld = "/lib64/ld-linux-x86-64.so.2"

    /// About `wanted` dynamic x86-64 executables and shared objects spread over
    /// /usr/bin, /usr/lib and /usr/libexec, by real path (ld.so --list computes
    /// $ORIGIN from the name it is given, a real run from /proc/self/exe), in a
    /// fixed order. The files are listed first, those whose names an ELF file
    /// has here (no extension, `.so`, `.debug`, a version number: 99.8 % of
    /// this machine's, the rest being Python, YAML, JSON…) sampled at an even
    /// stride, and only from each sample point on are files opened, up to the
    /// first ELF file of the right kind: not all 60,000 files of the system.
    static func sample(wanted: Int) -> [String] {
        var files: [String] = []
        for root in ["/usr/bin", "/usr/lib", "/usr/libexec"] {
            guard let walker = FileManager.default.enumerator(atPath: root) else { continue }
            while let relative = walker.nextObject() as? String {
                let name = relative.split(separator: "/").last.map(String.init) ?? relative
                let ext = name.contains(".") ? String(name[name.lastIndex(of: ".")!...]) : ""
                if ext.isEmpty || ext == ".so" || ext == ".debug" || (ext.count > 1 && ext.dropFirst().allSatisfy(\.isNumber)) {
                    files.append(root + "/" + relative)
                }
            }
        }
        files.sort()
        func isCandidate(_ path: String) -> Bool {
            // Regular files only (not a link to one, not a FIFO an open would wait on).
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG,
                  let handle = FileHandle(forReadingAtPath: path) else { return false }
            let head = (try? handle.read(upToCount: 20)) ?? Data()
            try? handle.close()
            return head.count == 20 && head.starts(with: [0x7f, 0x45, 0x4c, 0x46]) && head[4] == 2 && head[18] == 62
                && (head[16] == 2 || head[16] == 3)
        }
        var result: [String] = []
        var seen = Set<String>()
        let stride = max(1, files.count / wanted)
        var next = 0
        for start in Swift.stride(from: 0, to: files.count, by: stride) {
            // From each sample point, the first candidate not taken yet.
            var i = max(start, next)
            while i < files.count && !isCandidate(files[i]) { i += 1 }
            next = i + 1
            guard i < files.count else { break }
            let real = URL(fileURLWithPath: files[i]).resolvingSymlinksInPath().path
            if seen.insert(real).inserted { result.append(real) }
        }
        return result
    }

    /// ld.so --list output: name → path (nil for "not found"); objects loaded under
    /// their path ("\t/path (0x…)") map to themselves; the loader and vDSO are left out.
    static func parseList(_ text: String) -> [String: String?] {
        var map: [String: String?] = [:]
        for raw in text.split(separator: "\n") {
            let line = raw.trimmingCharacters(in: .whitespaces)
            if let arrow = line.range(of: " => ") {
                let name = String(line[..<arrow.lowerBound])
                let rest = line[arrow.upperBound...]
                if rest.hasPrefix("not found") {
                    if map[name] == nil { map[name] = .some(nil) }
                } else if let paren = rest.range(of: " (0x") {
                    if map[name] == nil { map[name] = String(rest[..<paren.lowerBound]) }
                }
            } else if line.hasPrefix("/"), let paren = line.range(of: " (0x") {
                let path = String(line[..<paren.lowerBound])
                if path != rtld { map[path] = path }
            }
        }
        return map
    }

    /// Files for which ld.so --list itself gives no list (static programs, files it
    /// refuses) are not comparisons; they are counted and the test still needs 200.
    @Test("at least 200 programs and libraries resolve each needed library to the same file", .timeLimit(.minutes(10)))
    func compareWithLdSoList() async throws {
        // A spread over the whole list, not only the first directory in sort order.
        let sample = Self.sample(wanted: 320)
        try #require(sample.count >= 200, "only \(sample.count) ELF files sampled")
        let profile = GlibcProfile.host()
        let cache = LDSOCache.load(path: profile.cachePath)
        let environment = LoaderEnvironment(ldLibraryPath: nil, ldPreload: nil, workingDirectory: "/")
        let simulation = GlibcLoaderSimulation(profile: profile, environment: environment, cache: cache)

        var compared = 0
        var failuresCompared = 0
        var mismatches: [String] = []
        var noList = 0
        for path in sample {
            let listed = try shell([Self.rtld, "--list", path], environment: cleanEnvironment, directory: "/")
            let expected = Self.parseList(listed.stdout)
            guard let program = try? ELFFile(contentsOf: path), program.isDynamic else { noList += 1; continue }
            // Some failures end ld.so --list with an error and no list (JVM libraries without
            // libjvm.so on their paths): then the simulation must fail on the same name.
            let openError = "error while loading shared libraries: "
            if listed.status != 0, expected.isEmpty, let range = listed.stderr.range(of: openError) {
                let rest = listed.stderr[range.upperBound...]
                let name = String(rest.prefix { $0 != ":" })
                guard rest.contains("cannot open shared object file") else { noList += 1; continue }
                let load = simulation.run(program: program)
                failuresCompared += 1
                if !load.objects.contains(where: { $0.needed == name && $0.path == nil }) {
                    mismatches.append("\(path): ld.so cannot open \(name), explain finds it")
                }
                continue
            }
            // ld.so --list crashes on static programs and gives nothing for files without a dynamic section.
            guard listed.status == 0 || !expected.isEmpty else { noList += 1; continue }
            let load = simulation.run(program: program)
            var predicted: [String: String?] = [:]
            for object in load.objects where predicted[object.needed] == nil {
                if object.loadedNewObject || object.path == nil { predicted[object.needed] = .some(object.path) }
            }
            compared += 1
            if predicted != expected {
                let keys = Set(predicted.keys).union(expected.keys).sorted()
                let differences = keys.filter { predicted[$0] != expected[$0] }.map {
                    "\($0): ld.so \(String(describing: expected[$0])), explain \(String(describing: predicted[$0]))"
                }
                mismatches.append("\(path): " + differences.joined(separator: "; "))
            }
        }
        print("ld.so --list comparison: \(sample.count) sampled, \(compared) lists compared, \(failuresCompared) load failures compared, \(noList) without a list, \(mismatches.count) mismatches")
        #expect(compared >= 200, "only \(compared) files compared (\(noList) without a list)")
        #expect(mismatches.isEmpty, "\(mismatches.count) of \(compared) differ:\n\(mismatches.joined(separator: "\n"))")
    }
}
