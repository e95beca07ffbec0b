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
        // An empty parameter counts as absent, as an HTML form sends it for "all" or "any time".
        let parameters = request.uri.queryParameters
        func parameter(_ name: Substring) -> String? {
            parameters[name].map(String.init).flatMap { $0.isEmpty ? nil : $0 }
        }
        let prepared = try await exports.prepare(
            identity: context.identity, formatName: parameter("format"), device: parameter("device"),
            from: parameter("from"), to: parameter("to"))
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
