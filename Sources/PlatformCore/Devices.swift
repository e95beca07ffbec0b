import Foundation

/// A thermostat registered to a tenant. The serial is unique across the whole platform.
public struct Device: Sendable, Equatable {
    public var tenantID: UUID
    public var serial: String
    public var name: String
    public var location: String?
    public var createdAt: Timestamp
    /// When the platform last accepted telemetry from the device.
    public var lastSeen: Timestamp?
    public var revokedAt: Timestamp?

    public init(
        tenantID: UUID, serial: String, name: String, location: String?, createdAt: Timestamp,
        lastSeen: Timestamp? = nil, revokedAt: Timestamp? = nil
    ) {
        self.tenantID = tenantID
        self.serial = serial
        self.name = name
        self.location = location
        self.createdAt = createdAt
        self.lastSeen = lastSeen
        self.revokedAt = revokedAt
    }
}


/// What the ingest path needs to authenticate a device: hashes only, never the key itself.
public struct DeviceCredential: Sendable, Equatable {
    public var tenantID: UUID
    public var serial: String
    public var keyHash: String
    /// The key replaced by the last rotation, accepted until `previousKeyExpiresAt`.
    public var previousKeyHash: String?
    public var previousKeyExpiresAt: Timestamp?
    public var revoked: Bool

    public init(
        tenantID: UUID, serial: String, keyHash: String, previousKeyHash: String? = nil,
        previousKeyExpiresAt: Timestamp? = nil, revoked: Bool = false
    ) {
        self.tenantID = tenantID
        self.serial = serial
        self.keyHash = keyHash
        self.previousKeyHash = previousKeyHash
        self.previousKeyExpiresAt = previousKeyExpiresAt
        self.revoked = revoked
    }
}
