import NIOCore

/// Frames on a worker's pipes: a 4-byte little-endian payload length, then the payload.
public enum WorkerFraming {
    /// Larger frames are refused: a 1,000-sample batch is about 60 KB, a dry-run about 100 KB.
    public static let maximumFrameBytes = 8 * 1024 * 1024

    /// `payload` behind its length prefix.
    static func frame(_ payload: (inout ByteBuffer) throws -> Void, allocator: ByteBufferAllocator) rethrows -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 512)
        buffer.writeInteger(UInt32(0), endianness: .little)
        try payload(&buffer)
        buffer.setInteger(UInt32(buffer.readableBytes - 4), at: 0, endianness: .little)
        return buffer
    }
}

/// Splits the bytes a worker writes into frames.
struct WorkerFrameDecoder: ByteToMessageDecoder {
    typealias InboundOut = ByteBuffer

    mutating func decode(context: ChannelHandlerContext, buffer: inout ByteBuffer) throws -> DecodingState {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
            return .needMoreData
        }
        guard Int(length) <= WorkerFraming.maximumFrameBytes else {
            throw WorkerProtocolError(description: "a frame of \(length) bytes is over the limit")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return .needMoreData }
        buffer.moveReaderIndex(forwardBy: 4)
        context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: Int(length))!))
        return .continue
    }
}
