import Foundation
import StorageTesting
import Testing

/// In CI the PostgreSQL half of every backend-parameterised test must run, not silently drop out.
@Test(.enabled(if: ProcessInfo.processInfo.environment["CI"] != nil))
func continuousIntegrationRunsEveryBackend() {
    #expect(Backend.available == Backend.allCases)
}
