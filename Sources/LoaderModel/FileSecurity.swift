import CLibElf

/// What makes ld.so run a program in secure mode besides set-user-ID bits.
public enum FileSecurity {
    /// The file carries file capabilities (the security.capability extended attribute).
    public static func hasCapabilities(_ path: String) -> Bool {
        getxattr(path, "security.capability", nil, 0) > 0
    }
}
