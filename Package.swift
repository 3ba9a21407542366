// swift-tools-version: 6.0
import PackageDescription

// The audit library is freestanding C: no libc, no Swift runtime, no DT_NEEDED.
// ld.so resolves an audit library's dependencies through the traced program's
// RPATH/RUNPATH, so any dependency would add thousands of lookups to the record.
let freestanding: [String] = [
    "-nostdlib", "-ffreestanding", "-fno-builtin", "-fno-stack-protector",
    "-fvisibility=hidden", "-fPIC", "-O2", "-Wall", "-Wextra",
]

// The tracer's stop loop and the trace codec run per system call: dynamic
// exclusivity checks cost ~5% there (perf) and buy nothing in this code.
let hotPath: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "loadprobe",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "loadprobe", targets: ["LoadProbe"]),
        .library(name: "loadprobe-audit", type: .dynamic, targets: ["AuditLib"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
    ],
    targets: [
        .target(
            name: "AuditLib",
            path: "audit-lib",
            exclude: ["README.md"],
            cSettings: [.unsafeFlags(freestanding)],
            linkerSettings: [.unsafeFlags(["-no-toolchain-stdlib-rpath", "-Xclang-linker", "-nostdlib", "-Xlinker", "--as-needed", "-Xlinker", "--no-undefined"])]
        ),
        .target(
            name: "CAudit",
            cSettings: [.define("_GNU_SOURCE")]
        ),
        .systemLibrary(name: "CLibElf", providers: [.apt(["libelf-dev"])]),
        // libunwind-ptrace: the tracer unwinds a thread once per dlopen to name its caller.
        .systemLibrary(name: "CLibUnwind", providers: [.apt(["libunwind-dev"])]),
        // libunwind-ptrace.so leaves its MiniDebugInfo (xz) reader's symbols to the program.
        .target(name: "CUnwind", dependencies: ["CLibUnwind"], cSettings: [.define("_GNU_SOURCE")],
                linkerSettings: [.linkedLibrary("unwind-ptrace"), .linkedLibrary("unwind-generic"), .linkedLibrary("lzma")]),
        // errno-carrying results, EINTR, owned descriptors, directory listing: used by every module.
        .target(name: "SystemLayer"),
        .target(name: "TraceFormat", dependencies: ["SystemLayer"], swiftSettings: hotPath),
        .target(name: "Tracer", dependencies: ["CAudit", "CUnwind", "TraceFormat", "LoaderModel", "SystemLayer"], swiftSettings: hotPath),
        .target(name: "LoaderModel", dependencies: ["CLibElf", "SystemLayer", "TraceFormat"]),
        .target(name: "Report", dependencies: ["TraceFormat", "LoaderModel", "SystemLayer"]),
        .executableTarget(
            name: "LoadProbe",
            dependencies: [
                "Tracer", "Report", "SystemLayer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            linkerSettings: [.unsafeFlags(["-static-executable", "-Xlinker", "-lz", "-Xlinker", "-lFoundationEssentials", "-Xlinker", "-l_FoundationCollections", "-Xlinker", "-l_FoundationCShims", "-Xlinker", "-lswiftSynchronization", "-Xlinker", "-lswiftCore"], .when(configuration: .release))]
        ),
        .executableTarget(name: "trace-codec-bench", dependencies: ["TraceFormat"], path: "bench/trace-codec"),
        .executableTarget(name: "job-bench-gen", dependencies: ["TraceFormat"], path: "bench/job", exclude: ["run"]),
        // Structure-aware fuzzing of the trace and ELF readers (docs/fuzzing.md).
        .executableTarget(name: "loadprobe-fuzz", dependencies: ["TraceFormat", "Report", "LoaderModel", "TestSupport"], path: "fuzz"),
        .testTarget(name: "TraceFormatTests", dependencies: ["TraceFormat"]),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "LiveTests", dependencies: ["Tracer", "Report", "LoaderModel", "TraceFormat", "TestSupport"],
                    exclude: ["parity", "jobs"]),
        .testTarget(name: "ExplainTests", dependencies: ["Report", "LoaderModel", "TestSupport"]),
        .testTarget(name: "LoadProbeTests", dependencies: ["LoadProbe"], exclude: ["help"]),
        .testTarget(name: "ReportTests", dependencies: ["Report", "LoaderModel", "TraceFormat", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
