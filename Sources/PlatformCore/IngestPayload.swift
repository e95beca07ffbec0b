import Foundation

/// A decoded and validated ingest request body: one sample or a batch.
///
/// Decoding is strict: unknown fields, wrong types and unknown enum values are rejected with
/// the offending field named (`samples[3].temp_inside_c`), and a batch with one bad sample is
/// rejected whole. Syntax errors win over field errors, so malformed JSON is always a 400.
public struct IngestPayload: Sendable {
    public var samples: [TelemetrySample]
    /// Whether the body was `{"samples": [...]}` (errors then name `samples[i]`).
    public var isBatch: Bool

    public init(samples: [TelemetrySample], isBatch: Bool) {
        self.samples = samples
        self.isBatch = isBatch
    }

    /// Decodes and validates a request body for the device `serial` at server time `now`.
    /// With `checksRanges` false the plausible-range checks are left to the caller, who runs
    /// them after ingest scripts (which may convert units) with `TelemetryRules.checkRanges`.
    public static func decode(
        _ body: some Collection<UInt8>, serial: String, now: Timestamp, checksRanges: Bool = true
    ) throws(PlatformError) -> IngestPayload {
        try decode(body, serial: Optional(serial), now: now, checksRanges: checksRanges)
    }

    /// Decodes one sample to try a script on (a dry-run, `thermostat script check`): validated
    /// like a single ingest sample, except that its `device_id` is taken as it is.
    public static func decodeTrialSample(_ body: some Collection<UInt8>, now: Timestamp, checksRanges: Bool)
        throws(PlatformError) -> TelemetrySample
    {
        let payload = try decode(body, serial: nil, now: now, checksRanges: checksRanges)
        guard !payload.isBatch, let sample = payload.samples.first else {
            throw .invalid("sample", "must be one sample object, not a batch")
        }
        return sample
    }

    private static func decode(
        _ body: some Collection<UInt8>, serial: String?, now: Timestamp, checksRanges: Bool
    ) throws(PlatformError) -> IngestPayload {
        let result: Result<IngestPayload, PlatformError>? = body.withContiguousStorageIfAvailable { bytes in
            Result { () throws(PlatformError) in try decode(bytes: bytes, serial: serial, now: now, checksRanges: checksRanges) }
        }
        if let result { return try result.get() }
        let copy = Array(body)
        return try copy.withUnsafeBufferPointer { bytes throws(PlatformError) in
            try decode(bytes: bytes, serial: serial, now: now, checksRanges: checksRanges)
        }
    }

    private static func decode(bytes: UnsafeBufferPointer<UInt8>, serial: String?, now: Timestamp, checksRanges: Bool)
        throws(PlatformError) -> IngestPayload
    {
        var parser = TelemetryJSONParser(bytes: bytes, checksRanges: checksRanges)
        let decoded = try parser.parseBody()
        let latest = now.adding(seconds: TelemetryRules.maximumFutureSkewSeconds)
        for (index, sample) in decoded.samples.enumerated() {
            let prefix = decoded.isBatch ? "samples[\(index)]." : ""
            if let serial, sample.deviceSerial != serial {
                throw .invalid(prefix + "device_id", "does not match the authenticated device", code: "device_mismatch")
            }
            if sample.timestamp > latest {
                throw .invalid(prefix + "timestamp", "is more than 5 minutes in the future", code: "timestamp_in_future")
            }
            if sample.timestamp < TelemetryRules.earliestTimestamp {
                throw .invalid(prefix + "timestamp", "is before 2000-01-01", code: "timestamp_too_old")
            }
        }
        return IngestPayload(samples: decoded.samples, isBatch: decoded.isBatch)
    }
}
