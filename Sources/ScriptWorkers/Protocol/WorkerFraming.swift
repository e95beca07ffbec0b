#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// Frames on a worker's pipes: a 4-byte little-endian payload length, then the payload.
public enum WorkerFraming {
    /// Larger frames are refused: a 1,000-sample batch is about 60 KB, a dry-run about 100 KB.
    public static let maximumFrameBytes = 8 * 1024 * 1024

    /// How long a reader of a worker pipe keeps reading it, while frames come quickly, before it
    /// sleeps in `poll` (see `ReadOnWindow`). A sleeping thread, on a virtual machine whose idle
    /// vCPU halts, takes tens of microseconds to wake (a pipe round trip between two processes:
    /// 70 µs sleeping, 2.5 µs reading again and again).
    static let spinWindow = Duration.microseconds(250)

    /// `payload` behind its length prefix.
    static func frame(_ payload: (inout ByteBuffer) throws -> Void, allocator: ByteBufferAllocator) rethrows -> ByteBuffer {
        var buffer = allocator.buffer(capacity: 512)
        buffer.writeInteger(UInt32(0), endianness: .little)
        try payload(&buffer)
        buffer.setInteger(UInt32(buffer.readableBytes - 4), at: 0, endianness: .little)
        return buffer
    }
}

/// The bytes read from one end of a worker's pipes, split into frames as they complete. Both
/// sides use it, on non-blocking descriptors: the worker on its stdin, the supervisor on the
/// worker's stdout.
struct WorkerFrameBuffer {
    private var buffer = ByteBufferAllocator().buffer(capacity: 64 * 1024)

    /// Reads what `descriptor` has (up to 64 KiB): the byte count, 0 at end of input, or -1 with
    /// `errno` set (`EAGAIN` when a non-blocking descriptor has nothing now).
    mutating func fill(from descriptor: Int32) -> Int {
        var result = 0
        // The frames handed out share this storage: start afresh rather than copy it when
        // nothing is left to keep.
        if buffer.readableBytes == 0 { buffer.clear() } else { buffer.discardReadBytes() }
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: 64 * 1024) { space in
            repeat {
                result = read(descriptor, space.baseAddress, space.count)
            } while result < 0 && errno == EINTR
            return max(result, 0)
        }
        return result
    }

    /// Like `fill`, but while the non-blocking `descriptor` has nothing, tries again until
    /// `until`, handing the CPU to any other thread that wants it between tries. -1 with `errno`
    /// `EAGAIN` when nothing came by then.
    mutating func fill(from descriptor: Int32, tryingUntil until: ContinuousClock.Instant) -> Int {
        while true {
            let count = fill(from: descriptor)
            guard count < 0, errno == EAGAIN || errno == EWOULDBLOCK, ContinuousClock.now < until else { return count }
            sched_yield()
        }
    }

    /// The next complete frame's payload, nil while it is incomplete. Throws for a length over
    /// `WorkerFraming.maximumFrameBytes`.
    mutating func nextFrame() throws -> ByteBuffer? {
        guard let length = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else {
            return nil
        }
        guard Int(length) <= WorkerFraming.maximumFrameBytes else {
            throw WorkerProtocolError(description: "a frame of \(length) bytes is over the limit")
        }
        guard buffer.readableBytes >= 4 + Int(length) else { return nil }
        buffer.moveReaderIndex(forwardBy: 4)
        return buffer.readSlice(length: Int(length))
    }
}

/// Whether a reader of a worker pipe, once it has handled a frame, reads on before it sleeps:
/// for `WorkerFraming.spinWindow` when its last wait for a frame was shorter than that (a busy
/// exchange, where the next frame usually comes as quickly and a wake-up would cost more than
/// the wait), not at all after a longer one, so sparse traffic costs no CPU. A wasted window
/// happens at most once per change from busy to quiet.
struct ReadOnWindow {
    private var waitingSince = ContinuousClock.now
    private var lastWaitWasShort = false

    /// The reader begins to wait for the next frame at `now`: until when it reads again and
    /// again before it sleeps (`now` itself after a long wait).
    mutating func startWaiting(at now: ContinuousClock.Instant = .now) -> ContinuousClock.Instant {
        waitingSince = now
        return lastWaitWasShort ? now + WorkerFraming.spinWindow : now
    }

    /// The frame waited for since `startWaiting` came at `now`.
    mutating func frameCame(at now: ContinuousClock.Instant = .now) {
        lastWaitWasShort = now - waitingSince < WorkerFraming.spinWindow
    }
}
