import NIOCore
import PlatformCore
import PostgresNIO

/// `timestamptz` travels as microseconds since 2000-01-01 in binary form, so `Timestamp`
/// maps onto it exactly (Foundation's `Date` would round through a `Double`).
extension Timestamp: PostgresNonThrowingEncodable, PostgresArrayEncodable,
    PostgresDecodable, PostgresArrayDecodable
{
    private static let postgresEpochMicroseconds: Int64 = 946_684_800_000_000

    public static var psqlType: PostgresDataType { .timestamptz }
    public static var psqlFormat: PostgresFormat { .binary }
    public static var psqlArrayType: PostgresDataType { .timestamptzArray }

    public func encode<JSONEncoder: PostgresJSONEncoder>(
        into byteBuffer: inout ByteBuffer, context: PostgresEncodingContext<JSONEncoder>
    ) {
        byteBuffer.writeInteger(microseconds - Self.postgresEpochMicroseconds)
    }

    public init<JSONDecoder: PostgresJSONDecoder>(
        from buffer: inout ByteBuffer, type: PostgresDataType, format: PostgresFormat,
        context: PostgresDecodingContext<JSONDecoder>
    ) throws {
        guard type == .timestamptz || type == .timestamp, format == .binary, buffer.readableBytes == 8,
            let value = buffer.readInteger(as: Int64.self)
        else {
            throw PostgresDecodingError.Code.typeMismatch
        }
        self.init(microseconds: value + Self.postgresEpochMicroseconds)
    }
}
