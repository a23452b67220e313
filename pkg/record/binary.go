package record

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// The binary form of a record:
//
//	record := uvarint(field count) field*
//	field  := uvarint(len(name)) name value
//	value  := kind byte, then the payload:
//	  null   nothing
//	  bool   1 byte, 0 or 1
//	  int    zigzag varint
//	  float  8 bytes, little-endian IEEE bits (exact, NaN payloads included)
//	  string uvarint(len) bytes
//	  list   uvarint(count) value*
//	  map    record
//
// It is written to the network and to snapshots, so it must stay stable.
// It is canonical: the decoder rejects varints that are not minimally
// encoded, so a record has exactly one binary form.

// maxDepth bounds the nesting of lists and maps accepted by the decoders, so
// that hostile input cannot exhaust the stack.
const maxDepth = 512

// AppendBinary appends the binary form of r to dst.
func (r *Record) AppendBinary(dst []byte) []byte {
	return appendFieldsBinary(dst, r.Fields)
}

func appendFieldsBinary(dst []byte, fs []Field) []byte {
	dst = appendUvarint(dst, uint64(len(fs)))
	for i := range fs {
		dst = appendUvarint(dst, uint64(len(fs[i].Name)))
		dst = append(dst, fs[i].Name...)
		dst = fs[i].Value.appendBinary(dst)
	}
	return dst
}

func (v Value) appendBinary(dst []byte) []byte {
	dst = append(dst, byte(v.kind))
	switch v.kind {
	case KindBool:
		dst = append(dst, byte(v.num))
	case KindInt:
		dst = binary.AppendVarint(dst, int64(v.num))
	case KindFloat:
		dst = binary.LittleEndian.AppendUint64(dst, v.num)
	case KindString:
		dst = appendUvarint(dst, uint64(len(v.str())))
		dst = append(dst, v.str()...)
	case KindList:
		dst = appendUvarint(dst, uint64(len(v.list())))
		for _, e := range v.list() {
			dst = e.appendBinary(dst)
		}
	case KindMap:
		dst = appendFieldsBinary(dst, v.mapFields())
	}
	return dst
}

// Decoder decodes records, interning field names (and short strings) so that
// decoding records of a shape seen before allocates nothing. A Decoder is
// not safe for concurrent use; use one per goroutine. Its zero value is
// ready to use.
type Decoder struct {
	names   map[string]string
	strs    map[string]string
	scratch []byte // JSON string unescaping
	// shape is the field names of the last top-level record decoded in
	// binary form, in order. Records of one edge nearly always share their
	// shape, so a name equal to the one at the same position is taken from
	// here: one short compare instead of a map lookup, and no duplicate scan
	// while the names so far equal shape's prefix (shape's names are
	// distinct, being those of a record that decoded).
	shape []string
}

// Interning limits. Field names are few in practice; the cap only protects
// memory against data whose keys are really values. Strings are interned
// only when short, where repeats (enum-like values, words) are likely and
// the table is cheap; the table is dropped when full so that
// high-cardinality data costs no more than not interning.
const (
	maxInternedNames  = 4096
	maxInternedStrLen = 16
	maxInternedStrs   = 4096
)

func (d *Decoder) name(b []byte) string {
	if s, ok := d.names[string(b)]; ok {
		return s
	}
	if d.names == nil || len(d.names) >= maxInternedNames {
		d.names = make(map[string]string)
	}
	s := string(b)
	d.names[s] = s
	return s
}

func (d *Decoder) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if len(b) > maxInternedStrLen {
		return string(b)
	}
	if s, ok := d.strs[string(b)]; ok {
		return s
	}
	if d.strs == nil || len(d.strs) >= maxInternedStrs {
		d.strs = make(map[string]string)
	}
	s := string(b)
	d.strs[s] = s
	return s
}

var errTruncated = errors.New("unexpected end of input")

// binReader reads the binary form; errors name the byte offset.
type binReader struct {
	src []byte
	off int
	// prealloc is how many more list elements and fields may be allocated up front from counts read in the input.
	// Every element and field takes at least one byte of input, so in input that decodes they never exceed
	// len(src) in total, and slices are sized exactly; a count that lies (a list of a million claimed at every
	// level of nesting) exhausts it, and the slices then grow with what is actually decoded, so that allocation
	// stays proportional to the input, not to the counts read from it.
	prealloc uint64
}

// reserve returns the capacity to allocate for n elements claimed by the input: n while the budget lasts, else 0.
func (br *binReader) reserve(n uint64) int {
	if n > br.prealloc {
		br.prealloc = 0
		return 0
	}
	br.prealloc -= n
	return int(n)
}

func (br *binReader) errorf(format string, args ...any) error {
	return fmt.Errorf("at byte %d: %w", br.off, fmt.Errorf(format, args...))
}

func (br *binReader) uvarint(what string) (uint64, error) {
	x, n := binary.Uvarint(br.src[br.off:])
	if n == 0 {
		return 0, br.errorf("%s: %w", what, errTruncated)
	}
	if n < 0 {
		return 0, br.errorf("%s: varint overflows 64 bits", what)
	}
	if n > 1 && br.src[br.off+n-1] == 0 {
		return 0, br.errorf("%s: varint is not minimally encoded", what)
	}
	br.off += n
	return x, nil
}

// bytes returns the next n bytes, where n came from the input.
func (br *binReader) bytes(n uint64, what string) ([]byte, error) {
	if n > uint64(len(br.src)-br.off) {
		return nil, br.errorf("%s of length %d: %w (%d bytes left)", what, n, errTruncated, len(br.src)-br.off)
	}
	b := br.src[br.off : br.off+int(n)]
	br.off += int(n)
	return b, nil
}

// Decode decodes one record in binary form from src into r, after resetting
// r. It returns an error, never panics, on truncated or corrupt input, and
// on bytes left over after the record.
func (d *Decoder) Decode(src []byte, r *Record) error {
	r.Reset()
	br := binReader{src: src, prealloc: uint64(len(src))}
	fs, same, err := d.decodeFields(&br, r.Fields, 0, d.shape)
	r.Fields = fs
	if err == nil && br.off != len(src) {
		err = br.errorf("%d bytes left after the record", len(src)-br.off)
	}
	if err != nil {
		r.Reset()
		return fmt.Errorf("decode record: %w", err)
	}
	if !same {
		d.shape = d.shape[:0]
		for i := range fs {
			d.shape = append(d.shape, fs[i].Name)
		}
	}
	return nil
}

// fieldCount reads a record's field count, rejecting one that the rest of
// the input cannot hold.
func (d *Decoder) fieldCount(br *binReader) (uint64, error) {
	n, err := br.uvarint("field count")
	if err != nil {
		return 0, err
	}
	// Each field takes at least 2 bytes; a larger count is corrupt, and
	// checking first keeps a corrupt count from reserving huge memory.
	if n > uint64(len(br.src)-br.off)/2 {
		return 0, br.errorf("field count %d exceeds what %d remaining bytes can hold", n, len(br.src)-br.off)
	}
	return n, nil
}

// decodeFields decodes a record's fields, appending them to fs. shape is
// the names the record is expected to have (Decoder.shape, nil for nested
// records); same reports whether it had exactly those.
func (d *Decoder) decodeFields(br *binReader, fs []Field, depth int, shape []string) (_ []Field, same bool, _ error) {
	n, err := d.fieldCount(br)
	if err != nil {
		return fs, false, err
	}
	if fs == nil && n > 0 {
		fs = make([]Field, 0, br.reserve(n))
	}
	same = n == uint64(len(shape))
	var index fieldIndex
	for i := uint64(0); i < n; i++ {
		nameLen, err := br.uvarint("field name length")
		if err != nil {
			return fs, false, err
		}
		nameStart := br.off
		nb, err := br.bytes(nameLen, "field name")
		if err != nil {
			return fs, false, err
		}
		var name string
		if same && string(nb) == shape[i] {
			name = shape[i]
		} else {
			same = false
			if findField(&index, fs, nb) >= 0 {
				br.off = nameStart
				return fs, false, br.errorf("duplicate field %q", nb)
			}
			name = d.name(nb)
		}
		// Decoded in place, into a slot zeroed here: cheaper than
		// building a Field and appending a copy.
		if len(fs) < cap(fs) {
			fs = fs[:len(fs)+1]
			fs[len(fs)-1].Value = Value{}
		} else {
			fs = append(fs, Field{})
		}
		f := &fs[len(fs)-1]
		f.Name = name
		if err := d.decodeValue(br, depth, &f.Value); err != nil {
			return fs[:len(fs)-1], false, fmt.Errorf("field %q: %w", name, err)
		}
		index.added(fs)
	}
	return fs, same, nil
}

// decodeValue decodes one value into *v, which must be the zero Value.
func (d *Decoder) decodeValue(br *binReader, depth int, v *Value) error {
	if br.off >= len(br.src) {
		return br.errorf("kind: %w", errTruncated)
	}
	k := Kind(br.src[br.off])
	if !k.valid() {
		return br.errorf("unknown kind byte %d", k)
	}
	br.off++
	switch k {
	case KindNull:
		return nil
	case KindBool:
		if br.off >= len(br.src) {
			return br.errorf("bool: %w", errTruncated)
		}
		b := br.src[br.off]
		if b > 1 {
			return br.errorf("bool byte %d is neither 0 nor 1", b)
		}
		br.off++
		v.kind, v.num = KindBool, uint64(b)
		return nil
	case KindInt:
		x, n := binary.Varint(br.src[br.off:])
		if n == 0 {
			return br.errorf("int: %w", errTruncated)
		}
		if n < 0 {
			return br.errorf("int: varint overflows 64 bits")
		}
		if n > 1 && br.src[br.off+n-1] == 0 {
			return br.errorf("int: varint is not minimally encoded")
		}
		br.off += n
		v.kind, v.num = KindInt, uint64(x)
		return nil
	case KindFloat:
		b, err := br.bytes(8, "float")
		if err != nil {
			return err
		}
		v.kind, v.num = KindFloat, binary.LittleEndian.Uint64(b)
		return nil
	case KindString:
		n, err := br.uvarint("string length")
		if err != nil {
			return err
		}
		b, err := br.bytes(n, "string")
		if err != nil {
			return err
		}
		*v = String(d.str(b))
		return nil
	case KindList:
		if depth >= maxDepth {
			return br.errorf("nesting deeper than %d", maxDepth)
		}
		n, err := br.uvarint("list length")
		if err != nil {
			return err
		}
		if n > uint64(len(br.src)-br.off) {
			return br.errorf("list length %d exceeds the %d remaining bytes", n, len(br.src)-br.off)
		}
		if n == 0 {
			*v = List(nil)
			return nil
		}
		vs := make([]Value, 0, br.reserve(n))
		for i := uint64(0); i < n; i++ {
			vs = append(vs, Value{})
			if err := d.decodeValue(br, depth+1, &vs[len(vs)-1]); err != nil {
				return fmt.Errorf("list element %d: %w", i, err)
			}
		}
		*v = List(vs)
		return nil
	default: // KindMap
		if depth >= maxDepth {
			return br.errorf("nesting deeper than %d", maxDepth)
		}
		fs, _, err := d.decodeFields(br, nil, depth+1, nil)
		if err != nil {
			return err
		}
		*v = Map(&Record{Fields: fs})
		return nil
	}
}
