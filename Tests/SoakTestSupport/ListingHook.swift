import S3

/// Lists through a store and runs `afterListing` once the last page is out (the bucket changes
/// between the listing and the GETs). Used by the download and prewarm tests.
public final class ListingHook: ObjectStore, @unchecked Sendable {
    private let inner: ObjectStore
    private var hook: (() -> Void)?
    public init(_ inner: ObjectStore, afterListing: @escaping () -> Void) { self.inner = inner; self.hook = afterListing }

    public func listPage(bucket: String, prefix: String, delimiter: String?, continuationToken: String?,
                  maxKeys: Int) throws -> ListPage {
        let page = try inner.listPage(bucket: bucket, prefix: prefix, delimiter: delimiter,
                                      continuationToken: continuationToken, maxKeys: maxKeys)
        if !page.isTruncated, let h = hook { hook = nil; h() }
        return page
    }

    public func head(bucket: String, key: String) throws -> ObjectInfo { try inner.head(bucket: bucket, key: key) }

    public func get(bucket: String, key: String, range: ClosedRange<Int64>?, ifMatch: String?,
             sink: (UnsafeRawBufferPointer) throws -> Void) throws -> GetResult {
        try inner.get(bucket: bucket, key: key, range: range, ifMatch: ifMatch, sink: sink)
    }
}
