#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Foundation
import NIOCore
import Scripting

/// `thermostat lua-worker`: the process side of a Lua worker. It confines itself first — no
/// descriptor but its pipes (stdin, stdout), stderr and the runtime's own, no way to open or
/// write files,
/// capped address space, CPU time re-armed per request, no root — then answers framed requests
/// from stdin on stdout, one at a time, until stdin closes. It ignores SIGTERM and SIGINT: the
/// server stops its workers (SIGKILL, or closing their stdin) once it has drained.
public enum LuaWorkerProcess {
    /// How the server asks a worker to confine itself.
    public struct Limits: Sendable {
        /// Address space cap (`RLIMIT_AS`).
        public var addressSpaceBytes: Int
        /// CPU seconds one request may use before the kernel stops the process (`RLIMIT_CPU`),
        /// a backstop behind the supervisor's wall-clock deadline.
        public var cpuSecondsPerRequest: Int

        public init(addressSpaceBytes: Int, cpuSecondsPerRequest: Int) {
            self.addressSpaceBytes = addressSpaceBytes
            self.cpuSecondsPerRequest = cpuSecondsPerRequest
        }
    }

    /// Runs the worker until its input closes. `catalog` is read before confinement (which
    /// forbids opening files).
    public static func run(catalog: PluginCatalog, limits: Limits) -> Never {
        // A stop signal sent to the whole process group (Ctrl-C in a terminal, `timeout`,
        // systemd's control-group stop) is the server's to handle: it drains while its workers
        // keep answering, then kills them. A worker also ends when its stdin closes, so it
        // never outlives the server.
        signal(SIGTERM, SIG_IGN)
        signal(SIGINT, SIG_IGN)
        closeInheritedDescriptors()
        confine(limits)
        let worker = LuaWorker(catalog: catalog)
        var input = FrameReader(descriptor: STDIN_FILENO)
        let allocator = ByteBufferAllocator()
        var cpuLimit = CPULimit(secondsPerRequest: limits.cpuSecondsPerRequest)
        cpuLimit.arm()
        // An empty frame tells the supervisor the worker is ready for its first call.
        guard writeAll(WorkerFraming.frame({ _ in }, allocator: allocator), to: STDOUT_FILENO) else { exit(0) }
        while var frame = input.next() {
            cpuLimit.arm()
            let response: WorkerResponse
            do {
                response = worker.handle(try WorkerCodec.decodeRequest(&frame))
            } catch {
                response = .job(.failed("undecodable request: \(error)"))
            }
            guard let frame = try? WorkerFraming.frame({ try WorkerCodec.encode(response, into: &$0) }, allocator: allocator),
                writeAll(frame, to: STDOUT_FILENO)
            else { exit(0) }
        }
        exit(0)
    }

    /// Closes every file, socket and pipe above stderr that the server had open without
    /// close-on-exec (a database file, a client connection). The anonymous descriptors the
    /// Swift runtime made in this process (epoll, eventfd) stay.
    private static func closeInheritedDescriptors() {
        let files = FileManager.default
        guard let entries = try? files.contentsOfDirectory(atPath: "/proc/self/fd") else { return }
        for descriptor in entries.compactMap(Int32.init) where descriptor > 2 {
            guard let target = try? files.destinationOfSymbolicLink(atPath: "/proc/self/fd/\(descriptor)") else { continue }
            if !target.hasPrefix("anon_inode:") { close(descriptor) }
        }
    }

    private static func confine(_ limits: Limits) {
        setLimit(RLIMIT_AS_VALUE, soft: rlim_t(limits.addressSpaceBytes), hard: rlim_t(limits.addressSpaceBytes))
        setLimit(RLIMIT_CORE_VALUE, soft: 0, hard: 0)
        // The runtime's own few descriptors stay usable; no new one can be opened. (Listed
        // before dropping root: a process that changed its ids cannot read its own /proc.)
        let open = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd").compactMap(Int.init).max()) ?? 2
        if geteuid() == 0 { dropRoot() }
        // After dropping root, whose failure is reported on stderr: with the file size cap, any
        // write to a stderr that is a regular file (the server's log) kills the process.
        setLimit(RLIMIT_FSIZE_VALUE, soft: 0, hard: 0)
        setLimit(RLIMIT_NOFILE_VALUE, soft: rlim_t(open), hard: rlim_t(open))
    }

    /// Becomes `nobody` (the worker needs no file, so no account of its own). glibc changes
    /// every thread of the process, or aborts it.
    private static func dropRoot() {
        let nobody: UInt32 = 65534
        guard setgroups(0, nil) == 0, setgid(nobody) == 0, setuid(nobody) == 0, getuid() == nobody, geteuid() == nobody else {
            FileHandle.standardError.write(Data("lua-worker: cannot drop root privileges\n".utf8))
            exit(71)
        }
    }

    private static func setLimit(_ resource: Int32, soft: rlim_t, hard: rlim_t) {
        var limit = rlimit(rlim_cur: soft, rlim_max: hard)
        #if os(Linux)
        _ = setrlimit(__rlimit_resource_t(UInt32(resource)), &limit)
        #else
        _ = setrlimit(resource, &limit)
        #endif
    }

    /// `RLIMIT_CPU` counts the whole life of the process, so before each request the soft limit
    /// moves to what the process has used plus one request's allowance.
    private struct CPULimit {
        let secondsPerRequest: Int
        var armedAt: Int = -1

        mutating func arm() {
            var usage = timespec()
            clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &usage)
            let used = usage.tv_sec
            guard used != armedAt else { return }
            armedAt = used
            setLimit(RLIMIT_CPU_VALUE, soft: rlim_t(used + secondsPerRequest + 1), hard: rlim_t.max)
        }
    }

    private static func writeAll(_ buffer: ByteBuffer, to descriptor: Int32) -> Bool {
        buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    return false
                }
                offset += written
            }
            return true
        }
    }
}

/// Reads length-prefixed frames from a descriptor it makes non-blocking: while requests come
/// quickly by reading again and again for a while (`ReadOnWindow`), then asleep in `poll`.
struct FrameReader {
    let descriptor: Int32
    private var frames = WorkerFrameBuffer()
    private var readOn = ReadOnWindow()

    init(descriptor: Int32) {
        self.descriptor = descriptor
        _ = fcntl(descriptor, F_SETFL, fcntl(descriptor, F_GETFL) | O_NONBLOCK)
    }

    /// The next frame's payload, or nil at end of input (or on a broken frame, or a read error).
    mutating func next() -> ByteBuffer? {
        let tryUntil = readOn.startWaiting()
        while true {
            do {
                if let frame = try frames.nextFrame() {
                    readOn.frameCame()
                    return frame
                }
            } catch {
                return nil
            }
            let count = frames.fill(from: descriptor, tryingUntil: tryUntil)
            if count == 0 { return nil }
            if count < 0 {
                guard errno == EAGAIN || errno == EWOULDBLOCK else { return nil }
                var input = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                if poll(&input, 1, -1) < 0 && errno != EINTR { return nil }
            }
        }
    }
}

#if os(Linux)
private let RLIMIT_AS_VALUE = Int32(RLIMIT_AS.rawValue)
private let RLIMIT_FSIZE_VALUE = Int32(RLIMIT_FSIZE.rawValue)
private let RLIMIT_CORE_VALUE = Int32(RLIMIT_CORE.rawValue)
private let RLIMIT_NOFILE_VALUE = Int32(RLIMIT_NOFILE.rawValue)
private let RLIMIT_CPU_VALUE = Int32(RLIMIT_CPU.rawValue)
#else
private let RLIMIT_AS_VALUE = RLIMIT_AS
private let RLIMIT_FSIZE_VALUE = RLIMIT_FSIZE
private let RLIMIT_CORE_VALUE = RLIMIT_CORE
private let RLIMIT_NOFILE_VALUE = RLIMIT_NOFILE
private let RLIMIT_CPU_VALUE = RLIMIT_CPU
#endif
