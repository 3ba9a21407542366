public enum ReportHTML {
    public static func render(_ r: Report) -> String { "<!doctype html><title>loadprobe</title>" }
}
