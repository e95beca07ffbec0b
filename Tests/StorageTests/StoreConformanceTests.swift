import Foundation
import PlatformCore
import Storage
import StorageTesting
import Testing

/// One suite, every backend: a store implementation cannot drift from the others.
@Suite("Store conformance")
struct StoreConformanceTests {
    static let epoch = Timestamp(seconds: 1_795_000_000)

    static func account(_ email: String, tenantName: String = "Acme") -> (User, Tenant) {
        let user = User(id: UUID(), email: email, passwordHash: "$2b$04$hash", isPlatformAdmin: false, createdAt: epoch)
        let tenant = Tenant(id: UUID(), slug: IdentifierRules.slug(from: tenantName), name: tenantName, tier: "free", createdAt: epoch)
        return (user, tenant)
    }

    static func sample(_ serial: String, at seconds: Int64, inside: Double = 20, outside: Double? = 5) -> TelemetrySample {
        TelemetrySample(
            deviceSerial: serial, timestamp: Timestamp(microseconds: epoch.microseconds + seconds * 1_000_000),
            mode: .heat, tempInside: inside, tempOutside: outside, setpoint: 21, hysteresis: 0.5, output: .heatOn)
    }

    @Test(arguments: Backend.available)
    func migrationsAreIdempotent(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            #expect(try await store.migrate().isEmpty)
            try await store.ping()
        }
    }

    @Test(arguments: Backend.available)
    func accountsAndMemberships(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = Self.account("owner@example.com")
            let membership = try await store.createAccount(user: user, tenant: tenant)
            #expect(membership.role == .owner)
            #expect(membership.tenant.slug == "acme")
            #expect(try await store.user(email: "owner@example.com") == user)
            #expect(try await store.user(id: user.id) == user)
            #expect(try await store.user(email: "nobody@example.com") == nil)
            #expect(try await store.memberships(userID: user.id) == [membership])
            #expect(try await store.membership(userID: user.id, tenantID: tenant.id) == membership)
            #expect(try await store.tenant(slug: "acme") == tenant)
            #expect(try await store.tenant(id: tenant.id) == tenant)
            #expect(try await store.tenant(id: UUID()) == nil)

            let (duplicate, otherTenant) = Self.account("owner@example.com", tenantName: "Other")
            await #expect(throws: PlatformError.self) { try await store.createAccount(user: duplicate, tenant: otherTenant) }
            #expect(try await store.tenant(slug: "other") == nil, "a failed registration leaves no tenant behind")

            let (second, sameName) = Self.account("second@example.com")
            let secondMembership = try await store.createAccount(user: second, tenant: sameName)
            #expect(secondMembership.tenant.slug == "acme-2")

            try await store.setMembership(tenantID: tenant.id, userID: second.id, role: .viewer, at: Self.epoch.adding(seconds: 60))
            #expect(try await store.membership(userID: second.id, tenantID: tenant.id)?.role == .viewer)
            try await store.setMembership(tenantID: tenant.id, userID: second.id, role: .member, at: Self.epoch)
            let members = try await store.members(tenantID: tenant.id)
            #expect(members.map(\.0.email) == ["owner@example.com", "second@example.com"])
            #expect(members.map(\.1) == [.owner, .member])
            #expect(try await store.memberships(userID: second.id).map(\.tenant.slug) == ["acme-2", "acme"])

            // Two owners demoting each other at once: one wins, the tenant keeps an owner.
            #expect(try await store.setMembership(tenantID: tenant.id, userID: second.id, role: .owner, at: Self.epoch))
            async let firstDemotion = store.setMembership(tenantID: tenant.id, userID: user.id, role: .member, at: Self.epoch)
            async let secondDemotion = store.setMembership(tenantID: tenant.id, userID: second.id, role: .member, at: Self.epoch)
            let demotions = try await [firstDemotion, secondDemotion]
            #expect(demotions.filter { $0 }.count == 1, "\(demotions)")
            #expect(try await store.members(tenantID: tenant.id).filter { $0.1 == .owner }.count == 1)
            let lastOwner = try #require(try await store.members(tenantID: tenant.id).first { $0.1 == .owner }?.0)
            #expect(try await store.setMembership(tenantID: tenant.id, userID: lastOwner.id, role: .admin, at: Self.epoch) == false)
            #expect(try await store.membership(userID: lastOwner.id, tenantID: tenant.id)?.role == .owner, "nothing changed")

            try await store.setPlatformAdmin(userID: user.id, true)
            #expect(try await store.user(id: user.id)?.isPlatformAdmin == true)
            try await store.setTier(tenantID: tenant.id, tier: "pro")
            #expect(try await store.tenant(slug: "acme")?.tier == "pro")
        }
    }

    @Test(arguments: Backend.available)
    func sessions(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = Self.account("s@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let session = Session(
                tokenHash: "hash-1", userID: user.id, tenantID: tenant.id, createdAt: Self.epoch, lastSeenAt: Self.epoch)
            try await store.createSession(session)
            #expect(try await store.session(tokenHash: "hash-1") == session)
            let later = Self.epoch.adding(seconds: 100)
            try await store.touchSession(tokenHash: "hash-1", at: later)
            #expect(try await store.session(tokenHash: "hash-1")?.lastSeenAt == later)
            #expect(try await store.deleteSessions(idleSince: later) == 0)
            #expect(try await store.deleteSessions(idleSince: later.adding(seconds: 1)) == 1)
            #expect(try await store.session(tokenHash: "hash-1") == nil)
            try await store.createSession(session)
            try await store.deleteSession(tokenHash: "hash-1")
            #expect(try await store.session(tokenHash: "hash-1") == nil)
        }
    }

    @Test(arguments: Backend.available)
    func apiTokens(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = Self.account("t@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let (intruder, intruderTenant) = Self.account("i@example.com", tenantName: "Intruder")
            _ = try await store.createAccount(user: intruder, tenant: intruderTenant)
            let token = APIToken(
                id: UUID(), tenantID: tenant.id, userID: user.id, name: "ci", tokenHash: "token-hash", createdAt: Self.epoch)
            try await store.createAPIToken(token)
            #expect(try await store.apiToken(tokenHash: "token-hash") == token)
            #expect(try await store.apiTokens(tenantID: tenant.id, userID: user.id) == [token])
            #expect(try await store.apiTokens(tenantID: intruderTenant.id, userID: intruder.id).isEmpty)
            let used = Self.epoch.adding(seconds: 5)
            try await store.touchAPIToken(id: token.id, at: used)
            #expect(try await store.apiToken(tokenHash: "token-hash")?.lastUsedAt == used)
            #expect(!(try await store.revokeAPIToken(tenantID: intruderTenant.id, userID: intruder.id, id: token.id, at: used)))
            #expect(try await store.revokeAPIToken(tenantID: tenant.id, userID: user.id, id: token.id, at: used))
            #expect(!(try await store.revokeAPIToken(tenantID: tenant.id, userID: user.id, id: token.id, at: used)))
            #expect(try await store.apiToken(tokenHash: "token-hash")?.revokedAt == used)
        }
    }

    @Test(arguments: Backend.available)
    func devicesAndCredentials(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = Self.account("d@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let (other, otherTenant) = Self.account("o@example.com", tenantName: "Other")
            _ = try await store.createAccount(user: other, tenant: otherTenant)

            let device = Device(tenantID: tenant.id, serial: "TH-1", name: "Hall", location: nil, createdAt: Self.epoch)
            try await store.createDevice(device, keyHash: "key-1")
            let twin = Device(tenantID: tenant.id, serial: "TH-1", name: "Twin", location: nil, createdAt: Self.epoch)
            await #expect(throws: PlatformError.self) { try await store.createDevice(twin, keyHash: "key-x") }

            #expect(try await store.devices(tenantID: tenant.id) == [device])
            #expect(try await store.devices(tenantID: otherTenant.id).isEmpty)
            #expect(try await store.device(tenantID: otherTenant.id, serial: "TH-1") == nil)
            #expect(try await store.credential(tenantID: tenant.id, serial: "TH-1") == DeviceCredential(tenantID: tenant.id, serial: "TH-1", keyHash: "key-1"))
            #expect(try await store.credential(keyHash: "key-1") == DeviceCredential(tenantID: tenant.id, serial: "TH-1", keyHash: "key-1"))
            #expect(try await store.credential(keyHash: "key-x") == nil)

            let grace = Self.epoch.adding(seconds: 3600)
            #expect(!(try await store.rotateKey(tenantID: otherTenant.id, serial: "TH-1", newKeyHash: "evil", previousValidUntil: grace)))
            #expect(try await store.rotateKey(tenantID: tenant.id, serial: "TH-1", newKeyHash: "key-2", previousValidUntil: grace))
            let rotated = DeviceCredential(
                tenantID: tenant.id, serial: "TH-1", keyHash: "key-2", previousKeyHash: "key-1", previousKeyExpiresAt: grace)
            #expect(try await store.credential(tenantID: tenant.id, serial: "TH-1") == rotated)
            #expect(try await store.credential(keyHash: "key-2") == rotated)
            #expect(try await store.credential(keyHash: "key-1") == rotated, "the previous key finds the device too")


            #expect(try await store.updateDevice(tenantID: tenant.id, serial: "TH-1", name: "Kitchen", location: .some("Floor 1")))
            #expect(try await store.device(tenantID: tenant.id, serial: "TH-1")?.location == "Floor 1")
            #expect(try await store.updateDevice(tenantID: tenant.id, serial: "TH-1", name: nil, location: .some(nil)))
            let renamed = try await store.device(tenantID: tenant.id, serial: "TH-1")
            #expect(renamed?.name == "Kitchen")
            #expect(renamed?.location == nil)
            #expect(!(try await store.updateDevice(tenantID: otherTenant.id, serial: "TH-1", name: "Evil", location: nil)))

            #expect(!(try await store.revokeDevice(tenantID: otherTenant.id, serial: "TH-1", at: grace)))
            #expect(try await store.revokeDevice(tenantID: tenant.id, serial: "TH-1", at: grace))
            let revoked = try await store.credential(tenantID: tenant.id, serial: "TH-1")
            #expect(revoked?.revoked == true)
            #expect(revoked?.previousKeyHash == nil, "revoking also ends the rotation grace period")

            _ = try await store.insert([TelemetryRecord(tenantID: tenant.id, sample: Self.sample("TH-1", at: 0))], receivedAt: grace)
            #expect(!(try await store.deleteDevice(tenantID: otherTenant.id, serial: "TH-1")))
            #expect(try await store.deleteDevice(tenantID: tenant.id, serial: "TH-1"))
            #expect(try await store.credential(tenantID: tenant.id, serial: "TH-1") == nil)
            #expect(try await store.credential(keyHash: "key-2") == nil)

            // Another tenant may use the same serial: its own device, found by its own key.
            let same = Device(tenantID: otherTenant.id, serial: "TH-1", name: "Same serial", location: nil, createdAt: Self.epoch)
            try await store.createDevice(same, keyHash: "key-other")
            try await store.createDevice(device, keyHash: "key-again")
            #expect(try await store.credential(keyHash: "key-other")?.tenantID == otherTenant.id)
            #expect(try await store.credential(keyHash: "key-again")?.tenantID == tenant.id)
            #expect(try await store.device(tenantID: otherTenant.id, serial: "TH-1")?.name == "Same serial")
            #expect(try await store.latest(tenantID: tenant.id, serial: "TH-1") == nil, "a deleted device's data goes too")
        }
    }

    @Test(arguments: Backend.available)
    func telemetryInsertIsIdempotent(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = Self.account("i@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            try await store.createDevice(
                Device(tenantID: tenant.id, serial: "TH-1", name: "Hall", location: nil, createdAt: Self.epoch), keyHash: "k")
            let first = [0, 10, 20].map { TelemetryRecord(tenantID: tenant.id, sample: Self.sample("TH-1", at: $0)) }
            let received = Self.epoch.adding(seconds: 30)
            #expect(try await store.insert(first, receivedAt: received) == [true, true, true])
            let retry = [10, 30, 30].map { TelemetryRecord(tenantID: tenant.id, sample: Self.sample("TH-1", at: $0)) }
            #expect(try await store.insert(retry, receivedAt: received) == [false, true, false])
            #expect(try await store.device(tenantID: tenant.id, serial: "TH-1")?.lastSeen == received)
            // `last_seen` moves in steps of a second or more.
            let soon = received.adding(seconds: 0.5)
            _ = try await store.insert([TelemetryRecord(tenantID: tenant.id, sample: Self.sample("TH-1", at: 40))], receivedAt: soon)
            #expect(try await store.device(tenantID: tenant.id, serial: "TH-1")?.lastSeen == received)
            let later = received.adding(seconds: 1)
            _ = try await store.insert([TelemetryRecord(tenantID: tenant.id, sample: Self.sample("TH-1", at: 50))], receivedAt: later)
            #expect(try await store.device(tenantID: tenant.id, serial: "TH-1")?.lastSeen == later)
            let all = try await store.samples(
                TelemetryRange(tenantID: tenant.id, serial: "TH-1", from: Self.epoch, to: Self.epoch.adding(seconds: 100), limit: 100))
            #expect(all.map(\.timestamp.microseconds) == [0, 10, 20, 30, 40, 50].map { Self.epoch.microseconds + Int64($0) * 1_000_000 })
        }
    }

    @Test(arguments: Backend.available)
    func latestSamplesPerDeviceInOneQuery(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = Self.account("latest@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let (other, otherTenant) = Self.account("latest-other@example.com", tenantName: "Other")
            _ = try await store.createAccount(user: other, tenant: otherTenant)
            for (tenantID, serial, key) in [
                (tenant.id, "TH-A", "k-a"), (tenant.id, "TH-B", "k-b"), (tenant.id, "TH-QUIET", "k-q"),
                (otherTenant.id, "TH-A", "k-o"),
            ] {
                try await store.createDevice(
                    Device(tenantID: tenantID, serial: serial, name: serial, location: nil, createdAt: Self.epoch), keyHash: key)
            }
            var records: [TelemetryRecord] = []
            for minute in 0..<5 {
                records.append(TelemetryRecord(tenantID: tenant.id, sample: Self.sample("TH-A", at: Int64(minute * 60), inside: Double(minute))))
                records.append(TelemetryRecord(tenantID: tenant.id, sample: Self.sample("TH-B", at: Int64(minute * 30), inside: Double(10 + minute))))
            }
            records.append(TelemetryRecord(tenantID: otherTenant.id, sample: Self.sample("TH-A", at: 9999, inside: 99)))
            _ = try await store.insert(records.shuffled(), receivedAt: Self.epoch)
            let latest = try await store.latestSamples(tenantID: tenant.id)
            #expect(Set(latest.keys) == ["TH-A", "TH-B"], "a device without samples is absent")
            #expect(latest["TH-A"] == Self.sample("TH-A", at: 240, inside: 4))
            #expect(latest["TH-B"]?.tempInside == 14)
            #expect(try await store.latestSamples(tenantID: otherTenant.id)["TH-A"]?.tempInside == 99)
        }
    }

    @Test(arguments: Backend.available)
    func telemetryQueries(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = Self.account("q@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let (other, otherTenant) = Self.account("other@example.com", tenantName: "Other")
            _ = try await store.createAccount(user: other, tenant: otherTenant)
            var precise = Self.sample("TH-1", at: 0, outside: nil)
            precise.timestamp = Timestamp(microseconds: Self.epoch.microseconds + 123_457)
            var records = [TelemetryRecord(tenantID: tenant.id, sample: precise)]
            for minute in 1...9 {
                records.append(TelemetryRecord(tenantID: tenant.id, sample: Self.sample("TH-1", at: Int64(minute * 60), inside: Double(minute))))
            }
            _ = try await store.insert(records.reversed(), receivedAt: Self.epoch)
            let range = TelemetryRange(
                tenantID: tenant.id, serial: "TH-1", from: Self.epoch, to: Self.epoch.adding(seconds: 3600), limit: 4)
            let page1 = try await store.samples(range)
            #expect(page1.count == 4)
            #expect(page1[0] == precise, "microsecond timestamps and a missing outside temperature round-trip exactly")
            #expect(page1.map(\.timestamp) == page1.map(\.timestamp).sorted())
            var next = range
            next.after = page1.last?.timestamp
            let page2 = try await store.samples(next)
            #expect(page2.first?.tempInside == 4)
            next.after = page2.last?.timestamp
            #expect(try await store.samples(next).count == 2)

            var wrongTenant = range
            wrongTenant.tenantID = otherTenant.id
            #expect(try await store.samples(wrongTenant).isEmpty)

            var bucketRange = range
            bucketRange.limit = 100
            let buckets = try await store.buckets(bucketRange, bucketSeconds: 300)
            let firstBucketStart = Timestamp(seconds: (Self.epoch.microseconds / 1_000_000 / 300) * 300)
            #expect(buckets.first?.start == firstBucketStart)
            #expect(buckets.map(\.count).reduce(0, +) == 10)
            let last = try #require(buckets.last)
            let lastMinutes = (1...9).filter { Self.epoch.adding(seconds: Double($0 * 60)) >= last.start }
            #expect(last.tempInside.max == Double(lastMinutes.max()!))
            #expect(last.tempInside.min == Double(lastMinutes.min()!))
            #expect(abs(last.tempInside.avg - Double(lastMinutes.reduce(0, +)) / Double(lastMinutes.count)) < 1e-9)
            var bucketPage = bucketRange
            bucketPage.after = buckets.first?.start
            #expect(try await store.buckets(bucketPage, bucketSeconds: 300).count == buckets.count - 1)

            #expect(try await store.latest(tenantID: tenant.id, serial: "TH-1")?.tempInside == 9)
            #expect(try await store.latest(tenantID: otherTenant.id, serial: "TH-1") == nil)
            let recent = try await store.recentSamples(tenantID: tenant.id, serial: "TH-1", limit: 3)
            #expect(recent.map(\.tempInside) == [7, 8, 9], "the newest samples, oldest first")
            #expect(try await store.recentSamples(tenantID: tenant.id, serial: "TH-1", limit: 100).count == 10)
            #expect(try await store.recentSamples(tenantID: otherTenant.id, serial: "TH-1", limit: 3).isEmpty)
        }
    }
}
