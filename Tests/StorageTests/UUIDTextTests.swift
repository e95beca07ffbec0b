import Foundation
import Testing

@testable import Storage

/// SQLite's keys: the UUID text form written and read byte by byte must be Foundation's, lower-cased.
@Suite struct UUIDTextTests {
    @Test func theTextFormIsFoundationsInLowerCase() {
        for _ in 0..<1_000 {
            let id = UUID()
            #expect(id.databaseText == id.uuidString.lowercased())
            #expect(UUID(databaseText: id.databaseText) == id)
            #expect(UUID(databaseText: id.uuidString) == id, "upper case reads too")
        }
        let edges = [UUID(uuid: (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
                     UUID(uuid: (255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255, 255))]
        #expect(edges.map(\.databaseText) == ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"])
        #expect(edges.map { UUID(databaseText: $0.databaseText) } == edges)
    }

    @Test(arguments: [
        "", "0", "not a uuid", "0123456789abcdef0123456789abcdef",
        "01234567-89ab-cdef-0123-456789abcde", "01234567-89ab-cdef-0123-456789abcdef0",
        "01234567_89ab-cdef-0123-456789abcdef", "0123456-789ab-cdef-0123-456789abcdef",
        "01234567-89ab-cdef-0123-456789abcdeg", "01234567-89ab-cdef-0123-456789abcdé",
        "{1234567-89ab-cdef-0123-456789abcdef",
    ])
    func malformedTextIsNoUUID(_ text: String) {
        #expect(UUID(databaseText: text) == nil)
        #expect(UUID(uuidString: text) == nil, "Foundation agrees")
    }
}
