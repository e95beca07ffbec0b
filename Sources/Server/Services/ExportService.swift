import Crypto
import Foundation
import Hummingbird
import PlatformCore
import ScriptWorkers
import Scripting
import Storage

/// Telemetry exports: CSV rendered here, the built-in export plugins (`ndjson`,
/// `influx-line-protocol`) and the tenant's active export scripts rendered by its Lua worker,
/// many rows per call. Rows are read in keyset pages, device by device (by serial, then time),
/// so memory stays flat whatever the size. Everything that can be known before the first byte
/// — the format, the range, the device, the script's header and first rows — is checked in
/// `prepare`, so those failures are ordinary JSON errors; a failure after that aborts the
/// stream (see `ExportController`).
struct ExportService: Sendable {
    let store: any PlatformStore
    let catalog: PluginCatalog
    let engine: ScriptEngine
    let clock: any WallClock

    /// Rows read from the store per page.
    static let pageSize = 10_000
    /// Rows rendered per worker call.
    static let scriptBatch = 1000
    /// The built-in export plugins offered as formats, beside `csv`.
    static let builtInFormats = ["ndjson", "influx-line-protocol"]
    /// Where "no `from`" starts and "no `to`" ends: all stored data.
    static let beginning = Timestamp(microseconds: 0)
    static let end = Timestamp(seconds: 253_402_300_799)

    /// How rows become bytes.
    enum Renderer: Sendable {
        /// With `rollups`, the range holds downsampled rows and each row gets their columns.
        case csv(rollups: Bool)
        case lua(script: WorkerScript, source: String, tenant: WorkerTenant)
    }

    /// An export checked and ready to stream.
    struct Prepared: Sendable {
        var renderer: Renderer
        var contentType: String
        var filename: String
        var tenantID: UUID
        var serials: [String]
        var from: Timestamp
        var to: Timestamp
        /// Whether the range holds rollups or may gain some while the export runs (else pages
        /// read raw rows only).
        var includesRollups: Bool
        var now: Timestamp
        /// What goes out first: the header and the first rows, already rendered.
        var firstChunk: String
        /// Where reading goes on after `firstChunk`.
        var cursor: Cursor
    }

    /// A position in the export: a device (index into `serials`) and the last timestamp sent.
    struct Cursor: Sendable {
        var deviceIndex = 0
        var after: Timestamp?
        var isFinished = false
    }

    /// Checks everything knowable before the first byte and renders the first chunk.
    func prepare(
        identity: Identity, formatName: String?, device: String?, from fromText: String?, to toText: String?
    ) async throws -> Prepared {
        let tenant = identity.tenant
        let now = clock.now()
        let from = try fromText.map { try Self.timestamp($0, field: "from") } ?? Self.beginning
        let to = try toText.map { try Self.timestamp($0, field: "to") } ?? Self.end
        guard from <= to else { throw PlatformError.invalid("from", "must not be after 'to'") }
        let serials: [String]
        if let device {
            guard try await store.device(tenantID: tenant.id, serial: device) != nil else {
                throw PlatformError.notFound("Device")
            }
            serials = [device]
        } else {
            serials = try await store.devices(tenantID: tenant.id).map(\.serial).sorted()
        }
        let name = formatName ?? "csv"
        // Rollups are read when the range holds some, or when the tier's downsampling may roll
        // part of the range up while the export runs (rows it moves would be missed otherwise).
        let shortestStep = await engine.tierLimits(for: tenant)?.downsample.map(\.afterDays).min()
        let mayRollUp = shortestStep.map { from < now.adding(seconds: -Double($0) * 86_400) } ?? false
        let hasRollups = try await store.hasRollups(tenantID: tenant.id, serial: device, from: from, to: to)
        let includesRollups = hasRollups || mayRollUp
        // The CSV columns are fixed by what the range holds now: rollups made during the export
        // come out as rows of averages under the contract's columns.
        var renderer = Renderer.csv(rollups: hasRollups)
        var contentType = "text/csv; charset=utf-8"
        var fileExtension = "csv"
        if name != "csv" {
            let (script, source) = try await luaFormat(named: name, tenant: tenant)
            let workerTenant = await engine.workerTenant(tenant)
            let format = try await render(script, source: source, tenant: workerTenant, piece: .format, now: now)
            if case .failed(let message) = format { throw Self.scriptFailure(message, name: name) }
            guard case .exportFormat(let declaredType, let declaredExtension) = format else {
                throw Self.scriptFailure("the script declared no format", name: name)
            }
            guard Self.isMediaType(declaredType), Self.isExtension(declaredExtension) else {
                throw Self.scriptFailure(
                    "content_type must be a media type such as text/plain and extension 1–10 letters or digits", name: name)
            }
            renderer = .lua(script: script, source: source, tenant: workerTenant)
            contentType = declaredType
            fileExtension = declaredExtension
        }
        var prepared = Prepared(
            renderer: renderer, contentType: contentType,
            filename: Self.filename(
                tenant: tenant.slug, device: device, from: fromText == nil ? nil : from, to: toText == nil ? now : to,
                fileExtension: fileExtension),
            tenantID: tenant.id, serials: serials, from: from, to: to, includesRollups: includesRollups, now: now,
            firstChunk: "", cursor: Cursor())
        var first = try await header(prepared)
        if let rows = try await nextChunk(&prepared) { first += rows }
        prepared.firstChunk = first
        return prepared
    }

    /// The next rendered chunk, or nil when the rows are done (the footer still to come).
    func nextChunk(_ prepared: inout Prepared) async throws -> String? {
        guard let page = try await nextPage(&prepared) else { return nil }
        switch prepared.renderer {
        case .csv(let rollups):
            return CSVFormat.rows(page, rollups: rollups)
        case .lua(let script, let source, let tenant):
            var output = ""
            var start = page.startIndex
            while start < page.endIndex {
                let end = min(start + Self.scriptBatch, page.endIndex)
                let result = try await render(
                    script, source: source, tenant: tenant, piece: .rows, samples: Array(page[start..<end]), now: prepared.now)
                output += try text(result, name: script.name)
                start = end
            }
            return output
        }
    }

    func footer(_ prepared: Prepared) async throws -> String {
        guard case .lua(let script, let source, let tenant) = prepared.renderer else { return "" }
        let result = try await render(script, source: source, tenant: tenant, piece: .footer, now: prepared.now)
        return try text(result, name: script.name)
    }

    private func header(_ prepared: Prepared) async throws -> String {
        switch prepared.renderer {
        case .csv(let rollups):
            return rollups ? CSVFormat.headerWithRollups : CSVFormat.header
        case .lua(let script, let source, let tenant):
            let result = try await render(script, source: source, tenant: tenant, piece: .header, now: prepared.now)
            return try text(result, name: script.name)
        }
    }

    /// The next page of rows in (device, time) order; nil at the end.
    private func nextPage(_ prepared: inout Prepared) async throws -> [TelemetrySample]? {
        while !prepared.cursor.isFinished {
            guard prepared.cursor.deviceIndex < prepared.serials.count else {
                prepared.cursor.isFinished = true
                return nil
            }
            let range = TelemetryRange(
                tenantID: prepared.tenantID, serial: prepared.serials[prepared.cursor.deviceIndex], from: prepared.from,
                to: prepared.to, after: prepared.cursor.after, limit: Self.pageSize,
                includesRollups: prepared.includesRollups)
            let page = try await store.samples(range)
            if page.count < Self.pageSize {
                prepared.cursor.deviceIndex += 1
                prepared.cursor.after = nil
            } else {
                prepared.cursor.after = page.last?.timestamp
            }
            if !page.isEmpty { return page }
        }
        return nil
    }

    /// Every format name the tenant can export in: `csv`, the built-ins, its active export scripts.
    func formatNames(tenantID: UUID) async throws -> [String] {
        let scripts = try await store.activeScripts(tenantID: tenantID, hook: ScriptHook.export.rawValue)
        return ["csv"] + Self.builtInFormats + scripts.map(\.0.name).filter { $0 != "csv" && !Self.builtInFormats.contains($0) }.sorted()
    }

    /// The export script or built-in plugin called `name`; 422 listing the valid formats.
    private func luaFormat(named name: String, tenant: Tenant) async throws -> (WorkerScript, String) {
        if Self.builtInFormats.contains(name), let plugin = catalog.plugins[name], plugin.hook == .export {
            let digest = SHA256.hash(data: Data(("plugin:" + name + ":" + plugin.version).utf8))
            let id = digest.withUnsafeBytes { UUID(uuid: $0.loadUnaligned(as: uuid_t.self)) }
            return (WorkerScript(id: id, version: 1, name: name, configJSON: "{}", source: nil), "return require(\"\(name)\")")
        }
        let active = try await store.activeScripts(tenantID: tenant.id, hook: ScriptHook.export.rawValue)
        if let (script, version) = active.first(where: { $0.0.name == name }) {
            return (
                WorkerScript(
                    id: script.id, version: version.version, name: script.name, configJSON: version.configJSON, source: nil),
                version.source
            )
        }
        let valid = try await formatNames(tenantID: tenant.id)
        throw PlatformError.invalid(
            "format", "must be one of: \(valid.joined(separator: ", "))", code: "unknown_format")
    }

    /// One piece from the worker; a worker killed at the deadline becomes the script's failure:
    /// before the first byte a 422 the client sees as JSON, after it an error that aborts the stream.
    private func render(
        _ script: WorkerScript, source: String, tenant: WorkerTenant, piece: ExportJob.Piece,
        samples: [TelemetrySample] = [], now: Timestamp
    ) async throws -> WorkerJobResult {
        do {
            return try await engine.export(script, source: source, tenant: tenant, piece: piece, samples: samples, now: now)
        } catch let error as WorkerCallError {
            throw Self.scriptFailure(error.description, name: script.name)
        }
    }

    private func text(_ result: WorkerJobResult, name: String) throws -> String {
        switch result {
        case .exported(let text): return text
        case .failed(let message): throw Self.scriptFailure(message, name: name)
        default: throw Self.scriptFailure("the worker answered something else", name: name)
        }
    }

    static func scriptFailure(_ message: String, name: String) -> PlatformError {
        PlatformError(
            .validation, code: "export_script_failed", message: "Export format '\(name)' failed: \(message)", field: "format")
    }

    private static func timestamp(_ text: String, field: String) throws -> Timestamp {
        guard let value = Timestamp(iso8601: text) else {
            throw PlatformError.invalid(field, "must be an ISO 8601 date-time with a zone", code: "invalid_timestamp")
        }
        return value
    }

    /// `<tenant>-<device|all>-<from|start>-<to>.<ext>`, times as `20261201T000000Z`.
    static func filename(tenant: String, device: String?, from: Timestamp?, to: Timestamp, fileExtension: String) -> String {
        func compact(_ time: Timestamp) -> String {
            let text = time.iso8601
            let seconds = text.prefix(19).filter { $0 != "-" && $0 != ":" }
            return seconds + "Z"
        }
        return "\(tenant)-\(device ?? "all")-\(from.map(compact) ?? "start")-\(compact(to)).\(fileExtension)"
    }

    /// A media type safe to send as a header: `type/subtype` with an optional charset.
    static func isMediaType(_ text: String) -> Bool {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$&^_.+-")
        let parts = text.split(separator: ";", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
        let type = parts[0].split(separator: "/", omittingEmptySubsequences: false)
        guard text.count <= 100, type.count == 2, type.allSatisfy({ !$0.isEmpty && $0.allSatisfy(allowed.contains) }) else {
            return false
        }
        guard parts.count == 2 else { return true }
        let parameter = parts[1].lowercased()
        return parameter.hasPrefix("charset=") && parameter.dropFirst(8).allSatisfy { allowed.contains($0) }
            && parameter.count > 8
    }

    static func isExtension(_ text: String) -> Bool {
        (1...10).contains(text.count) && text.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber) }
    }
}

/// RFC 4180 CSV of telemetry: a header row, CRLF line ends, fields quoted where needed,
/// ISO 8601 UTC timestamps, numbers in their shortest exact form, an empty cell for a null.
enum CSVFormat {
    static let columns = [
        "device_id", "timestamp", "mode", "temp_inside_c", "temp_outside_c", "setpoint_c", "hysteresis_c", "output",
    ]
    /// Columns added when the range holds rollups: empty on raw rows.
    static let rollupColumns = [
        "rollup_seconds", "samples", "temp_inside_min_c", "temp_inside_max_c", "temp_outside_min_c", "temp_outside_max_c",
        "setpoint_min_c", "setpoint_max_c", "heating_share", "cooling_share",
    ]
    static let header = columns.joined(separator: ",") + "\r\n"
    static let headerWithRollups = (columns + rollupColumns).joined(separator: ",") + "\r\n"

    static func rows(_ samples: some Collection<TelemetrySample>, rollups: Bool = false) -> String {
        var output = ""
        output.reserveCapacity(samples.count * 80)
        for sample in samples {
            output += field(sample.deviceSerial)
            output += ","
            output += sample.timestamp.iso8601
            output += ","
            output += sample.mode.rawValue
            output += ","
            output += number(sample.tempInside)
            output += ","
            if let outside = sample.tempOutside { output += number(outside) }
            output += ","
            output += number(sample.setpoint)
            output += ","
            output += number(sample.hysteresis)
            output += ","
            output += sample.output.rawValue
            if rollups { output += rollupFields(sample.rollup) }
            output += "\r\n"
        }
        return output
    }

    /// The rollup columns of one row, each after a comma.
    private static func rollupFields(_ rollup: SampleRollup?) -> String {
        guard let rollup else { return String(repeating: ",", count: rollupColumns.count) }
        let values: [String] = [
            String(rollup.resolutionSeconds), String(rollup.count), number(rollup.tempInsideMin), number(rollup.tempInsideMax),
            rollup.tempOutsideMin.map(number) ?? "", rollup.tempOutsideMax.map(number) ?? "", number(rollup.setpointMin),
            number(rollup.setpointMax), number(rollup.heatingShare), number(rollup.coolingShare),
        ]
        return values.reduce(into: "") { $0 += "," + $1 }
    }

    /// A text field, quoted (quotes doubled) when it holds a comma, a quote, CR or LF.
    static func field(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\r" || $0 == "\n" || $0 == "\r\n" }) else {
            return text
        }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    /// The shortest text that reads back as the same number; whole numbers without ".0".
    static func number(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        return "\(value)"
    }
}
