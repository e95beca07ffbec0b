import Foundation
import PlatformCore
import Storage

/// The JSON shapes the API answers with, shared by controllers.
/// A user as other people see them: no account flags (whether someone is a platform admin is
/// nobody else's business).
struct UserJSON: Encodable {
    var id: String
    var email: String

    init(_ user: User) {
        id = user.id.uuidString.lowercased()
        email = user.email
    }
}

struct TenantJSON: Encodable {
    var id: String
    var slug: String
    var name: String
    var tier: String
    var role: String

    init(_ membership: Membership) {
        id = membership.tenant.id.uuidString.lowercased()
        slug = membership.tenant.slug
        name = membership.tenant.name
        tier = membership.tenant.tier
        role = membership.role.rawValue
    }
}

struct SampleJSON: Encodable {
    var sample: TelemetrySample

    enum CodingKeys: String, CodingKey {
        case deviceID = "device_id"
        case timestamp, mode
        case tempInside = "temp_inside_c"
        case tempOutside = "temp_outside_c"
        case setpoint = "setpoint_c"
        case hysteresis = "hysteresis_c"
        case output, rollup
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(sample.rollup.map(RollupJSON.init), forKey: .rollup)
        try container.encode(sample.deviceSerial, forKey: .deviceID)
        try container.encode(sample.timestamp, forKey: .timestamp)
        try container.encode(sample.mode.rawValue, forKey: .mode)
        try container.encode(sample.tempInside, forKey: .tempInside)
        try container.encode(sample.tempOutside, forKey: .tempOutside)
        try container.encode(sample.setpoint, forKey: .setpoint)
        try container.encode(sample.hysteresis, forKey: .hysteresis)
        try container.encode(sample.output.rawValue, forKey: .output)
    }
}

/// The `rollup` object of a downsampled row: its width, how many samples it stands for, their
/// extremes and the share of them heating or cooling.
struct RollupJSON: Encodable {
    var rollup: SampleRollup

    struct Extremes: Encodable {
        var min: Double
        var max: Double
    }

    enum CodingKeys: String, CodingKey {
        case resolutionSeconds = "resolution_seconds"
        case samples
        case tempInside = "temp_inside_c"
        case tempOutside = "temp_outside_c"
        case setpoint = "setpoint_c"
        case heatingShare = "heating_share"
        case coolingShare = "cooling_share"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(rollup.resolutionSeconds, forKey: .resolutionSeconds)
        try container.encode(rollup.count, forKey: .samples)
        try container.encode(Extremes(min: rollup.tempInsideMin, max: rollup.tempInsideMax), forKey: .tempInside)
        let outside = rollup.tempOutsideMin.flatMap { low in rollup.tempOutsideMax.map { Extremes(min: low, max: $0) } }
        try container.encode(outside, forKey: .tempOutside)
        try container.encode(Extremes(min: rollup.setpointMin, max: rollup.setpointMax), forKey: .setpoint)
        try container.encode(rollup.heatingShare, forKey: .heatingShare)
        try container.encode(rollup.coolingShare, forKey: .coolingShare)
    }
}

/// A live stream's sample: the query API's JSON plus `device`.
struct StreamSampleJSON: Encodable {
    var sample: TelemetrySample

    private enum CodingKeys: String, CodingKey {
        case device
    }

    func encode(to encoder: any Encoder) throws {
        try SampleJSON(sample: sample).encode(to: encoder)
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(sample.deviceSerial, forKey: .device)
    }
}

struct AggregateJSON: Encodable {
    var min: Double
    var avg: Double
    var max: Double

    init(_ aggregate: Aggregate) {
        min = aggregate.min
        avg = aggregate.avg
        max = aggregate.max
    }
}

struct BucketJSON: Encodable {
    var timestamp: Timestamp
    var count: Int
    var tempInside: AggregateJSON
    var tempOutside: AggregateJSON?
    var setpoint: AggregateJSON
    var heatingShare: Double
    var coolingShare: Double

    init(_ bucket: SampleBucket) {
        timestamp = bucket.start
        count = bucket.count
        tempInside = AggregateJSON(bucket.tempInside)
        tempOutside = bucket.tempOutside.map(AggregateJSON.init)
        setpoint = AggregateJSON(bucket.setpoint)
        heatingShare = bucket.heatingShare
        coolingShare = bucket.coolingShare
    }

    enum CodingKeys: String, CodingKey {
        case timestamp, count
        case tempInside = "temp_inside_c"
        case tempOutside = "temp_outside_c"
        case setpoint = "setpoint_c"
        case heatingShare = "heating_share"
        case coolingShare = "cooling_share"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(timestamp, forKey: .timestamp)
        try container.encode(count, forKey: .count)
        try container.encode(tempInside, forKey: .tempInside)
        try container.encode(tempOutside, forKey: .tempOutside)
        try container.encode(setpoint, forKey: .setpoint)
        try container.encode(heatingShare, forKey: .heatingShare)
        try container.encode(coolingShare, forKey: .coolingShare)
    }
}

struct DeviceJSON: Encodable {
    var serial: String
    var name: String
    var location: String?
    var createdAt: Timestamp
    var lastSeen: Timestamp?
    var online: Bool
    var revoked: Bool
    var latest: SampleJSON?

    init(_ device: Device, latest: TelemetrySample?, now: Timestamp, onlineWindowSeconds: Double) {
        serial = device.serial
        name = device.name
        location = device.location
        createdAt = device.createdAt
        lastSeen = device.lastSeen
        online = device.lastSeen.map { now.secondsSinceEpoch - $0.secondsSinceEpoch <= onlineWindowSeconds } ?? false
        revoked = device.revokedAt != nil
        self.latest = latest.map(SampleJSON.init)
    }

    enum CodingKeys: String, CodingKey {
        case serial, name, location, online, revoked, latest
        case createdAt = "created_at"
        case lastSeen = "last_seen"
    }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(serial, forKey: .serial)
        try container.encode(name, forKey: .name)
        try container.encode(location, forKey: .location)
        try container.encode(createdAt, forKey: .createdAt)
        try container.encode(lastSeen, forKey: .lastSeen)
        try container.encode(online, forKey: .online)
        try container.encode(revoked, forKey: .revoked)
        try container.encode(latest, forKey: .latest)
    }
}
