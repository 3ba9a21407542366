import Foundation
import Testing
@testable import Report
@testable import LoaderModel

/// The programs and libraries of this machine resolve as `ld.so --list` says.
@Suite("this machine's ELF files against ld.so --list")
struct SystemComparisonTests {
    static let rtld = "/lib64/ld-linux-x86-64.so.2"

    /// Dynamic x86-64 executables and shared objects under /usr/bin, /usr/lib and
    /// /usr/libexec, by real path (ld.so --list computes $ORIGIN from the name it is
    /// given, a real run from /proc/self/exe), in a fixed order.
    static func candidates() -> [String] {
        var result = Set<String>()
        for root in ["/usr/bin", "/usr/lib", "/usr/libexec"] {
            guard let walker = FileManager.default.enumerator(atPath: root) else { continue }
            while let relative = walker.nextObject() as? String {
                let path = root + "/" + relative
                guard let attributes = try? FileManager.default.attributesOfItem(atPath: path),
                      attributes[.type] as? FileAttributeType == .typeRegular,
                      let handle = FileHandle(forReadingAtPath: path) else { continue }
                let head = (try? handle.read(upToCount: 20)) ?? Data()
                try? handle.close()
                guard head.count == 20, head.starts(with: [0x7f, 0x45, 0x4c, 0x46]), head[4] == 2, head[18] == 62,
                      head[16] == 2 || head[16] == 3 else { continue }
                result.insert(URL(fileURLWithPath: path).resolvingSymlinksInPath().path)
            }
        }
        return result.sorted()
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
        let all = Self.candidates()
        try #require(all.count >= 200, "only \(all.count) ELF files found")
        // A spread over the whole list, not only the first directory in sort order.
        let wanted = 320
        let stride = max(1, all.count / wanted)
        let sample = Swift.stride(from: 0, to: all.count, by: stride).map { all[$0] }
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
