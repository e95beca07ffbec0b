import Foundation
import LuaSandbox
import PlatformCore
import Scripting
import Testing

/// The built-in plugins (Plugins/) and tier policies (Policies/) of this repository, run
/// through `ScriptRunner` the way the server runs them.
@Suite struct PluginTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let start = Timestamp(iso8601: "2026-11-29T07:00:00Z")!

    static func catalog() throws -> PluginCatalog {
        try PluginCatalog.load(
            pluginsDirectory: repository.appendingPathComponent("Plugins"),
            policiesDirectory: repository.appendingPathComponent("Policies"))
    }

    /// A runner with the catalog registered for `require`, and the named plugin or policy loaded.
    static func load(_ name: String) throws -> (ScriptRunner, LoadedScript, Plugin) {
        let catalog = try catalog()
        let plugin = try #require(catalog.plugins[name] ?? catalog.policies[name], "\(name) is in the catalog")
        let runner = try ScriptRunner(catalog: catalog)
        return (runner, try runner.load(plugin: plugin), plugin)
    }

    /// `ctx` with the plugin's manifest defaults and `overrides` on top, as the server builds
    /// `ctx.config`.
    static func context(_ plugin: Plugin, _ overrides: [String: LuaValue] = [:], now: Timestamp = start) -> ScriptContext {
        guard case .table(var config) = plugin.defaultConfig else { return context(.table(overrides), now: now) }
        config.merge(overrides) { $1 }
        return context(.table(config), now: now)
    }

    static func context(_ config: LuaValue = .table([:]), now: Timestamp = start) -> ScriptContext {
        ScriptContext(
            tenantID: "tenant-1", tenantSlug: "acme", tier: "standard", deviceSerial: "TH-1", deviceName: "Hall", now: now,
            config: config)
    }

    static func sample(
        minute: Double = 0, inside: Double = 20.5, outside: Double? = nil, setpoint: Double = 21, hysteresis: Double = 0.5,
        mode: ThermostatMode = .heat, output: ThermostatOutput = .heatOn, serial: String = "TH-1"
    ) -> TelemetrySample {
        TelemetrySample(
            deviceSerial: serial, timestamp: start.adding(seconds: minute * 60), mode: mode, tempInside: inside,
            tempOutside: outside, setpoint: setpoint, hysteresis: hysteresis, output: output)
    }

    /// Feeds one device's samples to an alert rule as the server does: the state persisted as
    /// JSON between calls, `ctx.now` the sample's time unless a call passes another (a timer run,
    /// or a back-filled sample arriving late). The alerts returned are the ones active now.
    struct AlertRun {
        let runner: ScriptRunner
        let script: LoadedScript
        let plugin: Plugin
        /// The rule's config over the manifest's; change it between calls to edit the rule.
        var overrides: [String: LuaValue]
        var state: LuaValue = .table([:])

        init(_ name: String, _ overrides: [String: LuaValue] = [:]) throws {
            let (runner, script, plugin) = try PluginTests.load(name)
            self.runner = runner
            self.script = script
            self.plugin = plugin
            self.overrides = overrides
        }

        mutating func feed(_ sample: TelemetrySample, now: Timestamp? = nil, timer: Bool = false) throws -> [ScriptAlert] {
            let context = PluginTests.context(plugin, overrides, now: now ?? sample.timestamp)
            let result = try runner.evaluate(script, sample: sample, state: state, context: context, timer: timer)
            state = try LuaValue(jsonText: result.state.jsonText)
            return result.alerts
        }

        /// The keys active after a sample at `minute` reading `inside`; `nowMinute` sets
        /// `ctx.now`, `timer` makes it a timer run.
        mutating func keys(minute: Double, inside: Double, nowMinute: Double? = nil, timer: Bool = false) throws -> [String] {
            let now = nowMinute.map { PluginTests.start.adding(seconds: $0 * 60) }
            return try feed(PluginTests.sample(minute: minute, inside: inside), now: now, timer: timer).map(\.key)
        }
    }

    // MARK: The catalog

    @Test func everyPluginAndPolicyLoadsAndKeepsItsHookContract() throws {
        let catalog = try Self.catalog()
        let expected: [String: ScriptHook] = [
            "fahrenheit-input": .ingest, "reject-outliers": .ingest, "threshold": .alert, "rate-of-change": .alert,
            "sustained": .alert, "stale-device": .alert, "csv": .export, "ndjson": .export, "influx-line-protocol": .export,
        ]
        #expect(catalog.plugins.mapValues(\.hook) == expected)
        #expect(Set(catalog.policies.keys) == ["free", "standard", "pro"])
        let runner = try ScriptRunner(catalog: catalog)
        for plugin in catalog.plugins.values {
            #expect(plugin.version == "1.0.0" && !plugin.description.isEmpty, "\(plugin.name)")
            guard case .table = plugin.defaultConfig else {
                Issue.record("\(plugin.name): the manifest's config must be an object")
                continue
            }
            _ = try runner.load(plugin: plugin)
        }
        for policy in catalog.policies.values {
            #expect(policy.hook == .storagePolicy)
            _ = try runner.load(plugin: policy)
        }
        let exports = [
            ("csv", "text/csv", "csv"), ("ndjson", "application/x-ndjson", "ndjson"),
            ("influx-line-protocol", "text/plain", "lp"),
        ]
        for (name, contentType, fileExtension) in exports {
            let script = try runner.load(plugin: #require(catalog.plugins[name]))
            #expect(try runner.contentType(script) == (contentType, fileExtension), "\(name)")
        }
    }

    /// Plugins keep no defaults of their own: the runner lays a script's config over the
    /// manifest's, so an empty config must behave exactly like the manifest's full one.
    @Test func anEmptyConfigMeansTheManifestDefaults() throws {
        let readings: [(minute: Double, inside: Double, outside: Double?)] = [
            (0, 20.5, -3), (10, 29, 61), (20, 35, nil), (25, 9.7, nil), (45, 80, nil), (200, 28.5, nil), (260, -40, nil),
        ]
        for plugin in try Self.catalog().plugins.values {
            // A °F device reports a °F setpoint; the transformed sample must still be valid.
            let setpoint = plugin.name == "fahrenheit-input" ? 70.0 : 21.0
            let samples = readings.map { Self.sample(minute: $0.minute, inside: $0.inside, outside: $0.outside, setpoint: setpoint) }
            let (runner, script, _) = try Self.load(plugin.name)
            var outputs: [String] = []
            for context in [Self.context(.table([:])), Self.context(plugin)] {
                var output = ""
                switch plugin.hook {
                case .ingest:
                    for sample in samples {
                        let outcome = try runner.transform(script, sample: sample, context: context)
                        output += "\(outcome)\n"
                    }
                case .alert:
                    var state: LuaValue = .table([:])
                    for sample in samples {
                        let result = try runner.evaluate(script, sample: sample, state: state, context: context)
                        state = result.state
                        output += "\(result.alerts) \(state.jsonText)\n"
                    }
                case .export:
                    output = try runner.export(script, samples: samples, context: context)
                case .storagePolicy:
                    Issue.record("\(plugin.name): policies are not plugins")
                }
                outputs.append(output)
            }
            #expect(outputs[0] == outputs[1], "\(plugin.name): the Lua defaults and the manifest's config differ")
        }
    }

    // MARK: Ingest

    @Test func fahrenheitInputConvertsToCelsius() throws {
        let (runner, script, plugin) = try Self.load("fahrenheit-input")
        let raw = Self.sample(inside: 68, outside: 32, setpoint: 71.6, hysteresis: 1)
        #expect(
            try runner.transform(script, sample: raw, context: Self.context(plugin))
                == .accept(Self.sample(inside: 20, outside: 0, setpoint: 22, hysteresis: 0.56)),
            "68 °F is 20 °C exactly; a difference of 1 °F is 5/9 °C (no offset), rounded to 2 decimals")

        let exact = Self.context(plugin, ["decimals": false])
        #expect(
            try runner.transform(script, sample: Self.sample(inside: -4, setpoint: 50, hysteresis: 1), context: exact)
                == .accept(Self.sample(inside: -20, setpoint: 10, hysteresis: 5.0 / 9.0)),
            "without an outdoor sensor temp_outside_c stays absent")

        let insideOnly = Self.context(plugin, ["fields": ["temp_inside_c"], "delta_fields": []])
        #expect(try runner.transform(script, sample: Self.sample(inside: 50), context: insideOnly) == .accept(Self.sample(inside: 10)))
    }

    @Test func rejectOutliersRefusesImplausibleReadings() throws {
        let (runner, script, plugin) = try Self.load("reject-outliers")
        func transform(_ sample: TelemetrySample, _ overrides: [String: LuaValue] = [:]) throws -> IngestOutcome {
            try runner.transform(script, sample: sample, context: Self.context(plugin, overrides))
        }
        #expect(
            try transform(Self.sample(inside: 80)) == .reject("temp_inside_c 80 °C is outside the plausible range -30 to 60 °C"))
        #expect(try transform(Self.sample(inside: 21, outside: -5)) == .accept(Self.sample(inside: 21, outside: -5)))
        guard case .reject(let reason) = try transform(Self.sample(inside: 21, outside: -127)) else {
            Issue.record("a disconnected outdoor sensor was accepted")
            return
        }
        #expect(reason.hasPrefix("temp_outside_c -127 °C"))

        let far = Self.sample(inside: 45, setpoint: 20)
        #expect(try transform(far) == .accept(far), "the setpoint check is off by default")
        #expect(
            try transform(far, ["max_setpoint_gap_c": 15])
                == .reject("temp_inside_c 45 °C is more than 15 °C from the setpoint 20 °C"))
        let idle = Self.sample(inside: 45, setpoint: 20, mode: .off, output: .off)
        #expect(try transform(idle, ["max_setpoint_gap_c": 15]) == .accept(idle), "a thermostat that is OFF controls nothing")
        #expect(try transform(Self.sample(inside: 80), ["max_c": false]) == .accept(Self.sample(inside: 80)), "false switches a bound off")
    }

    // MARK: Alerts

    @Test func thresholdIsActiveWhileBeyondTheLimitAndUntilPastTheHysteresis() throws {
        var run = try AlertRun("threshold", ["high_c": 25, "low_c": 15, "hysteresis_c": 1, "severity": "critical"])
        #expect(try run.keys(minute: 0, inside: 24) == [])
        let high = ScriptAlert(key: "high", severity: "critical", message: "TH-1: temp_inside_c is 25.5 °C, above 25 °C", value: 25.5)
        #expect(try run.feed(Self.sample(minute: 1, inside: 25.5)) == [high])
        #expect(
            try run.feed(Self.sample(minute: 2, inside: 26)).map(\.message) == ["TH-1: temp_inside_c is 26 °C, above 25 °C"],
            "still above: the same key on every sample, the message follows the reading")
        let band = ScriptAlert(
            key: "high", severity: "critical", message: "TH-1: temp_inside_c is 24.5 °C, not yet back below 24 °C (limit 25 °C)",
            value: 24.5)
        #expect(try run.feed(Self.sample(minute: 3, inside: 24.5)) == [band], "below high but within the hysteresis: still active")
        #expect(try run.keys(minute: 4, inside: 25.2) == ["high"])
        #expect(try run.keys(minute: 5, inside: 24) == ["high"], "exactly high - hysteresis is not below it yet")
        #expect(try run.keys(minute: 6, inside: 23.9) == [], "below high - hysteresis: resolved")
        #expect(run.state == .array([]), "no active condition left")
        #expect(try run.keys(minute: 7, inside: 24.5) == [], "inside the band without a crossing: nothing")
        #expect(try run.keys(minute: 8, inside: 25.1) == ["high"], "the next crossing starts it again")

        #expect(try run.keys(minute: 9, inside: 14) == ["low"])
        #expect(try run.keys(minute: 10, inside: 15.5) == ["low"], "within the hysteresis of low")
        #expect(try run.keys(minute: 11, inside: 16) == ["low"])
        #expect(try run.keys(minute: 12, inside: 16.1) == [])
        #expect(try run.keys(minute: 13, inside: 14.9) == ["low"])
    }

    /// The key names the condition, not the limits: editing a rule keeps its state and its alert.
    @Test func thresholdKeepsItsKeyWhenTheLimitsAreEdited() throws {
        var run = try AlertRun("threshold", ["high_c": 25])
        #expect(try run.keys(minute: 0, inside: 26) == ["high"])
        run.overrides["high_c"] = 25.5
        #expect(
            try run.feed(Self.sample(minute: 1, inside: 26))
                == [ScriptAlert(key: "high", severity: "warning", message: "TH-1: temp_inside_c is 26 °C, above 25.5 °C", value: 26)])
        run.overrides["high_c"] = 30
        #expect(try run.keys(minute: 2, inside: 26) == [], "26 °C is well within the new limit")
        run.overrides["high_c"] = false
        #expect(try run.keys(minute: 3, inside: 40) == [], "false switches the bound off")
        #expect(try run.keys(minute: 4, inside: 5) == ["low"], "the other bound still works")
    }

    @Test func thresholdKeepsItsVerdictOnSamplesWithoutTheField() throws {
        var run = try AlertRun("threshold", ["field": "temp_outside_c", "low_c": -10])
        #expect(try run.feed(Self.sample(outside: nil)).isEmpty, "no reading, nothing held: nothing")
        let cold = ScriptAlert(key: "low", severity: "warning", message: "TH-1: temp_outside_c is -12 °C, below -10 °C", value: -12)
        #expect(try run.feed(Self.sample(minute: 1, outside: -12)) == [cold])
        #expect(try run.feed(Self.sample(minute: 2, outside: nil)) == [cold], "a missing reading neither resolves nor changes it")
        #expect(try run.feed(Self.sample(minute: 3, outside: -9.4)).isEmpty)
        #expect(try run.feed(Self.sample(minute: 4, outside: nil)).isEmpty, "nor starts anything")
    }

    @Test func sustainedIsActiveOnceTheConditionHeldForTheMinutes() throws {
        var run = try AlertRun("sustained", ["above_c": 28, "minutes": 15])
        #expect(try run.keys(minute: 0, inside: 29) == [])
        #expect(try run.keys(minute: 5, inside: 29) == [])
        #expect(try run.keys(minute: 14.9, inside: 29.5) == [])
        let held = ScriptAlert(
            key: "above", severity: "warning", message: "TH-1: temp_inside_c has been above 28 °C for 15 minutes (now 29 °C)", value: 29)
        #expect(try run.feed(Self.sample(minute: 15, inside: 29)) == [held])
        #expect(
            try run.feed(Self.sample(minute: 20, inside: 29.5)).map(\.message)
                == ["TH-1: temp_inside_c has been above 28 °C for 20 minutes (now 29.5 °C)"], "active on every sample while it holds")
        #expect(try run.keys(minute: 10, inside: 20) == ["above"], "an older, back-filled sample changes nothing")
        #expect(try run.keys(minute: 25, inside: 27) == [], "the condition breaks: resolved")
        #expect(try run.keys(minute: 30, inside: 29) == [], "a new episode starts")
        #expect(try run.keys(minute: 40, inside: 29) == [])
        #expect(try run.keys(minute: 45, inside: 29) == ["above"])

        var below = try AlertRun("sustained", ["field": "temp_outside_c", "above_c": false, "below_c": -5, "minutes": 10])
        #expect(try below.feed(Self.sample(minute: 0, outside: -8)).isEmpty)
        #expect(try below.feed(Self.sample(minute: 10, outside: -8)).map(\.key) == ["below"])
        #expect(try below.feed(Self.sample(minute: 11, outside: nil)).map(\.key) == ["below"], "a missing reading keeps the verdict")
        #expect(try below.feed(Self.sample(minute: 12, outside: -4)).isEmpty)
    }

    @Test func rateOfChangeIsActiveWhileTheReadingChangesTooFast() throws {
        var run = try AlertRun("rate-of-change", ["max_c_per_hour": 3])
        #expect(try run.keys(minute: 0, inside: 20) == [], "the first sample only sets the reference")
        #expect(try run.keys(minute: 1, inside: 20.1) == [], "closer than min_interval_minutes: not compared")
        #expect(try run.keys(minute: 10, inside: 20.4) == [], "2.4 °C/h")
        let rising = try run.feed(Self.sample(minute: 20, inside: 21))
        #expect(rising.map(\.key) == ["rate"])
        #expect(rising.map(\.message) == ["TH-1: temp_inside_c rising at 3.6 °C/h (20.4 -> 21 °C in 10 min; limit 3 °C/h)"])
        #expect(abs((rising.first?.value ?? 0) - 3.6) < 1e-9, "the value is the rate in °C/h")
        #expect(try run.feed(Self.sample(minute: 22, inside: 20)) == rising, "closer than the interval to the reference: the verdict stands")
        #expect(try run.keys(minute: 30, inside: 21.6) == ["rate"], "still too fast: still active")
        #expect(try run.keys(minute: 40, inside: 21.7) == [], "slow again: resolved")
        let falling = try run.feed(Self.sample(minute: 50, inside: 20))
        #expect(falling.map { $0.message.contains("falling at 10.2 °C/h") } == [true])
        #expect((falling.first?.value ?? 0) < 0, "a falling reading has a negative rate")
        #expect(try run.keys(minute: 5, inside: 30) == [], "an older sample restarts from itself")
        #expect(try run.keys(minute: 6, inside: 35) == [], "and is the reference for what follows")
    }

    @Test func staleDeviceIsActiveOnTheTimerWhileTheDeviceIsSilent() throws {
        var run = try AlertRun("stale-device", ["max_silence_minutes": 60])
        #expect(run.script.evaluatesOnTimer)
        #expect(try run.keys(minute: 0, inside: 20) == [], "a fresh sample")
        #expect(try run.keys(minute: 0, inside: 20, nowMinute: 30, timer: true) == [], "a timer run within the limit")
        let silent = ScriptAlert(
            key: "stale", severity: "warning", message: "TH-1 has sent nothing for 75 minutes (last sample 2026-11-29T07:00:00Z, limit 60)",
            value: 75)
        #expect(try run.feed(Self.sample(minute: 0), now: Self.start.adding(seconds: 75 * 60), timer: true) == [silent])
        #expect(
            try run.feed(Self.sample(minute: 0), now: Self.start.adding(seconds: 120 * 60), timer: true).map(\.message)
                == ["TH-1 has sent nothing for 120 minutes (last sample 2026-11-29T07:00:00Z, limit 60)"],
            "still active on the next timer runs, the minutes growing")
        #expect(try run.keys(minute: 180, inside: 20) == [], "a fresh sample resolves it")
        #expect(
            try run.keys(minute: 100, inside: 20, nowMinute: 181) == [],
            "a back-filled old sample at ingest is no silence: the newest sample time counts")
        #expect(try run.keys(minute: 180, inside: 20, nowMinute: 239, timer: true) == [])
        #expect(try run.keys(minute: 180, inside: 20, nowMinute: 241, timer: true) == ["stale"])

        var newRule = try AlertRun("stale-device")
        #expect(
            try newRule.keys(minute: 0, inside: 20, nowMinute: 90, timer: true) == ["stale"],
            "a rule first evaluated on the timer judges the newest stored sample at once")
    }

    /// `thermostat script check Plugins/threshold/plugin.lua`, or a tenant uploading a copy of
    /// a plugin to edit later, gets the plugin's defaults like `require("threshold")` does.
    @Test func aCopyOfAPluginsSourceGetsItsDefaults() throws {
        let catalog = try Self.catalog()
        let plugin = try #require(catalog.plugins["threshold"])
        let runner = try ScriptRunner(catalog: catalog)
        let copy = try runner.load(source: plugin.source, name: "my-threshold", hook: .alert)
        #expect(.table(copy.defaultConfig) == plugin.defaultConfig)
        #expect(try runner.evaluate(copy, sample: Self.sample(inside: 29), state: [:], context: Self.context()).alerts.count == 1)
        let edited = try runner.load(source: plugin.source + "\n-- mine", name: "edited", hook: .alert)
        #expect(edited.defaultConfig.isEmpty, "an edited copy is the tenant's own script")
    }

    @Test func aUserScriptCanRequireAndWrapAPlugin() throws {
        let runner = try ScriptRunner(catalog: Self.catalog())
        let script = try runner.load(
            source: """
                local threshold = require("threshold")
                return {
                  evaluate = function(sample, state, ctx)
                    if sample.mode == "OFF" then return {}, state end
                    local alerts
                    assert(ctx.config.hysteresis_c == 0.5 and ctx.config.field == "temp_inside_c", "threshold's defaults")
                    alerts, state = threshold.evaluate(sample, state, ctx)
                    for _, alert in ipairs(alerts) do alert.severity = "critical" end
                    return alerts, state
                  end,
                }
                """, name: "hot-office", hook: .alert)
        #expect(script.defaultConfig == (try Self.catalog().plugins["threshold"]?.defaultConfig).flatMap {
            if case .table(let fields) = $0 { fields } else { nil }
        })
        let context = Self.context(["high_c": 22, "low_c": false, "severity": .nil])
        let off = Self.sample(inside: 23, mode: .off, output: .off)
        #expect(try runner.evaluate(script, sample: off, state: [:], context: context).alerts.isEmpty)
        let hot = try runner.evaluate(script, sample: Self.sample(inside: 23), state: [:], context: context)
        #expect(hot.alerts.map(\.severity) == ["critical"])
        #expect(hot.alerts.map(\.key) == ["high"])
        #expect(hot.state["high"]?.doubleValue == 23, "the reading of the active condition")

        let handMade = try runner.load(
            source: """
                local threshold = require("threshold")
                return { evaluate = function(sample, state) return threshold.evaluate(sample, state, { config = { high_c = 22 } }) end }
                """, name: "hand-made-ctx", hook: .alert)
        #expect {
            _ = try runner.evaluate(handMade, sample: Self.sample(inside: 23), state: [:], context: context)
        } throws: { error in
            "\(error)".contains("threshold needs ctx.config.field")
        }

        #expect {
            _ = try runner.load(source: "local io = require('io') return { evaluate = print }", name: "escape", hook: .alert)
        } throws: { error in
            guard case ScriptError.lua(let lua) = error else { return false }
            return lua.chunk == "escape" && lua.line == 1 && lua.message.contains("only built-in plugins can be required")
        }
    }

    // MARK: Exports

    static let exportSamples = [
        sample(outside: -3.25),
        TelemetrySample(
            deviceSerial: #"odd,"serial""#, timestamp: start.adding(seconds: 60.25), mode: .auto, tempInside: 21.1,
            tempOutside: nil, setpoint: 22, hysteresis: 0.5, output: .off),
    ]

    @Test func csvHasAHeaderAndQuotesOnlyWhereNeeded() throws {
        let (runner, script, plugin) = try Self.load("csv")
        #expect(
            try runner.export(script, samples: Self.exportSamples, context: Self.context(plugin))
                == "device_id,timestamp,mode,temp_inside_c,temp_outside_c,setpoint_c,hysteresis_c,output\r\n"
                + "TH-1,2026-11-29T07:00:00Z,HEAT,20.5,-3.25,21,0.5,HEAT_ON\r\n"
                + #""odd,""serial""",2026-11-29T07:01:00.250Z,AUTO,21.1,,22,0.5,OFF"# + "\r\n")
        let semicolons = Self.context(plugin, ["separator": ";", "newline": "\n"])
        #expect(
            try runner.export(script, samples: [Self.exportSamples[0]], context: semicolons)
                == "device_id;timestamp;mode;temp_inside_c;temp_outside_c;setpoint_c;hysteresis_c;output\n"
                + "TH-1;2026-11-29T07:00:00Z;HEAT;20.5;-3.25;21;0.5;HEAT_ON\n")
    }

    @Test func ndjsonLinesAreJSONObjectsOfTheSample() throws {
        let (runner, script, plugin) = try Self.load("ndjson")
        let samples = Self.exportSamples + [Self.sample(inside: 0.1 + 0.2, serial: "q\"\\\n\u{1}é")]
        let output = try runner.export(script, samples: samples, context: Self.context(plugin))
        #expect(output.hasSuffix("\n"))
        let lines = output.split(separator: "\n", omittingEmptySubsequences: false).dropLast()
        #expect(lines.count == samples.count)
        #expect(
            lines.first.map { String($0) }
                == #"{"device_id":"TH-1","timestamp":"2026-11-29T07:00:00Z","mode":"HEAT","temp_inside_c":20.5,"#
                + #""temp_outside_c":-3.25,"setpoint_c":21,"hysteresis_c":0.5,"output":"HEAT_ON"}"#)
        for (line, sample) in zip(lines, samples) {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any], "\(line)")
            // JSONSerialization rounds some doubles on Linux; JSONDecoder reads them exactly.
            let exact = try JSONDecoder().decode([String: JSONValue].self, from: Data(line.utf8))
            func number(_ key: String) -> Double? {
                guard case .number(let number) = exact[key] else { return nil }
                return number
            }
            #expect(object.count == 8)
            #expect(object["device_id"] as? String == sample.deviceSerial)
            #expect(object["timestamp"] as? String == sample.timestamp.iso8601)
            #expect(object["mode"] as? String == sample.mode.rawValue)
            #expect(object["output"] as? String == sample.output.rawValue)
            #expect(number("temp_inside_c") == sample.tempInside, "numbers round-trip exactly")
            #expect(number("setpoint_c") == sample.setpoint)
            #expect(number("hysteresis_c") == sample.hysteresis)
            if let outside = sample.tempOutside {
                #expect(number("temp_outside_c") == outside)
            } else {
                #expect(object["temp_outside_c"] is NSNull)
            }
        }
    }

    @Test func influxLineProtocolWithNanosecondTimestamps() throws {
        let (runner, script, plugin) = try Self.load("influx-line-protocol")
        var precise = Self.sample(inside: 21, mode: .cool, output: .coolOn, serial: "lab 1,a=b")
        precise.timestamp = Timestamp(microseconds: Self.start.microseconds + 123_456)
        #expect(
            try runner.export(script, samples: [Self.exportSamples[0], precise], context: Self.context(plugin))
                == "thermostat,device=TH-1 temp_inside_c=20.5,temp_outside_c=-3.25,setpoint_c=21,hysteresis_c=0.5,"
                + #"mode="HEAT",output="HEAT_ON" 1795935600000000000"# + "\n"
                + #"thermostat,device=lab\ 1\,a\=b temp_inside_c=21,setpoint_c=21,hysteresis_c=0.5,"#
                + #"mode="COOL",output="COOL_ON" 1795935600123456000"# + "\n")
        var endOfSecond = Self.sample()
        endOfSecond.timestamp = Timestamp(microseconds: Self.start.microseconds + 999_999)
        #expect(try runner.export(script, samples: [endOfSecond], context: Self.context()).hasSuffix(" 1795935600999999000\n"))
    }

    // MARK: Policies

    @Test(arguments: [
        ("free", TierLimits(
            maxDevices: 3, maxSamples: 100_000, retentionDays: 30, ingestPerMinute: 60,
            downsample: [.init(afterDays: 7, resolution: "1h")!], scriptMemoryMegabytes: 8), QuotaAction.reject),
        ("standard", TierLimits(
            maxDevices: 25, maxSamples: 5_000_000, retentionDays: 365, ingestPerMinute: 120,
            downsample: [.init(afterDays: 30, resolution: "5m")!, .init(afterDays: 180, resolution: "1h")!],
            scriptMemoryMegabytes: 16), .dropOldest),
        ("pro", TierLimits(
            maxDevices: 500, maxSamples: 200_000_000, retentionDays: 1825, ingestPerMinute: 600,
            downsample: [.init(afterDays: 365, resolution: "5m")!], scriptMemoryMegabytes: 32), .dropOldest),
    ])
    func tierPolicy(_ tier: String, _ expected: TierLimits, _ overSamples: QuotaAction) throws {
        let (runner, script, _) = try Self.load(tier)
        let limits = try runner.limits(script, context: Self.context())
        #expect(limits == expected)
        let devices = Int64(limits.maxDevices)
        let samples = Int64(limits.maxSamples)
        let tooManySamples: LuaValue = ["devices": .integer(devices), "samples": .integer(samples + 1)]
        #expect(try runner.onOverQuota(script, usage: tooManySamples, limits: limits, context: Self.context()) == overSamples)
        let tooManyDevices: LuaValue = ["devices": .integer(devices + 1), "samples": 0]
        #expect(
            try runner.onOverQuota(script, usage: tooManyDevices, limits: limits, context: Self.context()) == .reject,
            "dropping old samples cannot make room for another device")
    }
}
