import TraceFormat
import CAudit
public enum TracerInfo { public static let x = lp_placeholder() }
