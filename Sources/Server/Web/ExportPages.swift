import Foundation
import Hummingbird
import PlatformCore

/// `/export`: pick a device (or all), a range and a format (CSV, the built-in formats and the
/// tenant's own active export scripts); the form downloads from the export API directly.
struct ExportPages {
    let exports: ExportService
    let devices: DeviceService
    let pages: PageRenderer

    struct Option {
        var value: String
        var label: String
    }

    struct ExportModel {
        var devices: [Option]
        var formats: [Option]
    }

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("export", use: show)
    }

    @Sendable func show(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let tenantID = context.identity.tenant.id
        let deviceOptions = try await devices.summaries(tenantID: tenantID).map {
            Option(value: $0.device.serial, label: "\($0.device.name) (\($0.device.serial))")
        }
        let formats = try await exports.formatNames(tenantID: tenantID).map { name in
            Option(value: name, label: ExportService.builtInFormats.contains(name) || name == "csv" ? name : "\(name) (your script)")
        }
        return try await pages.page(
            "export", title: "Export", section: .export, context: context,
            content: ExportModel(devices: deviceOptions, formats: formats))
    }
}
