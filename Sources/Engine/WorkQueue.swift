/// A priority queue of work with lanes, plus a timer heap for delayed retries.
///
/// Lanes are strict priorities: `pop` always takes from the highest non-empty lane, FIFO
/// within a lane. Items waiting out a retry backoff sit in `delayed` (a min-heap on due time)
/// and move back to their lane when due. Adding a lane is adding a case to `Lane`.
import Collections

/// Scheduling lanes, highest priority first.
public enum Lane: Int, CaseIterable, Comparable, Sendable, Codable {
    /// A mount read that missed the cache (part 3): overtakes everything.
    case urgent = 0
    /// Sequential read-ahead for an open file.
    case readAhead = 1
    /// Bulk download / prewarm.
    case bulk = 2

    public static func < (a: Lane, b: Lane) -> Bool { a.rawValue < b.rawValue }
}

public struct WorkQueue<Item>: Sendable where Item: Sendable {
    private var lanes: [Deque<Item>] = Array(repeating: Deque(), count: Lane.allCases.count)
    private var delayed = Heap<Delayed>()
    private var seq = 0

    struct Delayed: Comparable, Sendable {
        var due: Double
        var seq: Int
        var lane: Lane
        var item: Item
        static func < (a: Delayed, b: Delayed) -> Bool { (a.due, a.seq) < (b.due, b.seq) }
        static func == (a: Delayed, b: Delayed) -> Bool { a.due == b.due && a.seq == b.seq }
    }

    public init() {}

    public mutating func push(_ item: Item, lane: Lane) { lanes[lane.rawValue].append(item) }

    /// Puts an item back at the front of its lane (e.g. work taken from a dead worker).
    public mutating func pushFront(_ item: Item, lane: Lane) { lanes[lane.rawValue].prepend(item) }

    /// Holds an item until `due` (monotonic seconds), then it rejoins its lane at the back.
    public mutating func push(_ item: Item, lane: Lane, due: Double) {
        seq += 1
        delayed.insert(Delayed(due: due, seq: seq, lane: lane, item: item))
    }

    /// Moves delayed items whose time has come into their lanes.
    public mutating func release(now: Double) {
        while let d = delayed.min, d.due <= now {
            let d = delayed.removeMin()
            lanes[d.lane.rawValue].append(d.item)
        }
    }

    /// The next item by lane priority, or nil when every lane is empty.
    public mutating func pop(now: Double) -> (Item, Lane)? {
        release(now: now)
        for lane in Lane.allCases where !lanes[lane.rawValue].isEmpty {
            return (lanes[lane.rawValue].removeFirst(), lane)
        }
        return nil
    }

    /// The highest lane with ready work.
    public func topLane() -> Lane? { Lane.allCases.first { !lanes[$0.rawValue].isEmpty } }

    /// Removes and returns the first ready item matching `pred` in any lane (for promotion).
    public mutating func remove(where pred: (Item) -> Bool) -> (Item, Lane)? {
        for lane in Lane.allCases {
            if let i = lanes[lane.rawValue].firstIndex(where: pred) {
                return (lanes[lane.rawValue].remove(at: i), lane)
            }
        }
        return nil
    }

    public var readyCount: Int { lanes.reduce(0) { $0 + $1.count } }
    public func count(in lane: Lane) -> Int { lanes[lane.rawValue].count }
    public var delayedCount: Int { delayed.count }
    public var isEmpty: Bool { readyCount == 0 && delayed.isEmpty }
    /// When the earliest delayed item is due, if any.
    public var nextDue: Double? { delayed.min?.due }
}
