/// Raw memory owned by a reference, freed with it: the window of a `FileByteReader` (which may grow it) and the
/// buffer of a `FileByteWriter`, structs that are copied while their memory must not be.
final class OwnedBytes {
    var bytes: UnsafeMutableRawBufferPointer

    init(_ count: Int) { bytes = .allocate(byteCount: count, alignment: 16) }

    deinit { bytes.deallocate() }
}
