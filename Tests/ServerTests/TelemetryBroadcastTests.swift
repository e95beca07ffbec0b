import Foundation
import PlatformCore
import Storage
import Testing

@testable import Server

/// The live streams' broadcast: tenancy, device filters, bounded buffers and shutdown.
@Suite("Telemetry broadcast")
struct TelemetryBroadcastTests {
    static func record(_ tenant: UUID, _ serial: String, _ second: Double) -> TelemetryRecord {
        TelemetryRecord(
            tenantID: tenant,
            sample: TelemetrySample(
                deviceSerial: serial, timestamp: Timestamp(microseconds: Int64(second * 1_000_000)), mode: .heat,
                tempInside: 20, tempOutside: nil, setpoint: 21, hysteresis: 0.5, output: .heatOn))
    }

    static func samples(_ subscription: TelemetrySubscription) async -> [TelemetrySample] {
        var found: [TelemetrySample] = []
        for await event in subscription.events {
            if case .sample(let sample) = event { found.append(sample) }
        }
        return found
    }

    @Test func subscribersSeeOnlyTheirTenantAndDevice() async throws {
        let broadcast = TelemetryBroadcast()
        let mine = UUID()
        let theirs = UUID()
        let all = try broadcast.subscribe(tenantID: mine, serial: nil)
        let one = try broadcast.subscribe(tenantID: mine, serial: "TH-A")
        let other = try broadcast.subscribe(tenantID: theirs, serial: nil)
        #expect(broadcast.subscriberCount == 3)
        broadcast.publish([Self.record(mine, "TH-A", 1), Self.record(theirs, "TH-X", 2), Self.record(mine, "TH-B", 3)])
        broadcast.close()
        #expect(await Self.samples(all).map(\.deviceSerial) == ["TH-A", "TH-B"])
        #expect(await Self.samples(one).map(\.deviceSerial) == ["TH-A"])
        #expect(await Self.samples(other).map(\.deviceSerial) == ["TH-X"])
        #expect(throws: PlatformError.self) { try broadcast.subscribe(tenantID: mine, serial: nil) }
    }

    @Test func aSubscriberThatFallsBehindIsEndedNotBuffered() async throws {
        let broadcast = TelemetryBroadcast(bufferLimit: 8)
        let tenant = UUID()
        let slow = try broadcast.subscribe(tenantID: tenant, serial: nil)
        for second in 0..<100 {
            broadcast.publish([Self.record(tenant, "TH-A", Double(second))])
        }
        let received = await Self.samples(slow)
        #expect(received.count == 8, "the buffer's worth, then the stream ended")
        #expect(broadcast.subscriberCount == 0, "an ended subscriber is forgotten")
    }

    @Test func cancellingASubscriptionForgetsIt() async throws {
        let broadcast = TelemetryBroadcast()
        let subscription = try broadcast.subscribe(tenantID: UUID(), serial: nil)
        #expect(broadcast.subscriberCount == 1)
        subscription.cancel()
        #expect(broadcast.subscriberCount == 0)
    }
}
