package snapshot

// ResolveStore parses a pointer (scheme://... or a plain path, as the
// checkpoint directories) into the Store that holds it and the pointer's
// native path there, for packages that keep objects of their own in
// storage that users configure like checkpoint storage (the HA store's
// blobs in high-availability.storageDir). It does no I/O; an unsupported
// scheme is an *UnsupportedSchemeError.
func ResolveStore(pointer string) (Store, string, error) {
	r, err := resolve(pointer)
	if err != nil {
		return nil, "", err
	}
	return r.store, r.native, nil
}
