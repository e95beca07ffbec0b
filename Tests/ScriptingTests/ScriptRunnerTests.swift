import Foundation
import LuaSandbox
import PlatformCore
import Scripting
import Testing

@Suite struct ScriptRunnerTests {
    static let sample = TelemetrySample(
        deviceSerial: "TH-1", timestamp: Timestamp(iso8601: "2026-11-29T07:00:00Z")!, mode: .heat, tempInside: 20.5,
        tempOutside: nil, setpoint: 21, hysteresis: 0.5, output: .heatOn)
    static let context = ScriptContext(
        tenantID: "tenant-1", tenantSlug: "acme", tier: "free", deviceSerial: "TH-1", deviceName: "Hall",
        now: Timestamp(iso8601: "2026-11-29T07:01:00Z")!, config: ["limit": 25])

    @Test(arguments: [
        (ScriptHook.ingest, "return { evaluate = function() end }", "transform"),
        (.alert, "return { transform = function() end }", "evaluate"),
        (.export, "return { row = function() end }", "content_type"),
        (.export, "return { content_type = 'text/csv', extension = 'csv' }", "row"),
        (.storagePolicy, "return { limits = function() end }", "on_over_quota"),
    ])
    func loadChecksTheHookContract(_ hook: ScriptHook, _ source: String, _ missing: String) throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        #expect {
            _ = try runner.load(source: source, name: "s", hook: hook)
        } throws: { error in
            guard case ScriptError.contract(let message) = error else { return false }
            return message.contains(missing)
        }
    }

    @Test func transformSeesTheSampleAndContext() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(
            source: """
                return { transform = function(s, ctx)
                  if s.temp_inside_c > ctx.config.limit then return nil, "too warm for " .. ctx.device.name end
                  assert(s.temp_outside_c == nil and s.timestamp == "2026-11-29T07:00:00Z" and ctx.tenant.slug == "acme")
                  assert(ctx.now - s.time == 60, "time and now are epoch seconds")
                  s.temp_inside_c = s.temp_inside_c + 1
                  s.mode = "AUTO"
                  s.device_id = "SOMEONE-ELSE"
                  return s
                end }
                """, name: "t", hook: .ingest)
        guard case .accept(let changed) = try runner.transform(script, sample: Self.sample, context: Self.context) else {
            Issue.record("rejected")
            return
        }
        #expect(changed.tempInside == 21.5)
        #expect(changed.mode == .auto)
        #expect(changed.deviceSerial == "TH-1", "the device and timestamp identify a sample; scripts cannot change them")
        var hot = Self.sample
        hot.tempInside = 30
        #expect(try runner.transform(script, sample: hot, context: Self.context) == .reject("too warm for Hall"))
    }

    @Test(arguments: [
        "return { transform = function(s) s.mode = 'WARM' return s end }",
        "return { transform = function(s) s.temp_inside_c = 500 return s end }",
        "return { transform = function(s) s.setpoint_c = 'hot' return s end }",
        "return { transform = function(s) return 42 end }",
    ])
    func invalidTransformResultsAreContractErrors(_ source: String) throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(source: source, name: "bad", hook: .ingest)
        #expect(throws: ScriptError.self) { try runner.transform(script, sample: Self.sample, context: Self.context) }
    }

    @Test func alertsAndStateRoundTrip() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(
            source: """
                return { evaluate = function(s, state, ctx)
                  state.count = (state.count or 0) + 1
                  if state.count == 2 then
                    return { { severity = "critical", message = "second sample", key = "two" } }, state
                  end
                  return {}, state
                end }
                """, name: "a", hook: .alert)
        var state: LuaValue = .table([:])
        let first = try runner.evaluate(script, sample: Self.sample, state: state, context: Self.context)
        #expect(first.alerts.isEmpty)
        state = first.state
        let second = try runner.evaluate(script, sample: Self.sample, state: state, context: Self.context)
        #expect(second.alerts == [ScriptAlert(severity: "critical", message: "second sample", key: "two")])
        #expect(second.state == ["count": 2])
        #expect(try LuaValue(jsonText: second.state.jsonText) == second.state, "state survives JSON persistence")
        let badSeverity = try runner.load(
            source: "return { evaluate = function() return { { severity = 'meh', message = 'x' } }, {} end }", name: "b",
            hook: .alert)
        #expect(throws: ScriptError.self) { try runner.evaluate(badSeverity, sample: Self.sample, state: [:], context: Self.context) }
    }

    @Test func exportAndPolicy() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let export = try runner.load(
            source: """
                return { content_type = "text/plain", extension = "txt",
                  header = function(ctx) return "# " .. ctx.tenant.slug .. "\\n" end,
                  row = function(s) return s.device_id .. " " .. s.temp_inside_c .. "\\n" end }
                """, name: "e", hook: .export)
        #expect(try runner.export(export, samples: [Self.sample, Self.sample], context: Self.context) == "# acme\nTH-1 20.5\nTH-1 20.5\n")
        #expect(try runner.contentType(export) == ("text/plain", "txt"))
        let policy = try runner.load(
            source: """
                return {
                  limits = function(tenant) return { max_devices = tenant.tier == "free" and 3 or 10, max_samples = 1e5,
                    retention_days = 30, ingest_per_minute = 60, downsample = { { after_days = 7, resolution = "1h" } } } end,
                  on_over_quota = function(usage, limits) return usage.devices > limits.max_devices and "reject" or "drop_oldest" end,
                }
                """, name: "p", hook: .storagePolicy)
        let limits = try runner.limits(policy, context: Self.context)
        #expect(limits == TierLimits(maxDevices: 3, maxSamples: 100_000, retentionDays: 30, ingestPerMinute: 60, downsample: [.init(afterDays: 7, resolution: "1h")]))
        #expect(try runner.onOverQuota(policy, usage: ["devices": 4, "samples": 0], limits: limits, context: Self.context) == .reject)
        #expect(try runner.onOverQuota(policy, usage: ["devices": 1, "samples": 0], limits: limits, context: Self.context) == .dropOldest)
    }

    @Test func luaFailuresSurfaceWithTheirKind() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(source: "return { transform = function(s) while true do end end }", name: "spin", hook: .ingest)
        #expect {
            _ = try runner.transform(script, sample: Self.sample, context: Self.context)
        } throws: { error in
            guard case ScriptError.lua(let luaError) = error else { return false }
            return luaError.kind == .budgetExhausted && luaError.chunk == "spin"
        }
        #expect(throws: ScriptError.self) { try runner.load(source: "return {", name: "broken", hook: .ingest) }
    }
}
