/// The four things a tenant can program, each with the functions its script table must have.
public enum ScriptHook: String, Sendable, CaseIterable, Codable {
    case ingest
    case alert
    case export
    case storagePolicy = "storage_policy"

    /// Functions the returned table must define.
    public var requiredFunctions: [String] {
        switch self {
        case .ingest: ["transform"]
        case .alert: ["evaluate"]
        case .export: ["row"]
        case .storagePolicy: ["limits", "on_over_quota"]
        }
    }

    /// String fields the returned table must define.
    public var requiredStrings: [String] {
        self == .export ? ["content_type", "extension"] : []
    }
}
