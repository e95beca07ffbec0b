import Crypto
import Foundation
import HTTPTypes
import HummingbirdTesting
import PlatformCore
import Storage
import StorageTesting
import Testing

@Suite("Devices")
struct DeviceTests {
    @Test(arguments: Backend.available)
    func registerReturnsTheKeyOnceAndStoresItsHash(_ backend: Backend) async throws {
        try await TestPlatform.run(backend) { client, store in
            let user = try await client.register()
            let response = try await client.json(
                "/api/devices/register/", method: .post, body: #"{"serial":"TH-0001","name":"Hall","location":"Floor 1"}"#,
                cookie: user.cookie)
            #expect(response.status == .created)
            let body = try response.object()
            let key = try #require(body["api_key"] as? String)
            #expect(key.hasPrefix("thk_") && key.count >= 46)
            let uri = try #require(body["provisioning_uri"] as? String)
            #expect(uri == "thermostat://provision?v=1&url=http%3A%2F%2F127.0.0.1%3A8080&serial=TH-0001&key=\(key)")
            let tenantID = try #require(UUID(uuidString: user.tenantID))
            let credential = try #require(try await store.credential(tenantID: tenantID, serial: "TH-0001"))
            let digest = SHA256.hash(data: Data(key.utf8)).map { String(format: "%02x", $0) }.joined()
            #expect(credential.keyHash == digest)

            let list = try await client.json("/api/devices/", cookie: user.cookie)
            let devices = try #require(try list.object()["devices"] as? [[String: Any]])
            #expect(devices.count == 1)
            #expect(devices[0]["serial"] as? String == "TH-0001")
            #expect(devices[0]["location"] as? String == "Floor 1")
            #expect(devices[0]["online"] as? Bool == false)
            #expect(devices[0]["api_key"] == nil, "the key is never shown again")
            #expect(String(buffer: list.body).contains(key) == false)
        }
    }

    @Test func registerRejectsBadInput() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register()
            let cases: [(String, HTTPResponse.Status, String?)] = [
                (#"{"serial":"#, .badRequest, nil),
                (#"{"name":"x"}"#, .unprocessableContent, "serial"),
                (#"{"serial":"has space"}"#, .unprocessableContent, "serial"),
                (#"{"serial":123}"#, .unprocessableContent, "serial"),
                (#"{"serial":"TH-1","colour":"red"}"#, .unprocessableContent, "colour"),
                (#"{"serial":"TH-1","name":""}"#, .unprocessableContent, "name"),
                (#"{"serial":"register"}"#, .unprocessableContent, "serial"),
            ]
            for (body, status, field) in cases {
                let response = try await client.json("/api/devices/register/", method: .post, body: body, cookie: user.cookie)
                #expect(response.status == status, "\(body)")
                #expect(response.errorField == field, "\(body)")
            }
            #expect(try await client.json("/api/devices/register/", method: .post, body: #"{"serial":"TH-1"}"#).status == .unauthorized)
            let list = try await client.json("/api/devices/", cookie: user.cookie)
            #expect((try list.object()["devices"] as? [Any])?.isEmpty == true)
        }
    }

    @Test(arguments: Backend.available)
    func anotherTenantsDeviceIsNotFound(_ backend: Backend) async throws {
        try await TestPlatform.run(backend) { client, _ in
            let owner = try await client.register()
            let intruder = try await client.register()
            let device = try await client.registerDevice(owner, serial: "TH-OWNED")
            let requests: [(String, HTTPRequest.Method, String?)] = [
                ("/api/devices/TH-OWNED/", .get, nil),
                ("/api/devices/TH-OWNED/latest/", .get, nil),
                ("/api/devices/TH-OWNED/", .patch, #"{"name":"Mine now"}"#),
                ("/api/devices/TH-OWNED/rotate-key/", .post, nil),
                ("/api/devices/TH-OWNED/revoke/", .post, nil),
                ("/api/devices/TH-OWNED/", .delete, nil),
                ("/api/telemetry/query/?device=TH-OWNED", .get, nil),
            ]
            for (uri, method, body) in requests {
                let response = try await client.json(uri, method: method, body: body, cookie: intruder.cookie)
                #expect(response.status == .notFound, "\(method) \(uri)")
                #expect(try await client.json(uri, method: method, body: body).status == .unauthorized, "\(method) \(uri)")
            }
            let intruderList = try await client.json("/api/devices/", cookie: intruder.cookie)
            #expect((try intruderList.object()["devices"] as? [Any])?.isEmpty == true)
            let still = try await client.ingest(device, SampleJSON.make(serial: device.serial, at: Timestamp(Date())))
            #expect(still.status == .ok, "nothing the intruder tried touched the device")
        }
    }

    /// Serials are unique per tenant: nobody can squat another tenant's serials, and nothing
    /// tells whether a serial exists elsewhere. A device is found by its key, then its serial.
    @Test(arguments: Backend.available)
    func serialsAreUniquePerTenantAndDevicesAreFoundByKey(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock, configure: { $0.telemetryRatePerMinute = 5 }) { client, store in
            let first = try await client.register()
            let second = try await client.register()
            let mine = try await client.registerDevice(first, serial: "TH-0001")
            let theirs = try await client.registerDevice(second, serial: "TH-0001")
            #expect(mine.key != theirs.key)
            let again = try await client.json(
                "/api/devices/register/", method: .post, body: #"{"serial":"TH-0001"}"#, cookie: first.cookie)
            #expect(again.status == .conflict, "within one tenant a serial is still unique")

            let now = Timestamp(Date())
            #expect(try await client.ingest(mine, SampleJSON.make(serial: "TH-0001", at: now, inside: 21.0)).status == .ok)
            #expect(try await client.ingest(theirs, SampleJSON.make(serial: "TH-0001", at: now, inside: 25.0)).status == .ok)
            let firstTenant = try #require(UUID(uuidString: first.tenantID))
            let secondTenant = try #require(UUID(uuidString: second.tenantID))
            #expect(try await store.latest(tenantID: firstTenant, serial: "TH-0001")?.tempInside == 21.0)
            #expect(try await store.latest(tenantID: secondTenant, serial: "TH-0001")?.tempInside == 25.0)

            for second in 1...4 {
                let at = now.adding(seconds: Double(second))
                #expect(try await client.ingest(mine, SampleJSON.make(serial: "TH-0001", at: at)).status == .ok)
            }
            #expect(
                try await client.ingest(mine, SampleJSON.make(serial: "TH-0001", at: now.adding(seconds: 5))).status
                    == .tooManyRequests)
            #expect(
                try await client.ingest(theirs, SampleJSON.make(serial: "TH-0001", at: now.adding(seconds: 5))).status == .ok,
                "the same serial in another tenant has its own budget")
            clock.advance(seconds: 61)
            let wrongSerial = TestDevice(serial: "TH-0002", key: mine.key)
            let refused = try await client.ingest(wrongSerial, SampleJSON.make(serial: "TH-0002", at: now))
            #expect(refused.status == .unauthorized, "a key works only with the serial it was issued for")
            let rotated = try await client.json("/api/devices/TH-0001/rotate-key/", method: .post, cookie: second.cookie)
            #expect(rotated.status == .ok)
            let newKey = try #require(try rotated.object()["api_key"] as? String)
            let later = now.adding(seconds: 60)
            #expect(try await client.ingest(mine, SampleJSON.make(serial: "TH-0001", at: later)).status == .ok, "untouched")
            #expect(try await client.ingest(theirs, SampleJSON.make(serial: "TH-0001", at: later)).status == .ok, "in grace")
            let fresh = TestDevice(serial: "TH-0001", key: newKey)
            #expect(try await client.ingest(fresh, SampleJSON.make(serial: "TH-0001", at: later.adding(seconds: 1))).status == .ok)
            #expect(try await client.json("/api/devices/TH-0001/revoke/", method: .post, cookie: second.cookie).status == .ok)
            #expect(try await client.ingest(fresh, SampleJSON.make(serial: "TH-0001", at: later.adding(seconds: 2))).status == .unauthorized)
            #expect(try await client.ingest(mine, SampleJSON.make(serial: "TH-0001", at: later.adding(seconds: 2))).status == .ok)
        }
    }

    @Test func renameAndSetLocation() async throws {
        try await TestPlatform.run { client, _ in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            let renamed = try await client.json(
                "/api/devices/\(device.serial)/", method: .patch, body: #"{"name":"  Kitchen ","location":"Ground floor"}"#,
                cookie: user.cookie)
            #expect(renamed.status == .ok)
            let body = try #require(try renamed.object()["device"] as? [String: Any])
            #expect(body["name"] as? String == "Kitchen")
            #expect(body["location"] as? String == "Ground floor")
            let cleared = try await client.json(
                "/api/devices/\(device.serial)/", method: .patch, body: #"{"location":null}"#, cookie: user.cookie)
            #expect((try cleared.object()["device"] as? [String: Any])?["location"] is NSNull)
            let bad = try await client.json(
                "/api/devices/\(device.serial)/", method: .patch, body: #"{"serial":"other"}"#, cookie: user.cookie)
            #expect(bad.status == .unprocessableContent)
        }
    }

    @Test(arguments: Backend.available)
    func rotationKeepsTheOldKeyForTheGracePeriodAndRevocationEndsBoth(_ backend: Backend) async throws {
        let clock = ManualClock()
        try await TestPlatform.run(backend, clock: clock) { client, _ in
            let user = try await client.register()
            let old = try await client.registerDevice(user)
            #expect(try await client.ingest(old, SampleJSON.make(serial: old.serial, at: clock.now())).status == .ok)
            let rotation = try await client.json(
                "/api/devices/\(old.serial)/rotate-key/", method: .post, body: #"{"grace_seconds":600}"#, cookie: user.cookie)
            #expect(rotation.status == .ok)
            let new = TestDevice(serial: old.serial, key: try #require(try rotation.object()["api_key"] as? String))
            #expect(new.key != old.key)
            #expect((try rotation.object()["provisioning_uri"] as? String)?.contains(new.key) == true)
            clock.advance(seconds: 1)
            #expect(try await client.ingest(new, SampleJSON.make(serial: old.serial, at: clock.now())).status == .ok)
            clock.advance(seconds: 1)
            #expect(try await client.ingest(old, SampleJSON.make(serial: old.serial, at: clock.now())).status == .ok, "grace period")
            clock.advance(seconds: 600)
            let expired = try await client.ingest(old, SampleJSON.make(serial: old.serial, at: clock.now()))
            #expect(expired.status == .unauthorized)
            #expect(try await client.ingest(new, SampleJSON.make(serial: old.serial, at: clock.now())).status == .ok)

            let revoke = try await client.json("/api/devices/\(old.serial)/revoke/", method: .post, cookie: user.cookie)
            #expect(revoke.status == .ok)
            #expect((try revoke.object()["device"] as? [String: Any])?["revoked"] as? Bool == true)
            clock.advance(seconds: 1)
            let revoked = try await client.ingest(new, SampleJSON.make(serial: old.serial, at: clock.now()))
            #expect(revoked.status == .unauthorized)
            #expect(revoked.errorCode == "invalid_device_credentials")
            let rotatedAfterRevoke = try await client.json(
                "/api/devices/\(old.serial)/rotate-key/", method: .post, body: #"{"grace_seconds":600}"#, cookie: user.cookie)
            #expect(rotatedAfterRevoke.status == .ok)
            #expect((try rotatedAfterRevoke.object()["previous_key_valid_until"]) == nil)
            let fresh = TestDevice(serial: old.serial, key: try #require(try rotatedAfterRevoke.object()["api_key"] as? String))
            clock.advance(seconds: 1)
            let revived = try await client.ingest(new, SampleJSON.make(serial: old.serial, at: clock.now()))
            #expect(revived.status == .unauthorized, "rotating a revoked device must not bring its revoked key back")
            #expect(revived.headers[.wwwAuthenticate]?.hasPrefix("Device") == true)
            #expect(try await client.ingest(fresh, SampleJSON.make(serial: old.serial, at: clock.now())).status == .ok)
            let badGrace = try await client.json(
                "/api/devices/\(old.serial)/rotate-key/", method: .post, body: #"{"grace_seconds":-1}"#, cookie: user.cookie)
            #expect(badGrace.status == .unprocessableContent)
        }
    }

    @Test func deleteRemovesDeviceAndData() async throws {
        try await TestPlatform.run { client, store in
            let user = try await client.register()
            let device = try await client.registerDevice(user)
            #expect(try await client.ingest(device, SampleJSON.make(serial: device.serial, at: Timestamp(Date()))).status == .ok)
            #expect(try await client.json("/api/devices/\(device.serial)/", method: .delete, cookie: user.cookie).status == .noContent)
            #expect(try await client.json("/api/devices/\(device.serial)/", cookie: user.cookie).status == .notFound)
            #expect(try await client.ingest(device, SampleJSON.make(serial: device.serial, at: Timestamp(Date()))).status == .unauthorized)
            #expect(try await store.credential(tenantID: try #require(UUID(uuidString: user.tenantID)), serial: device.serial) == nil)
        }
    }
}
