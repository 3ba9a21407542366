import Testing
@testable import Report
@Test func jsonQuoting() { #expect(JSON.string("a\"b").serialized() == "\"a\\\"b\"") }
