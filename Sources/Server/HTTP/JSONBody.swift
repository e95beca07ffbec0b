import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import PlatformCore
import Scripting

/// Strict JSON request decoding: malformed JSON is a 400, unknown fields, wrong types and
/// missing fields are a 422 naming the field, and bodies over 64 KiB are a 413.
protocol StrictRequestBody: Decodable {
    /// Every field the body may contain.
    static var fields: Set<String> { get }
}

/// No JSON API body other than telemetry comes close to this.
private let strictBodyLimit = 64 * 1024

extension Request {
    func decodeStrict<Body: StrictRequestBody>(_ type: Body.Type, context: some RequestContext) async throws -> Body {
        let buffer = try await body.collect(upTo: strictBodyLimit)
        return try Self.decodeStrict(type, from: buffer)
    }

    /// Like `decodeStrict`, but an empty body (an optional one left out) is nil.
    func decodeStrictIfPresent<Body: StrictRequestBody>(_ type: Body.Type, context: some RequestContext) async throws
        -> Body?
    {
        let buffer = try await body.collect(upTo: strictBodyLimit)
        return buffer.readableBytes == 0 ? nil : try Self.decodeStrict(type, from: buffer)
    }

    /// The body as a JSON object of values, for bodies where a `null` differs from a missing
    /// field (partial updates); its fields are checked by the caller. An empty body is `{}`.
    func decodeObject(context: some RequestContext) async throws -> [String: JSONValue] {
        let buffer = try await body.collect(upTo: strictBodyLimit)
        guard buffer.readableBytes > 0 else { return [:] }
        let data = Data(buffer: buffer, byteTransferStrategy: .noCopy)
        guard (try? JSONSerialization.jsonObject(with: data)) != nil, let value = try? JSONDecoder().decode(JSONValue.self, from: data)
        else {
            throw PlatformError.malformed("Request body is not valid JSON")
        }
        guard case .object(let fields) = value else { throw PlatformError.malformed("Request body must be a JSON object") }
        return fields
    }

    private static func decodeStrict<Body: StrictRequestBody>(_ type: Body.Type, from buffer: ByteBuffer) throws -> Body {
        let data = Data(buffer: buffer, byteTransferStrategy: .noCopy)
        guard let object = try? JSONSerialization.jsonObject(with: data) else {
            throw PlatformError.malformed("Request body is not valid JSON")
        }
        guard let dictionary = object as? [String: Any] else {
            throw PlatformError.malformed("Request body must be a JSON object")
        }
        for key in dictionary.keys.sorted() where !Body.fields.contains(key) {
            throw PlatformError.invalid(key, "is not a known field", code: "unknown_field")
        }
        do {
            return try JSONDecoder().decode(Body.self, from: data)
        } catch let error as PlatformError {
            throw error
        } catch let DecodingError.typeMismatch(_, context) {
            throw PlatformError.invalid(path(context.codingPath), "has the wrong type", code: "wrong_type")
        } catch let DecodingError.valueNotFound(_, context) {
            throw PlatformError.invalid(path(context.codingPath), "must not be null", code: "missing_field")
        } catch let DecodingError.keyNotFound(key, context) {
            throw PlatformError.invalid(path(context.codingPath + [key]), "is required", code: "missing_field")
        } catch let DecodingError.dataCorrupted(context) {
            throw PlatformError.invalid(path(context.codingPath), context.debugDescription, code: "invalid_field")
        }
    }

    private static func path(_ codingPath: [any CodingKey]) -> String {
        codingPath.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }.joined(separator: ".")
    }
}

/// Encodes a response body as JSON with the given status.
func jsonResponse(_ value: some Encodable, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) throws
    -> Response
{
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    return jsonResponse(encoded: ByteBuffer(bytes: try encoder.encode(value)), status: status, headers: headers)
}

/// A response with a body that is JSON already.
func jsonResponse(encoded body: ByteBuffer, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) -> Response {
    var headers = headers
    headers[.contentType] = "application/json; charset=utf-8"
    return Response(status: status, headers: headers, body: .init(byteBuffer: body))
}
