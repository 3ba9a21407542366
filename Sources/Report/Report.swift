import TraceFormat
import CLibElf
public enum ReportInfo { public static let v = elf_version(UInt32(EV_CURRENT)) }
