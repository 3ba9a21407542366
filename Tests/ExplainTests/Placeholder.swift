import Testing
@testable import Report
@Test func elfLibraryInitialises() { #expect(ReportInfo.v != 0) }
