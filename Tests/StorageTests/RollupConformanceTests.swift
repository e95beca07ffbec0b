import Foundation
import PlatformCore
import Storage
import StorageTesting
import Testing

/// Downsampling and the retention of rollups, alert history and script versions, on every backend.
@Suite("Rollup and retention conformance")
struct RollupConformanceTests {
    /// An hour boundary: 1,794,999,600 s is a multiple of 3,600.
    static let hour = Timestamp(seconds: 1_794_999_600)
    static let everything = TelemetryRange(
        tenantID: UUID(), serial: "TH-1", from: Timestamp(seconds: 0), to: Timestamp(seconds: 4_000_000_000), limit: 10_000)

    /// A sample a minute for three hours from `hour`: temperatures that vary, no outdoor reading
    /// every seventh minute, heating on even minutes.
    static func samples(serial: String = "TH-1") -> [TelemetrySample] {
        (0..<180).map { (minute: Int) -> TelemetrySample in
            let inside: Double = 18 + Double(minute % 10) * 0.25
            let outside: Double? = minute % 7 == 0 ? nil : Double(minute % 5 - 3)
            let setpoint: Double = 20 + Double(minute % 3)
            let time = hour.adding(seconds: Double(minute * 60))
            return TelemetrySample(
                deviceSerial: serial, timestamp: time, mode: minute % 2 == 0 ? .heat : .auto, tempInside: inside,
                tempOutside: outside, setpoint: setpoint, hysteresis: 0.5, output: minute % 2 == 0 ? .heatOn : .off)
        }
    }

    static func range(_ tenantID: UUID, serial: String = "TH-1") -> TelemetryRange {
        var range = everything
        range.tenantID = tenantID
        range.serial = serial
        return range
    }

    /// A webhook channel and a `threshold` rule that notifies it, stored for the tenant.
    static func hotRule(_ store: any PlatformStore, tenantID: UUID, at time: Timestamp) async throws -> (AlertChannel, AlertRule) {
        let channel = AlertChannel(
            id: UUID(), tenantID: tenantID, kind: .webhook, name: "hook", url: "http://127.0.0.1:9/", secret: "whsec_x", createdAt: time)
        try await store.createAlertChannel(channel)
        let rule = AlertRule(
            id: UUID(), tenantID: tenantID, name: "hot", script: "threshold", deviceSerial: nil, channelIDs: [channel.id], createdAt: time)
        try await store.createAlertRule(rule)
        return (channel, rule)
    }

    /// An alert of `rule` on TH-1 whose key and message are `key`, started (and, when firing, fired) at `time`.
    static func alert(
        _ rule: AlertRule, _ key: String, _ state: AlertState, at time: Timestamp, value: Double? = nil, resolvedAt: Timestamp? = nil
    ) -> Alert {
        Alert(
            id: UUID(), tenantID: rule.tenantID, ruleID: rule.id, deviceSerial: "TH-1", key: key, state: state, severity: "warning",
            message: key, value: value, startedAt: time, firedAt: state == .firing ? time : nil, resolvedAt: resolvedAt)
    }

    /// A delivery on `channel` of an alert's notification (nil: a test notification).
    static func delivery(
        _ channel: AlertChannel, _ alertID: UUID?, _ event: NotificationEvent, at time: Timestamp, status: AlertDelivery.Status = .pending
    ) -> AlertDelivery {
        AlertDelivery(
            id: UUID(), tenantID: channel.tenantID, alertID: alertID, channelID: channel.id, event: event, status: status,
            nextAttemptAt: time, payloadJSON: "{}", createdAt: time)
    }

    /// Rolls until the step is complete; returns the raw samples rolled.
    static func downsample(
        _ store: any PlatformStore, _ tenantID: UUID, resolution: Int, before cutoff: Timestamp, limit: Int
    ) async throws -> Int {
        var rolled = 0
        while true {
            let chunk = try await store.downsample(
                tenantID: tenantID, serial: "TH-1", resolutionSeconds: resolution, before: cutoff, limit: limit)
            rolled += chunk.samples
            if chunk.isComplete { return rolled }
        }
    }

    static func expectClose(_ left: [SampleBucket], _ right: [SampleBucket], _ comment: Comment) {
        #expect(left.count == right.count, comment)
        for (a, b) in zip(left, right) {
            #expect(a.start == b.start && a.count == b.count, comment)
            for (x, y) in [
                (a.tempInside.avg, b.tempInside.avg), (a.tempInside.min, b.tempInside.min), (a.tempInside.max, b.tempInside.max),
                (a.tempOutside?.avg ?? .nan, b.tempOutside?.avg ?? .nan), (a.tempOutside?.min ?? 0, b.tempOutside?.min ?? 0),
                (a.setpoint.avg, b.setpoint.avg), (a.heatingShare, b.heatingShare), (a.coolingShare, b.coolingShare),
            ] {
                #expect(abs(x - y) < 1e-9, comment)
            }
        }
    }

    @Test(arguments: Backend.available)
    func downsamplingKeepsAggregatesAndReadsAsOneSeries(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = StoreConformanceTests.account("r@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let (other, otherTenant) = StoreConformanceTests.account("o@example.com", tenantName: "Other")
            _ = try await store.createAccount(user: other, tenant: otherTenant)
            let records = Self.samples().map { TelemetryRecord(tenantID: tenant.id, sample: $0) }
                + Self.samples().map { TelemetryRecord(tenantID: otherTenant.id, sample: $0) }
            _ = try await store.insert(records, receivedAt: Self.hour)
            let range = Self.range(tenant.id)
            let hourly = try await store.buckets(range, bucketSeconds: 3600)
            let twoHourly = try await store.buckets(range, bucketSeconds: 7200)
            #expect(try await store.hasRollups(tenantID: tenant.id, serial: nil, from: range.from, to: range.to) == false)

            // Two whole hours are before the cutoff (its half hour is cut off); a limit of 50
            // ends each chunk after the bucket of the 50th sample: one hour a chunk.
            let cutoff = Self.hour.adding(seconds: 2.5 * 3600)
            let first = try await store.downsample(
                tenantID: tenant.id, serial: "TH-1", resolutionSeconds: 3600, before: cutoff, limit: 50)
            #expect(first == DownsampleChunk(samples: 60, rollups: 0, isComplete: false))
            #expect(try await Self.downsample(store, tenant.id, resolution: 3600, before: cutoff, limit: 50) == 60)
            #expect(try await Self.downsample(store, tenant.id, resolution: 3600, before: cutoff, limit: 50) == 0, "idempotent")

            let rows = try await store.samples(range)
            #expect(rows.count == 2 + 60, "two hourly rollups, then the third hour's raw samples")
            let rollup = try #require(rows.first?.rollup)
            let firstHour = Self.samples().prefix(60)
            #expect(rows[0].timestamp == Self.hour && rows[1].timestamp == Self.hour.adding(seconds: 3600))
            #expect(rollup.resolutionSeconds == 3600 && rollup.count == 60)
            #expect(abs(rows[0].tempInside - firstHour.map(\.tempInside).reduce(0, +) / 60) < 1e-9)
            #expect(rollup.tempInsideMin == 18 && rollup.tempInsideMax == 20.25)
            #expect(rollup.tempOutsideMin == -3 && rollup.tempOutsideMax == 1)
            #expect(rollup.heatingShare == 0.5 && rollup.coolingShare == 0)
            #expect(rows[0].output == .off && rows[0].mode == .auto, "the newest sample's output and mode (minute 59)")
            #expect(rows[2].rollup == nil && rows[2].timestamp == Self.hour.adding(seconds: 7200))
            #expect(try await store.hasRollups(tenantID: tenant.id, serial: "TH-1", from: range.from, to: range.to))
            #expect(try await store.hasRollups(tenantID: tenant.id, serial: "TH-2", from: range.from, to: range.to) == false)
            #expect(
                try await store.hasRollups(tenantID: tenant.id, serial: nil, from: Self.hour.adding(seconds: 7200), to: range.to)
                    == false)

            Self.expectClose(try await store.buckets(range, bucketSeconds: 3600), hourly, "hourly buckets span rollups and raw")
            Self.expectClose(try await store.buckets(range, bucketSeconds: 7200), twoHourly, "coarser buckets add rollups up")

            // Paging walks rollups and raw samples as one series.
            var paged: [TelemetrySample] = []
            var page = range
            page.limit = 7
            while true {
                let rows = try await store.samples(page)
                paged += rows
                guard rows.count == page.limit, let last = rows.last else { break }
                page.after = last.timestamp
            }
            #expect(paged == rows)

            // The other tenant's samples with the same serial are untouched.
            #expect(try await store.samples(Self.range(otherTenant.id)).count == 180)
            #expect(try await store.samples(Self.range(otherTenant.id)).allSatisfy { $0.rollup == nil })

            // A late sample in a rolled hour reads beside its rollup, then merges into it.
            var late = Self.samples()[10]
            late.timestamp = late.timestamp.adding(seconds: 1)
            late.tempInside = 30
            _ = try await store.insert([TelemetryRecord(tenantID: tenant.id, sample: late)], receivedAt: Self.hour)
            #expect(try await store.samples(range).count == 2 + 1 + 60)
            #expect(try await Self.downsample(store, tenant.id, resolution: 3600, before: cutoff, limit: 50) == 1)
            let merged = try await store.samples(range)
            #expect(merged.count == 62)
            #expect(merged[0].rollup?.count == 61 && merged[0].rollup?.tempInsideMax == 30)
            #expect(merged[0].output == .off, "the late sample is not the hour's newest")

            // A coarser step takes the finer rollups and the raw samples before its cutoff.
            let nextDay = Timestamp(seconds: (Self.hour.microseconds / 1_000_000 / 86_400 + 1) * 86_400)
            let daily = try await store.downsample(
                tenantID: tenant.id, serial: "TH-1", resolutionSeconds: 86_400, before: nextDay, limit: 5000)
            #expect(daily == DownsampleChunk(samples: 60, rollups: 2, isComplete: true))
            let day = try await store.samples(range)
            #expect(day.count == 1 && day[0].rollup?.resolutionSeconds == 86_400 && day[0].rollup?.count == 181)
            #expect(day[0].output == Self.samples()[179].output, "the newest of all 181")
            let dayBucket = try #require(try await store.buckets(range, bucketSeconds: 86_400).first)
            #expect(dayBucket.count == 181 && dayBucket.tempInside.max == 30)

            // Retention deletes rollups that start before its cutoff; so does deleting the device.
            #expect(try await store.deleteRollups(tenantID: tenant.id, serial: "TH-1", before: nextDay, limit: 10) == 1)
            #expect(try await store.samples(range).isEmpty)
            #expect(try await store.samples(Self.range(otherTenant.id)).count == 180)
        }
    }

    /// A commit queues its new samples of a tenant with an enabled rule as one batch. Passes
    /// take batches whole, in commit order, and get the samples back exactly as committed.
    @Test(arguments: Backend.available)
    func theAlertQueueHandsOutCommitsInOrder(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = StoreConformanceTests.account("q@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            for serial in ["TH-A", "TH-Z"] {
                try await store.createDevice(
                    Device(tenantID: tenant.id, serial: serial, name: serial, location: nil, createdAt: Self.hour), keyHash: serial)
            }
            func commit(_ samples: some Sequence<TelemetrySample>) async throws -> [Bool] {
                try await store.insert(samples.map { TelemetryRecord(tenantID: tenant.id, sample: $0) }, receivedAt: Self.hour)
            }
            _ = try await commit(Self.samples(serial: "TH-A").prefix(1))
            #expect(try await store.alertQueueLength(tenantID: tenant.id) == 0, "no rule, no queue")

            try await store.createAlertRule(
                AlertRule(id: UUID(), tenantID: tenant.id, name: "hot", script: "threshold", deviceSerial: nil, channelIDs: [], createdAt: Self.hour))
            let late = Array(Self.samples(serial: "TH-A").dropFirst(10).prefix(5))
            var early = Array(Self.samples(serial: "TH-Z").prefix(2))
            // Numbers whose shortest text is long, and one without an outdoor reading.
            early[0].tempInside = 0.1 + 0.2
            early[0].tempOutside = -1e-7
            early[1].setpoint = 21.123456789012345
            #expect(early[1].tempOutside != nil && Self.samples(serial: "TH-Z")[0].tempOutside == nil)
            early[1].tempOutside = nil
            _ = try await commit(late)
            _ = try await commit(early)
            #expect(try await commit(early) == [false, false], "a retry queues nothing")
            #expect(try await store.alertQueueLength(tenantID: tenant.id) == 7)
            #expect(try await store.alertQueueTenants(limit: 10) == [tenant.id])

            // A batch is taken whole, even past the limit; the next starts before it only when
            // the limit is not reached yet.
            let first = try await store.queuedBatches(tenantID: tenant.id, after: nil, sampleLimit: 3)
            #expect(first.map(\.samples) == [late])
            let both = try await store.queuedBatches(tenantID: tenant.id, after: nil, sampleLimit: 6)
            #expect(both.map(\.samples) == [late, early])
            #expect(both.map(\.sequence) == both.map(\.sequence).sorted() && Set(both.map(\.sequence)).count == 2)
            // The next pass reads past the batches this one is still consuming.
            let next = try await store.queuedBatches(tenantID: tenant.id, after: first[0].sequence, sampleLimit: 3)
            #expect(next.map(\.samples) == [early])

            try await store.applyAlertChanges(AlertChanges(tenantID: tenant.id, consumed: [first[0].sequence]))
            #expect(try await store.alertQueueLength(tenantID: tenant.id) == 2)
            #expect(try await store.queuedBatches(tenantID: tenant.id, after: nil, sampleLimit: 1000) == next)

            // Deleting a device takes its queued samples out of every batch, and a batch it
            // leaves empty away.
            let mixed = [Self.samples(serial: "TH-A")[100], Self.samples(serial: "TH-Z")[100]]
            _ = try await commit(mixed)
            #expect(try await store.deleteDevice(tenantID: tenant.id, serial: "TH-Z"))
            #expect(try await store.queuedBatches(tenantID: tenant.id, after: nil, sampleLimit: 1000).map(\.samples) == [[mixed[0]]])
            #expect(try await store.clearAlertQueue(tenantID: tenant.id) == 1)
            #expect(try await store.queuedBatches(tenantID: tenant.id, after: nil, sampleLimit: 1000).isEmpty)
            #expect(try await store.alertQueueTenants(limit: 10).isEmpty)
        }
    }

    /// A pass's alert changes are stored together: more than one statement's worth of rows, a key
    /// that resolves and starts again in the same pass, and an acknowledgement that the
    /// resolution keeps.
    @Test(arguments: Backend.available)
    func aPassStoresManyAlertChangesAtOnce(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = StoreConformanceTests.account("a@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            try await store.createDevice(
                Device(tenantID: tenant.id, serial: "TH-1", name: "Hall", location: nil, createdAt: Self.hour), keyHash: "key")
            let (channel, rule) = try await Self.hotRule(store, tenantID: tenant.id, at: Self.hour)
            var first = Self.alert(rule, "hot", .firing, at: Self.hour, value: 30)
            try await store.applyAlertChanges(AlertChanges(tenantID: tenant.id, alerts: [first]))
            _ = try await store.acknowledgeAlert(tenantID: tenant.id, id: first.id, userID: user.id, at: Self.hour.adding(seconds: 5))

            first.state = .resolved
            first.resolvedAt = Self.hour.adding(seconds: 60)
            let again = Self.alert(rule, "hot", .firing, at: Self.hour, value: 31)
            let others = (0..<1_100).map { Self.alert(rule, "key-\($0)", $0 % 2 == 0 ? .pending : .resolved, at: Self.hour) }
            let deliveries = (others + [again]).map { Self.delivery(channel, $0.id, .firing, at: Self.hour) }
            // The new alert is listed before the resolution it needs.
            try await store.applyAlertChanges(AlertChanges(tenantID: tenant.id, alerts: [again] + others + [first], deliveries: deliveries))

            let open = try await store.openAlerts(tenantID: tenant.id)
            #expect(open.count == 551)
            #expect(open.first { $0.key == "hot" }?.id == again.id)
            #expect(open.first { $0.key == "hot" }?.value == 31)
            let resolved = try #require(try await store.alert(tenantID: tenant.id, id: first.id))
            #expect(resolved.state == .resolved && resolved.resolvedAt == first.resolvedAt && resolved.value == 30)
            #expect(resolved.acknowledgedBy == user.id && resolved.acknowledgedAt == Self.hour.adding(seconds: 5))
            #expect(try await store.alert(tenantID: tenant.id, id: others[1].id)?.firedAt == nil)
            #expect(try await store.deliveries(tenantID: tenant.id, alertID: nil, limit: 2_000).count == 1_101)
        }
    }

    @Test(arguments: Backend.available)
    func deletingADeviceDeletesItsRollups(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = StoreConformanceTests.account("d@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let device = Device(tenantID: tenant.id, serial: "TH-1", name: "Hall", location: nil, createdAt: Self.hour)
            try await store.createDevice(device, keyHash: "key")
            _ = try await store.insert(Self.samples().map { TelemetryRecord(tenantID: tenant.id, sample: $0) }, receivedAt: Self.hour)
            #expect(try await Self.downsample(store, tenant.id, resolution: 900, before: Self.hour.adding(seconds: 3600), limit: 100) == 60)
            #expect(try await store.deleteDevice(tenantID: tenant.id, serial: "TH-1"))
            let range = Self.range(tenant.id)
            #expect(try await store.hasRollups(tenantID: tenant.id, serial: nil, from: range.from, to: range.to) == false)
        }
    }

    @Test(arguments: Backend.available)
    func mergesKeepTheNewestSampleAndTheOutdoorExtremes(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = StoreConformanceTests.account("m@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            func sample(minute: Int, outside: Double?, mode: ThermostatMode = .heat, output: ThermostatOutput = .heatOn)
                -> TelemetryRecord
            {
                TelemetryRecord(
                    tenantID: tenant.id,
                    sample: TelemetrySample(
                        deviceSerial: "TH-1", timestamp: Self.hour.adding(seconds: Double(minute * 60)), mode: mode,
                        tempInside: 20, tempOutside: outside, setpoint: 21, hysteresis: 0.5, output: output))
            }
            let cutoff = Self.hour.adding(seconds: 3600)
            let range = Self.range(tenant.id)
            _ = try await store.insert((10..<13).map { sample(minute: $0, outside: nil) }, receivedAt: Self.hour)
            #expect(try await Self.downsample(store, tenant.id, resolution: 3600, before: cutoff, limit: 100) == 3)
            #expect(try await store.samples(range).first?.rollup?.tempOutsideMin == nil, "no outdoor reading yet")

            // A late sample that is the hour's newest brings its mode and output, and the first outdoor reading.
            _ = try await store.insert([sample(minute: 50, outside: 7, mode: .cool, output: .coolOn)], receivedAt: Self.hour)
            #expect(try await Self.downsample(store, tenant.id, resolution: 3600, before: cutoff, limit: 100) == 1)
            var row = try #require(try await store.samples(range).first)
            #expect(row.rollup?.count == 4 && row.mode == .cool && row.output == .coolOn)
            #expect(row.rollup?.tempOutsideMin == 7 && row.rollup?.tempOutsideMax == 7 && row.tempOutside == 7)

            // A late sample that is not the newest widens the extremes only.
            _ = try await store.insert([sample(minute: 5, outside: -2, mode: .off, output: .off)], receivedAt: Self.hour)
            #expect(try await Self.downsample(store, tenant.id, resolution: 3600, before: cutoff, limit: 100) == 1)
            row = try #require(try await store.samples(range).first)
            #expect(row.rollup?.count == 5 && row.mode == .cool && row.output == .coolOn)
            #expect(row.rollup?.tempOutsideMin == -2 && row.rollup?.tempOutsideMax == 7 && row.tempOutside == 2.5)
        }
    }

    @Test(arguments: Backend.available)
    func concurrentRunsRollEverySampleUpOnce(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = StoreConformanceTests.account("c@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            _ = try await store.insert(Self.samples().map { TelemetryRecord(tenantID: tenant.id, sample: $0) }, receivedAt: Self.hour)
            let cutoff = Self.hour.adding(seconds: 3 * 3600)
            async let first = Self.downsample(store, tenant.id, resolution: 900, before: cutoff, limit: 20)
            async let second = Self.downsample(store, tenant.id, resolution: 900, before: cutoff, limit: 20)
            #expect(try await first + second == 180, "each sample rolled up by exactly one of the two runs")
            let rows = try await store.samples(Self.range(tenant.id))
            #expect(rows.count == 12 && rows.allSatisfy { $0.rollup?.count == 15 })
        }
    }

    @Test(arguments: Backend.available)
    func retentionOfAlertHistoryAndScriptVersions(_ backend: Backend) async throws {
        try await TestDatabase.withStore(backend) { store in
            let (user, tenant) = StoreConformanceTests.account("h@example.com")
            _ = try await store.createAccount(user: user, tenant: tenant)
            let (other, otherTenant) = StoreConformanceTests.account("x@example.com", tenantName: "Other")
            _ = try await store.createAccount(user: other, tenant: otherTenant)
            let time = Self.hour
            let cutoff = time.adding(seconds: 86_400)

            var versions: [Int] = []
            var scriptID = UUID()
            for day in 0..<4 {
                let (script, version) = try await store.addScriptVersion(
                    tenantID: tenant.id, name: "convert", hook: "ingest", source: "return { v = \(day) }", sha256: "\(day)",
                    configJSON: "{}", authorID: user.id, at: time.adding(seconds: Double(day) * 40_000))
                scriptID = script.id
                versions.append(version.version)
            }
            #expect(try await store.activateScript(tenantID: tenant.id, scriptID: scriptID, version: 1))
            _ = try await store.addScriptVersion(
                tenantID: otherTenant.id, name: "convert", hook: "ingest", source: "x", sha256: "x", configJSON: "{}",
                authorID: other.id, at: time)
            _ = try await store.addScriptVersion(
                tenantID: otherTenant.id, name: "convert", hook: "ingest", source: "y", sha256: "y", configJSON: "{}",
                authorID: other.id, at: time)
            // All four are older than the cutoff: 1 is active and 4 the newest, so 2 and 3 go.
            #expect(try await store.deleteScriptVersions(tenantID: tenant.id, before: cutoff.adding(seconds: 40_000)) == 2)
            #expect(try await store.scriptVersions(tenantID: tenant.id, scriptID: scriptID).map(\.version) == [1, 4])
            #expect(try await store.deleteScriptVersions(tenantID: tenant.id, before: cutoff.adding(seconds: 40_000)) == 0)
            let otherScript = try #require(try await store.scripts(tenantID: otherTenant.id).first)
            #expect(try await store.scriptVersions(tenantID: otherTenant.id, scriptID: otherScript.id).count == 2)

            let (channel, rule) = try await Self.hotRule(store, tenantID: tenant.id, at: time)
            let old = Self.alert(rule, "old", .resolved, at: time, resolvedAt: time.adding(seconds: 60))
            let recent = Self.alert(rule, "recent", .resolved, at: time, resolvedAt: cutoff.adding(seconds: 60))
            let open = Self.alert(rule, "open", .firing, at: time)
            func delivery(_ alertID: UUID?, _ event: NotificationEvent) -> AlertDelivery {
                Self.delivery(channel, alertID, event, at: time, status: .sent)
            }
            try await store.applyAlertChanges(
                AlertChanges(
                    tenantID: tenant.id, alerts: [old, recent, open],
                    deliveries: [
                        delivery(old.id, .firing), delivery(old.id, .resolved), delivery(recent.id, .firing),
                        delivery(open.id, .firing), delivery(nil, .test),
                    ]))
            #expect(try await store.deleteAlertHistory(tenantID: otherTenant.id, before: cutoff) == 0)
            #expect(try await store.deleteAlertHistory(tenantID: tenant.id, before: cutoff) == 4, "one alert, three deliveries")
            let left = try await store.alerts(AlertQuery(tenantID: tenant.id, limit: 10))
            #expect(Set(left.map(\.key)) == ["recent", "open"])
            let deliveries = try await store.deliveries(tenantID: tenant.id, alertID: nil, limit: 10)
            #expect(deliveries.count == 2 && deliveries.allSatisfy { $0.alertID != nil && $0.alertID != old.id })
        }
    }
}
