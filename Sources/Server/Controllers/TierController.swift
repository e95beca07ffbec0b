import Foundation
import Hummingbird
import PlatformCore
import Scripting
import Storage

/// Storage tiers over HTTP: `GET /api/usage/` for every member (the tenant's tier, limits and
/// usage), and `/api/admin/tenants/` for platform admins only (list, assign a tier, disable and
/// enable). Everyone else gets 403 on the admin routes.
struct TierController {
    let store: any PlatformStore
    let quotas: QuotaService
    let scripts: ScriptEngine
    let retention: RetentionJob
    let downsampling: DownsampleJob
    let clock: any WallClock
    /// A limit counts as nearly used from this share on.
    static let warningShare = 0.8

    struct LimitJSON: Encodable {
        var used: Int
        var limit: Int?
        var warning: Bool

        init(used: Int, limit: Int?) {
            self.used = used
            self.limit = limit
            warning = limit.map { Double(used) >= Double($0) * TierController.warningShare } ?? false
        }
    }

    struct JobJSON: Encodable {
        var lastRun: Timestamp?
        var rows: Int
        var seconds: Double?

        init(_ report: JobReport) {
            lastRun = report.lastRun
            rows = report.rows
            seconds = report.seconds
        }

        enum CodingKeys: String, CodingKey {
            case rows, seconds
            case lastRun = "last_run"
        }
    }

    struct DownsampleJSON: Encodable {
        var afterDays: Int
        var resolution: String

        enum CodingKeys: String, CodingKey {
            case resolution
            case afterDays = "after_days"
        }
    }

    struct UsageJSON: Encodable {
        var tier: String
        var devices: LimitJSON
        var samples: LimitJSON
        var bytesEstimate: Int
        var retentionDays: Int?
        var ingestPerMinute: Int?
        var onOverQuota: String?
        var downsample: [DownsampleJSON]
        var countedAt: Timestamp?
        var jobs: [String: JobJSON]

        enum CodingKeys: String, CodingKey {
            case tier, devices, samples, downsample, jobs
            case bytesEstimate = "bytes_estimate"
            case retentionDays = "retention_days"
            case ingestPerMinute = "ingest_per_minute"
            case onOverQuota = "on_over_quota"
            case countedAt = "counted_at"
        }
    }

    struct AdminTenantJSON: Encodable {
        var slug: String
        var name: String
        var tier: String
        var usage: Usage
        var disabled: Bool
        /// Whether a contract policy replaces the tier's.
        var contractPolicy: Bool
        var createdAt: Timestamp

        struct Usage: Encodable {
            var devices: Int
            var samples: Int
        }

        enum CodingKeys: String, CodingKey {
            case slug, name, tier, usage, disabled
            case contractPolicy = "contract_policy"
            case createdAt = "created_at"
        }
    }

    struct TierBody: StrictRequestBody {
        static let fields: Set<String> = ["tier"]
        var tier: String
    }

    struct PolicyBody: StrictRequestBody {
        static let fields: Set<String> = ["source"]
        var source: String
    }

    /// About 60 bytes per stored sample with its index entry, on either backend.
    static let bytesPerSample = 60

    func addRoutes(usage: RouterGroup<AuthenticatedContext>, admin: RouterGroup<AuthenticatedContext>) {
        usage.get("", use: usageReport)
        admin.get("", use: listTenants)
        admin.post(":slug/tier/", use: setTier)
        admin.post(":slug/disable/", use: disable)
        admin.post(":slug/enable/", use: enable)
        admin.put(":slug/policy/", use: assignPolicy)
        admin.delete(":slug/policy/", use: removePolicy)
    }

    @Sendable func usageReport(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let tenant = context.identity.tenant
        let limits = await quotas.limits(for: tenant)
        let samples = quotas.samples(tenantID: tenant.id)
        let retention = retention.log.report(for: tenant.id)
        let downsampling = downsampling.log.report(for: tenant.id)
        return try jsonResponse(
            UsageJSON(
                tier: tenant.tier,
                devices: LimitJSON(used: try await store.deviceCount(tenantID: tenant.id), limit: limits?.maxDevices),
                samples: LimitJSON(used: samples, limit: limits?.maxSamples), bytesEstimate: samples * Self.bytesPerSample,
                retentionDays: limits?.retentionDays, ingestPerMinute: limits?.ingestPerMinute,
                onOverQuota: limits?.onOverQuota.rawValue,
                downsample: (limits?.downsample ?? []).map { DownsampleJSON(afterDays: $0.afterDays, resolution: $0.resolution) },
                countedAt: quotas.countedAt,
                jobs: [
                    "retention": JobJSON(retention), "downsample": JobJSON(downsampling),
                ]))
    }

    @Sendable func listTenants(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try requirePlatformAdmin(context, writing: false)
        var items: [AdminTenantJSON] = []
        for tenant in try await store.allTenants() { items.append(try await adminRow(tenant)) }
        return try jsonResponse(["tenants": items])
    }

    @Sendable func setTier(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let tenant = try await tenant(context)
        let body = try await request.decodeStrict(TierBody.self, context: context)
        let tiers = scripts.availableTiers()
        guard tiers.contains(body.tier) else {
            throw PlatformError.invalid("tier", "must be one of: \(tiers.joined(separator: ", "))", code: "invalid_enum")
        }
        try await store.setTier(tenantID: tenant.id, tier: body.tier)
        quotas.tierChanged(tenant.id)
        return try await adminJSON(tenant.slug)
    }

    @Sendable func disable(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let tenant = try await tenant(context)
        try await quotas.setDisabled(tenant.id, true)
        return try await adminJSON(tenant.slug)
    }

    @Sendable func enable(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let tenant = try await tenant(context)
        try await quotas.setDisabled(tenant.id, false)
        return try await adminJSON(tenant.slug)
    }

    /// A storage policy for this tenant alone (a special contract): it replaces the tier's
    /// policy. Validated in a worker like any storage policy script.
    @Sendable func assignPolicy(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let tenant = try await tenant(context)
        let body = try await request.decodeStrict(PolicyBody.self, context: context)
        guard body.source.utf8.count <= ScriptService.maximumSourceBytes else {
            throw PlatformError(.payloadTooLarge, code: "script_too_large", message: "Scripts are limited to 32 KiB", field: "source")
        }
        if let error = try await scripts.validate(
            source: body.source, name: "contract", hook: .storagePolicy, tenant: tenant)
        {
            throw ScriptService.invalidScript(error)
        }
        try await store.setContractPolicy(tenantID: tenant.id, source: body.source, at: clock.now())
        quotas.tierChanged(tenant.id)
        return try await adminJSON(tenant.slug)
    }

    @Sendable func removePolicy(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        try requirePlatformAdmin(context)
        let tenant = try await tenant(context)
        try await store.setContractPolicy(tenantID: tenant.id, source: nil, at: clock.now())
        quotas.tierChanged(tenant.id)
        return try await adminJSON(tenant.slug)
    }

    private func adminJSON(_ slug: String) async throws -> Response {
        guard let tenant = try await store.tenant(slug: slug) else { throw PlatformError.notFound("Tenant") }
        return try jsonResponse(["tenant": try await adminRow(tenant)])
    }

    /// A tenant as the admin list shows it.
    private func adminRow(_ tenant: Tenant) async throws -> AdminTenantJSON {
        AdminTenantJSON(
            slug: tenant.slug, name: tenant.name, tier: tenant.tier,
            usage: .init(devices: try await store.deviceCount(tenantID: tenant.id), samples: quotas.samples(tenantID: tenant.id)),
            disabled: quotas.isDisabled(tenant.id),
            contractPolicy: try await store.contractPolicy(tenantID: tenant.id) != nil, createdAt: tenant.createdAt)
    }

    private func tenant(_ context: AuthenticatedContext) async throws -> Tenant {
        guard let slug = context.parameters.get("slug"), let tenant = try await store.tenant(slug: slug) else {
            throw PlatformError.notFound("Tenant")
        }
        return tenant
    }

    /// A platform admin, with a session or a write token (a read token only reads the list).
    private func requirePlatformAdmin(_ context: AuthenticatedContext, writing: Bool = true) throws {
        guard context.identity.user.isPlatformAdmin else {
            throw PlatformError(.forbidden, code: "forbidden", message: "Only platform admins manage tenants")
        }
        if writing { try context.identity.requireWrite() }
    }
}
