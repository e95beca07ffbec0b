/// A fixed-capacity map that forgets its least recently used entry when it is full.
///
/// Every operation is O(1): entries live in parallel arrays linked into a recency list by
/// index, so eviction never scans the table. Rate limiters and the device credential cache
/// keep one each behind a lock, which is what bounds their memory against clients that invent
/// keys (addresses, emails, serials) faster than the keys expire.
struct LRUTable<Value> {
    private var slots: [String: Int32] = [:]
    private var keys: [String] = []
    private var values: [Value] = []
    private var newer: [Int32] = []
    private var older: [Int32] = []
    /// Most and least recently used slots; -1 when the table is empty.
    private var newest: Int32 = -1
    private var oldest: Int32 = -1
    let capacity: Int

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    var count: Int { slots.count }

    /// The value for `key`, which becomes the most recently used entry.
    mutating func value(for key: String) -> Value? {
        guard let slot = slots[key] else { return nil }
        moveToFront(slot)
        return values[Int(slot)]
    }

    /// Stores `value` as the most recently used entry; evicts the least recently used entry
    /// when the table is full.
    mutating func set(_ value: Value, for key: String) {
        if let slot = slots[key] {
            values[Int(slot)] = value
            moveToFront(slot)
            return
        }
        let slot: Int32
        if slots.count < capacity {
            slot = Int32(keys.count)
            keys.append(key)
            values.append(value)
            newer.append(-1)
            older.append(-1)
        } else {
            slot = oldest
            unlink(slot)
            slots.removeValue(forKey: keys[Int(slot)])
            keys[Int(slot)] = key
            values[Int(slot)] = value
        }
        slots[key] = slot
        linkAtFront(slot)
    }

    /// Forgets `key`; the last slot moves into its place so the arrays stay dense.
    mutating func remove(_ key: String) {
        guard let slot = slots.removeValue(forKey: key) else { return }
        unlink(slot)
        let last = Int32(keys.count - 1)
        if slot != last {
            let movedKey = keys[Int(last)]
            let movedNewer = newer[Int(last)]
            let movedOlder = older[Int(last)]
            keys[Int(slot)] = movedKey
            values[Int(slot)] = values[Int(last)]
            newer[Int(slot)] = movedNewer
            older[Int(slot)] = movedOlder
            if movedNewer >= 0 { older[Int(movedNewer)] = slot } else { newest = slot }
            if movedOlder >= 0 { newer[Int(movedOlder)] = slot } else { oldest = slot }
            slots[movedKey] = slot
        }
        keys.removeLast()
        values.removeLast()
        newer.removeLast()
        older.removeLast()
    }

    private mutating func moveToFront(_ slot: Int32) {
        guard slot != newest else { return }
        unlink(slot)
        linkAtFront(slot)
    }

    private mutating func unlink(_ slot: Int32) {
        let before = newer[Int(slot)]
        let after = older[Int(slot)]
        if before >= 0 { older[Int(before)] = after } else { newest = after }
        if after >= 0 { newer[Int(after)] = before } else { oldest = before }
        newer[Int(slot)] = -1
        older[Int(slot)] = -1
    }

    private mutating func linkAtFront(_ slot: Int32) {
        newer[Int(slot)] = -1
        older[Int(slot)] = newest
        if newest >= 0 { newer[Int(newest)] = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }
}
