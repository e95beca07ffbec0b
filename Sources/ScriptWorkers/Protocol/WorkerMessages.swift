import Foundation
import NIOCore
import PlatformCore
import Scripting

/// The tenant a worker call runs for: who it is (for `ctx.tenant`) and the memory cap of its VM.
public struct WorkerTenant: Sendable, Hashable, Codable {
    public var id: UUID
    public var slug: String
    public var tier: String
    public var memoryBytes: Int

    public init(id: UUID, slug: String, tier: String, memoryBytes: Int) {
        self.id = id
        self.slug = slug
        self.tier = tier
        self.memoryBytes = memoryBytes
    }
}

/// One version of a tenant's script as a worker loads it. The source travels only when the
/// worker may not hold the version yet (a new worker, or one that let it go).
public struct WorkerScript: Sendable, Hashable {
    public var id: UUID
    public var version: Int
    public var name: String
    public var configJSON: String
    public var source: String?

    public init(id: UUID, version: Int, name: String, configJSON: String, source: String?) {
        self.id = id
        self.version = version
        self.name = name
        self.configJSON = configJSON
        self.source = source
    }
}

/// The hot-path request: one ingest script over the samples of one or more requests (each a
/// part, judged on its own), in one round trip.
public struct TransformCall: Sendable, Equatable {
    public var tenant: WorkerTenant
    public var script: WorkerScript
    /// Wall-clock time the worker may spend on the whole call before it gives up on its own
    /// (the supervisor's deadline, which kills the worker, lies beyond it).
    public var budgetMilliseconds: Int
    public var parts: [TransformPart]

    public init(tenant: WorkerTenant, script: WorkerScript, budgetMilliseconds: Int, parts: [TransformPart]) {
        self.tenant = tenant
        self.script = script
        self.budgetMilliseconds = budgetMilliseconds
        self.parts = parts
    }

    /// A call for one request's samples.
    public init(tenant: WorkerTenant, script: WorkerScript, now: Timestamp, budgetMilliseconds: Int, samples: [TelemetrySample]) {
        self.init(tenant: tenant, script: script, budgetMilliseconds: budgetMilliseconds, parts: [TransformPart(now: now, samples: samples)])
    }
}

/// One request's samples in a transform call, with the time its `ctx.now` shows.
public struct TransformPart: Sendable, Equatable {
    public var now: Timestamp
    public var samples: [TelemetrySample]

    public init(now: Timestamp, samples: [TelemetrySample]) {
        self.now = now
        self.samples = samples
    }
}

/// What one ingest script did to one part of a call.
public enum TransformResult: Sendable, Equatable {
    /// Every sample passed; the batch as the script left it.
    case transformed([TelemetrySample])
    /// The script rejected sample `index` (the whole request is refused).
    case rejected(index: Int, reason: String)
    /// The script failed on sample `index` (nil: it does not load); the batch stays as sent.
    case failed(index: Int?, error: String)
    /// The worker does not hold this version: send it again with its source.
    case needsSource
}

extension TransformResult {
    /// Whether this can be the answer for `part`: the part's samples, in order (a transform
    /// changes neither a sample's device nor its time), or an index inside it. A worker runs
    /// hostile code, so the server checks what it answers before using it.
    func fits(_ part: TransformPart) -> Bool {
        switch self {
        case .transformed(let samples):
            samples.count == part.samples.count
                && zip(samples, part.samples).allSatisfy { $0.deviceSerial == $1.deviceSerial && $0.timestamp == $1.timestamp }
        case .rejected(let index, _): part.samples.indices.contains(index)
        case .failed(let index, _): index.map(part.samples.indices.contains) ?? true
        case .needsSource: true
        }
    }
}

/// The requests that are not on the ingest hot path; they travel as JSON.
public enum WorkerJob: Sendable, Equatable, Codable {
    /// Compile `source` in a fresh VM and check its hook's contract.
    case validate(source: String, name: String, hook: ScriptHook, memoryBytes: Int)
    /// Try a script on samples in a fresh VM, changing nothing (the dry-run API and `script check`).
    case dryRun(DryRunJob)
    /// A tier policy's limits for a tenant, with its `on_over_quota` answer at the limits; the
    /// policy's source when given (read from disk by the server, so edits apply without a
    /// restart), else the one the worker loaded at start.
    case tierLimits(tier: String, tenant: WorkerTenant, source: String?)
    /// A piece of an export, rendered by the tenant's warm VM.
    case export(ExportJob)
}

/// A tenant's alert rules over some devices, in one round trip: the devices with their samples
/// in time order (or, on the timer, each device's newest sample), sent once, and for each rule
/// its script and its state on each device it watches. It crosses the pipe in binary
/// (`WorkerCodec`), the samples device after device.
public struct EvaluateJob: Sendable, Equatable {
    /// One device's part of the job.
    public struct Device: Sendable, Equatable {
        public var serial: String
        public var name: String
        /// How many of the job's samples are this device's.
        public var sampleCount: Int

        public init(serial: String, name: String, sampleCount: Int) {
            self.serial = serial
            self.name = name
            self.sampleCount = sampleCount
        }
    }

    /// One rule of the job.
    public struct Rule: Sendable, Equatable {
        /// The rule's script, under the rule's own id (so each rule keeps its own loaded copy
        /// and config) with the rule's configuration over the script's.
        public var script: WorkerScript
        /// Per device of the job, the rule's state on it as JSON; nil where the rule does not
        /// watch that device.
        public var states: [String?]

        public init(script: WorkerScript, states: [String?]) {
            self.script = script
            self.states = states
        }
    }

    public var tenant: WorkerTenant
    public var now: Timestamp
    /// An evaluation on the platform's timer: scripts without `timer = true` are skipped.
    public var timer: Bool
    /// Wall-clock time for the whole job; each rule gets an equal share of it, so one slow
    /// rule fails alone instead of starving the others.
    public var budgetMilliseconds: Int
    public var devices: [Device]
    public var rules: [Rule]
    public var samples: [TelemetrySample]

    public init(
        tenant: WorkerTenant, now: Timestamp, timer: Bool, budgetMilliseconds: Int, devices: [Device], rules: [Rule],
        samples: [TelemetrySample]
    ) {
        self.tenant = tenant
        self.now = now
        self.timer = timer
        self.budgetMilliseconds = budgetMilliseconds
        self.devices = devices
        self.rules = rules
        self.samples = samples
    }
}

/// What one rule of an `EvaluateJob` produced.
public enum RuleEvaluation: Sendable, Equatable, Codable {
    /// Per device of the job, the verdict; nil where the rule does not watch the device.
    case evaluated([DeviceEvaluation?])
    /// A timer job met a script without `timer = true`.
    case skipped
    /// The script does not load.
    case failed(String)
}

/// What an alert rule's script said about one device of an `EvaluateJob`: the conditions active
/// after each sample that changed their keys, in order (consecutive samples reporting the same
/// keys make one step, with the last one's messages and values), and the state after the last
/// successful sample. A failure ends the device's part at the sample that failed.
public struct DeviceEvaluation: Sendable, Equatable, Codable {
    public var steps: [[ScriptAlert]]
    public var stateJSON: String
    public var failure: String?
    /// Where in the device's part the failure happened (0 for its first sample), or nil when it
    /// is not one sample's (the state grew too large, the call failed as a whole).
    public var failedSample: Int?

    public init(steps: [[ScriptAlert]], stateJSON: String, failure: String?, failedSample: Int? = nil) {
        self.steps = steps
        self.stateJSON = stateJSON
        self.failure = failure
        self.failedSample = failedSample
    }

    /// The largest state a script may keep per (rule, device), as JSON.
    public static let maximumStateBytes = 65_536
}

/// One piece of an export: the script (its source only when the worker asked for it), and for
/// rows the samples, which travel beside the JSON in the frame's binary part.
public struct ExportJob: Sendable, Equatable, Codable {
    /// Which piece: `header`, `rows` or `footer`, or `format` for the script's declared media
    /// type and file extension.
    public enum Piece: String, Sendable, Codable {
        case format, header, rows, footer
    }

    public var tenant: WorkerTenant
    public var script: WorkerScript
    public var now: Timestamp
    public var piece: Piece
    public var budgetMilliseconds: Int
    public var samples: [TelemetrySample]

    enum CodingKeys: String, CodingKey {
        case tenant, id, version, name, configJSON, source, now, piece, budgetMilliseconds
    }

    public init(
        tenant: WorkerTenant, script: WorkerScript, now: Timestamp, piece: Piece, budgetMilliseconds: Int,
        samples: [TelemetrySample] = []
    ) {
        self.tenant = tenant
        self.script = script
        self.now = now
        self.piece = piece
        self.budgetMilliseconds = budgetMilliseconds
        self.samples = samples
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        tenant = try container.decode(WorkerTenant.self, forKey: .tenant)
        script = WorkerScript(
            id: try container.decode(UUID.self, forKey: .id), version: try container.decode(Int.self, forKey: .version),
            name: try container.decode(String.self, forKey: .name),
            configJSON: try container.decode(String.self, forKey: .configJSON),
            source: try container.decodeIfPresent(String.self, forKey: .source))
        now = Timestamp(microseconds: try container.decode(Int64.self, forKey: .now))
        piece = try container.decode(Piece.self, forKey: .piece)
        budgetMilliseconds = try container.decode(Int.self, forKey: .budgetMilliseconds)
        samples = []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(tenant, forKey: .tenant)
        try container.encode(script.id, forKey: .id)
        try container.encode(script.version, forKey: .version)
        try container.encode(script.name, forKey: .name)
        try container.encode(script.configJSON, forKey: .configJSON)
        try container.encodeIfPresent(script.source, forKey: .source)
        try container.encode(now.microseconds, forKey: .now)
        try container.encode(piece, forKey: .piece)
        try container.encode(budgetMilliseconds, forKey: .budgetMilliseconds)
    }
}

/// A dry-run's inputs; the samples travel beside the JSON in the frame's binary part.
public struct DryRunJob: Sendable, Equatable, Codable {
    public var source: String
    public var name: String
    public var hook: ScriptHook
    public var configJSON: String
    public var tenant: WorkerTenant
    public var now: Timestamp
    public var samples: [TelemetrySample]

    enum CodingKeys: String, CodingKey {
        case source, name, hook, configJSON, tenant, now
    }

    public init(
        source: String, name: String, hook: ScriptHook, configJSON: String, tenant: WorkerTenant, now: Timestamp,
        samples: [TelemetrySample]
    ) {
        self.source = source
        self.name = name
        self.hook = hook
        self.configJSON = configJSON
        self.tenant = tenant
        self.now = now
        self.samples = samples
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        source = try container.decode(String.self, forKey: .source)
        name = try container.decode(String.self, forKey: .name)
        hook = try container.decode(ScriptHook.self, forKey: .hook)
        configJSON = try container.decode(String.self, forKey: .configJSON)
        tenant = try container.decode(WorkerTenant.self, forKey: .tenant)
        now = Timestamp(microseconds: try container.decode(Int64.self, forKey: .now))
        samples = []
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(source, forKey: .source)
        try container.encode(name, forKey: .name)
        try container.encode(hook, forKey: .hook)
        try container.encode(configJSON, forKey: .configJSON)
        try container.encode(tenant, forKey: .tenant)
        try container.encode(now.microseconds, forKey: .now)
    }
}

/// A job's answer.
public enum WorkerJobResult: Sendable, Equatable, Codable {
    case valid
    case invalid(WorkerScriptError)
    case report(DryRunReport)
    case limits(TierLimits)
    case failed(String)
    /// An export piece's text.
    case exported(String)
    /// An export script's declared media type and file extension.
    case exportFormat(contentType: String, fileExtension: String)
    /// An evaluation job's answer, one per rule.
    case evaluated([RuleEvaluation])
    /// The worker does not hold the scripts of these rules (indices into the job's rules):
    /// send the job again with their sources.
    case needsSources([Int])
    /// The worker does not hold that script version: send it again with its source.
    case needsSource
}

/// A `ScriptError` as it crosses the pipe, so the API can show Lua's message and line.
public struct WorkerScriptError: Sendable, Equatable, Codable, Error {
    public var isContract: Bool
    public var kind: String
    public var message: String
    public var chunk: String?
    public var line: Int?

    public init(_ error: ScriptError) {
        switch error {
        case .lua(let luaError):
            isContract = false
            kind = luaError.kind.rawValue
            message = luaError.message
            chunk = luaError.chunk
            line = luaError.line
        case .contract:
            isContract = true
            kind = "contract"
            self.message = error.description
        }
    }
}

/// A request frame's payload.
public enum WorkerRequest: Sendable, Equatable {
    case transform(TransformCall)
    /// A tenant's alert rules over devices' samples in its warm VM, encoded by hand like
    /// `transform` (it runs per committed sample); answered with `.job(.evaluated)`.
    case evaluate(EvaluateJob)
    case job(WorkerJob)
}

/// A response frame's payload.
public enum WorkerResponse: Sendable, Equatable {
    /// One result per part of the call.
    case transform([TransformResult])
    case job(WorkerJobResult)
}
