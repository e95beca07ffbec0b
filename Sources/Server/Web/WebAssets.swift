import Crypto
import Foundation
import Hummingbird
import Mustache
import PlatformCore

/// The dashboard's templates and static files, loaded once at start. A missing template folder,
/// static folder or Chart.js file stops the server with a message naming the setting.
struct WebAssets: Sendable {
    /// A static file held in memory with its validator.
    struct StaticFile: Sendable {
        var contents: ByteBuffer
        var contentType: String
        var etag: String
    }

    let templates: MustacheLibrary
    let files: [String: StaticFile]

    static let chartJSName = "chart.min.js"

    static func load(_ configuration: PlatformConfiguration) async throws -> WebAssets {
        let templateFolder = try PlatformConfiguration.locateFolder(
            configuration.templatesDirectory, variable: "THERMOSTAT_TEMPLATES_DIR")
        let templates: MustacheLibrary
        do {
            templates = try await MustacheLibrary(directory: templateFolder.path)
        } catch {
            throw ConfigurationError(
                variable: "THERMOSTAT_TEMPLATES_DIR", message: "has a template that does not parse: \(error)")
        }
        for name in PageRenderer.requiredTemplates where templates.getTemplate(named: name) == nil {
            throw ConfigurationError(
                variable: "THERMOSTAT_TEMPLATES_DIR", message: "'\(templateFolder.path)' lacks \(name).mustache")
        }
        let staticFolder = try PlatformConfiguration.locateFolder(
            configuration.staticDirectory, variable: "THERMOSTAT_STATIC_DIR")
        var files: [String: StaticFile] = [:]
        for name in try FileManager.default.contentsOfDirectory(atPath: staticFolder.path) where !name.hasPrefix(".") {
            guard let type = contentType(of: name) else { continue }
            let data = try Data(contentsOf: staticFolder.appendingPathComponent(name))
            files[name] = file(data, type: type)
        }
        guard let chart = FileManager.default.contents(atPath: configuration.chartJSPath) else {
            throw ConfigurationError(
                variable: "THERMOSTAT_CHARTJS_PATH",
                message: "names '\(configuration.chartJSPath)', which cannot be read: install Debian's libjs-chart.js (make run does) or point the setting at chart.min.js")
        }
        files[chartJSName] = file(chart, type: "text/javascript; charset=utf-8")
        return WebAssets(templates: templates, files: files)
    }

    private static func file(_ data: Data, type: String) -> StaticFile {
        let digest = SHA256.hash(data: data).prefix(12).lowercaseHex
        return StaticFile(contents: ByteBuffer(bytes: data), contentType: type, etag: "\"\(digest)\"")
    }

    private static func contentType(of name: String) -> String? {
        switch (name as NSString).pathExtension {
        case "css": "text/css; charset=utf-8"
        case "js": "text/javascript; charset=utf-8"
        case "svg": "image/svg+xml"
        case "png": "image/png"
        case "ico": "image/x-icon"
        default: nil
        }
    }
}

/// `GET /static/<name>`: the dashboard's files, cacheable and revalidated by `ETag`.
struct StaticFileController {
    let assets: WebAssets

    func addRoutes(to router: Router<AppRequestContext>) {
        router.get("static/:name", use: serve)
    }

    @Sendable func serve(_ request: Request, context: AppRequestContext) async throws -> Response {
        guard let name = context.parameters.get("name"), let file = assets.files[name] else {
            throw PlatformError.notFound("File")
        }
        var headers = HTTPFields()
        headers[.eTag] = file.etag
        headers[.cacheControl] = "public, max-age=3600, must-revalidate"
        if request.headers[.ifNoneMatch]?.split(separator: ",").contains(where: {
            $0.trimmingCharacters(in: .whitespaces) == file.etag
        }) == true {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = file.contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: file.contents))
    }
}
