import Foundation
import Hummingbird
import PlatformCore
import Storage

/// `/api/devices/`: register, list, show, rename, rotate key, revoke, delete, latest sample.
/// Everything is scoped to the caller's tenant; another tenant's serial is a 404.
struct DeviceController {
    let store: any PlatformStore
    let credentials: DeviceCredentialCache
    let clock: any WallClock
    let configuration: PlatformConfiguration

    struct RegisterBody: StrictRequestBody {
        static let fields: Set<String> = ["serial", "name", "location"]
        var serial: String
        var name: String?
        var location: String?
    }

    struct UpdateBody: StrictRequestBody {
        static let fields: Set<String> = ["name", "location"]
        var name: String?
        var location: String?
        var clearsLocation = false

        enum CodingKeys: String, CodingKey {
            case name, location
        }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decodeIfPresent(String.self, forKey: .name)
            location = try container.decodeIfPresent(String.self, forKey: .location)
            clearsLocation = container.contains(.location) && location == nil
        }
    }

    struct RotateBody: StrictRequestBody {
        static let fields: Set<String> = ["grace_seconds"]
        var graceSeconds: Int?

        enum CodingKeys: String, CodingKey {
            case graceSeconds = "grace_seconds"
        }
    }

    struct KeyJSON: Encodable {
        var device: DeviceJSON
        var apiKey: String
        var provisioningURI: String
        var previousKeyValidUntil: Timestamp?

        enum CodingKeys: String, CodingKey {
            case device
            case apiKey = "api_key"
            case provisioningURI = "provisioning_uri"
            case previousKeyValidUntil = "previous_key_valid_until"
        }
    }

    struct DeviceEnvelope: Encodable {
        var device: DeviceJSON
    }

    struct ListJSON: Encodable {
        var devices: [DeviceJSON]
    }

    struct LatestJSON: Encodable {
        var device: String
        var sample: SampleJSON?
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.post("register/", use: register)
        group.get("", use: list)
        group.get(":serial/", use: show)
        group.patch(":serial/", use: update)
        group.delete(":serial/", use: delete)
        group.post(":serial/rotate-key/", use: rotateKey)
        group.post(":serial/revoke/", use: revoke)
        group.get(":serial/latest/", use: latest)
    }

    @Sendable func register(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let body = try await request.decodeStrict(RegisterBody.self, context: context)
        try IdentifierRules.validateSerial(body.serial)
        let name = try IdentifierRules.validName(body.name ?? body.serial, field: "name")
        let location = try body.location.map { try IdentifierRules.validName($0, field: "location") }
        let key = Secrets.generate(prefix: Secrets.deviceKeyPrefix)
        let device = Device(
            tenantID: context.identity.tenant.id, serial: body.serial, name: name, location: location,
            createdAt: clock.now())
        try await store.createDevice(device, keyHash: Secrets.hash(key))
        credentials.invalidate(serial: device.serial)
        return try jsonResponse(
            KeyJSON(
                device: json(device, latest: nil), apiKey: key,
                provisioningURI: ProvisioningURI.make(baseURL: configuration.effectivePublicURL, serial: device.serial, key: key)),
            status: .created)
    }

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let tenantID = context.identity.tenant.id
        var devices: [DeviceJSON] = []
        for device in try await store.devices(tenantID: tenantID) {
            devices.append(json(device, latest: try await store.latest(tenantID: tenantID, serial: device.serial)))
        }
        return try jsonResponse(ListJSON(devices: devices))
    }

    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let device = try await ownDevice(context)
        let latest = try await store.latest(tenantID: device.tenantID, serial: device.serial)
        return try jsonResponse(DeviceEnvelope(device: json(device, latest: latest)))
    }

    @Sendable func update(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let serial = try serialParameter(context)
        let body = try await request.decodeStrict(UpdateBody.self, context: context)
        let name = try body.name.map { try IdentifierRules.validName($0, field: "name") }
        let newLocation = try body.location.map { try IdentifierRules.validName($0, field: "location") }
        let location: String?? = body.clearsLocation ? .some(nil) : newLocation.map { .some($0) }
        guard try await store.updateDevice(
            tenantID: context.identity.tenant.id, serial: serial, name: name, location: location)
        else { throw PlatformError.notFound("Device") }
        return try await show(request, context: context)
    }

    @Sendable func delete(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let serial = try serialParameter(context)
        guard try await store.deleteDevice(tenantID: context.identity.tenant.id, serial: serial) else {
            throw PlatformError.notFound("Device")
        }
        credentials.invalidate(serial: serial)
        return Response(status: .noContent)
    }

    @Sendable func rotateKey(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let serial = try serialParameter(context)
        let body = try await request.decodeStrictIfPresent(RotateBody.self, context: context) ?? RotateBody()
        if let grace = body.graceSeconds, !(0...31_536_000).contains(grace) {
            throw PlatformError.invalid("grace_seconds", "must be between 0 and 31536000")
        }
        let grace = body.graceSeconds.map(Double.init) ?? configuration.keyRotationGraceSeconds
        let key = Secrets.generate(prefix: Secrets.deviceKeyPrefix)
        let validUntil = clock.now().adding(seconds: grace)
        guard try await store.rotateKey(
            tenantID: context.identity.tenant.id, serial: serial, newKeyHash: Secrets.hash(key),
            previousValidUntil: validUntil)
        else { throw PlatformError.notFound("Device") }
        credentials.invalidate(serial: serial)
        let device = try await ownDevice(context)
        let latest = try await store.latest(tenantID: device.tenantID, serial: serial)
        let previousKeyValidUntil = try await store.credential(serial: serial)?.previousKeyExpiresAt
        return try jsonResponse(
            KeyJSON(
                device: json(device, latest: latest), apiKey: key,
                provisioningURI: ProvisioningURI.make(baseURL: configuration.effectivePublicURL, serial: serial, key: key),
                previousKeyValidUntil: previousKeyValidUntil))
    }

    @Sendable func revoke(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let serial = try serialParameter(context)
        guard try await store.revokeDevice(tenantID: context.identity.tenant.id, serial: serial, at: clock.now()) else {
            throw PlatformError.notFound("Device")
        }
        credentials.invalidate(serial: serial)
        return try await show(request, context: context)
    }

    @Sendable func latest(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let device = try await ownDevice(context)
        let sample = try await store.latest(tenantID: device.tenantID, serial: device.serial)
        return try jsonResponse(LatestJSON(device: device.serial, sample: sample.map(SampleJSON.init)))
    }

    private func serialParameter(_ context: AuthenticatedContext) throws -> String {
        guard let serial = context.parameters.get("serial") else { throw PlatformError.notFound("Device") }
        return serial
    }

    private func ownDevice(_ context: AuthenticatedContext) async throws -> Device {
        guard let device = try await store.device(tenantID: context.identity.tenant.id, serial: try serialParameter(context))
        else { throw PlatformError.notFound("Device") }
        return device
    }

    private func json(_ device: Device, latest: TelemetrySample?) -> DeviceJSON {
        DeviceJSON(device, latest: latest, now: clock.now(), onlineWindowSeconds: configuration.onlineWindowSeconds)
    }
}

/// The payload a device's QR code carries:
/// `thermostat://provision?v=1&url=…&serial=…&key=…`, each value percent-encoded.
enum ProvisioningURI {
    static func make(baseURL: String, serial: String, key: String) -> String {
        "thermostat://provision?v=1&url=\(encode(baseURL))&serial=\(encode(serial))&key=\(encode(key))"
    }

    private static let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")

    private static func encode(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? value
    }
}
