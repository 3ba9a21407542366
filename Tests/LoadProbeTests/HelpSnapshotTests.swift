import Foundation
import Testing
@testable import LoadProbe

/// Each command's help, as users read it, against a checked-in copy
/// (Tests/LoadProbeTests/help/*.txt): an option renamed, dropped or
/// re-described shows up here. `LOADPROBE_UPDATE_SNAPSHOTS=1 swift test
/// --filter HelpSnapshot` rewrites the copies after an intended change.
@Suite struct HelpSnapshotTests {
    static let commands: [(String, String)] = [
        ("loadprobe", LoadProbe.helpMessage(columns: 100)),
        ("record", LoadProbe.helpMessage(for: Record.self, columns: 100)),
        ("report", LoadProbe.helpMessage(for: ReportCommand.self, columns: 100)),
        ("explain", LoadProbe.helpMessage(for: Explain.self, columns: 100)),
        ("diff", LoadProbe.helpMessage(for: Diff.self, columns: 100)),
        ("calibrate", LoadProbe.helpMessage(for: Calibrate.self, columns: 100)),
        ("fix", LoadProbe.helpMessage(for: Fix.self, columns: 100)),
        ("fix-shrinkwrap", LoadProbe.helpMessage(for: FixShrinkwrap.self, columns: 100)),
        ("fix-view", LoadProbe.helpMessage(for: FixView.self, columns: 100)),
    ]

    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("help")

    @Test(arguments: commands.map(\.0))
    func helpMatchesSnapshot(_ name: String) throws {
        let text = Self.commands.first { $0.0 == name }!.1
        let file = Self.directory.appendingPathComponent(name + ".txt")
        if ProcessInfo.processInfo.environment["LOADPROBE_UPDATE_SNAPSHOTS"] == "1" {
            try text.write(to: file, atomically: false, encoding: .utf8)
        }
        let expected = try String(contentsOf: file, encoding: .utf8)
        #expect(text == expected, "help of '\(name)' changed; if intended, rerun with LOADPROBE_UPDATE_SNAPSHOTS=1")
    }
}
