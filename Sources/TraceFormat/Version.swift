public enum TraceFormatVersion { public static let current = 1 }
