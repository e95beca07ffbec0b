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

    /// `ctx` tables are kept per script and device between transforms; what a call sees must
    /// still be exactly its own device, time, tenant and config.
    @Test func cachedContextFollowsTheDeviceTimeTenantAndConfig() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(
            source: """
                return { transform = function(s, ctx)
                  print(ctx.device.serial, ctx.device.name, ctx.now_iso, ctx.tenant.slug, ctx.tenant.tier, ctx.config.limit)
                  assert(ctx.now == math.floor(ctx.now) or ctx.now_iso:find("%."), "now and now_iso agree")
                  return s
                end }
                """, name: "t", hook: .ingest)
        func line(serial: String, name: String?, second: Double, slug: String = "acme", limit: LuaValue = 25) throws -> String {
            var sample = Self.sample
            sample.deviceSerial = serial
            var context = Self.context
            context.deviceSerial = serial
            context.deviceName = name
            context.tenantSlug = slug
            context.now = Self.context.now.adding(seconds: second)
            context.config = ["limit": limit]
            _ = try runner.transform(script, sample: sample, context: context)
            return runner.drainLog().joined(separator: "|")
        }
        #expect(try line(serial: "TH-1", name: "Hall", second: 0) == "TH-1\tHall\t2026-11-29T07:01:00Z\tacme\tfree\t25")
        #expect(try line(serial: "TH-1", name: "Hall", second: 0.5) == "TH-1\tHall\t2026-11-29T07:01:00.500Z\tacme\tfree\t25")
        #expect(try line(serial: "TH-2", name: nil, second: 0.5) == "TH-2\tTH-2\t2026-11-29T07:01:00.500Z\tacme\tfree\t25")
        #expect(try line(serial: "TH-1", name: "Kitchen", second: 1) == "TH-1\tKitchen\t2026-11-29T07:01:01Z\tacme\tfree\t25")
        #expect(try line(serial: "TH-1", name: "Kitchen", second: 1, slug: "renamed") == "TH-1\tKitchen\t2026-11-29T07:01:01Z\trenamed\tfree\t25")
        #expect(try line(serial: "TH-1", name: "Kitchen", second: 1, limit: 30) == "TH-1\tKitchen\t2026-11-29T07:01:01Z\tacme\tfree\t30")
        for device in 0..<(ScriptRunner.cachedDevicesPerScript + 10) {
            #expect(try line(serial: "D-\(device)", name: nil, second: 2).hasPrefix("D-\(device)\tD-\(device)\t"))
        }
        #expect(try line(serial: "TH-1", name: "Hall", second: 3) == "TH-1\tHall\t2026-11-29T07:01:03Z\tacme\tfree\t25")
    }

    /// A config is one table per script, shared by the ctx of every device: a large config
    /// times many devices must not fill the VM.
    @Test func aLargeConfigIsHeldOncePerScript() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(
            source: "return { transform = function(s, ctx) assert(ctx.config.key_19999 == 19999) return s end }", name: "t",
            hook: .ingest)
        var context = Self.context
        context.config = .table(Dictionary(uniqueKeysWithValues: (0..<20_000).map { ("key_\($0)", LuaValue.integer(Int64($0))) }))
        for device in 0..<ScriptRunner.cachedDevicesPerScript {
            context.deviceSerial = "D-\(device)"
            _ = try runner.transform(script, sample: Self.sample, context: context)
        }
        #expect(runner.memoryInUse < 8 * 1024 * 1024, "\(runner.memoryInUse) bytes for 256 devices")
    }

    @Test func aScriptReassigningCtxFieldsGetsThemBackNextCall() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(
            source: """
                return { transform = function(s, ctx)
                  print(ctx.now_iso, ctx.config and ctx.config.limit, ctx.device and ctx.device.serial)
                  ctx.now = ctx.now + 3600
                  ctx.now_iso = "later"
                  ctx.config = nil
                  ctx.device = nil
                  return s
                end }
                """, name: "t", hook: .ingest)
        for _ in 0..<3 {
            _ = try runner.transform(script, sample: Self.sample, context: Self.context)
            #expect(runner.drainLog() == ["2026-11-29T07:01:00Z\t25\tTH-1"])
        }
        // A run resolves `ctx` once and reuses it: every call still gets the fields back.
        let run = try runner.startTransformRun(script, context: Self.context)
        for _ in 0..<3 {
            _ = try runner.transform(run, sample: Self.sample)
            #expect(runner.drainLog() == ["2026-11-29T07:01:00Z\t25\tTH-1"])
        }
        let rule = try runner.load(
            source: """
                return { evaluate = function(s, state, ctx)
                  print(ctx.now_iso, ctx.config and ctx.config.limit, ctx.device and ctx.device.serial)
                  ctx.now_iso, ctx.config, ctx.device = "later", nil, nil
                  return {}, state
                end }
                """, name: "r", hook: .alert)
        // A rule's run over a device's samples (one call into the VM) rewrites them before each
        // sample, as the calls of the plain path do.
        let samples = try runner.deviceSamples(Array(repeating: Self.sample, count: 3), shared: false)
        _ = try runner.evaluate(rule, samples: samples, state: [:], context: Self.context, share: .seconds(5))
        #expect(runner.drainLog() == Array(repeating: "2026-11-29T07:01:00Z\t25\tTH-1", count: 3))
        runner.release(samples)
        for _ in 0..<3 {
            _ = try runner.evaluate(rule, sample: Self.sample, state: [:], context: Self.context)
            #expect(runner.drainLog() == ["2026-11-29T07:01:00Z\t25\tTH-1"])
        }
    }

    /// A full cache (256 devices) must not start over for a device it already holds.
    @Test func devicesAlreadyCachedKeepTheirCtxWhenTheCacheIsFull() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(
            source: """
                local seen = {}
                return { transform = function(s, ctx)
                  local serial = ctx.device.serial
                  if seen[serial] ~= ctx then print("new " .. serial) end
                  seen[serial] = ctx
                  return s
                end }
                """, name: "t", hook: .ingest)
        var context = Self.context
        func feed() throws -> Int {
            for device in 0..<ScriptRunner.cachedDevicesPerScript {
                context.deviceSerial = "D-\(device)"
                _ = try runner.transform(script, sample: Self.sample, context: context)
            }
            return runner.drainLog().count
        }
        #expect(try feed() == ScriptRunner.cachedDevicesPerScript)
        #expect(try feed() == 0, "every device found its cached ctx")
    }

    @Test func unloadingAScriptFreesItsCachedContexts() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let source = "return { transform = function(s, ctx) return s end }"
        var context = Self.context
        let warm = try runner.load(source: source, name: "t", hook: .ingest)
        _ = try runner.transform(warm, sample: Self.sample, context: context)
        runner.unload(warm)
        let baseline = runner.memoryInUse
        for round in 0..<20 {
            let script = try runner.load(source: source, name: "t", hook: .ingest)
            for device in 0..<50 {
                context.deviceSerial = "R\(round)-D\(device)"
                _ = try runner.transform(script, sample: Self.sample, context: context)
            }
            runner.unload(script)
        }
        runner.collectGarbage()
        #expect(runner.memoryInUse < baseline + 64 * 1024, "20 rounds × 50 devices of ctx tables were released")
    }

    @Test(arguments: ["0", "1", "257", "16.5", "'16'"])
    func policyMemoryCapMustBeAWholeNumberOfMebibytesInRange(_ value: String) throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let policy = try runner.load(
            source: """
                return {
                  limits = function() return { max_devices = 1, max_samples = 1, retention_days = 1, ingest_per_minute = 1,
                    downsample = {}, script_memory_mb = \(value) } end,
                  on_over_quota = function() return "reject" end,
                }
                """, name: "p", hook: .storagePolicy)
        #expect {
            _ = try runner.limits(policy, context: Self.context)
        } throws: { error in
            guard case ScriptError.contract(let message) = error else { return false }
            return message.contains("script_memory_mb")
        }
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
        #expect {
            try runner.transform(script, sample: Self.sample, context: Self.context)
        } throws: { error in
            guard case ScriptError.contract = error else { return false }
            return true
        }
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
        #expect(second.alerts == [ScriptAlert(key: "two", severity: "critical", message: "second sample")])
        #expect(second.state == ["count": 2])
        #expect(try LuaValue(jsonText: second.state.jsonText) == second.state, "state survives JSON persistence")
        let badSeverity = try runner.load(
            source: "return { evaluate = function() return { { key = 'k', severity = 'meh', message = 'x' } }, {} end }", name: "b",
            hook: .alert)
        #expect {
            try runner.evaluate(badSeverity, sample: Self.sample, state: [:], context: Self.context)
        } throws: { error in
            guard case ScriptError.contract(let message) = error else { return false }
            return message.contains("severity")
        }
    }

    @Test(arguments: [
        ("return { evaluate = function() return { { message = 'x' } }, {} end }", "key"),
        ("return { evaluate = function() return { { key = '', message = 'x' } }, {} end }", "key"),
        ("return { evaluate = function() return { { key = string.rep('k', 201), message = 'x' } }, {} end }", "200"),
        ("return { evaluate = function() return { { key = 'k', message = 'a' }, { key = 'k', message = 'b' } }, {} end }", "'k'"),
        ("return { evaluate = function() return { { key = 'k', message = 'x', value = '21.5' } }, {} end }", "value"),
        ("return { evaluate = function() return { { key = 'k', message = 'x', value = 0/0 } }, {} end }", "value"),
        ("return { evaluate = function() return { { key = 'k', message = 5 } }, {} end }", "message"),
        ("return { evaluate = function() return { { key = 'k', message = 'x', severity = 3 } }, {} end }", "severity"),
        ("return { evaluate = function() return { 'k' }, {} end }", "key"),
        ("return { evaluate = function() return { { key = 'k', message = 'x' }, extra = 1 }, {} end }", "array"),
        ("return { evaluate = function() return { [1] = { key = 'a', message = 'x' }, [3] = { key = 'b', message = 'y' } }, {} end }", "array"),
        ("return { evaluate = function() return { [1.5] = { key = 'a', message = 'x' } }, {} end }", "array"),
        ("return { evaluate = function() return 'firing', {} end }", "array"),
    ])
    func alertsBreakingTheContractAreContractErrors(_ source: String, _ mentioned: String) throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(source: source, name: "bad", hook: .alert)
        #expect {
            try runner.evaluate(script, sample: Self.sample, state: [:], context: Self.context)
        } throws: { error in
            guard case ScriptError.contract(let message) = error else { return false }
            return message.contains(mentioned)
        }
    }

    @Test func anAlertsValueIsCarriedThroughAndNoStateKeepsTheState() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(
            source: """
                return { evaluate = function(s)
                  return {
                    { key = "hot", message = "reading", value = s.temp_inside_c },
                    { key = "count", message = "integer", value = 3 },
                    { key = "plain", severity = "critical", message = "no value" },
                  }
                end }
                """, name: "v", hook: .alert)
        let result = try runner.evaluate(script, sample: Self.sample, state: ["kept": true], context: Self.context)
        #expect(
            result.alerts == [
                ScriptAlert(key: "hot", severity: "warning", message: "reading", value: 20.5),
                ScriptAlert(key: "count", severity: "warning", message: "integer", value: 3),
                ScriptAlert(key: "plain", severity: "critical", message: "no value"),
            ])
        #expect(result.state == ["kept": true], "returning no state keeps it")
    }

    @Test func aTimerScriptSeesCtxTimerOnTimerEvaluationsOnly() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(
            source: "return { timer = true, evaluate = function(s, state, ctx) return { { key = tostring(ctx.timer), message = 'm' } } end }",
            name: "t", hook: .alert)
        #expect(script.evaluatesOnTimer)
        let onTimer = try runner.evaluate(script, sample: Self.sample, state: [:], context: Self.context, timer: true)
        #expect(onTimer.alerts.map(\.key) == ["true"])
        let atIngest = try runner.evaluate(script, sample: Self.sample, state: [:], context: Self.context)
        #expect(atIngest.alerts.map(\.key) == ["nil"])
        let plain = try runner.load(source: "return { evaluate = function() end }", name: "p", hook: .alert)
        #expect(!plain.evaluatesOnTimer)
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
        #expect(limits == TierLimits(maxDevices: 3, maxSamples: 100_000, retentionDays: 30, ingestPerMinute: 60, downsample: [.init(afterDays: 7, resolution: "1h")!]))
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

    @Test func theFastAlertPathRunsADevicesSamplesInOneCallAndAgreesWithThePlainOne() throws {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(
            source: """
                return { evaluate = function(sample, state, ctx)
                  state.n = (state.n or 0) + 1
                  if state.n % 2 == 0 then return { { key = "even", message = "n=" .. state.n, value = state.n } }, state end
                  if state.n == 5 then return {}, { n = 100 } end
                  return nil, state
                end }
                """, name: "counter", hook: .alert)
        let samples = try runner.deviceSamples(Array(repeating: Self.sample, count: 6), shared: true)
        defer { runner.release(samples) }
        let fast = try runner.evaluate(script, samples: samples, state: ["n": 0], context: Self.context, share: .seconds(5))
        #expect(fast.state == ["n": 101])

        var state: LuaValue = ["n": 0]
        var plain: [[ScriptAlert]] = []
        for _ in 0..<6 {
            let (alerts, next) = try runner.evaluate(script, sample: Self.sample, state: state, context: Self.context)
            if let last = plain.last, last.map(\.key) == alerts.map(\.key) {
                plain[plain.count - 1] = alerts
            } else {
                plain.append(alerts)
            }
            state = next
        }
        #expect(fast.steps == plain)
        #expect(fast.steps.map(\.count) == [0, 1, 0, 1, 0])
        #expect(fast.steps[1].first == ScriptAlert(key: "even", severity: "warning", message: "n=2", value: 2))

        let broken = try runner.load(
            source: "return { evaluate = function() return { { message = 'no key' } }, {} end }", name: "broken", hook: .alert)
        #expect(throws: ScriptError.self) {
            try runner.evaluate(broken, samples: samples, state: [:], context: Self.context, share: .seconds(5))
        }
        let accented = try runner.load(
            source: "return { evaluate = function() return { { key = 'd\u{E9}j\u{E0}', message = 'm' } }, {} end }",
            name: "accented", hook: .alert)
        #expect(throws: ScriptError.self, "keys outside ASCII are left to the one-call-per-sample path") {
            try runner.evaluate(accented, samples: samples, state: [:], context: Self.context, share: .seconds(5))
        }
        #expect(try runner.evaluate(accented, sample: Self.sample, state: [:], context: Self.context).alerts.map(\.key) == ["déjà"])
        let slow = try runner.load(
            source: "return { evaluate = function(s, state) local t = os.clock() while os.clock() - t < 0.05 do end return {}, state end }",
            name: "slow", hook: .alert)
        #expect(throws: ScriptError.self, "the share ends before the six samples do") {
            try runner.evaluate(slow, samples: samples, state: [:], context: Self.context, share: .milliseconds(120))
        }
        // Forty calls of 20 ms of CPU each (os.clock() is the process's, spent up to twice as
        // fast as the wall clock by parallel tests): each well inside 200 ms even on a busy
        // machine, together past it.
        var limits = LuaLimits()
        limits.wallClock = .milliseconds(200)
        let patient = try ScriptRunner(catalog: PluginCatalog(), limits: limits)
        let steady = try patient.load(
            source: """
                return { evaluate = function(s, state)
                  local started = os.clock()
                  while os.clock() - started < 0.02 do local _ = ('x'):rep(100000) end
                  return {}, state
                end }
                """,
            name: "steady", hook: .alert)
        let steadySamples = try patient.deviceSamples(Array(repeating: Self.sample, count: 40), shared: true)
        defer { patient.release(steadySamples) }
        #expect(throws: Never.self, "each call is on time though together they take longer than one call may") {
            try patient.evaluate(steady, samples: steadySamples, state: [:], context: Self.context, share: .seconds(5))
        }
    }

    /// Six samples of one device a second apart, every field set, one without an outdoor reading.
    static func deviceSamples() -> [TelemetrySample] {
        let start = Timestamp(iso8601: "2026-11-29T07:00:00Z")!
        return (0..<6).map { (index: Int) -> TelemetrySample in
            let mode: ThermostatMode = index % 2 == 0 ? .heat : .cool
            let output: ThermostatOutput = index % 3 == 0 ? .off : .heatOn
            let outside: Double? = index == 3 ? nil : 4.5
            return TelemetrySample(
                deviceSerial: "TH-1", timestamp: start.adding(seconds: Double(index) + 0.25), mode: mode,
                tempInside: 19 + Double(index), tempOutside: outside, setpoint: 21, hysteresis: 0.5, output: output)
        }
    }

    /// What one call per sample (`transform(_:sample:)`) makes of `samples[range]`: the samples
    /// with the accepted ones replaced, and how it ended, as text.
    static func oneCallPerSample(_ source: String, _ samples: [TelemetrySample], in range: Range<Int>) throws
        -> ([TelemetrySample], String)
    {
        let runner = try ScriptRunner(catalog: PluginCatalog())
        let script = try runner.load(source: source, name: "t", hook: .ingest)
        let run = try runner.startTransformRun(script, context: context)
        var output = samples
        for index in range {
            do {
                switch try runner.transform(run, sample: output[index]) {
                case .accept(let transformed): output[index] = transformed
                case .reject(let reason): return (output, "rejected \(index): \(reason)")
                }
            } catch {
                return (output, "failed \(index): \(error)")
            }
        }
        return (output, "finished")
    }

    static func oneRun(
        _ source: String, _ samples: [TelemetrySample], in range: Range<Int>, timeLeft: Duration = .seconds(5),
        limits: LuaLimits = LuaLimits()
    ) throws -> ([TelemetrySample], String) {
        let runner = try ScriptRunner(catalog: PluginCatalog(), limits: limits)
        let script = try runner.load(source: source, name: "t", hook: .ingest)
        let run = try runner.startTransformRun(script, context: context)
        var output = samples
        let end =
            switch runner.transform(run, samples: &output, in: range, until: .now + timeLeft) {
            case .finished: "finished"
            case .rejected(let index, let reason): "rejected \(index): \(reason)"
            case .failed(let index, let error): "failed \(index): \(error)"
            case .outOfTime(let index): "out of time at \(index)"
            }
        return (output, end)
    }

    /// A run over many samples in one call into the VM makes every call and verdict that one
    /// call per sample makes: the same samples, the same stop, the same error text.
    @Test(arguments: [
        "return { transform = function(s, ctx) s.temp_inside_c = s.temp_inside_c + 0.5 return s end }",
        // Module state and ctx: each call in order, ctx rewritten every time.
        """
        local calls = 0
        return { transform = function(s, ctx)
          calls = calls + 1
          assert(ctx.now == 1795935660 and ctx.device.serial == "TH-1" and s.device_id == "TH-1")
          ctx.now = 0
          s.setpoint_c = 15 + calls
          s.hysteresis_c = s.time % 1 == 0.25 and 1 or 2
          return s
        end }
        """,
        // A new table, names built at run time, integers, and a dropped outdoor reading.
        """
        return { transform = function(s)
          return { mode = ("AU") .. "TO", output = "COOL" .. "_ON", temp_inside_c = 20, setpoint_c = 22,
                   hysteresis_c = 1, temp_outside_c = nil }
        end }
        """,
        "return { transform = function(s) if s.temp_inside_c > 21 then return nil, 'too warm' end return s end }",
        "return { transform = function(s) if s.temp_inside_c > 21 then return nil end return s end }",
        "return { transform = function(s) if s.temp_inside_c > 20 then s.mode = 'heat' end return s end }",
        "return { transform = function(s) if s.temp_inside_c > 20 then s.output = 7 end return s end }",
        "return { transform = function(s) if s.temp_inside_c > 22 then s.temp_inside_c = 0/0 end return s end }",
        "return { transform = function(s) if s.temp_inside_c > 22 then s.setpoint_c = 1e6 end return s end }",
        "return { transform = function(s) if s.temp_inside_c > 22 then s.temp_outside_c = '4' end return s end }",
        "return { transform = function(s) if s.temp_inside_c > 22 then return 'text' end return s end }",
        "return { transform = function(s) return setmetatable({}, { __index = s }) end }",
        "return { transform = function(s) if s.temp_inside_c > 21 then error('broken at ' .. s.timestamp) end return s end }",
        "return { transform = function(s) if s.temp_inside_c > 21 then error({ message = 'a table' }) end return s end }",
        "return { transform = function(s) if s.temp_inside_c > 21 then while true do end end return s end }",
        """
        return { transform = function(s)
          if s.temp_inside_c > 21 then pcall(function() while true do end end) end
          return s
        end }
        """,
        "return { transform = function(s) if s.temp_inside_c > 22 then coroutine.yield() end return s end }",
        """
        return { transform = function(s)
          if s.temp_inside_c > 21 then coroutine.resume(coroutine.create(function() while true do end end)) end
          return s
        end }
        """,
        // Memory: running out, and running out inside pcall and going on.
        "return { transform = function(s) if s.temp_inside_c > 22 then local big = ('x'):rep(1000):rep(100000) end return s end }",
        "return { transform = function(s) pcall(string.rep, ('x'):rep(1000), 100000) s.setpoint_c = 20 return s end }",
        // Past the wall clock of one call (250 ms), well inside the instruction budget.
        """
        return { transform = function(s)
          if s.temp_inside_c > 23 then
            local started = os.clock()
            while os.clock() - started < 2 do local _ = ('x'):rep(1000000) end
          end
          return s
        end }
        """,
    ])
    func aRunOverManySamplesAgreesWithOneCallPerSample(_ source: String) throws {
        let samples = Self.deviceSamples()
        for range in [0..<6, 2..<5, 5..<6] {
            let (expected, expectedEnd) = try Self.oneCallPerSample(source, samples, in: range)
            let (actual, actualEnd) = try Self.oneRun(source, samples, in: range)
            #expect(actualEnd == expectedEnd)
            #expect(actual == expected)
        }
    }

    @Test func aRunStopsBeforeTheSampleThatWouldStartPastItsTime() throws {
        let samples = Self.deviceSamples()
        let (untouched, none) = try Self.oneRun(
            "return { transform = function(s) s.setpoint_c = 5 return s end }", samples, in: 1..<6, timeLeft: .zero)
        #expect(none == "out of time at 1")
        #expect(untouched == samples)
        // os.clock() is the process's CPU time, which parallel tests spend faster than the wall
        // clock: 0.8 s of it is at least 0.4 s on two cores, well past the time left; the first
        // sample still starts in time on a busy machine.
        let slow = """
            return { transform = function(s)
              local started = os.clock()
              while os.clock() - started < 0.8 do local _ = ('x'):rep(1000000) end
              s.setpoint_c = 5
              return s
            end }
            """
        var patient = LuaLimits()
        patient.wallClock = .seconds(10)
        patient.instructionBudget = 100_000_000
        let (output, end) = try Self.oneRun(slow, samples, in: 0..<6, timeLeft: .milliseconds(150), limits: patient)
        #expect(end == "out of time at 1")
        #expect(output[0].setpoint == 5, "the sample that started in time is taken")
        #expect(Array(output[1...]) == Array(samples[1...]))
    }
}
