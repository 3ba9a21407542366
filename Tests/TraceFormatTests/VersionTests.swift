import Testing
@testable import TraceFormat
@Test func version() { #expect(TraceFormatVersion.current == 1) }
