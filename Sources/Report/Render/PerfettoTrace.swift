public enum PerfettoTrace {
    public static func render(_ a: [TraceAnalysis]) -> String { "[]" }
}
