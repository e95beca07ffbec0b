import Foundation
import Hummingbird
import PlatformCore
import Storage

/// `/api/devices/`: register, list, show, rename, rotate key, revoke, delete, latest sample.
/// Everything is scoped to the caller's tenant; another tenant's serial is a 404.
struct DeviceController {
    let devices: DeviceService
    let store: any TelemetryStore
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
        let issued = try await devices.register(
            tenant: context.identity.tenant, serial: body.serial, name: body.name, location: body.location)
        return try jsonResponse(keyJSON(issued, latest: nil), status: .created)
    }

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let summaries = try await devices.summaries(tenantID: context.identity.tenant.id)
        return try jsonResponse(ListJSON(devices: summaries.map { json($0.device, latest: $0.latest) }))
    }

    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let summary = try await devices.summary(tenantID: context.identity.tenant.id, serial: try serialParameter(context))
        return try jsonResponse(DeviceEnvelope(device: json(summary.device, latest: summary.latest)))
    }

    @Sendable func update(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let serial = try serialParameter(context)
        let body = try await request.decodeStrict(UpdateBody.self, context: context)
        let location: String?? = body.clearsLocation ? .some(nil) : body.location.map { .some($0) }
        try await devices.update(tenantID: context.identity.tenant.id, serial: serial, name: body.name, location: location)
        return try await show(request, context: context)
    }

    @Sendable func delete(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        try await devices.delete(tenantID: context.identity.tenant.id, serial: try serialParameter(context))
        return Response(status: .noContent)
    }

    @Sendable func rotateKey(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let serial = try serialParameter(context)
        let body = try await request.decodeStrictIfPresent(RotateBody.self, context: context) ?? RotateBody()
        let issued = try await devices.rotateKey(
            tenantID: context.identity.tenant.id, serial: serial, graceSeconds: body.graceSeconds)
        let latest = try await store.latest(tenantID: context.identity.tenant.id, serial: serial)
        return try jsonResponse(keyJSON(issued, latest: latest))
    }

    @Sendable func revoke(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        try await devices.revoke(tenantID: context.identity.tenant.id, serial: try serialParameter(context))
        return try await show(request, context: context)
    }

    @Sendable func latest(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let summary = try await devices.summary(tenantID: context.identity.tenant.id, serial: try serialParameter(context))
        return try jsonResponse(LatestJSON(device: summary.device.serial, sample: summary.latest.map(SampleJSON.init)))
    }

    private func serialParameter(_ context: AuthenticatedContext) throws -> String {
        guard let serial = context.parameters.get("serial") else { throw PlatformError.notFound("Device") }
        return serial
    }

    private func keyJSON(_ issued: DeviceService.IssuedKey, latest: TelemetrySample?) -> KeyJSON {
        KeyJSON(
            device: json(issued.device, latest: latest), apiKey: issued.apiKey, provisioningURI: issued.provisioningURI,
            previousKeyValidUntil: issued.previousKeyValidUntil)
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
