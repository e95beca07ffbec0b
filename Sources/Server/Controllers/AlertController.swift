import Foundation
import Hummingbird
import PlatformCore
import Scripting
import Storage

/// `/api/alerts/…`: alerts (list, show, acknowledge), rules, channels (with "send test"),
/// silences and the delivery log, by `AlertService`'s rules.
struct AlertController {
    let alerts: AlertService

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("", use: list)
        group.get("channels/", use: listChannels)
        group.post("channels/", use: createChannel)
        group.get("channels/:id/", use: showChannel)
        group.patch("channels/:id/", use: updateChannel)
        group.delete("channels/:id/", use: deleteChannel)
        group.post("channels/:id/test/", use: testChannel)
        group.get("rules/", use: listRules)
        group.post("rules/", use: createRule)
        group.get("rules/:id/", use: showRule)
        group.patch("rules/:id/", use: updateRule)
        group.delete("rules/:id/", use: deleteRule)
        group.get("silences/", use: listSilences)
        group.post("silences/", use: createSilence)
        group.delete("silences/:id/", use: deleteSilence)
        group.get("deliveries/", use: listDeliveries)
        group.get("status/", use: status)
        group.post("deliveries/:id/retry/", use: retryDelivery)
        group.get(":id/", use: show)
        group.post(":id/ack/", use: acknowledge)
    }

    // MARK: Alerts

    @Sendable func list(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        var query = AlertQuery(tenantID: context.identity.tenant.id, limit: 100)
        if let states = parameters.get("state") {
            query.states = try states.split(separator: ",").map { name in
                guard let state = AlertState(rawValue: String(name)) else {
                    throw PlatformError.invalid("state", "must be pending, firing, resolved, no_data or error (comma-separated)", code: "invalid_enum")
                }
                return state
            }
        }
        if let device = parameters.get("device") {
            guard IdentifierRules.isValidSerial(device) else { throw PlatformError.invalid("device", "is not a serial") }
            query.deviceSerial = device
        }
        if let rule = parameters.get("rule") {
            guard let id = UUID(uuidString: rule) else { throw PlatformError.invalid("rule", "is not a rule id") }
            query.ruleID = id
        }
        if let limit = parameters.get("limit") {
            guard let value = Int(limit), (1...AlertService.maximumListLimit).contains(value) else {
                throw PlatformError.invalid("limit", "must be a whole number from 1 to \(AlertService.maximumListLimit)")
            }
            query.limit = value
        }
        if let after = parameters.get("after") {
            guard let cursor = Self.cursor(after) else { throw PlatformError.invalid("after", "is not a cursor from a previous page") }
            query.before = cursor
        }
        let page = try await alerts.alerts(query)
        var body = AlertPageJSON(alerts: page.map(AlertJSON.init))
        if page.count == query.limit, let last = page.last {
            body.next = "\(last.startedAt.microseconds).\(last.id.uuidString.lowercased())"
        }
        return try jsonResponse(body)
    }

    /// `<started_at microseconds>.<id>` of the last alert of a page.
    private static func cursor(_ text: String) -> (startedAt: Timestamp, id: UUID)? {
        let parts = text.split(separator: ".", maxSplits: 1)
        guard parts.count == 2, let micros = Int64(parts[0]), let id = UUID(uuidString: String(parts[1])) else { return nil }
        return (Timestamp(microseconds: micros), id)
    }

    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let alert = try await alerts.alert(tenantID: context.identity.tenant.id, id: try id(context, "Alert"))
        return try jsonResponse(["alert": AlertJSON(alert: alert)])
    }

    @Sendable func acknowledge(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try id(context, "Alert")
        try Self.requireEmpty(try await request.decodeObject(context: context))
        return try jsonResponse(["alert": AlertJSON(alert: try await alerts.acknowledge(by: context.identity, id: id))])
    }

    /// How far evaluation is for the tenant: samples still queued and the timer's runs.
    @Sendable func status(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try jsonResponse(try await alerts.status(tenantID: context.identity.tenant.id))
    }

    // MARK: Channels

    @Sendable func listChannels(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try jsonResponse(["channels": try await alerts.channels(tenantID: context.identity.tenant.id).map { ChannelJSON(channel: $0) }])
    }

    @Sendable func createChannel(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let channel = try await alerts.createChannel(by: context.identity, fields: try await request.decodeObject(context: context))
        return try jsonResponse(["channel": ChannelJSON(channel: channel, showSecret: true)], status: .created)
    }

    @Sendable func showChannel(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let channel = try await alerts.channel(tenantID: context.identity.tenant.id, id: try id(context, "Channel"))
        return try jsonResponse(["channel": ChannelJSON(channel: channel)])
    }

    @Sendable func updateChannel(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try id(context, "Channel")
        let channel = try await alerts.updateChannel(
            by: context.identity, id: id, fields: try await request.decodeObject(context: context))
        return try jsonResponse(["channel": ChannelJSON(channel: channel)])
    }

    @Sendable func deleteChannel(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await alerts.deleteChannel(by: context.identity, id: try id(context, "Channel"))
        return Response(status: .noContent)
    }

    @Sendable func testChannel(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try id(context, "Channel")
        try Self.requireEmpty(try await request.decodeObject(context: context))
        return try jsonResponse(["delivery": DeliveryJSON(delivery: try await alerts.testChannel(by: context.identity, id: id))])
    }

    // MARK: Rules

    @Sendable func listRules(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try jsonResponse(["rules": try await alerts.rules(tenantID: context.identity.tenant.id).map { RuleJSON(rule: $0) }])
    }

    @Sendable func createRule(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let rule = try await alerts.createRule(by: context.identity, fields: try await request.decodeObject(context: context))
        return try jsonResponse(["rule": RuleJSON(rule: rule)], status: .created)
    }

    @Sendable func showRule(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try jsonResponse(["rule": RuleJSON(rule: try await alerts.rule(tenantID: context.identity.tenant.id, id: try id(context, "Rule")))])
    }

    @Sendable func updateRule(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try id(context, "Rule")
        let rule = try await alerts.updateRule(by: context.identity, id: id, fields: try await request.decodeObject(context: context))
        return try jsonResponse(["rule": RuleJSON(rule: rule)])
    }

    @Sendable func deleteRule(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await alerts.deleteRule(by: context.identity, id: try id(context, "Rule"))
        return Response(status: .noContent)
    }

    // MARK: Silences

    @Sendable func listSilences(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let all = request.uri.queryParameters.get("all") == "true"
        let silences = try await alerts.silences(tenantID: context.identity.tenant.id, activeOnly: !all)
        return try jsonResponse(["silences": silences.map { SilenceJSON(silence: $0) }])
    }

    @Sendable func createSilence(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let silence = try await alerts.createSilence(by: context.identity, fields: try await request.decodeObject(context: context))
        return try jsonResponse(["silence": SilenceJSON(silence: silence)], status: .created)
    }

    @Sendable func deleteSilence(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try await alerts.deleteSilence(by: context.identity, id: try id(context, "Silence"))
        return Response(status: .noContent)
    }

    // MARK: Deliveries

    @Sendable func listDeliveries(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        var alertID: UUID?
        if let alert = request.uri.queryParameters.get("alert") {
            guard let id = UUID(uuidString: alert) else { throw PlatformError.invalid("alert", "is not an alert id") }
            alertID = id
        }
        let deliveries = try await alerts.deliveries(tenantID: context.identity.tenant.id, alertID: alertID, limit: 200)
        return try jsonResponse(["deliveries": deliveries.map { DeliveryJSON(delivery: $0) }])
    }

    @Sendable func retryDelivery(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let id = try id(context, "Delivery")
        try Self.requireEmpty(try await request.decodeObject(context: context))
        return try jsonResponse(["delivery": DeliveryJSON(delivery: try await alerts.retryDelivery(by: context.identity, id: id))])
    }

    private func id(_ context: AuthenticatedContext, _ what: String) throws -> UUID {
        guard let id = context.parameters.get("id").flatMap(UUID.init(uuidString:)) else { throw PlatformError.notFound(what) }
        return id
    }

    private static func requireEmpty(_ fields: [String: JSONValue]) throws {
        if let key = fields.keys.sorted().first { throw PlatformError.invalid(key, "is not a known field", code: "unknown_field") }
    }
}
