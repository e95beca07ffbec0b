import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import PlatformCore
import Storage
import StorageTesting
import Testing

@testable import Server

/// The review's attacks on unauthenticated ingest, tried as an attacker would.
@Suite("Unauthenticated ingest")
struct UnauthenticatedIngestTests {
    @Test func malformedSerialsAreRefusedBeforeAnyLookup() async throws {
        let clock = ManualClock()
        let store = try StoreFactory.open(databaseURL: try await TestDatabase.makeURL(.sqlite), logger: TestPlatformLog.logger)
        _ = try await store.migrate()
        let configuration = TestPlatform.configuration()
        let platform = try Platform(
            configuration: configuration, store: store, assets: try await WebAssets.load(configuration), clock: clock,
            logger: TestPlatformLog.logger)
        var app = Application(router: platform.router(), logger: TestPlatformLog.logger)
        app.addServices(store)
        try await app.test(.router) { client in
            let sample = SampleJSON.make(serial: "TH-1", at: clock.now())
            for serial in ["", "../../etc", "TH 1", String(repeating: "A", count: 65), "TH-1\u{202E}", "register"] {
                let response = try await client.json(
                    "/api/telemetry/ingest/", method: .post, body: sample,
                    headers: [.authorization: "Device \(serial):thk_whatever"])
                #expect(response.status == .unauthorized, "\(serial)")
                #expect(response.errorCode == "invalid_device_credentials")
            }
            #expect(platform.credentials.counts.devices == 0)
            #expect(platform.credentials.counts.unknown == 0, "nothing was looked up or cached")
            let wellFormed = try await client.json(
                "/api/telemetry/ingest/", method: .post, body: sample, headers: [.authorization: "Device TH-1:thk_whatever"])
            #expect(wellFormed.status == .unauthorized)
            #expect(platform.credentials.counts.unknown == 1, "a well-formed unknown serial is looked up")
        }
    }

    @Test func unknownKeysNeverEvictRealDevicesFromTheCache() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock) { client, appStore in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let cache = DeviceCredentialCache(store: appStore, clock: clock, deviceCapacity: 10, unknownCapacity: 5)
            _ = try await cache.authenticate(serial: device.serial, key: device.key)
            for index in 0..<200 {
                await #expect(throws: PlatformError.self) {
                    _ = try await cache.authenticate(serial: "SQUAT-\(index)", key: "thk_guess-\(index)")
                }
            }
            #expect(cache.counts.devices == 1)
            #expect(cache.counts.unknown == 5, "unknown keys are bounded apart")
            await #expect(throws: PlatformError.self, "a real key with another serial") {
                _ = try await cache.authenticate(serial: "SQUAT-1", key: device.key)
            }
            #expect(cache.cachedCredential(serial: device.serial, key: device.key) != nil, "the real device stays cached")
            #expect(cache.cachedCredential(serial: device.serial, key: "thk_wrong") == nil)
        }
    }

    @Test func failedDeviceAuthenticationsAreLimitedPerAddressWithoutSlowingRealDevices() async throws {
        let clock = ManualClock()
        try await TestPlatform.run(clock: clock, configure: { $0.trustedProxies = 1; $0.deviceAuthFailuresPerMinute = 3 }) {
            client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let attacker: HTTPFields = [.xForwardedFor: "198.51.100.66"]
            func ingest(_ authorization: String, _ headers: HTTPFields, at offset: Double) async throws -> TestResponse {
                var headers = headers
                headers[.authorization] = authorization
                return try await client.json(
                    "/api/telemetry/ingest/", method: .post,
                    body: SampleJSON.make(serial: device.serial, at: clock.now().adding(seconds: offset)), headers: headers)
            }
            #expect(try await ingest(device.authorization, attacker, at: 0).status == .ok, "the real device, same address")
            var statuses: [HTTPResponse.Status] = []
            for index in 0..<5 {
                statuses.append(try await ingest("Device GUESS-\(index):thk_guess", attacker, at: 0).status)
            }
            #expect(statuses == [.unauthorized, .unauthorized, .unauthorized, .tooManyRequests, .tooManyRequests])
            let limited = try await ingest("Device \(device.serial):thk_wrong", attacker, at: 0)
            #expect(limited.status == .tooManyRequests)
            #expect(Int(limited.headers[.retryAfter] ?? "") ?? 0 > 0)
            for second in 1...10 {
                let ok = try await ingest(device.authorization, attacker, at: Double(second))
                #expect(ok.status == .ok, "a device that authenticates is not slowed by failures from its address")
            }
            let elsewhere = try await ingest("Device GUESS-9:thk_guess", [.xForwardedFor: "198.51.100.67"], at: 0)
            #expect(elsewhere.status == .unauthorized, "other addresses keep their own budget")
            clock.advance(seconds: 60)
            #expect(try await ingest("Device GUESS-10:thk_guess", attacker, at: 0).status == .unauthorized, "the budget refills")
        }
    }
}
