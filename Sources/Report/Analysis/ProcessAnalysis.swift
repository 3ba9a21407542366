import LoaderModel
import TraceFormat

/// An object ld.so reported loaded (la_objopen), in load order.
public struct LoadedObjectRecord: Sendable, Equatable {
    /// The path ld.so knows it by ("" for the program itself, as l_name is).
    public var path: String
    public var phase: Phase
    public var timeNs: UInt64
    public var namespace: Int32
}

/// The code that called dlopen: the first frame outside ld.so and libc on the
/// calling thread's stack, as the tracer found it (a CALLER event).
public struct CallerSite: Sendable, Hashable {
    /// The object's path, as the process mapped it.
    public var object: String
    /// The return address into the object, as an offset in its file.
    public var offset: UInt64
    /// The function containing the call (the object's symbol table, read where
    /// the report runs; nil when the file or the symbol is not there).
    public var symbol: String?

    public init(object: String, offset: UInt64, symbol: String? = nil) {
        self.object = object; self.offset = offset; self.symbol = symbol
    }

    /// "libA.so: load_plugin" or "libA.so+0x1139".
    public var label: String {
        let base = SearchDirectory.basename(object)
        return symbol.map { "\(base): \($0)" } ?? "\(base)+0x\(String(offset, radix: 16))"
    }
}

/// A load group: ld.so's start-up load, or one dlopen (la_activity add …
/// consistent; a constructor's dlopen before main included), with its time span.
public struct LoadGroup: Sendable, Equatable {
    public var phase: Phase
    public var startNs: UInt64
    public var endNs: UInt64
    /// Names searched in the group (la_objsearch LA_SER_ORIG), first one first.
    public var names: [String]
    /// For a dlopen: who called it (nil when not recorded or not found).
    public var caller: CallerSite? = nil
}

/// One program image run by one process (a process that execs twice has two),
/// with each of its calls attributed.
public struct ProcessAnalysis: Sendable {
    public var pid: Int32
    public var parent: Int32
    /// The program path of the image ("" when the trace never saw an exec for it).
    public var image: String
    public var argv: [String]
    /// The image's number within its process (0 for the first).
    public var imageIndex: Int
    public var forkedWithoutExec: Bool
    public var startNs: UInt64
    public var endNs: UInt64
    /// la_preinit's time: main was reached.
    public var mainNs: UInt64?
    public var exitStatus: Int32?
    public var signal: Int32?
    public var audited = false
    public var calls: [AttributedCall] = []
    public var searches: [LibrarySearch] = []
    public var objects: [LoadedObjectRecord] = []
    public var groups: [LoadGroup] = []
    public var notes: [String] = []
    /// The trace has CALLER events for this process (the tracer looked for callers).
    public var callersRecorded = false
    /// Time from the last object mapped to the end of its load group (start-up:
    /// la_preinit; dlopen: la_activity consistent), summed over groups: the
    /// loader's relocation and initialiser work. No file calls happen in it, so
    /// the tracer did not slow it down: it is the untraced compute time.
    public var relocationNs: UInt64 = 0

    public var label: String {
        let name = image.isEmpty ? (argv.first ?? "?") : SearchDirectory.basename(image)
        return "\(name) (pid \(pid)\(imageIndex > 0 ? ", image \(imageIndex + 1)" : ""))"
    }
    public var failedCalls: Int { calls.reduce(0) { $0 + ($1.failed ? 1 : 0) } }
    public var isPython: Bool { SearchDirectory.basename(image).hasPrefix("python") }
}
