import Foundation
import PlatformCore
import Storage

/// The rules for a tenant's devices, shared by the JSON API and the dashboard: registration
/// (the key is generated here and returned once), renaming, key rotation with a grace period,
/// revocation, and the overview with each device's latest sample. Every call is scoped to one
/// tenant; another tenant's serial is "not found".
struct DeviceService: Sendable {
    let store: any PlatformStore
    let credentials: DeviceCredentialCache
    let quotas: QuotaService
    let clock: any WallClock
    let configuration: PlatformConfiguration

    /// A device key as it is shown once: the key and the provisioning URI its QR code carries.
    struct IssuedKey: Sendable {
        var device: Device
        var apiKey: String
        var provisioningURI: String
        var previousKeyValidUntil: Timestamp?
    }

    /// A device with its newest sample, for lists and pages.
    struct DeviceSummary: Sendable {
        var device: Device
        var latest: TelemetrySample?
    }

    /// Registers a device with a new key, within the tier's device quota.
    func register(tenant: Tenant, serial: String, name: String?, location: String?) async throws -> IssuedKey {
        let tenantID = tenant.id
        try IdentifierRules.validateSerial(serial)
        let name = try IdentifierRules.validName(name ?? serial, field: "name")
        let location = try location.map { try IdentifierRules.validName($0, field: "location") }
        try await quotas.checkDeviceQuota(tenant: tenant)
        let key = Secrets.generate(prefix: Secrets.deviceKeyPrefix)
        let device = Device(tenantID: tenantID, serial: serial, name: name, location: location, createdAt: clock.now())
        try await store.createDevice(device, keyHash: Secrets.hash(key))
        credentials.invalidate(tenantID: tenantID, serial: device.serial)
        return IssuedKey(device: device, apiKey: key, provisioningURI: provisioningURI(serial: serial, key: key))
    }

    func summaries(tenantID: UUID) async throws -> [DeviceSummary] {
        let latest = try await store.latestSamples(tenantID: tenantID)
        return try await store.devices(tenantID: tenantID).map { DeviceSummary(device: $0, latest: latest[$0.serial]) }
    }

    func summary(tenantID: UUID, serial: String) async throws -> DeviceSummary {
        let device = try await device(tenantID: tenantID, serial: serial)
        return DeviceSummary(device: device, latest: try await store.latest(tenantID: tenantID, serial: serial))
    }

    func device(tenantID: UUID, serial: String) async throws -> Device {
        guard let device = try await store.device(tenantID: tenantID, serial: serial) else {
            throw PlatformError.notFound("Device")
        }
        return device
    }

    /// Renames and/or relocates; `location: .some(nil)` clears the location.
    func update(tenantID: UUID, serial: String, name: String?, location: String??) async throws {
        let name = try name.map { try IdentifierRules.validName($0, field: "name") }
        let location: String?? = try location.map { try $0.map { try IdentifierRules.validName($0, field: "location") } }
        guard try await store.updateDevice(tenantID: tenantID, serial: serial, name: name, location: location) else {
            throw PlatformError.notFound("Device")
        }
    }

    func delete(tenantID: UUID, serial: String) async throws {
        guard try await store.deleteDevice(tenantID: tenantID, serial: serial) else { throw PlatformError.notFound("Device") }
        credentials.invalidate(tenantID: tenantID, serial: serial)
    }

    /// A new key; the previous one keeps working for `graceSeconds` (default: the configured grace).
    func rotateKey(tenantID: UUID, serial: String, graceSeconds: Int?) async throws -> IssuedKey {
        if let grace = graceSeconds, !(0...31_536_000).contains(grace) {
            throw PlatformError.invalid("grace_seconds", "must be between 0 and 31536000")
        }
        let grace = graceSeconds.map(Double.init) ?? configuration.keyRotationGraceSeconds
        let key = Secrets.generate(prefix: Secrets.deviceKeyPrefix)
        guard try await store.rotateKey(
            tenantID: tenantID, serial: serial, newKeyHash: Secrets.hash(key),
            previousValidUntil: clock.now().adding(seconds: grace))
        else { throw PlatformError.notFound("Device") }
        credentials.invalidate(tenantID: tenantID, serial: serial)
        let device = try await device(tenantID: tenantID, serial: serial)
        return IssuedKey(
            device: device, apiKey: key, provisioningURI: provisioningURI(serial: serial, key: key),
            previousKeyValidUntil: try await store.credential(tenantID: tenantID, serial: serial)?.previousKeyExpiresAt)
    }

    func revoke(tenantID: UUID, serial: String) async throws {
        guard try await store.revokeDevice(tenantID: tenantID, serial: serial, at: clock.now()) else {
            throw PlatformError.notFound("Device")
        }
        credentials.invalidate(tenantID: tenantID, serial: serial)
    }

    /// Whether the device reported within the online window.
    func isOnline(_ device: Device) -> Bool {
        guard let lastSeen = device.lastSeen else { return false }
        return clock.now().secondsSinceEpoch - lastSeen.secondsSinceEpoch <= configuration.onlineWindowSeconds
    }

    private func provisioningURI(serial: String, key: String) -> String {
        ProvisioningURI.make(baseURL: configuration.effectivePublicURL, serial: serial, key: key)
    }
}
