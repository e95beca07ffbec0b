import Foundation
import PlatformCore

/// The JSON text columns both backends keep for alerts: a channel's recipients and a
/// (rule, device)'s notification times.
enum AlertColumns {
    static func recipientsText(_ recipients: [String]) -> String {
        (try? String(decoding: JSONEncoder().encode(recipients), as: UTF8.self)) ?? "[]"
    }

    static func recipients(_ text: String) -> [String] {
        (try? JSONDecoder().decode([String].self, from: Data(text.utf8))) ?? []
    }

    static func notifiedText(_ notified: [String: Timestamp]) -> String {
        // Most (rule, device) pairs never notified; their states are read and written per pass.
        guard !notified.isEmpty else { return "{}" }
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        return (try? String(decoding: encoder.encode(notified.mapValues(\.microseconds)), as: UTF8.self)) ?? "{}"
    }

    static func notified(_ text: String) -> [String: Timestamp] {
        guard text != "{}" else { return [:] }
        return ((try? JSONDecoder().decode([String: Int64].self, from: Data(text.utf8))) ?? [:]).mapValues(Timestamp.init(microseconds:))
    }
}
