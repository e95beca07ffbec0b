import Foundation
import PlatformCore

extension Timestamp {
    /// The start of the epoch-aligned bucket of `seconds` that holds this instant.
    func flooring(toSeconds seconds: Int) -> Timestamp {
        let width = Int64(seconds) * 1_000_000
        return Timestamp(microseconds: microseconds - (((microseconds % width) + width) % width))
    }
}

/// Sums over one bucket of raw samples or of stored rollups: sums, counts and extremes add up
/// exactly, so raw data and rollups of any finer resolution merge without error.
struct BucketSums: Sendable {
    var start: Timestamp
    var count: Int
    var insideMin: Double
    var insideSum: Double
    var insideMax: Double
    var outsideCount: Int
    var outsideMin: Double?
    var outsideSum: Double
    var outsideMax: Double?
    var setpointMin: Double
    var setpointSum: Double
    var setpointMax: Double
    var heating: Int
    var cooling: Int

    mutating func add(_ other: BucketSums) {
        count += other.count
        insideMin = min(insideMin, other.insideMin)
        insideSum += other.insideSum
        insideMax = max(insideMax, other.insideMax)
        outsideCount += other.outsideCount
        outsideMin = [outsideMin, other.outsideMin].compactMap { $0 }.min()
        outsideSum += other.outsideSum
        outsideMax = [outsideMax, other.outsideMax].compactMap { $0 }.max()
        setpointMin = min(setpointMin, other.setpointMin)
        setpointSum += other.setpointSum
        setpointMax = max(setpointMax, other.setpointMax)
        heating += other.heating
        cooling += other.cooling
    }

    var bucket: SampleBucket {
        let samples = Double(count)
        return SampleBucket(
            start: start, count: count, tempInside: Aggregate(min: insideMin, avg: insideSum / samples, max: insideMax),
            tempOutside: outsideCount == 0
                ? nil
                : Aggregate(
                    min: outsideMin ?? 0, avg: outsideSum / Double(outsideCount), max: outsideMax ?? 0),
            setpoint: Aggregate(min: setpointMin, avg: setpointSum / samples, max: setpointMax),
            heatingShare: Double(heating) / samples, coolingShare: Double(cooling) / samples)
    }

    /// The row a stored rollup stands as: its averages at its start, with the newest sample's
    /// mode, hysteresis and output.
    func sample(
        serial: String, resolutionSeconds: Int, mode: String, hysteresis: Double, output: String
    ) -> TelemetrySample {
        let samples = Double(count)
        return TelemetrySample(
            deviceSerial: serial, timestamp: start, mode: ThermostatMode(rawValue: mode) ?? .off,
            tempInside: insideSum / samples, tempOutside: outsideCount == 0 ? nil : outsideSum / Double(outsideCount),
            setpoint: setpointSum / samples, hysteresis: hysteresis, output: ThermostatOutput(rawValue: output) ?? .off,
            rollup: SampleRollup(
                resolutionSeconds: resolutionSeconds, count: count, tempInsideMin: insideMin, tempInsideMax: insideMax,
                tempOutsideMin: outsideCount == 0 ? nil : outsideMin, tempOutsideMax: outsideCount == 0 ? nil : outsideMax,
                setpointMin: setpointMin, setpointMax: setpointMax, heatingShare: Double(heating) / samples,
                coolingShare: Double(cooling) / samples))
    }
}

/// Reads raw telemetry and rollups as one series. Each side is read with the page's limit
/// (two index range scans that stop early) and merged here, rather than in one SQL union
/// that would aggregate or sort the whole range before the limit applies.
enum RollupMerge {
    /// Both lists in time order, rollups before raw samples at the same instant, cut to `limit`.
    static func samples(raw: [TelemetrySample], rollups: [TelemetrySample], limit: Int) -> [TelemetrySample] {
        guard !rollups.isEmpty else { return raw }
        guard !raw.isEmpty else { return rollups }
        var merged: [TelemetrySample] = []
        merged.reserveCapacity(min(limit, raw.count + rollups.count))
        var rawIndex = 0
        var rollupIndex = 0
        while merged.count < limit, rawIndex < raw.count || rollupIndex < rollups.count {
            if rollupIndex < rollups.count,
                rawIndex == raw.count || rollups[rollupIndex].timestamp <= raw[rawIndex].timestamp
            {
                merged.append(rollups[rollupIndex])
                rollupIndex += 1
            } else {
                merged.append(raw[rawIndex])
                rawIndex += 1
            }
        }
        return merged
    }

    /// Buckets of both lists (each in start order) added up where they share a start, cut to
    /// `limit`.
    static func buckets(raw: [BucketSums], rollups: [BucketSums], limit: Int) -> [SampleBucket] {
        var byStart: [Timestamp: BucketSums] = [:]
        for sums in raw + rollups {
            if var existing = byStart[sums.start] {
                existing.add(sums)
                byStart[sums.start] = existing
            } else {
                byStart[sums.start] = sums
            }
        }
        return byStart.values.sorted { $0.start < $1.start }.prefix(limit).map(\.bucket)
    }
}
