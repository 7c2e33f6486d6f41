// Little-endian field access for the on-disk headers. Every multi-byte field on disk is little-endian.

extension UnsafeRawBufferPointer {
    @inlinable func loadLE<T: FixedWidthInteger>(_ offset: Int, as: T.Type) -> T {
        T(littleEndian: loadUnaligned(fromByteOffset: offset, as: T.self))
    }
}

extension UnsafeMutableRawBufferPointer {
    @inlinable func storeLE<T: FixedWidthInteger>(_ value: T, at offset: Int) {
        storeBytes(of: value.littleEndian, toByteOffset: offset, as: T.self)
    }
}

@inlinable func alignUp8(_ n: Int) -> Int { (n + 7) & ~7 }
