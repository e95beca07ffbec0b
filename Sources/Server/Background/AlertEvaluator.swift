import Crypto
import Foundation
import Logging
import PlatformCore
import ScriptWorkers
import Scripting
import ServiceLifecycle
import Storage
import Synchronization

/// Evaluates alert rules after the commit, off the ingest path. Committed samples of tenants
/// with enabled rules wait in the store's alert queue, a batch per commit and tenant (written in
/// the samples' own transaction); each pass takes a tenant's oldest batches (in commit order),
/// runs every rule's script on them in the tenant's Lua worker, and stores the alerts, per-(rule,
/// device) states, notifications and the consumed batches in one transaction. A crash before
/// that commit replays the pass; after it, nothing is left to replay. So no committed sample
/// escapes evaluation and none is evaluated twice into the state.
///
/// Commits wake it and name their tenants (it is a `TelemetryEventPublisher`); a one-second poll
/// of the queue picks up what a crash or another process left. Each tenant runs on its own (at most one pass per tenant at a time,
/// up to `concurrentTenants` tenants at once), so one tenant's slow scripts never hold up
/// another's. A timer (`THERMOSTAT_ALERT_TIMER_SECONDS`) evaluates `timer = true` scripts on
/// devices' newest samples, puts silent devices in `no_data`, fires pending alerts whose
/// `for_seconds` elapsed and sends reminders.
final class AlertEvaluator: Service, TelemetryEventPublisher, Sendable {
    private let store: any PlatformStore
    private let engine: ScriptEngine
    private let catalog: PluginCatalog
    private let deliveries: AlertDeliveryService
    private let digest: OperatorDigest
    private let gate: TenantGate
    private let clock: any WallClock
    private let logger: Logger
    private let timerPeriod: Duration
    private let publicURL: String
    private let wakeups: AsyncStream<Void>
    private let wakeupContinuation: AsyncStream<Void>.Continuation
    private let scheduling = Mutex(Scheduling())
    private let schema: SchemaReadiness
    /// The timer's completed passes per tenant, for `GET /api/alerts/status/`.
    let status = Mutex(Status())

    /// Samples one pass takes from a tenant's queue (whole batches: it stops at the batch that
    /// reaches this many). Much of a pass's cost is per rule and device (the states read, sent
    /// to the worker, run there, written back), so under load a pass takes everything that
    /// arrived while the one before ran; this bounds its transaction when a backlog waits.
    static let passSize = 4000
    /// Samples one worker call carries at most. A call's time budget is shared by its rules
    /// over all its samples, so this is what bounds a rule's time for a sample from below; a
    /// larger pass makes several calls, each carrying on the states the one before left.
    static let samplesPerCall = 1000
    /// Passes a tenant runs before its slot goes back to the scheduler (a backlog of 12,000
    /// samples at most), so other tenants with work get their turn.
    static let passesPerTurn = 3
    static let concurrentTenants = 4
    /// How long a tenant whose queue a pass emptied waits before its next pass. Most of a pass's
    /// cost is per rule and device (their states read, sent to the worker, written back), not
    /// per sample: passes started by every commit carried a few samples per device under load.
    /// A tenant with a backlog (a full pass) goes on at once.
    static let passSpacing: Duration = .milliseconds(250)

    private struct Scheduling {
        var busy: Set<UUID> = []
        var timerDue: Set<UUID> = []
        /// Tenants with samples committed since their last pass started (from the commits'
        /// announcements, so no query is needed to find them).
        var dirty: Set<UUID> = []
        var lastTimer: ContinuousClock.Instant?
        var lastPoll: ContinuousClock.Instant?
        /// Tenants whose last pass emptied their queue, and when their next may start.
        var notBefore: [UUID: ContinuousClock.Instant] = [:]
    }

    struct Status: Sendable {
        /// Completed timer passes per tenant, and when the last one ran.
        var timerRuns: [UUID: (count: Int, at: Timestamp)] = [:]
    }

    init(
        store: any PlatformStore, engine: ScriptEngine, catalog: PluginCatalog, deliveries: AlertDeliveryService,
        digest: OperatorDigest, gate: TenantGate, clock: any WallClock, schema: SchemaReadiness, timerPeriod: Duration,
        publicURL: String, logger: Logger
    ) {
        self.schema = schema
        self.digest = digest
        self.gate = gate
        self.store = store
        self.engine = engine
        self.catalog = catalog
        self.deliveries = deliveries
        self.clock = clock
        self.timerPeriod = timerPeriod
        self.publicURL = publicURL
        self.logger = logger
        (wakeups, wakeupContinuation) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    /// New samples were committed: their tenants' queues want a pass.
    func publish(_ records: [TelemetryRecord]) {
        guard !records.isEmpty else { return }
        scheduling.withLock { state in
            for record in records { state.dirty.insert(record.tenantID) }
        }
        wakeupContinuation.yield()
    }

    /// Graceful shutdown cancels the passes in flight rather than waiting for them (a database
    /// that does not answer would hold the shutdown past its drain time): a pass stores nothing
    /// until its one transaction commits, so its samples stay queued for the next start.
    func run() async throws {
        await cancelWhenGracefulShutdown {
            await self.schema.wait()
            await withDiscardingTaskGroup { group in
                group.addTask {
                    while (try? await Task.sleep(for: .seconds(1))) != nil { self.wakeupContinuation.yield() }
                }
                // Ends when shutdown cancels the service (and with it the timer above).
                for await _ in self.wakeups {
                    await self.schedule(into: &group)
                }
            }
        }
    }

    /// Starts work for tenants with new samples (and, when the timer is due, for tenants with
    /// enabled rules or open alerts) that are not busy, up to the concurrency limit. Once a
    /// second it also asks the store which tenants have queued samples, for what a crash or
    /// another process left.
    private func schedule(into group: inout DiscardingTaskGroup) async {
        do {
            let timerTenants = try await dueTimerTenants()
            let now = ContinuousClock.now
            let pollDue = scheduling.withLock { state -> Bool in
                guard state.lastPoll.map({ now - $0 >= .seconds(1) }) ?? true else { return false }
                state.lastPoll = now
                return true
            }
            let queued = pollDue ? try await store.alertQueueTenants(limit: 1000) : []
            let started = scheduling.withLock { state -> [(UUID, Bool)] in
                state.timerDue.formUnion(timerTenants.filter { !gate.isDisabled($0) })
                state.dirty.formUnion(queued)
                var chosen: [(UUID, Bool)] = []
                // A disabled tenant's samples wait (and its timer rests) until it is enabled again.
                for tenant in Array(state.timerDue.union(state.dirty)) where !state.busy.contains(tenant) && !gate.isDisabled(tenant) {
                    guard state.busy.count < Self.concurrentTenants else { break }
                    let timer = state.timerDue.contains(tenant)
                    if !timer, let notBefore = state.notBefore[tenant], notBefore > now { continue }
                    state.notBefore[tenant] = nil
                    state.busy.insert(tenant)
                    state.dirty.remove(tenant)
                    state.timerDue.remove(tenant)
                    chosen.append((tenant, timer))
                }
                return chosen
            }
            for (tenant, timer) in started {
                group.addTask {
                    let backlog = await self.work(tenant: tenant, timer: timer)
                    self.scheduling.withLock { state in
                        state.busy.remove(tenant)
                        if backlog {
                            state.dirty.insert(tenant)
                        } else {
                            state.notBefore[tenant] = .now + Self.passSpacing
                        }
                    }
                    // The slot is free for another tenant now.
                    self.wakeupContinuation.yield()
                    if !backlog {
                        // Samples committed meanwhile are picked up once the spacing has passed.
                        try? await Task.sleep(for: Self.passSpacing)
                        self.scheduling.withLock { state in
                            if let notBefore = state.notBefore[tenant], notBefore <= .now { state.notBefore[tenant] = nil }
                        }
                        self.wakeupContinuation.yield()
                    }
                }
            }
        } catch {
            note(failure: "alert scheduling failed: \(error)")
        }
    }

    private func dueTimerTenants() async throws -> [UUID] {
        let now = ContinuousClock.now
        let due = scheduling.withLock { state -> Bool in
            guard state.lastTimer.map({ now - $0 >= timerPeriod }) ?? true else { return false }
            state.lastTimer = now
            return true
        }
        return due ? try await store.tenantsWithAlertWork() : []
    }

    /// A tenant's timer pass when due, then its queue passes; true when samples may still be
    /// waiting (its last pass was full).
    func work(tenant: UUID, timer: Bool) async -> Bool {
        do {
            if timer {
                try await timerPass(tenantID: tenant)
                let now = clock.now()
                status.withLock { $0.timerRuns[tenant] = (($0.timerRuns[tenant]?.count ?? 0) + 1, now) }
            }
            var readAhead: [QueuedBatch]?
            for _ in 0..<Self.passesPerTurn {
                readAhead = try await queuePass(tenantID: tenant, queued: readAhead)
                guard readAhead != nil else { return false }
            }
            return true
        } catch {
            note(failure: "alert evaluation failed for tenant \(tenant): \(error)")
            return false
        }
    }

    private func note(failure: String) {
        // A pass cut short by shutdown did not fail: its samples wait for the next start.
        guard !Task.isCancelled else { return }
        logger.warning("\(failure)")
        digest.jobFailed("alert evaluation", error: failure)
    }

    // MARK: Passes

    /// Evaluates the next queued batches of one tenant (`queued` when the previous pass read
    /// them ahead), each device's samples in time order. When this pass was full, more may be
    /// waiting: then it reads the following batches while its commit runs (the two wait for
    /// different things under load) and returns them for the next pass; nil when the queue is
    /// drained. A failed commit discards the read-ahead, and the next pass reads from the queue
    /// again.
    func queuePass(tenantID: UUID, queued readAhead: [QueuedBatch]?) async throws -> [QueuedBatch]? {
        // Side by side: under load each read waits tens of milliseconds for a connection and a
        // thread, and a pass's reads are independent.
        async let rulesRead = store.alertRules(tenantID: tenantID)
        async let queuedRead =
            if let readAhead { readAhead } else {
                try await store.queuedBatches(tenantID: tenantID, after: nil, sampleLimit: Self.passSize)
            }
        let rules = try await rulesRead.filter(\.enabled)
        guard !rules.isEmpty else {
            _ = try await store.clearAlertQueue(tenantID: tenantID)
            return nil
        }
        let queued = try await queuedRead
        guard let last = queued.last else { return nil }
        var samples: [String: [TelemetrySample]] = [:]
        var sampleCount = 0
        for batch in queued {
            sampleCount += batch.samples.count
            for sample in batch.samples { samples[sample.deviceSerial, default: []].append(sample) }
        }
        let pass = try await Pass.load(for: tenantID, serials: Array(samples.keys), evaluator: self)
        // Commits can queue a device's samples out of time order (a late retry, a backfill).
        let devices = samples.keys.sorted().map { serial in
            (serial, samples[serial]!.sorted { $0.timestamp < $1.timestamp })
        }
        try await pass.evaluate(rules, devices: devices, timer: false)
        guard sampleCount >= Self.passSize else {
            try await pass.commit(consumed: queued.map(\.sequence))
            return nil
        }
        async let next = store.queuedBatches(tenantID: tenantID, after: last.sequence, sampleLimit: Self.passSize)
        try await pass.commit(consumed: queued.map(\.sequence))
        return try await next
    }

    /// The timer's work for one tenant: timer scripts on devices' newest samples, no-data
    /// checks, `for_seconds` promotions and reminders; open alerts of disabled rules, or of
    /// devices a rule no longer watches, resolve quietly.
    func timerPass(tenantID: UUID) async throws {
        let rules = try await store.alertRules(tenantID: tenantID)
        let allDevices = try await store.devices(tenantID: tenantID)
        let devices = allDevices.filter { $0.revokedAt == nil }
        let pass = try await Pass.load(for: tenantID, serials: devices.map(\.serial), devices: allDevices, evaluator: self)
        let latest = try await store.latestSamples(tenantID: tenantID)
        let enabled = rules.filter(\.enabled)
        let withSamples = devices.compactMap { device in latest[device.serial].map { (device.serial, [$0]) } }
        if !withSamples.isEmpty { try await pass.evaluate(enabled, devices: withSamples, timer: true) }
        for rule in enabled {
            let watched = devices.filter { rule.applies(to: $0.serial) }
            if let noDataSeconds = rule.noDataSeconds {
                for device in watched {
                    let lastHeard = device.lastSeen ?? device.createdAt
                    if pass.now.secondsSinceEpoch - lastHeard.secondsSinceEpoch >= Double(noDataSeconds) {
                        pass[rule, device.serial].noData(since: lastHeard, at: pass.now)
                    }
                }
            }
        }
        pass.tickOpenAlerts(rules: rules)
        try await pass.commit(consumed: [])
    }

    // MARK: One pass

    /// Everything one pass reads, the trackers it drives, and what it stores.
    private final class Pass: @unchecked Sendable {
        let tenant: Tenant
        let workerTenant: WorkerTenant
        let now: Timestamp
        let evaluator: AlertEvaluator
        let deviceNames: [String: String]
        let openAlerts: [UUID: [String: [Alert]]]
        let states: [UUID: [String: RuleDeviceState]]
        let silences: [AlertSilence]
        let scripts: [String: (Script, ScriptVersion)]
        var trackers: [TrackerKey: AlertTracker] = [:]
        var originalStates: [TrackerKey: RuleDeviceState] = [:]
        var scriptOutcomes: [UUID: ScriptOutcome] = [:]
        /// The (rule, device)s whose script failed in this pass: their later samples in it are
        /// consumed without being evaluated.
        var failed: Set<TrackerKey> = []

        struct TrackerKey: Hashable {
            var rule: UUID
            var serial: String
        }

        init(
            tenant: Tenant, workerTenant: WorkerTenant, now: Timestamp, evaluator: AlertEvaluator, deviceNames: [String: String],
            openAlerts: [Alert], states: [RuleDeviceState], silences: [AlertSilence], scripts: [String: (Script, ScriptVersion)]
        ) {
            self.tenant = tenant
            self.workerTenant = workerTenant
            self.now = now
            self.evaluator = evaluator
            self.deviceNames = deviceNames
            var open: [UUID: [String: [Alert]]] = [:]
            for alert in openAlerts { open[alert.ruleID, default: [:]][alert.deviceSerial, default: []].append(alert) }
            self.openAlerts = open
            var byRule: [UUID: [String: RuleDeviceState]] = [:]
            for state in states { byRule[state.ruleID, default: [:]][state.deviceSerial] = state }
            self.states = byRule
            self.silences = silences
            self.scripts = scripts
        }

        /// Reads what a pass needs; `devices` when the caller has already read the tenant's.
        static func load(for tenantID: UUID, serials: [String], devices known: [Device]? = nil, evaluator: AlertEvaluator)
            async throws -> Pass
        {
            let store = evaluator.store
            let now = evaluator.clock.now()
            // The reads are independent: side by side, a pass waits for one round trip, not six.
            async let tenantRead = store.tenant(id: tenantID)
            async let devicesRead = known == nil ? store.devices(tenantID: tenantID) : []
            async let activeRead = store.activeScripts(tenantID: tenantID, hook: ScriptHook.alert.rawValue)
            async let openAlertsRead = store.openAlerts(tenantID: tenantID)
            async let statesRead = store.ruleDeviceStates(tenantID: tenantID, serials: serials)
            async let silencesRead = store.silences(tenantID: tenantID, activeAt: now)
            guard let tenant = try await tenantRead else { throw PlatformError.notFound("Tenant") }
            let readDevices = try await devicesRead
            let devices = known ?? readDevices
            let active = try await activeRead
            return Pass(
                tenant: tenant, workerTenant: await evaluator.engine.workerTenant(tenant), now: now, evaluator: evaluator,
                deviceNames: Dictionary(devices.map { ($0.serial, $0.name) }, uniquingKeysWith: { $1 }),
                openAlerts: try await openAlertsRead, states: try await statesRead, silences: try await silencesRead,
                scripts: Dictionary(active.map { ($0.0.name, $0) }, uniquingKeysWith: { $1 }))
        }

        /// The tracker of a rule on a device, made from the stored alerts and state on first use.
        subscript(rule: AlertRule, serial: String) -> AlertTracker {
            get { trackers[TrackerKey(rule: rule.id, serial: serial)] ?? makeTracker(rule, serial) }
            set { trackers[TrackerKey(rule: rule.id, serial: serial)] = newValue }
        }

        private func makeTracker(_ rule: AlertRule, _ serial: String) -> AlertTracker {
            let key = TrackerKey(rule: rule.id, serial: serial)
            let state = states[rule.id]?[serial]
            if let state { originalStates[key] = state }
            let tracker = AlertTracker(
                rule: rule, serial: serial, openAlerts: openAlerts[rule.id]?[serial] ?? [], deviceState: state,
                silences: silences)
            trackers[key] = tracker
            return tracker
        }

        /// The script a rule runs: the tenant's active alert script of that name with the rule's
        /// config over its own, or else the built-in plugin of that name.
        private func script(for rule: AlertRule) -> Result<(WorkerScript, String, Script?), AlertScriptProblem> {
            if let (script, version) = scripts[rule.script] {
                if let until = script.quarantinedUntil, until > now {
                    return .failure(
                        AlertScriptProblem(
                            "the script '\(script.name)' is quarantined until \(until.iso8601) after repeated failures: "
                                + (script.lastError ?? "")))
                }
                let id = Self.loadedID(rule: rule.id, script: "script:\(script.id):\(version.version)")
                let config = Self.merged(version.configJSON, under: rule.configJSON)
                return .success(
                    (WorkerScript(id: id, version: version.version, name: script.name, configJSON: config, source: nil), version.source, script))
            }
            if let plugin = evaluator.catalog.plugins[rule.script], plugin.hook == .alert {
                let id = Self.loadedID(rule: rule.id, script: "plugin:\(plugin.name):\(plugin.source.count)")
                return .success(
                    (WorkerScript(id: id, version: 1, name: plugin.name, configJSON: rule.configJSON, source: nil), plugin.source, nil))
            }
            return .failure(AlertScriptProblem("the alert script '\(rule.script)' has no active version"))
        }

        /// The id a rule's script is loaded under in the worker: one per rule and script
        /// version, so rules sharing a script keep their own config without reloading.
        private static func loadedID(rule: UUID, script: String) -> UUID {
            let digest = Array(SHA256.hash(data: Data("\(rule.uuidString)/\(script)".utf8)))
            return UUID(
                uuid: (
                    digest[0], digest[1], digest[2], digest[3], digest[4], digest[5], digest[6], digest[7], digest[8], digest[9],
                    digest[10], digest[11], digest[12], digest[13], digest[14], digest[15]
                ))
        }

        /// The rule's config object laid over the script's, key by key.
        private static func merged(_ base: String, under top: String) -> String {
            guard let baseObject = try? JSONSerialization.jsonObject(with: Data(base.utf8)) as? [String: Any],
                let topObject = try? JSONSerialization.jsonObject(with: Data(top.utf8)) as? [String: Any]
            else { return top }
            let merged = baseObject.merging(topObject) { $1 }
            guard let data = try? JSONSerialization.data(withJSONObject: merged, options: [.sortedKeys]) else { return top }
            return String(decoding: data, as: UTF8.self)
        }

        /// Runs `rules` over devices' samples (each rule on the devices it watches) in worker
        /// calls of at most `samplesPerCall` samples, one after another (a device's samples may
        /// span two calls: the second carries on the state the first left), and feeds the
        /// trackers. A (rule, device) that failed sits out the rest of the pass. Throws when no
        /// worker can run them: then the pass stops and its samples stay queued.
        func evaluate(_ rules: [AlertRule], devices: [(String, [TelemetrySample])], timer: Bool) async throws {
            var runnable: [RunnableRule] = []
            for rule in rules where devices.contains(where: { rule.applies(to: $0.0) }) {
                switch script(for: rule) {
                case .success(let (script, source, tenantScript)):
                    runnable.append(RunnableRule(rule: rule, script: script, source: source, tenantScript: tenantScript))
                case .failure(let problem):
                    guard !timer else { continue }
                    for (serial, _) in devices where rule.applies(to: serial) {
                        self[rule, serial].fail(problem.message, at: now, sampleArrived: true)
                    }
                }
            }
            guard !runnable.isEmpty else { return }
            for call in Self.calls(devices, samplesPerCall: AlertEvaluator.samplesPerCall) {
                try await evaluate(runnable, call: call, timer: timer)
            }
        }

        /// A rule whose script could be found, with what the worker needs to run it.
        struct RunnableRule {
            var rule: AlertRule
            var script: WorkerScript
            var source: String
            var tenantScript: Script?
        }

        /// One device's samples in one worker call.
        typealias DevicePart = (serial: String, samples: ArraySlice<TelemetrySample>)

        /// The devices' samples cut into worker calls of at most `samplesPerCall` samples, in
        /// order: whole devices where they fit, a device with more than a call's room split
        /// across consecutive calls (its earlier samples first).
        static func calls(_ devices: [(String, [TelemetrySample])], samplesPerCall: Int) -> [[DevicePart]] {
            var calls: [[DevicePart]] = []
            var current: [DevicePart] = []
            var room = samplesPerCall
            for (serial, samples) in devices {
                var rest = samples[...]
                while !rest.isEmpty {
                    if room == 0 {
                        calls.append(current)
                        current = []
                        room = samplesPerCall
                    }
                    let part = rest.prefix(room)
                    current.append((serial, part))
                    room -= part.count
                    rest = rest.dropFirst(part.count)
                }
            }
            if !current.isEmpty { calls.append(current) }
            return calls
        }

        /// One worker call: the rules that still have a device to run on in it.
        private func evaluate(_ candidates: [RunnableRule], call devices: [DevicePart], timer: Bool) async throws {
            func runs(_ rule: AlertRule, on serial: String) -> Bool {
                rule.applies(to: serial) && !failed.contains(TrackerKey(rule: rule.id, serial: serial))
            }
            let runnable = candidates.filter { entry in devices.contains { runs(entry.rule, on: $0.serial) } }
            guard !runnable.isEmpty else { return }
            let job = EvaluateJob(
                tenant: workerTenant, now: now, timer: timer, budgetMilliseconds: 0,
                devices: devices.map { serial, samples in
                    EvaluateJob.Device(serial: serial, name: deviceNames[serial] ?? serial, sampleCount: samples.count)
                },
                rules: runnable.map { entry in
                    EvaluateJob.Rule(
                        script: entry.script,
                        states: devices.map { serial, _ in
                            runs(entry.rule, on: serial) ? self[entry.rule, serial].deviceState.stateJSON : nil
                        })
                },
                samples: devices.flatMap(\.samples))
            var answers: [RuleEvaluation]
            do {
                switch try await evaluator.engine.evaluate(job, sources: runnable.map(\.source)) {
                case .evaluated(let results) where results.count == runnable.count: answers = results
                case .failed(let message): answers = runnable.map { _ in .failed(message) }
                default: answers = runnable.map { _ in .failed("the worker answered out of turn") }
                }
            } catch let error as WorkerCallError where error != .retry {
                answers = runnable.map { _ in .failed(error.description) }
            }
            for (entry, answer) in zip(runnable, answers) {
                func failures(_ message: String) -> [DeviceEvaluation?] {
                    devices.map { serial, _ in
                        runs(entry.rule, on: serial) ? DeviceEvaluation(steps: [], stateJSON: "{}", failure: message) : nil
                    }
                }
                let verdicts: [DeviceEvaluation?]
                switch answer {
                case .skipped: continue
                case .evaluated(let found) where found.count == devices.count: verdicts = found
                case .evaluated: verdicts = failures("the worker answered out of turn")
                case .failed(let message): verdicts = failures(message)
                }
                apply(verdicts, of: entry.rule, tenantScript: entry.tenantScript, devices: devices, timer: timer)
            }
        }

        /// Feeds one rule's verdicts to its trackers and notes its script's outcome.
        private func apply(
            _ verdicts: [DeviceEvaluation?], of rule: AlertRule, tenantScript: Script?, devices: [DevicePart], timer: Bool
        ) {
            var firstFailure: String?
            var failedInput = ""
            for ((serial, samples), verdict) in zip(devices, verdicts) {
                guard let verdict, rule.applies(to: serial) else { continue }
                var tracker = self[rule, serial]
                for step in verdict.steps {
                    tracker.apply(step, at: now, script: verdict.stateJSON, sampleArrived: !timer)
                }
                if let failure = verdict.failure {
                    if firstFailure == nil {
                        firstFailure = failure
                        // The sample it failed at; the part's first where the failure is not one sample's.
                        let input = verdict.failedSample.flatMap { samples.dropFirst($0).first } ?? samples.first
                        failedInput = input.map { SampleBridge.value($0).jsonText } ?? ""
                    }
                    tracker.fail(failure, at: now, sampleArrived: !timer)
                    failed.insert(TrackerKey(rule: rule.id, serial: serial))
                }
                self[rule, serial] = tracker
            }
            guard let tenantScript else { return }
            if let failure = firstFailure {
                scriptOutcomes[tenantScript.id] = ScriptOutcome(failureOf: tenantScript, error: failure, input: failedInput, now: now)
            } else if tenantScript.failureCount > 0, scriptOutcomes[tenantScript.id] == nil {
                scriptOutcomes[tenantScript.id] = ScriptOutcome(recoveryOf: tenantScript)
            }
        }

        /// Ticks every (rule, device) with open alerts; those of disabled rules, or
        /// of devices their rule no longer watches, resolve quietly.
        func tickOpenAlerts(rules: [AlertRule]) {
            let byID = Dictionary(rules.map { ($0.id, $0) }, uniquingKeysWith: { $1 })
            for (ruleID, devices) in openAlerts {
                for serial in devices.keys {
                    guard let rule = byID[ruleID], rule.enabled, rule.applies(to: serial) else {
                        if let rule = byID[ruleID] { self[rule, serial].close(at: now) }
                        continue
                    }
                    self[rule, serial].tick(at: now)
                }
            }
        }

        /// Stores the pass's changes and consumed queue batches in one transaction, then records
        /// script outcomes and wakes delivery.
        func commit(consumed: [Int64]) async throws {
            let store = evaluator.store
            var changes = AlertChanges(tenantID: tenant.id, consumed: consumed)
            let rules = Dictionary(trackers.values.map { ($0.rule.id, $0.rule) }, uniquingKeysWith: { $1 })
            for (key, tracker) in trackers {
                if tracker.deviceState != originalStates[key] { changes.states.append(tracker.deviceState) }
                changes.alerts.append(contentsOf: tracker.changedAlerts.values)
                guard let rule = rules[key.rule] else { continue }
                for notification in tracker.notifications {
                    for channel in rule.channelIDs {
                        let id = UUID()
                        let payload = NotificationPayload(
                            delivery: id, event: notification.event, alert: notification.alert, rule: rule,
                            deviceName: deviceNames[key.serial], tenant: tenant, publicURL: evaluator.publicURL)
                        changes.deliveries.append(
                            AlertDelivery(
                                id: id, tenantID: tenant.id, alertID: notification.alert.id, channelID: channel,
                                event: notification.event, nextAttemptAt: now, payloadJSON: payload.json, createdAt: now))
                    }
                }
            }
            try await store.applyAlertChanges(changes)
            for outcome in scriptOutcomes.values {
                try? await store.recordScriptOutcome(
                    tenantID: tenant.id, scriptID: outcome.scriptID, failureCount: outcome.failureCount, error: outcome.error,
                    input: outcome.input, quarantinedUntil: outcome.quarantinedUntil)
            }
            if !changes.deliveries.isEmpty { evaluator.deliveries.wake() }
        }
    }
}

/// Why a rule's script cannot run.
struct AlertScriptProblem: Error {
    var message: String

    init(_ message: String) {
        self.message = message
    }
}
