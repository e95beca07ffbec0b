import Foundation
import Hummingbird
import Mustache
import PlatformCore
import QRCode
import Storage

/// `/` (the devices overview), `/devices/new` and `/devices/<serial>` with rename, key rotation
/// and revocation, through `DeviceService` like the JSON API.
struct DevicePages {
    let devices: DeviceService
    let alerts: AlertService
    let pages: PageRenderer

    /// One device as the overview and the device page show it.
    struct DeviceRow {
        var serial: String
        var name: String
        var location: String?
        var status: String
        var online: Bool
        var revoked: Bool
        var insideText: String
        var outsideText: String
        var setpointText: String
        var mode: String
        var output: String
        var outputLabel: String
        var outputClass: String
        var lastSeen: String
        var lastSeenText: String
    }

    struct OverviewModel {
        var devices: [DeviceRow]
        var hasDevices: Bool
        var canWrite: Bool
    }

    /// A chart range: its name, width and the bucket the query uses.
    struct ChartRange {
        var name: String
        var label: String
        var seconds: Int
        var bucket: String
        var selected: Bool
    }

    struct DeviceModel {
        var device: DeviceRow
        var ranges: [ChartRange]
        var range: ChartRange
        var canWrite: Bool
        var error: String?
        /// The device's newest alerts (its "Alerts" section).
        var alerts: [AlertPages.AlertRow]
        var hasAlerts: Bool
    }

    struct NewDeviceModel {
        var serial: String
        var name: String
        var location: String
        var error: String?
    }

    struct KeyModel {
        var serial: String
        var name: String
        var apiKey: String
        var provisioningURI: String
        var qrSVG: String
        var rotated: Bool
        var previousKeyValidUntil: String?
    }

    static let ranges: [(name: String, label: String, seconds: Int, bucket: String)] = [
        ("1h", "1 hour", 3600, "1m"), ("24h", "24 hours", 86_400, "5m"), ("7d", "7 days", 604_800, "1h"),
        ("30d", "30 days", 2_592_000, "2h"),
    ]

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("", use: overview)
        group.get("devices/new", use: showNew)
        group.post("devices/new", use: create)
        group.get("devices/:serial", use: show)
        group.post("devices/:serial/rename", use: rename)
        group.post("devices/:serial/rotate", use: rotate)
        group.post("devices/:serial/revoke", use: revoke)
    }

    @Sendable func overview(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let summaries = try await devices.summaries(tenantID: context.identity.tenant.id)
        let rows = summaries.map(row)
        return try await pages.page(
            "overview", title: "Devices", section: .devices, context: context,
            content: OverviewModel(devices: rows, hasDevices: !rows.isEmpty, canWrite: context.identity.role.canWrite),
            flash: WebNotice.flash(request))
    }

    @Sendable func showNew(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        return try await newForm(context, NewDeviceModel(serial: "", name: "", location: ""))
    }

    @Sendable func create(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let form = context.form
        var model = NewDeviceModel(
            serial: form.text("serial") ?? "", name: form.text("name") ?? "", location: form.text("location") ?? "")
        do {
            let issued = try await devices.register(
                tenant: context.identity.tenant, serial: model.serial, name: model.name.isEmpty ? nil : model.name,
                location: model.location.isEmpty ? nil : model.location)
            return try await keyPage(issued, rotated: false, context: context)
        } catch let error as PlatformError
            where error.kind == .validation || error.kind == .conflict || error.code == "quota_exceeded"
        {
            model.error = error.message
            return try await newForm(context, model, status: ErrorMapping.status(for: error.kind))
        }
    }

    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await devicePage(request, context: context)
    }

    @Sendable func rename(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let serial = try serialParameter(context)
        do {
            let location: String?? = context.form["location"].map { text -> String? in
                let trimmed = text.trimmingCharacters(in: .whitespacesAndNewlines)
                return trimmed.isEmpty ? nil : trimmed
            }
            try await devices.update(
                tenantID: context.identity.tenant.id, serial: serial, name: context.form.text("name") ?? "",
                location: location)
        } catch let error as PlatformError where error.kind == .validation {
            return try await devicePage(request, context: context, error: error.message, status: .unprocessableContent)
        }
        return PageRenderer.redirect(to: "/devices/\(serial)?notice=renamed")
    }

    @Sendable func rotate(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let issued = try await devices.rotateKey(
            tenantID: context.identity.tenant.id, serial: try serialParameter(context), graceSeconds: nil)
        return try await keyPage(issued, rotated: true, context: context)
    }

    @Sendable func revoke(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try context.identity.requireWrite()
        let serial = try serialParameter(context)
        try await devices.revoke(tenantID: context.identity.tenant.id, serial: serial)
        return PageRenderer.redirect(to: "/devices/\(serial)?notice=revoked")
    }

    private func devicePage(
        _ request: Request, context: AuthenticatedContext, error: String? = nil, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        let summary = try await devices.summary(tenantID: context.identity.tenant.id, serial: try serialParameter(context))
        let requested = request.uri.queryParameters["range"].map(String.init) ?? "24h"
        let selected = Self.ranges.contains { $0.name == requested } ? requested : "24h"
        let ranges = Self.ranges.map {
            ChartRange(name: $0.name, label: $0.label, seconds: $0.seconds, bucket: $0.bucket, selected: $0.name == selected)
        }
        let alertRows = try await AlertPages.deviceAlertRows(
            alerts, tenantID: context.identity.tenant.id, serial: summary.device.serial, deviceName: summary.device.name)
        let model = DeviceModel(
            device: row(summary), ranges: ranges, range: ranges.first { $0.selected }!,
            canWrite: context.identity.role.canWrite, error: error, alerts: alertRows, hasAlerts: !alertRows.isEmpty)
        return try await pages.page(
            "device", title: summary.device.name, section: .devices, context: context, content: model,
            flash: WebNotice.flash(request), status: status)
    }

    private func newForm(
        _ context: AuthenticatedContext, _ model: NewDeviceModel, status: HTTPResponse.Status = .ok
    ) async throws -> Response {
        try await pages.page(
            "device-new", title: "Add a device", section: .devices, context: context, content: model, status: status)
    }

    /// The one page that ever shows a device key: the key, its provisioning URI and the QR code.
    private func keyPage(_ issued: DeviceService.IssuedKey, rotated: Bool, context: AuthenticatedContext) async throws
        -> Response
    {
        let qr = try QRCode(encoding: issued.provisioningURI, correction: .medium)
        let model = KeyModel(
            serial: issued.device.serial, name: issued.device.name, apiKey: issued.apiKey,
            provisioningURI: issued.provisioningURI,
            qrSVG: qr.svg(moduleSize: 5, quietZone: 4, title: "Provisioning QR code for \(issued.device.serial)"),
            rotated: rotated, previousKeyValidUntil: issued.previousKeyValidUntil?.iso8601)
        return try await pages.page(
            "device-key", title: rotated ? "New key" : "Device added", section: .devices, context: context,
            content: model, status: rotated ? .ok : .created)
    }

    private func serialParameter(_ context: AuthenticatedContext) throws -> String {
        guard let serial = context.parameters.get("serial"), IdentifierRules.isValidSerial(serial) else {
            throw PlatformError.notFound("Device")
        }
        return serial
    }

    private func row(_ summary: DeviceService.DeviceSummary) -> DeviceRow {
        let device = summary.device
        let latest = summary.latest
        let online = devices.isOnline(device)
        let revoked = device.revokedAt != nil
        let output = latest?.output ?? .off
        return DeviceRow(
            serial: device.serial, name: device.name, location: device.location,
            status: revoked ? "revoked" : (online ? "online" : "offline"), online: online, revoked: revoked,
            insideText: Self.temperature(latest?.tempInside), outsideText: Self.temperature(latest?.tempOutside),
            setpointText: Self.temperature(latest?.setpoint), mode: latest?.mode.rawValue ?? "—",
            output: latest.map { _ in output.rawValue } ?? "—",
            outputLabel: latest == nil ? "—" : Self.outputLabel(output),
            outputClass: Self.outputClass(output), lastSeen: device.lastSeen?.iso8601 ?? "",
            lastSeenText: device.lastSeen?.iso8601 ?? "never")
    }

    static func temperature(_ value: Double?) -> String {
        guard let value else { return "—" }
        return String(format: "%.1f °C", value)
    }

    static func outputLabel(_ output: ThermostatOutput) -> String {
        switch output {
        case .heatOn: "Heating"
        case .coolOn: "Cooling"
        case .off: "Idle"
        }
    }

    static func outputClass(_ output: ThermostatOutput) -> String {
        switch output {
        case .heatOn: "heating"
        case .coolOn: "cooling"
        case .off: "idle"
        }
    }
}

/// Rows are looked up by name, not by reflection: Mustache's `Mirror` lookup made a
/// 1,000-device overview spend most of its time finding fields (see BENCHMARKS.md).
extension DevicePages.DeviceRow: MustacheParent {
    func child(named name: String) -> Any? {
        switch name {
        case "serial": serial
        case "name": self.name
        case "location": location
        case "status": status
        case "online": online
        case "revoked": revoked
        case "insideText": insideText
        case "outsideText": outsideText
        case "setpointText": setpointText
        case "mode": mode
        case "output": output
        case "outputLabel": outputLabel
        case "outputClass": outputClass
        case "lastSeen": lastSeen
        case "lastSeenText": lastSeenText
        default: nil
        }
    }
}

/// Fixed messages a redirect can ask the next page to show (`?notice=CODE`): never text taken
/// from the request.
enum WebNotice {
    static let messages: [String: String] = [
        "renamed": "Device saved.",
        "revoked": "Device revoked: its key no longer works.",
        "token-revoked": "Token revoked.",
        "member-saved": "Role saved.",
        "invitation-sent": "Invitation sent. It is valid for 7 days; the invitee accepts it on their Account page.",
        "invitation-withdrawn": "Invitation withdrawn.",
        "invitation-accepted": "Invitation accepted: pick the tenant in the switcher at the top.",
        "invitation-declined": "Invitation declined.",
        "script-uploaded": "Script saved as a new version. It is not active until you activate it.",
        "script-activated": "Version activated.",
        "script-deactivated": "Script deactivated: it no longer runs.",
    ]

    static func flash(_ request: Request) -> LayoutModel.Flash? {
        request.uri.queryParameters["notice"].flatMap { messages[String($0)] }.map { .init(message: $0, isError: false) }
    }
}
