import Foundation
import Hummingbird
import PlatformCore
import Storage

/// `POST /api/telemetry/ingest/` for devices, `GET /api/telemetry/query/` and the live
/// `GET /api/telemetry/stream/` for people.
struct TelemetryController {
    let store: any PlatformStore
    let credentials: DeviceCredentialCache
    let writer: GroupCommitWriter
    let scripts: ScriptEngine
    let events: any TelemetryEventSource
    let quotas: QuotaService
    let deviceLimiter: RateLimiter
    /// Failed device authentications per client address.
    let authFailureLimiter: RateLimiter
    let clientAddress: ClientAddressResolver
    let clock: any WallClock

    struct QueryJSON<Item: Encodable>: Encodable {
        var device: String
        var bucket: String?
        var samples: [Item]
        var next: String?
    }

    static let defaultLimit = 1000
    static let maximumLimit = 10_000

    func addIngestRoute(to group: RouterGroup<AppRequestContext>) {
        group.post("ingest/", use: ingest)
    }

    func addQueryRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("query/", use: query)
        group.get("stream/", use: stream)
    }

    /// A keep-alive comment this often, so proxies and browsers keep an idle stream open.
    static let heartbeatInterval: Duration = .seconds(15)

    /// Server-Sent Events: one `event: sample` per committed sample of the tenant (or of one
    /// device), as the query API shows it plus `device`; a comment line as heartbeat.
    @Sendable func stream(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let tenantID = context.identity.tenant.id
        let serial = request.uri.queryParameters["device"].map(String.init)
        if let serial {
            guard !serial.isEmpty, try await store.device(tenantID: tenantID, serial: serial) != nil else {
                throw PlatformError.notFound("Device")
            }
        }
        let subscription = try events.subscribe(tenantID: tenantID, serial: serial)
        var headers = HTTPFields()
        headers[.contentType] = "text/event-stream; charset=utf-8"
        headers[.cacheControl] = "no-store"
        headers[.xAccelBuffering] = "no"
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                try await Self.writeEvents(subscription, to: &writer)
            })
    }

    private static func writeEvents(_ subscription: TelemetrySubscription, to writer: inout any ResponseBodyWriter)
        async throws
    {
        let heartbeats = Task {
            while (try? await Task.sleep(for: heartbeatInterval)) != nil {
                subscription.sendHeartbeat()
            }
        }
        defer {
            heartbeats.cancel()
            subscription.cancel()
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        try await writer.write(ByteBuffer(string: "retry: 2000\n: connected\n\n"))
        for await event in subscription.events {
            switch event {
            case .heartbeat:
                try await writer.write(ByteBuffer(string: ": heartbeat\n\n"))
            case .sample(let sample):
                let data = try encoder.encode(StreamSampleJSON(sample: sample))
                var buffer = ByteBuffer(string: "event: sample\ndata: ")
                buffer.writeBytes(data)
                buffer.writeString("\n\n")
                try await writer.write(buffer)
            }
        }
        try await writer.finish(nil)
    }

    @Sendable func ingest(_ request: Request, context: AppRequestContext) async throws -> Response {
        let (serial, key) = try Self.deviceCredentials(request)
        let credential = try await authenticate(serial: serial, key: key, request: request, context: context)
        let tenantID = credential.tenantID
        if quotas.isDisabled(tenantID) { throw PlatformError.tenantDisabled }
        let limits = try await quotas.tenant(tenantID).asyncFlatMap { await quotas.limits(for: $0) }
        // Serials are unique per tenant only: the budget is the device's, not the serial's. A
        // tier that sets its own rate replaces the server's default.
        let deviceKey = "\(tenantID.uuidString)/\(serial)"
        if let perMinute = limits?.ingestPerMinute, perMinute > 0 {
            // (0 is treated like "not set": a tier cannot stop its own devices.)
            try deviceLimiter.acquire(deviceKey, limit: perMinute)
        } else {
            try deviceLimiter.acquire(deviceKey)
        }
        let body = try await request.body.collect(upTo: TelemetryRules.maximumBodyBytes)
        let ingestScripts = try await scripts.ingestScripts(tenantID: credential.tenantID)
        let payload = try IngestPayload.decode(
            body.readableBytesView, serial: serial, now: clock.now(), checksRanges: ingestScripts == nil)
        var samples = payload.samples
        if let ingestScripts {
            samples = try await scripts.transform(samples, with: ingestScripts, isBatch: payload.isBatch)
            try TelemetryRules.checkRanges(samples, isBatch: payload.isBatch)
        }
        let records = samples.map { TelemetryRecord(tenantID: tenantID, sample: $0) }
        let room = try quotas.sampleQuota(tenantID: tenantID, limits: limits, incoming: records.count)
        let inserted = try await writer.submit(records)
        if room > 0 {
            // `drop_oldest`: the new samples are committed; the oldest go right after, before
            // the answer (a separate short delete, not part of the shared group commit).
            try await quotas.makeRoom(tenantID: tenantID, count: room)
        }
        let accepted = inserted.count { $0 }
        return Self.ingestAnswer(accepted: accepted, duplicates: inserted.count - accepted)
    }

    /// The ingest answer, `{"accepted":N,"duplicates":M}` as `jsonResponse` would write it.
    /// Written directly because every device request gets one: through a `JSONEncoder` it took
    /// 13 µs of server CPU per request, now 2.4 µs (BENCHMARKS.md, session 20).
    static func ingestAnswer(accepted: Int, duplicates: Int) -> Response {
        jsonResponse(encoded: ByteBuffer(string: #"{"accepted":\#(accepted),"duplicates":\#(duplicates)}"#))
    }

    /// The device behind the credentials. A device whose credential is cached passes without
    /// further work. Anything else first has its client address checked against the failed-
    /// authentication limit (over it: 429, and nothing reaches the database), then its serial's
    /// syntax, then the cache or store; each failure counts against the address.
    private func authenticate(serial: String, key: String, request: Request, context: AppRequestContext)
        async throws -> DeviceCredential
    {
        let wellFormed = IdentifierRules.isValidSerial(serial) && key.utf8.count <= Self.maximumKeyBytes
        if wellFormed, let credential = credentials.cachedCredential(serial: serial, key: key) {
            return credential
        }
        let address = clientAddress.key(request, peer: context.remoteAddress)
        if let seconds = authFailureLimiter.retryAfter(address) {
            throw PlatformError.rateLimited(retryAfter: seconds)
        }
        do {
            guard wellFormed else { throw DeviceCredentialCache.rejected }
            return try await credentials.authenticate(serial: serial, key: key)
        } catch let error as PlatformError where error == DeviceCredentialCache.rejected {
            try authFailureLimiter.acquire(address)
            throw error
        }
    }

    /// Device keys are 47 characters; anything much longer is not one and is not hashed.
    static let maximumKeyBytes = 128

    /// Parses `Authorization: Device <serial>:<api_key>`.
    static func deviceCredentials(_ request: Request) throws -> (String, String) {
        guard let header = request.headers[.authorization], header.hasPrefix("Device ") else {
            throw PlatformError(
                .unauthenticated, code: "device_auth_required",
                message: "Send Authorization: Device <serial>:<api_key>")
        }
        let value = header.dropFirst("Device ".count)
        guard let colon = value.firstIndex(of: ":") else {
            throw PlatformError(
                .unauthenticated, code: "device_auth_required",
                message: "Send Authorization: Device <serial>:<api_key>")
        }
        return (String(value[..<colon]), String(value[value.index(after: colon)...]))
    }

    @Sendable func query(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        guard let serial = parameters["device"].map(String.init), !serial.isEmpty else {
            throw PlatformError.invalid("device", "is required", code: "missing_field")
        }
        let tenantID = context.identity.tenant.id
        guard try await store.device(tenantID: tenantID, serial: serial) != nil else {
            throw PlatformError.notFound("Device")
        }
        let now = clock.now()
        let to = try parameters["to"].map { try Self.timestamp(String($0), field: "to") } ?? now.adding(seconds: 1)
        let from = try parameters["from"].map { try Self.timestamp(String($0), field: "from") } ?? to.adding(seconds: -86_400)
        guard from <= to else { throw PlatformError.invalid("from", "must not be after 'to'") }
        let after = try parameters["after"].map { try Self.timestamp(String($0), field: "after") }
        var limit = Self.defaultLimit
        if let text = parameters["limit"] {
            guard let value = Int(text), (1...Self.maximumLimit).contains(value) else {
                throw PlatformError.invalid("limit", "must be an integer from 1 to \(Self.maximumLimit)")
            }
            limit = value
        }
        let range = TelemetryRange(tenantID: tenantID, serial: serial, from: from, to: to, after: after, limit: limit)
        if let bucketName = parameters["bucket"].map(String.init) {
            guard let width = TelemetryResolution.seconds[bucketName] else {
                throw PlatformError.invalid(
                    "bucket", "must be one of \(TelemetryResolution.names.joined(separator: ", "))", code: "invalid_enum")
            }
            let buckets = try await store.buckets(range, bucketSeconds: width)
            let next = buckets.count == limit ? buckets.last?.start.iso8601 : nil
            return try jsonResponse(
                QueryJSON(device: serial, bucket: bucketName, samples: buckets.map(BucketJSON.init), next: next))
        }
        let samples = try await store.samples(range)
        let next = samples.count == limit ? samples.last?.timestamp.iso8601 : nil
        return try jsonResponse(QueryJSON(device: serial, bucket: nil, samples: samples.map(SampleJSON.init), next: next))
    }

    private static func timestamp(_ text: String, field: String) throws -> Timestamp {
        guard let value = Timestamp(iso8601: text) else {
            throw PlatformError.invalid(field, "must be an ISO 8601 date-time with a zone", code: "invalid_timestamp")
        }
        return value
    }
}
