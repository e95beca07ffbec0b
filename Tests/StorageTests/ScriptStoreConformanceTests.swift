import Foundation
import PlatformCore
import Storage
import StorageTesting
import Testing

@Suite("Script store conformance")
struct ScriptStoreConformanceTests {
    @Test(arguments: Backend.available)
    func versionsActivationAndFailures(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = StoreConformanceTests.account("s@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let (other, otherTenant) = StoreConformanceTests.account("o@example.com", tenantName: "Other")
            _ = try await store.createAccount(user: other, tenant: otherTenant)
            let time = StoreConformanceTests.epoch

            let (script, first) = try await store.addScriptVersion(
                tenantID: tenant.id, name: "convert", hook: "ingest", source: "return {}", sha256: "aa", configJSON: "{}",
                authorID: user.id, at: time)
            #expect(first.version == 1)
            #expect(script.activeVersion == nil, "an upload is never active")
            let (same, second) = try await store.addScriptVersion(
                tenantID: tenant.id, name: "convert", hook: "ingest", source: "return { v = 2 }", sha256: "bb",
                configJSON: #"{"k":1}"#, authorID: user.id, at: time.adding(seconds: 1))
            #expect(same.id == script.id)
            #expect(second.version == 2)
            await #expect(throws: PlatformError.self) {
                _ = try await store.addScriptVersion(
                    tenantID: tenant.id, name: "convert", hook: "alert", source: "", sha256: "", configJSON: "{}", authorID: user.id,
                    at: time)
            }
            let (otherScript, otherVersion) = try await store.addScriptVersion(
                tenantID: otherTenant.id, name: "convert", hook: "alert", source: "x", sha256: "cc", configJSON: "{}",
                authorID: other.id, at: time)
            #expect(otherVersion.version == 1, "names are per tenant")

            #expect(try await store.scripts(tenantID: tenant.id).map(\.name) == ["convert"])
            #expect(try await store.script(tenantID: otherTenant.id, id: script.id) == nil)
            #expect(try await store.scriptVersions(tenantID: tenant.id, scriptID: script.id) == [first, second])
            #expect(try await store.scriptVersions(tenantID: otherTenant.id, scriptID: script.id).isEmpty)
            #expect(try await store.activeScripts(tenantID: tenant.id, hook: "ingest").isEmpty)

            #expect(!(try await store.activateScript(tenantID: tenant.id, scriptID: script.id, version: 3)))
            #expect(!(try await store.activateScript(tenantID: otherTenant.id, scriptID: script.id, version: 1)))
            #expect(try await store.activateScript(tenantID: tenant.id, scriptID: script.id, version: 2))
            let active = try await store.activeScripts(tenantID: tenant.id, hook: "ingest")
            #expect(active.count == 1)
            #expect(active.first?.1 == second)
            #expect(active.first?.0.activeVersion == 2)
            #expect(try await store.activeScripts(tenantID: tenant.id, hook: "alert").isEmpty)
            #expect(try await store.activeScripts(tenantID: otherTenant.id, hook: "ingest").isEmpty)

            let until = time.adding(seconds: 60)
            try await store.recordScriptOutcome(
                tenantID: tenant.id, scriptID: script.id, failureCount: 3, error: "boom", input: #"{"x":1}"#, quarantinedUntil: until)
            var failed = try #require(try await store.script(tenantID: tenant.id, id: script.id))
            #expect(failed.failureCount == 3)
            #expect(failed.quarantinedUntil == until)
            #expect(failed.lastError == "boom")
            #expect(failed.lastFailureInput == #"{"x":1}"#)
            try await store.recordScriptOutcome(
                tenantID: tenant.id, scriptID: script.id, failureCount: 0, error: nil, input: nil, quarantinedUntil: nil)
            failed = try #require(try await store.script(tenantID: tenant.id, id: script.id))
            #expect(failed.failureCount == 0 && failed.quarantinedUntil == nil)
            #expect(failed.lastError == "boom", "the last error stays visible after a success")
            try await store.recordScriptOutcome(
                tenantID: tenant.id, scriptID: script.id, failureCount: 5, error: "again", input: nil, quarantinedUntil: until)
            #expect(try await store.activateScript(tenantID: tenant.id, scriptID: script.id, version: 1), "activation is also the rollback")
            let rolledBack = try #require(try await store.script(tenantID: tenant.id, id: script.id))
            #expect(rolledBack.activeVersion == 1 && rolledBack.failureCount == 0 && rolledBack.quarantinedUntil == nil)
            #expect(!(try await store.deactivateScript(tenantID: otherTenant.id, scriptID: script.id)), "another tenant's script")
            #expect(try await store.deactivateScript(tenantID: tenant.id, scriptID: script.id))
            #expect(try await store.script(tenantID: tenant.id, id: script.id)?.activeVersion == nil)
            #expect(try await store.activeScripts(tenantID: tenant.id, hook: "ingest").isEmpty)
            #expect(try await store.scriptVersions(tenantID: tenant.id, scriptID: script.id).count == 2, "versions stay")
            _ = otherScript
        }
    }
}
