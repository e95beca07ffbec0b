import Foundation
import Hummingbird
import PlatformCore

/// `GET /api/telemetry/export/`: a download of the tenant's telemetry (one device or all) in
/// CSV, a built-in format or one of the tenant's export scripts, streamed as it is read.
/// Errors known before the first byte are JSON errors; a failure after it aborts the response
/// without its terminating chunk, so no client mistakes a truncated file for a whole one.
struct ExportController {
    let exports: ExportService

    func addRoutes(to group: RouterGroup<AuthenticatedContext>) {
        group.get("export/", use: export)
    }

    @Sendable func export(_ request: Request, context: AuthenticatedContext) async throws -> Response {
        let parameters = request.uri.queryParameters
        let device = parameters["device"].map(String.init)
        if let device, device.isEmpty { throw PlatformError.invalid("device", "must not be empty") }
        let prepared = try await exports.prepare(
            identity: context.identity, formatName: parameters["format"].map(String.init), device: device,
            from: parameters["from"].map(String.init), to: parameters["to"].map(String.init))
        var headers = HTTPFields()
        headers[.contentType] = prepared.contentType
        headers[.contentDisposition] = "attachment; filename=\"\(prepared.filename)\""
        headers[.cacheControl] = "no-store"
        let exports = exports
        let logger = context.logger
        return Response(
            status: .ok, headers: headers,
            body: ResponseBody { writer in
                var prepared = prepared
                do {
                    try await writer.write(ByteBuffer(string: prepared.firstChunk))
                    prepared.firstChunk = ""
                    while let chunk = try await exports.nextChunk(&prepared) {
                        try await writer.write(ByteBuffer(string: chunk))
                    }
                    let footer = try await exports.footer(prepared)
                    if !footer.isEmpty { try await writer.write(ByteBuffer(string: footer)) }
                } catch {
                    logger.warning("export aborted after its first byte", metadata: ["error": "\(error)"])
                    throw error
                }
                try await writer.finish(nil)
            })
    }
}
