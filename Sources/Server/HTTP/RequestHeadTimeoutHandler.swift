import Hummingbird
import HummingbirdCore
import HummingbirdCore
import NIOCore
import NIOHTTPTypes

/// Closes a connection whose client does not deliver a complete request head in time
/// (slowloris: a head trickled a byte at a time holds a connection without ever becoming a
/// request, which Hummingbird's idle timeout alone does not bound tightly).
///
/// The clock starts when the connection opens and again when the last outstanding response has
/// been written, so the same bound also closes idle keep-alive connections; it stops when a
/// request head arrives. Slow bodies are the idle timeout's business.
final class RequestHeadTimeoutHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let timeout: TimeAmount
    private var deadline: Scheduled<Void>?
    /// Requests whose head has arrived and whose response has not been fully written.
    private var outstanding = 0

    init(timeout: TimeAmount) {
        self.timeout = timeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { arm(context) }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        disarm()
    }

    func channelActive(context: ChannelHandlerContext) {
        arm(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        disarm()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if case .head = unwrapInboundIn(data) {
            outstanding += 1
            disarm()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) {
            outstanding = max(0, outstanding - 1)
            if outstanding == 0 { arm(context) }
        }
        context.write(data, promise: promise)
    }

    private func arm(_ context: ChannelHandlerContext) {
        disarm()
        deadline = context.eventLoop.assumeIsolated().scheduleTask(in: timeout) {
            context.close(promise: nil)
        }
    }

    private func disarm() {
        deadline?.cancel()
        deadline = nil
    }
}

extension PlatformConfiguration {
    /// HTTP/1.1 with the slow-client bounds: a request head must arrive within the header
    /// timeout (also the keep-alive idle time), and a connection with no request activity (a
    /// stalled body) closes after the idle timeout, so trickling bytes cannot hold connections.
    var httpServer: HTTPServerBuilder {
        let headerTimeout = TimeAmount.seconds(Int64(httpHeaderTimeoutSeconds))
        return .http1(
            configuration: HTTP1Channel.Configuration(
                additionalChannelHandlers: [RequestHeadTimeoutHandler(timeout: headerTimeout)],
                idleTimeout: .seconds(Int64(httpIdleTimeoutSeconds))))
    }
}
