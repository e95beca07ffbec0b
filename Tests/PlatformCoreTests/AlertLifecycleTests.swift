import Foundation
import PlatformCore
import Testing

/// The alert lifecycle of one rule on one device, as pure transitions.
@Suite struct AlertLifecycleTests {
    static let start = Timestamp(iso8601: "2026-12-01T08:00:00Z")!
    static let hot = [ActiveCondition(key: "high", severity: "warning", message: "hot", value: 30)]

    static func rule(_ adjust: (inout AlertRule) -> Void = { _ in }) -> AlertRule {
        var rule = AlertRule(id: UUID(), tenantID: UUID(), name: "Hot", script: "threshold", deviceSerial: nil, createdAt: start)
        adjust(&rule)
        return rule
    }

    /// Carries the tracker's open alerts and state into a new tracker, as the next pass would
    /// load them from the store.
    static func next(_ tracker: AlertTracker, silences: [AlertSilence] = []) -> AlertTracker {
        AlertTracker(
            rule: tracker.rule, serial: tracker.serial, openAlerts: tracker.openAlerts, deviceState: tracker.deviceState,
            silences: silences)
    }

    static func at(_ seconds: Double) -> Timestamp { start.adding(seconds: seconds) }

    @Test func aKeyFiresOnceResolvesAndFlappingStaysQuietInsideTheCooldown() {
        var tracker = AlertTracker(rule: Self.rule(), serial: "TH-1", openAlerts: [], deviceState: nil, silences: [])
        tracker.apply(Self.hot, at: Self.at(0), script: "{}")
        tracker.apply(Self.hot, at: Self.at(10), script: "{}")
        #expect(tracker.notifications.map(\.event) == [.firing])
        #expect(tracker.openAlerts.map(\.state) == [.firing])
        tracker.apply([], at: Self.at(20), script: "{}")
        #expect(tracker.notifications.map(\.event) == [.firing, .resolved])
        tracker.apply(Self.hot, at: Self.at(30), script: "{}")
        tracker.apply([], at: Self.at(40), script: "{}")
        #expect(tracker.notifications.count == 2, "inside the 900 s cooldown: no second firing, so no second resolve")
        #expect(tracker.changedAlerts.count == 2)

        var later = Self.next(tracker)
        later.apply(Self.hot, at: Self.at(1000), script: "{}")
        #expect(later.notifications.map(\.event) == [.firing], "the cooldown is over")
    }

    @Test func forSecondsHoldsAnAlertPendingAndAPendingOneResolvesSilently() {
        var tracker = AlertTracker(
            rule: Self.rule { $0.forSeconds = 300 }, serial: "TH-1", openAlerts: [], deviceState: nil, silences: [])
        tracker.apply(Self.hot, at: Self.at(0), script: "{}")
        tracker.tick(at: Self.at(299))
        #expect(tracker.openAlerts.map(\.state) == [.pending] && tracker.notifications.isEmpty)
        tracker.apply([], at: Self.at(200), script: "{}")
        #expect(tracker.openAlerts.isEmpty && tracker.notifications.isEmpty, "never fired, so nothing to resolve aloud")

        var again = Self.next(tracker)
        again.apply(Self.hot, at: Self.at(400), script: "{}")
        again.tick(at: Self.at(700))
        #expect(again.openAlerts.map(\.state) == [.firing])
        #expect(again.openAlerts.first?.firedAt == Self.at(700))
    }

    @Test func remindersRepeatUntilAcknowledged() {
        var tracker = AlertTracker(
            rule: Self.rule { $0.repeatSeconds = 600 }, serial: "TH-1", openAlerts: [], deviceState: nil, silences: [])
        tracker.apply(Self.hot, at: Self.at(0), script: "{}")
        tracker.tick(at: Self.at(599))
        tracker.tick(at: Self.at(600))
        tracker.tick(at: Self.at(900))
        #expect(tracker.notifications.map(\.event) == [.firing, .reminder])
        var acknowledged = tracker.openAlerts
        acknowledged[0].acknowledgedAt = Self.at(901)
        var next = AlertTracker(
            rule: tracker.rule, serial: "TH-1", openAlerts: acknowledged, deviceState: tracker.deviceState, silences: [])
        next.tick(at: Self.at(5000))
        #expect(next.notifications.isEmpty)
    }

    @Test func aSilenceDropsNotificationsButNotTheAlert() {
        let rule = Self.rule()
        let silence = AlertSilence(
            id: UUID(), tenantID: rule.tenantID, deviceSerial: "TH-1", ruleID: nil, until: Self.at(3600), comment: nil,
            createdBy: UUID(), createdAt: Self.start)
        var tracker = AlertTracker(rule: rule, serial: "TH-1", openAlerts: [], deviceState: nil, silences: [silence])
        tracker.apply(Self.hot, at: Self.at(0), script: "{}")
        #expect(tracker.openAlerts.map(\.state) == [.firing])
        #expect(tracker.notifications.isEmpty)
        var other = AlertTracker(rule: rule, serial: "TH-2", openAlerts: [], deviceState: nil, silences: [silence])
        other.apply(Self.hot, at: Self.at(0), script: "{}")
        #expect(other.notifications.count == 1, "another device is not silenced")
    }

    @Test func noDataHoldsTheAlertsAndTheNextSampleBringsThemBack() {
        var tracker = AlertTracker(
            rule: Self.rule { $0.noDataSeconds = 600 }, serial: "TH-1", openAlerts: [], deviceState: nil, silences: [])
        tracker.apply(Self.hot, at: Self.at(0), script: "{}")
        tracker.noData(since: Self.at(0), at: Self.at(700))
        tracker.noData(since: Self.at(0), at: Self.at(730))
        #expect(Set(tracker.openAlerts.map(\.key)) == ["high", Alert.noDataKey])
        #expect(tracker.openAlerts.allSatisfy { $0.state == .noData })
        #expect(tracker.notifications.map(\.event) == [.firing, .noData])

        tracker.apply(Self.hot, at: Self.at(760), script: "{}", sampleArrived: false)
        #expect(tracker.openAlerts.count == 2, "a timer evaluation is no sign of life")

        tracker.apply(Self.hot, at: Self.at(800), script: "{}")
        #expect(tracker.openAlerts.map(\.key) == ["high"] && tracker.openAlerts.map(\.state) == [.firing])
        #expect(tracker.notifications.map(\.event) == [.firing, .noData, .resolved])
    }

    @Test func aFailureOpensOneErrorAlertAndASuccessResolvesIt() {
        var tracker = AlertTracker(rule: Self.rule(), serial: "TH-1", openAlerts: [], deviceState: nil, silences: [])
        tracker.apply(Self.hot, at: Self.at(0), script: #"{"n":1}"#)
        tracker.fail("boom", at: Self.at(10), sampleArrived: true)
        tracker.fail("boom", at: Self.at(20), sampleArrived: true)
        #expect(Set(tracker.openAlerts.map(\.key)) == ["high", Alert.errorKey])
        #expect(tracker.deviceState.stateJSON == #"{"n":1}"#, "a failure keeps the state")
        tracker.apply(Self.hot, at: Self.at(30), script: #"{"n":2}"#)
        #expect(tracker.openAlerts.map(\.key) == ["high"])
        #expect(tracker.notifications.map(\.event) == [.firing], "errors are visible, not mailed")
    }

    @Test func closingResolvesEverythingQuietly() {
        var tracker = AlertTracker(rule: Self.rule(), serial: "TH-1", openAlerts: [], deviceState: nil, silences: [])
        tracker.apply(Self.hot, at: Self.at(0), script: "{}")
        tracker.close(at: Self.at(10))
        #expect(tracker.openAlerts.isEmpty)
        #expect(tracker.notifications.map(\.event) == [.firing])
    }
}
